-- Control of people over the fleet. Keep in step with the other flavour.

-- Who made an account and who last raised its role: an approver must not be the proposer's
-- creation (directly or through others). Deleted accounts keep their row (and their name,
-- so that no new account can take the name the audit log shows) with sessions and tokens gone.
ALTER TABLE users ADD COLUMN created_by TEXT;
ALTER TABLE users ADD COLUMN promoted_by TEXT;
ALTER TABLE users ADD COLUMN role_changed_at INTEGER;
ALTER TABLE users ADD COLUMN deleted_at INTEGER;

-- API tokens: optional expiry, last use, and a scope ('read' tokens never change anything).
ALTER TABLE api_tokens ADD COLUMN expires_at INTEGER;
ALTER TABLE api_tokens ADD COLUMN last_used_at INTEGER;
ALTER TABLE api_tokens ADD COLUMN scope TEXT NOT NULL DEFAULT 'operate' CHECK (scope IN ('read', 'operate'));
CREATE INDEX api_tokens_user ON api_tokens (user_id);

-- The proposer by id (names can outlive their accounts) and why the rollout needs approval.
ALTER TABLE rollouts ADD COLUMN proposed_by_id TEXT;
ALTER TABLE rollouts ADD COLUMN approval_reasons TEXT NOT NULL DEFAULT '[]';

-- Job-signing keys this database has known, by fingerprint (SHA-256 of the public key): a
-- server refuses to start with a key that is not the current one. A rotated-out key stays
-- accepted by agents until grace_until.
CREATE TABLE signing_keys (
    fingerprint   TEXT PRIMARY KEY,
    public_key    TEXT NOT NULL,
    state         TEXT NOT NULL CHECK (state IN ('current', 'retired')),
    created_at    INTEGER NOT NULL,
    retired_at    INTEGER,
    -- The statement, signed by the key it replaces, that introduced this key (NULL for the first).
    rotation      TEXT
);

-- The audit chain is keyed (HMAC-SHA256 with a secret kept outside the database) from entry
-- keyed_from on; entries before it were written by an older version with plain SHA-256.
-- key_id identifies the key (an HMAC of a constant), so a wrong key is refused, not mixed in.
ALTER TABLE audit_head ADD COLUMN key_id TEXT;
ALTER TABLE audit_head ADD COLUMN keyed_from INTEGER;
