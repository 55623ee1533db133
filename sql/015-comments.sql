-- 015: every table and column says what it holds, for whoever reads the
-- schema in an SQL console (SHOW FULL COLUMNS, SHOW CREATE TABLE,
-- information_schema); docs/ADMIN.md has the recipes.  Only comments
-- change: each MODIFY restates the column exactly as the earlier
-- migrations left it (type, character set, collation, NULL, default,
-- AUTO_INCREMENT, its CHECK, a generated column's expression), which
-- t/0925-db-ops.t verifies by comparing SHOW CREATE TABLE before and after
-- with the comments taken out.  All times are UTC.
--
-- A later migration that adds or changes a column gives it its COMMENT
-- itself (and restates this one when it MODIFYs the column); t/0925 checks
-- that no table or column is left without one.

ALTER TABLE models
    MODIFY seq BIGINT UNSIGNED NOT NULL AUTO_INCREMENT
        COMMENT 'Registration order (AUTO_INCREMENT): the order of GET /model/all; model_tags.model_seq refers to it',
    MODIFY modelid CHAR(36) NOT NULL
        COMMENT 'The model id, a lowercase UUID made by mlc-api. Other tables refer to it as modelid (operations.modelid is VARCHAR(64), without a foreign key)',
    MODIFY ownerid VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin NOT NULL DEFAULT 'admin'
        COMMENT 'Owner: the owner of the token that registered it, who alone (with admins) may change, upload to, retrain or drift-check it; admin for models from before owners. Compared exactly (no padding)',
    MODIFY modelname VARCHAR(255) NOT NULL
        COMMENT 'Name given by the client; not unique',
    MODIFY modelkind VARCHAR(64) NOT NULL
        COMMENT 'Kind given by the client (GET /model/getkind/{kind})',
    MODIFY hyperparameter LONGTEXT NULL
        COMMENT 'JSON list as the client sent it; NULL when not given'
        CHECK (hyperparameter IS NULL OR JSON_VALID(hyperparameter)),
    MODIFY modelperformance LONGTEXT NULL
        COMMENT 'JSON list as the client sent it; NULL when not given'
        CHECK (modelperformance IS NULL OR JSON_VALID(modelperformance)),
    MODIFY trainingresource LONGTEXT NULL
        COMMENT 'JSON list as the client sent it; NULL when not given'
        CHECK (trainingresource IS NULL OR JSON_VALID(trainingresource)),
    MODIFY runresource LONGTEXT NULL
        COMMENT 'JSON list as the client sent it; NULL when not given'
        CHECK (runresource IS NULL OR JSON_VALID(runresource)),
    MODIFY featurelist LONGTEXT NULL
        COMMENT 'JSON list of the input features (name, type cont or cat, ...): predict checks rows against it, drift checks test each feature'
        CHECK (featurelist IS NULL OR JSON_VALID(featurelist)),
    MODIFY inference LONGTEXT NULL
        COMMENT 'JSON list as the client sent it; NULL when not given'
        CHECK (inference IS NULL OR JSON_VALID(inference)),
    MODIFY modeltags LONGTEXT NULL
        COMMENT 'JSON list of the tags as sent; model_tags holds them one per row for GET /model/search'
        CHECK (modeltags IS NULL OR JSON_VALID(modeltags)),
    MODIFY drift_detection LONGTEXT NULL
        COMMENT 'JSON list of drift settings; an item with is_true 1 makes mlc-drift check the model on schedule, with its method'
        CHECK (drift_detection IS NULL OR JSON_VALID(drift_detection)),
    MODIFY created_at DATETIME(6) NOT NULL
        COMMENT 'When the model was registered (UTC)',
    MODIFY updated_at DATETIME(6) NOT NULL
        COMMENT 'When the row last changed (UTC)',
    COMMENT = 'The model registry: one row per model (POST /model/add). Files are in artifacts, tags also in model_tags. Times are UTC';

ALTER TABLE model_tags
    MODIFY tag VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin NOT NULL
        COMMENT 'One tag, compared byte for byte (trailing spaces count)',
    MODIFY model_seq BIGINT UNSIGNED NOT NULL
        COMMENT 'models.seq of the model: orders search results',
    MODIFY modelid CHAR(36) NOT NULL
        COMMENT 'models.modelid of the tagged model (deleted with it)',
    COMMENT = 'The tags of models.modeltags, one row per tag and model, for GET /model/search; written and deleted with the model';

ALTER TABLE artifacts
    MODIFY fileid BIGINT UNSIGNED NOT NULL AUTO_INCREMENT
        COMMENT 'Internal id (AUTO_INCREMENT)',
    MODIFY modelid CHAR(36) NOT NULL
        COMMENT 'models.modelid of the model the file belongs to (deleted with it)',
    MODIFY filekind VARCHAR(8) NOT NULL
        COMMENT 'model (the pickle), data (training data CSV), code (training script) or env (requirements.txt)',
    MODIFY version INT UNSIGNED NOT NULL
        COMMENT 'Version of this kind of file of the model: 1, 2, ... in upload order (deployments.model_version names a model file version)',
    MODIFY filename VARCHAR(255) NOT NULL
        COMMENT 'The uploaded file name, reduced to letters, digits, dot, dash and underscore',
    MODIFY contenttype VARCHAR(255) NOT NULL
        COMMENT 'Content-Type of the upload, sent back with downloads',
    MODIFY path VARCHAR(512) NOT NULL
        COMMENT 'Where the file is, relative to MLC_ARTIFACTS: <modelid>/<filekind>/v<version>-<filename>. The file is in place before the row commits',
    MODIFY size BIGINT UNSIGNED NOT NULL
        COMMENT 'File size in bytes',
    MODIFY sha256 CHAR(64) NOT NULL
        COMMENT 'SHA-256 of the file, lowercase hex',
    MODIFY idempotency_key VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin NULL
        COMMENT 'Idempotency-Key header of the upload that stored it; NULL without one. Unique per model: the same upload sent again with it answers with this row, not a new version',
    MODIFY created_at DATETIME(6) NOT NULL
        COMMENT 'When it was uploaded (UTC)',
    COMMENT = 'Stored files of models, one row per uploaded version (POST /model/{id}/upload); the bytes are in the artifact store at path';

ALTER TABLE deployments
    MODIFY deployment_id VARCHAR(64) NOT NULL
        COMMENT 'The deployment id (given by the client or generated); operations.deploymentid holds the same value',
    MODIFY modelid CHAR(36) NOT NULL
        COMMENT 'models.modelid of the deployed model',
    MODIFY model_version INT UNSIGNED NOT NULL
        COMMENT 'Version of the model file served (artifacts.version, filekind model); a training with redeploy moves it',
    MODIFY ownerid VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin NOT NULL
        COMMENT 'Owner: the ownerid it was created with (with auth on, the token''s owner unless an admin named another); only it and admins see and act on it. Compared exactly (no padding)',
    MODIFY placement LONGTEXT NULL
        COMMENT 'JSON as the client sent it; NULL when not given'
        CHECK (placement IS NULL OR JSON_VALID(placement)),
    MODIFY inference_data TINYINT NOT NULL DEFAULT 0
        COMMENT '1: predict calls may give their rows as a CSV link (data_link); 0: rows in the body only',
    MODIFY features LONGTEXT NULL
        COMMENT 'JSON: the model''s featurelist when the deployment was made, frozen: predict maps rows keyed by feature name with it, whatever later PATCHes of the model say'
        CHECK (features IS NULL OR JSON_VALID(features)),
    MODIFY backend VARCHAR(16) NOT NULL DEFAULT 'local'
        COMMENT 'Backend that runs it: local, kubernetes or mlsysops (the request''s, else MLC_BACKEND when it was made)',
    MODIFY job_token_sha256 CHAR(64) CHARACTER SET ascii COLLATE ascii_bin NULL
        COMMENT 'SHA-256 (lowercase hex) of the credential mlc-spooler gave a remote runtime''s pods, never the credential: it opens GET /deployment/{id}/bundle while the deployment is active. NULL: none (local runtimes, or cleared once stopped)',
    MODIFY status VARCHAR(16) NOT NULL
        COMMENT 'What is true now: waiting, building, deployed, failed, stopping, stopped. mlc-spooler writes it (mlc-api: waiting, stopping); see docs/ADMIN.md before changing it by hand',
    MODIFY desired VARCHAR(16) NOT NULL DEFAULT 'running'
        COMMENT 'What should be true: running, or stopped once DELETE /deployment asked; mlc-spooler brings status to it',
    MODIFY reason TEXT NULL
        COMMENT 'Why it failed, for a person to act on; NULL otherwise',
    MODIFY warnings TEXT NULL
        COMMENT 'Warnings from checking the bundle (requirements.txt), one per line',
    MODIFY endpoint VARCHAR(512) NULL
        COMMENT 'Where the runtime answers while deployed: unix:<path of runtime.sock> (local) or an http:// URL (kubernetes, mlsysops); mlc-api sends predict calls there',
    MODIFY runtime_pid INT NULL
        COMMENT 'Process id of a local runtime on the spooler host while deployed; NULL for the remote backends',
    MODIFY restarts INT UNSIGNED NOT NULL DEFAULT 0
        COMMENT 'Crashes of the runtime in a row (a new count after 600 s of serving); it fails at MLC_RUNTIME_MAX_RESTARTS',
    MODIFY created_at DATETIME(6) NOT NULL
        COMMENT 'When it was requested (UTC)',
    MODIFY updated_at DATETIME(6) NOT NULL
        COMMENT 'When the row last changed (UTC)',
    COMMENT = 'Deployments (POST /deployment/add). mlc-api writes the request (the row, desired); mlc-spooler makes it true and writes status, reason, warnings, endpoint, runtime_pid, restarts. Times are UTC';

ALTER TABLE operations
    MODIFY operationid BIGINT UNSIGNED NOT NULL AUTO_INCREMENT
        COMMENT 'Internal order (AUTO_INCREMENT): lists and drift checks go by it. The API shows operation_uuid as operationid',
    MODIFY operation_uuid CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL DEFAULT (UUID())
        COMMENT 'The operationid the API shows (a UUID)',
    MODIFY ownerid VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin NOT NULL
        COMMENT 'Owner it was recorded with (the deployment''s owner unless the call named another); only it and admins read it. Compared exactly (no padding)',
    MODIFY deploymentid VARCHAR(64) NOT NULL
        COMMENT 'deployments.deployment_id of the deployment (no foreign key: the row outlives it)',
    MODIFY modelid VARCHAR(64) NOT NULL
        COMMENT 'models.modelid of the model (VARCHAR(64) here, CHAR(36) there; no foreign key)',
    MODIFY data LONGTEXT NULL
        COMMENT 'JSON: the input rows as recorded',
    MODIFY result LONGTEXT NULL
        COMMENT 'JSON: the answer as recorded',
    MODIFY timestamp DATETIME(6) NOT NULL
        COMMENT 'When it was recorded (UTC)',
    COMMENT = 'Inference operations: the audit trail of predict calls and POST /deployment/add/operation, the input of drift checks. No foreign keys; grows until pruned (docs/ADMIN.md). Times are UTC';

ALTER TABLE trainings
    MODIFY training_id VARCHAR(64) NOT NULL
        COMMENT 'The training id',
    MODIFY modelid CHAR(36) NOT NULL
        COMMENT 'models.modelid of the model trained',
    MODIFY ownerid VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin NOT NULL DEFAULT ''
        COMMENT 'Owner: the owner of the token that started it (the optional ownerid of POST /mltraining/add with auth off; admin for trainings from before owners); it counts against MLC_MAX_TRAININGS_PER_OWNER. Compared exactly (no padding)',
    MODIFY placement LONGTEXT NULL
        COMMENT 'JSON as the client sent it; NULL when not given'
        CHECK (placement IS NULL OR JSON_VALID(placement)),
    MODIFY redeploy TINYINT NOT NULL DEFAULT 0
        COMMENT '1: move the deployments of the model onto the produced version once it completes',
    MODIFY redeploy_owner VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin NULL
        COMMENT 'With redeploy: only this owner''s deployments are moved (the owner of the token that started it); NULL: every deployment of the model (an admin''s token, or auth off)',
    MODIFY status VARCHAR(16) NOT NULL
        COMMENT 'waiting, running, completed or failed; written by mlc-spooler (mlc-api: waiting)',
    MODIFY reason TEXT NULL
        COMMENT 'Why it failed, or which deployment its redeploy could not move',
    MODIFY code_version INT UNSIGNED NOT NULL
        COMMENT 'artifacts.version of the code file it runs',
    MODIFY data_version INT UNSIGNED NOT NULL
        COMMENT 'artifacts.version of the data file it reads',
    MODIFY produced_version INT UNSIGNED NULL
        COMMENT 'artifacts.version of the model file it stored; NULL until it completes',
    MODIFY log MEDIUMTEXT NULL
        COMMENT 'Output of the training script, its last MLC_TRAIN_LOG_MAX bytes (GET /mltraining/{id}/log)',
    MODIFY created_at DATETIME(6) NOT NULL
        COMMENT 'When it was requested (UTC)',
    MODIFY started_at DATETIME(6) NULL
        COMMENT 'When its current run started (UTC); NULL while waiting',
    MODIFY finished_at DATETIME(6) NULL
        COMMENT 'When it completed or failed (UTC)',
    MODIFY updated_at DATETIME(6) NOT NULL
        COMMENT 'When the row last changed (UTC)',
    MODIFY job_token_sha256 CHAR(64) CHARACTER SET ascii COLLATE ascii_bin NULL
        COMMENT 'SHA-256 (lowercase hex) of the credential mlc-spooler gave a training''s pods (MLC_TRAIN_BACKEND kubernetes), never the credential: it opens GET /mltraining/{id}/bundle and PUT /mltraining/{id}/model while the training is active. NULL: none (local, or cleared once it ended)',
    COMMENT = 'Retraining jobs (POST /mltraining/add): mlc-api writes a waiting row and a job bundle, mlc-spooler runs it. Times are UTC';

ALTER TABLE drift_runs
    MODIFY run_id VARCHAR(64) NOT NULL
        COMMENT 'The drift run id (a UUID)',
    MODIFY modelid CHAR(36) NOT NULL
        COMMENT 'models.modelid of the model checked',
    MODIFY status VARCHAR(16) NOT NULL
        COMMENT 'waiting, running, completed or failed; written by mlc-drift',
    MODIFY reason TEXT NULL
        COMMENT 'Why it failed',
    MODIFY requested_by VARCHAR(16) NOT NULL DEFAULT 'api'
        COMMENT 'api (POST /model/{id}/drift/run) or schedule (mlc-drift, for a model with drift_detection is_true 1)',
    MODIFY claimed_by VARCHAR(128) NULL
        COMMENT 'The mlc-drift process carrying out the run while it is running (host:pid:random part); NULL before',
    MODIFY lease_until DATETIME(6) NULL
        COMMENT 'Until when that claim holds (UTC, the database''s clock); its process renews it, and another fails the run only once it has passed',
    MODIFY created_at DATETIME(6) NOT NULL
        COMMENT 'When it was requested (UTC)',
    MODIFY finished_at DATETIME(6) NULL
        COMMENT 'When it completed or failed (UTC)',
    MODIFY waiting_model CHAR(36) AS (IF(status = 'waiting', RTRIM(modelid), NULL)) PERSISTENT
        COMMENT 'Generated: modelid while the run is waiting, else NULL; its unique key lets a model have one waiting run at a time',
    COMMENT = 'Drift checks, requested and done: one row per check of a model; the results per feature are in drift_metrics. Times are UTC';

ALTER TABLE drift_metrics
    MODIFY id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT
        COMMENT 'Internal id (AUTO_INCREMENT)',
    MODIFY run_id VARCHAR(64) NOT NULL
        COMMENT 'drift_runs.run_id of the check',
    MODIFY modelid CHAR(36) NOT NULL
        COMMENT 'models.modelid of the model checked',
    MODIFY feature VARCHAR(255) NOT NULL
        COMMENT 'Feature name, from models.featurelist',
    MODIFY type VARCHAR(8) NOT NULL
        COMMENT 'How the feature was tested: cont (numbers) or cat (categories)',
    MODIFY method VARCHAR(32) NOT NULL
        COMMENT 'Test used: mean_shift, mmd or ks for cont, chi2 for cat',
    MODIFY statistic DOUBLE NULL
        COMMENT 'The test statistic; NULL when the feature was not tested (see note)',
    MODIFY p_value DOUBLE NULL
        COMMENT 'The p-value; NULL when the feature was not tested',
    MODIFY drift_detected TINYINT NOT NULL
        COMMENT '1 when the p-value is below MLC_DRIFT_ALPHA',
    MODIFY n_train INT UNSIGNED NOT NULL
        COMMENT 'Values from the training data (the latest data file) used',
    MODIFY n_infer INT UNSIGNED NOT NULL
        COMMENT 'Values from recorded operations used',
    MODIFY window_start DATETIME(6) NULL
        COMMENT 'Oldest operation used (UTC)',
    MODIFY window_end DATETIME(6) NULL
        COMMENT 'Newest operation used (UTC)',
    MODIFY timestamp DATETIME(6) NOT NULL
        COMMENT 'When the result was computed (UTC)',
    MODIFY note TEXT NULL
        COMMENT 'Why the feature was not tested, or how its type was settled from the training data',
    COMMENT = 'Results of drift checks: one row per feature per drift run. Times are UTC';

ALTER TABLE limit_locks
    MODIFY name VARCHAR(32) NOT NULL
        COMMENT 'deployments or trainings: the row POST /deployment/add or POST /mltraining/add locks (SELECT ... FOR UPDATE) while it counts against MLC_MAX_DEPLOYMENTS or MLC_MAX_TRAININGS and inserts',
    COMMENT = 'One row per kind of job, locked to serialise the checks of the caps on deployments and trainings (MLC_MAX_DEPLOYMENTS[_PER_OWNER], MLC_MAX_TRAININGS[_PER_OWNER]); holds no data';

ALTER TABLE tokens
    MODIFY id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT
        COMMENT 'The token''s id (AUTO_INCREMENT): mlc token list shows it, CALL mlc_token_revoke(''<id>'') takes it',
    MODIFY token_hash CHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL
        COMMENT 'SHA-256 (lowercase hex) of the token (mlc_ and 64 hex digits); the token itself is never stored',
    MODIFY ownerid VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin NOT NULL
        COMMENT 'The owner the token acts as: what it creates is this owner''s. Compared exactly (no padding)',
    MODIFY scope VARCHAR(8) NOT NULL
        COMMENT 'read, write or admin: the routes it may call (each scope also those below it); admin acts on every owner''s resources',
    MODIFY note VARCHAR(255) NULL
        COMMENT 'Free text: what the token is for (the spooler notes its short-lived upload tokens here)',
    MODIFY created_at DATETIME(6) NOT NULL
        COMMENT 'When it was made (UTC)',
    MODIFY expires_at DATETIME(6) NULL
        COMMENT 'When it stops working (UTC); NULL: never',
    MODIFY revoked_at DATETIME(6) NULL
        COMMENT 'When it was revoked (UTC, mlc_token_revoke); NULL: not revoked',
    MODIFY last_used_at DATETIME(6) NULL
        COMMENT 'The last request that used it (UTC), to within a minute; NULL: never used',
    COMMENT = 'API bearer tokens (docs/SECURITY.md): made by CALL mlc_token_add or mlc_token_issue and revoked by mlc_token_revoke only; the view token_list shows them without hashes. Times are UTC';

-- mlc migrate creates schema_version before it applies any file (with
-- these comments since this version); a database set up by hand may lack it.
ALTER TABLE IF EXISTS schema_version
    MODIFY version INT NOT NULL
        COMMENT 'Number of an applied sql/NNN-*.sql migration',
    MODIFY name VARCHAR(255) NOT NULL
        COMMENT 'Its file name',
    MODIFY applied_at DATETIME(6) NOT NULL
        COMMENT 'When mlc migrate applied it (UTC)',
    COMMENT = 'The schema migrations applied to this database (mlc migrate); mlc-api serves only a database that has all it was built with';
