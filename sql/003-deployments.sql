-- 003: deployments and the inference operations recorded against them.
--
-- deployments.status is what is true now (waiting, building, deployed,
-- failed, stopping, stopped); deployments.desired is what should be true
-- (running or stopped).  The C workers write requests (rows, desired);
-- mlc-spooler converges reality onto them and writes status, reason,
-- endpoint and runtime_pid.
CREATE TABLE deployments (
    deployment_id  VARCHAR(64)  NOT NULL,
    modelid        CHAR(36)     NOT NULL,
    model_version  INT UNSIGNED NOT NULL,
    ownerid        VARCHAR(255) NOT NULL,
    placement      LONGTEXT NULL CHECK (placement IS NULL OR JSON_VALID(placement)),
    inference_data TINYINT      NOT NULL DEFAULT 0,
    backend        VARCHAR(16)  NOT NULL DEFAULT 'local',
    status         VARCHAR(16)  NOT NULL,
    desired        VARCHAR(16)  NOT NULL DEFAULT 'running',
    reason         TEXT NULL,
    warnings       TEXT NULL,
    endpoint       VARCHAR(512) NULL,
    runtime_pid    INT NULL,
    restarts       INT UNSIGNED NOT NULL DEFAULT 0,
    created_at     DATETIME(6)  NOT NULL,
    updated_at     DATETIME(6)  NOT NULL,
    PRIMARY KEY (deployment_id),
    KEY deployments_model (modelid, status),
    KEY deployments_created (created_at),
    CONSTRAINT deployments_status CHECK (status IN
        ('waiting', 'building', 'deployed', 'failed', 'stopping', 'stopped')),
    CONSTRAINT deployments_desired CHECK (desired IN ('running', 'stopped'))
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- Inference operations are an audit trail: no foreign keys, they outlive
-- the deployment (and model) that produced them.
CREATE TABLE operations (
    operationid  BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
    ownerid      VARCHAR(255) NOT NULL,
    deploymentid VARCHAR(64)  NOT NULL,
    modelid      VARCHAR(64)  NOT NULL,
    data         LONGTEXT NULL,
    result       LONGTEXT NULL,
    timestamp    DATETIME(6)  NOT NULL,
    PRIMARY KEY (operationid),
    KEY operations_owner (ownerid, operationid),
    KEY operations_model (modelid, operationid),
    KEY operations_deployment (deploymentid, operationid)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
