//! Machines and their agent credentials.
use rdpfleet_proto::enroll::MachineRole;
use uuid::Uuid;

use super::audit::{AuditAppend, NewAuditEntry};
use super::sql::Params;
use super::{Store, StoreError, StoreResult, now_ms, parse_uuid, with_db};

#[derive(Debug, Clone, PartialEq)]
pub struct Machine {
    pub id: Uuid,
    pub hostname: String,
    pub role: MachineRole,
    pub os: String,
    pub agent_version: String,
    pub site: Option<String>,
    pub labels: Vec<String>,
    pub enrolled_at: i64,
    pub last_seen_at: i64,
    pub last_report_seq: i64,
    /// Reports stored for this machine (each once).
    pub reports_received: i64,
    /// Reports its agent says it dropped (outbox full, or refused for good).
    pub reports_dropped: i64,
    /// True when every credential of the machine is revoked.
    pub revoked: bool,
}

#[derive(sqlx::FromRow)]
struct MachineRow {
    id: String,
    hostname: String,
    role: String,
    os: String,
    agent_version: String,
    site: Option<String>,
    labels: String,
    enrolled_at: i64,
    last_seen_at: i64,
    last_report_seq: i64,
    reports_received: i64,
    reports_dropped: i64,
    active_credentials: i64,
}

impl TryFrom<MachineRow> for Machine {
    type Error = StoreError;
    fn try_from(r: MachineRow) -> StoreResult<Machine> {
        Ok(Machine {
            id: parse_uuid(&r.id)?,
            role: MachineRole::parse(&r.role).ok_or_else(|| StoreError::Corrupt(format!("role {:?}", r.role)))?,
            labels: serde_json::from_str(&r.labels).map_err(|e| StoreError::Corrupt(format!("labels: {e}")))?,
            hostname: r.hostname,
            os: r.os,
            agent_version: r.agent_version,
            site: r.site,
            enrolled_at: r.enrolled_at,
            last_seen_at: r.last_seen_at,
            last_report_seq: r.last_report_seq,
            reports_received: r.reports_received,
            reports_dropped: r.reports_dropped,
            revoked: r.active_credentials == 0,
        })
    }
}

const MACHINE_COLUMNS: &str = "m.id, m.hostname, m.role, m.os, m.agent_version, m.site, m.labels, m.enrolled_at, \
     m.last_seen_at, m.last_report_seq, m.reports_received, m.reports_dropped, \
     (SELECT COUNT(*) FROM agent_credentials c WHERE c.machine_id = m.id AND c.revoked_at IS NULL) AS active_credentials";

/// The machine an agent token belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AgentIdentity {
    pub machine_id: Uuid,
}

impl Store {
    /// The machine whose unrevoked credential has this hash.
    pub async fn agent_by_token(&self, token_hash: &str) -> StoreResult<Option<AgentIdentity>> {
        if let Some(machine_id) = self.tokens.get(token_hash) {
            return Ok(Some(AgentIdentity { machine_id }));
        }
        let id: Option<String> = with_db!(self, p => {
            sqlx::query_scalar("SELECT machine_id FROM agent_credentials WHERE token_hash = $1 AND revoked_at IS NULL")
                .bind(token_hash)
                .fetch_optional(p)
                .await?
        });
        let Some(id) = id else { return Ok(None) };
        let machine_id = parse_uuid(&id)?;
        self.tokens.put(token_hash, machine_id);
        Ok(Some(AgentIdentity { machine_id }))
    }

    /// Revokes every credential of a machine. Returns how many were revoked (0: unknown machine
    /// or already revoked).
    pub async fn revoke_agent(&self, machine_id: Uuid, audit: NewAuditEntry) -> StoreResult<u64> {
        let n = with_db!(self, p => {
            let mut tx = p.begin_with(self.begin_write()).await?;
            let n = sqlx::query("UPDATE agent_credentials SET revoked_at = $1 WHERE machine_id = $2 AND revoked_at IS NULL")
                .bind(now_ms())
                .bind(machine_id.to_string())
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if n > 0 {
                tx.append_audit(&self.audit_key, &audit.details(serde_json::json!({"credentials_revoked": n}))).await?;
            }
            tx.commit().await?;
            n
        });
        self.tokens.forget_machine(machine_id);
        Ok(n)
    }

    /// Records that these agents were heard from (job polls, gathered and written together),
    /// where the stored time is more than a minute old: most polls then cost no write at all.
    pub async fn touch_machines(&self, machine_ids: &[Uuid]) -> StoreResult<()> {
        let now = now_ms();
        for chunk in machine_ids.chunks(500) {
            let mut params = Params::new(self.backend());
            let (now_at, stale_before) = (params.one(), params.one());
            let sql = format!(
                "UPDATE machines SET last_seen_at = {now_at} WHERE last_seen_at < {stale_before} AND id IN ({})",
                params.list(chunk.len())
            );
            with_db!(self, p => {
                let mut q = sqlx::query(&sql).bind(now).bind(now - 60_000);
                for id in chunk {
                    q = q.bind(id.to_string());
                }
                q.execute(p).await?;
            });
        }
        Ok(())
    }

    pub async fn machine(&self, id: Uuid) -> StoreResult<Option<Machine>> {
        let sql = format!("SELECT {MACHINE_COLUMNS} FROM machines m WHERE m.id = $1");
        let row: Option<MachineRow> = with_db!(self, p => {
            sqlx::query_as(&sql).bind(id.to_string()).fetch_optional(p).await?
        });
        row.map(Machine::try_from).transpose()
    }

    /// Machines ordered by hostname, a page at a time.
    pub async fn machines(&self, limit: i64, offset: i64) -> StoreResult<Vec<Machine>> {
        let sql = format!("SELECT {MACHINE_COLUMNS} FROM machines m ORDER BY m.hostname, m.id LIMIT $1 OFFSET $2");
        let rows: Vec<MachineRow> = with_db!(self, p => {
            sqlx::query_as(&sql).bind(limit).bind(offset).fetch_all(p).await?
        });
        rows.into_iter().map(Machine::try_from).collect()
    }
}
