//! Background work of a running server, each on its own schedule and (where one replica must do
//! it alone) under a lease: correlation of failures into incidents, the rollout engine, the
//! audit checkpoints, the group commit of reports, the Overview's fleet counts, and the
//! in-memory index that wakes long-polling agents.
pub mod audit_checkpoint;
pub mod correlation;
pub mod fleet_counts;
pub mod job_wakeup;
pub mod report_writer;
pub mod rollout_engine;
