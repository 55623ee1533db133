#!/usr/bin/python3
# Limits that protect the machine from one hostile or careless owner:
#  - deployment ids start with a letter or digit ('.x', '-x' are 422 on
#    add, 404 on paths);
#  - caps on deployments and trainings, per owner and per installation,
#    answered 409 with the limit and what is in use, and race-free under
#    concurrent adds (checked on a second mlc-api with small caps, on its
#    own socket and the instance's database: the suite's other tests
#    deploy under the instance's defaults);
#  - a hostile requirements.txt fails its deployment within seconds while
#    another deploys and stops normally;
#  - a runtime that ignores SIGTERM does not delay another deployment's
#    start while it is being stopped.
import os
import pickle
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import mlctap as t  # noqa: E402
import mlcapi  # noqa: E402

t.need_instance("MLC_DB_SOCKET", "MLC_VAR")
import mlcmodels as mm  # noqa: E402

var = os.environ["MLC_VAR"]
reg, X, y, names = mm.diabetes_ridge()
model = mm.register(reg, X, y, names)
mid = model["modelid"]


def status_of(dep):
    r = t.get("/deployment/get/status/" + dep)
    return (t.body_of(r) or {}).get("status") if r.status_code == 200 else None


# ---- ids ------------------------------------------------------------------------------

for bad in (".x", "..", ".", "-x", "_x", "..x", "x" * 65):
    r = t.post("/deployment/add", json={"modelid": mid, "ownerid": "a", "placement": None,
                                        "deployment_id": bad})
    t.is_422(r, [(("body", "deployment_id"), None, "value_error.str.regex")],
             "deployment_id %r is refused: ids start with a letter or digit" % bad[:20])
detail = (t.body_of(r) or {}).get("detail") or [{}]
t.like(detail[0].get("msg", ""), r"\^\[A-Za-z0-9\]\[A-Za-z0-9\._-\]\{0,63\}\$",
       "the 422 states the id rule")
for path in ("/deployment/get/status/.x", "/deployment/get/status/-x", "/deployment/.hidden"):
    r = t.get(path) if "status" in path else t.delete(path)
    t.is_error(r, 404, "%s names no deployment" % path)
r = mm.deploy(mid, "9" + t.uniq("ok")[:20])
t.is_status(r, 201, "an id starting with a digit is accepted")

# ---- caps, on a second mlc-api with small ones -----------------------------------------


def in_use(table_sql):
    return t.db_rows(table_sql)[0]["n"]


t.wait_for(lambda: not t.db_rows("SELECT 1 FROM deployments WHERE status = 'stopping'"), 30)
deps_before = in_use("SELECT COUNT(*) AS n FROM deployments WHERE status <> 'stopped'")
trains_before = in_use("SELECT COUNT(*) AS n FROM trainings WHERE status IN ('waiting', 'running')")
sock = os.path.join(var, "run", "t0450.sock")
api = mlcapi.Api(sock, os.path.join(var, "log", "t0450-mlc-api.log"), MLC_WORKERS="4",
                 MLC_MAX_DEPLOYMENTS=str(deps_before + 3), MLC_MAX_DEPLOYMENTS_PER_OWNER="2",
                 MLC_MAX_TRAININGS=str(trains_before + 2), MLC_MAX_TRAININGS_PER_OWNER="1")
t.ok(api.wait_up(30), "a second mlc-api with small caps is up")


def private(path, body):
    return mlcapi.call(sock, path, "POST", body)


made = []


def add(owner, dep_id=None):
    status, body = private("/deployment/add", {"modelid": mid, "ownerid": owner,
                                               "placement": None,
                                               "deployment_id": dep_id or t.uniq("cap")})
    if status == 201:
        made.append(body["deployment_id"])
    return status, body


t.defer(lambda: [t.http("DELETE", "/deployment/" + d, timeout=30) for d in made])
owner_a, owner_b, owner_c = t.uniq("own-a"), t.uniq("own-b"), t.uniq("own-c")
results = [None] * 6


def racer(i):
    results[i] = add(owner_a)


threads = [threading.Thread(target=racer, args=(i,)) for i in range(6)]
for th in threads:
    th.start()
for th in threads:
    th.join()
statuses = sorted(r[0] for r in results)
t.is_(statuses, [201, 201, 409, 409, 409, 409],
      "6 concurrent adds by one owner with MLC_MAX_DEPLOYMENTS_PER_OWNER=2: 2 created, 4 refused")
refused = [r[1] for r in results if r[0] == 409]
t.like((refused[0] if refused else {}).get("detail", ""),
       r"^limit reached: owner '%s' has 2 deployments that are not stopped, and "
       r"MLC_MAX_DEPLOYMENTS_PER_OWNER=2; stop deployments" % owner_a,
       "the 409 names the owner, how many are in use and the limit")
t.is_(t.db_rows("SELECT COUNT(*) AS n FROM deployments WHERE ownerid = %s", owner_a),
      [{"n": 2}], "the database holds exactly 2 deployments of the owner")
status, body = add(owner_b)
t.is_(status, 201, "another owner still deploys (the installation has one place left)")
status, body = add(owner_c)
t.is_(status, 409, "with the installation's cap reached, a third owner is refused")
t.like((body or {}).get("detail", ""),
       r"^limit reached: this installation has %d deployments that are not stopped, and "
       r"MLC_MAX_DEPLOYMENTS=%d" % (deps_before + 3, deps_before + 3),
       "the 409 names the installation's count and limit")
first_a = made[0]  # one of the race's two
t.is_status(t.delete("/deployment/" + first_a), 200, "an owner stops one of its deployments")
status, body = add(owner_a)
t.is_(status, 201, "the place it held is free again, for the owner and the installation")
status, body = private("/deployment/add", {"modelid": mid, "ownerid": owner_a, "placement": None,
                                           "deployment_id": made[-1]})
t.is_(status, 409, "a taken id over the cap is still a 409 ...")

# Trainings: one waiting or running per owner, two more for the installation.
code = b"import time\ntime.sleep(4)\nraise SystemExit('t0450 trains nothing')\n"
tmodels = []
for i in range(3):
    m = t.add_model(t.minimal_model(), "a model to train (%d)" % i)
    mm.upload(m["modelid"], "code", "train.py", code)
    mm.upload(m["modelid"], "data", "train.csv", mm.csv_bytes(X[:20], y[:20], names))
    tmodels.append(m["modelid"])
trainer_t, trainer_u = t.uniq("trainer-t"), t.uniq("trainer-u")
trainings = []


def train(modelid, owner):
    status, body = private("/mltraining/add", {"modelid": modelid, "ownerid": owner})
    if status == 201:
        trainings.append(body["training_id"])
    return status, body


status, body = train(tmodels[0], trainer_t)
t.is_(status, 201, "an owner starts a training")
t.is_(t.db_rows("SELECT ownerid FROM trainings WHERE training_id = %s",
                (body or {}).get("training_id")), [{"ownerid": trainer_t}],
      "the training row records its owner")
status, body = train(tmodels[1], trainer_t)
t.is_(status, 409, "a second training of the owner is over MLC_MAX_TRAININGS_PER_OWNER=1")
t.like((body or {}).get("detail", ""),
       r"^limit reached: owner '%s' has 1 trainings waiting or running, and "
       r"MLC_MAX_TRAININGS_PER_OWNER=1" % trainer_t, "... and the 409 says so")
status, body = train(tmodels[1], trainer_u)
t.is_(status, 201, "another owner trains")
status, body = train(tmodels[2], t.uniq("trainer-v"))
t.is_(status, 409, "the installation's MLC_MAX_TRAININGS is reached")
t.like((body or {}).get("detail", ""), r"this installation has %d trainings waiting or running"
       % (trains_before + 2), "... and the 409 says so")
api.stop()

# ---- a hostile requirements.txt fails fast; another deployment is not held up ---------

hostile = {"a 1 MiB line": ("a" * (1 << 20), r"lines of at most 4096"),
           "'a[' * 100000": ("a[" * 100000, r"line 1 has 200000 characters")}
normal_dep = t.uniq("calm")
started = {}
for title, (text, pattern) in hostile.items():
    bad = mm.register(reg, X, y, names, requirements=text)
    r = mm.deploy(bad["modelid"])
    started[title] = (time.time(), (t.body_of(r) or {}).get("deployment_id"), pattern)
r = mm.deploy(mid, normal_dep)
t0 = time.time()
for title, (when, dep, pattern) in started.items():
    st = mm.wait_status(dep, seconds=30) or {}
    took = time.time() - when
    t.is_(st.get("status"), "failed", "requirements.txt with %s fails the deployment" % title)
    t.like(st.get("reason") or "", pattern, "... with a reason that says why")
    # Refused in linear time: a backtracking check of these files takes
    # minutes; 10 s leaves room for a loaded machine's spooler tick.
    t.ok(took < 10.0, "... within 10 s (%.2f s)" % took)
st = mm.wait_status(normal_dep) or {}
t.is_(st.get("status"), "deployed", "a deployment started meanwhile deploys")
t.is_status(t.delete("/deployment/" + normal_dep), 200, "... and stops")

# ---- a runtime that ignores SIGTERM does not hold up another's start --------------------


class IgnoresTerm:
    """Loads as the Ridge model, after making the runtime's SIGTERM handler
    a no-op: the runtime then dies only of the spooler's SIGKILL, after the
    grace period."""

    def __reduce__(self):
        code = ("import signal; _s = signal.signal; "
                "signal.signal = lambda n, h: _s(n, lambda *a: None)")
        return (eval, ("(exec(%r, {}), __import__('pickle').loads(%r))[1]"
                       % (code, pickle.dumps(reg, protocol=4)),))


stubborn = mm.register(reg, X, y, names, pickled=pickle.dumps(IgnoresTerm(), protocol=4))
slow_dep = t.uniq("stubborn")
mm.deploy(stubborn["modelid"], slow_dep)
t.is_((mm.wait_status(slow_dep) or {}).get("status"), "deployed", "a runtime that ignores SIGTERM deploys")
stop_result = {}


def stop_slow():
    t0 = time.time()
    r = t.http("DELETE", "/deployment/" + slow_dep, timeout=60)
    stop_result.update(status=r.status_code, took=time.time() - t0, at=time.time())


stopper = threading.Thread(target=stop_slow)
stopper.start()
t.wait_for(lambda: status_of(slow_dep) == "stopping", 10, 0.01)
time.sleep(0.3)  # the spooler is now waiting for it to die
quick_dep = t.uniq("quick")
t1 = time.time()
mm.deploy(mid, quick_dep)
st = mm.wait_status(quick_dep, seconds=60) or {}
deployed_at = time.time()
stopper.join()
t.is_(st.get("status"), "deployed", "a deployment made while it is being stopped deploys")
t.is_(stop_result.get("status"), 200, "the stubborn runtime is stopped (DELETE 200)")
t.ok(stop_result.get("took", 0) >= 4.0,
     "its stop took the grace period, it did ignore SIGTERM (%.1f s)" % stop_result.get("took", 0))
t.ok(deployed_at < stop_result.get("at", 0),
     "the other deployment was deployed before the stop ended (%.1f s after its add; the stop "
     "took %.1f s)" % (deployed_at - t1, stop_result.get("took", 0)))
t.is_status(t.delete("/deployment/" + quick_dep), 200, "... and it stops normally")

# Trainings of the cap test end by themselves (the script exits 1 after 4 s).
for tid in trainings:
    t.wait_for(lambda: (t.body_of(t.get("/mltraining/status/" + tid)) or {}).get("status")
               in ("completed", "failed"), 60, 0.2)
t.done()
