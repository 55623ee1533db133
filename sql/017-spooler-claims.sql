-- 017: several spoolers on one database.  A deployment or a training is
-- carried out by the one mlc-spooler that holds its claim (claimed_by)
-- until its lease ends (lease_until); the spooler takes free or expired
-- claims with SELECT ... FOR UPDATE SKIP LOCKED and renews its own while it
-- lives (scripts/mlcpy/spool.py, docs/SCALING.md "Several spoolers").
-- Rows from before this migration have no claim: the first spooler to look
-- takes them.  mlc-api never writes these columns.
ALTER TABLE deployments
    ADD COLUMN IF NOT EXISTS claimed_by VARCHAR(128) NULL
        COMMENT 'MLC_SPOOLER_ID of the mlc-spooler that looks after this deployment (starts, supervises and stops its runtime); NULL: none yet. Only that spooler writes the row''s status',
    ADD COLUMN IF NOT EXISTS lease_until DATETIME(6) NULL
        COMMENT 'Until when the claim holds (UTC, the database''s clock); the claimant renews it every third of MLC_SPOOLER_LEASE, and once it has passed another spooler may take the deployment over',
    ADD INDEX IF NOT EXISTS deployments_claim (claimed_by, lease_until)
        COMMENT 'The rows one spooler holds (its renewals and reads), and the free or expired claims';

ALTER TABLE trainings
    ADD COLUMN IF NOT EXISTS claimed_by VARCHAR(128) NULL
        COMMENT 'MLC_SPOOLER_ID of the mlc-spooler that runs this training; NULL: none yet. Only that spooler writes the row''s status',
    ADD COLUMN IF NOT EXISTS lease_until DATETIME(6) NULL
        COMMENT 'Until when the claim holds (UTC, the database''s clock); the claimant renews it every third of MLC_SPOOLER_LEASE, and once it has passed another spooler may take the training over (it runs again from the start)',
    ADD INDEX IF NOT EXISTS trainings_claim (claimed_by, lease_until)
        COMMENT 'The rows one spooler holds (its renewals and reads), and the free or expired claims';
