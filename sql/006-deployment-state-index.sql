-- 006: mlc-spooler looks for deployments to stop (desired 'stopped',
-- status not yet 'stopped') several times a second.
ALTER TABLE deployments ADD KEY deployments_state (desired, status);
