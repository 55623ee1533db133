-- 018: a version per model row, for the API workers' caches of models
-- already written as JSON (docs/SCALING.md, "Caches and several API
-- hosts").  A worker keeps a model's JSON text together with the row's seq
-- and row_version, and serves it again only while the database says the
-- row still has that seq and version: every read asks the database, so a
-- change made through any API host, or at the SQL console, is seen by the
-- next read on every host.  The database moves the version in the same
-- statement as every UPDATE that changes the row, whoever runs it
-- (ON UPDATE CURRENT_TIMESTAMP(6): the time of the change, to the
-- microsecond, used only as a version - two changes of one row commit
-- further apart than that); an INSERT comes with a new seq
-- (AUTO_INCREMENT, never reused), so a deleted and re-added row never
-- matches an old entry.  No trigger: creating one needs SUPER (or
-- log_bin_trust_function_creators) wherever binary logging is on, as on
-- every Galera node and replication source, and restores would need it
-- again.
--
-- The two indexes make the lists' key reads (seq and row_version of one
-- page, with modelid from the primary key) index-only: /model/all and
-- /model/search read (seq, row_version), /model/getkind (modelkind, seq,
-- row_version); models_kind is replaced by the latter, which serves every
-- query it served.

ALTER TABLE models
    ADD COLUMN row_version DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)
        ON UPDATE CURRENT_TIMESTAMP(6)
        COMMENT 'Set by the database to the time of every UPDATE that changes the row, whoever runs it: what API workers compare, with seq, before serving the model from their cache',
    ADD UNIQUE KEY models_seq_version (seq, row_version)
        COMMENT 'Pages of /model/all and /model/search read from the index alone',
    ADD KEY models_kind_version (modelkind, seq, row_version)
        COMMENT 'Pages of /model/getkind/{kind} read from the index alone',
    DROP KEY models_kind;
