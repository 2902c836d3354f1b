//! People who use the dashboard and the JSON API, and their API tokens.
use uuid::Uuid;

use super::audit::{AuditAppend, NewAuditEntry};
use super::{Store, StoreError, StoreResult, now_ms, parse_uuid, with_db};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    Viewer,
    Operator,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }
    pub fn parse(s: &str) -> Option<Role> {
        [Role::Viewer, Role::Operator, Role::Admin].into_iter().find(|r| r.as_str() == s)
    }
}

#[derive(Debug, Clone)]
pub struct User {
    pub id: Uuid,
    pub username: String,
    pub role: Role,
}

#[derive(sqlx::FromRow)]
struct UserRow {
    id: String,
    username: String,
    role: String,
}

impl TryFrom<UserRow> for User {
    type Error = StoreError;
    fn try_from(r: UserRow) -> StoreResult<User> {
        Ok(User {
            id: parse_uuid(&r.id)?,
            role: Role::parse(&r.role).ok_or_else(|| StoreError::Corrupt(format!("role {:?}", r.role)))?,
            username: r.username,
        })
    }
}

impl Store {
    pub async fn count_users(&self) -> StoreResult<i64> {
        let n: i64 = with_db!(self, p => {
            sqlx::query_scalar("SELECT COUNT(*) FROM users").fetch_one(p).await?
        });
        Ok(n)
    }

    /// Creates a user; `Conflict` when the name is taken.
    pub async fn create_user(
        &self,
        username: &str,
        password_hash: &str,
        role: Role,
        audit: NewAuditEntry,
    ) -> StoreResult<User> {
        let id = Uuid::new_v4();
        with_db!(self, p => {
            let mut tx = p.begin_with(self.begin_write()).await?;
            sqlx::query("INSERT INTO users (id, username, password_hash, role, created_at) VALUES ($1, $2, $3, $4, $5)")
                .bind(id.to_string())
                .bind(username)
                .bind(password_hash)
                .bind(role.as_str())
                .bind(now_ms())
                .execute(&mut *tx)
                .await
                .map_err(StoreError::from_write)?;
            tx.append_audit(&audit).await?;
            tx.commit().await?;
        });
        Ok(User { id, username: username.to_owned(), role })
    }

    pub async fn user_by_name(&self, username: &str) -> StoreResult<Option<(User, String)>> {
        let row: Option<(String, String, String, String)> = with_db!(self, p => {
            sqlx::query_as("SELECT id, username, role, password_hash FROM users WHERE username = $1 AND disabled_at IS NULL")
                .bind(username)
                .fetch_optional(p)
                .await?
        });
        row.map(|(id, username, role, hash)| Ok((User::try_from(UserRow { id, username, role })?, hash))).transpose()
    }

    pub async fn create_api_token(
        &self,
        user: &User,
        label: &str,
        token_hash: &str,
        audit: NewAuditEntry,
    ) -> StoreResult<Uuid> {
        let id = Uuid::new_v4();
        with_db!(self, p => {
            let mut tx = p.begin_with(self.begin_write()).await?;
            sqlx::query("INSERT INTO api_tokens (id, user_id, label, token_hash, created_at) VALUES ($1, $2, $3, $4, $5)")
                .bind(id.to_string())
                .bind(user.id.to_string())
                .bind(label)
                .bind(token_hash)
                .bind(now_ms())
                .execute(&mut *tx)
                .await
                .map_err(StoreError::from_write)?;
            tx.append_audit(&audit).await?;
            tx.commit().await?;
        });
        Ok(id)
    }

    /// The active user owning an unrevoked API token with this hash.
    pub async fn user_by_api_token(&self, token_hash: &str) -> StoreResult<Option<User>> {
        let row: Option<UserRow> = with_db!(self, p => {
            sqlx::query_as(
                "SELECT u.id, u.username, u.role FROM api_tokens t JOIN users u ON u.id = t.user_id \
                 WHERE t.token_hash = $1 AND t.revoked_at IS NULL AND u.disabled_at IS NULL",
            )
            .bind(token_hash)
            .fetch_optional(p)
            .await?
        });
        row.map(User::try_from).transpose()
    }
}

pub(crate) fn user_from_parts(id: &str, username: String, role: &str) -> StoreResult<User> {
    User::try_from(UserRow { id: id.to_owned(), username, role: role.to_owned() })
}

#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
pub struct UserListRow {
    pub id: String,
    pub username: String,
    pub role: String,
    pub created_at: i64,
    pub disabled_at: Option<i64>,
}

impl Store {
    pub async fn list_users(&self) -> StoreResult<Vec<UserListRow>> {
        let rows = with_db!(self, p => {
            sqlx::query_as::<_, UserListRow>(
                "SELECT id, username, role, created_at, disabled_at FROM users ORDER BY username LIMIT 1000",
            )
            .fetch_all(p)
            .await?
        });
        Ok(rows)
    }
}

impl Store {
    /// Creates the first administrator, atomically: `None` when a user already exists. The audit
    /// head is locked first, which serialises two first-run requests racing on either backend.
    pub async fn create_first_user(
        &self,
        username: &str,
        password_hash: &str,
        audit: NewAuditEntry,
    ) -> StoreResult<Option<User>> {
        let id = Uuid::new_v4();
        let created = with_db!(self, p => {
            let mut tx = p.begin_with(self.begin_write()).await?;
            tx.append_audit(&audit).await?;
            let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users").fetch_one(&mut *tx).await?;
            if n > 0 {
                tx.rollback().await?;
                false
            } else {
                sqlx::query("INSERT INTO users (id, username, password_hash, role, created_at) VALUES ($1, $2, $3, 'admin', $4)")
                    .bind(id.to_string())
                    .bind(username)
                    .bind(password_hash)
                    .bind(now_ms())
                    .execute(&mut *tx)
                    .await
                    .map_err(StoreError::from_write)?;
                tx.commit().await?;
                true
            }
        });
        Ok(created.then(|| User { id, username: username.to_owned(), role: Role::Admin }))
    }
}
