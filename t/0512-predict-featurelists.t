#!/usr/bin/python3
# The featurelists a worker keeps (app/route-predict.c): a deployment's
# frozen featurelist is read with its row on every call, and a worker keeps
# the features it parsed from the last 8 texts, keyed by the text itself.
# One slow worker (a master of this test's own) serves every call here, so
# the same worker sees each change: a featurelist changed at the SQL console
# keys the very next call's rows, old texts come back after they were
# pushed out, and two deployments with different featurelists never share
# features.
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import mlcapi
import mlctap as t

t.need_instance("MLC_DB_SOCKET", "MLC_VAR")
import mlcmodels as mm

var = os.environ["MLC_VAR"]
hosts = mlcapi.Hosts("t0512")
sock = hosts.start("one")
hosts.all_up()
slow = sock.replace(".sock", "-slow.sock")
t.ok(t.wait_for(lambda: os.path.exists(slow), 10), "its slow pool (one worker) listens")

reg, X, y, names = mm.diabetes_ridge()
want = reg.predict(X[:1])[0]


def deployed(model):
    r = mm.deploy(model["modelid"])
    dep = (t.body_of(r) or {}).get("deployment_id")
    st = mm.wait_status(dep) if dep else None
    if (st or {}).get("status") != "deployed":
        raise RuntimeError("deployment did not come up: %s" % st)
    return dep


def predict(dep, data):
    """(status, prediction or detail) of one call through the test's slow worker."""
    status, body = mlcapi.call(slow, "/deployment/%s/predict" % dep, "POST", {"data": data})
    if status == 200:
        return status, body["prediction"]
    return status, body


def names_of(k):
    return ["v%d_%s" % (k, n) for n in names]


def set_features(dep, k):
    t.db_rows("UPDATE deployments SET features = %s WHERE deployment_id = %s",
              json.dumps(mm.featurelist(names_of(k))), dep)


def keyed(k):
    return dict(zip(names_of(k), X[0].tolist()))


a = deployed(mm.register(reg, X, y, names))
b = deployed(mm.register(reg, X, y, names))

# Ten featurelists in turn on one deployment (two more than the worker
# keeps), each checked right after the console changed it.
bad = []
for k in range(10):
    set_features(a, k)
    got = predict(a, keyed(k))
    if got[0] != 200 or abs(got[1] - want) > 1e-9:
        bad.append((k, "own names", got))
    if k and predict(a, keyed(k - 1))[0] != 422:
        bad.append((k, "previous names", predict(a, keyed(k - 1))))
t.ok(not bad, "ten featurelists set at the console in turn: each keys the next call's rows, "
     "the one before it no longer does", bad[:3])

# Back to texts seen before: one pushed out of the worker's 8, one still kept.
bad = []
for k in (0, 9, 3, 9):
    set_features(a, k)
    got = predict(a, keyed(k))
    if got[0] != 200:
        bad.append((k, got))
    other = 9 if k != 9 else 0
    if predict(a, keyed(other))[0] != 422:
        bad.append((k, "names of", other))
t.ok(not bad, "featurelists seen before, kept or pushed out: the current one keys the rows", bad[:3])

# Two deployments, different featurelists, calls alternating on one worker.
set_features(a, 20)
set_features(b, 21)
results = [(predict(a, keyed(20))[0], predict(b, keyed(21))[0], predict(a, keyed(21))[0],
            predict(b, keyed(20))[0]) for _ in range(5)]
t.is_(set(results), {(200, 200, 422, 422)},
      "two deployments with different featurelists, alternating: each keys its own names only")

# The same text byte for byte on two deployments: both take it.
for dep in (a, b):
    set_features(dep, 30)
t.is_({predict(dep, keyed(30))[0] for dep in (a, b) for _ in range(3)}, {200},
      "one featurelist text on two deployments: both key rows by it")

# No featurelist at all, then one again.
t.db_rows("UPDATE deployments SET features = NULL WHERE deployment_id = %s", a)
t.is_(predict(a, keyed(30))[0], 422, "the featurelist removed at the console: an object row is refused")
t.is_(predict(a, X[0].tolist())[0], 200, "while a list row predicts")
set_features(a, 30)
t.is_(predict(a, keyed(30))[0], 200, "and the featurelist put back keys rows again")

for dep in (a, b):
    t.http("DELETE", "/deployment/" + dep, timeout=30)
hosts.stop_all()
t.done()
