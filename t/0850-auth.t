#!/usr/bin/python3
# Bearer tokens: 401 for a missing, malformed, unknown, expired or revoked
# token (revocation seen by every worker within a second), 403 for a scope
# that does not allow the route, /health open, the SQL procedures and
# "mlc token", the per-token rate limit (on a second mlc-api of its own,
# since the shared instance runs without one), refusing auth off on a
# non-loopback address, and the permissions of the sockets.
import hashlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import fcgi
import mlctap as t

t.need_auth("MLC_DB_SOCKET", "MLC_DB_USER", "MLC_DB_NAME", "MLC_VAR", "MLC_ROOT")
root, var = os.environ["MLC_ROOT"], os.environ["MLC_VAR"]
api_bin = os.environ.get("MLC_API_BIN") or os.path.join(root, "app", "mlc-api")
WWW = "Bearer realm=\"mlconnector\""


def unauthorized(resp, name, error="invalid_token", detail=None):
    body = t.is_error(resp, 401, name)
    want = WWW + (", error=\"%s\"" % error if error else "")
    t.is_(resp.headers.get("WWW-Authenticate"), want, name + ": WWW-Authenticate says " + want)
    if detail:
        t.like(body.get("detail", ""), detail, name + ": the detail says why")


def hammer(path, token, n=24):
    """The statuses of n requests (over the pooled connections nginx spreads
    over every worker)."""
    return sorted({t.get(path, token=token).status_code for _ in range(n)})


# ---- 401 -----------------------------------------------------------------

resp = t.get("/health", token=None)
t.is_status(resp, 200, "GET /health needs no token")
t.is_status(t.get("/health", token="nonsense"), 200, "GET /health ignores a bad token")

unauthorized(t.get("/model/all", token=None), "no Authorization header", error=None,
             detail="Authorization: Bearer")
unauthorized(t.get("/model/all", headers={"Authorization": "Basic dXNlcjpwYXNz"}),
             "another scheme (Basic)", error=None)
unauthorized(t.get("/model/all", headers={"Authorization": "Bearer"}), "Bearer without a token",
             detail="malformed")
unauthorized(t.get("/model/all", token="mlc_123"), "a token of the wrong length", detail="malformed")
unauthorized(t.get("/model/all", token="' OR '1'='1"), "SQL as the token", detail="malformed")
unknown = "mlc_" + "0" * 64
unauthorized(t.get("/model/all", token=unknown), "an unknown token", detail="unknown")
unauthorized(t.post("/model/add", token=None, json=t.minimal_model()),
             "a write without a token", error=None)
resp = t.get("/model/00000000-0000-4000-8000-000000000000", token=None)
t.is_status(resp, 401, "an unknown model id without a token is 401, not 404 (nothing leaks)")
resp = t.post("/model/add", token=None, data=b"{not json", headers={"Content-Type": "application/json"})
t.is_status(resp, 401, "a broken body without a token is 401, not 422 (the body is not read)")

# Expired: the database's clock decides.
_, tok_exp = t.make_token(t.uniq("expiring"), "read", 1)
t.is_status(t.get("/model/all", token=tok_exp), 200, "a token expiring tomorrow works")
t.db_rows("UPDATE tokens SET expires_at = UTC_TIMESTAMP(6) - INTERVAL 1 SECOND "
          "WHERE token_hash = SHA2(%s, 256)", tok_exp)
time.sleep(1.0)
t.is_(hammer("/model/all", tok_exp), [401], "once its expiry is past (database time), every worker answers 401")
unauthorized(t.get("/model/all", token=tok_exp), "an expired token", detail="expired")

# Revoked: seen by every worker within a second.
owner = t.uniq("revoked")
rid, tok_rev = t.make_token(owner, "read")
t.is_(hammer("/model/all", tok_rev), [200], "a fresh read token works on every worker")
revoked_row = t.revoke_token(tok_rev)
t.is_([r.get("id") for r in revoked_row], [rid], "mlc_token_revoke by token answers the token's row")
time.sleep(1.0)
t.is_(hammer("/model/all", tok_rev), [401], "one second after revocation every worker answers 401")
unauthorized(t.get("/model/all", token=tok_rev), "a revoked token", detail="revoked")

# ---- 403 -------------------------------------------------------------------

_, tok_read = t.make_token(t.uniq("reader"), "read")
_, tok_write = t.make_token(t.uniq("writer"), "write")
t.is_status(t.get("/model/all", token=tok_read), 200, "a read token reads")
resp = t.post("/model/add", token=tok_read, json=t.minimal_model())
t.is_error(resp, 403, "a read token may not POST /model/add")
t.is_(resp.headers.get("WWW-Authenticate"),
      WWW + ", error=\"insufficient_scope\", scope=\"write\"", "the 403 names the scope needed")
resp = t.post("/deployment/nope/predict", token=tok_read, json={"data": [1]})
t.is_status(resp, 403, "a read token may not predict (a prediction records an operation)")
resp = t.post("/model/add", token=tok_write, json=t.minimal_model())
t.is_status(resp, 201, "a write token may register a model")
if resp.status_code == 201:
    t.defer(t.delete, "/model/" + resp.json()["modelid"])

# ---- the token table, the procedures and mlc token ---------------------------

cols = [r["Field"] for r in t.db_rows("SHOW COLUMNS FROM token_list")]
t.ok("token_hash" not in cols and "token" not in cols, "the token_list view has no token or hash", cols)
row = t.db_rows("SELECT token_hash, ownerid, scope, last_used_at FROM tokens WHERE id = %s", rid)[0]
t.is_(row["token_hash"], hashlib.sha256(tok_rev.encode()).hexdigest(),
      "the table holds the token's SHA-256, hex")
t.ok(tok_rev not in json.dumps(t.db_rows("SELECT * FROM tokens"), default=str),
     "no column holds the token itself")
t.ok(row["last_used_at"] is not None, "a token's use is recorded in last_used_at")
t.like(tok_rev, r"^mlc_[0-9a-f]{64}$", "a token is mlc_ and 64 hex digits (256 random bits)")
for args, why in ((("x", "root", None), "an unknown scope"), (("", "read", None), "an empty owner"),
                  (("x", "read", 0), "zero days")):
    try:
        t.db_rows("CALL mlc_token_add(%s, %s, %s)", *args)
        t.ok(False, "mlc_token_add refuses " + why)
    except Exception as e:
        t.ok("45000" in str(e) or "must" in str(e), "mlc_token_add refuses " + why, str(e))
try:
    t.revoke_token(987654321)
    t.ok(False, "mlc_token_revoke of an unknown id is an error")
except Exception as e:
    t.like(str(e), "no such token", "mlc_token_revoke of an unknown id is an error")


def mlc(*args):
    return subprocess.run([os.path.join(root, "scripts", "mlc")] + list(args),
                          capture_output=True, text=True, timeout=120)


owner_cli = t.uniq("cli")
out = mlc("token", "add", owner_cli, "--scope", "read", "--expires", "3")
cli_token = out.stdout.strip().splitlines()[-1] if out.stdout.strip() else ""
t.like(cli_token, r"^mlc_[0-9a-f]{64}$", "mlc token add prints the token alone on the last line")
t.like(out.stderr, "owner '%s', scope read, expires 20" % owner_cli, "and says whose it is and when it expires")
t.is_status(t.get("/model/all", token=cli_token), 200, "the printed token works")
out = mlc("token", "list")
t.ok(out.returncode == 0 and owner_cli in out.stdout and "read" in out.stdout,
     "mlc token list shows the token's owner and scope", out.stdout[-2000:], out.stderr)
secret_bits = [tok_rev, tok_read, tok_write, cli_token, hashlib.sha256(cli_token.encode()).hexdigest()]
t.ok(not any(s in out.stdout for s in secret_bits), "mlc token list shows no token and no hash")
t.is_(mlc("token", "add", owner_cli, "--scope", "root").returncode, 1, "mlc token add refuses an unknown scope")
cli_id = t.db_rows("SELECT id FROM tokens WHERE token_hash = SHA2(%s, 256)", cli_token)[0]["id"]
out = mlc("token", "revoke", str(cli_id))
t.is_(out.returncode, 0, "mlc token revoke ID succeeds", out.stderr)
time.sleep(1.0)
t.is_status(t.get("/model/all", token=cli_token), 401, "a token revoked by id is refused")
weird = "o'wner\\\"; DROP TABLE tokens; --"
out = mlc("token", "add", weird, "--scope", "read")
t.is_(t.db_rows("SELECT ownerid FROM tokens WHERE ownerid = %s", weird), [{"ownerid": weird}],
      "an owner with quotes and backslashes is stored literally by mlc token add", out.stderr)

# ---- the rate limit, on a second mlc-api with MLC_RATE_LIMIT=2, burst 3 ------

sock2 = os.path.join(var, "run", "t0850.sock")
log = open(os.path.join(var, "log", "t0850-mlc-api.log"), "ab")
env = dict(os.environ, MLC_SOCKET=sock2, MLC_WORKERS="2", MLC_RATE_LIMIT="2", MLC_RATE_BURST="3")
master = subprocess.Popen([api_bin, "-c", os.environ["MLC_CONF"]], env=env, stdout=log, stderr=log)
try:
    for _ in range(200):
        if os.path.exists(sock2):
            break
        time.sleep(0.05)
    _, tok_rl = t.make_token(t.uniq("limited"), "read")
    replies = [fcgi.request(sock2, "/model/all", token=tok_rl, query="limit=1") for _ in range(12)]
    statuses = [r[0] for r in replies]
    t.ok(statuses.count(200) in (3, 4) and statuses.count(429) == 12 - statuses.count(200),
         "12 quick requests: the burst of 3 (and maybe one refill) pass, the rest get 429, "
         "whichever of the 2 workers answers", statuses)
    limited = [r for r in replies if r[0] == 429]
    if limited:
        st, headers, body = limited[0]
        t.like(headers.get("retry-after", ""), r"^[1-9][0-9]*$", "a 429 carries Retry-After in whole seconds")
        t.like(json.loads(body).get("detail", ""), "too many requests", "a 429 body is {\"detail\": ...}")
    else:
        t.ok(False, "a 429 carries Retry-After in whole seconds")
        t.ok(False, "a 429 body is {\"detail\": ...}")
    _, tok_other = t.make_token(t.uniq("unlimited"), "read")
    t.is_(fcgi.request(sock2, "/model/all", token=tok_other, query="limit=1")[0], 200,
          "another token has a bucket of its own")
    t.is_(fcgi.request(sock2, "/health", token=None)[0], 200, "/health is not limited")
    time.sleep(1.6)
    t.is_(fcgi.request(sock2, "/model/all", token=tok_rl, query="limit=1")[0], 200,
          "after a pause the token may go on")
finally:
    master.terminate()
    master.wait()

# ---- refusing to serve without auth where others can reach it -----------------

for host in ("0.0.0.0", "192.0.2.1"):
    env = dict(os.environ, MLC_SOCKET=os.path.join(var, "run", "t0850-off.sock"), MLC_AUTH="off",
               MLC_HOST=host, MLC_WORKERS="1")
    p = subprocess.run([api_bin, "-c", os.environ["MLC_CONF"]], env=env, capture_output=True,
                       text=True, timeout=30)
    t.ok(p.returncode != 0 and "MLC_AUTH=off" in p.stderr and "loopback" in p.stderr,
         "mlc-api refuses MLC_AUTH=off with MLC_HOST=%s, saying why" % host, p.returncode, p.stderr)
p = subprocess.run([api_bin, "-c", os.environ["MLC_CONF"]], capture_output=True, text=True, timeout=30,
                   env=dict(os.environ, MLC_AUTH="maybe", MLC_SOCKET=os.path.join(var, "run", "t0850-x.sock")))
t.ok(p.returncode != 0 and "on or off" in p.stderr, "mlc-api refuses MLC_AUTH=maybe", p.stderr)
with tempfile.TemporaryDirectory() as d:
    p = subprocess.run([os.path.join(root, "scripts", "mlc"), "up"], capture_output=True, text=True,
                       timeout=60, env=dict(os.environ, MLC_AUTH="off", MLC_HOST="0.0.0.0", MLC_VAR=d,
                                            MLC_RUN=d + "/run", MLC_LOG_DIR=d + "/log",
                                            MLC_SOCKET=d + "/run/s.sock", MLC_DB_SOCKET=d + "/run/db.sock"))
    t.ok(p.returncode != 0 and "MLC_AUTH=off" in p.stderr and not os.path.exists(d + "/run"),
         "mlc up refuses MLC_AUTH=off with MLC_HOST=0.0.0.0 before starting anything", p.stderr)

# ---- sockets ------------------------------------------------------------------

sock_path = os.environ.get("MLC_SOCKET") or os.path.join(var, "api", "mlc-api.sock")
slow_path = sock_path[:-5] + "-slow.sock" if sock_path.endswith(".sock") else sock_path + "-slow"
for path, which in ((sock_path, "fast"), (slow_path, "slow")):
    st = os.stat(path)
    t.is_(oct(st.st_mode & 0o777), oct(0o660), "the %s pool's FastCGI socket is mode 0660 (not world-accessible)"
          % which)
    dst = os.stat(os.path.dirname(path))
    t.is_(oct(dst.st_mode & 0o777), oct(0o750), "its directory is mode 0750")
    t.is_(st.st_gid, dst.st_gid, "the socket has its directory's group (nginx's workers')")
t.is_(t.get("/model/all", params={"limit": 1}).status_code, 200, "nginx's workers still reach the API through it")

# A runtime socket that is a symlink (or leads to a socket bound elsewhere)
# is refused by the gateway without sending it anything.
model = t.add_model(t.minimal_model(), "setup: a model for a fake deployment")
elsewhere = os.path.join(var, "t0850-elsewhere.sock")
srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
if os.path.lexists(elsewhere):
    os.unlink(elsewhere)
srv.bind(elsewhere)
srv.listen(8)
srv.settimeout(0.5)
def fake_deployment(dep, kind):
    """A 'deployed' row whose runtime socket is a symlink or a hard link to
    the socket `elsewhere`.  (The spooler may notice that no runtime runs
    and fail the row: the caller then sets it up again.)"""
    ddir = os.path.join(var, "deployments", dep)
    os.makedirs(ddir, exist_ok=True)
    sock = os.path.join(ddir, "runtime.sock")
    if not os.path.lexists(sock):
        (os.symlink if kind == "symlink" else os.link)(elsewhere, sock)
    t.db_rows("REPLACE INTO deployments (deployment_id, modelid, model_version, ownerid, status, "
              "desired, endpoint, created_at, updated_at) VALUES (%s, %s, 1, 'admin', 'deployed', "
              "'running', %s, UTC_TIMESTAMP(6), UTC_TIMESTAMP(6))", dep, model["modelid"], "unix:" + sock)


for kind in ("symlink", "hardlink"):
    dep = t.uniq("t0850-" + kind)
    t.defer(subprocess.run, ["rm", "-rf", os.path.join(var, "deployments", dep)])
    t.defer(t.db_rows, "DELETE FROM deployments WHERE deployment_id = %s", dep)
    for _ in range(5):
        fake_deployment(dep, kind)
        resp = t.post("/deployment/%s/predict" % dep, json={"data": [1, 2]})
        if resp.status_code != 409:
            break
    body = t.is_error(resp, 503, "predict through a runtime socket that is a %s to another socket" % kind)
    t.like(body.get("detail", ""), "refusing to connect", "the 503 says the gateway refused to connect")
    t.ok("operationid" not in body, "nothing was sent, so no operation is recorded", body)
    try:
        conn, _ = srv.accept()
        conn.settimeout(2)
        got = conn.recv(100)
        conn.close()
    except socket.timeout:
        got = b""
    t.is_(got, b"", "the socket behind the %s was sent nothing" % kind)
srv.close()
os.unlink(elsewhere)
t.done()
