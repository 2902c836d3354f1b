-- Fix rollouts in staged waves. Keep in step with the other flavour.
CREATE TABLE rollouts (
    id             TEXT PRIMARY KEY,
    -- The fix as proposed (catalogue id); each target carries the fix for its platform.
    fix_id         TEXT NOT NULL,
    params         TEXT NOT NULL,
    dry_run        INTEGER NOT NULL CHECK (dry_run IN (0, 1)),
    -- Where it came from, e.g. 'incident:<id>'.
    source         TEXT,
    state          TEXT NOT NULL CHECK (state IN ('awaiting_approval', 'ready', 'running', 'paused', 'halted', 'completed', 'aborted')),
    proposed_by    TEXT NOT NULL,
    approved_by    TEXT,
    -- Machines in the first wave; each later wave is `growth` times the one before.
    canary         INTEGER NOT NULL CHECK (canary > 0),
    growth         INTEGER NOT NULL CHECK (growth > 0),
    -- Failed machines in one wave beyond which the rollout halts and rolls that wave back.
    max_failures   INTEGER NOT NULL CHECK (max_failures >= 0),
    current_wave   INTEGER NOT NULL DEFAULT 0,
    halted_reason  TEXT,
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL
);
CREATE INDEX rollouts_state ON rollouts (state);

CREATE TABLE rollout_targets (
    rollout_id      TEXT NOT NULL REFERENCES rollouts (id),
    machine_id      TEXT NOT NULL REFERENCES machines (id),
    fix_id          TEXT NOT NULL,
    wave            INTEGER NOT NULL,
    state           TEXT NOT NULL CHECK (state IN ('pending', 'running', 'succeeded', 'failed', 'rolling_back', 'rolled_back', 'cancelled')),
    job_id          TEXT,
    rollback_job_id TEXT,
    message         TEXT,
    PRIMARY KEY (rollout_id, machine_id)
);
CREATE INDEX rollout_targets_wave ON rollout_targets (rollout_id, wave, state);
