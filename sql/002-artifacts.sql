-- 002: model artifacts.  One row per stored file version; the file itself
-- lives under the artifact store at `path` (relative to MLC_ARTIFACTS) and
-- is in place before its row commits.
CREATE TABLE artifacts (
    fileid      BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
    modelid     CHAR(36)        NOT NULL,
    filekind    VARCHAR(8)      NOT NULL,
    version     INT UNSIGNED    NOT NULL,
    filename    VARCHAR(255)    NOT NULL,
    contenttype VARCHAR(255)    NOT NULL,
    path        VARCHAR(512)    NOT NULL,
    size        BIGINT UNSIGNED NOT NULL,
    sha256      CHAR(64)        NOT NULL,
    created_at  DATETIME(6)     NOT NULL,
    PRIMARY KEY (fileid),
    UNIQUE KEY artifacts_version (modelid, filekind, version),
    CONSTRAINT artifacts_kind CHECK (filekind IN ('model', 'data', 'code', 'env')),
    CONSTRAINT artifacts_fk FOREIGN KEY (modelid) REFERENCES models (modelid) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
