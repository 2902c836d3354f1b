//! The job-signing keys this database has known, by fingerprint. A server refuses to start with
//! a key that is not the current one: a lost or replaced key file would otherwise make a new key,
//! and every agent (which pinned the old one) would refuse every job from then on.
use super::audit::{AuditAppend, NewAuditEntry};
use super::{Store, StoreResult, now_ms, with_db};

/// What a key signs: jobs, or agent releases. Each purpose has its own current key and its own
/// chain of rotations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyPurpose {
    Jobs,
    Releases,
}

impl KeyPurpose {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyPurpose::Jobs => "jobs",
            KeyPurpose::Releases => "releases",
        }
    }
}

/// How a server's key relates to the database's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyCheck {
    /// The database knew no key: this one is now its current key.
    Registered,
    Current,
    /// This key was rotated out at this time; the current key has this fingerprint.
    Retired {
        retired_at: i64,
        current: String,
    },
    /// Another key is current.
    Mismatch {
        current: String,
    },
}

impl Store {
    /// Compares the server's key with the database's current key (registering it when the
    /// database has none, atomically across replicas starting together).
    pub async fn check_signing_key(
        &self,
        purpose: KeyPurpose,
        fingerprint: &str,
        public_key: &str,
    ) -> StoreResult<KeyCheck> {
        let check = with_db!(self, p => {
            let mut tx = p.begin_with(self.begin_write()).await?;
            // Serialises with other replicas through the audit head's lock.
            sqlx::query("UPDATE audit_head SET last_id = last_id WHERE id = 1").execute(&mut *tx).await?;
            let current: Option<String> =
                sqlx::query_scalar("SELECT fingerprint FROM signing_keys WHERE state = 'current' AND purpose = $1")
                    .bind(purpose.as_str())
                    .fetch_optional(&mut *tx)
                    .await?;
            let check = match current {
                None => {
                    sqlx::query(
                        "INSERT INTO signing_keys (fingerprint, public_key, state, created_at, purpose) VALUES ($1, $2, 'current', $3, $4)",
                    )
                    .bind(fingerprint)
                    .bind(public_key)
                    .bind(now_ms())
                    .bind(purpose.as_str())
                    .execute(&mut *tx)
                    .await?;
                    KeyCheck::Registered
                }
                Some(c) if c == fingerprint => KeyCheck::Current,
                Some(current) => {
                    let retired: Option<Option<i64>> =
                        sqlx::query_scalar("SELECT retired_at FROM signing_keys WHERE fingerprint = $1 AND state = 'retired'")
                            .bind(fingerprint)
                            .fetch_optional(&mut *tx)
                            .await?;
                    match retired {
                        Some(at) => KeyCheck::Retired { retired_at: at.unwrap_or(0), current },
                        None => KeyCheck::Mismatch { current },
                    }
                }
            };
            tx.commit().await?;
            check
        });
        Ok(check)
    }

    /// Makes `new` the current key in place of `old` (which must be current), keeping the signed
    /// rotation statement for agents; `false` when `old` is not the current key. `resigned`
    /// (release id, new signature) re-signs the stored releases with a new release key.
    #[allow(clippy::too_many_arguments)]
    pub async fn rotate_signing_key(
        &self,
        purpose: KeyPurpose,
        resigned: &[(uuid::Uuid, String)],
        old_fingerprint: &str,
        new_fingerprint: &str,
        new_public_key: &str,
        rotation: &str,
        audit: NewAuditEntry,
    ) -> StoreResult<bool> {
        let now = now_ms();
        let done = with_db!(self, p => {
            let mut tx = p.begin_with(self.begin_write()).await?;
            let n = sqlx::query(
                "UPDATE signing_keys SET state = 'retired', retired_at = $1 WHERE fingerprint = $2 AND state = 'current' AND purpose = $3",
            )
            .bind(now)
            .bind(old_fingerprint)
            .bind(purpose.as_str())
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if n != 1 {
                tx.rollback().await?;
                return Ok(false);
            }
            sqlx::query(
                "INSERT INTO signing_keys (fingerprint, public_key, state, created_at, rotation, purpose) VALUES ($1, $2, 'current', $3, $4, $5)",
            )
            .bind(new_fingerprint)
            .bind(new_public_key)
            .bind(now)
            .bind(rotation)
            .bind(purpose.as_str())
            .execute(&mut *tx)
            .await?;
            for (release, signature) in resigned {
                sqlx::query("UPDATE agent_releases SET signature = $1, key_fingerprint = $2 WHERE id = $3")
                    .bind(signature)
                    .bind(new_fingerprint)
                    .bind(release.to_string())
                    .execute(&mut *tx)
                    .await?;
            }
            tx.append_audit(&self.audit_key, &audit).await?;
            tx.commit().await?;
            true
        });
        Ok(done)
    }

    /// Every rotation statement (JSON) of the keys of `purpose`, oldest first.
    pub async fn key_rotations(&self, purpose: KeyPurpose) -> StoreResult<Vec<String>> {
        let rows = with_db!(self, p => {
            sqlx::query_scalar(
                "SELECT rotation FROM signing_keys WHERE rotation IS NOT NULL AND purpose = $1 ORDER BY created_at, fingerprint",
            )
            .bind(purpose.as_str())
            .fetch_all(p)
            .await?
        });
        Ok(rows)
    }
}
