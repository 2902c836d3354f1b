-- Incidents about a group of clients sharing a cause ('clients'), and the addresses each
-- connection path's host name resolved to (one name per host).
ALTER TABLE incidents DROP CONSTRAINT IF EXISTS incidents_kind_check;
ALTER TABLE incidents ADD CONSTRAINT incidents_kind_check
    CHECK (kind IN ('host', 'gateway', 'network', 'machine', 'clients'));
-- Space-separated addresses the path's host name resolved to for the client.
ALTER TABLE connection_paths ADD COLUMN addresses TEXT NOT NULL DEFAULT '';
