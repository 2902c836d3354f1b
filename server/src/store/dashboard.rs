//! Read models of the dashboard pages. Fleet-wide numbers come from columns the report
//! transaction keeps (machine health) and tables the correlation run refreshes (check stats,
//! health samples), so no page scans the results of a large fleet.
use rdpfleet_proto::enroll::MachineRole;

use super::{Store, StoreError, StoreResult, convert, corrupt, now_ms, parse_uuid, with_db};
use crate::domain::health::Health;
use crate::domain::ids::MachineId;
use crate::domain::machines::{CheckFinding, MachineSummary};

#[derive(Debug, Clone, Default, serde::Serialize, utoipa::ToSchema)]
pub struct HealthCounts {
    pub total: i64,
    pub pass: i64,
    pub warn: i64,
    pub fail: i64,
    pub error: i64,
    pub unknown: i64,
    /// Not heard from within `offline_after_ms`.
    pub offline: i64,
    /// Connection paths (client → host) in all, and those failing or warning now: a machine
    /// count alone hides that one failing host breaks hundreds of paths.
    pub paths: i64,
    pub paths_failing: i64,
    pub paths_warning: i64,
    /// Machines per agent version, the most common first (at most 20 versions).
    pub versions: Vec<VersionCount>,
}

#[derive(Debug, Clone, Default, serde::Serialize, utoipa::ToSchema)]
pub struct VersionCount {
    pub version: String,
    pub machines: i64,
}

#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize, utoipa::ToSchema)]
pub struct HealthSample {
    pub bucket_at: i64,
    pub machines: i64,
    pub failing_machines: i64,
    pub warning_machines: i64,
    pub open_incidents: i64,
}

#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize, utoipa::ToSchema)]
pub struct CheckStat {
    pub check_id: String,
    pub failing: i64,
    pub warning: i64,
}

#[derive(sqlx::FromRow)]
struct MachineListRow {
    id: String,
    hostname: String,
    role: String,
    site: Option<String>,
    os: String,
    agent_version: String,
    health: String,
    failing: i64,
    last_seen_at: i64,
}

impl TryFrom<MachineListRow> for MachineSummary {
    type Error = StoreError;
    fn try_from(m: MachineListRow) -> StoreResult<MachineSummary> {
        Ok(MachineSummary {
            id: MachineId(parse_uuid(&m.id)?),
            role: MachineRole::parse(&m.role).ok_or_else(|| corrupt("role", &m.role))?,
            health: Health::parse(&m.health).ok_or_else(|| corrupt("health", &m.health))?,
            hostname: m.hostname,
            site: m.site,
            os: m.os,
            agent_version: m.agent_version,
            failing: m.failing,
            last_seen_at: m.last_seen_at,
        })
    }
}

pub use crate::domain::machines::MachineFilter;

pub const PAGE_SIZE: i64 = 50;

#[derive(sqlx::FromRow)]
struct CheckMachineRow {
    machine_id: String,
    hostname: String,
    site: Option<String>,
    target: String,
    status: String,
    cause: Option<String>,
    summary: String,
    status_since: i64,
}

impl TryFrom<CheckMachineRow> for CheckFinding {
    type Error = StoreError;
    fn try_from(r: CheckMachineRow) -> StoreResult<CheckFinding> {
        Ok(CheckFinding {
            machine_id: r
                .machine_id
                .parse()
                .map_err(|_| StoreError::Corrupt(format!("machine id {:?}", r.machine_id)))?,
            status: super::results::parse_status(&r.status)?,
            hostname: r.hostname,
            site: r.site,
            target: r.target,
            cause: r.cause,
            summary: r.summary,
            status_since: r.status_since,
        })
    }
}

#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize, utoipa::ToSchema)]
pub struct PathCell {
    /// Client site (or the client's host name when one site is shown).
    pub client: String,
    pub host: String,
    pub paths: i64,
    pub failing: i64,
    pub warning: i64,
    /// The layer most failing paths of the cell stop at.
    pub layer: Option<String>,
}

impl MachineFilter {
    /// The WHERE clause and its text binds, in order ($1...).
    fn clause(&self, backend: super::Backend) -> (String, Vec<String>) {
        let mut conds = Vec::new();
        let mut binds = Vec::new();
        let mut params = super::sql::Params::new(backend);
        let mut bind = |v: String, conds: &mut Vec<String>, sql: &str| {
            binds.push(v);
            conds.push(sql.replace('?', &params.one()));
        };
        if let Some(q) = self.q.as_deref().map(str::trim).filter(|q| !q.is_empty()) {
            let prefix = q.to_ascii_lowercase();
            match backend {
                // A range on the lower(hostname) index (binary order, so it is exactly the prefix).
                super::Backend::Sqlite => {
                    bind(prefix.clone(), &mut conds, "lower(m.hostname) >= ?");
                    bind(format!("{prefix}\u{10FFFF}"), &mut conds, "lower(m.hostname) < ?");
                }
                // LIKE 'prefix%' on the text_pattern_ops index.
                super::Backend::Postgres => {
                    let escaped = prefix.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
                    bind(format!("{escaped}%"), &mut conds, "lower(m.hostname) LIKE ? ESCAPE '\\'");
                }
            }
        }
        if let Some(r) = self.role.as_deref().filter(|r| !r.is_empty()) {
            bind(r.to_owned(), &mut conds, "m.role = ?");
        }
        if let Some(s) = self.site.as_deref().filter(|s| !s.is_empty()) {
            bind(s.to_owned(), &mut conds, "m.site = ?");
        }
        if let Some(h) = self.status.as_deref().filter(|h| !h.is_empty()) {
            bind(h.to_owned(), &mut conds, "m.health = ?");
        }
        if let Some(c) = self.check.as_deref().filter(|c| !c.is_empty()) {
            bind(
                c.to_owned(),
                &mut conds,
                // Driven by the (check_id, status) index: the failing set is small next to the fleet.
                "m.id IN (SELECT r.machine_id FROM check_results r WHERE r.check_id = ? AND r.status IN ('fail', 'warn'))",
            );
        }
        if let Some(v) = self.version.as_deref().filter(|v| !v.is_empty()) {
            bind(v.to_owned(), &mut conds, "m.agent_version = ?");
        }
        if let Some(t) = self.toward.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
            bind(
                t.to_ascii_lowercase(),
                &mut conds,
                "m.id IN (SELECT c.machine_id FROM connection_paths c WHERE c.host = ? AND c.status IN ('fail', 'warn'))",
            );
        }
        let sql = if conds.is_empty() { String::new() } else { format!("WHERE {}", conds.join(" AND ")) };
        (sql, binds)
    }

    fn order(&self) -> &'static str {
        match self.sort.as_deref() {
            Some("last_seen") => "m.last_seen_at DESC, m.id",
            Some("failing") => "m.failing DESC, m.hostname, m.id",
            Some("site") => "m.site, m.hostname, m.id",
            _ => "m.hostname, m.id",
        }
    }
}

impl Store {
    pub async fn health_counts(&self, offline_after_ms: i64) -> StoreResult<HealthCounts> {
        let cutoff = now_ms() - offline_after_ms;
        type Counts = (Vec<(String, i64)>, i64, Vec<(String, i64)>, Vec<(String, i64)>);
        let (rows, offline, paths, versions): Counts = with_db!(self, p => {
            let rows = sqlx::query_as("SELECT health, COUNT(*) FROM machines GROUP BY health").fetch_all(p).await?;
            let offline = sqlx::query_scalar("SELECT COUNT(*) FROM machines WHERE last_seen_at < $1")
                .bind(cutoff)
                .fetch_one(p)
                .await?;
            let paths: Vec<(String, i64)> =
                sqlx::query_as("SELECT status, COUNT(*) FROM connection_paths GROUP BY status").fetch_all(p).await?;
            let versions: Vec<(String, i64)> = sqlx::query_as(
                "SELECT agent_version, COUNT(*) FROM machines GROUP BY agent_version ORDER BY 2 DESC, 1 LIMIT 20",
            )
            .fetch_all(p)
            .await?;
            (rows, offline, paths, versions)
        });
        let versions = versions.into_iter().map(|(version, machines)| VersionCount { version, machines }).collect();
        let mut c = HealthCounts { offline, versions, ..HealthCounts::default() };
        for (status, n) in paths {
            c.paths += n;
            match status.as_str() {
                "fail" => c.paths_failing = n,
                "warn" => c.paths_warning = n,
                _ => {}
            }
        }
        for (h, n) in rows {
            c.total += n;
            match h.as_str() {
                "pass" => c.pass = n,
                "warn" => c.warn = n,
                "fail" => c.fail = n,
                "error" => c.error = n,
                _ => c.unknown += n,
            }
        }
        Ok(c)
    }

    /// Records the fleet's health now in `bucket_at`'s bucket, and refreshes the check stats.
    pub async fn record_health_sample(&self, bucket_at: i64) -> StoreResult<()> {
        let c = self.health_counts(i64::MAX / 2).await?;
        with_db!(self, p => {
            let mut tx = p.begin_with(self.begin_write()).await?;
            let open: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM incidents WHERE state = 'open'").fetch_one(&mut *tx).await?;
            sqlx::query(
                "INSERT INTO health_samples (bucket_at, machines, failing_machines, warning_machines, open_incidents) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (bucket_at) DO UPDATE SET machines = excluded.machines, \
                 failing_machines = excluded.failing_machines, warning_machines = excluded.warning_machines, \
                 open_incidents = excluded.open_incidents",
            )
            .bind(bucket_at)
            .bind(c.total)
            .bind(c.fail)
            .bind(c.warn)
            .bind(open)
            .execute(&mut *tx)
            .await?;
            // Another replica may be sampling at the same moment: on PostgreSQL its new rows
            // are invisible to this DELETE, so the INSERT must not trip over them.
            sqlx::query("DELETE FROM check_stats").execute(&mut *tx).await?;
            sqlx::query(
                "INSERT INTO check_stats (check_id, failing, warning) \
                 SELECT check_id, SUM(CASE WHEN status = 'fail' THEN 1 ELSE 0 END), SUM(CASE WHEN status = 'warn' THEN 1 ELSE 0 END) \
                 FROM check_results WHERE status IN ('fail', 'warn') GROUP BY check_id \
                 ON CONFLICT (check_id) DO UPDATE SET failing = excluded.failing, warning = excluded.warning",
            )
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
        });
        Ok(())
    }

    pub async fn health_samples(&self, since: i64) -> StoreResult<Vec<HealthSample>> {
        let rows = with_db!(self, p => {
            sqlx::query_as::<_, HealthSample>(
                "SELECT bucket_at, machines, failing_machines, warning_machines, open_incidents FROM health_samples \
                 WHERE bucket_at >= $1 ORDER BY bucket_at",
            )
            .bind(since)
            .fetch_all(p)
            .await?
        });
        Ok(rows)
    }

    pub async fn check_stats(&self, limit: i64) -> StoreResult<Vec<CheckStat>> {
        let rows = with_db!(self, p => {
            sqlx::query_as::<_, CheckStat>(
                "SELECT check_id, failing, warning FROM check_stats ORDER BY failing DESC, warning DESC, check_id LIMIT $1",
            )
            .bind(limit)
            .fetch_all(p)
            .await?
        });
        Ok(rows)
    }

    pub async fn open_incident_count(&self) -> StoreResult<i64> {
        let n = with_db!(self, p => {
            sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM incidents WHERE state = 'open'").fetch_one(p).await?
        });
        Ok(n)
    }

    /// A page of machines matching the filter, and how many match in all.
    pub async fn machine_page(&self, f: &MachineFilter) -> StoreResult<(Vec<MachineSummary>, i64)> {
        let (clause, binds) = f.clause(self.backend());
        let offset = i64::from(f.page.unwrap_or(1).max(1) - 1) * PAGE_SIZE;
        let list = format!(
            "SELECT m.id, m.hostname, m.role, m.site, m.os, m.agent_version, m.health, m.failing, m.last_seen_at \
             FROM machines m {clause} ORDER BY {} LIMIT {PAGE_SIZE} OFFSET {offset}",
            f.order()
        );
        let count = format!("SELECT COUNT(*) FROM machines m {clause}");
        let out = with_db!(self, p => {
            let mut q = sqlx::query_as::<_, MachineListRow>(&list);
            let mut c = sqlx::query_scalar::<_, i64>(&count);
            for b in &binds {
                q = q.bind(b);
                c = c.bind(b);
            }
            (q.fetch_all(p).await?, c.fetch_one(p).await?)
        });
        Ok((convert(out.0)?, out.1))
    }

    /// The causes the given machines fail or warn with now: (machine id, cause), for a list
    /// page's cause column.
    pub async fn current_causes(&self, machines: &[uuid::Uuid]) -> StoreResult<Vec<(String, String)>> {
        if machines.is_empty() {
            return Ok(vec![]);
        }
        let rows = with_db!(self, p => {
            // Driven by the machines (their primary-key prefix), not by the fleet-wide status
            // index a planner might pick for `status IN (...)`; the few rows are sifted here.
            let mut q = sqlx::QueryBuilder::new("SELECT machine_id, status, cause FROM check_results WHERE machine_id IN (");
            let mut list = q.separated(", ");
            for m in machines {
                list.push_bind(m.to_string());
            }
            q.push(")");
            q.build_query_as::<(String, String, Option<String>)>().fetch_all(p).await?
        });
        Ok(rows
            .into_iter()
            .filter(|(_, status, _)| status == "fail" || status == "warn")
            .filter_map(|(m, _, cause)| Some((m, cause?)))
            .collect())
    }

    /// Clients' paths toward a host that fail or warn now, by the names and addresses it goes
    /// by (`short` also matches every FQDN it is the first label of): up to `limit`, and how
    /// many in all.
    pub async fn inbound_failures(
        &self,
        names: &[String],
        short: &str,
        limit: i64,
    ) -> StoreResult<(Vec<InboundPath>, i64)> {
        let like = format!("{}.%", short.replace(['%', '_', '\\'], ""));
        let out = with_db!(self, p => {
            let mut q = sqlx::QueryBuilder::new(
                "SELECT c.machine_id, m.hostname, c.target, c.status, c.cause, c.status_since \
                 FROM connection_paths c JOIN machines m ON m.id = c.machine_id \
                 WHERE c.status IN ('fail', 'warn') AND (c.host LIKE ",
            );
            q.push_bind(like.clone());
            q.push(" OR c.host IN (");
            let mut list = q.separated(", ");
            for n in names {
                list.push_bind(n.clone());
            }
            q.push(")) ORDER BY c.status_since, m.hostname LIMIT ");
            q.push_bind(limit);
            let rows: Vec<InboundPath> = q.build_query_as().fetch_all(p).await?;
            let mut c = sqlx::QueryBuilder::new(
                "SELECT COUNT(*) FROM connection_paths c WHERE c.status IN ('fail', 'warn') AND (c.host LIKE ",
            );
            c.push_bind(like);
            c.push(" OR c.host IN (");
            let mut list = c.separated(", ");
            for n in names {
                list.push_bind(n.clone());
            }
            c.push("))");
            let total: i64 = c.build_query_scalar().fetch_one(p).await?;
            (rows, total)
        });
        Ok(out)
    }

    pub async fn sites(&self) -> StoreResult<Vec<String>> {
        let rows = with_db!(self, p => {
            sqlx::query_scalar::<_, String>("SELECT DISTINCT site FROM machines WHERE site IS NOT NULL ORDER BY site LIMIT 500")
                .fetch_all(p)
                .await?
        });
        Ok(rows)
    }

    /// Machines where a check fails or warns, longest-failing first.
    /// Machines failing or warning on a check, the longest-failing first, a page at a time.
    pub async fn check_machines(&self, check: &str, limit: i64, offset: i64) -> StoreResult<Vec<CheckFinding>> {
        let rows = with_db!(self, p => {
            sqlx::query_as::<_, CheckMachineRow>(
                "SELECT r.machine_id, m.hostname, m.site, r.target, r.status, r.cause, r.summary, r.status_since \
                 FROM check_results r JOIN machines m ON m.id = r.machine_id \
                 WHERE r.check_id = $1 AND r.status IN ('fail', 'warn') \
                 ORDER BY r.status_since, m.hostname, r.machine_id, r.target LIMIT $2 OFFSET $3",
            )
            .bind(check)
            .bind(limit)
            .bind(offset)
            .fetch_all(p)
            .await?
        });
        convert(rows)
    }

    /// The connection map: paths grouped by client site (or by client within one site) × host.
    pub async fn path_map(&self, site: Option<&str>, limit: i64) -> StoreResult<Vec<PathCell>> {
        let client = if site.is_some() { "m.hostname" } else { "COALESCE(m.site, '(no site)')" };
        let sql = format!(
            "SELECT {client} AS client, c.host AS host, COUNT(*) AS paths, \
             SUM(CASE WHEN c.status = 'fail' THEN 1 ELSE 0 END) AS failing, \
             SUM(CASE WHEN c.status = 'warn' THEN 1 ELSE 0 END) AS warning, \
             MAX(CASE WHEN c.status = 'fail' THEN c.layer END) AS layer \
             FROM connection_paths c JOIN machines m ON m.id = c.machine_id \
             WHERE ($1 IS NULL OR m.site = $1) GROUP BY {client}, c.host ORDER BY 1, 2 LIMIT $2"
        );
        let rows = with_db!(self, p => {
            sqlx::query_as::<_, PathCell>(&sql).bind(site).bind(limit).fetch_all(p).await?
        });
        Ok(rows)
    }
}

#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize, utoipa::ToSchema)]
pub struct ResultExportRow {
    pub machine_id: String,
    pub hostname: String,
    pub site: Option<String>,
    pub check_id: String,
    pub target: String,
    pub status: String,
    pub cause: Option<String>,
    pub summary: String,
    pub observed_at: i64,
    pub status_since: i64,
}

impl Store {
    pub async fn machine_summary(&self, id: uuid::Uuid) -> StoreResult<Option<MachineSummary>> {
        let row = with_db!(self, p => {
            sqlx::query_as::<_, MachineListRow>(
                "SELECT m.id, m.hostname, m.role, m.site, m.os, m.agent_version, m.health, m.failing, m.last_seen_at \
                 FROM machines m WHERE m.id = $1",
            )
            .bind(id.to_string())
            .fetch_optional(p)
            .await?
        });
        row.map(MachineSummary::try_from).transpose()
    }

    /// Every machine matching the filter (up to `limit`), for exports.
    pub async fn machines_matching(&self, f: &MachineFilter, limit: i64) -> StoreResult<Vec<MachineSummary>> {
        let (clause, binds) = f.clause(self.backend());
        let sql = format!(
            "SELECT m.id, m.hostname, m.role, m.site, m.os, m.agent_version, m.health, m.failing, m.last_seen_at \
             FROM machines m {clause} ORDER BY {} LIMIT {limit}",
            f.order()
        );
        let rows = with_db!(self, p => {
            let mut q = sqlx::query_as::<_, MachineListRow>(&sql);
            for b in &binds {
                q = q.bind(b);
            }
            q.fetch_all(p).await?
        });
        convert(rows)
    }

    /// Latest results, optionally of one check and/or status (up to `limit`), for exports.
    pub async fn results_matching(
        &self,
        check: Option<&str>,
        status: Option<&str>,
        limit: i64,
    ) -> StoreResult<Vec<ResultExportRow>> {
        let rows = with_db!(self, p => {
            sqlx::query_as::<_, ResultExportRow>(
                "SELECT r.machine_id, m.hostname, m.site, r.check_id, r.target, r.status, r.cause, r.summary, r.observed_at, r.status_since \
                 FROM check_results r JOIN machines m ON m.id = r.machine_id \
                 WHERE ($1 IS NULL OR r.check_id = $1) AND ($2 IS NULL OR r.status = $2) \
                 ORDER BY m.hostname, r.check_id, r.target LIMIT $3",
            )
            .bind(check)
            .bind(status)
            .bind(limit)
            .fetch_all(p)
            .await?
        });
        Ok(rows)
    }
}

/// A client's path toward a host that fails or warns now.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct InboundPath {
    pub machine_id: String,
    pub hostname: String,
    pub target: String,
    pub status: String,
    pub cause: Option<String>,
    pub status_since: i64,
}
