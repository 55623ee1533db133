-- 012: job credentials of remote runtimes and trainings (the kubernetes and
-- mlsysops backends, docs/SCALING.md).
--
-- job_token_sha256: the lower-case hex SHA-256 of the credential the
-- spooler made for the job's pods (never the credential itself); it opens
-- GET /deployment/{id}/bundle (GET /mltraining/{id}/bundle and
-- PUT /mltraining/{id}/model for a training) while the job is active.
-- NULL: no credential (local runtimes, or cleared when the job stopped).
ALTER TABLE deployments
    ADD COLUMN IF NOT EXISTS job_token_sha256 CHAR(64) CHARACTER SET ascii COLLATE ascii_bin NULL
        AFTER backend;
ALTER TABLE trainings
    ADD COLUMN IF NOT EXISTS job_token_sha256 CHAR(64) CHARACTER SET ascii COLLATE ascii_bin NULL;
