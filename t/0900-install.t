#!/usr/bin/python3
# "make install": the files it lays out (and "make uninstall" removes), the
# systemd units, the init script, the nginx site, the logrotate file, and
# an installed copy run by its init script against a database of its own:
# migrations through mlc-admin, --version, GET /health with the version,
# log reopening, and the refusal to serve a database that lacks the newest
# migration.
import glob
import grp
import os
import re
import shutil
import socket
import ssl
import stat
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import fcgi
import mlctap as t

t.need_instance("MLC_ROOT", "MLC_DB_SOCKET", "MLC_DB_USER", "MLC_DB_NAME")
root = os.environ["MLC_ROOT"]
VERSION = t.project_version()
MIGRATIONS = sorted(os.path.basename(p) for p in glob.glob(os.path.join(root, "sql", "[0-9][0-9][0-9]-*.sql")))
NEWEST = MIGRATIONS[-1]
NEWEST_N = int(NEWEST[:3])
# The version a database without the newest migration is at (numbers may
# skip: a migration numbered after another branch's).
PREVIOUS_N = int(MIGRATIONS[-2][:3])

tmp = tempfile.mkdtemp(prefix="mlc-t0900.", dir="/tmp")
os.chmod(tmp, 0o755)  # the nginx workers below run as another user
t.defer(shutil.rmtree, tmp, True)


def make(*args):
    return subprocess.run(["make", "-s", "-C", root] + list(args), capture_output=True,
                          text=True, timeout=600)


def files_under(top):
    out = set()
    for d, _, names in os.walk(top):
        for n in names:
            out.add(os.path.relpath(os.path.join(d, n), top))
    return out


def mode(path):
    return "%04o" % stat.S_IMODE(os.stat(path).st_mode)


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


# ---- make install DESTDIR=... prefix=/usr: the layout ---------------------

dest = os.path.join(tmp, "dest")
dirs = ["DESTDIR=" + dest, "prefix=/usr", "sysconfdir=/etc", "localstatedir=/var"]
res = make("install", *dirs)
t.is_(res.returncode, 0, "make install DESTDIR=... prefix=/usr sysconfdir=/etc localstatedir=/var succeeds",
      res.stderr[-3000:])

docs = sorted(os.path.basename(p) for p in glob.glob(os.path.join(root, "docs", "*.md"))) + ["openapi.json"]
mlcpy = sorted(os.path.basename(p) for p in glob.glob(os.path.join(root, "scripts", "mlcpy", "*.py")))
expected = {
    "usr/bin/mlc-api",
    "usr/sbin/mlc-admin",
    "usr/lib/systemd/system/mlc-api.service",
    "usr/lib/systemd/system/mlc-spooler.service",
    "usr/lib/systemd/system/mlc-drift.service",
    "etc/logrotate.d/mlconnector",
    "etc/mlconnector/mlconnector.conf",
    "etc/mlconnector/mlconnector.conf.example",
    "usr/share/mlconnector/init.d/mlconnector",
    "usr/share/mlconnector/nginx/mlconnector-site.conf",
    "usr/share/mlconnector/nginx/mlconnector-locations.conf",
    "usr/share/mlconnector/conf/nginx/mlconnector-locations.conf.in",
    "usr/share/mlconnector/conf/nginx/mlconnector-fastcgi.conf",
    "usr/share/mlconnector/conf/nginx/mlconnector-ui.conf",
    "usr/share/doc/mlconnector/README.md",
    "usr/share/doc/mlconnector/INSTALL",
}
expected |= {"usr/share/mlconnector/scripts/" + s
             for s in ("mlc", "mlc-spooler", "mlc-drift", "mlc-runtime")}
expected |= {"usr/share/mlconnector/scripts/mlcpy/" + m for m in mlcpy}
expected |= {"usr/share/mlconnector/sql/" + m for m in MIGRATIONS}
expected |= {"usr/share/doc/mlconnector/" + d for d in docs}
expected |= {"var/lib/mlconnector/nginx/docs/" + d for d in docs}
got = files_under(dest)
t.is_(sorted(got), sorted(expected), "make install lays out exactly the expected files (%d)" % len(expected),
      "  missing: %s" % sorted(expected - got), "  unexpected: %s" % sorted(got - expected))

D = lambda p: os.path.join(dest, p)  # noqa: E731
executables = ["usr/bin/mlc-api", "usr/sbin/mlc-admin", "usr/share/mlconnector/init.d/mlconnector",
               "usr/share/mlconnector/scripts/mlc", "usr/share/mlconnector/scripts/mlc-spooler",
               "usr/share/mlconnector/scripts/mlc-drift", "usr/share/mlconnector/scripts/mlc-runtime"]
t.is_({p: mode(D(p)) for p in executables if os.path.exists(D(p))}, {p: "0755" for p in executables},
      "the programs and scripts are installed executable (0755)")
t.is_(mode(D("etc/mlconnector/mlconnector.conf")), "0640",
      "the live configuration (it holds the database password) is not world-readable (0640)")
t.is_(mode(D("usr/share/mlconnector/scripts/mlcpy/config.py")), "0644", "the mlcpy modules are 0644")

rendered = ["usr/lib/systemd/system/mlc-api.service", "usr/lib/systemd/system/mlc-spooler.service",
            "usr/lib/systemd/system/mlc-drift.service", "etc/logrotate.d/mlconnector",
            "usr/share/mlconnector/init.d/mlconnector", "usr/share/mlconnector/nginx/mlconnector-site.conf",
            "usr/share/mlconnector/nginx/mlconnector-locations.conf", "usr/sbin/mlc-admin",
            "etc/mlconnector/mlconnector.conf.example"]
left = {}
for p in rendered:
    if os.path.exists(D(p)):
        for n, line in enumerate(read(D(p)).splitlines(), 1):
            if not line.lstrip().startswith("#") and re.search(r"@[A-Za-z_]+@", line):
                left.setdefault(p, []).append("%d: %s" % (n, line))
t.is_(left, {}, "no @placeholder@ is left in the files made from templates")

api_unit = read(D("usr/lib/systemd/system/mlc-api.service"))
t.ok("ExecStart=/usr/bin/mlc-api -c /etc/mlconnector/mlconnector.conf --log /var/lib/mlconnector/log/service/mlc-api.log"
     in api_unit, "mlc-api.service runs /usr/bin/mlc-api with /etc/mlconnector/mlconnector.conf, "
     "logging to /var/lib/mlconnector/log/service/mlc-api.log")
t.ok("ReadWritePaths=-/var/lib/mlconnector" in api_unit and "ProtectSystem=strict" in api_unit
     and "NoNewPrivileges=yes" in api_unit and "User=mlconnector" in api_unit,
     "mlc-api.service: user mlconnector, no new privileges, read-only system but the state directory")
spooler_unit = read(D("usr/lib/systemd/system/mlc-spooler.service"))
t.ok("ExecStart=/usr/bin/python3 /usr/share/mlconnector/scripts/mlc-spooler --log "
     "/var/lib/mlconnector/log/mlc-spooler.log" in spooler_unit
     and "Environment=MLC_CONF=/etc/mlconnector/mlconnector.conf" in spooler_unit,
     "mlc-spooler.service runs the installed spooler with the installed configuration")
t.ok("Delegate=yes" in spooler_unit and "KillMode=process" in spooler_unit
     and not re.search(r"^(User|ProtectControlGroups|ProtectKernelTunables)=", spooler_unit, re.M),
     "mlc-spooler.service: root, Delegate=yes, cgroups writable, KillMode=process (runtimes outlive it)")
drift_unit = read(D("usr/lib/systemd/system/mlc-drift.service"))
t.ok("User=mlconnector" in drift_unit and "MemoryMax=" in drift_unit
     and "NoNewPrivileges=yes" in drift_unit and "/usr/share/mlconnector/scripts/mlc-drift" in drift_unit,
     "mlc-drift.service: unprivileged, memory-capped, runs the installed mlc-drift")
conf_example = read(D("etc/mlconnector/mlconnector.conf.example"))
t.ok(re.search(r"^MLC_VAR=/var/lib/mlconnector$", conf_example, re.M)
     and re.search(r"^MLC_DB_SOCKET=/run/mysqld/mysqld.sock$", conf_example, re.M),
     "the example configuration uses /var/lib/mlconnector and the MariaDB server's socket")
t.ok(re.search(r"^MLC_AUTH=on$", conf_example, re.M), "the installed configuration wants bearer tokens (MLC_AUTH=on)")
site = read(D("usr/share/mlconnector/nginx/mlconnector-site.conf"))
t.ok("server unix:/var/lib/mlconnector/api/mlc-api.sock;" in site
     and "include /usr/share/mlconnector/nginx/mlconnector-locations.conf;" in site
     and "return 308 https://$host$request_uri;" in site and "listen 443 ssl;" in site
     and "ssl_certificate " in site,
     "the nginx site: upstream socket, locations include, HTTP -> HTTPS redirect, TLS certificate lines")
t.ok("include /usr/share/mlconnector/conf/nginx/mlconnector-fastcgi.conf;"
     in read(D("usr/share/mlconnector/nginx/mlconnector-locations.conf")),
     "the installed locations include the installed FastCGI parameters")
locs = read(D("usr/share/mlconnector/nginx/mlconnector-locations.conf"))
t.ok("server unix:/var/lib/mlconnector/api/mlc-api-slow.sock;" in site
     and "limit_conn_zone $binary_remote_addr zone=mlc_slow:10m;" in site
     and "fastcgi_pass mlc_api_slow;" in locs and "limit_conn mlc_slow 16;" in locs
     and "client_body_timeout 65s;" in locs,
     "the site declares the slow pool's upstream and the per-address zone, and the locations use "
     "them with the shipped limits (16 slow requests per address, uploads idle 60 + 5 s)")

# A second install keeps an edited configuration; uninstall removes
# everything else and keeps it.
with open(D("etc/mlconnector/mlconnector.conf"), "a") as f:
    f.write("MLC_WORKERS=3\n")
res = make("install", *dirs)
t.ok(res.returncode == 0 and read(D("etc/mlconnector/mlconnector.conf")).endswith("MLC_WORKERS=3\n"),
     "make install again leaves an edited mlconnector.conf alone", res.stderr[-2000:])
res = make("uninstall", *dirs)
t.is_(res.returncode, 0, "make uninstall with the same directories succeeds", res.stderr[-3000:])
t.is_(sorted(files_under(dest)), ["etc/mlconnector/mlconnector.conf"],
      "make uninstall removes every installed file but the edited configuration")
os.unlink(D("etc/mlconnector/mlconnector.conf"))
make("install", *dirs)
make("uninstall", *dirs)
t.is_(sorted(files_under(dest)), [], "an unedited configuration is removed by make uninstall as well")

# ---- an installed copy in a prefix of its own -----------------------------

inst = os.path.join(tmp, "i")
res = make("install", "prefix=" + inst)
t.is_(res.returncode, 0, "make install prefix=<dir> succeeds", res.stderr[-3000:])
units = sorted(glob.glob(os.path.join(inst, "lib", "systemd", "system", "*.service")))
analyze = shutil.which("systemd-analyze")
if analyze:
    for u in units:
        r = subprocess.run([analyze, "verify", u], capture_output=True, text=True, timeout=60)
        t.ok(r.returncode == 0 and not r.stderr.strip() and not r.stdout.strip(),
             "systemd-analyze verify %s: no error and no warning" % os.path.basename(u),
             r.stdout + r.stderr)
else:
    t.skip("systemd-analyze verify the units", "systemd-analyze is not installed")

initd = os.path.join(inst, "share", "mlconnector", "init.d", "mlconnector")
r = subprocess.run(["sh", "-n", initd], capture_output=True, text=True)
t.ok(r.returncode == 0 and not r.stderr, "the init script passes sh -n", r.stderr)
t.like(read(initd), r"(?s)### BEGIN INIT INFO\n# Provides: +mlconnector\n.*# Default-Start: +2 3 4 5\n"
       r".*### END INIT INFO", "the init script has LSB headers")

api = os.path.join(inst, "bin", "mlc-api")
r = subprocess.run([api, "--version"], capture_output=True, text=True)
t.ok(r.returncode == 0 and r.stdout.startswith("mlc-api %s " % VERSION)
     and "database schema version %d" % NEWEST_N in r.stdout,
     "mlc-api --version prints the version of configure.ac and the schema version it needs "
     "(%s, %d)" % (VERSION, NEWEST_N), r.stdout + r.stderr)

var = os.path.join(inst, "var", "lib", "mlconnector")
conf = os.path.join(inst, "etc", "mlconnector", "mlconnector.conf")
db_name = "mlc_t0900_%d" % os.getpid()
why = None
res = t.db_admin("CREATE DATABASE `%s` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin; "
                 "GRANT ALL ON `%s`.* TO '%s'@'localhost'" % (db_name, db_name, os.environ["MLC_DB_USER"]))
if res.returncode != 0:
    why = "cannot create a database as MariaDB's root: " + res.stderr.strip()
else:
    t.defer(t.db_admin, "DROP DATABASE IF EXISTS `%s`" % db_name)
if os.geteuid() != 0:
    why = why or "the init script starts the spooler as root: run as root"
if not shutil.which("start-stop-daemon"):
    why = why or "start-stop-daemon (dpkg) is missing"
if why:
    t.skip("an installed copy runs under its init script", why)
    t.done()

with open(conf, "w") as f:
    f.write("MLC_VAR=%s\nMLC_DB_SOCKET=%s\nMLC_DB_NAME=%s\nMLC_DB_USER=%s\nMLC_DB_PASSWORD=%s\n"
            "MLC_WORKERS=2\nMLC_MAX_BODY=1048576\nMLC_MAX_UPLOAD=536870912\n"
            "MLC_HOST=127.0.0.1\nMLC_PORT=8090\n"
            % (var, os.environ["MLC_DB_SOCKET"], db_name, os.environ["MLC_DB_USER"],
               os.environ.get("MLC_DB_PASSWORD", "")))
for d in ("run", "log", "artifacts", "spool/tmp", "spool/new", "spool/cur"):
    os.makedirs(os.path.join(var, d), exist_ok=True)
# The installed copy runs with its own configuration only: none of the
# instance's MLC_* variables, which would override the file.
env = {k: v for k, v in os.environ.items() if not k.startswith(("MLC_", "ASAN_", "UBSAN_"))}
env.update(MLC_USER="root", MLC_GROUP="root")
sock = os.path.join(var, "api", "mlc-api.sock")


def run(*argv):
    return subprocess.run(list(argv), capture_output=True, text=True, env=env, timeout=180)


def init(action):
    return run("sh", initd, action)


admin = os.path.join(inst, "sbin", "mlc-admin")
r = run(admin, "up")
t.ok(r.returncode != 0 and "source checkout" in r.stderr,
     "mlc-admin refuses the commands of a source checkout (up)", r.stderr)
r = run(admin, "migrate")
t.is_(r.returncode, 0, "mlc-admin migrate applies the installed migrations to an empty database", r.stderr)
t.is_([row["version"] for row in t.db_rows("SELECT version FROM `%s`.schema_version ORDER BY version"
                                            % db_name)],
      [int(m[:3]) for m in MIGRATIONS], "schema_version records every migration of sql/")
r = run(admin, "nginx-snippet")
t.ok(r.returncode == 0 and "alias %s/artifacts/;" % var in r.stdout
     and "include %s/share/mlconnector/conf/nginx/mlconnector-fastcgi.conf;" % inst in r.stdout,
     "mlc-admin nginx-snippet renders the locations for the installed configuration", r.stderr)

r = init("start")
t.is_(r.returncode, 0, "the init script starts the stack", r.stdout + r.stderr)
t.defer(init, "stop")
r = init("status")
t.ok(r.returncode == 0 and all("%s: running" % n in r.stdout for n in ("mlc-api", "mlc-spooler", "mlc-drift")),
     "init script status: mlc-api, mlc-spooler and mlc-drift are running", r.stdout + r.stderr)


def pid_of(name):
    try:
        with open(os.path.join(var, "run", name + ".pid")) as f:
            return int(f.read())
    except (OSError, ValueError):
        return None


def alive(pid):
    """Running, and not a zombie (nothing may reap an orphan here)."""
    try:
        with open("/proc/%d/status" % pid) as f:
            return "\nState:\tZ" not in f.read()
    except (OSError, TypeError):
        return False


def health():
    try:
        status, _, body = fcgi.request(sock, "/health")
        return status, body
    except OSError as e:
        return None, str(e).encode()


status, body = health()
t.is_(status, 200, "the installed mlc-api answers GET /health on its socket", body)
t.like(body.decode(errors="replace"), r'"version":\s*"%s"' % re.escape(VERSION),
       "GET /health names the version %s" % VERSION)



def deploy_installed(base):
    """A model deployed through the installed stack: the installed spooler
    runs the installed mlc-runtime in its sandbox (the scripts directory
    it binds is the installed one), and it predicts."""
    import pickle
    import requests
    import urllib3
    import mlcmodels as mm
    urllib3.disable_warnings()
    s = requests.Session()
    s.verify, s.trust_env = False, False  # (a CA bundle from the environment would win)
    # The installed configuration turns auth on: a token made with
    # mlc-admin, as INSTALL says.
    r = run(admin, "token", "add", "t0900", "--scope", "admin")
    token = (r.stdout.strip().splitlines() or [""])[-1]
    t.ok(re.match(r"^mlc_[0-9a-f]{64}$", token), "mlc-admin token add makes a token for the installed stack",
         r.stdout, r.stderr)
    s.headers["Authorization"] = "Bearer " + token
    t.is_(s.get(base + "/model/all", params={"limit": 1}).status_code, 200, "the installed API takes it")
    t.is_(s.get(base + "/model/all", params={"limit": 1}, headers={"Authorization": None}).status_code,
          401, "and wants one")
    reg, X, y, names = mm.diabetes_ridge()
    r = s.post(base + "/model/add", json=t.minimal_model(modelkind="regression",
                                                         featurelist=mm.featurelist(names)))
    model = r.json().get("modelid") if r.status_code == 201 else None
    r = s.post(base + "/model/%s/upload" % model,
               files={"file": ("model.pkl", pickle.dumps(reg, protocol=4)), "file_kind": (None, "model")})
    t.is_status(r, 201, "a model registered and uploaded through the installed stack")
    r = s.post(base + "/deployment/add", json={
        "modelid": model, "ownerid": "t0900", "deployment_id": "t0900", "inference_data": 0,
        "placement": {"clusterID": "*", "node": "*", "continuum": False}})
    t.is_status(r, 201, "POST /deployment/add on the installed stack answers 201")
    st, end = {}, time.monotonic() + 90
    while time.monotonic() < end and st.get("status") not in ("deployed", "failed"):
        time.sleep(0.2)
        r = s.get(base + "/deployment/get/status/t0900")
        st = r.json() if r.status_code == 200 else {}
    t.is_(st.get("status"), "deployed", "the installed spooler starts the installed runtime in its sandbox",
          st, read(os.path.join(var, "log", "mlc-spooler.log"))[-3000:])
    r = s.post(base + "/deployment/t0900/predict", json={"data": X[:2].tolist()})
    pred = (r.json() or {}).get("prediction") if r.status_code == 200 else None
    t.ok(pred is not None and max(abs(a - b) for a, b in zip(pred, reg.predict(X[:2]))) < 1e-9,
         "the installed runtime predicts what the model predicts in-process", r.status_code, r.text[:500])
    # The runtime outlives the init script's stop (as it outlives a spooler
    # restart); mlc-admin stop-runtimes ends it.
    r = init("stop")
    t.ok(r.returncode == 0 and os.path.isfile(os.path.join(var, "deployments", "t0900", "runtime.pid")),
         "init script stop leaves the runtime serving", r.stdout + r.stderr)
    runtime = int(read(os.path.join(var, "deployments", "t0900", "runtime.pid")))
    t.ok(alive(runtime), "the runtime is still running after the stack stopped")
    r = run(admin, "stop-runtimes")
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and alive(runtime):
        time.sleep(0.1)
    t.ok(r.returncode == 0 and not alive(runtime), "mlc-admin stop-runtimes stops it", r.stdout + r.stderr)
    r = init("start")
    t.is_(r.returncode, 0, "the init script starts the stack again", r.stdout + r.stderr)
    st, end = {}, time.monotonic() + 90
    while time.monotonic() < end:
        r = s.post(base + "/deployment/t0900/predict", json={"data": X[:1].tolist()})
        if r.status_code == 200:
            break
        time.sleep(0.2)
    t.is_status(r, 200, "after the start the spooler resumes the deployment and it predicts again")
    s.delete(base + "/deployment/t0900", timeout=30)


# nginx with the installed site file: TLS, the redirect, the locations.
nginx, openssl = shutil.which("nginx") or "/usr/sbin/nginx", shutil.which("openssl")
if os.access(nginx, os.X_OK) and openssl:
    ng = os.path.join(tmp, "nginx")
    os.makedirs(os.path.join(ng, "tmp"))
    r = subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                        "-subj", "/CN=mlc.example.org", "-keyout", os.path.join(ng, "key.pem"),
                        "-out", os.path.join(ng, "cert.pem")], capture_output=True, text=True)

    def free_port():
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        return port

    http_port, https_port = free_port(), free_port()
    text = read(os.path.join(inst, "share", "mlconnector", "nginx", "mlconnector-site.conf"))
    text = (text.replace("listen 80;", "listen 127.0.0.1:%d;" % http_port)
            .replace("listen 443 ssl;", "listen 127.0.0.1:%d ssl;" % https_port)
            .replace("listen [::]:80;", "").replace("listen [::]:443 ssl;", "")
            .replace("/etc/ssl/certs/mlc.example.org.pem", os.path.join(ng, "cert.pem"))
            .replace("/etc/ssl/private/mlc.example.org.key", os.path.join(ng, "key.pem"))
            .replace("/var/log/nginx/", ng + "/"))
    with open(os.path.join(ng, "site.conf"), "w") as f:
        f.write(text)
    with open(os.path.join(ng, "nginx.conf"), "w") as f:
        # nginx's workers reach the socket through api/'s group (MLC_WEB_GROUP),
        # as www-data does in production.
        f.write("user nobody %s;\n" % grp.getgrgid(os.stat(os.path.join(var, "api")).st_gid).gr_name)
        f.write("pid %s/nginx.pid;\nerror_log %s/error.log;\nevents {}\nhttp {\n"
                "  client_body_temp_path %s/tmp/body;\n  fastcgi_temp_path %s/tmp/fastcgi;\n"
                "  proxy_temp_path %s/tmp/proxy;\n  uwsgi_temp_path %s/tmp/uwsgi;\n"
                "  scgi_temp_path %s/tmp/scgi;\n  access_log off;\n  include %s/site.conf;\n}\n"
                % ((ng,) * 8))
    args = [nginx, "-p", ng, "-c", os.path.join(ng, "nginx.conf"), "-e", os.path.join(ng, "error.log")]
    r = subprocess.run(args + ["-t"], capture_output=True, text=True)
    t.is_(r.returncode, 0, "nginx -t accepts the installed site file (with a certificate filled in)", r.stderr)
    if r.returncode == 0 and subprocess.run(args, capture_output=True).returncode == 0:
        t.defer(subprocess.run, args + ["-s", "quit"])
        time.sleep(0.5)

        class NoRedirect(urllib.request.HTTPRedirectHandler):
            def redirect_request(self, *a, **kw):
                return None

        try:
            urllib.request.build_opener(NoRedirect).open(
                "http://127.0.0.1:%d/model/all?limit=1" % http_port, timeout=10)
            code, location = 200, None
        except urllib.error.HTTPError as e:
            code, location = e.code, e.headers.get("Location")
        t.is_((code, location), (308, "https://127.0.0.1/model/all?limit=1"),
              "plain HTTP answers 308 to the same path on https://")
        ctx = ssl.create_default_context()
        ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
        with urllib.request.urlopen("https://127.0.0.1:%d/health" % https_port, context=ctx,
                                    timeout=10) as resp:
            got = resp.status, resp.read().decode()
        t.ok(got[0] == 200 and '"version":"%s"' % VERSION in got[1].replace(" ", ""),
             "HTTPS through the site file reaches the installed mlc-api (GET /health)", got)
        deploy_installed("https://127.0.0.1:%d" % https_port)
    else:
        t.skip("the site file serves HTTP and HTTPS", "nginx did not start: " + r.stderr)
else:
    t.skip("nginx -t accepts the installed site file", "needs nginx and openssl")

# Log rotation with the installed logrotate file's postrotate commands (the
# pid-file branch: no systemd here), or the init script's reopen-logs.
pids = {n: pid_of(n) for n in ("mlc-api", "mlc-spooler", "mlc-drift")}
logs = {n: os.path.join(var, "log", *(() if n == "mlc-spooler" else ("service",)), n + ".log")
        for n in pids}
for n, p in logs.items():
    os.rename(p, p + ".1")
rot = read(os.path.join(inst, "etc", "logrotate.d", "mlconnector"))
post = rot[rot.index("postrotate") + len("postrotate"):rot.index("endscript")]
if os.path.isdir("/run/systemd/system"):
    r = init("reopen-logs")
    how = "the init script's reopen-logs (systemd runs here: postrotate would signal the units)"
else:
    r = run("sh", "-c", post)
    how = "the logrotate file's postrotate commands"
t.is_(r.returncode, 0, "after moving the three logs, %s succeed" % how, r.stdout + r.stderr)


def has_reopen(path):
    try:
        return "reopened the log file %s" % path in read(path)
    except FileNotFoundError:
        return False


deadline = time.monotonic() + 10
while time.monotonic() < deadline and not all(has_reopen(p) for p in logs.values()):
    time.sleep(0.1)
t.is_({n: has_reopen(p) for n, p in logs.items()}, {n: True for n in logs},
      "mlc-api, mlc-spooler and mlc-drift each write to a new log file")
t.is_({n: pid_of(n) for n in pids}, pids, "they keep their pids")
t.ok(all(alive(p) for p in pids.values()), "and keep running")
statuses = [health()[0] for _ in range(10)]
t.is_(statuses, [200] * 10, "the installed mlc-api answers after the rotation")

# A database that lacks the newest migration: the workers refuse to serve it.
t.db_admin("DELETE FROM schema_version WHERE version = %d" % NEWEST_N, db_name)
r = init("restart")
t.is_(r.returncode, 0, "the init script restarts the stack", r.stdout + r.stderr)
status, body = health()
t.is_(status, 503, "with the row of %s deleted from schema_version, GET /health answers 503" % NEWEST, body)
detail = body.decode(errors="replace")
t.like(detail, r"database schema is at version %d, mlc-api %s needs version %d: migration %s is not "
       r"applied; run the migrations \(mlc migrate\)" % (PREVIOUS_N, re.escape(VERSION), NEWEST_N,
                                                          re.escape(NEWEST)),
       "the 503 detail names the missing migration and what to run")
status, _, body = fcgi.request(sock, "/model/all")
t.is_(status, 503, "other routes that need the database answer 503 as well", body)
t.like(read(logs["mlc-api"]), r"error req=- database schema is at version %d, .*%s" % (PREVIOUS_N, re.escape(NEWEST)),
       "mlc-api's log says which migration is missing")
t.db_admin("INSERT INTO schema_version VALUES (%d, '%s', UTC_TIMESTAMP(6))" % (NEWEST_N, NEWEST), db_name)
status, body = health()
t.is_(status, 200, "once the migration is recorded, GET /health answers 200 again without a restart", body)
# A database no migration ran on (no schema_version table at all).
t.db_admin("RENAME TABLE schema_version TO schema_version_t0900", db_name)
r = init("restart")
status, body = health()
t.ok(status == 503 and ("database schema is at version 0, mlc-api %s needs version %d: migrations %s to %s "
                        "(%d files) are not applied" % (VERSION, NEWEST_N, MIGRATIONS[0], MIGRATIONS[-1],
                                                         len(MIGRATIONS))) in body.decode(errors="replace"),
     "without a schema_version table, GET /health answers 503 naming the first and last migration and how many", status, body)
t.db_admin("RENAME TABLE schema_version_t0900 TO schema_version", db_name)
status, body = health()
t.is_(status, 200, "with the table back, GET /health answers 200", body)

r = init("stop")
t.is_(r.returncode, 0, "the init script stops the stack", r.stdout + r.stderr)
time.sleep(0.2)
new_pids = {n: pid_of(n) for n in pids}
t.is_(new_pids, {n: None for n in pids}, "the pid files are removed")
r = init("status")
t.ok(r.returncode == 3 and r.stdout.count(": stopped") == 3, "init script status: all stopped (exit 3)",
     r.stdout)
t.ok(not os.path.exists(sock), "mlc-api removed its socket")

t.done()
