-- 004: retraining jobs.  The C workers insert a 'waiting' row and a job
-- bundle; mlc-spooler runs the training code in the sandbox and writes
-- status, reason, the produced model version, timings and the (bounded)
-- output log.
CREATE TABLE trainings (
    training_id      VARCHAR(64)  NOT NULL,
    modelid          CHAR(36)     NOT NULL,
    placement        LONGTEXT NULL CHECK (placement IS NULL OR JSON_VALID(placement)),
    redeploy         TINYINT      NOT NULL DEFAULT 0,
    status           VARCHAR(16)  NOT NULL,
    reason           TEXT NULL,
    code_version     INT UNSIGNED NOT NULL,
    data_version     INT UNSIGNED NOT NULL,
    produced_version INT UNSIGNED NULL,
    log              MEDIUMTEXT NULL,
    created_at       DATETIME(6)  NOT NULL,
    started_at       DATETIME(6)  NULL,
    finished_at      DATETIME(6)  NULL,
    updated_at       DATETIME(6)  NOT NULL,
    PRIMARY KEY (training_id),
    KEY trainings_model (modelid, status),
    KEY trainings_created (created_at),
    CONSTRAINT trainings_status CHECK (status IN ('waiting', 'running', 'completed', 'failed'))
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
