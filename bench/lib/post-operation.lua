-- post-operation.lua - POST /deployment/add/operation (the API document's body).
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
-- The operation names its deployment's model (bench/api.sh exports it): a
-- different modelid is a 422.
wrk.body = [==[{"ownerid": "bench-owner-0", "deploymentid": "bench-dep", "modelid": "]==]
  .. os.getenv("BENCH_MODEL_ID") .. [==[",
"data": [[5.1, 3.5, 1.4, 0.2]], "result": [0]}]==]

dofile(os.getenv("BENCH_LIB") .. "/report.lua")
