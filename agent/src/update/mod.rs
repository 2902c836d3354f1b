//! `agent.update` jobs: the agent replaces its own binary with a release the server signed.
//!
//! The job (signed by the job key like every job) names a release; the agent checks that it is
//! for this platform and newer than the running build (an older one only through a rollback
//! job), downloads it over its authenticated API, and checks its size, SHA-256 and the release
//! key's signature — the release key was pinned at enrollment and is not the job key. Then it
//! swaps the binary (the running one renamed aside, the new one renamed into place), records the
//! update in the state directory, starts a watchdog from the previous binary and restarts. The
//! new build answers the job after its first report; if it does not start and report within the
//! job's health gate, the watchdog puts the previous binary back and restarts that, which then
//! answers that the update was rolled back.
use std::path::{Path, PathBuf};

use base64::Engine;
use ed25519_dalek::{Signature, Verifier as _, VerifyingKey};
use rdpfleet_proto::job::{Job, JobAction, JobOutcome, JobResultRequest};
use rdpfleet_proto::release::{Platform, UpdateParams, signing_payload};
use serde_json::json;
use sha2::Digest;
use uuid::Uuid;

use crate::client::Client;

pub mod record;
pub mod watchdog;

pub use record::{Last, Pending, Progress, Restart};

/// What to do with an update job.
pub enum Decision {
    /// Answer now (refused, failed, a dry run, already current).
    Answer(JobResultRequest),
    /// The binary is swapped: restart; the next build answers.
    Restart(Pending),
}

/// What an update needs from the running agent.
pub struct UpdateContext<'a> {
    pub client: &'a Client,
    pub machine_id: Uuid,
    /// The release key pinned at enrollment.
    pub release_key: Option<&'a str>,
    pub state_dir: &'a Path,
    /// The binary to replace (the running one).
    pub exe: PathBuf,
    pub restart: Restart,
}

fn answer(outcome: JobOutcome, message: String, evidence: serde_json::Value) -> Decision {
    Decision::Answer(JobResultRequest { outcome, message, evidence })
}

fn refuse(message: String) -> Decision {
    answer(JobOutcome::Refused, format!("refused: {message}; nothing was changed"), json!({}))
}

/// Whether `candidate` is a newer semantic version than `running`.
fn newer(candidate: &str, running: &str) -> Result<bool, String> {
    let c = semver::Version::parse(candidate).map_err(|e| format!("{candidate:?} is not a version: {e}"))?;
    let r = semver::Version::parse(running).map_err(|e| format!("this build's version {running:?}: {e}"))?;
    Ok(c > r)
}

/// Checks the release key's signature over the release's identity.
fn signed(params: &UpdateParams, release_key: &str) -> Result<(), String> {
    let key = base64::engine::general_purpose::STANDARD
        .decode(release_key.trim())
        .ok()
        .and_then(|b| <[u8; 32]>::try_from(b.as_slice()).ok())
        .and_then(|b| VerifyingKey::from_bytes(&b).ok())
        .ok_or("the pinned release key is not valid")?;
    let signature = base64::engine::general_purpose::STANDARD
        .decode(params.signature.trim())
        .ok()
        .and_then(|b| Signature::from_slice(&b).ok())
        .ok_or("the release's signature is malformed")?;
    key.verify(&signing_payload(&params.version, params.platform, &params.sha256), &signature)
        .map_err(|_| "the release's signature does not verify with the release key pinned at enrollment".to_owned())
}

/// Decides an `agent.update` job (apply, dry run or rollback).
pub async fn decide(job: &Job, ctx: &UpdateContext<'_>) -> anyhow::Result<Decision> {
    let running = crate::agent_version();
    if job.action == JobAction::Rollback {
        return rollback(job, ctx, running);
    }
    let params: UpdateParams = match serde_json::from_value(job.params.clone()) {
        Ok(p) => p,
        Err(e) => return Ok(refuse(format!("the update's parameters are not valid: {e}"))),
    };
    if Platform::current() != Some(params.platform) {
        return Ok(refuse(format!(
            "the release is for {}, this agent runs on {}",
            params.platform,
            Platform::current().map_or("an unsupported platform", Platform::as_str)
        )));
    }
    if params.version == running {
        let evidence = json!({"running": running});
        return Ok(answer(JobOutcome::Succeeded, format!("already running {running}"), evidence));
    }
    match newer(&params.version, running) {
        Ok(true) => {}
        Ok(false) => {
            return Ok(refuse(format!(
                "{} is not newer than the running {running} (a downgrade is done by rolling the update back)",
                params.version
            )));
        }
        Err(e) => return Ok(refuse(e)),
    }
    let Some(release_key) = ctx.release_key else {
        return Ok(refuse("no release key was pinned at enrollment (enroll again with a server that has one)".into()));
    };
    if let Err(e) = signed(&params, release_key) {
        return Ok(refuse(e));
    }
    let bytes = match ctx.client.download_release(ctx.machine_id, params.release, params.size).await {
        Ok(b) => b,
        Err(e) => {
            return Ok(answer(
                JobOutcome::Failed,
                format!("cannot download release {}: {e}; nothing was changed", params.version),
                json!({}),
            ));
        }
    };
    let sha256 = hex_sha256(&bytes);
    if bytes.len() as u64 != params.size || !sha256.eq_ignore_ascii_case(params.sha256.trim()) {
        return Ok(refuse(format!(
            "the downloaded release does not match the signed one ({} bytes, SHA-256 {sha256}; signed: {} bytes, {})",
            bytes.len(),
            params.size,
            params.sha256
        )));
    }
    let evidence = json!({"from": running, "to": params.version, "sha256": sha256, "size": bytes.len()});
    if job.action == JobAction::DryRun {
        let message =
            format!("release {} checks out (signature, SHA-256, platform); would replace {running}", params.version);
        return Ok(answer(JobOutcome::Succeeded, message, evidence));
    }
    let previous = previous_path(&ctx.exe);
    if let Err(e) = swap(&ctx.exe, &previous, &bytes) {
        return Ok(answer(
            JobOutcome::Failed,
            format!("cannot install {}: {e}; nothing was changed", params.version),
            evidence,
        ));
    }
    let pending = Pending {
        job: job.id,
        from_version: running.to_owned(),
        to_version: params.version.clone(),
        exe: ctx.exe.clone(),
        previous,
        deadline: time::OffsetDateTime::now_utc().unix_timestamp()
            + i64::try_from(params.health_gate_secs.clamp(10, 86_400)).unwrap_or(900),
        pid: std::process::id(),
        args: std::env::args().skip(1).collect(),
        restart: ctx.restart.clone(),
        progress: Progress::Installed,
    };
    Ok(Decision::Restart(pending))
}

/// A rollback job of an update: the binary the update replaced goes back.
fn rollback(job: &Job, ctx: &UpdateContext<'_>, running: &str) -> anyhow::Result<Decision> {
    let of = job.params.get("job").and_then(|v| v.as_str()).and_then(|s| Uuid::parse_str(s).ok());
    let last = Last::load(ctx.state_dir)?;
    let Some(last) = last.filter(|l| Some(l.job) == of && l.previous.exists()) else {
        return Ok(refuse("this agent kept no binary from that update".into()));
    };
    if last.from_version == running {
        return Ok(answer(JobOutcome::Succeeded, format!("already running {running}"), json!({"running": running})));
    }
    let bytes = std::fs::read(&last.previous)?;
    let aside = beside(&last.exe, "rolledback");
    if let Err(e) = swap(&last.exe, &aside, &bytes) {
        return Ok(answer(JobOutcome::Failed, format!("cannot put {} back: {e}", last.from_version), json!({})));
    }
    Ok(Decision::Restart(Pending {
        job: job.id,
        from_version: running.to_owned(),
        to_version: last.from_version,
        exe: last.exe,
        previous: aside,
        deadline: time::OffsetDateTime::now_utc().unix_timestamp() + 900,
        pid: std::process::id(),
        args: std::env::args().skip(1).collect(),
        restart: ctx.restart.clone(),
        progress: Progress::Installed,
    }))
}

fn hex_sha256(bytes: &[u8]) -> String {
    sha2::Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// The files an update may leave beside the binary, by suffix.
pub const LEFTOVERS: [&str; 5] = ["previous", "new", "restore", "rolledback", "failed"];

/// `exe` with `.suffix` appended (`rdpfleet-agent.exe.previous`).
pub fn beside(exe: &Path, suffix: &str) -> PathBuf {
    let mut name = exe.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".");
    name.push(suffix);
    exe.with_file_name(name)
}

/// Where the binary an update replaces is kept.
pub fn previous_path(exe: &Path) -> PathBuf {
    beside(exe, "previous")
}

/// Deletes what updates left beside `exe` (the MSI's uninstall runs this).
pub fn remove_leftovers(exe: &Path) -> std::io::Result<()> {
    for suffix in LEFTOVERS {
        match std::fs::remove_file(beside(exe, suffix)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    Ok(())
}

/// Puts `bytes` in place of `exe`, keeping the old binary at `aside`. Both renames are within
/// one directory, so `exe` is always a whole binary; Windows lets a running image be renamed.
pub fn swap(exe: &Path, aside: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let staged = beside(exe, "new");
    write_executable(&staged, bytes)?;
    let _ = std::fs::remove_file(aside);
    std::fs::rename(exe, aside)?;
    if let Err(e) = std::fs::rename(&staged, exe) {
        let _ = std::fs::rename(aside, exe);
        return Err(e);
    }
    Ok(())
}

/// Writes a complete executable file (fsynced) at `path`.
pub fn write_executable(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o755);
    let mut f = opts.open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

/// The service name when this process runs as a Windows service.
static SERVICE_NAME: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Records that this process is the Windows service `name` (an update restarts it through the
/// service manager).
pub fn set_service_name(name: &str) {
    let _ = SERVICE_NAME.set(name.to_owned());
}

/// How this process is started again: by the service manager it runs under, or by itself.
pub fn restart_mode() -> Restart {
    if let Some(name) = SERVICE_NAME.get() {
        return Restart::WindowsService { name: name.clone() };
    }
    if std::env::var_os("INVOCATION_ID").is_some() {
        if let Some(unit) = systemd_unit() {
            return Restart::Systemd { unit };
        }
    }
    Restart::Exec
}

/// The systemd unit of this process, from its cgroup.
fn systemd_unit() -> Option<String> {
    let text = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    text.lines().filter_map(|l| l.rsplit('/').next()).find(|u| u.ends_with(".service")).map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_compare_semantically() {
        assert_eq!(newer("0.10.0", "0.9.0"), Ok(true));
        assert_eq!(newer("0.1.0", "0.1.0"), Ok(false));
        assert_eq!(newer("0.1.0", "0.2.0"), Ok(false));
        assert_eq!(newer("1.0.0", "1.0.0-rc.1"), Ok(true));
        assert!(newer("latest", "0.1.0").is_err());
    }

    #[test]
    fn signatures_bind_version_platform_and_hash() {
        use ed25519_dalek::{Signer, SigningKey};
        let key = SigningKey::from_bytes(&[7; 32]);
        let public = base64::engine::general_purpose::STANDARD.encode(key.verifying_key().to_bytes());
        let mut p = UpdateParams {
            release: Uuid::new_v4(),
            version: "0.2.0".into(),
            platform: Platform::LinuxX86_64,
            sha256: "ab".repeat(32),
            size: 10,
            signature: String::new(),
            health_gate_secs: 60,
        };
        p.signature = base64::engine::general_purpose::STANDARD
            .encode(key.sign(&signing_payload(&p.version, p.platform, &p.sha256)).to_bytes());
        assert_eq!(signed(&p, &public), Ok(()));
        let other = SigningKey::from_bytes(&[8; 32]);
        let other = base64::engine::general_purpose::STANDARD.encode(other.verifying_key().to_bytes());
        assert!(signed(&p, &other).is_err(), "another key");
        let mut changed = p.clone();
        changed.version = "0.3.0".into();
        assert!(signed(&changed, &public).is_err(), "another version");
        let mut changed = p;
        changed.sha256 = "cd".repeat(32);
        assert!(signed(&changed, &public).is_err(), "another binary");
    }

    #[test]
    fn a_swap_keeps_the_old_binary_aside() {
        let dir = tempfile::tempdir().unwrap();
        let exe = dir.path().join("rdpfleet-agent");
        std::fs::write(&exe, b"old").unwrap();
        let aside = previous_path(&exe);
        swap(&exe, &aside, b"new").unwrap();
        assert_eq!(std::fs::read(&exe).unwrap(), b"new");
        assert_eq!(std::fs::read(&aside).unwrap(), b"old");
        assert!(!dir.path().join("rdpfleet-agent.new").exists());
        std::fs::write(beside(&exe, "restore"), b"x").unwrap();
        remove_leftovers(&exe).unwrap();
        assert!(!aside.exists() && !beside(&exe, "restore").exists() && exe.exists(), "only the leftovers go");
        // The directory is gone: the swap fails and nothing changes.
        let gone = dir.path().join("missing/rdpfleet-agent");
        assert!(swap(&gone, &previous_path(&gone), b"x").is_err());
    }
}
