-- 007: every inference operation gets a UUID, which the API shows as its
-- `operationid` (the Python MLConnector's operation ids were UUID strings).
-- operations.operationid stays the internal key: it orders the operations
-- (GET /deployment/get/opos lists them newest first by it) and drift
-- checks page through them by it.  mlc-api writes a version 4 UUID with
-- each insert; a row inserted without one (older rows, the SQL console)
-- gets MariaDB's UUID().
ALTER TABLE operations
    ADD COLUMN IF NOT EXISTS operation_uuid CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NULL
        AFTER operationid;
UPDATE operations SET operation_uuid = UUID() WHERE operation_uuid IS NULL;
ALTER TABLE operations
    MODIFY operation_uuid CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL DEFAULT (UUID()),
    ADD UNIQUE KEY IF NOT EXISTS operations_uuid (operation_uuid);
