//! Wire types of the rdpfleet agent API, shared by the agent and the server.
//!
//! Policy: request bodies (agent → server) reject unknown fields so that typos and
//! mismatched versions fail loudly; response bodies (server → agent) are read
//! leniently so that the server can add fields without breaking older agents.
#![forbid(unsafe_code)]

pub mod causes;
pub mod check;
pub mod checks;
pub mod diagnosis;
pub mod enroll;
pub mod error;
pub mod explains;
pub mod fixes;
pub mod job;
pub mod release;
pub mod remedies;
pub mod report;

/// Path prefix of version 1 of the agent API.
pub const AGENT_API_V1: &str = "/api/agent/v1";

/// Largest number of results one report may carry.
pub const MAX_RESULTS_PER_REPORT: usize = 1000;
