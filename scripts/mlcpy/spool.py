"""The spool as the spooler reads it, and how a job is claimed.

The writer is mlc-api, app/spool.c: mlc_spool_write / mlc_spool_create
write a bundle under tmp/, mlc_spool_publish renames it into new/ once the
job's row is committed, mlc_spool_discard removes it after a failure.  This
module is the reader's half, with the same names for the same things.

States (directories of MLC_VAR/spool):

  tmp/<name>.<pid>  being written by the mlc-api worker <pid> (spool.c
                    tmp_path: a worker serves one request at a time, so
                    the pid keeps two requests for one name apart);
  new/<name>        published, waiting for a spooler (mlc_spool_publish);
  cur/<name>        claimed by a spooler (claim_file: rename new -> cur); it
                    leaves cur/ once the job's outcome is in the database;
  rejected/<name>   not a job bundle a spooler handles (the spooler's only).

<name> is deploy-<id>.tar.gz or train-<id>.tar.gz (bundle.parse_name).

Claims in the database.  Several spoolers (on several hosts) may share one
database and one spool directory.  A job - a deployments row to start,
supervise or stop, a trainings row to run - is carried out only by the
spooler that holds its claim: deployments.claimed_by / trainings.claimed_by
(MLC_SPOOLER_ID) until lease_until (the database's clock).  Claims.claim
takes free or expired rows in one short transaction, SELECT ... FOR UPDATE
SKIP LOCKED then UPDATE ... SET claimed_by, so two spoolers never take the
same row; Claims.renew extends the lease of every row this spooler holds
(every third of MLC_SPOOLER_LEASE).  A spooler that dies stops renewing, and
once its lease has passed another spooler takes its rows over and carries
on from what the row and the shared spool say (a bundle left in cur/ is
processed again, as after a restart).  The spooler's transitions
(db.py) name the claimant in their WHERE clause, so a spooler whose claim
was taken over (it lost the database for longer than a lease) cannot
overwrite the new owner's work; it finds the row no longer its own and
removes what it still runs of it.
"""

import os
import socket
import time

import pymysql

from . import safefs

STATES = ("tmp", "new", "cur", "rejected")

# The rows a spooler must look after (a claim on any other row means nothing).
ACTIVE_DEPLOYMENTS = ("(status IN ('waiting', 'building', 'deployed', 'stopping') "
                      "OR (desired = 'stopped' AND status <> 'stopped'))")
ACTIVE_TRAININGS = "status IN ('waiting', 'running')"
CLAIM_BATCH = 20          # deployments taken in one claim transaction
ER_LOCK_DEADLOCK = 1213   # a claim that lost to another spooler's (Galera certification)


def spooler_id(cfg):
    """Who claims: MLC_SPOOLER_ID, by default the host name."""
    return (cfg.get("MLC_SPOOLER_ID") or socket.gethostname() or "localhost")[:128]


def bundle_name(kind, job_id):
    """The bundle of a job: deploy-<id>.tar.gz (app/deployments.c),
    train-<id>.tar.gz (app/training.c)."""
    return "%s-%s.tar.gz" % (kind, job_id)


def spool_path(cfg, sub, name=None):
    """spool.c spool_path: MLC_VAR/spool/<sub>[/<name>]."""
    return os.path.join(cfg.spool, sub, name) if name else os.path.join(cfg.spool, sub)


def tmp_owner(tmp_name, name):
    """spool.c tmp_path in reverse: the pid of the worker writing tmp/<name>.<pid>,
    or None when tmp_name is not a temporary file of the bundle `name`."""
    if not tmp_name.startswith(name + "."):
        return None
    pid = tmp_name[len(name) + 1:]
    if not pid.isdigit() or pid.startswith("0") or len(pid) > 10:
        return None
    return int(pid)


def writer_alive(pid, mtime):
    """A process with this pid is alive and started before the file was last
    written (not a later process that reuses the pid of a dead writer)."""
    try:
        with open("/proc/%d/stat" % pid, "rb") as f:
            data = f.read().decode("ascii", "replace")
        fields = data[data.rindex(")") + 2:].split()
        if fields[0] in "ZX":
            return False
        started = int(fields[19]) / os.sysconf("SC_CLK_TCK")
        with open("/proc/uptime") as f:
            booted = time.time() - float(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return False
    return booted + started <= mtime + 1.0


def being_written(cfg, name):
    """Whether a live mlc-api worker is writing (or about to publish) the
    bundle `name`: tmp/<name>.<pid> exists and its writer is alive.  One
    whose writer died is never published (the temp cleaner removes it), so
    it does not count.  With the API on other hosts a pid says nothing, and
    such a file counts as dead: the row of a bundle never published fails
    after LOST_BUNDLE_AFTER either way."""
    tmp = spool_path(cfg, "tmp")
    try:
        names = os.listdir(tmp)
    except FileNotFoundError:
        return False
    for n in names:
        pid = tmp_owner(n, name)
        if pid is None:
            continue
        try:
            mtime = os.lstat(os.path.join(tmp, n)).st_mtime
        except OSError:
            continue
        if writer_alive(pid, mtime):
            return True
    return False


def published(cfg, name, where=("new", "cur")):
    """The states among `where` that hold the bundle `name`."""
    return [w for w in where if os.path.lexists(spool_path(cfg, w, name))]


def bundle_exists(cfg, name):
    """The bundle is in the spool: published (new/, cur/) or being written
    by a live worker (tmp/)."""
    return bool(published(cfg, name)) or being_written(cfg, name)


def names(cfg, where):
    """The bundle names in one state, oldest first."""
    d = spool_path(cfg, where)
    try:
        found = [n for n in os.listdir(d) if not n.startswith(".")]
    except FileNotFoundError:
        return []

    def mtime(n):
        try:
            return os.lstat(os.path.join(d, n)).st_mtime
        except OSError:
            return 0
    return sorted(found, key=lambda n: (mtime(n), n))


def claim_file(cfg, name):
    """new/<name> -> cur/<name>: the path in cur/, or None when another
    spooler took it first (rename is atomic, also on a shared file system
    that gives rename(2) its local meaning, such as NFS)."""
    dst = spool_path(cfg, "cur", name)
    try:
        os.rename(spool_path(cfg, "new", name), dst)
    except FileNotFoundError:
        return None
    return dst


def reject(cfg, name, where):
    """<where>/<name> -> rejected/<name>; True when moved."""
    try:
        os.rename(spool_path(cfg, where, name), spool_path(cfg, "rejected", name))
        return True
    except OSError:
        return False


def drop(cfg, path):
    """Remove a claimed bundle (its outcome is recorded)."""
    if path:
        safefs.unlink(path, cfg.var)


# ---- claims in the database ---------------------------------------------------------


def _micros(seconds):
    return int(round(seconds * 1e6))


class Claims:
    """The database claims of one spooler, made on a db._Table's connection
    (the spooler's own).  claim_* return the ids newly claimed, with the
    spooler they were taken from (None: a free row)."""

    def __init__(self, table, me, lease):
        self.table, self.me, self.lease = table, me, lease

    def _claim(self, sql_select, sql_update_head, key, limit):
        if limit <= 0:
            return {}
        conn = self.table._conn()
        try:
            with conn.cursor() as cur:
                # Rows the SELECT looks at but does not take are not left
                # locked until the COMMIT (REPEATABLE READ would lock them).
                cur.execute("SET TRANSACTION ISOLATION LEVEL READ COMMITTED")
                cur.execute(sql_select, (limit,))
                rows = list(cur.fetchall())
                if rows:
                    marks = ", ".join(["%s"] * len(rows))
                    cur.execute(sql_update_head + " WHERE " + key + " IN (" + marks + ")",
                                [self.me, _micros(self.lease)] + [r[key] for r in rows])
            conn.commit()
        except pymysql.err.OperationalError as e:
            if e.args and e.args[0] == ER_LOCK_DEADLOCK:
                # Another spooler's claim of the same rows won (on Galera,
                # certification at COMMIT): nothing is claimed this time.
                try:
                    conn.rollback()
                    return {}
                except pymysql.Error:
                    pass
            self.table.close()
            raise
        except Exception:
            self.table.close()
            raise
        return {r[key]: r["claimed_by"] for r in rows}

    def claim_deployments(self, limit=CLAIM_BATCH):
        """Take up to `limit` deployments that need a spooler and are not
        claimed, or whose claim expired."""
        return self._claim(
            "SELECT deployment_id, claimed_by FROM deployments WHERE " + ACTIVE_DEPLOYMENTS +
            " AND (claimed_by IS NULL OR lease_until IS NULL OR "
            "lease_until < UTC_TIMESTAMP(6)) ORDER BY created_at, deployment_id "
            "LIMIT %s FOR UPDATE SKIP LOCKED",
            "UPDATE deployments SET claimed_by = %s, "
            "lease_until = UTC_TIMESTAMP(6) + INTERVAL %s MICROSECOND", "deployment_id", limit)

    def claim_trainings(self, room):
        """Take up to `room` trainings (waiting, or running under an expired
        claim)."""
        return self._claim(
            "SELECT training_id, claimed_by FROM trainings WHERE " + ACTIVE_TRAININGS +
            " AND (claimed_by IS NULL OR lease_until IS NULL OR "
            "lease_until < UTC_TIMESTAMP(6)) ORDER BY created_at, training_id "
            "LIMIT %s FOR UPDATE SKIP LOCKED",
            "UPDATE trainings SET claimed_by = %s, "
            "lease_until = UTC_TIMESTAMP(6) + INTERVAL %s MICROSECOND", "training_id", room)

    def renew(self):
        """Extend the lease of every active row this spooler holds."""
        for table, active in (("deployments", ACTIVE_DEPLOYMENTS),
                              ("trainings", ACTIVE_TRAININGS)):
            self.table._update_many(
                "UPDATE " + table + " SET lease_until = UTC_TIMESTAMP(6) + INTERVAL %s "
                "MICROSECOND WHERE claimed_by = %s AND " + active,
                (_micros(self.lease), self.me))

    def held(self):
        """(deployment ids, training ids) of the active rows this spooler holds."""
        deps = self.table._select("SELECT deployment_id FROM deployments WHERE claimed_by = %s "
                                  "AND " + ACTIVE_DEPLOYMENTS, (self.me,))
        trs = self.table._select("SELECT training_id FROM trainings WHERE claimed_by = %s "
                                 "AND " + ACTIVE_TRAININGS, (self.me,))
        return {r["deployment_id"] for r in deps}, {r["training_id"] for r in trs}
