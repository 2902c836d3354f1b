//! Enrolling this machine with a server: one path for `rdpfleet-agent enroll` and for the
//! service's first start after an installer left an enrollment token.
use anyhow::Context;
use rdpfleet_proto::enroll::{EnrollRequest, MachineRole};

use crate::client::{Client, parse_server_url};
use crate::config::AgentConfig;
use crate::credential::Credential;

/// What the server needs to make a machine.
pub struct Enrollment {
    pub server: String,
    pub token: String,
    pub hostname: String,
    pub role: MachineRole,
}

/// Enrolls and saves the credential in the state directory; returns it.
pub async fn enroll(config: &AgentConfig, request: Enrollment) -> anyhow::Result<Credential> {
    let platform = crate::platform::Platform::native();
    crate::platform::state_dir::secure(platform.state_dir.as_ref(), &config.state_dir)?;
    let base = parse_server_url(&request.server, config.allow_insecure_http)?;
    // The credential is written after the server has made the machine: a state directory that
    // cannot take it would leave a machine on the server that no agent will ever report for.
    crate::fsutil::check_writable(&config.state_dir)
        .with_context(|| format!("the state directory {} is not writable", config.state_dir.display()))?;
    let client = Client::new(base, None)?;
    let req = EnrollRequest {
        token: request.token.trim().to_owned(),
        hostname: request.hostname,
        role: request.role,
        os: crate::sysinfo::os_description(),
        agent_version: crate::agent_version().to_owned(),
        site: config.site.clone(),
        labels: config.labels.clone(),
    };
    let resp = client.enroll(&req).await.context("enrollment failed")?;
    let credential = Credential {
        server: request.server.trim().trim_end_matches('/').to_owned(),
        machine_id: resp.machine_id,
        agent_token: resp.agent_token,
        job_signing_public_key: resp.job_signing_public_key,
        previous_signing_keys: vec![],
        release_public_key: resp.release_signing_public_key,
    };
    credential.save(&config.state_dir)?;
    // A new credential starts a new sequence on the server.
    let seq_path = config.state_dir.join("sequence");
    if seq_path.exists() {
        std::fs::remove_file(&seq_path).with_context(|| format!("cannot reset {}", seq_path.display()))?;
    }
    Ok(credential)
}
