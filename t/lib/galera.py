"""galera - the Galera cluster of an instance started with
MLC_TOPOLOGY=galera (scripts/mlc: "MLC_TEST_TOPOLOGY=galera mlc test ...",
or "MLC_TOPOLOGY=galera mlc up"), as the tests see it.

Layout (scripts/mlc, galera_start): $MLC_VAR/galera/ports has one line
"SQL GCOMM IST SST" per node; node N keeps its datadir, socket
(mysqld.sock), pid file (mysqld.pid) and log (mariadb.log) in
$MLC_VAR/galera/nodeN/.  mlc-api's first pool (MLC_SOCKET, pid file
run/mlc-api.pid) uses node 1, the second (api-b/mlc-api.sock, pid file
run/mlc-api-b.pid) node 2; the spooler and mlc-drift use node 1."""

import os
import signal
import subprocess
import time

NODES = 3


def active():
    """Does the instance under test run the Galera topology?"""
    return os.environ.get("MLC_TOPOLOGY") == "galera"


def var():
    return os.environ["MLC_VAR"]


def node_dir(n):
    return os.path.join(var(), "galera", "node%d" % n)


def socket_of(n):
    return os.path.join(node_dir(n), "mysqld.sock")


def pid_of(n):
    """The pid of node n's mariadbd, or None when it has none (stopped)."""
    try:
        with open(os.path.join(node_dir(n), "mysqld.pid")) as fh:
            return int(fh.read().strip())
    except (OSError, ValueError):
        return None


def api_b_socket():
    """The FastCGI socket of mlc-api's second pool (the first is MLC_SOCKET)."""
    return os.path.join(var(), "api-b", "mlc-api.sock")


def sql(n, statement, database=None, timeout=10):
    """Run statement as MariaDB's root on node n; the rows as lists of
    strings (tab-separated output of the mariadb client), or None when the
    node does not answer or refuses it."""
    args = ["/usr/bin/mariadb", "--no-defaults", "--socket=" + socket_of(n), "-uroot",
            "-N", "-B", "--connect-timeout=3", "-e", statement]
    if database:
        args.append(database)
    try:
        out = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None
    if out.returncode != 0:
        return None
    return [line.split("\t") for line in out.stdout.splitlines()]


def status(n, name):
    """A global status variable of node n (e.g. wsrep_cluster_size), or None."""
    rows = sql(n, "SHOW GLOBAL STATUS LIKE '%s'" % name)
    return rows[0][1] if rows else None


def status_int(n, name):
    v = status(n, name)
    return int(v) if v is not None and v.isdigit() else None


def kill(n):
    """SIGKILL node n's mariadbd (no shutdown: as a host that loses power)."""
    pid = pid_of(n)
    if pid:
        os.kill(pid, signal.SIGKILL)
        for _ in range(100):
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            # A killed child of no one's is reaped by init; until then a zombie.
            try:
                with open("/proc/%d/status" % pid) as fh:
                    if "\nState:\tZ" in fh.read():
                        break
            except OSError:
                break
            time.sleep(0.05)
    return pid


def wait_for(cond, seconds):
    """Poll cond() until it is true or seconds have passed; its last value."""
    deadline = time.monotonic() + seconds
    while True:
        v = cond()
        if v or time.monotonic() > deadline:
            return v
        time.sleep(0.25)
