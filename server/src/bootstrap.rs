//! First start: with no user in the database, create an admin and an enrollment token so a
//! newcomer can start at once. The secrets go to a 0600 file, never to the log.
use std::io::Write;
use std::path::Path;

use crate::secrets::{TokenKind, hash_password, new_password, new_token, token_hash};
use crate::store::audit::{ActorKind, NewAuditEntry};
use crate::store::enrollment::NewEnrollmentToken;
use crate::store::{Store, now_ms};

pub struct Bootstrapped {
    pub username: String,
    pub password: String,
    pub enrollment_token: String,
}

/// Creates the first admin and a 24-hour, 10-use enrollment token when no user exists.
pub async fn first_start(store: &Store) -> anyhow::Result<Option<Bootstrapped>> {
    if store.count_users().await? > 0 {
        return Ok(None);
    }
    let username = "admin".to_owned();
    let password = new_password();
    // Atomic: of replicas starting together on an empty database, one bootstraps.
    let created = store
        .create_first_user(
            &username,
            &hash_password(&password)?,
            NewAuditEntry::new(ActorKind::System, "bootstrap", "user.created", &username),
        )
        .await?;
    if created.is_none() {
        return Ok(None);
    }
    let enrollment_token = new_token(TokenKind::Enrollment);
    store
        .create_enrollment_token(
            NewEnrollmentToken {
                label: "first-start",
                token_hash: &token_hash(&enrollment_token),
                expires_at: now_ms() + 24 * 3600 * 1000,
                max_uses: 10,
            },
            NewAuditEntry::new(ActorKind::System, "bootstrap", "enrollment_token.created", "first-start"),
        )
        .await?;
    Ok(Some(Bootstrapped { username, password, enrollment_token }))
}

/// Writes the credentials to `path`, readable by the owner only; refuses to overwrite.
pub fn write_credentials(path: &Path, b: &Bootstrapped, agent_url: &str) -> std::io::Result<()> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts.open(path)?;
    writeln!(f, "# rdpfleet first-start credentials. Delete this file once you have stored them.")?;
    writeln!(f, "username={}", b.username)?;
    writeln!(f, "password={}", b.password)?;
    writeln!(f, "enrollment_token={}", b.enrollment_token)?;
    writeln!(f, "# enroll an agent (valid 24 hours, 10 machines):")?;
    writeln!(f, "# rdpfleet-agent enroll --server {agent_url} --token {}", b.enrollment_token)?;
    f.sync_all()
}
