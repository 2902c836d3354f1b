//! What a check is: its trait, its context and its finding. The checks themselves live with
//! their subject in `subjects/`, listed in `subjects::checks`.
use std::time::Duration;

use async_trait::async_trait;
use rdpfleet_proto::check::CheckStatus;

use std::sync::Arc;

use rdpfleet_proto::enroll::MachineRole;

use crate::config::XrdpSettings;
use crate::config::{AgentConfig, Target};
use crate::platform::Platform;
use crate::probe::ProbeOptions;
use crate::probe::trust::{TrustError, TrustStore};

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
    /// A finding from a list of (cause, severity, detail): the worst decides the status.
    pub fn from_problems(ok_summary: &str, problems: &[Problem]) -> Finding {
        let worst = problems.iter().max_by_key(|(_, s, _)| *s);
        let status = crate::probe::layers::verdict_for(worst.map(|(_, s, _)| *s));
        let evidence = serde_json::json!(
            problems
                .iter()
                .map(|(c, s, d)| serde_json::json!({"cause": c, "severity": s, "detail": d}))
                .collect::<Vec<_>>()
        );
        match worst {
            Some((cause, _, _)) if status != CheckStatus::Pass => Finding {
                status,
                summary: problems.iter().map(|(_, _, d)| d.as_str()).collect::<Vec<_>>().join("; "),
                cause: Some(cause),
                evidence,
            },
            // Low-severity notes keep their words; the check still passes.
            _ if !problems.is_empty() => Finding {
                status,
                summary: problems.iter().map(|(_, _, d)| d.as_str()).collect::<Vec<_>>().join("; "),
                cause: None,
                evidence,
            },
            _ => Finding { status, summary: ok_summary.to_owned(), cause: None, evidence },
        }
    }

    pub fn error(summary: impl Into<String>) -> Finding {
        Finding { status: CheckStatus::Error, summary: summary.into(), cause: None, evidence: serde_json::Value::Null }
    }
}

/// A problem a check found: its cause, how bad it is on this machine, and the detail.
pub type Problem = (&'static str, rdpfleet_proto::causes::Severity, String);

/// A problem with its cause's own severity from the cause catalogue, so that checks name their
/// cause and do not repeat what the catalogue says. (A check that knows better — the same
/// cause is worse in its context — writes the tuple itself.)
pub fn problem(cause: &'static str, detail: String) -> Problem {
    let known = rdpfleet_proto::causes::lookup(cause);
    debug_assert!(known.is_some(), "{cause} is not in the cause catalogue");
    (cause, known.map_or(rdpfleet_proto::causes::Severity::High, |c| c.severity), detail)
}

/// Settings every check may use.
#[derive(Clone)]
pub struct CheckContext {
    pub targets: Vec<Target>,
    pub probe: ProbeOptions,
    pub platform: Platform,
    pub xrdp: XrdpSettings,
    /// Host checks run on hosts, client checks on clients, both on `both`.
    pub role: MachineRole,
    /// How far back the event-log evidence looks.
    pub event_window: Duration,
}

impl CheckContext {
    pub fn is_host(&self) -> bool {
        matches!(self.role, MachineRole::Host | MachineRole::Both)
    }
    pub fn is_client(&self) -> bool {
        matches!(self.role, MachineRole::Client | MachineRole::Both)
    }
    /// Whether this is a Windows machine (the Terminal Server key exists on every edition).
    pub fn is_windows(&self) -> bool {
        self.platform.registry.key_exists(crate::platform::registry::TS_KEY).unwrap_or(false)
    }
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
            platform: Platform::native(),
            xrdp: config.xrdp.clone(),
            role: config.role,
            event_window: Duration::from_secs(config.event_window_hours.saturating_mul(3600)),
        })
    }
}

#[async_trait]
pub trait Check: Send + Sync {
    /// Stable id, e.g. `net.dns`.
    fn id(&self) -> &'static str;
    fn scope(&self) -> Scope;
    /// Whether the check means anything on this machine (an xrdp check where xrdp is
    /// installed); checks that do not apply produce no result.
    fn applies(&self, _ctx: &CheckContext) -> bool {
        true
    }
    /// `target` is `Some` exactly when `scope()` is `Scope::Target`.
    async fn run(&self, ctx: &CheckContext, target: Option<&Target>) -> Finding;
}
