-- Dashboard and correlation. Keep in step with the other flavour.

-- Browser sessions: the cookie carries a random id; only its SHA-256 is stored.
CREATE TABLE sessions (
    id_hash      TEXT PRIMARY KEY,
    user_id      TEXT NOT NULL REFERENCES users (id),
    csrf_token   TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL
);
CREATE INDEX sessions_user ON sessions (user_id);

-- A machine's worst current status and failing-check count, kept by the report transaction so
-- that fleet-wide pages never scan the results.
ALTER TABLE machines ADD COLUMN health TEXT NOT NULL DEFAULT 'unknown';
ALTER TABLE machines ADD COLUMN failing BIGINT NOT NULL DEFAULT 0;
CREATE INDEX machines_health ON machines (health, hostname);
CREATE INDEX machines_seen ON machines (last_seen_at);

-- The connection path of each client to each RDP target (from rdp.path results): what the
-- correlation engine and the connection map read.
CREATE TABLE connection_paths (
    machine_id   TEXT NOT NULL REFERENCES machines (id),
    target       TEXT NOT NULL,
    host         TEXT NOT NULL,
    gateway      TEXT,
    status       TEXT NOT NULL,
    layer        TEXT,
    cause        TEXT,
    status_since BIGINT NOT NULL,
    observed_at  BIGINT NOT NULL,
    PRIMARY KEY (machine_id, target)
);
CREATE INDEX connection_paths_host ON connection_paths (host, status);
CREATE INDEX connection_paths_status ON connection_paths (status);
CREATE INDEX check_results_status ON check_results (status);

CREATE TABLE incidents (
    id             TEXT PRIMARY KEY,
    -- What the incident is about; stable across correlation runs (kind, scope, root cause).
    incident_key   TEXT NOT NULL,
    kind           TEXT NOT NULL CHECK (kind IN ('host', 'gateway', 'network', 'machine')),
    scope          TEXT NOT NULL,
    root_cause     TEXT NOT NULL,
    title          TEXT NOT NULL,
    fix_id         TEXT,
    state          TEXT NOT NULL CHECK (state IN ('open', 'resolved')),
    opened_at      BIGINT NOT NULL,
    resolved_at    BIGINT,
    updated_at     BIGINT NOT NULL,
    affected_count BIGINT NOT NULL,
    -- JSON: the evidence chain that led to the root cause.
    evidence       TEXT NOT NULL
);
CREATE UNIQUE INDEX incidents_open_key ON incidents (incident_key) WHERE state = 'open';
CREATE INDEX incidents_state ON incidents (state, opened_at);

CREATE TABLE incident_machines (
    incident_id TEXT NOT NULL REFERENCES incidents (id),
    machine_id  TEXT NOT NULL REFERENCES machines (id),
    -- 'source': the machine at fault; 'affected': a machine that suffers from it.
    relation    TEXT NOT NULL CHECK (relation IN ('source', 'affected')),
    PRIMARY KEY (incident_id, machine_id)
);
CREATE INDEX incident_machines_machine ON incident_machines (machine_id);

CREATE TABLE incident_events (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    incident_id TEXT NOT NULL REFERENCES incidents (id),
    at          BIGINT NOT NULL,
    event       TEXT NOT NULL CHECK (event IN ('opened', 'changed', 'resolved')),
    detail      TEXT NOT NULL
);
CREATE INDEX incident_events_incident ON incident_events (incident_id, at);

-- Fleet health over time, one row per bucket (the Overview's trend chart).
CREATE TABLE health_samples (
    bucket_at        BIGINT PRIMARY KEY,
    machines         BIGINT NOT NULL,
    failing_machines BIGINT NOT NULL,
    warning_machines BIGINT NOT NULL,
    open_incidents   BIGINT NOT NULL
);

-- Named leases, so that one replica at a time runs a periodic task (correlation).
CREATE TABLE leases (
    name     TEXT PRIMARY KEY,
    holder   TEXT NOT NULL,
    until_ms BIGINT NOT NULL
);

-- Results per check, refreshed by each correlation run (the Overview's "failing most").
CREATE TABLE check_stats (
    check_id TEXT PRIMARY KEY,
    failing  BIGINT NOT NULL,
    warning  BIGINT NOT NULL
);
