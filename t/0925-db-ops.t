#!/usr/bin/python3
"""Database operations: where the parts connect, the two accounts, the
comments migration, the naming rule of keys, backup and restore, mlc status.

- The socket-or-TCP rule: the Python daemons follow the table the C unit
  test checks mlc-api against (t/unit/dbtarget-cases.txt).
- The suite's own app account (MLC_DB_USER) cannot change the schema: the
  rest of the suite passes with rows-only rights.
- The comments migration changes nothing but comments (SHOW CREATE TABLE
  before and after, comments taken out), and leaves none empty.
- The naming rule (docs/ADMIN.md, Names): after the last migration every
  column holding an entity's key has the key's name and type in every table
  and view.  Migration 016 upgrades a database at 015 keeping every
  operation, and refuses, changing nothing, one whose operations hold a
  modelid CHAR(36) cannot keep.
- A second MariaDB started here on a socket of its own, without networking,
  stands for the host's server: an instance configured with MLC_DB_SOCKET
  pointing at it migrates without starting a server of its own (and does
  not create a database that is missing), then mlc-api, mlc-spooler and
  mlc-drift all work on it (a model deployed, predicted with, drift
  checked); its app account cannot CREATE, ALTER or DROP.  mlc status calls
  it a running system service, and a stopped one once it stops.
- mlc backup / mlc restore with that external database and with a private
  one: every row and every file back (in the store's layout: directories
  2750, files 0640), a tampered backup refused without a
  change, no symbolic link followed, / and the store refused as targets.
"""

import hashlib
import os
import pickle
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "lib"))
import mlctap as t  # noqa: E402

t.need_instance("MLC_ROOT", "MLC_VAR", "MLC_DB_SOCKET", "MLC_DB_USER", "MLC_DB_NAME")

import pymysql  # noqa: E402

ROOT = os.environ["MLC_ROOT"]
MLC = os.path.join(ROOT, "scripts", "mlc")
sys.path.insert(0, os.path.join(ROOT, "scripts"))
from mlcpy import config as mconfig  # noqa: E402

T0 = time.monotonic()
TMP = tempfile.mkdtemp(prefix="t0925.", dir=os.environ["MLC_VAR"])
os.chmod(TMP, 0o755)  # nginx's workers and the runtime user pass through
t.defer(shutil.rmtree, TMP, True)


def read(path):
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except OSError:
        return ""


# ---- the socket-or-TCP rule, as the Python daemons follow it ------------------------

cases = 0
with open(os.path.join(ROOT, "t", "unit", "dbtarget-cases.txt")) as f:
    for line in f:
        if line.startswith("#") or not line.strip():
            continue
        host, sock, var, port, want = [c.strip() for c in line.split("|")]
        env = {"MLC_DB_HOST": host, "MLC_DB_SOCKET": sock, "MLC_VAR": var, "MLC_DB_PORT": port}
        try:
            target = mconfig.Config({}, ROOT, env).db_target()
            got = " ".join(str(x) for x in target)
        except mconfig.ConfigError:
            got = "error"
        t.is_(got, want, "Python daemons: MLC_DB_HOST=%r MLC_DB_SOCKET=%r MLC_DB_PORT=%s -> %s"
              % (host, sock, port, want))
        cases += 1
t.ok(cases >= 10, "the case table t/unit/dbtarget-cases.txt has its cases (%d)" % cases)


# ---- the suite's app account changes rows only ---------------------------------------

def denied(conn, sql):
    """The MariaDB error number of sql, None when it succeeded."""
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
        return None
    except pymysql.err.MySQLError as e:
        return e.args[0]


main = t.db()
# (Tables that do not exist: the privilege check comes first, and a wrong
# grant cannot hurt the suite's tables.)
for sql in ("CREATE TABLE t0925_nope (a INT)", "ALTER TABLE t0925_nope ADD COLUMN b INT",
            "DROP TABLE t0925_nope", "CREATE INDEX t0925 ON t0925_nope (a)"):
    t.is_(denied(main, sql), 1142, "the suite's app account %s cannot: %s"
          % (os.environ["MLC_DB_USER"], sql.split(" (")[0]))
t.ok(t.db_rows("SELECT COUNT(*) AS n FROM schema_version")[0]["n"] > 0,
     "... and reads and writes rows (the whole suite runs with it)")


# ---- the comments migration changes comments only -------------------------------------

SQL_DIR = os.path.join(ROOT, "sql")
MIGRATIONS = sorted(f for f in os.listdir(SQL_DIR) if re.match(r"^\d{3}-.*\.sql$", f))
COMMENTS = [f for f in MIGRATIONS if f.endswith("-comments.sql")]
STRIP = re.compile(r" COMMENT ?=? ?'(?:[^'\\]|\\.|'')*'")


def strip_comments(create):
    return re.sub(r" AUTO_INCREMENT=\d+", "", STRIP.sub("", create))


def show_creates(db):
    """SHOW CREATE TABLE of every table, and SHOW CREATE VIEW of every view."""
    with db.cursor() as cur:
        cur.execute("SHOW FULL TABLES")
        names = [list(r.values()) for r in cur.fetchall()]
        out = {}
        for name, kind in names:
            if kind == "VIEW":
                cur.execute("SHOW CREATE VIEW `%s`" % name)
                out[name] = cur.fetchone()["Create View"]
            else:
                cur.execute("SHOW CREATE TABLE `%s`" % name)
                out[name] = cur.fetchone()["Create Table"]
    return out


def columns(conn, db):
    """{(table, column): (type, character set, collation)} of every table and
    view of db."""
    with conn.cursor() as cur:
        cur.execute("SELECT table_name AS t, column_name AS c, column_type AS ty, "
                    "character_set_name AS cs, collation_name AS co "
                    "FROM information_schema.columns WHERE table_schema = %s", (db,))
        return {(r["t"], r["c"]): (r["ty"], r["cs"], r["co"]) for r in cur.fetchall()}


# Columns that hold a key in a role of their own, and the key whose type
# they have (docs/ADMIN.md, Names).  A column named <role>_<entity> for an
# entity with a key <entity>id or <entity>_id is found without this list.
ROLE_KEYS = {("model_tags", "model_seq"): ("models", "seq"),
             ("deployments", "model_version"): ("artifacts", "version"),
             ("trainings", "produced_version"): ("artifacts", "version"),
             ("trainings", "data_version"): ("artifacts", "version"),
             ("trainings", "code_version"): ("artifacts", "version")}


def key_rule(conn, db):
    """The naming rule of docs/ADMIN.md: a column that holds an entity's key
    has that key's name and type (character set, collation) in every table.
    Key names are the column names ending in id; generic over all tables and
    views, so that a later migration breaking it fails here."""
    cols = columns(conn, db)
    spellings, types = {}, {}
    for (table, col), ty in cols.items():
        if col.lower().endswith("id"):
            spellings.setdefault(col.replace("_", "").lower(), set()).add(col)
            types.setdefault(col, {}).setdefault(ty, []).append(table)
    t.is_({k: sorted(v) for k, v in spellings.items() if len(v) > 1}, {},
          "one spelling per key name (none that differ by underscores only)")
    t.is_({k: v for k, v in types.items() if len(v) > 1}, {},
          "each key name has one type, character set and collation in every table and view")
    t.ok({"modelid", "ownerid", "deployment_id", "run_id"} <= set(types),
         "... the keys held by more than one table are among them", sorted(types))
    t.is_(sorted(types.get("modelid", {}).get(("char(36)", "utf8mb4", "utf8mb4_bin"), [])),
          ["artifacts", "deployments", "drift_metrics", "drift_runs", "model_tags", "models",
           "operations", "trainings"], "modelid is CHAR(36) utf8mb4_bin in every table that holds it")
    t.is_(sorted(types.get("deployment_id", {}).get(("varchar(64)", "utf8mb4", "utf8mb4_bin"), [])),
          ["deployments", "operations"], "deployment_id is VARCHAR(64) in deployments and operations")
    t.is_(sorted(types.get("ownerid", {}).get(("varchar(255)", "utf8mb4", "utf8mb4_nopad_bin"), [])),
          ["deployments", "models", "operations", "token_list", "tokens", "trainings"],
          "ownerid is VARCHAR(255) utf8mb4_nopad_bin everywhere, the view included")
    stems = {re.sub(r"_?id$", "", k): k for k in types if re.sub(r"_?id$", "", k)}
    wrong, seen = [], []
    for (table, col), ty in sorted(cols.items()):
        m = re.search(r"_([a-z]+)$", col)
        key = None
        if m and m.group(1) in stems:
            key = [ty2 for (t2, c2), ty2 in cols.items() if c2 == stems[m.group(1)]][0]
        elif (table, col) in ROLE_KEYS:
            key = cols.get(ROLE_KEYS[(table, col)])
        if key is not None:
            seen.append("%s.%s" % (table, col))
            if ty != key:
                wrong.append("%s.%s %s (the key: %s)" % (table, col, ty, key))
    t.is_(wrong, [], "a column holding a key in a role of its own has the key's type", seen)
    t.ok({"trainings.redeploy_owner", "drift_runs.waiting_model", "model_tags.model_seq"}
         <= set(seen), "... redeploy_owner, waiting_model, model_seq among them", seen)


cdb = "mlc_t0925_comments_%d" % os.getpid()
res = t.db_admin("CREATE DATABASE `%s` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin" % cdb)
t.ok(len(COMMENTS) == 1, "one comments migration (a later migration comments its own columns)",
     COMMENTS)
if res.returncode != 0 or len(COMMENTS) != 1:
    t.skip("the comments migration changes only comments",
           res.stderr.strip() or "no single sql/NNN-comments.sql (%s)" % COMMENTS)
else:
    t.defer(t.db_admin, "DROP DATABASE IF EXISTS `%s`" % cdb)
    # As mlc migrate leaves it: schema_version first (without comments, as
    # databases made before the comments have it).
    t.db_admin("CREATE TABLE schema_version (version INT NOT NULL PRIMARY KEY, name VARCHAR(255) "
               "NOT NULL, applied_at DATETIME(6) NOT NULL) ENGINE=InnoDB", cdb)
    upto = MIGRATIONS.index(COMMENTS[0])
    errors = []
    for f in MIGRATIONS[:upto + 1]:
        if f == COMMENTS[0]:
            croot = pymysql.connect(unix_socket=os.environ["MLC_DB_SOCKET"], user="root",
                                    database=cdb, cursorclass=pymysql.cursors.DictCursor)
            before = show_creates(croot)
        with open(os.path.join(SQL_DIR, f)) as fh:
            r = t.db_admin(None, cdb, fh.read())
        if r.returncode != 0:
            errors.append("%s: %s" % (f, r.stderr.strip()))
    t.is_(errors, [], "migrations up to %s apply" % COMMENTS[0])
    after = show_creates(croot)
    changed = {n: (before[n], after.get(n)) for n in before
               if strip_comments(before[n]) != strip_comments(after.get(n) or "")}
    t.is_(sorted(changed), [], "%s changes nothing but comments (SHOW CREATE TABLE of every table "
          "before and after, comments taken out)" % COMMENTS[0], changed)
    # The migrations after it state the comments of what they add or change;
    # those named NNN-...-comment.sql change nothing else.
    for f in MIGRATIONS[upto + 1:]:
        if f.endswith("-comment.sql"):
            before = show_creates(croot)
        with open(os.path.join(SQL_DIR, f)) as fh:
            r = t.db_admin(None, cdb, fh.read())
        if r.returncode != 0:
            errors.append("%s: %s" % (f, r.stderr.strip()))
        if f.endswith("-comment.sql"):
            after = show_creates(croot)
            changed = {n: (before[n], after.get(n)) for n in before
                       if strip_comments(before[n]) != strip_comments(after.get(n) or "")}
            t.is_(sorted(changed), [], "%s changes nothing but comments" % f, changed)
            t.ok(before != after, "%s changes a comment" % f)
    t.is_(errors, [], "every later migration applies")
    with croot.cursor() as cur:
        # (Views have no comments of their own: their columns are the
        # tables'.)
        cur.execute("SELECT c.table_name AS t, c.column_name AS c FROM information_schema.columns c "
                    "JOIN information_schema.tables b ON b.table_schema = c.table_schema "
                    "AND b.table_name = c.table_name WHERE c.table_schema = %s "
                    "AND b.table_type = 'BASE TABLE' AND c.column_comment = ''", (cdb,))
        bare_cols = ["%s.%s" % (r["t"], r["c"]) for r in cur.fetchall()]
        cur.execute("SELECT table_name AS t FROM information_schema.tables "
                    "WHERE table_schema = %s AND table_type = 'BASE TABLE' "
                    "AND table_comment = ''", (cdb,))
        bare_tables = [r["t"] for r in cur.fetchall()]
        cur.execute("SELECT column_comment AS c FROM information_schema.columns "
                    "WHERE table_schema = %s AND table_name = 'deployments' "
                    "AND column_name = 'status'", (cdb,))
        status_comment = cur.fetchone()["c"]
        cur.execute("SELECT column_comment AS c FROM information_schema.columns "
                    "WHERE table_schema = %s AND table_name = 'artifacts' "
                    "AND column_name = 'path'", (cdb,))
        path_comment = cur.fetchone()["c"]
    key_rule(croot, cdb)
    croot.close()
    t.is_(bare_cols + bare_tables, [], "after the last migration every table and column has a comment")
    t.like(status_comment, r"waiting.*stopping.*stopped", "deployments.status names its values")
    t.like(path_comment, r"v<version>-<filename>.*v<version>-<8 hex digits>-<filename>",
           "artifacts.path names both shapes of a stored file's path")


# ---- the upgrade to 016 (one name and type per key) keeps every operation -----------------

def apply(db, files):
    """Apply these migration files to db as mlc migrate does; the errors."""
    errs = []
    for f in files:
        with open(os.path.join(SQL_DIR, f)) as fh:
            r = t.db_admin(None, db, fh.read())
        if r.returncode != 0:
            errs.append("%s: %s" % (f, r.stderr.strip()))
            break
    return errs


NAMES = [f for f in MIGRATIONS if f.startswith("016-")]
udb = "mlc_t0925_upgrade_%d" % os.getpid()
if len(NAMES) != 1 or t.db_admin("CREATE DATABASE `%s` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"
                                  % udb).returncode != 0:
    t.skip("the upgrade to 016", "no sql/016-*.sql, or no database %s" % udb)
else:
    t.defer(t.db_admin, "DROP DATABASE IF EXISTS `%s`" % udb)
    at16 = MIGRATIONS.index(NAMES[0])
    t.is_(apply(udb, MIGRATIONS[:at16]), [], "a database at 015")
    uroot = pymysql.connect(unix_socket=os.environ["MLC_DB_SOCKET"], user="root", database=udb,
                            charset="utf8mb4", autocommit=True,
                            cursorclass=pymysql.cursors.DictCursor)
    t.defer(uroot.close)
    mid = "3fa85f64-5717-4562-b3fc-2c963f66afa6"
    with uroot.cursor() as cur:
        # As mlc-api records them (the deployment's model), and as older
        # versions did (the client's modelid, any string up to 64).
        cur.executemany(
            "INSERT INTO operations (ownerid, deploymentid, modelid, data, result, timestamp) "
            "VALUES (%s, %s, %s, %s, %s, UTC_TIMESTAMP(6) - INTERVAL %s SECOND)",
            [("alice", "dep-a", mid, "[[1, 2]]", "[0]", 5), ("bob", "dep-b", mid, None, None, 4),
             ("alice", "dep-a", "m", "[3]", '{"error": "x"}', 3), ("alice", "dep-\u00e9", "", "[]", "[]", 2),
             ("admin", "d" * 64, "x" * 36, "[4]", None, 1),
             ("admin", "dep-a", "\u00e9" * 36, "[5]", None, 0)])
    ROWS = ("SELECT operationid, operation_uuid, ownerid, {dep} AS dep, modelid, data, result, "
            "timestamp FROM operations ORDER BY operationid")

    def rows(dep):
        with uroot.cursor() as cur:
            cur.execute(ROWS.format(dep=dep))
            return [{k: v.isoformat() if hasattr(v, "isoformat") else v for k, v in r.items()}
                    for r in cur.fetchall()]

    before_rows = rows("deploymentid")
    # Rows 016 cannot keep: a modelid longer than 36, or with a trailing
    # space.  It refuses before any change, saying why.
    for bad in ("y" * 37, "m "):
        with uroot.cursor() as cur:
            cur.execute("INSERT INTO operations (ownerid, deploymentid, modelid, timestamp) "
                        "VALUES ('old', 'dep-old', %s, UTC_TIMESTAMP(6))", (bad,))
            bad_id = cur.lastrowid
        schema = show_creates(uroot)
        errs = apply(udb, [NAMES[0]])
        t.like(" ".join(errs), r"016 not applied, nothing changed: 1 rows of operations have a "
               r"modelid longer than 36 characters or ending in a space.*docs/ADMIN\.md",
               "016 refuses a database with an operation's modelid %r, naming the cause and the "
               "recipe" % bad)
        t.is_(show_creates(uroot), schema, "... and changes nothing in the schema")
        t.is_(rows("deploymentid")[:-1], before_rows, "... nor in the rows")
        with uroot.cursor() as cur:
            # docs/ADMIN.md, Upgrading to 016
            cur.execute("DELETE FROM operations WHERE CHAR_LENGTH(modelid) > 36 "
                        "OR modelid LIKE '%% '")
            t.is_(cur.rowcount, 1, "... and the recipe's DELETE finds that row (%d)" % bad_id)
    others = {n: strip_comments(c) for n, c in show_creates(uroot).items() if n != "operations"}
    t.is_(apply(udb, [NAMES[0]]), [], "then %s applies to the database at 015" % NAMES[0])
    after_rows = rows("deployment_id")
    t.is_(after_rows, before_rows, "every operation is kept, every value as it was "
          "(deploymentid now deployment_id)")
    t.is_({n: strip_comments(c) for n, c in show_creates(uroot).items() if n != "operations"},
          others, "in the other tables only comments change")
    cols = columns(uroot, udb)
    t.is_((cols.get(("operations", "deployment_id")), cols.get(("operations", "modelid")),
           ("operations", "deploymentid") in cols),
          (("varchar(64)", "utf8mb4", "utf8mb4_bin"), ("char(36)", "utf8mb4", "utf8mb4_bin"), False),
          "operations: deployment_id VARCHAR(64), modelid CHAR(36), as in deployments and models")
    with uroot.cursor() as cur:
        cur.execute("SELECT index_name AS i, GROUP_CONCAT(column_name ORDER BY seq_in_index) AS c, "
                    "MAX(index_comment) AS m FROM information_schema.statistics "
                    "WHERE table_schema = %s AND table_name = 'operations' "
                    "AND index_name IN ('operations_model', 'operations_deployment') "
                    "GROUP BY index_name ORDER BY index_name", (udb,))
        idx = [(r["i"], r["c"], bool(r["m"])) for r in cur.fetchall()]
        cur.execute("EXPLAIN SELECT operationid FROM operations FORCE INDEX (operations_model) "
                    "WHERE modelid = %s ORDER BY operationid DESC", (mid,))
        plan = cur.fetchall()
    t.is_(idx, [("operations_deployment", "deployment_id,operationid", True),
                ("operations_model", "modelid,operationid", True)],
          "its indexes keep their names, on the new columns, with comments")
    t.is_([p.get("key") for p in plan], ["operations_model"], "mlc-drift's FORCE INDEX still names one")
    t.is_(apply(udb, [NAMES[0]]), [], "%s run again changes nothing and does not fail" % NAMES[0])
    t.is_(rows("deployment_id"), before_rows, "... every row still there")
    key_rule(uroot, udb)


# ---- a second server: the host's MariaDB, on a socket of its own ------------------------

def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


EXT = os.path.join(TMP, "ext")
EXT_SOCK = os.path.join(EXT, "mysqld.sock")
EXT_PID = os.path.join(EXT, "mysqld.pid")
user = subprocess.run(["id", "-un"], capture_output=True, text=True).stdout.strip()
os.makedirs(EXT)
r = subprocess.run(["mariadb-install-db", "--no-defaults", "--datadir=" + os.path.join(EXT, "data"),
                    "--user=" + user, "--auth-root-authentication-method=socket",
                    "--auth-root-socket-user=" + user, "--skip-test-db"],
                   capture_output=True, text=True, timeout=120)
if r.returncode != 0:
    t.skip_all("cannot initialise a second MariaDB: " + r.stderr[-500:])
ext_server = subprocess.Popen(
    ["mariadbd", "--no-defaults", "--datadir=" + os.path.join(EXT, "data"), "--user=" + user,
     "--socket=" + EXT_SOCK, "--pid-file=" + EXT_PID, "--skip-networking",
     "--log-error=" + os.path.join(EXT, "error.log"), "--innodb-buffer-pool-size=32M",
     "--innodb-log-file-size=16M", "--character-set-server=utf8mb4",
     "--collation-server=utf8mb4_bin"],
    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    start_new_session=True)


def stop_ext():
    if ext_server.poll() is None:
        ext_server.terminate()
        try:
            ext_server.wait(60)
        except subprocess.TimeoutExpired:
            ext_server.kill()
            ext_server.wait()


t.defer(stop_ext)


def ext_root(sql, database=None):
    args = ["mariadb", "--no-defaults", "--socket=" + EXT_SOCK, "-uroot"]
    if database:
        args.append(database)
    return subprocess.run(args + ["-e", sql], capture_output=True, text=True, timeout=60)


deadline = time.monotonic() + 60
while time.monotonic() < deadline and ext_root("SELECT 1").returncode != 0:
    time.sleep(0.2)
EXT_DB = "mlc_ext"
# INSTALL's statements for a server of your own, with this test's names.
r = ext_root("CREATE DATABASE %s CHARACTER SET utf8mb4 COLLATE utf8mb4_bin; "
             "CREATE USER 'mlc_app'@'localhost' IDENTIFIED BY 'app pw \"x\\\\y'; "
             "GRANT %s ON %s.* TO 'mlc_app'@'localhost'; "
             "CREATE USER 'mlc_mig'@'localhost' IDENTIFIED BY 'mig-pw'; "
             "GRANT ALL ON %s.* TO 'mlc_mig'@'localhost'" % (EXT_DB, t.APP_GRANTS, EXT_DB, EXT_DB))
t.is_(r.returncode, 0, "a second MariaDB without networking runs on its own socket, with an app "
      "and a migration account", r.stderr)

PORT = free_port()
VAR = os.path.join(TMP, "v")
DRIFT_LOG = os.path.join(VAR, "log", "service", "mlc-drift.log")
CONF = os.path.join(TMP, "ext.conf")


def write_conf(path, var, port, **keys):
    # (MLC_AUTH=off: requests without a token, allowed on a loopback host.)
    lines = ["MLC_HOST=127.0.0.1", "MLC_PORT=%d" % port, "MLC_VAR=" + var, "MLC_AUTH=off",
             "MLC_MAX_BODY=1048576", "MLC_MAX_UPLOAD=67108864", "MLC_WORKERS=2",
             "MLC_DB_NAME=" + keys.pop("name", "mlconnector")]
    lines += ["%s=%s" % kv for kv in keys.items()]
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


write_conf(CONF, VAR, PORT, name=EXT_DB, MLC_DB_SOCKET=EXT_SOCK, MLC_DB_USER="mlc_app",
           MLC_DB_PASSWORD='app pw "x\\y', MLC_DB_MIGRATE_USER="mlc_mig",
           MLC_DB_MIGRATE_PASSWORD="mig-pw")
# The instance under test reads its own file only: none of the suite's
# MLC_* variables (they would win over it), but its AddressSanitizer
# binary, whose reports land where mlc test looks for them.
ENV = {k: v for k, v in os.environ.items() if not k.startswith("MLC_") or k == "MLC_API_BIN"}
ENV["MLC_CONF"] = CONF


def mlc(*args, conf=None, timeout=300, **over):
    env = dict(ENV, **over)
    if conf:
        env["MLC_CONF"] = conf
    return subprocess.run([MLC] + list(args), capture_output=True, text=True, env=env,
                          timeout=timeout, cwd=TMP)


def servers_under(var):
    """Pids of mariadbd processes whose command line names a path under var."""
    out = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open("/proc/%s/cmdline" % pid, "rb") as f:
                    cmd = f.read().decode(errors="replace").split("\0")
            except OSError:
                continue
            if cmd and cmd[0].endswith("mariadbd") and any(var in a for a in cmd):
                out.append(int(pid))
    return out


def ext(user="mlc_mig", password="mig-pw", database=EXT_DB):
    return pymysql.connect(unix_socket=EXT_SOCK, user=user, password=password, database=database,
                           charset="utf8mb4", autocommit=True,
                           cursorclass=pymysql.cursors.DictCursor)


# A database that does not exist on the external server is not created.
MISSING = os.path.join(TMP, "missing.conf")
write_conf(MISSING, VAR, PORT, name="mlc_missing", MLC_DB_SOCKET=EXT_SOCK, MLC_DB_USER="mlc_app",
           MLC_DB_PASSWORD='app pw "x\\y', MLC_DB_MIGRATE_USER="mlc_mig",
           MLC_DB_MIGRATE_PASSWORD="mig-pw")
r = mlc("migrate", conf=MISSING)
t.ok(r.returncode != 0 and "migration account 'mlc_mig'" in r.stderr,
     "mlc migrate on an external server whose database is missing fails, naming the account",
     r.returncode, r.stderr)
t.ok("mlc_missing" not in ext_root("SHOW DATABASES").stdout,
     "... and creates no database there")

r = mlc("migrate")
t.is_(r.returncode, 0, "mlc migrate with MLC_DB_SOCKET naming the external server", r.stderr)
t.ok(not os.path.exists(os.path.join(VAR, "mysql")) and servers_under(VAR) == [],
     "... starts no MariaDB of its own (no $MLC_VAR/mysql, no mariadbd)", servers_under(VAR))
conn = ext()
with conn.cursor() as cur:
    cur.execute("SELECT name FROM schema_version ORDER BY version")
    t.is_([r["name"] for r in cur.fetchall()], MIGRATIONS,
          "... and applies every migration to the external database")
    cur.execute("SELECT COUNT(*) AS n FROM information_schema.columns WHERE table_schema = %s "
                "AND table_name = 'schema_version' AND column_comment <> ''", (EXT_DB,))
    t.is_(cur.fetchone()["n"], 3, "schema_version as mlc migrate makes it has its comments")

app = ext("mlc_app", 'app pw "x\\y')
for sql in ("CREATE TABLE t0925_nope (a INT)", "ALTER TABLE models ADD COLUMN t0925 INT",
            "DROP TABLE operations", "TRUNCATE TABLE operations"):
    t.is_(denied(app, sql), 1142, "the external app account cannot: %s" % sql.split(" (")[0])

r = mlc("status")
t.like(r.stdout, r"(?m)^mysqld: system service: running \(socket %s\)$" % re.escape(EXT_SOCK),
       "mlc status: the external database is a running system service, not 'stopped'")

# The whole stack on it: mlc-api, the spooler, mlc-drift, nginx.
r = mlc("up", timeout=300)
t.defer(mlc, "down")
up = r.returncode == 0
t.ok(up, "mlc up on the external database starts mlc-api, the spooler, mlc-drift and nginx",
     r.stderr[-2000:])
BASE = "http://127.0.0.1:%d" % PORT
t.ok(servers_under(VAR) == [], "... still without a MariaDB of its own")

import requests  # noqa: E402

s = requests.Session()
s.trust_env = False
MODEL = None
if up:
    import mlcmodels as mm  # noqa: E402
    reg, X, y, names = mm.diabetes_ridge()
    r = s.post(BASE + "/model/add", json=t.minimal_model(
        modelkind="regression", modeltags=["t0925"], featurelist=mm.featurelist(names)))
    t.is_status(r, 201, "the API registers a model in the external database")
    MODEL = r.json().get("modelid") if r.status_code == 201 else None
    for kind, name, data in (("model", "model.pkl", pickle.dumps(reg, protocol=4)),
                             ("data", "train.csv", mm.csv_bytes(X[:60], y[:60], names))):
        r = s.post(BASE + "/model/%s/upload" % MODEL,
                   files={"file": (name, data), "file_kind": (None, kind)})
        t.is_status(r, 201, "upload of its %s file" % kind)
    r = s.post(BASE + "/deployment/add", json={
        "modelid": MODEL, "ownerid": "t0925", "deployment_id": "t0925", "inference_data": 0,
        "placement": {"clusterID": "*", "node": "*", "continuum": False}})
    t.is_status(r, 201, "POST /deployment/add")
    st, end = {}, time.monotonic() + 90
    while time.monotonic() < end and st.get("status") not in ("deployed", "failed"):
        time.sleep(0.2)
        r = s.get(BASE + "/deployment/get/status/t0925")
        st = r.json() if r.status_code == 200 else {}
    spool_log = read(os.path.join(VAR, "log", "mlc-spooler.log"))
    t.is_(st.get("status"), "deployed", "the spooler, on the external database, deploys it",
          st, spool_log[-2000:])
    t.like(spool_log, r"started \(pid \d+, MLC_VAR %s, database unix socket %s,"
           % (re.escape(VAR), re.escape(EXT_SOCK)), "... and its log names that database")
    r = s.post(BASE + "/deployment/t0925/predict", json={"data": X[:12].tolist()})
    t.is_status(r, 200, "a predict call through the runtime, recorded as an operation")
    r = s.post(BASE + "/model/%s/drift/run" % MODEL)
    t.is_status(r, 202, "a drift run queued")
    run_id = (r.json() or {}).get("run_id") if r.status_code == 202 else None
    row, end = {}, time.monotonic() + 60
    while time.monotonic() < end and row.get("status") not in ("completed", "failed"):
        time.sleep(0.2)
        with conn.cursor() as cur:
            cur.execute("SELECT status, reason FROM drift_runs WHERE run_id = %s", (run_id,))
            row = cur.fetchone() or {}
    t.is_(row.get("status"), "completed", "mlc-drift, on the external database, carries it out",
          row, read(DRIFT_LOG)[-2000:])
    t.like(read(DRIFT_LOG), r"drift: started \(pid \d+, .*database unix socket %s," % re.escape(EXT_SOCK),
           "mlc-drift's log names the database it uses")
    r = mlc("status")
    t.ok(all(re.search(r"(?m)^%s: running \(pid \d+\)$" % n, r.stdout)
             for n in ("mlc-api", "mlc-spooler", "mlc-drift", "nginx"))
         and "health: ok at %s" % BASE in r.stdout,
         "mlc status: mlc's own processes and the health check as before", r.stdout)
    t.like(r.stdout, r"(?m)^spool: \d+ waiting \(new/\), \d+ claimed \(cur/\)\n"
           r"deployments \(not stopped\):\n.*\n  t0925 +deployed +0 *$",
           "... the spool's queue, and the deployments read from the external database as "
           "its app account")
    r = mlc("down")
    t.is_(r.returncode, 0, "mlc down stops the instance", r.stderr)
t.is_(ext_root("SELECT 1").returncode, 0, "... and leaves the external server running")


# ---- backup and restore ------------------------------------------------------------------

def table_rows(c):
    """Every row of every table (procedures by name), in primary-key order."""
    out = {}
    with c.cursor() as cur:
        cur.execute("SELECT table_name AS t FROM information_schema.tables "
                    "WHERE table_schema = DATABASE() ORDER BY table_name")
        for name in [r["t"] for r in cur.fetchall()]:
            cur.execute("SELECT * FROM `%s`" % name)
            rows = cur.fetchall()
            out[name] = sorted(sorted((k, repr(v)) for k, v in r.items()) for r in rows)
        cur.execute("SELECT routine_name AS r FROM information_schema.routines "
                    "WHERE routine_schema = DATABASE() ORDER BY routine_name")
        out["(routines)"] = [r["r"] for r in cur.fetchall()]
    return out


def store_files(store):
    out = {}
    for dirpath, dirnames, filenames in os.walk(store):
        if os.path.relpath(dirpath, store).split(os.sep)[0] == ".tmp":
            continue
        for n in filenames:
            p = os.path.join(dirpath, n)
            if os.path.islink(p):
                continue
            with open(p, "rb") as f:
                out[os.path.relpath(p, store)] = hashlib.sha256(f.read()).hexdigest()
    return out


STORE = os.path.join(VAR, "artifacts")
# Stored procedures come with the schema (a migration defines them, the app
# account may EXECUTE them): they must survive a round trip.
with conn.cursor() as cur:
    cur.execute("CREATE PROCEDURE t0925_add(IN a INT) SELECT a + 1 AS b")
# Links in the store are never followed: not a file outside, nor a
# directory outside posing as a model.
outside = os.path.join(TMP, "outside")
os.makedirs(outside)
with open(os.path.join(outside, "secret"), "w") as f:
    f.write("not in a backup\n")
if MODEL:
    os.symlink(os.path.join(outside, "secret"), os.path.join(STORE, MODEL, "model", "v9-link.pkl"))
os.symlink(outside, os.path.join(STORE, "01234567-89ab-4def-8123-456789abcdef"))
os.makedirs(os.path.join(STORE, ".tmp"), exist_ok=True)
with open(os.path.join(STORE, ".tmp", "upload-t0925"), "w") as f:
    f.write("an upload in progress\n")

rows_before, files_before = table_rows(conn), store_files(STORE)
BK = os.path.join(TMP, "bk-ext")
rb = mlc("backup", "bk-ext")  # relative to where mlc was called (TMP)
t.is_(rb.returncode, 0, "mlc backup DIR with the external database", rb.stderr)
t.ok(sorted(os.listdir(BK)) == ["MANIFEST.sha256", "artifacts", "backup.info", "database.sql"]
     and not [n for n in os.listdir(TMP) if ".partial." in n],
     "... writes the dump, the files, backup.info and the manifest, and no partial directory",
     os.listdir(BK))
r = subprocess.run(["sha256sum", "--check", "--strict", "--quiet", "MANIFEST.sha256"], cwd=BK,
                   capture_output=True, text=True)
t.is_(r.returncode, 0, "sha256sum --check verifies the manifest", r.stdout + r.stderr)
backed = store_files(os.path.join(BK, "artifacts"))
t.ok(backed == files_before and len(backed) >= 2,
     "the backup has every file of the store, with the same checksums", sorted(backed))
t.ok("secret" not in read(os.path.join(BK, "MANIFEST.sha256"))
     and "v9-link" not in read(os.path.join(BK, "MANIFEST.sha256"))
     and "01234567-89ab-4def-8123-456789abcdef" not in read(os.path.join(BK, "MANIFEST.sha256"))
     and "upload-t0925" not in read(os.path.join(BK, "MANIFEST.sha256")),
     "... and no symbolic link's target, nor an upload in progress")
t.like(rb.stderr, r"not in the backup: .*v9-link\.pkl \(a symbolic link\)",
       "a link left out is named")

for args, why in ((["/"], "/"), ([""], "an empty DIR"), ([], "no DIR"),
                  ([os.path.join(STORE, "bk")], "a DIR inside the artifact store"),
                  ([BK], "an existing backup")):
    r = mlc("backup", *args)
    t.ok(r.returncode != 0, "mlc backup refuses %s" % why, r.stderr)
r = mlc("backup", os.path.join(TMP, "bk-root"), MLC_ARTIFACTS="/")
t.ok(r.returncode != 0 and "refusing" in r.stderr and not os.path.exists(os.path.join(TMP, "bk-root")),
     "mlc backup refuses MLC_ARTIFACTS=/", r.stderr)
r = mlc("backup", os.path.join(TMP, "bk-var"), MLC_ARTIFACTS=TMP)
t.ok(r.returncode != 0, "mlc backup refuses a DIR inside MLC_ARTIFACTS (here the store holds it)",
     r.stderr)

# The installed copy (scripts/mlc without a configure.ac beside it, as
# make install lays it out under mlc-admin) has status, backup and restore.
INST = os.path.join(TMP, "installed")
shutil.copytree(os.path.join(ROOT, "scripts"), os.path.join(INST, "scripts"),
                ignore=shutil.ignore_patterns("__pycache__"))
shutil.copytree(SQL_DIR, os.path.join(INST, "sql"))
admin = os.path.join(INST, "scripts", "mlc")
r = subprocess.run([admin, "status"], capture_output=True, text=True, env=ENV, timeout=60)
t.ok(r.returncode == 0
     and re.search(r"(?m)^mysqld: system service: running \(socket %s\)$" % re.escape(EXT_SOCK), r.stdout)
     and re.search(r"(?m)^nginx: system service: (running|stopped)$", r.stdout),
     "mlc-admin status: the database and nginx as system services", r.stdout + r.stderr)
r = subprocess.run([admin, "backup", os.path.join(TMP, "bk-installed")], capture_output=True,
                   text=True, env=ENV, timeout=120)
t.ok(r.returncode == 0 and store_files(os.path.join(TMP, "bk-installed", "artifacts")) == backed,
     "mlc-admin backup DIR: the same backup from the installed copy", r.stderr)

# A tampered backup: refused, and nothing changes.
BAD = os.path.join(TMP, "bk-bad")
shutil.copytree(BK, BAD, symlinks=True)
victim = sorted(p for p in backed)[0]
with open(os.path.join(BAD, "artifacts", victim), "r+b") as f:
    byte = f.read(1)
    f.seek(0)
    f.write(bytes([byte[0] ^ 1]))
with conn.cursor() as cur:
    cur.execute("INSERT INTO operations (ownerid, deployment_id, modelid, data, timestamp) "
                "VALUES ('t0925-marker', 'x', 'x', NULL, UTC_TIMESTAMP(6))")
r = mlc("restore", BAD)
with conn.cursor() as cur:
    cur.execute("SELECT COUNT(*) AS n FROM operations WHERE ownerid = 't0925-marker'")
    marker = cur.fetchone()["n"]
t.ok(r.returncode != 0 and "SHA-256" in r.stderr and victim in r.stderr,
     "mlc restore refuses a backup with a changed file, naming it", r.stderr)
t.ok(marker == 1 and store_files(STORE) == files_before,
     "... and changes neither the database nor the store")
shutil.rmtree(BAD)
shutil.copytree(BK, BAD, symlinks=True)
os.symlink("/etc/hostname", os.path.join(BAD, "artifacts", "extra"))
r = mlc("restore", BAD)
t.ok(r.returncode != 0 and "symbolic link" in r.stderr,
     "mlc restore refuses a backup holding a symbolic link", r.stderr)

# Running instance: refused.
os.makedirs(os.path.join(VAR, "run"), exist_ok=True)
with open(os.path.join(VAR, "run", "mlc-api.pid"), "w") as f:
    f.write(str(os.getpid()))
r = mlc("restore", BK)
os.unlink(os.path.join(VAR, "run", "mlc-api.pid"))
t.ok(r.returncode != 0 and "stop the instance first" in r.stderr,
     "mlc restore refuses while mlc-api runs", r.stderr)
# An mlc-api without a pid file in run/ (started by hand, or by a service
# manager): its listening socket in api/ gives it away.
API_SOCK = os.path.join(VAR, "api", "mlc-api.sock")
os.makedirs(os.path.dirname(API_SOCK), exist_ok=True)
listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
listener.bind(API_SOCK)
listener.listen(1)
r = mlc("restore", BK)
rs = mlc("status")
listener.close()
t.ok(r.returncode != 0 and "stop the instance first (mlc-api running)" in r.stderr,
     "mlc restore refuses while something listens on mlc-api's socket in api/", r.stderr)
t.like(rs.stdout, r"(?m)^mlc-api: running \(listening on %s\)$" % re.escape(API_SOCK),
       "... and mlc status says mlc-api runs there")
rs = mlc("status")
os.unlink(API_SOCK)
t.like(rs.stdout, r"(?m)^mlc-api: stopped$", "a socket file nothing listens on is not mlc-api")

# Wipe: the database dropped and made again empty, the store emptied.
ext_root("DROP DATABASE %s; CREATE DATABASE %s CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"
         % (EXT_DB, EXT_DB))
for name in os.listdir(STORE):
    p = os.path.join(STORE, name)
    os.unlink(p) if os.path.islink(p) else shutil.rmtree(p)
r = mlc("restore", "bk-ext")
t.is_(r.returncode, 0, "mlc restore DIR onto the emptied external database and store", r.stderr)
conn.close()
conn = ext()
t.is_(table_rows(conn), rows_before, "every row of every table is back, and the stored procedure")
t.is_(store_files(STORE), files_before, "every file is back, with the same checksums")


def modes(store):
    """{relative path: mode} of the store's directories and files, and the
    store's own ('.')."""
    out = {".": os.stat(store).st_mode & 0o7777}
    for dirpath, dirnames, filenames in os.walk(store):
        for n in dirnames + filenames:
            p = os.path.join(dirpath, n)
            out[os.path.relpath(p, store)] = os.lstat(p).st_mode & 0o7777
    return out


def layout_modes(store):
    """What is not as mlc-spooler --prepare lays the store out: directories
    2750, files 0640, all the store's group."""
    group = os.stat(store).st_gid
    return {p: "%04o" % m for p, m in modes(store).items()
            if m != (0o2750 if os.path.isdir(os.path.join(store, p)) else 0o640)
            or os.lstat(os.path.join(store, p)).st_gid != group}


t.is_(layout_modes(STORE), {}, "... directories 2750 and files 0640 with the store's group, "
      "as the layout has them")
try:
    with ext("mlc_app", 'app pw "x\\y').cursor() as cur:
        cur.execute("CALL t0925_add(41)")
        called = cur.fetchone()
except pymysql.err.MySQLError as e:
    called = e
t.is_(called, {"b": 42}, "the app account may EXECUTE the restored procedure")

if up:
    r = mlc("up", timeout=300)
    t.is_(r.returncode, 0, "the restored instance starts", r.stderr[-2000:])
    r = s.get(BASE + "/model/%s/files" % MODEL)
    t.is_status(r, 200, "the API lists the restored model's files")
    r = s.get(BASE + "/model/%s/files/model" % MODEL)
    t.ok(r.status_code == 200 and pickle.loads(r.content).__class__.__name__ == "Ridge",
         "the restored model file downloads", r.status_code)
    mlc("down")

ext_server.terminate()
ext_server.wait(60)
r = mlc("status")
t.like(r.stdout, r"(?m)^mysqld: system service: stopped \(socket %s\)$" % re.escape(EXT_SOCK),
       "mlc status: the external database stopped is a stopped system service")


# ---- backup and restore with a private database ----------------------------------------------

PVAR = os.path.join(TMP, "p")
PCONF = os.path.join(TMP, "private.conf")
write_conf(PCONF, PVAR, free_port(), name="mlc_private", MLC_DB_USER="mlc_p",
           MLC_DB_PASSWORD="p-app", MLC_DB_MIGRATE_USER="mlc_p_migrate",
           MLC_DB_MIGRATE_PASSWORD="p-mig")
PSOCK = os.path.join(PVAR, "run", "mysqld.sock")
r = mlc("migrate", conf=PCONF)
t.defer(lambda: mlc("db-stop", conf=PCONF))
t.is_(r.returncode, 0, "mlc migrate with a private database starts it and migrates", r.stderr)


def private(user="mlc_p", password="p-app"):
    return pymysql.connect(unix_socket=PSOCK, user=user, password=password, database="mlc_private",
                           charset="utf8mb4", autocommit=True,
                           cursorclass=pymysql.cursors.DictCursor)


papp = private()
with papp.cursor() as cur:
    cur.execute("SHOW GRANTS")
    grants = " ".join(list(r.values())[0] for r in cur.fetchall())
t.like(grants, r"GRANT SELECT, INSERT, UPDATE, DELETE, EXECUTE ON `mlc_private`\.\* TO `mlc_p`@`localhost`",
       "the private app account has SELECT, INSERT, UPDATE, DELETE and EXECUTE")
t.is_(denied(papp, "CREATE TABLE t0925_nope (a INT)"), 1142, "... and cannot CREATE")
pid_model = "0b5c1a8e-1111-4222-8333-444455556666"
pstore = os.path.join(PVAR, "artifacts")
os.makedirs(os.path.join(pstore, pid_model, "data"))
content = b"a,b\n1,2\n"
with open(os.path.join(pstore, pid_model, "data", "v1-t.csv"), "wb") as f:
    f.write(content)
with papp.cursor() as cur:
    cur.execute("INSERT INTO models (modelid, modelname, modelkind, modeltags, created_at, "
                "updated_at) VALUES (%s, %s, 'k', '[\"t\"]', UTC_TIMESTAMP(6), UTC_TIMESTAMP(6))",
                (pid_model, "it's \"quoted\"\\ \u00e9\n"))
    cur.execute("INSERT INTO artifacts (modelid, filekind, version, filename, contenttype, path, "
                "size, sha256, created_at) VALUES (%s, 'data', 1, 't.csv', 'text/csv', %s, %s, %s, "
                "UTC_TIMESTAMP(6))", (pid_model, pid_model + "/data/v1-t.csv", len(content),
                                      hashlib.sha256(content).hexdigest()))
    cur.execute("INSERT INTO operations (ownerid, deployment_id, modelid, data, result, timestamp) "
                "VALUES ('o', 'd', %s, '[[1, \"a,b)\\'\"]]', NULL, UTC_TIMESTAMP(6))", (pid_model,))
prows, pfiles = table_rows(papp), store_files(pstore)
papp.close()
r = mlc("backup", os.path.join(TMP, "bk-private"), conf=PCONF)
t.is_(r.returncode, 0, "mlc backup DIR with the private database", r.stderr)
# Wipe everything: the server's data directory and the store.
r = mlc("db-stop", conf=PCONF)
shutil.rmtree(os.path.join(PVAR, "mysql"))
shutil.rmtree(pstore)
r = mlc("restore", os.path.join(TMP, "bk-private"), conf=PCONF)
t.is_(r.returncode, 0, "mlc restore DIR onto a new private server and an absent store", r.stderr)
papp = private()
t.is_(table_rows(papp), prows, "every row is back")
t.is_(store_files(pstore), pfiles, "every file is back")
svc = os.stat(pstore)
try:
    import pwd
    want_uid = pwd.getpwnam("mlconnector").pw_uid
except KeyError:
    want_uid = 0
t.ok(svc.st_mode & 0o7777 == 0o2750 and svc.st_uid == want_uid and layout_modes(pstore) == {},
     "... into a store laid out by mlc-spooler --prepare (the service user's, 2750; files 0640)",
     "%04o uid %d" % (svc.st_mode & 0o7777, svc.st_uid), layout_modes(pstore))
papp.close()

t.note("t/0925 took %.1f s" % (time.monotonic() - T0))
t.done()
