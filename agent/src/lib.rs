//! rdpfleet agent: runs the check catalogue on a schedule, reports to the server, polls jobs.
#![deny(unsafe_code)]

pub mod backoff;
pub mod cli;
pub mod client;
pub mod config;
pub mod credential;
pub mod engine;
pub mod enrollment;
pub mod evidence;
pub mod fsutil;
pub mod hints;
pub mod jobs;
pub mod outbox;
pub mod platform;
pub mod probe;
pub mod provision;
pub mod reporter;
pub mod run_loop;
pub mod runner;
pub mod sequence;
pub mod service;
pub mod subjects;
pub mod sysinfo;

/// Version reported to the server.
pub const AGENT_VERSION: &str = env!("CARGO_PKG_VERSION");
