-- 011: drift runs that cannot pile up or be failed under a running check,
-- and uploads that a retry does not store twice.
--
-- drift_runs.claimed_by / lease_until: the mlc-drift process carrying out a
-- 'running' run and until when its claim holds (UTC, the database's clock).
-- The claimant renews the lease while it works; another process fails the
-- run only once the lease has expired.  A run left 'running' without a
-- lease (before this migration) counts as expired.
--
-- drift_runs.waiting_model: the modelid while the run is 'waiting', else
-- NULL; its unique key allows one waiting run per model.  Waiting
-- duplicates queued before this migration are failed first (the oldest
-- one stays).
ALTER TABLE drift_runs
    ADD COLUMN IF NOT EXISTS claimed_by  VARCHAR(128) NULL AFTER requested_by,
    ADD COLUMN IF NOT EXISTS lease_until DATETIME(6)  NULL AFTER claimed_by;

UPDATE drift_runs d
    JOIN (SELECT modelid, MIN(CONCAT(CAST(created_at AS CHAR), ' ', run_id)) AS keep_key
          FROM drift_runs WHERE status = 'waiting' GROUP BY modelid) k ON k.modelid = d.modelid
    SET d.status = 'failed', d.finished_at = UTC_TIMESTAMP(6),
        d.reason = 'superseded: another run of this model was already waiting'
    WHERE d.status = 'waiting' AND CONCAT(CAST(d.created_at AS CHAR), ' ', d.run_id) <> k.keep_key;

ALTER TABLE drift_runs
    ADD COLUMN IF NOT EXISTS waiting_model CHAR(36)
        AS (IF(status = 'waiting', RTRIM(modelid), NULL)) PERSISTENT,
    ADD UNIQUE KEY IF NOT EXISTS drift_runs_one_waiting (waiting_model);

-- artifacts.idempotency_key: the Idempotency-Key header of the upload that
-- stored the row (NULL without one), unique per model: an upload sent again
-- with the same key answers with the stored row instead of a new version.
ALTER TABLE artifacts
    ADD COLUMN IF NOT EXISTS idempotency_key VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin NULL
        AFTER sha256,
    ADD UNIQUE KEY IF NOT EXISTS artifacts_idempotency (modelid, idempotency_key);
