-- 005: drift detection.  drift_runs are requests for a check (on demand
-- from the API, or scheduled by mlc-spooler); drift_metrics hold one row
-- per feature per run, written by mlc-spooler.
CREATE TABLE drift_runs (
    run_id       VARCHAR(64)  NOT NULL,
    modelid      CHAR(36)     NOT NULL,
    status       VARCHAR(16)  NOT NULL,
    reason       TEXT NULL,
    requested_by VARCHAR(16)  NOT NULL DEFAULT 'api',
    created_at   DATETIME(6)  NOT NULL,
    finished_at  DATETIME(6)  NULL,
    PRIMARY KEY (run_id),
    KEY drift_runs_model (modelid, created_at),
    KEY drift_runs_status (status),
    CONSTRAINT drift_runs_status CHECK (status IN ('waiting', 'running', 'completed', 'failed'))
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE drift_metrics (
    id             BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
    run_id         VARCHAR(64)  NOT NULL,
    modelid        CHAR(36)     NOT NULL,
    feature        VARCHAR(255) NOT NULL,
    type           VARCHAR(8)   NOT NULL,
    method         VARCHAR(32)  NOT NULL,
    statistic      DOUBLE NULL,
    p_value        DOUBLE NULL,
    drift_detected TINYINT      NOT NULL,
    n_train        INT UNSIGNED NOT NULL,
    n_infer        INT UNSIGNED NOT NULL,
    window_start   DATETIME(6)  NULL,
    window_end     DATETIME(6)  NULL,
    timestamp      DATETIME(6)  NOT NULL,
    PRIMARY KEY (id),
    KEY drift_metrics_model (modelid, id),
    KEY drift_metrics_feature (modelid, feature, id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
