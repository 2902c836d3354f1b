-- Jobs still to be delivered or answered, for the server's periodic read of which machines have
-- work (finished jobs accumulate; this index stays as small as the open work).
CREATE INDEX jobs_open ON jobs (machine_id) WHERE state IN ('queued', 'leased');

-- Servers re-read recent revocations every few seconds to drop tokens they cache.
CREATE INDEX agent_credentials_revoked ON agent_credentials (revoked_at) WHERE revoked_at IS NOT NULL;
