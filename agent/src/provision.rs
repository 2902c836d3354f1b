//! The service's first start after an installer. The MSI cannot write files with content, so it
//! leaves its public properties (`SERVER_URL`, `ENROLL_TOKEN`, `ROLE`, `SITE`, `LABELS`) under
//! [`INSTALL_KEY`]; the service turns them into `agent.toml` (when there is none yet) and an
//! enrollment. `HKLM\SOFTWARE` is readable by every local user, so the token is moved at once
//! into the state directory (SYSTEM and Administrators only) and its registry value deleted; it
//! is deleted from there too once the machine is enrolled.
use std::path::{Path, PathBuf};

use anyhow::Context;
use rdpfleet_proto::enroll::MachineRole;
use serde::{Deserialize, Serialize};

use crate::config::AgentConfig;
use crate::credential::Credential;
use crate::enrollment::Enrollment;
use crate::platform::{RegValue, Registry, StateDirAccess};

/// Where the MSI writes its properties (64-bit view).
pub const INSTALL_KEY: &str = r"HKLM\SOFTWARE\rdpfleet\Install";
/// The enrollment waiting in the state directory.
const PENDING_FILE: &str = "pending-enrollment.json";

/// What an installer asked for.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct InstallSettings {
    pub server_url: Option<String>,
    pub token: Option<String>,
    pub role: Option<MachineRole>,
    pub site: Option<String>,
    pub labels: Vec<String>,
}

#[derive(Serialize, Deserialize)]
struct Pending {
    server: String,
    token: String,
}

/// The configuration an installer's settings give: only what it was told, the rest defaults.
#[derive(Serialize)]
struct WrittenConfig<'a> {
    role: MachineRole,
    #[serde(skip_serializing_if = "Option::is_none")]
    site: Option<&'a str>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    labels: &'a [String],
}

/// The installer's settings, or `None` when no installer left any.
pub fn read(registry: &dyn Registry) -> anyhow::Result<Option<InstallSettings>> {
    if !registry.key_exists(INSTALL_KEY).context("cannot read the installer's settings")? {
        return Ok(None);
    }
    let text = |name: &str| -> anyhow::Result<Option<String>> {
        Ok(match registry.get(INSTALL_KEY, name)? {
            Some(RegValue::String(s) | RegValue::ExpandString(s)) if !s.trim().is_empty() => Some(s.trim().to_owned()),
            _ => None,
        })
    };
    let role = match text("Role")? {
        None => None,
        Some(r) => Some(match r.to_ascii_lowercase().as_str() {
            "client" => MachineRole::Client,
            "host" => MachineRole::Host,
            "both" => MachineRole::Both,
            _ => anyhow::bail!("the installer's ROLE is {r:?}; it must be client, host or both"),
        }),
    };
    let labels = text("Labels")?
        .map(|l| l.split([',', ';']).map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect())
        .unwrap_or_default();
    Ok(Some(InstallSettings {
        server_url: text("ServerUrl")?,
        token: text("EnrollToken")?,
        role,
        site: text("Site")?,
        labels,
    }))
}

/// `agent.toml` for these settings.
pub fn config_text(settings: &InstallSettings) -> anyhow::Result<String> {
    let written = WrittenConfig {
        role: settings.role.unwrap_or_default(),
        site: settings.site.as_deref(),
        labels: &settings.labels,
    };
    let body = toml::to_string(&written).context("cannot write the configuration")?;
    let text = format!("# Written by the rdpfleet agent from its installer's settings; edit freely.\n{body}");
    // What we write must be what the agent accepts.
    AgentConfig::parse(&text)
        .map_err(|e| anyhow::anyhow!("the installer's settings do not make a valid configuration: {e}"))?;
    Ok(text)
}

/// Applies an installer's settings: writes `config_path` when it does not exist (an existing
/// one, e.g. after an upgrade, is the administrator's and is kept) and moves the token into the
/// state directory. Returns the configuration to run with.
pub fn apply(
    registry: &dyn Registry,
    access: &dyn StateDirAccess,
    config_path: &Path,
    config: AgentConfig,
) -> anyhow::Result<AgentConfig> {
    let Some(settings) = read(registry)? else { return Ok(config) };
    let mut config = config;
    if !config_path.exists() {
        if let Some(dir) = config_path.parent().filter(|d| !d.as_os_str().is_empty()) {
            crate::platform::state_dir::secure(access, dir)?;
        }
        let text = config_text(&settings)?;
        std::fs::write(config_path, &text).with_context(|| format!("cannot write {}", config_path.display()))?;
        let state_dir = config.state_dir.clone();
        config = AgentConfig::parse(&text).map_err(|e| anyhow::anyhow!(e))?;
        config.state_dir = state_dir;
        tracing::info!(path = %config_path.display(), "wrote the configuration from the installer's settings");
    }
    if let Some(token) = settings.token {
        let server = settings.server_url.context("the installer gave ENROLL_TOKEN without SERVER_URL")?;
        crate::platform::state_dir::secure(access, &config.state_dir)?;
        if Credential::load(&config.state_dir).is_err() {
            let pending = serde_json::to_vec(&Pending { server, token })?;
            crate::fsutil::write_private(&pending_path(&config.state_dir), &pending)
                .context("cannot keep the enrollment token")?;
        }
        // Gone from the registry either way: an enrolled machine has no use for it.
        registry.delete_value(INSTALL_KEY, "EnrollToken").context("cannot delete the token from the registry")?;
        tracing::info!("took the installer's enrollment token out of the registry");
    }
    Ok(config)
}

fn pending_path(state_dir: &Path) -> PathBuf {
    state_dir.join(PENDING_FILE)
}

/// Whether an installer's enrollment waits to be done.
pub fn pending(state_dir: &Path) -> bool {
    pending_path(state_dir).exists()
}

/// Enrolls with the waiting token; on success the token is deleted. `None`: nothing waits.
pub async fn enroll_pending(config: &AgentConfig) -> anyhow::Result<Option<Credential>> {
    let path = pending_path(&config.state_dir);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let pending: Pending = serde_json::from_slice(&bytes).with_context(|| format!("{} is damaged", path.display()))?;
    let request = Enrollment {
        server: pending.server,
        token: pending.token,
        hostname: crate::sysinfo::hostname(),
        role: config.role,
    };
    let credential = crate::enrollment::enroll(config, request).await?;
    std::fs::remove_file(&path).with_context(|| format!("cannot delete {}", path.display()))?;
    tracing::info!(machine = %credential.machine_id, "enrolled with the installer's token");
    Ok(Some(credential))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::memory::{MemoryRegistry, MemoryStateDir};

    fn installer(reg: &MemoryRegistry, values: &[(&str, &str)]) {
        reg.create_key(INSTALL_KEY).unwrap();
        for (name, value) in values {
            reg.set(INSTALL_KEY, name, &RegValue::String((*value).into())).unwrap();
        }
    }

    #[test]
    fn nothing_from_an_installer_changes_nothing() {
        let reg = MemoryRegistry::default();
        let tmp = tempfile::tempdir().unwrap();
        let config = AgentConfig { state_dir: tmp.path().join("state"), ..AgentConfig::default() };
        let path = tmp.path().join("agent.toml");
        let out = apply(&reg, &MemoryStateDir::default(), &path, config.clone()).unwrap();
        assert_eq!(out, config);
        assert!(!path.exists());
    }

    #[test]
    fn settings_become_a_config_and_the_token_leaves_the_registry() {
        let reg = MemoryRegistry::default();
        installer(
            &reg,
            &[
                ("ServerUrl", "https://rdpfleet.corp.example"),
                ("EnrollToken", "secret-token"),
                ("Role", "Host"),
                ("Site", "Berlin \"HQ\""),
                ("Labels", "finance, floor-3;;"),
            ],
        );
        let tmp = tempfile::tempdir().unwrap();
        let state = tmp.path().join("state");
        let config = AgentConfig { state_dir: state.clone(), ..AgentConfig::default() };
        let path = tmp.path().join("agent.toml");
        let out = apply(&reg, &MemoryStateDir::default(), &path, config).unwrap();
        assert_eq!(out.role, MachineRole::Host);
        assert_eq!(out.site.as_deref(), Some("Berlin \"HQ\""));
        assert_eq!(out.labels, vec!["finance".to_owned(), "floor-3".to_owned()]);
        assert_eq!(out.state_dir, state, "the state directory given on the command line is kept");
        let written = std::fs::read_to_string(&path).unwrap();
        assert!(!written.contains("secret-token"), "{written}");
        assert_eq!(reg.get(INSTALL_KEY, "EnrollToken").unwrap(), None);
        assert!(pending(&state));
        assert!(std::fs::read_to_string(pending_path(&state)).unwrap().contains("secret-token"));

        // An upgrade finds the administrator's edited file and keeps it.
        std::fs::write(&path, "role = \"both\"\n").unwrap();
        installer(&reg, &[("Role", "client")]);
        let again = apply(&reg, &MemoryStateDir::default(), &path, AgentConfig::load(&path, true).unwrap()).unwrap();
        assert_eq!(again.role, MachineRole::Both);
    }

    #[test]
    fn bad_settings_are_refused_with_the_reason() {
        let reg = MemoryRegistry::default();
        installer(&reg, &[("Role", "server")]);
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("agent.toml");
        let e = apply(&reg, &MemoryStateDir::default(), &path, AgentConfig::default()).unwrap_err();
        assert!(format!("{e:#}").contains("client, host or both"), "{e:#}");
        assert!(!path.exists());

        let reg = MemoryRegistry::default();
        installer(&reg, &[("EnrollToken", "t")]);
        let config = AgentConfig { state_dir: tmp.path().join("s"), ..AgentConfig::default() };
        let e = apply(&reg, &MemoryStateDir::default(), &path, config).unwrap_err();
        assert!(format!("{e:#}").contains("SERVER_URL"), "{e:#}");
    }

    #[test]
    fn a_state_directory_others_may_write_gets_no_token() {
        let reg = MemoryRegistry::default();
        installer(&reg, &[("ServerUrl", "https://s"), ("EnrollToken", "t")]);
        let tmp = tempfile::tempdir().unwrap();
        let state = tmp.path().join("state");
        std::fs::create_dir_all(&state).unwrap();
        let access = MemoryStateDir::default();
        access.writers.lock().unwrap().insert(state.clone(), vec!["S-1-5-32-545".into()]);
        std::fs::write(tmp.path().join("agent.toml"), "").unwrap();
        let config = AgentConfig { state_dir: state.clone(), ..AgentConfig::default() };
        assert!(apply(&reg, &access, &tmp.path().join("agent.toml"), config).is_err());
        assert!(!pending(&state));
    }
}
