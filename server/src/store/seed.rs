//! Bulk loading of a generated fleet (the demo and the benchmarks): machines, their latest
//! results, connection paths and history, written in large transactions.
use super::{Store, StoreResult, with_db};

#[derive(Debug, Clone)]
pub struct SeedResult {
    pub check: String,
    pub target: String,
    pub status: &'static str,
    pub cause: Option<String>,
    pub summary: String,
    pub evidence: String,
    pub observed_at: i64,
    pub status_since: i64,
}

#[derive(Debug, Clone)]
pub struct SeedPath {
    pub target: String,
    pub host: String,
    pub gateway: Option<String>,
    pub status: &'static str,
    pub layer: Option<String>,
    pub cause: Option<String>,
    pub since: i64,
    pub observed_at: i64,
}

#[derive(Debug, Clone)]
pub struct SeedTransition {
    pub check: String,
    pub target: String,
    pub from: Option<&'static str>,
    pub to: &'static str,
    pub cause: Option<String>,
    pub summary: String,
    pub at: i64,
}

#[derive(Debug, Clone)]
pub struct SeedMachine {
    pub id: String,
    pub hostname: String,
    pub role: &'static str,
    pub os: String,
    pub site: String,
    pub enrolled_at: i64,
    pub last_seen_at: i64,
    pub credential_hash: String,
    pub results: Vec<SeedResult>,
    pub paths: Vec<SeedPath>,
    pub history: Vec<SeedTransition>,
}

impl SeedMachine {
    /// The same worst status and failing count the report transaction keeps.
    fn health(&self) -> (&'static str, i64) {
        let (failing, health) = crate::domain::health::Health::of_results(self.results.iter().map(|r| r.status));
        (health.as_str(), failing)
    }
}

impl Store {
    /// Inserts the machines with everything they carry, in one transaction.
    pub async fn seed_machines(&self, machines: &[SeedMachine]) -> StoreResult<()> {
        with_db!(self, p => {
            let mut tx = p.begin_with(self.begin_write()).await?;
            for m in machines {
                let (health, failing) = m.health();
                sqlx::query(
                    "INSERT INTO machines (id, hostname, role, os, agent_version, site, labels, enrolled_at, last_seen_at, \
                     last_report_seq, health, failing) VALUES ($1, $2, $3, $4, $5, $6, '[]', $7, $8, 1, $9, $10)",
                )
                .bind(&m.id)
                .bind(&m.hostname)
                .bind(m.role)
                .bind(&m.os)
                .bind(env!("CARGO_PKG_VERSION"))
                .bind(&m.site)
                .bind(m.enrolled_at)
                .bind(m.last_seen_at)
                .bind(health)
                .bind(failing)
                .execute(&mut *tx)
                .await?;
                sqlx::query("INSERT INTO agent_credentials (id, machine_id, token_hash, created_at) VALUES ($1, $2, $3, $4)")
                    .bind(uuid::Uuid::new_v4().to_string())
                    .bind(&m.id)
                    .bind(&m.credential_hash)
                    .bind(m.enrolled_at)
                    .execute(&mut *tx)
                    .await?;
                for r in &m.results {
                    sqlx::query(
                        "INSERT INTO check_results (machine_id, check_id, target, status, summary, cause, evidence, observed_at, \
                         duration_ms, status_since) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 12, $9)",
                    )
                    .bind(&m.id)
                    .bind(&r.check)
                    .bind(&r.target)
                    .bind(r.status)
                    .bind(&r.summary)
                    .bind(r.cause.as_deref())
                    .bind(&r.evidence)
                    .bind(r.observed_at)
                    .bind(r.status_since)
                    .execute(&mut *tx)
                    .await?;
                }
                for c in &m.paths {
                    sqlx::query(
                        "INSERT INTO connection_paths (machine_id, target, host, gateway, status, layer, cause, status_since, observed_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                    )
                    .bind(&m.id)
                    .bind(&c.target)
                    .bind(&c.host)
                    .bind(c.gateway.as_deref())
                    .bind(c.status)
                    .bind(c.layer.as_deref())
                    .bind(c.cause.as_deref())
                    .bind(c.since)
                    .bind(c.observed_at)
                    .execute(&mut *tx)
                    .await?;
                }
                for t in &m.history {
                    sqlx::query(
                        "INSERT INTO check_transitions (machine_id, check_id, target, from_status, to_status, cause, summary, evidence, at) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, '{}', $8)",
                    )
                    .bind(&m.id)
                    .bind(&t.check)
                    .bind(&t.target)
                    .bind(t.from)
                    .bind(t.to)
                    .bind(t.cause.as_deref())
                    .bind(&t.summary)
                    .bind(t.at)
                    .execute(&mut *tx)
                    .await?;
                }
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// A health sample at a given bucket, as the correlation run records them (demo history).
    pub async fn seed_health_sample(
        &self,
        bucket_at: i64,
        machines: i64,
        failing: i64,
        warning: i64,
        incidents: i64,
    ) -> StoreResult<()> {
        with_db!(self, p => {
            sqlx::query(
                "INSERT INTO health_samples (bucket_at, machines, failing_machines, warning_machines, open_incidents) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (bucket_at) DO NOTHING",
            )
            .bind(bucket_at)
            .bind(machines)
            .bind(failing)
            .bind(warning)
            .bind(incidents)
            .execute(p)
            .await?;
        });
        Ok(())
    }
}
