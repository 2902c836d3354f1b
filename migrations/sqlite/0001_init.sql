-- rdpfleet schema, SQLite flavour. Keep in step with ../postgres/0001_init.sql:
-- same tables, same columns, same meaning. Times are Unix milliseconds (INTEGER).

CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    username      TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    role          TEXT NOT NULL CHECK (role IN ('viewer', 'operator', 'admin')),
    created_at    INTEGER NOT NULL,
    disabled_at   INTEGER
);

-- Personal API tokens for the JSON API (automation, scripts).
CREATE TABLE api_tokens (
    id           TEXT PRIMARY KEY,
    user_id      TEXT NOT NULL REFERENCES users (id),
    label        TEXT NOT NULL,
    token_hash   TEXT NOT NULL UNIQUE,
    created_at   INTEGER NOT NULL,
    revoked_at   INTEGER
);

CREATE TABLE enrollment_tokens (
    id          TEXT PRIMARY KEY,
    label       TEXT NOT NULL,
    token_hash  TEXT NOT NULL UNIQUE,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    max_uses    INTEGER NOT NULL CHECK (max_uses > 0),
    uses        INTEGER NOT NULL DEFAULT 0 CHECK (uses >= 0 AND uses <= max_uses),
    revoked_at  INTEGER
);

CREATE TABLE machines (
    id                  TEXT PRIMARY KEY,
    hostname            TEXT NOT NULL,
    role                TEXT NOT NULL CHECK (role IN ('client', 'host', 'both')),
    os                  TEXT NOT NULL,
    agent_version       TEXT NOT NULL,
    site                TEXT,
    labels              TEXT NOT NULL DEFAULT '[]',
    enrolled_at         INTEGER NOT NULL,
    last_seen_at        INTEGER NOT NULL,
    enrollment_token_id TEXT REFERENCES enrollment_tokens (id),
    -- Highest report sequence stored; a report at or below it is a duplicate.
    last_report_seq     INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX machines_hostname ON machines (hostname);
CREATE INDEX machines_site ON machines (site);

CREATE TABLE agent_credentials (
    id          TEXT PRIMARY KEY,
    machine_id  TEXT NOT NULL REFERENCES machines (id),
    token_hash  TEXT NOT NULL UNIQUE,
    created_at  INTEGER NOT NULL,
    revoked_at  INTEGER
);
CREATE INDEX agent_credentials_machine ON agent_credentials (machine_id);

-- Latest result per (machine, check, target); target '' means the machine itself.
CREATE TABLE check_results (
    machine_id   TEXT NOT NULL REFERENCES machines (id),
    check_id     TEXT NOT NULL,
    target       TEXT NOT NULL DEFAULT '',
    status       TEXT NOT NULL CHECK (status IN ('pass', 'warn', 'fail', 'error', 'skipped')),
    summary      TEXT NOT NULL,
    cause        TEXT,
    evidence     TEXT NOT NULL,
    observed_at  INTEGER NOT NULL,
    duration_ms  INTEGER NOT NULL,
    -- When the current status began (time of the last transition).
    status_since INTEGER NOT NULL,
    PRIMARY KEY (machine_id, check_id, target)
);
CREATE INDEX check_results_by_check ON check_results (check_id, status);

-- History as state transitions: a row only when a status changes.
CREATE TABLE check_transitions (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    machine_id  TEXT NOT NULL REFERENCES machines (id),
    check_id    TEXT NOT NULL,
    target      TEXT NOT NULL DEFAULT '',
    from_status TEXT,
    to_status   TEXT NOT NULL,
    cause       TEXT,
    summary     TEXT NOT NULL,
    evidence    TEXT NOT NULL,
    at          INTEGER NOT NULL
);
CREATE INDEX check_transitions_machine ON check_transitions (machine_id, at);
CREATE INDEX check_transitions_at ON check_transitions (at);

CREATE TABLE jobs (
    id               TEXT PRIMARY KEY,
    machine_id       TEXT NOT NULL REFERENCES machines (id),
    fix_id           TEXT NOT NULL,
    action           TEXT NOT NULL CHECK (action IN ('apply', 'dry_run', 'rollback')),
    params           TEXT NOT NULL,
    nonce            TEXT NOT NULL UNIQUE,
    signature        TEXT,
    state            TEXT NOT NULL CHECK (state IN ('queued', 'leased', 'succeeded', 'rolled_back', 'failed', 'refused', 'expired', 'cancelled')),
    created_at       INTEGER NOT NULL,
    expires_at       INTEGER NOT NULL,
    lease_expires_at INTEGER,
    attempts         INTEGER NOT NULL DEFAULT 0,
    outcome_message  TEXT,
    evidence         TEXT,
    finished_at      INTEGER,
    rollout_id       TEXT
);
CREATE INDEX jobs_pending ON jobs (machine_id, state, created_at);

-- Append-only audit log; each entry carries the hash of the one before it.
CREATE TABLE audit_log (
    id          INTEGER PRIMARY KEY,
    at          INTEGER NOT NULL,
    actor_kind  TEXT NOT NULL,
    actor       TEXT NOT NULL,
    action      TEXT NOT NULL,
    subject     TEXT NOT NULL,
    details     TEXT NOT NULL,
    prev_hash   TEXT NOT NULL,
    hash        TEXT NOT NULL
);
CREATE INDEX audit_log_at ON audit_log (at);

-- One row: the head of the audit chain. Appenders lock it first, which serialises the chain.
CREATE TABLE audit_head (
    id        INTEGER PRIMARY KEY CHECK (id = 1),
    last_id   INTEGER NOT NULL,
    last_hash TEXT NOT NULL
);
INSERT INTO audit_head (id, last_id, last_hash)
VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');
