-- 020: the comment of artifacts.path names both shapes of a stored file's
-- path.  An upload whose name was taken (two API hosts storing the same
-- version at once on one shared store, or a file no row names) stores its
-- bytes beside it, under v<version>-<8 hex>-<filename>
-- (app/route-artifacts.c, store_once).  Nothing but the comment changes:
-- the definition is 002's, as 015 restated it.
ALTER TABLE artifacts
    MODIFY path VARCHAR(512) NOT NULL
        COMMENT 'Where the file is, relative to MLC_ARTIFACTS: <modelid>/<filekind>/v<version>-<filename>, or <modelid>/<filekind>/v<version>-<8 hex digits>-<filename> when that name was already taken (two API hosts storing the same version at once, or a file no row names). The file is in place before the row commits';
