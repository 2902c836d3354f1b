//! Jobs the server queues. A job is acted on only when it checks out: signed by the key pinned at
//! enrollment (so a row written straight into the server's database cannot make an agent act),
//! addressed to this machine, not expired, with a nonce never seen under another job id, naming a
//! fix this agent knows. Then it runs through the fix runner (backup, apply, verify, rollback).
//!
//! A journal in the state directory records every verified job before it runs and its answer after,
//! so across restarts a job is applied at most once: a redelivered finished job gets its recorded
//! answer again, and one interrupted mid-run is run again (fixes are idempotent: a fix whose check
//! already passes changes nothing), keeping the first run's backup.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use base64::Engine;
use ed25519_dalek::{Signature, Verifier as _, VerifyingKey};
use rdpfleet_proto::job::{Job, JobAction, JobOutcome, JobResultRequest, KeyRotation};
use rdpfleet_proto::release::AGENT_UPDATE;
use serde::{Deserialize, Serialize};
use serde_json::json;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::client::{Client, ClientError};
use crate::config::XrdpSettings;
use crate::engine::fix::{self, Backup, FixOutcome};
use crate::platform::Platform;
use crate::subjects;

/// Journal entries are kept this long after their job expired.
const KEEP_AFTER_EXPIRY_SECS: i64 = 7 * 24 * 3600;

/// Why a job was not acted on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("the job is not signed")]
    Unsigned,
    #[error("the job's signature does not verify with the server key pinned at enrollment (or a valid rotation of it)")]
    BadSignature,
    #[error("the job expired at {0}")]
    Expired(OffsetDateTime),
    #[error("the job is addressed to machine {0}, not this one")]
    WrongMachine(Uuid),
    #[error("the job's nonce was already used by job {0}: a replay")]
    Replayed(Uuid),
    #[error("this agent has no fix {0:?}")]
    UnknownFix(String),
    #[error("a rollback job needs {{\"job\": <id of an applied job>}} whose backup this agent kept")]
    NoBackup,
    #[error("the pinned job-signing key is not valid: {0}")]
    BadKey(String),
    #[error("{0}")]
    LocalPolicy(String),
}

/// A key jobs may be signed with.
#[derive(Debug, Clone)]
struct TrustedKey {
    base64: String,
    key: VerifyingKey,
    /// A rotated-out key is accepted until then; the current key has none.
    valid_until: Option<OffsetDateTime>,
}

fn decode_key(public_key: &str) -> Result<VerifyingKey, String> {
    base64::engine::general_purpose::STANDARD
        .decode(public_key.trim())
        .map_err(|e| e.to_string())
        .and_then(|b| <[u8; 32]>::try_from(b.as_slice()).map_err(|_| "not 32 bytes".to_owned()))
        .and_then(|b| VerifyingKey::from_bytes(&b).map_err(|e| e.to_string()))
}

/// A base64 Ed25519 signature, if it is one.
fn decode_signature(text: &str) -> Option<Signature> {
    let bytes = base64::engine::general_purpose::STANDARD.decode(text.trim()).ok()?;
    Signature::from_slice(&bytes).ok()
}

/// Checks a job against the pinned keys, the machine, the clock and the journal's nonces.
pub struct Verifier {
    /// The current key first.
    keys: Result<Vec<TrustedKey>, String>,
    machine_id: Uuid,
}

impl Verifier {
    /// `public_key` is the base64 Ed25519 key the server handed out at enrollment.
    pub fn new(public_key: &str, machine_id: Uuid) -> Verifier {
        let keys = decode_key(public_key)
            .map(|key| vec![TrustedKey { base64: public_key.trim().to_owned(), key, valid_until: None }]);
        Verifier { keys, machine_id }
    }

    /// The pinned keys of a credential: its current key and those still in their grace period.
    pub fn of(credential: &crate::credential::Credential) -> Verifier {
        let mut v = Verifier::new(&credential.job_signing_public_key, credential.machine_id);
        if let Ok(keys) = &mut v.keys {
            for p in &credential.previous_signing_keys {
                if let Ok(key) = decode_key(&p.key) {
                    keys.push(TrustedKey { base64: p.key.trim().to_owned(), key, valid_until: Some(p.valid_until) });
                }
            }
        }
        v
    }

    /// Follows the server's key rotations: a statement counts only when the key it replaces is
    /// this agent's *current* key and its signature verifies with that key (a rotated-out key,
    /// even within its grace period, cannot name a successor). Statements are taken in order,
    /// so an agent that missed several walks the whole chain. Returns whether the keys changed.
    pub fn follow(&mut self, rotations: &[KeyRotation]) -> bool {
        let Ok(keys) = &mut self.keys else { return false };
        let mut changed = false;
        loop {
            let current = keys[0].clone();
            let next = rotations
                .iter()
                .find(|r| r.old_key.trim() == current.base64 && !keys.iter().any(|k| k.base64 == r.new_key.trim()));
            let Some(r) = next else { break };
            let signed = decode_signature(&r.signature)
                .is_some_and(|sig| current.key.verify(&r.signing_payload(), &sig).is_ok());
            let Ok(new_key) = decode_key(&r.new_key) else { break };
            if !signed {
                tracing::warn!("a job-signing key rotation does not verify with the pinned key; ignored");
                break;
            }
            keys[0].valid_until = Some(r.old_key_valid_until);
            keys.insert(0, TrustedKey { base64: r.new_key.trim().to_owned(), key: new_key, valid_until: None });
            tracing::info!(
                "the server rotated its job-signing key: the new key is pinned, the old one accepted until {}",
                r.old_key_valid_until
            );
            changed = true;
        }
        changed
    }

    /// The pinned keys as the credential keeps them: (current, previous ones still valid).
    pub fn pinned(&self, now: OffsetDateTime) -> Option<(String, Vec<crate::credential::PreviousKey>)> {
        let keys = self.keys.as_ref().ok()?;
        let previous = keys[1..]
            .iter()
            .filter_map(|k| k.valid_until.filter(|u| *u > now).map(|u| (k, u)))
            .map(|(k, u)| crate::credential::PreviousKey { key: k.base64.clone(), valid_until: u })
            .collect();
        Some((keys[0].base64.clone(), previous))
    }

    pub fn verify(&self, job: &Job, now: OffsetDateTime, journal: &Journal) -> Result<(), Refusal> {
        let keys = self.keys.as_ref().map_err(|e| Refusal::BadKey(e.clone()))?;
        let sig = job.signature.as_deref().filter(|s| !s.is_empty()).ok_or(Refusal::Unsigned)?;
        let sig = decode_signature(sig).ok_or(Refusal::BadSignature)?;
        let payload = job.signing_payload();
        let signed =
            keys.iter().filter(|k| k.valid_until.is_none_or(|u| u > now)).any(|k| k.key.verify(&payload, &sig).is_ok());
        if !signed {
            return Err(Refusal::BadSignature);
        }
        if job.machine_id != self.machine_id {
            return Err(Refusal::WrongMachine(job.machine_id));
        }
        if job.expires_at <= now {
            return Err(Refusal::Expired(job.expires_at));
        }
        if let Some(other) = journal.nonce_owner(&job.nonce).filter(|o| *o != job.id) {
            return Err(Refusal::Replayed(other));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum EntryState {
    /// Verified and started; no answer recorded yet (the agent stopped mid-run if it stays so).
    Running,
    Done {
        answer: JobResultRequest,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Entry {
    pub nonce: String,
    pub fix: String,
    pub expires_at: i64,
    #[serde(flatten)]
    pub state: EntryState,
    /// What the job's fix changed, for a later rollback job.
    #[serde(default)]
    pub backup: Option<Backup>,
}

/// Verified jobs and their answers, persisted (0600) in the state directory.
#[derive(Debug, Default)]
pub struct Journal {
    path: Option<PathBuf>,
    entries: BTreeMap<Uuid, Entry>,
}

impl Journal {
    /// Opens the journal in `state_dir`; an unreadable one is an error (never silently forgotten,
    /// which could let a job run twice).
    pub fn open(state_dir: &Path) -> anyhow::Result<Journal> {
        let path = state_dir.join("jobs.json");
        let entries = match std::fs::read(&path) {
            Ok(b) => serde_json::from_slice(&b)
                .map_err(|e| anyhow::anyhow!("job journal {} is damaged: {e}", path.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(anyhow::anyhow!("cannot read {}: {e}", path.display())),
        };
        Ok(Journal { path: Some(path), entries })
    }

    /// An in-memory journal (tests, `check --once`).
    pub fn in_memory() -> Journal {
        Journal::default()
    }

    pub fn get(&self, id: &Uuid) -> Option<&Entry> {
        self.entries.get(id)
    }

    fn nonce_owner(&self, nonce: &str) -> Option<Uuid> {
        self.entries.iter().find(|(_, e)| e.nonce == nonce).map(|(id, _)| *id)
    }

    fn put(&mut self, id: Uuid, entry: Entry) -> anyhow::Result<()> {
        let now = OffsetDateTime::now_utc().unix_timestamp();
        self.entries.retain(|_, e| e.expires_at + KEEP_AFTER_EXPIRY_SECS > now);
        self.entries.insert(id, entry);
        if let Some(path) = &self.path {
            crate::fsutil::write_private(path, &serde_json::to_vec_pretty(&self.entries)?)?;
        }
        Ok(())
    }
}

pub struct JobHandler {
    pub verifier: Verifier,
    pub journal: Journal,
    pub platform: Platform,
    pub xrdp: XrdpSettings,
    /// The machine owner's local limits (`[fixes]` in the configuration).
    pub policy: crate::config::FixPolicy,
    /// Where key rotations are recorded (the credential in the state directory); none in tests.
    pub credential: Option<(PathBuf, crate::credential::Credential)>,
    /// How the agent restarts after an update.
    pub restart: crate::update::Restart,
    /// Set once an update has handed the restart to the watchdog: take no more jobs.
    pub restarting: bool,
}

fn refused(job: &Job, r: &Refusal) -> JobResultRequest {
    JobResultRequest {
        outcome: JobOutcome::Refused,
        message: format!("refused: {r}; nothing was changed"),
        evidence: json!({"fix": job.fix, "action": job.action, "refusal": r.to_string()}),
    }
}

impl JobHandler {
    /// The answer a job gets without running: the recorded one when it ran already (delivered
    /// again after a lost answer or a server restart: nothing is re-applied), or a refusal when it
    /// does not verify or the local policy forbids its fix (not journalled: a forged copy must
    /// not block the genuine job with the same id).
    fn answer_before_running(&self, job: &Job) -> Option<JobResultRequest> {
        if let Some(Entry { state: EntryState::Done { answer }, .. }) = self.journal.get(&job.id) {
            return Some(answer.clone());
        }
        if let Err(r) = self.verifier.verify(job, OffsetDateTime::now_utc(), &self.journal) {
            return Some(refused(job, &r));
        }
        self.policy.refusal(&job.fix).map(|why| refused(job, &Refusal::LocalPolicy(why)))
    }

    /// What to answer for a job, running it when it checks out. Updates the journal.
    pub async fn decide(&mut self, job: &Job) -> anyhow::Result<JobResultRequest> {
        if let Some(answer) = self.answer_before_running(job) {
            return Ok(answer);
        }
        let Some(fix) = subjects::all_fixes(&self.xrdp).into_iter().find(|f| f.id() == job.fix) else {
            return Ok(refused(job, &Refusal::UnknownFix(job.fix.clone())));
        };
        let earlier_backup = self.journal.get(&job.id).and_then(|e| e.backup.clone());
        let rollback_of = match job.action {
            JobAction::Rollback => {
                let target = job.params.get("job").and_then(|v| v.as_str()).and_then(|s| Uuid::parse_str(s).ok());
                match target.and_then(|t| self.journal.get(&t)).and_then(|e| e.backup.clone()) {
                    Some(b) => Some(b),
                    None => return Ok(refused(job, &Refusal::NoBackup)),
                }
            }
            _ => None,
        };
        let entry = |state, backup| Entry {
            nonce: job.nonce.clone(),
            fix: job.fix.clone(),
            expires_at: job.expires_at.unix_timestamp(),
            state,
            backup,
        };
        self.journal.put(job.id, entry(EntryState::Running, earlier_backup.clone()))?;
        let platform = self.platform.clone();
        let (action, params) = (job.action, job.params.clone());
        let (answer, backup) = tokio::task::spawn_blocking(move || match (action, rollback_of) {
            (JobAction::Rollback, Some(backup)) => match backup.restore(&platform) {
                Ok(()) => (
                    JobResultRequest {
                        outcome: JobOutcome::Succeeded,
                        message: format!("restored {} item(s) saved before the fix", backup.saved.len()),
                        evidence: json!({"restored": backup}),
                    },
                    None,
                ),
                Err(e) => (
                    JobResultRequest {
                        outcome: JobOutcome::Failed,
                        message: format!("restore failed: {e}"),
                        evidence: json!({"backup": backup}),
                    },
                    None,
                ),
            },
            (action, _) => {
                let report = fix::run(fix.as_ref(), &platform, &params, action == JobAction::DryRun);
                let outcome = match report.outcome {
                    FixOutcome::Succeeded | FixOutcome::AlreadyCompliant | FixOutcome::WouldChange => {
                        JobOutcome::Succeeded
                    }
                    FixOutcome::RolledBack => JobOutcome::RolledBack,
                    FixOutcome::Failed => JobOutcome::Failed,
                };
                let backup = (report.outcome == FixOutcome::Succeeded).then(|| report.backup.clone());
                (
                    JobResultRequest { outcome, message: report.message.clone(), evidence: json!({"report": report}) },
                    backup,
                )
            }
        })
        .await?;
        // A re-run after an interruption finds the fix already applied: keep the first backup.
        let backup = backup.filter(|b| !b.saved.is_empty()).or(earlier_backup);
        self.journal.put(job.id, entry(EntryState::Done { answer: answer.clone() }, backup))?;
        Ok(answer)
    }

    /// An `agent.update` job: verified and journalled like a fix, carried out by the updater.
    /// When the binary has been swapped this restarts the agent and does not return (Unix) or
    /// leaves the restart to the watchdog (a Windows service): the new build answers.
    async fn decide_update(
        &mut self,
        client: &Client,
        machine_id: Uuid,
        job: &Job,
    ) -> anyhow::Result<Option<JobResultRequest>> {
        if let Some(answer) = self.answer_before_running(job) {
            return Ok(Some(answer));
        }
        let Some((state_dir, credential)) = self.credential.clone() else {
            return Ok(Some(refused(job, &Refusal::UnknownFix(job.fix.clone()))));
        };
        let entry = |state| Entry {
            nonce: job.nonce.clone(),
            fix: job.fix.clone(),
            expires_at: job.expires_at.unix_timestamp(),
            state,
            backup: None,
        };
        self.journal.put(job.id, entry(EntryState::Running))?;
        let ctx = crate::update::UpdateContext {
            client,
            machine_id,
            release_key: credential.release_public_key.as_deref(),
            state_dir: &state_dir,
            exe: std::env::current_exe()?,
            restart: self.restart.clone(),
        };
        let pending = match crate::update::decide(job, &ctx).await? {
            crate::update::Decision::Answer(answer) => {
                self.journal.put(job.id, entry(EntryState::Done { answer: answer.clone() }))?;
                return Ok(Some(answer));
            }
            crate::update::Decision::Restart(pending) => pending,
        };
        pending.save(&state_dir)?;
        tracing::info!(from = %pending.from_version, to = %pending.to_version, "installed the new build; restarting");
        let started = crate::update::watchdog::spawn(&pending.previous, &state_dir);
        let failed = match (started, &pending.restart) {
            (Err(e), _) => anyhow::anyhow!("cannot start the update watchdog: {e}"),
            (Ok(()), crate::update::Restart::WindowsService { .. }) => {
                // The watchdog restarts the service, which stops this process: no answer now,
                // and no further job (see `restarting`).
                self.restarting = true;
                return Ok(None);
            }
            (Ok(()), _) => match crate::update::watchdog::exec(&pending.exe, &pending.args) {
                Err(e) => e,
                Ok(()) => anyhow::anyhow!("the restart returned"),
            },
        };
        // Still here: put the old binary back and say so.
        crate::update::Pending::clear(&state_dir)?;
        let restored = std::fs::read(&pending.previous)
            .and_then(|b| crate::update::swap(&pending.exe, &crate::update::beside(&pending.exe, "failed"), &b));
        let answer = JobResultRequest {
            outcome: JobOutcome::Failed,
            message: format!(
                "could not restart with {}: {failed:#}; the previous binary is back ({restored:?})",
                pending.to_version
            ),
            evidence: json!({}),
        };
        self.journal.put(job.id, entry(EntryState::Done { answer: answer.clone() }))?;
        Ok(Some(answer))
    }

    /// After a restart for an update: once this build has reported (`reported`), answers the
    /// update job from the pending record and clears it (which tells the watchdog).
    pub async fn finish_update(
        &mut self,
        client: &Client,
        machine_id: Uuid,
        state_dir: &std::path::Path,
    ) -> anyhow::Result<()> {
        let Some(pending) = crate::update::Pending::load(state_dir)? else { return Ok(()) };
        let answer = pending.answer(crate::agent_version());
        tracing::info!(job = %pending.job, outcome = answer.outcome.as_str(), "{}", answer.message);
        if let Some(e) = self.journal.get(&pending.job).cloned() {
            self.journal.put(pending.job, Entry { state: EntryState::Done { answer: answer.clone() }, ..e })?;
        }
        if answer.outcome == JobOutcome::Succeeded {
            crate::update::Last {
                job: pending.job,
                from_version: pending.from_version.clone(),
                exe: pending.exe.clone(),
                previous: pending.previous.clone(),
            }
            .save(state_dir)?;
        }
        crate::update::Pending::clear(state_dir)?;
        client.job_result(machine_id, pending.job, &answer).await?;
        Ok(())
    }

    /// Follows the server's release key rotations from the release key pinned at enrollment: a
    /// statement counts only when signed (over the release rotation payload) by the pinned key.
    /// The new key is recorded in the credential.
    pub fn follow_release_rotations(&mut self, rotations: &[KeyRotation]) -> anyhow::Result<()> {
        let Some((state_dir, credential)) = &mut self.credential else { return Ok(()) };
        let mut changed = false;
        while let Some(pinned) = credential.release_public_key.clone() {
            let Some(r) =
                rotations.iter().find(|r| r.old_key.trim() == pinned.trim() && r.new_key.trim() != pinned.trim())
            else {
                break;
            };
            let signed = decode_key(&pinned)
                .ok()
                .zip(decode_signature(&r.signature))
                .is_some_and(|(key, sig)| key.verify(&r.release_signing_payload(), &sig).is_ok());
            if !signed || decode_key(&r.new_key).is_err() {
                tracing::warn!("a release key rotation does not verify with the pinned release key; ignored");
                break;
            }
            tracing::info!("the server rotated its release key: the new key is pinned");
            credential.release_public_key = Some(r.new_key.trim().to_owned());
            changed = true;
        }
        if changed {
            credential.save(state_dir)?;
        }
        Ok(())
    }

    /// Takes the server's key rotations into account (before any job of the same poll), and
    /// records newly pinned keys in the credential so they survive a restart.
    pub fn follow_rotations(&mut self, rotations: &[KeyRotation]) -> anyhow::Result<()> {
        if rotations.is_empty() || !self.verifier.follow(rotations) {
            return Ok(());
        }
        let Some((current, previous)) = self.verifier.pinned(OffsetDateTime::now_utc()) else { return Ok(()) };
        if let Some((state_dir, credential)) = &mut self.credential {
            credential.job_signing_public_key = current;
            credential.previous_signing_keys = previous;
            credential.save(state_dir)?;
        }
        Ok(())
    }

    pub async fn handle(&mut self, client: &Client, machine_id: Uuid, job: &Job) -> Result<(), ClientError> {
        let decided = if job.fix == AGENT_UPDATE {
            self.decide_update(client, machine_id, job).await
        } else {
            self.decide(job).await.map(Some)
        };
        let answer = match decided {
            Ok(Some(a)) => a,
            // Restarting for an update: the new build answers.
            Ok(None) => return Ok(()),
            Err(e) => JobResultRequest {
                outcome: JobOutcome::Failed,
                message: format!("the agent could not record the job: {e}; nothing was changed"),
                evidence: json!({}),
            },
        };
        match answer.outcome {
            JobOutcome::Refused => tracing::warn!(job = %job.id, fix = %job.fix, "{}", answer.message),
            _ => tracing::info!(job = %job.id, fix = %job.fix, outcome = answer.outcome.as_str(), "{}", answer.message),
        }
        client.job_result(machine_id, job.id, &answer).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::RegValue;
    use crate::platform::memory::MemoryPlatform;
    use crate::subjects::registry_fixes::{RDP_TCP_KEY, TS_KEY};
    use ed25519_dalek::{Signer, SigningKey};

    const MACHINE: Uuid = Uuid::from_u128(7);

    fn key() -> SigningKey {
        SigningKey::from_bytes(&[9u8; 32])
    }

    fn job(fix: &str, action: JobAction, params: serde_json::Value) -> Job {
        let mut j = Job {
            id: Uuid::new_v4(),
            machine_id: MACHINE,
            fix: fix.into(),
            action,
            params,
            nonce: Uuid::new_v4().to_string(),
            expires_at: OffsetDateTime::now_utc() + time::Duration::hours(1),
            signature: None,
        };
        sign(&mut j, &key());
        j
    }

    fn sign(j: &mut Job, k: &SigningKey) {
        j.signature = Some(base64::engine::general_purpose::STANDARD.encode(k.sign(&j.signing_payload()).to_bytes()));
    }

    fn handler(m: &MemoryPlatform, journal: Journal) -> JobHandler {
        let public = base64::engine::general_purpose::STANDARD.encode(key().verifying_key().to_bytes());
        JobHandler {
            policy: Default::default(),
            credential: None,
            restart: crate::update::Restart::Exec,
            restarting: false,
            verifier: Verifier::new(&public, MACHINE),
            journal,
            platform: m.platform(),
            xrdp: XrdpSettings::default(),
        }
    }

    fn host() -> MemoryPlatform {
        let m = MemoryPlatform::new();
        m.platform().registry.set(TS_KEY, "fDenyTSConnections", &RegValue::Dword(0)).unwrap();
        m.platform().registry.set(RDP_TCP_KEY, "UserAuthentication", &RegValue::Dword(0)).unwrap();
        m
    }

    fn nla(m: &MemoryPlatform) -> Option<RegValue> {
        m.platform().registry.get(RDP_TCP_KEY, "UserAuthentication").unwrap()
    }

    #[tokio::test]
    async fn unsigned_tampered_expired_replayed_and_misaddressed_jobs_are_refused() {
        let m = host();
        let mut h = handler(&m, Journal::in_memory());
        let good = job("host.nla.enable", JobAction::Apply, json!({}));

        let mut unsigned = good.clone();
        unsigned.signature = None;
        let mut tampered = good.clone();
        tampered.fix = "host.rdp.enable".into();
        let mut params_changed = good.clone();
        params_changed.params = json!({"level": 0});
        let mut other_key = good.clone();
        sign(&mut other_key, &SigningKey::from_bytes(&[1u8; 32]));
        let mut garbage = good.clone();
        garbage.signature = Some("not base64!".into());
        let mut expired = job("host.nla.enable", JobAction::Apply, json!({}));
        expired.expires_at = OffsetDateTime::now_utc() - time::Duration::seconds(1);
        sign(&mut expired, &key());
        let mut elsewhere = job("host.nla.enable", JobAction::Apply, json!({}));
        elsewhere.machine_id = Uuid::from_u128(8);
        sign(&mut elsewhere, &key());
        let unknown = job("host.format_c", JobAction::Apply, json!({}));
        for (j, why) in [
            (&unsigned, "not signed"),
            (&tampered, "signature"),
            (&params_changed, "signature"),
            (&other_key, "signature"),
            (&garbage, "signature"),
            (&expired, "expired"),
            (&elsewhere, "addressed to machine"),
            (&unknown, "no fix"),
        ] {
            let a = h.decide(j).await.unwrap();
            assert_eq!(a.outcome, JobOutcome::Refused, "{why}: {a:?}");
            assert!(a.message.contains(why), "{why}: {}", a.message);
            assert_eq!(nla(&m), Some(RegValue::Dword(0)), "{why}: nothing changed");
        }
        // The genuine job with the same id as the forged copies still runs.
        let a = h.decide(&good).await.unwrap();
        assert_eq!(a.outcome, JobOutcome::Succeeded, "{a:?}");
        assert_eq!(nla(&m), Some(RegValue::Dword(1)));

        // A replay: the same nonce under another (validly signed) id.
        let mut replay = job("host.nla.enable", JobAction::Apply, json!({}));
        replay.nonce = good.nonce.clone();
        sign(&mut replay, &key());
        let a = h.decide(&replay).await.unwrap();
        assert_eq!(a.outcome, JobOutcome::Refused);
        assert!(a.message.contains("replay"), "{}", a.message);
    }

    fn b64(k: &SigningKey) -> String {
        base64::engine::general_purpose::STANDARD.encode(k.verifying_key().to_bytes())
    }

    fn rotation(old: &SigningKey, new: &SigningKey, grace: time::Duration) -> KeyRotation {
        let issued_at = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();
        let mut r = KeyRotation {
            old_key: b64(old),
            new_key: b64(new),
            issued_at,
            old_key_valid_until: issued_at + grace,
            signature: String::new(),
        };
        r.signature = base64::engine::general_purpose::STANDARD.encode(old.sign(&r.signing_payload()).to_bytes());
        r
    }

    #[test]
    fn release_key_rotations_are_followed_from_the_pinned_release_key_only() {
        let (k1, k2, k3, stranger) = (
            key(),
            SigningKey::from_bytes(&[21; 32]),
            SigningKey::from_bytes(&[22; 32]),
            SigningKey::from_bytes(&[23; 32]),
        );
        let dir = tempfile::tempdir().unwrap();
        let credential = crate::credential::Credential {
            server: "http://127.0.0.1:1".into(),
            machine_id: Uuid::new_v4(),
            agent_token: "rfa_x".into(),
            job_signing_public_key: b64(&k1),
            previous_signing_keys: vec![],
            release_public_key: Some(b64(&k1)),
        };
        let mut h = handler(&host(), Journal::in_memory());
        h.credential = Some((dir.path().to_owned(), credential));
        let release_rotation = |old: &SigningKey, new: &SigningKey| {
            let mut r = rotation(old, new, time::Duration::ZERO);
            r.signature =
                base64::engine::general_purpose::STANDARD.encode(old.sign(&r.release_signing_payload()).to_bytes());
            r
        };
        // A job-key statement is not a release-key statement, and a stranger cannot name a key.
        let pinned = |h: &JobHandler| h.credential.as_ref().unwrap().1.release_public_key.clone().unwrap();
        h.follow_release_rotations(&[rotation(&k1, &k2, time::Duration::ZERO)]).unwrap();
        assert_eq!(pinned(&h), b64(&k1), "signed over the job payload: ignored");
        let mut forged = release_rotation(&stranger, &k3);
        forged.old_key = b64(&k1);
        h.follow_release_rotations(&[forged]).unwrap();
        assert_eq!(pinned(&h), b64(&k1), "not signed by the pinned key: ignored");
        // A chain k1 -> k2 -> k3 is walked in one go and saved.
        h.follow_release_rotations(&[release_rotation(&k2, &k3), release_rotation(&k1, &k2)]).unwrap();
        assert_eq!(pinned(&h), b64(&k3));
        let saved = crate::credential::Credential::load(dir.path()).unwrap();
        assert_eq!(saved.release_public_key, Some(b64(&k3)));
    }

    #[tokio::test]
    async fn rotations_are_followed_from_the_pinned_key_only() {
        let m = host();
        let mut h = handler(&m, Journal::in_memory());
        let (k2, k3, evil) =
            (SigningKey::from_bytes(&[2; 32]), SigningKey::from_bytes(&[3; 32]), SigningKey::from_bytes(&[66; 32]));
        let signed_by = |k: &SigningKey| {
            let mut j = job("host.nla.enable", JobAction::DryRun, json!({}));
            sign(&mut j, k);
            j
        };
        // A statement signed by another key, or naming another old key, changes nothing.
        let mut forged = rotation(&key(), &evil, time::Duration::days(1));
        forged.signature = rotation(&evil, &evil, time::Duration::days(1)).signature;
        assert!(!h.verifier.follow(&[forged, rotation(&evil, &k2, time::Duration::days(1))]));
        assert_eq!(h.decide(&signed_by(&evil)).await.unwrap().outcome, JobOutcome::Refused);
        // A chain the agent missed two steps of (given out of order): walked to the end.
        let chain = [rotation(&k2, &k3, time::Duration::days(1)), rotation(&key(), &k2, time::Duration::days(1))];
        assert!(h.verifier.follow(&chain));
        assert!(!h.verifier.follow(&chain), "nothing new the second time");
        for k in [&key(), &k2, &k3] {
            assert_eq!(h.decide(&signed_by(k)).await.unwrap().outcome, JobOutcome::Succeeded, "in the grace period");
        }
        // A rotated-out key, still valid for jobs, cannot name a successor.
        assert!(!h.verifier.follow(&[rotation(&key(), &evil, time::Duration::days(1))]));
        assert_eq!(h.decide(&signed_by(&evil)).await.unwrap().outcome, JobOutcome::Refused);
        let (current, previous) = h.verifier.pinned(OffsetDateTime::now_utc()).unwrap();
        assert_eq!((current, previous.len()), (b64(&k3), 2));
        // After the grace period the old keys open nothing.
        let mut h = handler(&m, Journal::in_memory());
        assert!(h.verifier.follow(&[rotation(&key(), &k2, time::Duration::seconds(-1))]));
        let a = h.decide(&signed_by(&key())).await.unwrap();
        assert!(a.outcome == JobOutcome::Refused && a.message.contains("signature"), "{a:?}");
        assert_eq!(h.decide(&signed_by(&k2)).await.unwrap().outcome, JobOutcome::Succeeded);
    }

    #[tokio::test]
    async fn the_local_fix_policy_refuses_jobs_the_server_signed() {
        let m = host();
        let mut h = handler(&m, Journal::in_memory());
        h.policy = crate::config::FixPolicy { enabled: true, allow: vec![], deny: vec!["host.nla.enable".into()] };
        let a = h.decide(&job("host.nla.enable", JobAction::Apply, json!({}))).await.unwrap();
        assert!(a.outcome == JobOutcome::Refused && a.message.contains("deny-list"), "{a:?}");
        assert_eq!(nla(&m), Some(RegValue::Dword(0)), "nothing changed");
        h.policy.enabled = false;
        let a = h.decide(&job("host.tls12.enable", JobAction::Apply, json!({}))).await.unwrap();
        assert!(a.outcome == JobOutcome::Refused && a.message.contains("turned off"), "{a:?}");
    }

    #[tokio::test]
    async fn a_job_is_applied_once_across_restarts_and_can_be_rolled_back() {
        let m = host();
        let dir = tempfile::tempdir().unwrap();
        let apply = job("host.nla.enable", JobAction::Apply, json!({}));
        let first = handler(&m, Journal::open(dir.path()).unwrap()).decide(&apply).await.unwrap();
        assert_eq!(first.outcome, JobOutcome::Succeeded);
        // Someone changes the value back; the job is delivered again after an agent restart.
        m.platform().registry.set(RDP_TCP_KEY, "UserAuthentication", &RegValue::Dword(0)).unwrap();
        let mut h = handler(&m, Journal::open(dir.path()).unwrap());
        let again = h.decide(&apply).await.unwrap();
        assert_eq!(again, first, "the recorded answer");
        assert_eq!(nla(&m), Some(RegValue::Dword(0)), "not applied a second time");

        // Rollback restores what the apply changed, from the journal's backup.
        m.platform().registry.set(RDP_TCP_KEY, "UserAuthentication", &RegValue::Dword(1)).unwrap();
        let rollback = job("host.nla.enable", JobAction::Rollback, json!({"job": apply.id.to_string()}));
        let a = h.decide(&rollback).await.unwrap();
        assert_eq!(a.outcome, JobOutcome::Succeeded, "{a:?}");
        assert_eq!(nla(&m), Some(RegValue::Dword(0)));
        let nothing = job("host.nla.enable", JobAction::Rollback, json!({"job": Uuid::nil().to_string()}));
        assert_eq!(h.decide(&nothing).await.unwrap().outcome, JobOutcome::Refused);

        // A dry run changes nothing and says what would change.
        let dry = job("host.nla.enable", JobAction::DryRun, json!({}));
        let a = h.decide(&dry).await.unwrap();
        assert_eq!(a.outcome, JobOutcome::Succeeded);
        assert_eq!(a.evidence["report"]["outcome"], "would_change");
        assert_eq!(nla(&m), Some(RegValue::Dword(0)));
    }

    #[tokio::test]
    async fn a_job_interrupted_mid_run_is_finished_once_keeping_its_first_backup() {
        let m = host();
        let dir = tempfile::tempdir().unwrap();
        let apply = job("host.nla.enable", JobAction::Apply, json!({}));
        // The agent stopped after applying but before recording the answer.
        let mut journal = Journal::open(dir.path()).unwrap();
        let backup = subjects::find_fix("host.nla.enable").unwrap().backup(&m.platform(), &json!({})).unwrap();
        let entry = Entry {
            nonce: apply.nonce.clone(),
            fix: apply.fix.clone(),
            expires_at: apply.expires_at.unix_timestamp(),
            state: EntryState::Running,
            backup: Some(backup.clone()),
        };
        journal.put(apply.id, entry).unwrap();
        m.platform().registry.set(RDP_TCP_KEY, "UserAuthentication", &RegValue::Dword(1)).unwrap();
        let mut h = handler(&m, Journal::open(dir.path()).unwrap());
        let a = h.decide(&apply).await.unwrap();
        assert_eq!(a.outcome, JobOutcome::Succeeded);
        assert_eq!(a.evidence["report"]["outcome"], "already_compliant", "the second run changed nothing");
        let kept = Journal::open(dir.path()).unwrap().get(&apply.id).unwrap().backup.clone();
        assert_eq!(kept, Some(backup), "the first run's backup is what a rollback restores");
        std::fs::write(dir.path().join("jobs.json"), "{broken").unwrap();
        assert!(Journal::open(dir.path()).is_err(), "a damaged journal stops the agent, never forgets");
    }
}
