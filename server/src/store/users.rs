//! People who use the dashboard and the JSON API, and their API tokens.
use uuid::Uuid;

use super::audit::{AuditAppend, NewAuditEntry};
use super::{Store, StoreError, StoreResult, now_ms, parse_uuid, with_db};
use crate::domain::users::{Account, Role, TokenScope, User};

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
        self.insert_user(username, password_hash, role, None, audit).await
    }

    /// Inserts a user and its audit entry in one transaction; `Conflict` when the name is taken.
    async fn insert_user(
        &self,
        username: &str,
        password_hash: &str,
        role: Role,
        creator: Option<Uuid>,
        audit: NewAuditEntry,
    ) -> StoreResult<User> {
        let id = Uuid::new_v4();
        with_db!(self, p => {
            let mut tx = p.begin_with(self.begin_write()).await?;
            sqlx::query(
                "INSERT INTO users (id, username, password_hash, role, created_at, created_by) VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(id.to_string())
            .bind(username)
            .bind(password_hash)
            .bind(role.as_str())
            .bind(now_ms())
            .bind(creator.map(|c| c.to_string()))
            .execute(&mut *tx)
            .await
            .map_err(StoreError::from_write)?;
            tx.append_audit(&self.audit_key, &audit).await?;
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

    /// An `operate` token without expiry.
    pub async fn create_api_token(
        &self,
        user: &User,
        label: &str,
        token_hash: &str,
        audit: NewAuditEntry,
    ) -> StoreResult<Uuid> {
        let t = NewApiToken { label, token_hash, scope: TokenScope::Operate, expires_at: None };
        self.create_scoped_api_token(user, t, audit).await
    }

    /// The active user owning an unrevoked, unexpired API token with this hash, and the token's
    /// scope. Its last use is recorded at most once a minute.
    pub async fn user_by_api_token(&self, token_hash: &str) -> StoreResult<Option<(User, TokenScope)>> {
        let now = now_ms();
        let row: Option<(String, String, String, String, String, Option<i64>)> = with_db!(self, p => {
            sqlx::query_as(
                "SELECT u.id, u.username, u.role, t.id, t.scope, t.last_used_at FROM api_tokens t JOIN users u ON u.id = t.user_id \
                 WHERE t.token_hash = $1 AND t.revoked_at IS NULL AND (t.expires_at IS NULL OR t.expires_at > $2) \
                 AND u.disabled_at IS NULL",
            )
            .bind(token_hash)
            .bind(now)
            .fetch_optional(p)
            .await?
        });
        let Some((id, username, role, token_id, scope, last_used)) = row else { return Ok(None) };
        if last_used.is_none_or(|t| now - t > 60_000) {
            with_db!(self, p => {
                sqlx::query("UPDATE api_tokens SET last_used_at = $1 WHERE id = $2")
                    .bind(now)
                    .bind(&token_id)
                    .execute(p)
                    .await?;
            });
        }
        let scope = TokenScope::parse(&scope).ok_or_else(|| StoreError::Corrupt(format!("token scope {scope:?}")))?;
        Ok(Some((User::try_from(UserRow { id, username, role })?, scope)))
    }
}

pub(crate) fn user_from_parts(id: &str, username: String, role: &str) -> StoreResult<User> {
    User::try_from(UserRow { id: id.to_owned(), username, role: role.to_owned() })
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
            tx.append_audit(&self.audit_key, &audit).await?;
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

type AccountTuple =
    (String, String, String, i64, Option<String>, Option<String>, Option<i64>, Option<i64>, Option<i64>);

const ACCOUNT_COLUMNS: &str =
    "id, username, role, created_at, created_by, promoted_by, role_changed_at, disabled_at, deleted_at";

fn account(t: AccountTuple) -> StoreResult<Account> {
    let (id, username, role, created_at, created_by, promoted_by, role_changed_at, disabled_at, deleted_at) = t;
    Ok(Account {
        id: parse_uuid(&id)?,
        role: Role::parse(&role).ok_or_else(|| StoreError::Corrupt(format!("role {role:?}")))?,
        username,
        created_at,
        created_by: created_by.as_deref().map(parse_uuid).transpose()?,
        promoted_by: promoted_by.as_deref().map(parse_uuid).transpose()?,
        role_changed_at,
        disabled_at,
        deleted_at,
    })
}

/// A change to an account, and what came of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountChange {
    Disable,
    Enable,
    SetRole(Role),
    Delete,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeOutcome {
    Done,
    NotFound,
    /// Nothing to do (already disabled, enabled, of that role; or deleted).
    Unchanged,
    /// It would leave no active administrator.
    LastAdmin,
}

impl ChangeOutcome {
    /// Why nothing was changed, for the 409 of every front end (`None` for done or not found).
    pub fn conflict(self) -> Option<&'static str> {
        match self {
            ChangeOutcome::Unchanged => Some("nothing to change (already so, or the account is deleted)"),
            ChangeOutcome::LastAdmin => Some("this would leave no active administrator"),
            ChangeOutcome::Done | ChangeOutcome::NotFound => None,
        }
    }
}

/// A personal API token as listed (never its secret).
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct ApiTokenInfo {
    pub id: Uuid,
    pub user_id: Uuid,
    pub label: String,
    pub scope: TokenScope,
    /// Unix milliseconds.
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub last_used_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

impl ApiTokenInfo {
    /// `revoked`, `expired` or `active` at `now`.
    pub fn state(&self, now: i64) -> &'static str {
        match (self.revoked_at, self.expires_at) {
            (Some(_), _) => "revoked",
            (None, Some(e)) if e <= now => "expired",
            _ => "active",
        }
    }
}

pub struct NewApiToken<'a> {
    pub label: &'a str,
    pub token_hash: &'a str,
    pub scope: TokenScope,
    pub expires_at: Option<i64>,
}

impl Store {
    pub async fn accounts(&self) -> StoreResult<Vec<Account>> {
        let rows: Vec<AccountTuple> = with_db!(self, p => {
            sqlx::query_as(&format!("SELECT {ACCOUNT_COLUMNS} FROM users ORDER BY username LIMIT 5000"))
                .fetch_all(p)
                .await?
        });
        rows.into_iter().map(account).collect()
    }

    pub async fn account(&self, id: Uuid) -> StoreResult<Option<Account>> {
        self.account_where("id", &id.to_string()).await
    }

    pub async fn account_by_name(&self, username: &str) -> StoreResult<Option<Account>> {
        self.account_where("username", username).await
    }

    /// The account whose `column` (a constant of this module, never input) equals `value`.
    async fn account_where(&self, column: &'static str, value: &str) -> StoreResult<Option<Account>> {
        let row: Option<AccountTuple> = with_db!(self, p => {
            sqlx::query_as(&format!("SELECT {ACCOUNT_COLUMNS} FROM users WHERE {column} = $1"))
                .bind(value)
                .fetch_optional(p)
                .await?
        });
        row.map(account).transpose()
    }

    /// Creates a user on behalf of another (`creator`), who is remembered: an account is never
    /// a second person for its creator.
    pub async fn create_user_by(
        &self,
        username: &str,
        password_hash: &str,
        role: Role,
        creator: Uuid,
        audit: NewAuditEntry,
    ) -> StoreResult<User> {
        self.insert_user(username, password_hash, role, Some(creator), audit).await
    }

    /// Disables, enables, deletes an account or changes its role, audited; every change but
    /// enabling ends the account's sessions and revokes its API tokens in the same transaction
    /// (sessions and tokens are checked against the database on every request, so this holds
    /// on every replica at once). `by` is the user making the change (none from the CLI). No
    /// change may leave the server without an active administrator.
    pub async fn change_account(
        &self,
        id: Uuid,
        change: AccountChange,
        by: Option<Uuid>,
        audit: NewAuditEntry,
    ) -> StoreResult<ChangeOutcome> {
        let now = now_ms();
        let uid = id.to_string();
        let outcome = with_db!(self, p => {
            let mut tx = p.begin_with(self.begin_write()).await?;
            // The audit head is locked first: concurrent changes serialise (two admins cannot
            // each disable the other and leave none).
            tx.append_audit(&self.audit_key, &audit).await?;
            let row: Option<AccountTuple> = sqlx::query_as(&format!("SELECT {ACCOUNT_COLUMNS} FROM users WHERE id = $1"))
                .bind(&uid)
                .fetch_optional(&mut *tx)
                .await?;
            let Some(a) = row.map(account).transpose()? else {
                tx.rollback().await?;
                return Ok(ChangeOutcome::NotFound);
            };
            let unchanged = a.deleted_at.is_some()
                || match change {
                    AccountChange::Disable => a.disabled_at.is_some(),
                    AccountChange::Enable => a.disabled_at.is_none(),
                    AccountChange::SetRole(r) => a.role == r,
                    AccountChange::Delete => false,
                };
            if unchanged {
                tx.rollback().await?;
                return Ok(ChangeOutcome::Unchanged);
            }
            let loses_admin = a.is_active()
                && a.role == Role::Admin
                && matches!(change, AccountChange::Disable | AccountChange::Delete | AccountChange::SetRole(_));
            if loses_admin {
                let others: i64 = sqlx::query_scalar(
                    "SELECT COUNT(*) FROM users WHERE role = 'admin' AND disabled_at IS NULL AND deleted_at IS NULL AND id <> $1",
                )
                .bind(&uid)
                .fetch_one(&mut *tx)
                .await?;
                if others == 0 {
                    tx.rollback().await?;
                    return Ok(ChangeOutcome::LastAdmin);
                }
            }
            match change {
                AccountChange::Disable => {
                    sqlx::query("UPDATE users SET disabled_at = $1 WHERE id = $2").bind(now).bind(&uid).execute(&mut *tx).await?;
                }
                AccountChange::Enable => {
                    sqlx::query("UPDATE users SET disabled_at = NULL WHERE id = $1").bind(&uid).execute(&mut *tx).await?;
                }
                AccountChange::Delete => {
                    sqlx::query("UPDATE users SET deleted_at = $1, disabled_at = COALESCE(disabled_at, $1) WHERE id = $2")
                        .bind(now)
                        .bind(&uid)
                        .execute(&mut *tx)
                        .await?;
                }
                AccountChange::SetRole(r) => {
                    // A raise remembers who raised it; a lowering keeps the last raiser.
                    let raiser = if r > a.role { by.map(|b| b.to_string()) } else { a.promoted_by.map(|b| b.to_string()) };
                    sqlx::query("UPDATE users SET role = $1, role_changed_at = $2, promoted_by = $3 WHERE id = $4")
                        .bind(r.as_str())
                        .bind(now)
                        .bind(raiser)
                        .bind(&uid)
                        .execute(&mut *tx)
                        .await?;
                }
            }
            if change != AccountChange::Enable {
                sqlx::query("DELETE FROM sessions WHERE user_id = $1").bind(&uid).execute(&mut *tx).await?;
                sqlx::query("UPDATE api_tokens SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL")
                    .bind(now)
                    .bind(&uid)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            ChangeOutcome::Done
        });
        Ok(outcome)
    }

    /// Everyone who made this account what it is, transitively: its creator and the user who
    /// last raised its role, theirs, and so on (bounded; cycles are harmless).
    pub async fn sponsors(&self, id: Uuid) -> StoreResult<std::collections::HashSet<Uuid>> {
        let mut seen = std::collections::HashSet::new();
        let mut next = vec![id];
        for _ in 0..32 {
            let Some(u) = next.pop() else { break };
            if let Some(a) = self.account(u).await? {
                for s in [a.created_by, a.promoted_by].into_iter().flatten() {
                    if seen.insert(s) {
                        next.push(s);
                    }
                }
            }
        }
        Ok(seen)
    }

    pub async fn create_scoped_api_token(
        &self,
        user: &User,
        t: NewApiToken<'_>,
        audit: NewAuditEntry,
    ) -> StoreResult<Uuid> {
        let id = Uuid::new_v4();
        with_db!(self, p => {
            let mut tx = p.begin_with(self.begin_write()).await?;
            sqlx::query(
                "INSERT INTO api_tokens (id, user_id, label, token_hash, created_at, scope, expires_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(id.to_string())
            .bind(user.id.to_string())
            .bind(t.label)
            .bind(t.token_hash)
            .bind(now_ms())
            .bind(t.scope.as_str())
            .bind(t.expires_at)
            .execute(&mut *tx)
            .await
            .map_err(StoreError::from_write)?;
            tx.append_audit(&self.audit_key, &audit).await?;
            tx.commit().await?;
        });
        Ok(id)
    }

    /// A user's API tokens (or everyone's), newest first.
    pub async fn api_tokens(&self, user: Option<Uuid>) -> StoreResult<Vec<ApiTokenInfo>> {
        type Row = (String, String, String, String, i64, Option<i64>, Option<i64>, Option<i64>);
        let rows: Vec<Row> = with_db!(self, p => {
            sqlx::query_as(
                "SELECT id, user_id, label, scope, created_at, expires_at, last_used_at, revoked_at FROM api_tokens \
                 WHERE ($1 IS NULL OR user_id = $1) ORDER BY created_at DESC LIMIT 5000",
            )
            .bind(user.map(|u| u.to_string()))
            .fetch_all(p)
            .await?
        });
        rows.into_iter()
            .map(|(id, user_id, label, scope, created_at, expires_at, last_used_at, revoked_at)| {
                Ok(ApiTokenInfo {
                    id: parse_uuid(&id)?,
                    user_id: parse_uuid(&user_id)?,
                    label,
                    scope: TokenScope::parse(&scope).ok_or_else(|| StoreError::Corrupt(format!("scope {scope:?}")))?,
                    created_at,
                    expires_at,
                    last_used_at,
                    revoked_at,
                })
            })
            .collect()
    }

    /// Revokes a token (only if it belongs to `owner`, when given); `false` when there is no such
    /// unrevoked token.
    pub async fn revoke_api_token(&self, id: Uuid, owner: Option<Uuid>, audit: NewAuditEntry) -> StoreResult<bool> {
        let done = with_db!(self, p => {
            let mut tx = p.begin_with(self.begin_write()).await?;
            let n = sqlx::query(
                "UPDATE api_tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL AND ($3 IS NULL OR user_id = $3)",
            )
            .bind(now_ms())
            .bind(id.to_string())
            .bind(owner.map(|o| o.to_string()))
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if n == 1 {
                tx.append_audit(&self.audit_key, &audit).await?;
                tx.commit().await?;
            } else {
                tx.rollback().await?;
            }
            n == 1
        });
        Ok(done)
    }
}
