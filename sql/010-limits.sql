-- 010: caps on deployments and trainings (MLC_MAX_DEPLOYMENTS[_PER_OWNER],
-- MLC_MAX_TRAININGS[_PER_OWNER]).
--
-- limit_locks has one row per kind of job.  POST /deployment/add and
-- POST /mltraining/add lock their kind's row (SELECT ... FOR UPDATE) in the
-- transaction that counts what is in use and inserts the new row, so that
-- two requests can never both take the last place.
CREATE TABLE IF NOT EXISTS limit_locks (
    name VARCHAR(32) NOT NULL,
    PRIMARY KEY (name)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
INSERT IGNORE INTO limit_locks (name) VALUES ('deployments'), ('trainings');

-- The owner a training counts against (the optional "ownerid" of
-- POST /mltraining/add; '' when none was given).
ALTER TABLE trainings ADD COLUMN IF NOT EXISTS ownerid VARCHAR(255) NOT NULL DEFAULT '' AFTER modelid;
-- Counting what is in use: trainings waiting or running; deployments not
-- stopped per owner.
ALTER TABLE trainings ADD KEY IF NOT EXISTS trainings_state (status, ownerid);
ALTER TABLE deployments ADD KEY IF NOT EXISTS deployments_owner (ownerid, status);
