//! The check catalogue. Each check is one module; adding a check is adding a file and a line
//! in [`catalogue`].
use std::time::Duration;

use async_trait::async_trait;
use rdpfleet_proto::check::CheckStatus;

use std::sync::Arc;

use crate::config::{AgentConfig, Target};
use crate::probe::ProbeOptions;
use crate::probe::trust::{TrustError, TrustStore};

pub mod rdp_path;

/// Whether a check runs once per machine or once per configured RDP target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Machine,
    Target,
}

/// What a check found, before the runner stamps it with time and identity.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    pub status: CheckStatus,
    pub summary: String,
    /// Cause id from the cause catalogue, for problems.
    pub cause: Option<&'static str>,
    pub evidence: serde_json::Value,
}

impl Finding {
    pub fn pass(summary: impl Into<String>, evidence: serde_json::Value) -> Finding {
        Finding { status: CheckStatus::Pass, summary: summary.into(), cause: None, evidence }
    }
    pub fn fail(cause: &'static str, summary: impl Into<String>, evidence: serde_json::Value) -> Finding {
        Finding { status: CheckStatus::Fail, summary: summary.into(), cause: Some(cause), evidence }
    }
    pub fn skipped(summary: impl Into<String>) -> Finding {
        Finding {
            status: CheckStatus::Skipped,
            summary: summary.into(),
            cause: None,
            evidence: serde_json::Value::Null,
        }
    }
    pub fn error(summary: impl Into<String>) -> Finding {
        Finding { status: CheckStatus::Error, summary: summary.into(), cause: None, evidence: serde_json::Value::Null }
    }
}

/// Settings every check may use.
#[derive(Clone)]
pub struct CheckContext {
    pub targets: Vec<Target>,
    pub probe: ProbeOptions,
}

impl CheckContext {
    /// Builds the context from the configuration; `clock_reference` is the rdpfleet server
    /// when enrolled. Fails when the configured CA bundle cannot be read.
    pub fn from_config(config: &AgentConfig, clock_reference: Option<String>) -> Result<CheckContext, TrustError> {
        let trust = TrustStore::load(config.probe.ca_bundle.as_deref(), config.probe.platform_roots)?;
        Ok(CheckContext {
            targets: config.targets.clone(),
            probe: ProbeOptions {
                io_timeout: Duration::from_millis(config.probe.io_timeout_ms),
                tcp_attempts: config.probe.tcp_attempts,
                expiry_warn_days: config.probe.expiry_warn_days,
                trust: Arc::new(trust),
                clock_reference,
            },
        })
    }
}

#[async_trait]
pub trait Check: Send + Sync {
    /// Stable id, e.g. `net.dns`.
    fn id(&self) -> &'static str;
    fn scope(&self) -> Scope;
    /// `target` is `Some` exactly when `scope()` is `Scope::Target`.
    async fn run(&self, ctx: &CheckContext, target: Option<&Target>) -> Finding;
}

/// Every check this agent knows, in the order a troubleshooter would walk them.
pub fn catalogue() -> Vec<Box<dyn Check>> {
    vec![Box::new(rdp_path::RdpPath)]
}
