-- 001: the model registry.
-- models holds one row per registered model; list-valued metadata is kept
-- as JSON text exactly as validated (numbers keep the digits the client
-- sent).  seq gives a stable insertion order for paging.  Tags are also
-- stored one per row in model_tags so that tag search is an index lookup.

CREATE TABLE models (
    seq              BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
    modelid          CHAR(36)     NOT NULL,
    modelname        VARCHAR(255) NOT NULL,
    modelkind        VARCHAR(64)  NOT NULL,
    hyperparameter   LONGTEXT NULL CHECK (hyperparameter IS NULL OR JSON_VALID(hyperparameter)),
    modelperformance LONGTEXT NULL CHECK (modelperformance IS NULL OR JSON_VALID(modelperformance)),
    trainingresource LONGTEXT NULL CHECK (trainingresource IS NULL OR JSON_VALID(trainingresource)),
    runresource      LONGTEXT NULL CHECK (runresource IS NULL OR JSON_VALID(runresource)),
    featurelist      LONGTEXT NULL CHECK (featurelist IS NULL OR JSON_VALID(featurelist)),
    inference        LONGTEXT NULL CHECK (inference IS NULL OR JSON_VALID(inference)),
    modeltags        LONGTEXT NULL CHECK (modeltags IS NULL OR JSON_VALID(modeltags)),
    drift_detection  LONGTEXT NULL CHECK (drift_detection IS NULL OR JSON_VALID(drift_detection)),
    created_at       DATETIME(6)  NOT NULL,
    updated_at       DATETIME(6)  NOT NULL,
    PRIMARY KEY (modelid),
    UNIQUE KEY models_seq (seq),
    KEY models_kind (modelkind, seq)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE model_tags (
    tag        VARCHAR(255)    NOT NULL,
    model_seq  BIGINT UNSIGNED NOT NULL,
    modelid    CHAR(36)        NOT NULL,
    PRIMARY KEY (tag, model_seq),
    KEY model_tags_model (modelid),
    CONSTRAINT model_tags_fk FOREIGN KEY (modelid) REFERENCES models (modelid) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
