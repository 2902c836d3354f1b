-- Incidents about a group of clients sharing a cause ('clients'), and the addresses each
-- connection path's host name resolved to (one name per host).
--
-- SQLite cannot change a CHECK constraint in place, and sqlx runs this inside a transaction,
-- where foreign keys cannot be switched off: the incidents table is copied, dropped and made
-- again under its own name with foreign-key checks deferred to the commit. Re-inserting the
-- rows gives every incident_machines / incident_events row its parent back before then.
PRAGMA defer_foreign_keys = ON;
CREATE TABLE incidents_copy AS SELECT * FROM incidents;
DROP TABLE incidents;
CREATE TABLE incidents (
    id             TEXT PRIMARY KEY,
    -- What the incident is about; stable across correlation runs (kind, scope, root cause).
    incident_key   TEXT NOT NULL,
    kind           TEXT NOT NULL CHECK (kind IN ('host', 'gateway', 'network', 'machine', 'clients')),
    scope          TEXT NOT NULL,
    root_cause     TEXT NOT NULL,
    title          TEXT NOT NULL,
    fix_id         TEXT,
    state          TEXT NOT NULL CHECK (state IN ('open', 'resolved')),
    opened_at      INTEGER NOT NULL,
    resolved_at    INTEGER,
    updated_at     INTEGER NOT NULL,
    affected_count INTEGER NOT NULL,
    -- JSON: the evidence chain that led to the root cause.
    evidence       TEXT NOT NULL
);
INSERT INTO incidents (id, incident_key, kind, scope, root_cause, title, fix_id, state, opened_at, resolved_at,
    updated_at, affected_count, evidence)
SELECT id, incident_key, kind, scope, root_cause, title, fix_id, state, opened_at, resolved_at, updated_at,
    affected_count, evidence FROM incidents_copy;
DROP TABLE incidents_copy;
CREATE UNIQUE INDEX incidents_open_key ON incidents (incident_key) WHERE state = 'open';
CREATE INDEX incidents_state ON incidents (state, opened_at);
-- Space-separated addresses the path's host name resolved to for the client.
ALTER TABLE connection_paths ADD COLUMN addresses TEXT NOT NULL DEFAULT '';
