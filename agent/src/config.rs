//! Agent configuration (TOML).
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use rdpfleet_proto::enroll::MachineRole;
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct AgentConfig {
    /// Where the credential and the report sequence are kept.
    pub state_dir: PathBuf,
    pub role: MachineRole,
    pub site: Option<String>,
    pub labels: Vec<String>,
    /// Seconds between check cycles.
    pub interval_secs: u64,
    /// Random spread of each interval, in percent, so a fleet does not report in lockstep.
    pub jitter_pct: u8,
    /// Longest a single check may run.
    pub check_timeout_secs: u64,
    /// Allow `http://` to a server that is not on loopback (the agent token would travel in clear).
    pub allow_insecure_http: bool,
    /// Reports kept for delivery while the server is unreachable; the oldest are dropped beyond.
    pub max_queued_reports: usize,
    /// RDP hosts this machine connects to (or, on a host, itself).
    pub targets: Vec<Target>,
}

impl Default for AgentConfig {
    fn default() -> Self {
        AgentConfig {
            state_dir: default_state_dir(),
            role: MachineRole::Client,
            site: None,
            labels: vec![],
            interval_secs: 300,
            jitter_pct: 10,
            check_timeout_secs: 20,
            allow_insecure_http: false,
            max_queued_reports: 64,
            targets: vec![],
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Target {
    /// DNS name or address, as the user types it in the RDP client.
    pub host: String,
    #[serde(default = "default_rdp_port")]
    pub port: u16,
    /// Address the name must resolve to (catches stale or split-horizon DNS).
    #[serde(default)]
    pub expected_address: Option<IpAddr>,
}

fn default_rdp_port() -> u16 {
    3389
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("invalid configuration in {path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

pub fn default_state_dir() -> PathBuf {
    if cfg!(windows) {
        PathBuf::from(r"C:\ProgramData\rdpfleet\agent")
    } else {
        PathBuf::from("/var/lib/rdpfleet-agent")
    }
}

pub fn default_config_path() -> PathBuf {
    if cfg!(windows) {
        PathBuf::from(r"C:\ProgramData\rdpfleet\agent.toml")
    } else {
        PathBuf::from("/etc/rdpfleet/agent.toml")
    }
}

impl AgentConfig {
    /// Reads `path`; when `required` is false a missing file yields the defaults.
    pub fn load(path: &Path, required: bool) -> Result<AgentConfig, ConfigError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => return Ok(AgentConfig::default()),
            Err(source) => return Err(ConfigError::Read { path: path.to_owned(), source }),
        };
        Self::parse(&text).map_err(|message| ConfigError::Invalid { path: path.to_owned(), message })
    }

    pub fn parse(text: &str) -> Result<AgentConfig, String> {
        let c: AgentConfig = toml::from_str(text).map_err(|e| e.to_string())?;
        if c.interval_secs < 5 {
            return Err("interval_secs must be at least 5".into());
        }
        if c.jitter_pct > 50 {
            return Err("jitter_pct must be at most 50".into());
        }
        if c.check_timeout_secs == 0 || c.check_timeout_secs > 300 {
            return Err("check_timeout_secs must be within 1..=300".into());
        }
        if c.max_queued_reports == 0 {
            return Err("max_queued_reports must be at least 1".into());
        }
        for t in &c.targets {
            if t.host.trim().is_empty() || t.host.len() > 253 {
                return Err(format!("target host {:?} must be 1-253 characters", t.host));
            }
            if t.port == 0 {
                return Err(format!("target {} has port 0", t.host));
            }
        }
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_targets_with_defaults() {
        let c = AgentConfig::parse(
            "role = \"host\"\ninterval_secs = 60\n[[targets]]\nhost = \"rdp01.corp.example\"\n[[targets]]\nhost = \"::1\"\nport = 3390\nexpected_address = \"::1\"\n",
        )
        .unwrap();
        assert_eq!(c.role, MachineRole::Host);
        assert_eq!(c.targets[0].port, 3389);
        assert_eq!(c.targets[0].to_string(), "rdp01.corp.example:3389");
        assert_eq!(c.targets[1].to_string(), "[::1]:3390");
        assert_eq!(c.jitter_pct, 10);
    }

    #[test]
    fn rejects_typos_and_bad_values() {
        assert!(AgentConfig::parse("intervall_secs = 60").unwrap_err().contains("intervall_secs"));
        assert!(AgentConfig::parse("interval_secs = 1").is_err());
        assert!(AgentConfig::parse("[[targets]]\nhost = \"\"").is_err());
        assert!(AgentConfig::parse("[[targets]]\nhost = \"a\"\nport = 0").is_err());
    }

    #[test]
    fn missing_optional_file_gives_defaults() {
        let c = AgentConfig::load(Path::new("/nonexistent/agent.toml"), false).unwrap();
        assert_eq!(c, AgentConfig::default());
        assert!(AgentConfig::load(Path::new("/nonexistent/agent.toml"), true).is_err());
    }
}
