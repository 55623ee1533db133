-- 016: one naming rule for the schema (docs/ADMIN.md, "Names"): a column
-- that holds an entity's key has that key's name and type - character set
-- and collation included - in every table.  operations was the exception:
-- operations.deploymentid becomes deployment_id (VARCHAR(64), as
-- deployments.deployment_id), and operations.modelid becomes CHAR(36)
-- utf8mb4 utf8mb4_bin, as models.modelid and every other modelid.  Only the
-- SQL names change: the API still shows deploymentid and modelid.  The
-- indexes keep their names (operations_deployment, operations_model; they
-- name no column) and get comments.
--
-- Rows recorded before 014 may hold a modelid that CHAR(36) cannot keep:
-- POST /deployment/add/operation stored the client's modelid as sent (up
-- to 64 characters); since 014 every operation gets its deployment's
-- modelid.  CHAR(36) would cut a longer one, and drop trailing spaces
-- (they do not count in its comparisons).  So this migration first looks
-- for such rows and, if there are any, stops before it changes anything:
-- docs/ADMIN.md ("Upgrading to 016") shows how to list them and what to do
-- with them.  The ALTER runs in strict mode as well, so that a row that
-- slipped in meanwhile fails it (unchanged table) rather than being cut.

DELIMITER //
BEGIN NOT ATOMIC
    DECLARE v_bad BIGINT UNSIGNED DEFAULT 0;
    SELECT COUNT(*) INTO v_bad FROM operations
        WHERE CHAR_LENGTH(modelid) > 36 OR modelid LIKE '% ';
    IF v_bad > 0 THEN
        SET @mlc_016_msg = CONCAT('016 not applied, nothing changed: ', v_bad, ' rows of ',
            'operations have a modelid longer than 36 characters or ending in a space, which ',
            'CHAR(36) cannot hold; see docs/ADMIN.md, Upgrading to 016');
        SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = @mlc_016_msg;
    END IF;
END //
DELIMITER ;

SET SESSION sql_mode = CONCAT_WS(',', NULLIF(@@SESSION.sql_mode, ''), 'STRICT_ALL_TABLES');

ALTER TABLE operations
    CHANGE COLUMN IF EXISTS deploymentid deployment_id VARCHAR(64) NOT NULL
        COMMENT 'deployments.deployment_id of the deployment (no foreign key: the row outlives it)',
    MODIFY COLUMN modelid CHAR(36) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL
        COMMENT 'models.modelid of the deployment''s model when it was recorded (no foreign key: the row outlives it)',
    DROP KEY operations_model,
    ADD KEY operations_model (modelid, operationid)
        COMMENT 'The operations of a model in recorded order: mlc-drift reads them newest first',
    DROP KEY operations_deployment,
    ADD KEY operations_deployment (deployment_id, operationid)
        COMMENT 'The operations of a deployment in recorded order (docs/ADMIN.md)';

-- The comments that named the old names and types.
ALTER TABLE models
    MODIFY modelid CHAR(36) NOT NULL
        COMMENT 'The model id, a lowercase UUID made by mlc-api. Other tables hold it as modelid CHAR(36) (operations without a foreign key)';

ALTER TABLE deployments
    MODIFY deployment_id VARCHAR(64) NOT NULL
        COMMENT 'The deployment id (given by the client or generated); operations.deployment_id holds the same value';
