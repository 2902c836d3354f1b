//! Enrollment tokens and the enrollment itself.
use rdpfleet_proto::enroll::MachineRole;
use uuid::Uuid;

use super::audit::{AuditAppend, NewAuditEntry};
use super::{Store, StoreError, StoreResult, now_ms, with_db};
use crate::domain::enrollment::EnrollmentToken;

#[derive(sqlx::FromRow)]
struct EnrollmentTokenRow {
    id: String,
    label: String,
    created_at: i64,
    expires_at: i64,
    max_uses: i64,
    uses: i64,
    revoked_at: Option<i64>,
}

impl From<EnrollmentTokenRow> for EnrollmentToken {
    fn from(r: EnrollmentTokenRow) -> EnrollmentToken {
        EnrollmentToken {
            id: r.id,
            label: r.label,
            created_at: r.created_at,
            expires_at: r.expires_at,
            max_uses: r.max_uses,
            uses: r.uses,
            revoked_at: r.revoked_at,
        }
    }
}

#[derive(Debug, Clone)]
pub struct NewEnrollmentToken<'a> {
    pub label: &'a str,
    pub token_hash: &'a str,
    pub expires_at: i64,
    pub max_uses: i64,
}

/// The machine as the agent describes it at enrollment.
#[derive(Debug, Clone)]
pub struct NewMachine<'a> {
    pub hostname: &'a str,
    pub role: MachineRole,
    pub os: &'a str,
    pub agent_version: &'a str,
    pub site: Option<&'a str>,
    pub labels: &'a [String],
}

#[derive(Debug, thiserror::Error)]
pub enum EnrollError {
    #[error("enrollment token is not valid")]
    InvalidToken,
    #[error("enrollment token has expired")]
    Expired,
    #[error("enrollment token has been used the maximum number of times")]
    UsedUp,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for EnrollError {
    fn from(e: sqlx::Error) -> Self {
        EnrollError::Store(StoreError::Sqlx(e))
    }
}

impl Store {
    pub async fn create_enrollment_token(&self, t: NewEnrollmentToken<'_>, audit: NewAuditEntry) -> StoreResult<Uuid> {
        let id = Uuid::new_v4();
        with_db!(self, p => {
            let mut tx = p.begin_with(self.begin_write()).await?;
            sqlx::query(
                "INSERT INTO enrollment_tokens (id, label, token_hash, created_at, expires_at, max_uses) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(id.to_string())
            .bind(t.label)
            .bind(t.token_hash)
            .bind(now_ms())
            .bind(t.expires_at)
            .bind(t.max_uses)
            .execute(&mut *tx)
            .await
            .map_err(StoreError::from_write)?;
            tx.append_audit(&self.audit_key, &audit.details(serde_json::json!({"token_id": id, "label": t.label, "max_uses": t.max_uses, "expires_at": t.expires_at}))).await?;
            tx.commit().await?;
        });
        Ok(id)
    }

    pub async fn list_enrollment_tokens(&self) -> StoreResult<Vec<EnrollmentToken>> {
        let rows = with_db!(self, p => {
            sqlx::query_as::<_, EnrollmentTokenRow>(
                "SELECT id, label, created_at, expires_at, max_uses, uses, revoked_at FROM enrollment_tokens ORDER BY created_at",
            )
            .fetch_all(p)
            .await?
        });
        Ok(rows.into_iter().map(EnrollmentToken::from).collect())
    }

    /// Revokes a token; false when no unrevoked token has this id.
    pub async fn revoke_enrollment_token(&self, id: Uuid, audit: NewAuditEntry) -> StoreResult<bool> {
        let revoked = with_db!(self, p => {
            let mut tx = p.begin_with(self.begin_write()).await?;
            let n = sqlx::query("UPDATE enrollment_tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
                .bind(now_ms())
                .bind(id.to_string())
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if n > 0 {
                tx.append_audit(&self.audit_key, &audit).await?;
            }
            tx.commit().await?;
            n > 0
        });
        Ok(revoked)
    }

    /// Consumes one use of the enrollment token and creates the machine and its credential,
    /// all in one transaction: a failed enrollment leaves nothing behind.
    pub async fn enroll(
        &self,
        token_hash: &str,
        m: NewMachine<'_>,
        credential_hash: &str,
    ) -> Result<Uuid, EnrollError> {
        let machine_id = Uuid::new_v4();
        let now = now_ms();
        let labels = serde_json::to_string(m.labels).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        with_db!(self, p => {
            let mut tx = p.begin_with(self.begin_write()).await?;
            // The conditional update is the check: it takes the row lock (PostgreSQL) or the
            // write lock (SQLite), so two agents racing for the last use cannot both win.
            let token_id: Option<String> = sqlx::query_scalar(
                "UPDATE enrollment_tokens SET uses = uses + 1 \
                 WHERE token_hash = $1 AND revoked_at IS NULL AND expires_at > $2 AND uses < max_uses \
                 RETURNING id",
            )
            .bind(token_hash)
            .bind(now)
            .fetch_optional(&mut *tx)
            .await?;
            let Some(token_id) = token_id else {
                let row: Option<(i64, i64, i64, Option<i64>)> = sqlx::query_as(
                    "SELECT expires_at, uses, max_uses, revoked_at FROM enrollment_tokens WHERE token_hash = $1",
                )
                .bind(token_hash)
                .fetch_optional(&mut *tx)
                .await?;
                return Err(match row {
                    None | Some((_, _, _, Some(_))) => EnrollError::InvalidToken,
                    Some((_, uses, max, None)) if uses >= max => EnrollError::UsedUp,
                    Some(_) => EnrollError::Expired,
                });
            };
            sqlx::query(
                "INSERT INTO machines (id, hostname, role, os, agent_version, site, labels, enrolled_at, last_seen_at, enrollment_token_id) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8, $9)",
            )
            .bind(machine_id.to_string())
            .bind(m.hostname)
            .bind(m.role.as_str())
            .bind(m.os)
            .bind(m.agent_version)
            .bind(m.site)
            .bind(&labels)
            .bind(now)
            .bind(&token_id)
            .execute(&mut *tx)
            .await?;
            sqlx::query("INSERT INTO agent_credentials (id, machine_id, token_hash, created_at) VALUES ($1, $2, $3, $4)")
                .bind(Uuid::new_v4().to_string())
                .bind(machine_id.to_string())
                .bind(credential_hash)
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(StoreError::from_write)?;
            let audit = NewAuditEntry::new(super::audit::ActorKind::Agent, m.hostname, "machine.enrolled", machine_id.to_string())
                .details(serde_json::json!({"enrollment_token_id": token_id, "role": m.role.as_str(), "os": m.os, "site": m.site}));
            tx.append_audit(&self.audit_key, &audit).await?;
            tx.commit().await?;
        });
        Ok(machine_id)
    }
}
