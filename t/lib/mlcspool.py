"""A private spooler for the tests that run mlc-spooler themselves (t/0400,
t/0405, t/0430, t/0440): a state directory and a database of their own on
the instance's MariaDB (created through root's socket login), so that the
instance's own spooler and these tests never see each other's rows.

    import mlcspool as sp
    sp.need(tools=("/usr/bin/bwrap",), root="why root is needed")
    VAR, DB_NAME = sp.private_state("su")
    DB = sp.Database(DB_NAME)
    DB.sql("SELECT ...", arg)
    bg = sp.Background(log_path, env)
"""
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading

import mlctap as t

NEED = ("MLC_ROOT", "MLC_VAR", "MLC_DB_SOCKET", "MLC_DB_USER", "MLC_DB_NAME")


def spooler():
    """The path of the mlc-spooler under test."""
    return os.path.join(os.environ["MLC_ROOT"], "scripts", "mlc-spooler")


def need(tools=(), root=None, more_env=()):
    """Stop the file unless it runs against a local instance (Bail out!
    without one; skip when its database is not local), with the tools
    (paths) and, when root is the reason for it, as root."""
    missing = [v for v in tuple(more_env) + NEED if not os.environ.get(v)]
    if missing:
        t.no_instance(missing)
    if os.environ.get("MLC_DB_HOST"):
        t.skip_all("creates a private database on the private MariaDB; this instance uses "
                   "MLC_DB_HOST=%s" % os.environ["MLC_DB_HOST"])
    for tool in tuple(tools) + ("/usr/bin/mariadb",):
        if not os.access(tool, os.X_OK):
            t.skip_all("needs %s" % tool)
    if root and os.geteuid() != 0:
        t.skip_all(root)


def private_state(tag, prefix=None):
    """A state directory (mode 0755) under the instance's MLC_VAR and a
    database <MLC_DB_NAME>_<tag>_<pid> with every migration, dropped when the
    test ends: (directory, database name).  Skips the file when the
    database cannot be made."""
    var = tempfile.mkdtemp(prefix=(prefix or tag) + ".", dir=os.environ["MLC_VAR"])
    os.chmod(var, 0o755)
    name = "%s_%s_%d" % (os.environ["MLC_DB_NAME"], tag, os.getpid())
    why = t.private_database(name)
    if why:
        shutil.rmtree(var, ignore_errors=True)
        t.skip_all("cannot create a private database as root on %s: %s"
                   % (os.environ["MLC_DB_SOCKET"], why))
    return var, name


class Database:
    """The app account's connection to a private database (autocommit,
    dict rows), made on first use."""

    def __init__(self, name):
        self.name = name
        self._conn = None

    def db(self):
        if self._conn is None:
            import pymysql
            self._conn = pymysql.connect(
                unix_socket=os.environ["MLC_DB_SOCKET"], user=os.environ["MLC_DB_USER"],
                password=os.environ.get("MLC_DB_PASSWORD", ""), database=self.name,
                charset="utf8mb4", autocommit=True, cursorclass=pymysql.cursors.DictCursor)
        return self._conn

    def sql(self, query, *args):
        with self.db().cursor() as cur:
            cur.execute(query, args)
            return list(cur.fetchall())

    def row(self, dep_id):
        """The deployments row, or {}."""
        rows = self.sql("SELECT * FROM deployments WHERE deployment_id = %s", dep_id)
        return rows[0] if rows else {}

    def training(self, tid):
        """The trainings row, or {}."""
        rows = self.sql("SELECT * FROM trainings WHERE training_id = %s", tid)
        return rows[0] if rows else {}


wait_for = t.wait_for


class Background:
    """mlc-spooler (or argv) running as scripts/mlc starts it: a session of
    its own, stdout and stderr into the file log_path; stopped (SIGTERM,
    then SIGKILL after stop_timeout seconds) when the test ends."""

    def __init__(self, log_path, env, argv=None, stop_timeout=30):
        self.path = log_path
        self.log = open(log_path, "w+")
        self.stop_timeout = stop_timeout
        self.p = subprocess.Popen(argv or ["/usr/bin/python3", spooler()], env=env,
                                  stdout=self.log, stderr=subprocess.STDOUT,
                                  start_new_session=True)
        t.defer(self.stop)

    def stop(self, sig=signal.SIGTERM):
        if self.p.poll() is None:
            self.p.send_signal(sig)
        try:
            return self.p.wait(timeout=self.stop_timeout)
        except subprocess.TimeoutExpired:
            self.p.kill()
            return self.p.wait()

    def output(self):
        # A file of its own: the process writes through the shared offset of self.log.
        with open(self.path) as f:
            return f.read()

    def lines(self, needle):
        return [ln for ln in self.output().splitlines() if needle in ln]


class Listener:
    """A TCP listener on the host's loopback that nothing in a sandbox may
    reach: .port, and .accepted, the connections it got."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(5)
        self.port = self.sock.getsockname()[1]
        self.accepted = []
        threading.Thread(target=self._loop, daemon=True).start()

    def _loop(self):
        self.sock.settimeout(0.5)
        while self.sock.fileno() >= 0:
            try:
                self.accepted.append(self.sock.accept()[0])
            except OSError:
                if self.sock.fileno() < 0:
                    return

    def close(self):
        self.sock.close()
