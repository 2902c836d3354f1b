//! Changes to people's access, the same from the command line, the JSON API and the admin page:
//! create, disable, enable, change role, delete; API tokens created and revoked. Each change is
//! audited; anything that makes, raises or removes an administrator is also sent to the webhooks,
//! so that one administrator cannot quietly give themselves a second pair of hands.
use uuid::Uuid;

use crate::domain::users::{Role, User};
use crate::domain::{DomainError, DomainResult};
use crate::store::audit::{ActorKind, NewAuditEntry};
use crate::store::users::{AccountChange, ChangeOutcome};
use crate::store::{Store, StoreError, now_ms};
use crate::webhook::{Event, Notifier};

/// Who makes a change: a signed-in user (by id) or the command line.
#[derive(Debug, Clone)]
pub struct Actor {
    pub kind: ActorKind,
    pub name: String,
    pub user: Option<Uuid>,
}

impl Actor {
    pub fn user(u: &User) -> Actor {
        Actor { kind: ActorKind::User, name: u.username.clone(), user: Some(u.id) }
    }
    pub fn cli(name: impl Into<String>) -> Actor {
        Actor { kind: ActorKind::Cli, name: name.into(), user: None }
    }
    fn audit(&self, action: &'static str, subject: &str) -> NewAuditEntry {
        NewAuditEntry::new(self.kind, &self.name, action, subject)
    }
}

/// How an admin-related event is delivered: in the background (server) or awaited (CLI).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    Background,
    Wait,
}

async fn notify(notifier: &Notifier, delivery: Delivery, event: &'static str, subject: serde_json::Value) {
    let e = Event { event, at: now_ms(), subject };
    match delivery {
        Delivery::Background => notifier.send(e),
        Delivery::Wait => notifier.deliver(e).await,
    }
}

/// Creates an account, remembering its creator when a user makes it.
pub async fn create(
    store: &Store,
    notifier: &Notifier,
    delivery: Delivery,
    actor: &Actor,
    username: &str,
    password_hash: &str,
    role: Role,
) -> DomainResult<User> {
    let audit = actor
        .audit("user.created", username)
        .details(serde_json::json!({"role": role.as_str(), "created_by": actor.name}));
    let created = match actor.user {
        Some(creator) => store.create_user_by(username, password_hash, role, creator, audit).await,
        None => store.create_user(username, password_hash, role, audit).await,
    };
    let user = created.map_err(|e| match e {
        StoreError::Conflict => DomainError::Conflict(format!("a user named {username} already exists")),
        e => e.into(),
    })?;
    if role == Role::Admin {
        let subject = serde_json::json!({"username": username, "by": actor.name});
        notify(notifier, delivery, "user.admin_created", subject).await;
    }
    Ok(user)
}

/// Applies a change to an account (see [`Store::change_account`]).
pub async fn change(
    store: &Store,
    notifier: &Notifier,
    delivery: Delivery,
    actor: &Actor,
    target: Uuid,
    change: AccountChange,
) -> DomainResult<ChangeOutcome> {
    let Some(before) = store.account(target).await? else { return Ok(ChangeOutcome::NotFound) };
    let (action, details) = match change {
        AccountChange::Disable => ("user.disabled", serde_json::json!({"role": before.role.as_str()})),
        AccountChange::Enable => ("user.enabled", serde_json::json!({"role": before.role.as_str()})),
        AccountChange::Delete => ("user.deleted", serde_json::json!({"role": before.role.as_str()})),
        AccountChange::SetRole(r) => {
            ("user.role_changed", serde_json::json!({"from": before.role.as_str(), "to": r.as_str()}))
        }
    };
    let audit = actor.audit(action, &before.username).details(details.clone());
    let outcome = store.change_account(target, change, actor.user, audit).await?;
    let touches_admin = before.role == Role::Admin || change == AccountChange::SetRole(Role::Admin);
    if outcome == ChangeOutcome::Done && touches_admin {
        let subject =
            serde_json::json!({"username": before.username, "change": action, "details": details, "by": actor.name});
        notify(notifier, delivery, "user.admin_changed", subject).await;
    }
    Ok(outcome)
}

/// Days an API token may live at most when it is given an expiry.
pub const MAX_TOKEN_DAYS: i64 = 3650;
