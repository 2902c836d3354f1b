//! Signed checkpoints of the audit chain: the entry count and the hash of the last entry,
//! signed (Ed25519, with a key derived from the audit key), appended as one JSON line to a file
//! outside the database and sent to the webhooks. Someone who can write the database *and* read
//! the audit key can rewrite the chain consistently; they cannot make it agree with checkpoints
//! already written elsewhere. `rdpfleet-server audit verify` checks the chain against them.
use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::time::Duration;

use base64::Engine;
use ed25519_dalek::{Signature, Signer, Verifier};
use serde::{Deserialize, Serialize};

use crate::store::audit::{AuditHead, AuditKey, ChainCheck};
use crate::store::{Store, StoreResult, now_ms};
use crate::webhook::{Event, Notifier};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Checkpoint {
    /// Entries in the chain when it was taken.
    pub count: i64,
    /// The hash of entry `count`.
    pub head: String,
    /// Where the keyed part of the chain begins.
    pub keyed_from: Option<i64>,
    /// Unix milliseconds.
    pub at: i64,
    /// Base64 Ed25519 public key that signed it.
    pub key: String,
    /// Base64 Ed25519 signature over [`Checkpoint::payload`].
    pub signature: String,
}

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

impl Checkpoint {
    fn payload(count: i64, head: &str, keyed_from: Option<i64>, at: i64) -> Vec<u8> {
        let keyed_from = keyed_from.map_or_else(|| "-".to_owned(), |k| k.to_string());
        format!("rdpfleet-audit-checkpoint-v1\n{count}\n{head}\n{keyed_from}\n{at}\n").into_bytes()
    }

    pub fn sign(key: &AuditKey, head: &AuditHead) -> Checkpoint {
        let sk = key.checkpoint_signing_key();
        let at = now_ms();
        let sig = sk.sign(&Self::payload(head.last_id, &head.last_hash, head.keyed_from, at));
        Checkpoint {
            count: head.last_id,
            head: head.last_hash.clone(),
            keyed_from: head.keyed_from,
            at,
            key: b64().encode(sk.verifying_key().to_bytes()),
            signature: b64().encode(sig.to_bytes()),
        }
    }

    /// Whether the checkpoint was signed by this audit key's checkpoint key.
    pub fn signed_by(&self, key: &AuditKey) -> bool {
        let vk = key.checkpoint_signing_key().verifying_key();
        let Ok(sig) = b64().decode(&self.signature) else { return false };
        let Ok(sig) = Signature::from_slice(&sig) else { return false };
        vk.verify(&Self::payload(self.count, &self.head, self.keyed_from, self.at), &sig).is_ok()
    }
}

/// Appends one checkpoint line (the file is created 0600 and only ever appended to).
pub fn append(path: &Path, c: &Checkpoint) -> std::io::Result<()> {
    let mut opts = std::fs::OpenOptions::new();
    opts.append(true).create(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts.open(path)?;
    let mut line = serde_json::to_vec(c).map_err(std::io::Error::other)?;
    line.push(b'\n');
    f.write_all(&line)?;
    f.sync_all()
}

/// Every checkpoint in the file; a line that is not one is an error naming it.
pub fn read_all(path: &Path) -> Result<Vec<Checkpoint>, String> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).map_err(|e| format!("{} line {}: not a checkpoint ({e})", path.display(), i + 1))
        })
        .collect()
}

/// Writes a checkpoint of the chain as it is now, unless it has not moved since `last_count`;
/// sends it to the webhooks. Returns the new count.
pub async fn write_now(
    store: &Store,
    path: &Path,
    notifier: &Notifier,
    last_count: Option<i64>,
) -> StoreResult<Option<Checkpoint>> {
    let head = store.audit_head().await?;
    if last_count == Some(head.last_id) {
        return Ok(None);
    }
    let c = Checkpoint::sign(store.audit_key(), &head);
    append(path, &c).map_err(|e| crate::store::StoreError::Sqlx(sqlx::Error::Io(e)))?;
    notifier.send(Event { event: "audit.checkpoint", at: c.at, subject: serde_json::to_value(&c).unwrap_or_default() });
    Ok(Some(c))
}

/// Writes a checkpoint every `every` while the chain moves, and one at shutdown.
pub fn spawn(
    store: Store,
    path: std::path::PathBuf,
    every: Duration,
    notifier: Notifier,
    cancel: tokio_util::sync::CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut last = None;
        loop {
            let stop = tokio::select! {
                () = cancel.cancelled() => true,
                () = tokio::time::sleep(every) => false,
            };
            match write_now(&store, &path, &notifier, last).await {
                Ok(Some(c)) => last = Some(c.count),
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, "could not write an audit checkpoint"),
            }
            if stop {
                return;
            }
        }
    })
}

/// What `audit verify` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verification {
    pub chain: ChainCheck,
    pub checkpoints: usize,
    /// Problems with checkpoints, each naming the checkpoint and, where it can, the entries.
    pub problems: Vec<String>,
}

impl Verification {
    pub fn ok(&self) -> bool {
        matches!(self.chain, ChainCheck::Intact { .. }) && self.problems.is_empty()
    }
}

/// Checks the chain, then every checkpoint against it: signed by this audit key, the same
/// keyed boundary, and the chain's entry `count` having the checkpoint's hash. A checkpoint that
/// disagrees while the chain itself checks out means the chain was rewritten by someone holding
/// the audit key: the first rewritten entry lies after the last checkpoint that still agrees.
pub async fn verify(store: &Store, checkpoints: &[Checkpoint]) -> StoreResult<Verification> {
    let wanted: std::collections::HashSet<i64> = checkpoints.iter().map(|c| c.count).collect();
    let mut hashes: HashMap<i64, String> = HashMap::new();
    let chain = store
        .verify_audit_chain_with(|id, h| {
            if wanted.contains(&id) {
                hashes.insert(id, h.to_owned());
            }
        })
        .await?;
    let head = store.audit_head().await?;
    let mut problems = Vec::new();
    let mut sorted: Vec<&Checkpoint> = checkpoints.iter().collect();
    sorted.sort_by_key(|c| (c.count, c.at));
    let mut last_good = 0i64;
    for c in sorted {
        let name = format!("checkpoint of {} entries ({})", c.count, crate::store::time_of(c.at));
        if !c.signed_by(store.audit_key()) {
            problems.push(format!("{name}: its signature does not verify with this audit key"));
            continue;
        }
        if c.keyed_from.is_some() && c.keyed_from != head.keyed_from {
            problems.push(format!(
                "{name}: the keyed part of the chain began at entry {:?}, the database now says {:?}",
                c.keyed_from, head.keyed_from
            ));
            continue;
        }
        if c.count == 0 {
            continue;
        }
        match hashes.get(&c.count) {
            Some(h) if *h == c.head => last_good = last_good.max(c.count),
            Some(_) => problems.push(format!(
                "{name}: entry {} has another hash than when the checkpoint was taken; an entry from {} to {} was \
                 rewritten (the first that disagrees is after entry {last_good})",
                c.count,
                last_good + 1,
                c.count
            )),
            None if matches!(chain, ChainCheck::Intact { .. }) => problems.push(format!(
                "{name}: the chain has only {} entries now (entries after {} deleted)",
                head.last_id.min(c.count),
                head.last_id
            )),
            None => {}
        }
    }
    Ok(Verification { chain, checkpoints: checkpoints.len(), problems })
}
