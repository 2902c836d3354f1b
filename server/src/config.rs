//! Server settings: defaults, then a TOML file, then `RDPFLEET_*` environment variables, then
//! command-line flags, each overriding the one before.
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

#[derive(Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Address the HTTP server listens on.
    pub listen: SocketAddr,
    /// `sqlite://FILE` (embedded, the default) or `postgres://USER@HOST/DB`.
    pub database_url: String,
    /// Ed25519 key that signs jobs; created with mode 0600 on first start.
    pub signing_key_path: PathBuf,
    /// Ed25519 key that signs agent releases (`rdpfleet-server release add`), separate from the
    /// job key: created with mode 0600 on first start; agents pin its public half at enrollment.
    pub release_key_path: PathBuf,
    /// Secret that keys the audit chain's hashes; created with mode 0600 on first start. Keep
    /// it beside the signing key, outside the database and its backups.
    pub audit_key_path: PathBuf,
    /// Signed audit checkpoints are appended here (one JSON line each).
    pub audit_checkpoint_path: PathBuf,
    /// Seconds between audit checkpoints (one is written only when the chain has moved).
    pub audit_checkpoint_secs: u64,
    /// The URL agents use to reach this server, shown in enrollment instructions.
    pub public_url: Option<String>,
    /// Largest accepted request body.
    pub max_body_bytes: usize,
    /// Longest a job poll may wait for a job.
    pub long_poll_max_secs: u64,
    /// How long a delivered job stays leased to an agent before it is delivered again.
    pub job_lease_secs: u64,
    /// `text` or `json`.
    pub log_format: LogFormat,
    /// Seconds between correlation runs (failures → incidents).
    pub correlation_interval_secs: u64,
    /// Hours a dashboard session lasts without use.
    pub session_idle_hours: u64,
    /// Session cookies with the `__Host-` prefix and `Secure` (the default). Turn off only to
    /// use the dashboard over plain HTTP from another machine (browsers treat localhost as secure).
    pub secure_cookies: bool,
    /// URLs that get a JSON POST when an incident opens or resolves and a rollout halts or completes.
    pub webhook_urls: Vec<String>,
    /// Signs webhook bodies (HMAC-SHA256 in `X-Rdpfleet-Signature`) when set.
    pub webhook_secret: Option<String>,
    /// Days of history (status transitions, trend samples) kept; 0 keeps everything.
    pub history_retention_days: u64,
    /// Seconds a client has to send a request's headers, also while a kept-alive connection
    /// idles (slow-loris protection).
    pub header_read_timeout_secs: u64,
    /// Open connections at most; agents long-poll, so allow one per agent (and raise the
    /// process's file limit to match).
    pub max_connections: usize,
    /// Reverse proxies (addresses or networks) whose `X-Forwarded-For` names the client, for
    /// sign-in and enrollment throttling. Empty (the default): the TCP peer is the client.
    pub trusted_proxies: Vec<crate::client_ip::TrustedProxy>,
    /// Rollouts over more machines than this need a second person's approval, whatever the fix.
    pub approval_above_machines: usize,
    /// A rollout's first wave holds at most this percentage of its machines (at least one).
    pub max_canary_pct: u32,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    Text,
    Json,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            database_url: "sqlite://rdpfleet.db".to_owned(),
            signing_key_path: PathBuf::from("rdpfleet-signing.key"),
            audit_key_path: PathBuf::from("rdpfleet-audit.key"),
            release_key_path: PathBuf::from("rdpfleet-release.key"),
            audit_checkpoint_path: PathBuf::from("rdpfleet-audit-checkpoints.jsonl"),
            audit_checkpoint_secs: 300,
            public_url: None,
            max_body_bytes: 1024 * 1024,
            long_poll_max_secs: 30,
            job_lease_secs: 300,
            log_format: LogFormat::Text,
            correlation_interval_secs: 30,
            session_idle_hours: 12,
            secure_cookies: true,
            webhook_urls: vec![],
            webhook_secret: None,
            history_retention_days: 180,
            header_read_timeout_secs: 10,
            max_connections: 100_000,
            trusted_proxies: vec![],
            approval_above_machines: 25,
            max_canary_pct: 5,
        }
    }
}

/// Keys taken from the environment, as `RDPFLEET_<KEY>`; other `RDPFLEET_*` variables are ignored.
const ENV_KEYS: [&str; 23] = [
    "listen",
    "database_url",
    "signing_key_path",
    "audit_key_path",
    "release_key_path",
    "audit_checkpoint_path",
    "audit_checkpoint_secs",
    "public_url",
    "max_body_bytes",
    "long_poll_max_secs",
    "job_lease_secs",
    "log_format",
    "correlation_interval_secs",
    "session_idle_hours",
    "secure_cookies",
    "webhook_urls",
    "webhook_secret",
    "history_retention_days",
    "header_read_timeout_secs",
    "max_connections",
    "trusted_proxies",
    "approval_above_machines",
    "max_canary_pct",
];

/// Overrides from command-line flags; `None` leaves the value from the layers below.
#[derive(Debug, Default, Serialize)]
pub struct FlagOverrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<SocketAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_url: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration file {0} does not exist")]
    MissingFile(PathBuf),
    #[error("invalid configuration: {0}")]
    Invalid(#[from] Box<figment::Error>),
    #[error("invalid configuration: {0}")]
    Value(String),
}

impl Settings {
    pub fn approval_policy(&self) -> crate::domain::approval::ApprovalPolicy {
        crate::domain::approval::ApprovalPolicy {
            above_machines: self.approval_above_machines,
            max_canary_pct: self.max_canary_pct,
        }
    }

    pub fn load(file: Option<&Path>, flags: &FlagOverrides) -> Result<Settings, ConfigError> {
        let mut fig = Figment::from(Serialized::defaults(Settings::default()));
        if let Some(file) = file {
            if !file.exists() {
                return Err(ConfigError::MissingFile(file.to_owned()));
            }
            fig = fig.merge(Toml::file_exact(file));
        }
        fig = fig.merge(Env::prefixed("RDPFLEET_").only(&ENV_KEYS)).merge(Serialized::defaults(flags));
        let s: Settings = fig.extract().map_err(Box::new)?;
        s.validate()?;
        Ok(s)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        crate::store::Backend::from_url(&self.database_url)
            .map_err(|_| ConfigError::Value("database_url must start with sqlite:// or postgres://".into()))?;
        if self.max_body_bytes < 1024 {
            return Err(ConfigError::Value("max_body_bytes must be at least 1024".into()));
        }
        if self.long_poll_max_secs == 0 || self.long_poll_max_secs > 300 {
            return Err(ConfigError::Value("long_poll_max_secs must be within 1..=300".into()));
        }
        if self.correlation_interval_secs == 0 || self.correlation_interval_secs > 3600 {
            return Err(ConfigError::Value("correlation_interval_secs must be within 1..=3600".into()));
        }
        if self.session_idle_hours == 0 || self.session_idle_hours > 24 * 30 {
            return Err(ConfigError::Value("session_idle_hours must be within 1..=720".into()));
        }
        if let Some(u) = self.webhook_urls.iter().find(|u| !(u.starts_with("https://") || u.starts_with("http://"))) {
            return Err(ConfigError::Value(format!("webhook URL {u:?} must be http:// or https://")));
        }
        if self.header_read_timeout_secs == 0 || self.header_read_timeout_secs > 300 {
            return Err(ConfigError::Value("header_read_timeout_secs must be within 1..=300".into()));
        }
        if self.max_connections == 0 || self.max_connections > 1_000_000 {
            return Err(ConfigError::Value("max_connections must be within 1..=1000000".into()));
        }
        if !(1..=86_400).contains(&self.audit_checkpoint_secs) {
            return Err(ConfigError::Value("audit_checkpoint_secs must be within 1..=86400".into()));
        }
        if !(1..=100).contains(&self.max_canary_pct) {
            return Err(ConfigError::Value("max_canary_pct must be within 1..=100".into()));
        }
        if self.job_lease_secs < 10 {
            return Err(ConfigError::Value("job_lease_secs must be at least 10".into()));
        }
        Ok(())
    }

    /// The URL agents should enroll against.
    /// The URL agents use: `public_url`, else the listen address when it names one host. A
    /// server listening on every address (0.0.0.0) cannot know its own name: `None`.
    pub fn known_agent_url(&self) -> Option<String> {
        match &self.public_url {
            Some(u) => Some(u.clone()),
            None if self.listen.ip().is_unspecified() => None,
            None => Some(format!("http://{}", self.listen)),
        }
    }

    /// [`Settings::known_agent_url`], or a placeholder to replace, never `0.0.0.0`.
    pub fn agent_url(&self) -> String {
        self.known_agent_url().unwrap_or_else(|| format!("https://SERVER-NAME:{}", self.listen.port()))
    }

    /// Whether browsers reach the dashboard without TLS although its cookies need it: a
    /// `Secure` cookie is dropped over plain HTTP except on loopback, so sign-in cannot stick.
    pub fn sign_in_will_not_stick(&self, host_header: Option<&str>) -> bool {
        if !self.secure_cookies || self.public_url.as_deref().is_some_and(|u| u.starts_with("https://")) {
            return false;
        }
        let host = host_header.unwrap_or_default();
        let name = host.rsplit_once(':').filter(|(_, p)| p.parse::<u16>().is_ok()).map_or(host, |(h, _)| h);
        let name = name.trim_start_matches('[').trim_end_matches(']');
        let loopback =
            name.eq_ignore_ascii_case("localhost") || name.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
        !loopback && !name.is_empty()
    }
}

/// The database URL with any password replaced, safe to log.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    match rest.split_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("listen", &self.listen)
            .field("database_url", &redact_url(&self.database_url))
            .field("signing_key_path", &self.signing_key_path)
            .field("audit_key_path", &self.audit_key_path)
            .field("release_key_path", &self.release_key_path)
            .field("audit_checkpoint_path", &self.audit_checkpoint_path)
            .field("audit_checkpoint_secs", &self.audit_checkpoint_secs)
            .field("public_url", &self.public_url)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("long_poll_max_secs", &self.long_poll_max_secs)
            .field("job_lease_secs", &self.job_lease_secs)
            .field("log_format", &self.log_format)
            .field("correlation_interval_secs", &self.correlation_interval_secs)
            .field("session_idle_hours", &self.session_idle_hours)
            .field("secure_cookies", &self.secure_cookies)
            .field("webhook_urls", &self.webhook_urls.len())
            .field("webhook_secret", &self.webhook_secret.as_ref().map(|_| "***"))
            .field("history_retention_days", &self.history_retention_days)
            .field("trusted_proxies", &self.trusted_proxies)
            .field("approval_above_machines", &self.approval_above_machines)
            .field("max_canary_pct", &self.max_canary_pct)
            .finish()
    }
}

#[cfg(test)]
#[allow(clippy::result_large_err)] // figment's Jail API returns its own large error
mod tests {
    use super::*;

    #[test]
    fn agents_are_never_told_to_reach_0_0_0_0() {
        let all = Settings { listen: "0.0.0.0:8080".parse().unwrap(), ..Settings::default() };
        assert_eq!(all.known_agent_url(), None);
        assert_eq!(all.agent_url(), "https://SERVER-NAME:8080");
        let one = Settings { listen: "10.0.0.9:8080".parse().unwrap(), ..Settings::default() };
        assert_eq!(one.agent_url(), "http://10.0.0.9:8080");
        let public = Settings { public_url: Some("https://rdpfleet.corp.example".into()), ..all };
        assert_eq!(public.agent_url(), "https://rdpfleet.corp.example");
    }

    #[test]
    fn secure_cookies_over_plain_http_away_from_loopback_are_named() {
        let s = Settings::default();
        assert!(s.sign_in_will_not_stick(Some("rdpfleet.corp.example:8080")));
        assert!(s.sign_in_will_not_stick(Some("10.0.0.9")));
        for local in ["localhost:8080", "127.0.0.1:8080", "[::1]:8080", "LOCALHOST"] {
            assert!(!s.sign_in_will_not_stick(Some(local)), "{local}");
        }
        let https = Settings { public_url: Some("https://rdpfleet.corp.example".into()), ..Settings::default() };
        assert!(!https.sign_in_will_not_stick(Some("rdpfleet.corp.example")));
        let plain = Settings { secure_cookies: false, ..Settings::default() };
        assert!(!plain.sign_in_will_not_stick(Some("rdpfleet.corp.example")));
    }

    #[test]
    fn layers_override_in_order() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "s.toml",
                "listen = \"127.0.0.1:9000\"\nlong_poll_max_secs = 10\nmax_body_bytes = 4096\n",
            )?;
            jail.set_env("RDPFLEET_LONG_POLL_MAX_SECS", "20");
            jail.set_env("RDPFLEET_TEST_UNRELATED", "x");
            let flags = FlagOverrides {
                listen: Some("127.0.0.1:9100".parse().map_err(|e| format!("{e}"))?),
                database_url: None,
            };
            let s = Settings::load(Some(Path::new("s.toml")), &flags).map_err(|e| e.to_string())?;
            assert_eq!(s.listen.port(), 9100, "flag beats file");
            assert_eq!(s.long_poll_max_secs, 20, "env beats file");
            assert_eq!(s.max_body_bytes, 4096, "file beats default");
            assert_eq!(s.database_url, "sqlite://rdpfleet.db", "default kept");
            Ok(())
        });
    }

    #[test]
    fn unknown_keys_and_bad_values_are_errors() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("typo.toml", "lisen = \"127.0.0.1:9000\"\n")?;
            let e = Settings::load(Some(Path::new("typo.toml")), &FlagOverrides::default());
            assert!(e.is_err_and(|e| e.to_string().contains("lisen")));
            jail.create_file("bad.toml", "database_url = \"mysql://x\"\n")?;
            assert!(Settings::load(Some(Path::new("bad.toml")), &FlagOverrides::default()).is_err());
            assert!(matches!(
                Settings::load(Some(Path::new("absent.toml")), &FlagOverrides::default()),
                Err(ConfigError::MissingFile(_))
            ));
            Ok(())
        });
    }

    #[test]
    fn trusted_proxies_from_file_and_environment() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("p.toml", "trusted_proxies = [\"10.0.0.0/8\", \"192.0.2.1\"]\n")?;
            let s = Settings::load(Some(Path::new("p.toml")), &FlagOverrides::default()).map_err(|e| e.to_string())?;
            assert_eq!(s.trusted_proxies.len(), 2);
            jail.set_env("RDPFLEET_TRUSTED_PROXIES", "[\"172.16.0.0/12\"]");
            let s = Settings::load(None, &FlagOverrides::default()).map_err(|e| e.to_string())?;
            assert!(s.trusted_proxies[0].contains("172.20.1.1".parse().map_err(|_| "ip")?));
            jail.set_env("RDPFLEET_TRUSTED_PROXIES", "[\"nginx\"]");
            let e = Settings::load(None, &FlagOverrides::default()).err().map(|e| e.to_string()).unwrap_or_default();
            assert!(e.contains("nginx"), "{e}");
            Ok(())
        });
    }

    #[test]
    fn passwords_never_reach_debug_output() {
        let s = Settings { database_url: "postgres://app:hunter2@db/rdpfleet".into(), ..Settings::default() };
        let dbg = format!("{s:?}");
        assert!(!dbg.contains("hunter2"));
        assert!(dbg.contains("postgres://app:***@db/rdpfleet"));
    }
}
