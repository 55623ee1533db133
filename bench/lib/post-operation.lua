-- post-operation.lua - POST /deployment/add/operation (the API document's body).
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = [==[{"ownerid": "bench-owner-post", "deploymentid": "bench-dep", "modelid": "bench",
"data": [[5.1, 3.5, 1.4, 0.2]], "result": [0]}]==]

dofile(os.getenv("BENCH_LIB") .. "/report.lua")
