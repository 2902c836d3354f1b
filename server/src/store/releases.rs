//! Agent releases: the binaries an `agent.update` rollout installs, each signed by the release key.
use rdpfleet_proto::release::Platform;
use uuid::Uuid;

use super::audit::{AuditAppend, NewAuditEntry};
use super::{Store, StoreError, StoreResult, now_ms, with_db};

/// A release as listed (without its bytes).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Release {
    pub id: Uuid,
    pub version: String,
    pub platform: Platform,
    pub sha256: String,
    pub size: i64,
    pub signature: String,
    pub key_fingerprint: String,
    pub added_by: String,
    pub created_at: i64,
}

pub struct NewRelease<'a> {
    pub version: &'a str,
    pub platform: Platform,
    pub sha256: &'a str,
    pub signature: &'a str,
    pub key_fingerprint: &'a str,
    pub binary: &'a [u8],
    pub added_by: &'a str,
}

#[derive(sqlx::FromRow)]
struct ReleaseRow {
    id: String,
    version: String,
    platform: String,
    sha256: String,
    size: i64,
    signature: String,
    key_fingerprint: String,
    added_by: String,
    created_at: i64,
}

impl TryFrom<ReleaseRow> for Release {
    type Error = StoreError;
    fn try_from(r: ReleaseRow) -> StoreResult<Release> {
        Ok(Release {
            id: Uuid::parse_str(&r.id).map_err(|e| StoreError::Corrupt(e.to_string()))?,
            platform: Platform::parse(&r.platform)
                .ok_or_else(|| StoreError::Corrupt(format!("unknown platform {}", r.platform)))?,
            version: r.version,
            sha256: r.sha256,
            size: r.size,
            signature: r.signature,
            key_fingerprint: r.key_fingerprint,
            added_by: r.added_by,
            created_at: r.created_at,
        })
    }
}

const COLUMNS: &str = "id, version, platform, sha256, size, signature, key_fingerprint, added_by, created_at";

impl Store {
    /// Stores a release (audited); a second release of one version for one platform is a conflict.
    pub async fn add_release(&self, r: NewRelease<'_>, audit: NewAuditEntry) -> StoreResult<Uuid> {
        let id = Uuid::new_v4();
        let size = i64::try_from(r.binary.len()).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        with_db!(self, p => {
            let mut tx = p.begin_with(self.begin_write()).await?;
            sqlx::query(
                "INSERT INTO agent_releases (id, version, platform, sha256, size, signature, key_fingerprint, content, added_by, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            )
            .bind(id.to_string())
            .bind(r.version)
            .bind(r.platform.as_str())
            .bind(r.sha256)
            .bind(size)
            .bind(r.signature)
            .bind(r.key_fingerprint)
            .bind(r.binary)
            .bind(r.added_by)
            .bind(now_ms())
            .execute(&mut *tx)
            .await
            .map_err(StoreError::from_write)?;
            tx.append_audit(&self.audit_key, &audit.details(serde_json::json!({
                "release": id.to_string(), "version": r.version, "platform": r.platform.as_str(),
                "sha256": r.sha256, "size": size, "key": r.key_fingerprint,
            })))
            .await?;
            tx.commit().await?;
        });
        Ok(id)
    }

    /// Every release, newest first.
    pub async fn releases(&self) -> StoreResult<Vec<Release>> {
        let rows = with_db!(self, p => {
            sqlx::query_as::<_, ReleaseRow>(&format!("SELECT {COLUMNS} FROM agent_releases ORDER BY created_at DESC, version DESC"))
                .fetch_all(p)
                .await?
        });
        rows.into_iter().map(Release::try_from).collect()
    }

    pub async fn release(&self, id: Uuid) -> StoreResult<Option<Release>> {
        let row = with_db!(self, p => {
            sqlx::query_as::<_, ReleaseRow>(&format!("SELECT {COLUMNS} FROM agent_releases WHERE id = $1"))
                .bind(id.to_string())
                .fetch_optional(p)
                .await?
        });
        row.map(Release::try_from).transpose()
    }

    pub async fn release_for(&self, version: &str, platform: Platform) -> StoreResult<Option<Release>> {
        let row = with_db!(self, p => {
            sqlx::query_as::<_, ReleaseRow>(&format!("SELECT {COLUMNS} FROM agent_releases WHERE version = $1 AND platform = $2"))
                .bind(version)
                .bind(platform.as_str())
                .fetch_optional(p)
                .await?
        });
        row.map(Release::try_from).transpose()
    }

    /// A release's bytes.
    pub async fn release_binary(&self, id: Uuid) -> StoreResult<Option<Vec<u8>>> {
        Ok(with_db!(self, p => {
            sqlx::query_scalar("SELECT content FROM agent_releases WHERE id = $1")
                .bind(id.to_string())
                .fetch_optional(p)
                .await?
        }))
    }

    /// Every machine as (id, OS, agent version): who an update could go to.
    pub async fn agent_versions(&self) -> StoreResult<Vec<(Uuid, String, String)>> {
        let rows: Vec<(String, String, String)> = with_db!(self, p => {
            sqlx::query_as("SELECT id, os, agent_version FROM machines").fetch_all(p).await?
        });
        rows.into_iter()
            .map(|(id, os, v)| Ok((Uuid::parse_str(&id).map_err(|e| StoreError::Corrupt(e.to_string()))?, os, v)))
            .collect()
    }
}
