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
    /// Reports kept on disk for delivery while the server is unreachable; the oldest are dropped
    /// beyond (1000 is three and a half days at the default interval).
    pub max_queued_reports: usize,
    /// Hours of Windows event log the evidence check reads.
    pub event_window_hours: u64,
    /// RDP hosts this machine connects to (or, on a host, itself).
    pub targets: Vec<Target>,
    pub probe: ProbeConfig,
    /// Linux hosts running xrdp.
    pub xrdp: XrdpSettings,
    /// Which fixes the server may have this agent apply: a local policy the server cannot change.
    pub fixes: FixPolicy,
}

/// The machine owner's limits on server jobs (Fleet's `scripts_enabled` is the model): jobs are
/// refused, with the reason, when fixes are off, when the fix is not on a non-empty allow-list,
/// or when it is on the deny-list. Rollbacks are jobs too.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct FixPolicy {
    pub enabled: bool,
    /// Fix ids allowed; empty allows every fix not denied.
    pub allow: Vec<String>,
    /// Fix ids never allowed.
    pub deny: Vec<String>,
}

impl Default for FixPolicy {
    fn default() -> Self {
        FixPolicy { enabled: true, allow: vec![], deny: vec![] }
    }
}

impl FixPolicy {
    /// Why a job of `fix` is not allowed here, if it is not.
    pub fn refusal(&self, fix: &str) -> Option<String> {
        if !self.enabled {
            Some("fixes are turned off in this agent's configuration ([fixes] enabled = false)".into())
        } else if self.deny.iter().any(|d| d == fix) {
            Some(format!("{fix} is on this agent's deny-list ([fixes] deny)"))
        } else if !self.allow.is_empty() && !self.allow.iter().any(|a| a == fix) {
            Some(format!("{fix} is not on this agent's allow-list ([fixes] allow)"))
        } else {
            None
        }
    }
}

/// Settings of the connection-path probe.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ProbeConfig {
    /// Bound on every single network operation, in milliseconds.
    pub io_timeout_ms: u64,
    /// TCP connections made to measure loss and latency.
    pub tcp_attempts: u32,
    /// A certificate expiring within this many days is a warning.
    pub expiry_warn_days: i64,
    /// Extra trusted CAs (PEM), e.g. the enterprise CA that issues RDP certificates.
    pub ca_bundle: Option<PathBuf>,
    /// Trust the platform's root store (Windows certificate store, system bundle elsewhere).
    pub platform_roots: bool,
}

impl Default for ProbeConfig {
    fn default() -> Self {
        ProbeConfig {
            io_timeout_ms: 3000,
            tcp_attempts: 5,
            expiry_warn_days: 30,
            ca_bundle: None,
            platform_roots: true,
        }
    }
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
            max_queued_reports: 1000,
            event_window_hours: 24,
            targets: vec![],
            probe: ProbeConfig::default(),
            xrdp: XrdpSettings::default(),
            fixes: FixPolicy::default(),
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
    /// RD Gateway the client connects through, `name` or `name:port` (default port 443).
    #[serde(default)]
    pub gateway: Option<String>,
}

impl Target {
    /// Parses `host`, `host:port`, `[v6]:port` or a bare IPv6 address.
    pub fn parse(spec: &str) -> Result<Target, String> {
        let (host, port) = split_host_port(spec, 3389)?;
        Ok(Target { host, port, expected_address: None, gateway: None })
    }

    /// The gateway as (name, port).
    pub fn gateway(&self) -> Result<Option<(String, u16)>, String> {
        self.gateway.as_deref().map(|g| split_host_port(g, 443)).transpose()
    }
}

/// Splits `host[:port]`; a bare IPv6 address has no port.
pub fn split_host_port(spec: &str, default_port: u16) -> Result<(String, u16), String> {
    let spec = spec.trim();
    if spec.is_empty() {
        return Err("empty host".into());
    }
    if let Some(rest) = spec.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or_else(|| format!("{spec}: missing ']'"))?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().map_err(|_| format!("{spec}: bad port"))?,
            None if after.is_empty() => default_port,
            None => return Err(format!("{spec}: unexpected text after ']'")),
        };
        return Ok((host.to_owned(), port));
    }
    if spec.parse::<std::net::Ipv6Addr>().is_ok() {
        return Ok((spec.to_owned(), default_port));
    }
    match spec.rsplit_once(':') {
        Some((h, p)) => {
            let port: u16 = p.parse().map_err(|_| format!("{spec}: bad port"))?;
            if port == 0 || h.is_empty() {
                return Err(format!("{spec}: bad host or port"));
            }
            Ok((h.to_owned(), port))
        }
        None => Ok((spec.to_owned(), default_port)),
    }
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
        if c.max_queued_reports == 0 || c.max_queued_reports > 100_000 {
            return Err("max_queued_reports must be within 1..=100000".into());
        }
        if c.event_window_hours == 0 || c.event_window_hours > 720 {
            return Err("event_window_hours must be within 1..=720".into());
        }
        if c.probe.io_timeout_ms < 50 || c.probe.io_timeout_ms > 60_000 {
            return Err("probe.io_timeout_ms must be within 50..=60000".into());
        }
        if c.probe.tcp_attempts == 0 || c.probe.tcp_attempts > 50 {
            return Err("probe.tcp_attempts must be within 1..=50".into());
        }
        for id in c.fixes.allow.iter().chain(&c.fixes.deny) {
            if rdpfleet_proto::fixes::lookup(id).is_none() {
                return Err(format!("[fixes] names {id:?}, which is not a fix (see `rdpfleet-agent fix list`)"));
            }
        }
        for t in &c.targets {
            t.gateway()?;
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

/// `[xrdp]` in the agent configuration.
#[derive(Debug, Clone, serde::Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct XrdpSettings {
    pub ini: PathBuf,
    /// systemd unit restarted after a change (best effort).
    pub service: String,
    /// Names a renewed certificate is issued for (default: this machine's hostname).
    pub names: Vec<String>,
    pub expiry_warn_days: i64,
}

impl Default for XrdpSettings {
    fn default() -> Self {
        XrdpSettings {
            ini: PathBuf::from("/etc/xrdp/xrdp.ini"),
            service: "xrdp".into(),
            names: vec![],
            expiry_warn_days: 30,
        }
    }
}

impl XrdpSettings {
    pub fn names(&self) -> Vec<String> {
        if self.names.is_empty() { vec![crate::sysinfo::hostname()] } else { self.names.clone() }
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
        assert!(AgentConfig::parse("event_window_hours = 0").is_err());
        assert!(AgentConfig::parse("event_window_hours = 721").is_err());
        assert_eq!(AgentConfig::parse("event_window_hours = 72").unwrap().event_window_hours, 72);
        assert!(AgentConfig::parse("[[targets]]\nhost = \"\"").is_err());
        assert!(AgentConfig::parse("[[targets]]\nhost = \"a\"\nport = 0").is_err());
    }

    #[test]
    fn the_fix_policy_allows_denies_or_turns_fixes_off() {
        let c = AgentConfig::parse(
            "[fixes]\nallow = [\"host.nla.enable\", \"host.rdp.enable\"]\ndeny = [\"host.rdp.enable\"]\n",
        )
        .unwrap();
        assert_eq!(c.fixes.refusal("host.nla.enable"), None);
        assert!(c.fixes.refusal("host.rdp.enable").unwrap().contains("deny-list"));
        assert!(c.fixes.refusal("host.tls12.enable").unwrap().contains("allow-list"));
        let off = AgentConfig::parse("[fixes]\nenabled = false\n").unwrap();
        assert!(off.fixes.refusal("host.nla.enable").unwrap().contains("turned off"));
        assert_eq!(AgentConfig::default().fixes.refusal("host.rdp.enable"), None);
        assert!(AgentConfig::parse("[fixes]\ndeny = [\"host.rdp.enabel\"]\n").unwrap_err().contains("not a fix"));
        assert!(AgentConfig::parse("[fixes]\nenable = false\n").is_err(), "a typo is an error, not fixes left on");
    }

    #[test]
    fn host_port_specs() {
        assert_eq!(split_host_port("rdp01", 3389), Ok(("rdp01".into(), 3389)));
        assert_eq!(split_host_port("rdp01:3390", 3389), Ok(("rdp01".into(), 3390)));
        assert_eq!(split_host_port("[::1]:3390", 3389), Ok(("::1".into(), 3390)));
        assert_eq!(split_host_port("::1", 3389), Ok(("::1".into(), 3389)));
        assert_eq!(split_host_port("[::1]", 443), Ok(("::1".into(), 443)));
        assert!(split_host_port("rdp01:0", 3389).is_err());
        assert!(split_host_port("rdp01:x", 3389).is_err());
        assert!(split_host_port("", 3389).is_err());
        let c =
            AgentConfig::parse("[[targets]]\nhost = \"h\"\ngateway = \"gw.corp.example\"\n[probe]\ntcp_attempts = 3\n")
                .unwrap();
        assert_eq!(c.targets[0].gateway().unwrap(), Some(("gw.corp.example".into(), 443)));
        assert_eq!(c.probe.tcp_attempts, 3);
        assert!(AgentConfig::parse("[probe]\ntcp_attempts = 0\n").is_err());
    }

    #[test]
    fn missing_optional_file_gives_defaults() {
        let c = AgentConfig::load(Path::new("/nonexistent/agent.toml"), false).unwrap();
        assert_eq!(c, AgentConfig::default());
        assert!(AgentConfig::load(Path::new("/nonexistent/agent.toml"), true).is_err());
    }
}
