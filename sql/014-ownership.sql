-- 014: ownership (docs/SECURITY.md).  The model registry is shared, but
-- every model has an owner, who alone (with admins) may change it, upload
-- to it, retrain it, check its drift and read its data, code and env
-- files.  Deployments, operations and trainings already name an owner
-- (with auth on, the owner of the token that made them).  A retraining
-- with redeploy moves only the deployments of trainings.redeploy_owner:
-- the owner of the token that started it, or NULL - every deployment of
-- the model, as before - for an admin's token or with auth off.  Models
-- and trainings from before belong to 'admin'.
--
-- Owner ids compare exactly (no padding: 'alice' is not 'alice '), as the
-- API compares them.
--
-- A deployment freezes its model's feature names and order when it is
-- created (deployments.features, a copy of the model's featurelist then):
-- predict maps rows keyed by feature name with it, so a later PATCH of
-- the model's featurelist cannot reorder what running deployments feed
-- their model.
-- A model added at the SQL console (or by a tool that predates owners)
-- is admin's too.
ALTER TABLE models
    ADD COLUMN ownerid VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin
        NOT NULL DEFAULT 'admin' AFTER modelid,
    ADD KEY models_owner (ownerid, seq);

-- trainings.ownerid exists since 010 (the owner a training counts
-- against, '' when none was given); trainings from before are admin's.
ALTER TABLE trainings
    MODIFY ownerid VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin
        NOT NULL DEFAULT '',
    ADD COLUMN redeploy_owner VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin
        NULL AFTER redeploy,
    ADD KEY trainings_owner (ownerid, created_at);
UPDATE trainings SET ownerid = 'admin' WHERE ownerid = '';

-- (deployments_owner, an index on ownerid, exists since 010.)
ALTER TABLE deployments
    MODIFY ownerid VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin NOT NULL,
    ADD COLUMN features LONGTEXT NULL CHECK (features IS NULL OR JSON_VALID(features))
        AFTER inference_data;
UPDATE deployments d JOIN models m ON m.modelid = d.modelid SET d.features = m.featurelist;

ALTER TABLE operations
    MODIFY ownerid VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin NOT NULL;

ALTER TABLE tokens
    MODIFY ownerid VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin NOT NULL;
