-- 021: a version per operation row, so that the API workers' cache of
-- operations (GET /deployment/get/opos/{ownerid}, app/rowcache.c) sees a
-- row changed in place as models' cache does (018).  MLConnector writes an
-- operation once and never changes it, but an administrator may (an
-- UPDATE at the SQL console, to redact what a call recorded): until now a
-- worker that had kept such a row showed it as it was until mlc-api
-- restarted.  The database moves row_version with every UPDATE that
-- changes the row, whoever runs it (ON UPDATE CURRENT_TIMESTAMP(6)); rows
-- there before this migration take its time.
--
-- operations_owner gains row_version as its last column: a page's key read
-- (operationid and row_version of one owner's rows, newest first) stays
-- index-only, so a page validates its kept rows with the same single
-- statement that lists them.  The column is added in place (no table
-- copy); the index is rebuilt (about 2 s per million operations).
ALTER TABLE operations
    ADD COLUMN IF NOT EXISTS row_version DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)
        ON UPDATE CURRENT_TIMESTAMP(6)
        COMMENT 'Set by the database to the time of every UPDATE that changes the row, whoever runs it (rows are written once by MLConnector; an administrator may change one): what API workers compare before serving the operation from their cache';

ALTER TABLE operations
    DROP KEY operations_owner,
    ADD KEY operations_owner (ownerid, operationid, row_version)
        COMMENT 'An owner''s operations newest first, with their versions: GET /deployment/get/opos/{ownerid} lists a page from the index alone';
