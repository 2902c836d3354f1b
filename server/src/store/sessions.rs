//! Dashboard sessions. The cookie holds a random id; the table holds its SHA-256, the user, the
//! session's CSRF token and its expiry (idle timeout, renewed on use).
use uuid::Uuid;

use super::{Store, StoreResult, now_ms, with_db};
use crate::domain::users::User;

/// A signed-in session: whose, its CSRF token, when it ends.
#[derive(Debug, Clone)]
pub struct StoredSession {
    pub user: User,
    pub csrf_token: String,
    pub expires_at: i64,
}

impl Store {
    pub async fn create_session(&self, id_hash: &str, user_id: Uuid, csrf: &str, idle_ms: i64) -> StoreResult<()> {
        let now = now_ms();
        with_db!(self, p => {
            sqlx::query(
                "INSERT INTO sessions (id_hash, user_id, csrf_token, created_at, expires_at, last_seen_at) \
                 VALUES ($1, $2, $3, $4, $5, $4)",
            )
            .bind(id_hash)
            .bind(user_id.to_string())
            .bind(csrf)
            .bind(now)
            .bind(now + idle_ms)
            .execute(p)
            .await?;
        });
        Ok(())
    }

    /// The live session with this id hash (its user not disabled), its expiry pushed out by
    /// `idle_ms` when more than a minute has passed since the last renewal.
    pub async fn session(&self, id_hash: &str, idle_ms: i64) -> StoreResult<Option<StoredSession>> {
        let now = now_ms();
        let row: Option<(String, String, String, String, i64, i64)> = with_db!(self, p => {
            sqlx::query_as(
                "SELECT u.id, u.username, u.role, s.csrf_token, s.expires_at, s.last_seen_at FROM sessions s \
                 JOIN users u ON u.id = s.user_id WHERE s.id_hash = $1 AND s.expires_at > $2 AND u.disabled_at IS NULL",
            )
            .bind(id_hash)
            .bind(now)
            .fetch_optional(p)
            .await?
        });
        let Some((id, username, role, csrf_token, expires_at, last_seen)) = row else {
            return Ok(None);
        };
        let mut expires_at = expires_at;
        if now - last_seen > 60_000 {
            expires_at = now + idle_ms;
            with_db!(self, p => {
                sqlx::query("UPDATE sessions SET expires_at = $1, last_seen_at = $2 WHERE id_hash = $3")
                    .bind(expires_at)
                    .bind(now)
                    .bind(id_hash)
                    .execute(p)
                    .await?;
            });
        }
        let user = super::users::user_from_parts(&id, username, &role)?;
        Ok(Some(StoredSession { user, csrf_token, expires_at }))
    }

    pub async fn delete_session(&self, id_hash: &str) -> StoreResult<()> {
        with_db!(self, p => {
            sqlx::query("DELETE FROM sessions WHERE id_hash = $1").bind(id_hash).execute(p).await?;
        });
        Ok(())
    }

    /// Removes expired sessions; returns how many.
    pub async fn purge_sessions(&self) -> StoreResult<u64> {
        let n = with_db!(self, p => {
            sqlx::query("DELETE FROM sessions WHERE expires_at <= $1").bind(now_ms()).execute(p).await?.rows_affected()
        });
        Ok(n)
    }
}
