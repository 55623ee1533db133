"""The deployments- and trainings-table statements of the spooler.

The spooler writes only status, reason, warnings, endpoint, runtime_pid,
restarts and updated_at.  Every transition is one conditional UPDATE in its
own transaction: the WHERE clause names the state the transition starts
from, so a concurrent DELETE (desired='stopped', status='stopping' written
by a C worker) is never overwritten.  Each function returns whether the
row was in the expected state (rows changed == 1).

Every transition also names this spooler as the row's claimant
(claimed_by = MLC_SPOOLER_ID, see spool.py): a spooler only writes the rows
it holds, and one whose claim another spooler took over (after the lease)
writes nothing more to them.  The reads of the loop (active,
stop_requests, serving, in_states) see only the rows this spooler holds.
"""

import hashlib

import pymysql

from . import spool

REASON_MAX = 4000

# idle_s: seconds since the row last changed, by the database's clock (the
# one that wrote updated_at; the spooler's own clock may differ).
IDLE = "TIMESTAMPDIFF(MICROSECOND, updated_at, UTC_TIMESTAMP(6)) / 1e6 AS idle_s"
COLUMNS = ("deployment_id, modelid, model_version, ownerid, backend, status, desired, "
           "reason, warnings, endpoint, runtime_pid, restarts, created_at, updated_at, "
           "claimed_by, " + IDLE)
TRAINING_COLUMNS = ("training_id, modelid, ownerid, redeploy, redeploy_owner, status, reason, code_version, data_version, "
                    "produced_version, created_at, started_at, finished_at, updated_at, claimed_by")


def connect(cfg):
    """A connection (autocommit off, dict rows) as configured by MLC_DB_*."""
    args = dict(user=cfg.get("MLC_DB_USER"), password=cfg.get("MLC_DB_PASSWORD"),
                database=cfg.get("MLC_DB_NAME"), charset="utf8mb4", autocommit=False,
                connect_timeout=cfg.number("MLC_DB_TIMEOUT", int),
                cursorclass=pymysql.cursors.DictCursor)
    target = cfg.db_target()  # the rule mlc-api follows too (app/dbtarget.h)
    if target[0] == "socket":
        args.update(unix_socket=target[1])
    else:
        args.update(host=target[1], port=target[2])
    return pymysql.connect(**args)


class LockHeld(Exception):
    """Another spooler holds this database."""


def close_quietly(conn):
    """Close conn (None is fine), ignoring a connection already broken;
    returns None, for `conn = close_quietly(conn)`."""
    if conn is not None:
        try:
            conn.close()
        except Exception:
            pass
    return None


def _clip(text):
    if text is None:
        return None
    text = str(text)
    return text if len(text) <= REASON_MAX else text[:REASON_MAX - 3] + "..."


class _Table:
    """One connection (opened on first use, reopened after a loss) and the
    statement helpers."""

    def __init__(self, cfg):
        self.cfg = cfg
        self.conn = None
        self.me = spool.spooler_id(cfg)

    def ensure(self):
        """Check the connection is alive, or (re)connect with _open; raises
        pymysql.Error when the database cannot be reached."""
        if self.conn is not None:
            try:
                self.conn.ping(reconnect=False)
                return self.conn
            except pymysql.Error:
                self.close()
        self.conn = self._open()
        return self.conn

    def _open(self):
        """A new connection (subclasses add what a new session needs)."""
        return connect(self.cfg)

    def _conn(self):
        return self.conn if self.conn is not None else self.ensure()

    def close(self):
        self.conn = close_quietly(self.conn)

    def _update(self, sql, args):
        """Run one UPDATE in its own transaction; True when a row changed."""
        return self._update_many(sql, args) == 1

    def _update_many(self, sql, args):
        """Run one UPDATE in its own transaction; the number of rows changed."""
        conn = self._conn()
        try:
            with conn.cursor() as cur:
                n = cur.execute(sql, args)
            conn.commit()
        except Exception:
            self.close()  # a failed statement may have lost the connection
            raise
        return n

    def _select(self, sql, args=()):
        conn = self._conn()
        try:
            with conn.cursor() as cur:
                cur.execute(sql, args)
                rows = list(cur.fetchall())
            conn.commit()  # end the read view: the next SELECT sees new rows
        except Exception:
            self.close()
            raise
        return rows


class Deployments(_Table):
    """The deployments table as the spooler sees it."""

    def _open(self):
        """A new connection holding the server-wide lock
        mlc-spooler.<database>.<MLC_SPOOLER_ID> (GET_LOCK, held while the
        session lives), so that two spoolers claiming under one name (two
        MLC_VAR on one host, say) can never reconcile the same rows against
        two process tables; raises LockHeld when another spooler of that
        name works on the same database.  Spoolers of different names share
        the database through their claims (spool.py)."""
        conn = connect(self.cfg)
        name = "mlc-spooler.%s.%s" % (self.cfg.get("MLC_DB_NAME"), self.me)
        if len(name) > 64:  # GET_LOCK's limit
            name = "mlc-spooler." + hashlib.sha256(name.encode()).hexdigest()[:52]
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT GET_LOCK(%s, 0) AS got", (name,))
                got = cur.fetchone()["got"]
            conn.commit()
        except Exception:
            conn.close()
            raise
        if got != 1:
            conn.close()
            raise LockHeld("another mlc-spooler works on database '%s' as '%s' (it holds the "
                           "MariaDB lock '%s'); give each spooler of a database its own "
                           "MLC_SPOOLER_ID" % (self.cfg.get("MLC_DB_NAME"), self.me, name))
        return conn

    # ---- reads ----

    def get(self, dep_id):
        """The row of one deployment, or None."""
        rows = self._select("SELECT " + COLUMNS + " FROM deployments WHERE deployment_id = %s",
                            (dep_id,))
        return rows[0] if rows else None

    def stop_requests(self):
        """Rows the API asked to stop that are not stopped yet."""
        return self._select("SELECT " + COLUMNS + " FROM deployments "
                            "WHERE desired = 'stopped' AND status <> 'stopped' "
                            "AND claimed_by = %s", (self.me,))

    def active(self):
        """Rows the reconciler must look at: everything not at rest."""
        return self._select("SELECT " + COLUMNS + " FROM deployments WHERE claimed_by = %s "
                            "AND " + spool.ACTIVE_DEPLOYMENTS, (self.me,))

    def wanted(self):
        """Ids of the deployments any spooler should keep running (for the
        sweeps of shared clusters)."""
        return {r["deployment_id"] for r in self._select(
            "SELECT deployment_id FROM deployments WHERE desired = 'running' "
            "AND status IN ('waiting', 'building', 'deployed')")}

    def existing(self, ids):
        """Of these deployment ids, the rows that exist (id -> row)."""
        out = {}
        ids = list(ids)
        for i in range(0, len(ids), 500):
            chunk = ids[i:i + 500]
            marks = ", ".join(["%s"] * len(chunk))
            for row in self._select("SELECT " + COLUMNS + " FROM deployments "
                                    "WHERE deployment_id IN (" + marks + ")", chunk):
                out[row["deployment_id"]] = row
        return out

    # ---- transitions ----

    def building(self, dep_id, warnings):
        """waiting (or building, when a claimed bundle is processed again
        after a crash) -> building."""
        return self._update(
            "UPDATE deployments SET status = 'building', reason = NULL, warnings = %s, "
            "endpoint = NULL, runtime_pid = NULL, updated_at = UTC_TIMESTAMP(6) "
            "WHERE deployment_id = %s AND status IN ('waiting', 'building') "
            "AND desired = 'running' AND claimed_by = %s", (_clip(warnings), dep_id, self.me))

    def deployed(self, dep_id, endpoint, pid):
        """building -> deployed, with where the runtime answers."""
        return self._update(
            "UPDATE deployments SET status = 'deployed', reason = NULL, endpoint = %s, "
            "runtime_pid = %s, restarts = 0, updated_at = UTC_TIMESTAMP(6) "
            "WHERE deployment_id = %s AND status = 'building' AND desired = 'running' "
            "AND claimed_by = %s", (endpoint, pid, dep_id, self.me))

    def failed(self, dep_id, reason):
        """waiting/building/deployed -> failed, with a reason a person can act on."""
        return self._update(
            "UPDATE deployments SET status = 'failed', reason = %s, endpoint = NULL, "
            "runtime_pid = NULL, updated_at = UTC_TIMESTAMP(6) "
            "WHERE deployment_id = %s AND status IN ('waiting', 'building', 'deployed') "
            "AND desired = 'running' AND claimed_by = %s", (_clip(reason), dep_id, self.me))

    def runtime(self, dep_id, endpoint, pid, restarts):
        """A deployed runtime was (re)started or lost: new pid, restart count."""
        return self._update(
            "UPDATE deployments SET endpoint = %s, runtime_pid = %s, restarts = %s, "
            "updated_at = UTC_TIMESTAMP(6) "
            "WHERE deployment_id = %s AND status = 'deployed' AND desired = 'running' "
            "AND claimed_by = %s", (endpoint, pid, restarts, dep_id, self.me))

    def serving(self, modelid, below_version, owner=None):
        """Deployments of a model that serve (deployed, should run) a version
        older than below_version, of that owner when one is given: what a
        redeploy moves onto it."""
        return self._select("SELECT " + COLUMNS + " FROM deployments WHERE modelid = %s "
                            "AND status = 'deployed' AND desired = 'running' "
                            "AND model_version < %s AND (%s IS NULL OR ownerid = %s) "
                            "AND claimed_by = %s ORDER BY deployment_id",
                            (modelid, below_version, owner, owner, self.me))

    def switch(self, dep_id, old_version, version, endpoint, pid):
        """A redeploy's one atomic step: the deployment serving old_version
        now serves `version` from the new runtime (the API reads endpoint
        per request, so the next predict goes there)."""
        return self._update(
            "UPDATE deployments SET model_version = %s, endpoint = %s, runtime_pid = %s, "
            "restarts = 0, reason = NULL, updated_at = UTC_TIMESTAMP(6) "
            "WHERE deployment_id = %s AND status = 'deployed' AND desired = 'running' "
            "AND model_version = %s AND claimed_by = %s",
            (version, endpoint, pid, dep_id, old_version, self.me))

    def stopped(self, dep_id):
        """stopping (or any state whose desired is stopped) -> stopped."""
        return self._update(
            "UPDATE deployments SET status = 'stopped', endpoint = NULL, runtime_pid = NULL, "
            "updated_at = UTC_TIMESTAMP(6) "
            "WHERE deployment_id = %s AND desired = 'stopped' AND status <> 'stopped' "
            "AND claimed_by = %s", (dep_id, self.me))


class Trainings(_Table):
    """The trainings table as the spooler sees it: status transitions
    waiting -> running -> completed | failed, the bounded output log and the
    produced model version.  Each training thread holds its own instance (a
    connection of its own, without the spooler lock, which the main
    connection holds)."""

    def get(self, training_id):
        rows = self._select("SELECT " + TRAINING_COLUMNS + " FROM trainings "
                            "WHERE training_id = %s", (training_id,))
        return rows[0] if rows else None

    def stored_version(self, modelid, key):
        """The version of the model file stored with this Idempotency-Key,
        or None (a read: the upload itself goes through the API)."""
        rows = self._select("SELECT version FROM artifacts WHERE modelid = %s AND "
                            "filekind = 'model' AND idempotency_key = %s", (modelid, key))
        return rows[0]["version"] if rows else None

    def in_states(self, states):
        """The trainings in these states, each with `idle_s`: the seconds
        since its row last changed, by the database's clock (the one that
        wrote updated_at)."""
        marks = ", ".join(["%s"] * len(states))
        return self._select("SELECT " + TRAINING_COLUMNS + ", " + IDLE + " FROM trainings "
                            "WHERE status IN (" + marks + ") AND claimed_by = %s",
                            tuple(states) + (self.me,))

    def running(self, training_id):
        """waiting (or running, when run again after a spooler restart) ->
        running, from scratch."""
        return self._update(
            "UPDATE trainings SET status = 'running', reason = NULL, log = NULL, "
            "produced_version = NULL, started_at = UTC_TIMESTAMP(6), finished_at = NULL, "
            "updated_at = UTC_TIMESTAMP(6) "
            "WHERE training_id = %s AND status IN ('waiting', 'running') AND claimed_by = %s",
            (training_id, self.me))

    def progress(self, training_id, log):
        """The output so far of a running training."""
        return self._update(
            "UPDATE trainings SET log = %s, updated_at = UTC_TIMESTAMP(6) "
            "WHERE training_id = %s AND status = 'running' AND claimed_by = %s",
            (log, training_id, self.me))

    def completed(self, training_id, version, log):
        return self._update(
            "UPDATE trainings SET status = 'completed', reason = NULL, produced_version = %s, "
            "log = %s, finished_at = UTC_TIMESTAMP(6), updated_at = UTC_TIMESTAMP(6) "
            "WHERE training_id = %s AND status = 'running' AND claimed_by = %s",
            (version, log, training_id, self.me))

    def failed(self, training_id, reason, log=None):
        """waiting/running -> failed, with a reason a person can act on (and
        the output, when there was a run)."""
        return self._update(
            "UPDATE trainings SET status = 'failed', reason = %s, log = COALESCE(%s, log), "
            "finished_at = UTC_TIMESTAMP(6), updated_at = UTC_TIMESTAMP(6) "
            "WHERE training_id = %s AND status IN ('waiting', 'running') AND claimed_by = %s",
            (_clip(reason), log, training_id, self.me))

    def note(self, training_id, text, reason=None, log_max=1 << 18):
        """Append a line to a completed training's log (what its redeploy
        did), and set its reason when a deployment could not be moved."""
        return self._update(
            "UPDATE trainings SET log = RIGHT(CONCAT(COALESCE(log, ''), %s), %s), "
            "reason = COALESCE(%s, reason), updated_at = UTC_TIMESTAMP(6) "
            "WHERE training_id = %s AND status = 'completed' AND claimed_by = %s",
            (text, log_max, _clip(reason), training_id, self.me))

    # ---- the credential of the upload ----

    def model_owner(self, modelid):
        """The owner of a model, or None when it no longer exists."""
        rows = self._select("SELECT ownerid FROM models WHERE modelid = %s", (modelid,))
        return rows[0]["ownerid"] if rows else None

    def issue_token(self, owner, scope, seconds, note):
        """A new API token through the database's own procedure (sql/013),
        the one way tokens are made; returns (id, token)."""
        rows = self._select("CALL mlc_token_issue(%s, %s, %s, %s)", (owner, scope, seconds, note))
        return rows[0]["id"], rows[0]["token"]

    def revoke_token(self, token_id):
        self._select("CALL mlc_token_revoke(%s)", (str(token_id),))
