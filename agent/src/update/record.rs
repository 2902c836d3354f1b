//! The update in progress, kept in the state directory across the restart: the new build
//! answers the job from it after its first report, and the watchdog watches it.
use std::path::{Path, PathBuf};

use rdpfleet_proto::job::{JobOutcome, JobResultRequest};
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

const FILE: &str = "update-pending.json";
/// The last update that completed: what a rollback job restores.
const LAST: &str = "update-last.json";

/// How the agent is started again after its binary changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "how", rename_all = "snake_case")]
pub enum Restart {
    /// A process of its own (a console, a test): the process replaces its image in place.
    Exec,
    /// Under systemd: the image is replaced in place too (the unit keeps its main PID); a
    /// revert restarts the unit.
    Systemd { unit: String },
    /// A Windows service: the watchdog restarts it through the service manager.
    WindowsService { name: String },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Progress {
    /// The new binary is in place; waiting for it to start and report.
    Installed,
    /// The watchdog put the previous binary back.
    Reverted { reason: String },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pending {
    pub job: Uuid,
    pub from_version: String,
    pub to_version: String,
    /// The agent's binary, and where the one it replaced is kept.
    pub exe: PathBuf,
    pub previous: PathBuf,
    /// Unix seconds by which the new build must have reported.
    pub deadline: i64,
    /// The process that swapped the binary (exec keeps it).
    pub pid: u32,
    /// The arguments the agent runs with (without the program).
    pub args: Vec<String>,
    pub restart: Restart,
    pub progress: Progress,
}

/// A finished update, kept for a rollback job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Last {
    pub job: Uuid,
    pub from_version: String,
    pub exe: PathBuf,
    pub previous: PathBuf,
}

fn load<T: for<'de> Deserialize<'de>>(path: &Path) -> anyhow::Result<Option<T>> {
    match std::fs::read(path) {
        Ok(b) => {
            Ok(Some(serde_json::from_slice(&b).map_err(|e| anyhow::anyhow!("{} is damaged: {e}", path.display()))?))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(anyhow::anyhow!("cannot read {}: {e}", path.display())),
    }
}

fn save<T: Serialize>(path: &Path, value: &T) -> anyhow::Result<()> {
    crate::fsutil::write_private(path, &serde_json::to_vec_pretty(value)?)
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))
}

fn remove(path: &Path) -> anyhow::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(anyhow::anyhow!("cannot delete {}: {e}", path.display()))
        }
        _ => Ok(()),
    }
}

impl Pending {
    pub fn path(state_dir: &Path) -> PathBuf {
        state_dir.join(FILE)
    }
    pub fn load(state_dir: &Path) -> anyhow::Result<Option<Pending>> {
        load(&Self::path(state_dir))
    }
    pub fn save(&self, state_dir: &Path) -> anyhow::Result<()> {
        save(&Self::path(state_dir), self)
    }
    pub fn clear(state_dir: &Path) -> anyhow::Result<()> {
        remove(&Self::path(state_dir))
    }

    /// What the build now running answers for the update job.
    pub fn answer(&self, running: &str) -> JobResultRequest {
        let evidence = json!({"from": self.from_version, "to": self.to_version, "running": running});
        match &self.progress {
            Progress::Installed if running == self.to_version => JobResultRequest {
                outcome: JobOutcome::Succeeded,
                message: format!(
                    "updated from {} to {}: the new build started and reported",
                    self.from_version, self.to_version
                ),
                evidence,
            },
            Progress::Installed => JobResultRequest {
                outcome: JobOutcome::Failed,
                message: format!("expected to run {} after the update, but {running} is running", self.to_version),
                evidence,
            },
            Progress::Reverted { reason } => JobResultRequest {
                outcome: JobOutcome::RolledBack,
                message: format!("{} was reverted to {}: {reason}", self.to_version, self.from_version),
                evidence,
            },
        }
    }
}

impl Last {
    pub fn load(state_dir: &Path) -> anyhow::Result<Option<Last>> {
        load(&state_dir.join(LAST))
    }
    pub fn save(&self, state_dir: &Path) -> anyhow::Result<()> {
        save(&state_dir.join(LAST), self)
    }
    pub fn clear(state_dir: &Path) -> anyhow::Result<()> {
        remove(&state_dir.join(LAST))
    }
}
