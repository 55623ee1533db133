"""Deploy the benchmark models for bench/predict.sh and write, into the
directory given, one wrk Lua script per measurement and a baseline file
with the models' own in-process predict time on one row.  A deployment
that is already deployed (a running instance used again) is kept."""
import json
import os
import sys
import timeit

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "t", "lib"))
import mlctap as t  # noqa: E402
import mlcmodels as mm  # noqa: E402
from sklearn.ensemble import RandomForestRegressor  # noqa: E402

t._out = lambda line: None  # the helpers' TAP lines are not wanted here
t.defer = lambda *args: None  # the deployments must outlive this script
out = sys.argv[1]


def deployed(model, dep):
    if mm.deploy(model["modelid"], dep).status_code != 201 or \
            (mm.wait_status(dep, seconds=120) or {}).get("status") != "deployed":
        raise SystemExit("could not deploy %s" % dep)


def ensure(dep, make):
    """Deploy the model make() registers as dep, unless dep is deployed
    already (an instance kept from an earlier run: BENCH_RUNNING=1)."""
    status = t.get("/deployment/get/status/" + dep)
    if status.status_code == 200 and status.json().get("status") == "deployed":
        return
    deployed(make(), dep)


def lua(name, dep, body):
    with open(os.path.join(out, name + ".lua"), "w") as f:
        f.write('wrk.method = "POST"\nwrk.path = "/deployment/%s/predict"\n'
                'wrk.headers["Content-Type"] = "application/json"\n'
                'wrk.body = [==[%s]==]\ndofile(os.getenv("BENCH_LIB") .. "/report.lua")\n'
                % (dep, json.dumps(body)))


def in_process_us(model, row, n):
    return min(timeit.repeat(lambda: model.predict(row), number=n, repeat=5)) / n * 1e6


reg, X, y, names = mm.diabetes_ridge()
forest, Xi, yi, inames = mm.iris_forest(100)
rfr = RandomForestRegressor(n_estimators=100, random_state=0).fit(X, y)
ensure("bench-ridge", lambda: mm.register(reg, X, y, names))
ensure("dep-iris-001", lambda: mm.register(forest, Xi, yi, inames, kind="classification"))
ensure("bench-rf-diabetes", lambda: mm.register(rfr, X, y, names))
lua("ridge-row", "bench-ridge", {"data": X[0].tolist(), "explain": False})
lua("ridge-batch1000", "bench-ridge",
    {"data": [X[i % len(X)].tolist() for i in range(1000)], "explain": False})
lua("iris-explain", "dep-iris-001", {"data": [5.1, 3.5, 1.4, 0.2], "explain": True})
lua("diabetes-rf-explain", "bench-rf-diabetes", {"data": X[0].tolist(), "explain": True})
with open(os.path.join(out, "baseline"), "w") as f:
    f.write("%.1f %.1f %.1f\n" % (in_process_us(reg, X[:1], 2000), in_process_us(forest, Xi[:1], 20),
                                  in_process_us(rfr, X[:1], 20)))
