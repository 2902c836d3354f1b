//! Bulk loading of a generated fleet (the demo and the benchmarks): machines, their latest
//! results, connection paths and history, written in large transactions.
use super::report_plan::{NewTransition, PathRow, ResultRow};
use super::results::{insert_transitions, upsert_paths, upsert_results};
use super::sql::bind_args;
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

    /// Its results, paths and history as the report transaction writes them.
    fn rows(&self) -> (Vec<ResultRow>, Vec<PathRow>, Vec<NewTransition>) {
        let results = self
            .results
            .iter()
            .map(|r| ResultRow {
                check: r.check.clone(),
                target: r.target.clone(),
                status: r.status,
                summary: r.summary.clone(),
                cause: r.cause.clone(),
                evidence: r.evidence.clone(),
                observed: r.observed_at,
                duration: 12,
                since: r.status_since,
            })
            .collect();
        let paths = self
            .paths
            .iter()
            .map(|c| PathRow {
                target: c.target.clone(),
                host: c.host.clone(),
                gateway: c.gateway.clone(),
                status: c.status,
                layer: c.layer.clone(),
                cause: c.cause.clone(),
                addresses: String::new(),
                since: c.since,
                observed: c.observed_at,
            })
            .collect();
        let history = self
            .history
            .iter()
            .map(|t| NewTransition {
                check: t.check.clone(),
                target: t.target.clone(),
                from: t.from,
                to: t.to,
                cause: t.cause.clone(),
                summary: t.summary.clone(),
                evidence: "{}".into(),
                at: t.at,
            })
            .collect();
        (results, paths, history)
    }
}

impl Store {
    /// Inserts the machines with everything they carry, in one transaction.
    pub async fn seed_machines(&self, machines: &[SeedMachine]) -> StoreResult<()> {
        let backend = self.backend();
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
                // The statements a report writes, so the seeded rows are exactly the stored kind.
                let (results, paths, history) = m.rows();
                let id = m.id.as_str();
                let results: Vec<(&str, &ResultRow)> = results.iter().map(|r| (id, r)).collect();
                let paths: Vec<(&str, &PathRow)> = paths.iter().map(|x| (id, x)).collect();
                let history: Vec<(&str, &NewTransition)> = history.iter().map(|t| (id, t)).collect();
                let statements = [
                    (!results.is_empty()).then(|| upsert_results(backend, &results)),
                    (!paths.is_empty()).then(|| upsert_paths(backend, &paths)),
                    (!history.is_empty()).then(|| insert_transitions(backend, &history)),
                ];
                for q in statements.iter().flatten() {
                    bind_args!(sqlx::query(&q.sql), &q.args).execute(&mut *tx).await?;
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
