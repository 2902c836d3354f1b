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
pub mod update;

/// The version this build reports and compares releases with: the crate's, unless the program
/// that links the agent stamps another with [`cli::main_as`] (a release pipeline's build number).
pub fn agent_version() -> &'static str {
    VERSION.get().copied().unwrap_or(env!("CARGO_PKG_VERSION"))
}

static VERSION: std::sync::OnceLock<&'static str> = std::sync::OnceLock::new();
