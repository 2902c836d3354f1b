-- Per machine: reports stored (each once) and the agent's own count of reports it dropped
-- (outbox full, or refused for good), so a gap in a machine's history is visible.
-- Keep in step with the other flavour.
ALTER TABLE machines ADD COLUMN reports_received BIGINT NOT NULL DEFAULT 0;
ALTER TABLE machines ADD COLUMN reports_dropped BIGINT NOT NULL DEFAULT 0;
