-- post-model.lua - POST /model/add with a full MLModelCreate body.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = [[{"modelname": "bench-post", "modelkind": "bench-post",
"hyperparameter": [{"parameter": "alpha", "value": 1.0}],
"modelperformance": [{"metric": "Accuracy", "order": 1, "threshold": 0.89}],
"trainingresource": [{"resource_name": "GPU", "value": 16, "deploy": "string"}],
"runresource": [{"resource_name": "CPU", "value": 2, "deploy": "string"}],
"featurelist": [{"feature_name": "age", "type": "cont", "kind": 0, "units": 1},
                {"feature_name": "sex", "type": "cat", "kind": 1, "units": 0}],
"inference": [{"type": "string", "value": "string"}],
"modeltags": ["bench", "bench-post"],
"drift_detection": [{"is_true": 1, "method": 0}]}]]

dofile(os.getenv("BENCH_LIB") .. "/report.lua")
