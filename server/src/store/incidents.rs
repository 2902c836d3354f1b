//! Incidents: the correlation engine's input (current failures) and output (incidents that open,
//! change and resolve, with their machines and history).
use std::collections::{BTreeMap, BTreeSet};

use uuid::Uuid;

use super::{Store, StoreError, StoreResult, convert, corrupt, now_ms, parse_uuid, with_db};
use rdpfleet_proto::causes;

use crate::domain::correlation::{Draft, HostIdentity, Kind, LocalFailure, Observations, PathFailure};
use crate::domain::health::Health;
use crate::domain::ids::{IncidentId, MachineId};
use crate::domain::incident::{Incident, IncidentEvent, IncidentMachine, IncidentState, Relation};

#[derive(sqlx::FromRow)]
struct IncidentRow {
    id: String,
    incident_key: String,
    kind: String,
    scope: String,
    root_cause: String,
    title: String,
    fix_id: Option<String>,
    state: String,
    opened_at: i64,
    resolved_at: Option<i64>,
    updated_at: i64,
    affected_count: i64,
    evidence: String,
}

impl TryFrom<IncidentRow> for Incident {
    type Error = StoreError;
    fn try_from(r: IncidentRow) -> StoreResult<Incident> {
        Ok(Incident {
            id: IncidentId(parse_uuid(&r.id)?),
            kind: Kind::parse(&r.kind).ok_or_else(|| corrupt("incident kind", &r.kind))?,
            state: IncidentState::parse(&r.state).ok_or_else(|| corrupt("incident state", &r.state))?,
            evidence: serde_json::from_str(&r.evidence).map_err(|_| corrupt("incident evidence", &r.evidence))?,
            key: r.incident_key,
            scope: r.scope,
            root_cause: r.root_cause,
            title: r.title,
            fix_id: r.fix_id,
            opened_at: r.opened_at,
            resolved_at: r.resolved_at,
            updated_at: r.updated_at,
            affected_count: r.affected_count,
        })
    }
}

#[derive(sqlx::FromRow)]
struct IncidentMachineRow {
    machine_id: String,
    hostname: String,
    site: Option<String>,
    relation: String,
    health: String,
}

impl TryFrom<IncidentMachineRow> for IncidentMachine {
    type Error = StoreError;
    fn try_from(r: IncidentMachineRow) -> StoreResult<IncidentMachine> {
        Ok(IncidentMachine {
            machine_id: MachineId(parse_uuid(&r.machine_id)?),
            relation: Relation::parse(&r.relation).ok_or_else(|| corrupt("relation", &r.relation))?,
            health: Health::parse(&r.health).ok_or_else(|| corrupt("health", &r.health))?,
            hostname: r.hostname,
            site: r.site,
        })
    }
}

#[derive(sqlx::FromRow)]
struct IncidentEventRow {
    at: i64,
    event: String,
    detail: String,
}

impl From<IncidentEventRow> for IncidentEvent {
    fn from(r: IncidentEventRow) -> IncidentEvent {
        IncidentEvent { at: r.at, event: r.event, detail: r.detail }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ReconcileStats {
    pub opened: usize,
    pub changed: usize,
    pub resolved: usize,
    pub open: usize,
    /// Incidents opened and resolved by this run, by id (for notifications).
    pub opened_ids: Vec<String>,
    pub resolved_ids: Vec<String>,
}

/// Appends to an incident's history inside the caller's transaction (either backend).
macro_rules! event {
    ($tx:expr, $id:expr, $at:expr, $kind:expr, $detail:expr) => {
        sqlx::query("INSERT INTO incident_events (incident_id, at, event, detail) VALUES ($1, $2, $3, $4)")
            .bind($id)
            .bind($at)
            .bind($kind)
            .bind($detail)
            .execute(&mut *$tx)
            .await?
    };
}

const INCIDENT_COLUMNS: &str = "id, incident_key, kind, scope, root_cause, title, fix_id, state, opened_at, resolved_at, \
     updated_at, affected_count, evidence";

type PathTuple = (
    String,
    String,
    Option<String>,
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    i64,
    String,
    String,
);
type LocalTuple = (String, String, Option<String>, String, String, String, Option<String>, i64);

const PATH_COLUMNS: &str = "c.machine_id, m.hostname, m.site, c.target, c.host, c.gateway, c.layer, c.cause, \
     c.status_since, c.addresses, c.status";

fn path_failure(t: PathTuple, intermittent: bool) -> PathFailure {
    let (machine_id, hostname, site, target, host, gateway, layer, cause, since, addresses, _) = t;
    PathFailure {
        machine_id,
        hostname,
        site,
        target,
        host,
        addresses: addresses.split_whitespace().map(str::to_owned).collect(),
        gateway,
        layer,
        cause,
        since,
        intermittent,
    }
}

impl Store {
    /// What the correlation engine reads: failing paths (and paths that flapped within
    /// `flap_window_ms`, or warn of intermittent loss), failing local checks, the names clients
    /// use for hosts with their addresses, how many clients reach each name, and the hosts' own
    /// agents.
    pub async fn observations(&self, flap_window_ms: i64) -> StoreResult<Observations> {
        let since = now_ms() - flap_window_ms;
        let intermittent_causes: Vec<&str> =
            causes::CAUSES.iter().filter(|c| causes::means_intermittent(c.id)).map(|c| c.id).collect();
        let (paths, locals, transitions, resolved, reachable, hosts) = with_db!(self, p => {
            let mut q = sqlx::QueryBuilder::new(format!(
                "SELECT {PATH_COLUMNS} FROM connection_paths c JOIN machines m ON m.id = c.machine_id \
                 WHERE c.status = 'fail' OR (c.status = 'warn' AND c.cause IN ("
            ));
            let mut list = q.separated(", ");
            for c in &intermittent_causes {
                list.push_bind(*c);
            }
            q.push("))");
            let paths: Vec<PathTuple> = q.build_query_as().fetch_all(p).await?;
            let locals: Vec<LocalTuple> = sqlx::query_as(
                "SELECT r.machine_id, m.hostname, m.site, m.role, r.check_id, r.target, r.cause, r.status_since \
                 FROM check_results r JOIN machines m ON m.id = r.machine_id \
                 WHERE r.status = 'fail' AND r.check_id <> 'rdp.path'",
            )
            .fetch_all(p)
            .await?;
            let transitions: Vec<(String, String, String, Option<String>, i64)> = sqlx::query_as(
                "SELECT machine_id, target, to_status, cause, at FROM check_transitions \
                 WHERE at >= $1 AND check_id = 'rdp.path' ORDER BY at",
            )
            .bind(since)
            .fetch_all(p)
            .await?;
            let resolved: Vec<(String, String)> =
                sqlx::query_as("SELECT DISTINCT host, addresses FROM connection_paths").fetch_all(p).await?;
            let reachable: Vec<(String, i64)> = sqlx::query_as(
                "SELECT host, COUNT(DISTINCT machine_id) FROM connection_paths WHERE status = 'pass' GROUP BY host",
            )
            .fetch_all(p)
            .await?;
            let hosts: Vec<(String, String, Option<String>)> = sqlx::query_as(
                "SELECT m.id, m.hostname, r.evidence FROM machines m LEFT JOIN check_results r \
                 ON r.machine_id = m.id AND r.check_id = 'host.identity' AND r.target = '' WHERE m.role <> 'client'",
            )
            .fetch_all(p)
            .await?;
            (paths, locals, transitions, resolved, reachable, hosts)
        });
        // Flapping: failed twice or more with one cause within the window (fail, pass, fail…);
        // one failure that was then fixed is not, nor two different faults one after the
        // other. The failure stays part of its incident between flips, under that cause.
        let mut fails: BTreeMap<(String, String, String), (usize, i64)> = BTreeMap::new();
        for (machine, target, to, cause, at) in transitions {
            let Some(cause) = cause else { continue };
            let intermittent_warn = to == "warn" && causes::means_intermittent(&cause);
            if to == "fail" || intermittent_warn {
                fails.entry((machine, target, cause)).or_insert((0, at)).0 += 1;
            }
        }
        let mut flaps: BTreeMap<(String, String), (usize, Option<String>, i64)> = BTreeMap::new();
        for ((machine, target, cause), (n, first)) in fails {
            if n >= 2 {
                flaps.insert((machine, target), (n, Some(cause), first));
            }
        }
        let mut out_paths: Vec<PathFailure> = Vec::with_capacity(paths.len());
        let mut seen: BTreeSet<(String, String)> = BTreeSet::new();
        for t in paths {
            let key = (t.0.clone(), t.3.clone());
            let warn = t.10 == "warn";
            let flapping = flaps.contains_key(&key);
            seen.insert(key);
            out_paths.push(path_failure(t, warn || flapping));
        }
        for ((machine, target), (_, cause, first)) in flaps {
            if seen.contains(&(machine.clone(), target.clone())) {
                continue;
            }
            // Passing now, but not for long: the row still says where the path leads.
            let row: Option<PathTuple> = with_db!(self, p => {
                sqlx::query_as(&format!(
                    "SELECT {PATH_COLUMNS} FROM connection_paths c JOIN machines m ON m.id = c.machine_id \
                     WHERE c.machine_id = $1 AND c.target = $2"
                ))
                .bind(&machine)
                .bind(&target)
                .fetch_optional(p)
                .await?
            });
            if let Some(t) = row {
                let mut f = path_failure(t, true);
                f.cause = cause;
                f.since = first;
                out_paths.push(f);
            }
        }
        let locals = locals
            .into_iter()
            .filter_map(|(machine_id, hostname, site, role, check, target, cause, since)| {
                // A failure without a cause names nothing to correlate on.
                Some(LocalFailure {
                    machine_id,
                    hostname,
                    site,
                    is_host: role != "client",
                    check,
                    target,
                    cause: cause?,
                    since,
                })
            })
            .collect();
        Ok(Observations {
            paths: out_paths,
            locals,
            resolved: resolved
                .into_iter()
                .map(|(h, a)| (h, a.split_whitespace().map(str::to_owned).collect()))
                .collect(),
            reachable: reachable.into_iter().map(|(h, n)| (h, usize::try_from(n).unwrap_or(0))).collect(),
            identities: hosts
                .into_iter()
                .map(|(machine_id, name, evidence)| {
                    let evidence = evidence.and_then(|e| serde_json::from_str::<serde_json::Value>(&e).ok());
                    HostIdentity::of_report(machine_id, name, evidence.as_ref())
                })
                .collect(),
        })
    }

    /// Brings the incident table in line with the engine's drafts: new keys open, known ones
    /// change when their root cause or machines change, missing ones resolve.
    pub async fn reconcile_incidents(&self, drafts: &[Draft]) -> StoreResult<ReconcileStats> {
        let now = now_ms();
        let mut stats = ReconcileStats { open: drafts.len(), ..ReconcileStats::default() };
        with_db!(self, p => {
            let mut tx = p.begin_with(self.begin_write()).await?;
            let open: Vec<(String, String, String)> =
                sqlx::query_as("SELECT id, incident_key, root_cause FROM incidents WHERE state = 'open'")
                    .fetch_all(&mut *tx)
                    .await?;
            let mut members: BTreeMap<String, BTreeSet<(String, String)>> = BTreeMap::new();
            let rows: Vec<(String, String, String)> = sqlx::query_as(
                "SELECT im.incident_id, im.machine_id, im.relation FROM incident_machines im \
                 JOIN incidents i ON i.id = im.incident_id WHERE i.state = 'open'",
            )
            .fetch_all(&mut *tx)
            .await?;
            for (incident, machine, relation) in rows {
                members.entry(incident).or_default().insert((machine, relation));
            }
            let by_key: BTreeMap<&str, (&str, &str)> =
                open.iter().map(|(id, key, root)| (key.as_str(), (id.as_str(), root.as_str()))).collect();
            let wanted: BTreeSet<&str> = drafts.iter().map(|d| d.key.as_str()).collect();
            for (id, key, _) in &open {
                if !wanted.contains(key.as_str()) {
                    sqlx::query("UPDATE incidents SET state = 'resolved', resolved_at = $1, updated_at = $1 WHERE id = $2")
                        .bind(now)
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                    event!(tx, id, now, "resolved", "no machine shows the failure any more");
                    stats.resolved += 1;
                    stats.resolved_ids.push(id.clone());
                }
            }
            for d in drafts {
                let set: BTreeSet<(String, String)> = d
                    .sources
                    .iter()
                    .map(|m| (m.clone(), Relation::Source.as_str().to_owned()))
                    .chain(
                        d.affected
                            .iter()
                            .filter(|m| !d.sources.contains(*m))
                            .map(|m| (m.clone(), Relation::Affected.as_str().to_owned())),
                    )
                    .collect();
                let evidence = serde_json::json!({
                    "failures": d.failures,
                    "chain": d.evidence,
                    "groups": d.groups,
                    "symptoms": d.symptoms,
                    "names": d.names,
                    "intermittent": d.intermittent,
                    "unknown_cause": d.unknown_cause,
                })
                .to_string();
                let id = match by_key.get(d.key.as_str()) {
                    Some((id, root)) => {
                        let old = members.get(*id).cloned().unwrap_or_default();
                        if *root == d.root_cause && old == set {
                            sqlx::query("UPDATE incidents SET evidence = $1 WHERE id = $2")
                                .bind(&evidence)
                                .bind(*id)
                                .execute(&mut *tx)
                                .await?;
                            continue;
                        }
                        let detail = if *root != d.root_cause {
                            format!("root cause {root} → {}; {} machine(s)", d.root_cause, set.len())
                        } else {
                            format!("{} → {} machine(s)", old.len(), set.len())
                        };
                        sqlx::query(
                            "UPDATE incidents SET root_cause = $1, title = $2, fix_id = $3, affected_count = $4, \
                             evidence = $5, updated_at = $6 WHERE id = $7",
                        )
                        .bind(&d.root_cause)
                        .bind(&d.title)
                        .bind(d.fix_id.as_deref())
                        .bind(set.len() as i64)
                        .bind(&evidence)
                        .bind(now)
                        .bind(*id)
                        .execute(&mut *tx)
                        .await?;
                        event!(tx, id, now, "changed", &detail);
                        sqlx::query("DELETE FROM incident_machines WHERE incident_id = $1").bind(*id).execute(&mut *tx).await?;
                        stats.changed += 1;
                        (*id).to_owned()
                    }
                    None => {
                        let id = Uuid::new_v4().to_string();
                        // It began with its earliest failure, not when this run noticed it.
                        let opened = if d.started_at > 0 { d.started_at.min(now) } else { now };
                        sqlx::query(
                            "INSERT INTO incidents (id, incident_key, kind, scope, root_cause, title, fix_id, state, opened_at, \
                             updated_at, affected_count, evidence) VALUES ($1, $2, $3, $4, $5, $6, $7, 'open', $8, $8, $9, $10)",
                        )
                        .bind(&id)
                        .bind(&d.key)
                        .bind(d.kind.as_str())
                        .bind(&d.scope)
                        .bind(&d.root_cause)
                        .bind(&d.title)
                        .bind(d.fix_id.as_deref())
                        .bind(opened)
                        .bind(set.len() as i64)
                        .bind(&evidence)
                        .execute(&mut *tx)
                        .await?;
                        event!(tx, &id, opened, "opened", &format!("{} ({} machine(s))", d.root_cause, set.len()));
                        stats.opened += 1;
                        stats.opened_ids.push(id.clone());
                        id
                    }
                };
                for (machine, relation) in &set {
                    sqlx::query("INSERT INTO incident_machines (incident_id, machine_id, relation) VALUES ($1, $2, $3)")
                        .bind(&id)
                        .bind(machine)
                        .bind(relation)
                        .execute(&mut *tx)
                        .await?;
                }
            }
            tx.commit().await?;
        });
        Ok(stats)
    }

    /// Incidents in a state (all when `None`), newest first.
    pub async fn incidents(&self, state: Option<IncidentState>, limit: i64, offset: i64) -> StoreResult<Vec<Incident>> {
        self.incidents_ordered(state, "opened_at DESC, id", limit, offset).await
    }

    /// Open incidents, the ones touching most machines first.
    pub async fn largest_open_incidents(&self, limit: i64) -> StoreResult<Vec<Incident>> {
        self.incidents_ordered(Some(IncidentState::Open), "affected_count DESC, opened_at, id", limit, 0).await
    }

    async fn incidents_ordered(
        &self,
        state: Option<IncidentState>,
        order: &'static str,
        limit: i64,
        offset: i64,
    ) -> StoreResult<Vec<Incident>> {
        let state = state.map(IncidentState::as_str);
        let rows = with_db!(self, p => {
            sqlx::query_as::<_, IncidentRow>(&format!(
                "SELECT {INCIDENT_COLUMNS} FROM incidents WHERE ($1 IS NULL OR state = $1) \
                 ORDER BY {order} LIMIT $2 OFFSET $3"
            ))
            .bind(state)
            .bind(limit)
            .bind(offset)
            .fetch_all(p)
            .await?
        });
        convert(rows)
    }

    pub async fn incident(&self, id: Uuid) -> StoreResult<Option<Incident>> {
        let row = with_db!(self, p => {
            sqlx::query_as::<_, IncidentRow>(&format!("SELECT {INCIDENT_COLUMNS} FROM incidents WHERE id = $1"))
                .bind(id.to_string())
                .fetch_optional(p)
                .await?
        });
        row.map(Incident::try_from).transpose()
    }

    pub async fn incident_machines(&self, id: Uuid, limit: i64) -> StoreResult<Vec<IncidentMachine>> {
        let rows = with_db!(self, p => {
            sqlx::query_as::<_, IncidentMachineRow>(
                "SELECT im.machine_id, m.hostname, m.site, im.relation, m.health FROM incident_machines im \
                 JOIN machines m ON m.id = im.machine_id WHERE im.incident_id = $1 \
                 ORDER BY im.relation DESC, m.hostname LIMIT $2",
            )
            .bind(id.to_string())
            .bind(limit)
            .fetch_all(p)
            .await?
        });
        convert(rows)
    }

    pub async fn incident_events(&self, id: Uuid) -> StoreResult<Vec<IncidentEvent>> {
        let rows = with_db!(self, p => {
            sqlx::query_as::<_, IncidentEventRow>(
                "SELECT at, event, detail FROM incident_events WHERE incident_id = $1 ORDER BY at, id",
            )
            .bind(id.to_string())
            .fetch_all(p)
            .await?
        });
        Ok(rows.into_iter().map(IncidentEvent::from).collect())
    }

    /// Open incidents a machine is part of.
    pub async fn machine_incidents(&self, machine_id: Uuid) -> StoreResult<Vec<Incident>> {
        let rows = with_db!(self, p => {
            sqlx::query_as::<_, IncidentRow>(&format!(
                "SELECT {} FROM incidents i JOIN incident_machines im ON im.incident_id = i.id \
                 WHERE im.machine_id = $1 AND i.state = 'open' ORDER BY i.opened_at DESC",
                INCIDENT_COLUMNS.split(", ").map(|c| format!("i.{c}")).collect::<Vec<_>>().join(", ")
            ))
            .bind(machine_id.to_string())
            .fetch_all(p)
            .await?
        });
        convert(rows)
    }

    /// Takes or renews the named lease for `holder` until `until_ms`; false when another holder
    /// has it. Lets one replica at a time run a periodic task.
    pub async fn try_lease(&self, name: &str, holder: &str, until_ms: i64) -> StoreResult<bool> {
        let now = now_ms();
        let n = with_db!(self, p => {
            sqlx::query(
                "INSERT INTO leases (name, holder, until_ms) VALUES ($1, $2, $3) \
                 ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, until_ms = excluded.until_ms \
                 WHERE leases.holder = excluded.holder OR leases.until_ms < $4",
            )
            .bind(name)
            .bind(holder)
            .bind(until_ms)
            .bind(now)
            .execute(p)
            .await?
            .rows_affected()
        });
        Ok(n == 1)
    }
}
