#!/usr/bin/python3
# Several API hosts on a Galera cluster (docs/SCALING.md).
#
# Run by "mlc test" on the ordinary instance, this file starts a second,
# private instance of the Galera topology (MLC_TEST_TOPOLOGY=galera: three
# MariaDB Galera nodes on loopback, two mlc-api pools - one on node 1, one
# on node 2 - behind one nginx upstream) and runs a handful of the
# end-to-end files against it, itself last.  There (MLC_TOPOLOGY=galera)
# it checks what only a cluster shows:
#
# - nginx spreads requests over both pools, and what one pool wrote the
#   other reads at once (the nodes run with wsrep_sync_wait=1);
# - concurrent changes of one model through both pools: the loser of a
#   certification conflict is answered 503 (never 500, never a 200 for a
#   change that was rolled back), the stored value is one that was acked;
# - concurrent uploads of one file name to one model through both pools
#   (one shared store): each acknowledged version downloads its own bytes;
# - SIGKILL of node 2 under write load (POST /model/add from several
#   clients): every 2xx reply's modelid is on both surviving nodes; clients
#   get 201 or 503, and node 1's pool keeps accepting writes;
# - then node 3 killed too: node 1 alone is not a Primary Component, and
#   its pool answers 503 to reads and writes instead of using it.
# The last two break the cluster: this file runs last in its instance.
#
# The whole suite against the topology: MLC_TEST_TOPOLOGY=galera
# ./scripts/mlc test (docs/SCALING.md lists the file that skips there,
# single-host only, and why; this one runs last).
import os
import pickle
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import mlctap as t
import galera as g

# The files run against the cluster: health, the registry's writes and
# reads, uploads through the slow pools, and tokens.
FILES = ["t/0100-health.t", "t/0110-model-add.t", "t/0120-model-list.t",
         "t/0130-model-get-patch-delete.t", "t/0300-upload.t", "t/0850-auth.t",
         "t/0980-galera.t"]

# Variables of the ordinary instance that must not leak into the nested one.
INSTANCE_VARS = ("BASE_URL", "MLC_VAR", "MLC_PORT", "MLC_RUN", "MLC_LOG_DIR", "MLC_SOCKET",
                 "MLC_SLOW_SOCKET", "MLC_DB_SOCKET", "MLC_DB_HOST", "MLC_ARTIFACTS",
                 "MLC_TEST_TOKEN", "MLC_TEST_REUSE", "MLC_TEST_VAR", "MLC_TEST_PORT",
                 "MLC_TOPOLOGY", "MLC_API_BIN", "ASAN_OPTIONS", "UBSAN_OPTIONS")


def run_nested():
    t.need_instance("MLC_ROOT")
    root = os.environ["MLC_ROOT"]
    for prog in ("/usr/lib/galera/libgalera_smm.so", "/usr/bin/rsync"):
        if not os.path.exists(prog):
            t.bail_out("needs %s (Debian packages galera-4 and rsync; mlc test installs them)"
                       % prog)
    env = {k: v for k, v in os.environ.items() if k not in INSTANCE_VARS}
    env["MLC_TEST_TOPOLOGY"] = "galera"
    started = time.monotonic()
    out = subprocess.run([os.path.join(root, "scripts", "mlc"), "test"] + FILES, cwd=root,
                         env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True, timeout=900)
    for line in out.stdout.splitlines():
        t.note(line)
    t.ok(out.returncode == 0, "%d files pass against a 3-node Galera cluster and two mlc-api "
         "pools behind one nginx upstream (%.0f s)" % (len(FILES), time.monotonic() - started),
         "mlc test exited %d" % out.returncode)
    t.done()


if not g.active():
    run_nested()
    sys.exit(0)

t.need_instance("MLC_DB_SOCKET", "MLC_DB_NAME", "MLC_SOCKET", "MLC_VAR", exclusive=True)
import mlcapi  # noqa: E402

DB = os.environ["MLC_DB_NAME"]
POOL_A, POOL_B = os.environ["MLC_SOCKET"], g.api_b_socket()


def via(sock, method, path, body=None):
    """One request straight to a pool's FastCGI socket: (status, parsed JSON or None)."""
    status, got = mlcapi.call(sock, path, method, body)
    return status, None if isinstance(got, bytes) else got


def ids_on(n, prefix):
    rows = g.sql(n, "SELECT modelid FROM models WHERE modelname LIKE '%s%%'" % prefix, DB)
    return None if rows is None else {r[0] for r in rows}


# ---- the cluster and the two pools ------------------------------------------

for n in range(1, g.NODES + 1):
    t.is_(g.status(n, "wsrep_cluster_size"), str(g.NODES), "node %d sees a cluster of %d" % (n, g.NODES))
    t.is_(g.status(n, "wsrep_ready"), "ON", "node %d is ready (Primary, Synced)" % n)

before = {n: g.status_int(n, "wsrep_local_commits") for n in (1, 2)}
spread = [t.post("/model/add", json=t.minimal_model(modelname=t.uniq("galera-spread")))
          for _ in range(12)]
t.ok(all(r.status_code == 201 for r in spread), "12 models added through nginx",
     *[t.describe(r) for r in spread if r.status_code != 201])
for r in spread:
    if r.status_code == 201:
        t.defer(t.http, "DELETE", "/model/" + r.json()["modelid"])
after = {n: g.status_int(n, "wsrep_local_commits") for n in (1, 2)}
t.ok(all(after[n] is not None and before[n] is not None and after[n] > before[n] for n in (1, 2)),
     "nginx spreads them over both pools: node 1 and node 2 each committed some",
     "local commits before %s, after %s" % (before, after))

# What one pool writes, the other reads at once (causal reads).
misses = []
for i in range(10):
    writer, reader = (POOL_A, POOL_B) if i % 2 == 0 else (POOL_B, POOL_A)
    name = t.uniq("galera-ryw")
    st, m = via(writer, "POST", "/model/add", t.minimal_model(modelname=name))
    if st != 201:
        misses.append("add: %s %s" % (st, m))
        continue
    t.defer(t.http, "DELETE", "/model/" + m["modelid"])
    st, got = via(reader, "GET", "/model/" + m["modelid"])
    if st != 200 or got.get("modelname") != name:
        misses.append("read back through the other pool: %s %s" % (st, got))
t.ok(not misses, "a model added through one pool is read through the other at once (10 times)",
     *misses)

# ---- certification conflicts ------------------------------------------------

model = t.add_model(t.minimal_model(modelname=t.uniq("galera-conflict")),
                    "setup: a model both pools change at once")
path = "/model/" + model["modelid"]
conflicts_before = sum(g.status_int(n, "wsrep_local_cert_failures") or 0 for n in (1, 2)) + \
    sum(g.status_int(n, "wsrep_local_bf_aborts") or 0 for n in (1, 2))
results = []
start = threading.Barrier(2)


def patcher(label, sock):
    start.wait()
    for i in range(40):
        name = "galera-%s-%d" % (label, i)
        st, body = via(sock, "PATCH", path, {"modelname": name})
        results.append((st, name, body))


threads = [threading.Thread(target=patcher, args=(label, sock))
           for label, sock in (("a", POOL_A), ("b", POOL_B))]
for th in threads:
    th.start()
for th in threads:
    th.join()
conflicts = sum(g.status_int(n, "wsrep_local_cert_failures") or 0 for n in (1, 2)) + \
    sum(g.status_int(n, "wsrep_local_bf_aborts") or 0 for n in (1, 2)) - conflicts_before
statuses = sorted({st for st, _, _ in results})
t.note("80 concurrent PATCHes through both pools: statuses %s, %d answered 503, %d conflicts "
       "counted by the nodes (cert failures + brute-force aborts)"
       % (statuses, sum(1 for st, _, _ in results if st == 503), conflicts))
t.ok(set(statuses) <= {200, 503}, "every concurrent PATCH is answered 200 or 503, none 500",
     *["%s %s" % (st, body) for st, _, body in results if st not in (200, 503)][:5])
refused = [body for st, _, body in results if st == 503]
t.ok(all(b and "try again" in b.get("detail", "") for b in refused),
     "a 503 tells the client to try again", *[str(b) for b in refused[:3]])
acked = {name for st, name, _ in results if st == 200}
stored = {n: g.sql(n, "SELECT modelname FROM models WHERE modelid = '%s'" % model["modelid"], DB)
          for n in (1, 2, 3)}
names = {n: rows[0][0] if rows else None for n, rows in stored.items()}
t.ok(len(set(names.values())) == 1 and names[1] in acked,
     "all nodes store the same name, one whose PATCH was answered 200", "stored: %s" % names)
st, got = via(POOL_A, "GET", path)
t.is_((st, got and got.get("modelname")), (200, names[1]), "GET answers the stored name")

# ---- concurrent uploads of one file name to one model ------------------------

# Both pools pick the same next version and the same stored name at once:
# the loser must neither overwrite the winner's file in the shared store
# nor delete it when its own COMMIT fails.
ucodes, bad, vers = [], [], []
for rnd in range(3):
    up = t.add_model(t.minimal_model(modelname=t.uniq("galera-upload")),
                     "setup: a model both pools upload to at once (round %d)" % (rnd + 1))
    blobs = [pickle.dumps({"upload": i, "pad": "x" * (1000 + i)}, protocol=4) for i in range(8)]
    uploads = [None] * len(blobs)
    go = threading.Barrier(len(blobs))

    def uploader(i):
        import requests
        with requests.Session() as s:
            go.wait()
            uploads[i] = s.post(t.BASE_URL + "/model/%s/upload" % up["modelid"], timeout=60,
                                files={"file": ("model.pkl", blobs[i]),
                                       "file_kind": (None, "model")},
                                headers={"Authorization": "Bearer " + t.TOKEN} if t.TOKEN else {})

    threads = [threading.Thread(target=uploader, args=(i,)) for i in range(len(blobs))]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    ucodes += [u.status_code for u in uploads]
    for i, u in enumerate(uploads):
        if u.status_code != 201:
            continue
        v = u.json().get("version")
        d = t.get("/model/%s/files/model" % up["modelid"], params={"version": v})
        if d.status_code != 200 or d.content != blobs[i]:
            bad.append("round %d, version %s: %s, %d bytes, expected the %d bytes of upload %d"
                       % (rnd + 1, v, d.status_code, len(d.content), len(blobs[i]), i))
    got = sorted(u.json().get("version") for u in uploads if u.status_code == 201)
    if got != list(range(1, len(got) + 1)):
        vers.append("round %d: versions %s" % (rnd + 1, got))
t.note("3 x 8 concurrent uploads of model.pkl: statuses %s"
       % {c: ucodes.count(c) for c in sorted(set(ucodes))})
t.ok(set(ucodes) <= {201, 503}, "concurrent uploads through both pools answer 201 or 503",
     *[c for c in ucodes if c not in (201, 503)][:3])
t.ok(not bad, "each acknowledged upload's version downloads the bytes that upload sent", *bad)
t.ok(not vers, "the acknowledged uploads of each model took distinct versions 1..n", *vers)

# ---- SIGKILL of node 2 under write load --------------------------------------

prefix = t.uniq("galera-kill") + "-"
replies = []
stop = threading.Event()
killed_at = [None]


def writer(k):
    import requests
    s = requests.Session()
    i = 0
    while not stop.is_set():
        i += 1
        body = t.minimal_model(modelname="%s%d-%d" % (prefix, k, i))
        sent = time.monotonic()
        try:
            r = s.post(t.BASE_URL + "/model/add", json=body, timeout=60,
                       headers={"Authorization": "Bearer " + t.TOKEN} if t.TOKEN else {})
            mid = r.json().get("modelid") if 200 <= r.status_code < 300 else None
            replies.append((r.status_code, mid, sent, time.monotonic(), r.text[:200]))
        except Exception as e:  # no answer: not an acknowledgement either
            replies.append((None, None, sent, time.monotonic(), repr(e)[:200]))


writers = [threading.Thread(target=writer, args=(k,)) for k in range(6)]
for th in writers:
    th.start()
time.sleep(3)
pid2 = g.kill(2)
killed_at[0] = time.monotonic()
t.ok(pid2, "node 2 (pid %s, the second pool's database) killed with SIGKILL under write load" % pid2)
evicted = g.wait_for(lambda: g.status(1, "wsrep_cluster_size") == "2", 40)
t.ok(evicted, "node 1 and node 3 go on as a cluster of 2 (%.1f s after the kill)"
     % (time.monotonic() - killed_at[0]))
time.sleep(4)
stop.set()
for th in writers:
    th.join()

codes = {}
for st, _, _, _, _ in replies:
    codes[st] = codes.get(st, 0) + 1
t.note("replies by status: %s" % codes)
acked = {mid for st, mid, _, _, _ in replies if st is not None and 200 <= st < 300}
t.ok(set(codes) <= {201, 503, None}, "every write is answered 201 or 503 (or not at all), never 500",
     *["%s %s" % (st, text) for st, _, _, _, text in replies if st not in (201, 503, None)][:5])
after_kill = [1 for st, _, sent, _, _ in replies if st == 201 and sent > killed_at[0]]
t.ok(len(after_kill) > 0, "writes sent after the kill are still acknowledged (%d) through node 1's pool"
     % len(after_kill))
t.ok(len(acked) > 20, "the clients got many acknowledgements (%d)" % len(acked))
for n in (1, 3):
    have = ids_on(n, prefix)
    missing = acked - (have or set())
    t.ok(have is not None and not missing,
         "node %d has every model whose POST was acknowledged (%d)" % (n, len(acked)),
         "missing: %s" % sorted(missing)[:10])
t.is_(ids_on(1, prefix), ids_on(3, prefix), "node 1 and node 3 hold the same models")
st, _ = via(POOL_B, "POST", "/model/add", t.minimal_model(modelname=prefix + "b"))
t.is_(st, 503, "the pool whose node is gone answers 503")

# ---- node 1 alone: not a Primary Component ----------------------------------

g.kill(3)
alone = g.wait_for(lambda: g.status(1, "wsrep_cluster_status") not in (None, "Primary"), 40)
t.ok(alone, "with node 3 killed too, node 1 is no longer Primary (%s)"
     % g.status(1, "wsrep_cluster_status"))
any_id = next(iter(acked)) if acked else model["modelid"]
for label, method, p, body in (("POST /model/add", "POST", "/model/add",
                                t.minimal_model(modelname=prefix + "alone")),
                               ("GET /model/{id}", "GET", "/model/" + any_id, None)):
    st, got = via(POOL_A, method, p, body)
    t.is_(st, 503, "%s through node 1's pool answers 503, not a stale or lost answer" % label)
r = t.post("/model/add", json=t.minimal_model(modelname=prefix + "nginx"))
t.is_(r.status_code, 503, "POST /model/add through nginx answers 503")
rows = g.sql(1, "SET SESSION wsrep_dirty_reads = ON; SELECT COUNT(*) FROM models "
             "WHERE modelname IN ('%salone', '%snginx')" % (prefix, prefix), DB)
t.is_(rows and rows[0][0], "0", "nothing of those writes is stored on node 1")
t.done()
