"""Deployment timings for bench/deploy.sh (see there)."""
import os
import statistics
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "t", "lib"))
import mlctap as t  # noqa: E402  (HTTP and DB helpers; its TAP output is not used here)
import mlcmodels as mm  # noqa: E402
from sklearn.ensemble import RandomForestRegressor  # noqa: E402

t._out = lambda line: None  # the TAP lines of the helpers are not wanted here


def time_to_deployed(modelid):
    dep = t.uniq("bench")
    start = time.time()
    resp = mm.deploy(modelid, dep)
    if resp.status_code != 201:
        raise RuntimeError(t.describe(resp))
    st = mm.wait_status(dep, seconds=120)
    if (st or {}).get("status") != "deployed":
        raise RuntimeError("deployment ended %s" % st)
    return time.time() - start, dep


def rss_kib(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
    except (OSError, StopIteration):
        return 0


def main():
    parallel = int(sys.argv[1])
    reg, X, y, names = mm.diabetes_ridge()
    ridge = mm.register(reg, X, y, names)
    forest = RandomForestRegressor(n_estimators=100, random_state=0).fit(X, y)
    rf = mm.register(forest, X, y, names)
    rows = []
    for label, model in (("Ridge (diabetes)", ridge), ("RandomForest 100 trees (diabetes)", rf)):
        times = []
        for _ in range(5):
            secs, dep = time_to_deployed(model["modelid"])
            times.append(secs)
            t.delete("/deployment/" + dep)
        rows.append((label, statistics.median(times), min(times), max(times)))
    print("\nMLConnector deployment benchmark: %s, %d CPUs\n" % (t.BASE_URL, os.cpu_count()))
    print("%-36s %10s %10s %10s" % ("time from POST to deployed", "median s", "min s", "max s"))
    for label, med, lo, hi in rows:
        print("%-36s %10.2f %10.2f %10.2f" % (label, med, lo, hi))
    results, threads = [], []
    start = time.time()
    for _ in range(parallel):
        th = threading.Thread(target=lambda: results.append(time_to_deployed(ridge["modelid"])))
        th.start()
        threads.append(th)
    for th in threads:
        th.join()
    wall = time.time() - start
    pids = [r["runtime_pid"] for r in t.db_rows(
        "SELECT runtime_pid FROM deployments WHERE status = 'deployed' AND runtime_pid IS NOT NULL")]
    total = sum(rss_kib(p) for p in pids)
    print("\n%d Ridge deployments at once: all deployed in %.2f s (slowest %.2f s); "
          "%d runtimes use %.0f MiB RSS in total, %.0f MiB each"
          % (parallel, wall, max(s for s, _ in results), len(pids), total / 1024.0,
             total / 1024.0 / max(1, len(pids))))


main()
