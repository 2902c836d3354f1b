//! Append-only, hash-chained audit log.
//!
//! Each entry's hash covers the previous entry's hash and all of its own fields, so an edit or
//! deletion anywhere breaks the chain from that point on. The hash is an HMAC-SHA256 keyed with
//! a secret kept outside the database (`audit_key_path`): someone who can write the database
//! but not read that file cannot rewrite an entry and recompute the hashes after it. Someone
//! with the key can; signed checkpoints (`crate::tasks::audit_checkpoint`), kept outside the database
//! and sent to the webhooks, catch that. Appenders first update the single
//! `audit_head` row, which takes a row lock (PostgreSQL) or the write lock (SQLite): the chain is
//! extended by one writer at a time even across server replicas.
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use super::{Store, StoreError, StoreResult, now_ms, with_db};

/// The secret the audit chain is keyed with.
#[derive(Clone)]
pub struct AuditKey([u8; 32]);

impl std::fmt::Debug for AuditKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AuditKey({})", self.id())
    }
}

impl AuditKey {
    pub fn from_bytes(b: [u8; 32]) -> AuditKey {
        AuditKey(b)
    }

    /// The key of stores connected without one (tests). The server and the command line always
    /// use the configured key file.
    pub fn unconfigured() -> AuditKey {
        AuditKey([0; 32])
    }

    fn hmac(&self) -> Hmac<Sha256> {
        #[allow(clippy::expect_used)] // HMAC takes keys of any length: this cannot fail.
        Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC accepts any key length")
    }

    fn mac(&self, label: &[u8]) -> [u8; 32] {
        let mut m = self.hmac();
        m.update(label);
        m.finalize().into_bytes().into()
    }

    /// Names the key without revealing it (stored in the database).
    pub fn id(&self) -> String {
        hex::encode(&self.mac(b"rdpfleet audit key id v1")[..16])
    }

    /// The Ed25519 key that signs checkpoints, derived from this one: whoever verifies the chain
    /// can check checkpoints, and the public half can be given to anyone.
    pub fn checkpoint_signing_key(&self) -> ed25519_dalek::SigningKey {
        ed25519_dalek::SigningKey::from_bytes(&self.mac(b"rdpfleet audit checkpoint signing key v1"))
    }
}

/// Who did something.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActorKind {
    User,
    Agent,
    Cli,
    System,
}

impl ActorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ActorKind::User => "user",
            ActorKind::Agent => "agent",
            ActorKind::Cli => "cli",
            ActorKind::System => "system",
        }
    }
}

#[derive(Debug, Clone)]
pub struct NewAuditEntry {
    pub actor_kind: ActorKind,
    pub actor: String,
    pub action: &'static str,
    pub subject: String,
    pub details: serde_json::Value,
}

impl NewAuditEntry {
    pub fn new(
        actor_kind: ActorKind,
        actor: impl Into<String>,
        action: &'static str,
        subject: impl Into<String>,
    ) -> Self {
        NewAuditEntry {
            actor_kind,
            actor: actor.into(),
            action,
            subject: subject.into(),
            details: serde_json::Value::Null,
        }
    }

    pub fn details(mut self, details: serde_json::Value) -> Self {
        self.details = details;
        self
    }
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AuditRow {
    pub id: i64,
    pub at: i64,
    pub actor_kind: String,
    pub actor: String,
    pub action: String,
    pub subject: String,
    pub details: String,
    pub prev_hash: String,
    pub hash: String,
}

/// Feeds the previous hash and an entry's fields to a hash, each length-prefixed so that no two
/// different entries serialise to the same bytes. `fields` are actor kind, actor, action,
/// subject and details, in that order.
fn feed_entry(mut update: impl FnMut(&[u8]), prev_hash: &str, id: i64, at: i64, fields: [&str; 5]) {
    let (id, at) = (id.to_string(), at.to_string());
    for field in [prev_hash, &id, &at].into_iter().chain(fields) {
        update(&(field.len() as u64).to_le_bytes());
        update(field.as_bytes());
    }
}

/// The hash of an entry written before the chain was keyed: SHA-256 over [`feed_entry`].
pub fn entry_hash(prev_hash: &str, id: i64, at: i64, fields: [&str; 5]) -> String {
    let mut h = Sha256::new();
    feed_entry(|b| h.update(b), prev_hash, id, at, fields);
    hex::encode(h.finalize())
}

/// The hash of an entry: HMAC-SHA256 under the audit key over [`feed_entry`].
pub fn keyed_entry_hash(key: &AuditKey, prev_hash: &str, id: i64, at: i64, fields: [&str; 5]) -> String {
    let mut h = key.hmac();
    feed_entry(|b| h.update(b), prev_hash, id, at, fields);
    hex::encode(h.finalize().into_bytes())
}

/// The error an append with another key than the chain's gets (it would break the chain).
fn key_mismatch(expected: &str, got: &str) -> sqlx::Error {
    sqlx::Error::Protocol(format!(
        "audit key mismatch: this database's audit chain is keyed with key {expected}, this server has {got} \
         (set audit_key_path to the key file the chain was written with)"
    ))
}

/// Appends inside an open transaction, so an action and its audit entry commit together.
pub(crate) trait AuditAppend {
    async fn append_audit(&mut self, key: &AuditKey, entry: &NewAuditEntry) -> Result<i64, sqlx::Error>;
}

macro_rules! impl_audit_append {
    ($conn:ty) => {
        impl AuditAppend for $conn {
            async fn append_audit(&mut self, key: &AuditKey, e: &NewAuditEntry) -> Result<i64, sqlx::Error> {
                let (id, prev, key_id): (i64, String, Option<String>) = sqlx::query_as(
                    "UPDATE audit_head SET last_id = last_id + 1 WHERE id = 1 RETURNING last_id, last_hash, key_id",
                )
                .fetch_one(&mut *self)
                .await?;
                let ours = key.id();
                match key_id {
                    Some(k) if k != ours => return Err(key_mismatch(&k, &ours)),
                    Some(_) => {}
                    // The first keyed entry of this database: the key is named and the
                    // boundary with older, unkeyed entries recorded.
                    None => {
                        sqlx::query("UPDATE audit_head SET key_id = $1, keyed_from = $2 WHERE id = 1")
                            .bind(&ours)
                            .bind(id)
                            .execute(&mut *self)
                            .await?;
                    }
                }
                let at = now_ms();
                let details = e.details.to_string();
                let hash = keyed_entry_hash(
                    key,
                    &prev,
                    id,
                    at,
                    [e.actor_kind.as_str(), &e.actor, e.action, &e.subject, &details],
                );
                sqlx::query(
                    "INSERT INTO audit_log (id, at, actor_kind, actor, action, subject, details, prev_hash, hash) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                )
                .bind(id)
                .bind(at)
                .bind(e.actor_kind.as_str())
                .bind(&e.actor)
                .bind(e.action)
                .bind(&e.subject)
                .bind(&details)
                .bind(&prev)
                .bind(&hash)
                .execute(&mut *self)
                .await?;
                sqlx::query("UPDATE audit_head SET last_hash = $1 WHERE id = 1")
                    .bind(&hash)
                    .execute(&mut *self)
                    .await?;
                Ok(id)
            }
        }
    };
}
impl_audit_append!(sqlx::SqliteConnection);
impl_audit_append!(sqlx::PgConnection);

impl Store {
    pub async fn append_audit(&self, entry: &NewAuditEntry) -> StoreResult<i64> {
        let id = with_db!(self, p => {
            let mut tx = p.begin_with(self.begin_write()).await?;
            let id = tx.append_audit(&self.audit_key, entry).await?;
            tx.commit().await?;
            id
        });
        Ok(id)
    }

    /// Entries in chain order, from `after_id` (exclusive).
    pub async fn audit_entries(&self, after_id: i64, limit: i64) -> StoreResult<Vec<AuditRow>> {
        let rows = with_db!(self, p => {
            sqlx::query_as::<_, AuditRow>(
                "SELECT id, at, actor_kind, actor, action, subject, details, prev_hash, hash \
                 FROM audit_log WHERE id > $1 ORDER BY id LIMIT $2",
            )
            .bind(after_id)
            .bind(limit)
            .fetch_all(p)
            .await?
        });
        Ok(rows)
    }
}

/// Where the audit chain breaks, if it does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChainCheck {
    Intact { entries: i64 },
    Broken { entry: i64, reason: String },
}

pub(crate) const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The chain's head row: how many entries were written, the last hash, the key and where the
/// keyed part begins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditHead {
    pub last_id: i64,
    pub last_hash: String,
    pub key_id: Option<String>,
    pub keyed_from: Option<i64>,
}

impl Store {
    pub async fn audit_head(&self) -> StoreResult<AuditHead> {
        let (last_id, last_hash, key_id, keyed_from): (i64, String, Option<String>, Option<i64>) = with_db!(self, p => {
            sqlx::query_as("SELECT last_id, last_hash, key_id, keyed_from FROM audit_head WHERE id = 1").fetch_one(p).await?
        });
        Ok(AuditHead { last_id, last_hash, key_id, keyed_from })
    }

    /// Refuses (with the reason) when the chain was keyed with another key than this store's.
    pub async fn check_audit_key(&self) -> StoreResult<()> {
        match self.audit_head().await?.key_id {
            Some(k) if k != self.audit_key.id() => Err(StoreError::Sqlx(key_mismatch(&k, &self.audit_key.id()))),
            _ => Ok(()),
        }
    }

    /// Walks the whole chain: ids without gaps from 1, each entry's `prev_hash` equal to the
    /// previous entry's hash, each hash recomputed from the fields (keyed from `keyed_from` on),
    /// and the head row pointing at the last entry. Names the first entry that does not check
    /// out (an edited row, a deleted one, or the end of the chain when its last entries were
    /// removed). `at` is called with each entry's id and hash, for checkpoint comparison.
    pub async fn verify_audit_chain(&self) -> StoreResult<ChainCheck> {
        self.verify_audit_chain_with(|_, _| {}).await
    }

    pub async fn verify_audit_chain_with(&self, mut at: impl FnMut(i64, &str)) -> StoreResult<ChainCheck> {
        let head = self.audit_head().await?;
        if let Some(k) = &head.key_id
            && *k != self.audit_key.id()
        {
            return Ok(ChainCheck::Broken {
                entry: head.keyed_from.unwrap_or(1),
                reason: format!(
                    "the chain is keyed with key {k}, but this is key {} (wrong audit_key_path?)",
                    self.audit_key.id()
                ),
            });
        }
        // Without a recorded boundary every entry must be unkeyed (an older version's chain).
        let keyed_from = head.keyed_from.unwrap_or(i64::MAX);
        let (mut expected_id, mut prev) = (1i64, GENESIS.to_owned());
        let mut after = 0;
        loop {
            let rows = self.audit_entries(after, 5000).await?;
            let Some(last) = rows.last() else { break };
            after = last.id;
            for r in &rows {
                if r.id != expected_id {
                    return Ok(ChainCheck::Broken {
                        entry: expected_id,
                        reason: format!("entry {expected_id} is missing (next is {})", r.id),
                    });
                }
                if r.prev_hash != prev {
                    return Ok(ChainCheck::Broken {
                        entry: r.id,
                        reason: "its prev_hash is not the previous entry's hash".into(),
                    });
                }
                let fields = [r.actor_kind.as_str(), &r.actor, &r.action, &r.subject, &r.details];
                let h = if r.id >= keyed_from {
                    keyed_entry_hash(&self.audit_key, &prev, r.id, r.at, fields)
                } else {
                    entry_hash(&prev, r.id, r.at, fields)
                };
                if h != r.hash {
                    return Ok(ChainCheck::Broken {
                        entry: r.id,
                        reason: "its fields do not match its hash (edited, or re-hashed without the audit key)".into(),
                    });
                }
                at(r.id, &r.hash);
                prev = r.hash.clone();
                expected_id += 1;
            }
        }
        if head.last_id != expected_id - 1 || head.last_hash != prev {
            return Ok(ChainCheck::Broken {
                entry: expected_id,
                reason: format!(
                    "the chain ends at entry {} but {} were written (entries deleted at the end)",
                    expected_id - 1,
                    head.last_id
                ),
            });
        }
        Ok(ChainCheck::Intact { entries: expected_id - 1 })
    }
}

/// Filters of the Audit page; every field optional.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuditFilter {
    /// Exact actor (user name, machine id, "rollout-engine").
    pub actor: Option<String>,
    /// Action or action prefix, e.g. `rollout.` or `job.finished`.
    pub action: Option<String>,
    /// Subject (an id or a name).
    pub subject: Option<String>,
    /// Entries older than this id (the next page).
    pub before: Option<i64>,
}

impl Store {
    /// Entries matching the filter, newest first.
    pub async fn audit_search(&self, f: &AuditFilter, limit: i64) -> StoreResult<Vec<AuditRow>> {
        let none = |v: &Option<String>| v.as_deref().map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned);
        let action =
            none(&f.action).map(|a| format!("{}%", a.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_")));
        let rows = with_db!(self, p => {
            sqlx::query_as::<_, AuditRow>(
                "SELECT id, at, actor_kind, actor, action, subject, details, prev_hash, hash FROM audit_log \
                 WHERE ($1 IS NULL OR actor = $1) AND ($2 IS NULL OR action LIKE $2 ESCAPE '\\') AND ($3 IS NULL OR subject = $3) \
                 AND id < $4 ORDER BY id DESC LIMIT $5",
            )
            .bind(none(&f.actor))
            .bind(action)
            .bind(none(&f.subject))
            .bind(f.before.unwrap_or(i64::MAX))
            .bind(limit)
            .fetch_all(p)
            .await?
        });
        Ok(rows)
    }
}
