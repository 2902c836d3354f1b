//! The read-only pages: Overview, Machines, Machine, Check, Incidents, Incident, Connection map.
use std::collections::{BTreeMap, BTreeSet};

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::response::Response;
use rdpfleet_proto::diagnosis::{Diagnosis, PATH_CHECK};
use serde::Deserialize;
use uuid::Uuid;

use super::session::Session;
use super::view::*;
use super::{WebError, WebResult, render};
use crate::domain::incident::IncidentState;
use crate::domain::machines::CurrentResult;
use crate::state::AppState;
use crate::store::dashboard::{MachineFilter, PAGE_SIZE};
use crate::store::now_ms;
use rdpfleet_proto::check::CheckStatus;

const TREND_MS: i64 = 48 * 3_600_000;

fn bad_query(e: QueryRejection) -> WebError {
    WebError::BadRequest(e.body_text())
}

pub(crate) fn uuid_of(p: Result<Path<String>, PathRejection>) -> WebResult<Uuid> {
    let Path(s) = p.map_err(|_| WebError::NotFound)?;
    Uuid::parse_str(&s).map_err(|_| WebError::NotFound)
}

pub async fn overview(State(state): State<AppState>, session: Session) -> WebResult<Response> {
    let s = &state.store;
    let open = s.largest_open_incidents(12).await?;
    let (counts, counted_at) = state.fleet_counts.get(s).await?;
    let page = OverviewPage {
        nav: Nav::of(&session, "overview"),
        counts,
        counted_at: crate::web::view::time_of_day(counted_at),
        incidents: open.iter().map(IncidentView::of).collect(),
        open_incidents: s.open_incident_count().await?,
        bars: bars(&s.check_stats(8).await?),
        chart: Chart::of(&s.health_samples(now_ms() - TREND_MS).await?),
    };
    render(&page)
}

pub async fn machines(
    State(state): State<AppState>,
    session: Session,
    q: Result<Query<MachineFilter>, QueryRejection>,
) -> WebResult<Response> {
    let Query(f) = q.map_err(bad_query)?;
    f.validate()?;
    let (rows, total) = state.store.machine_page(&f).await?;
    let pages = u32::try_from((total + PAGE_SIZE - 1) / PAGE_SIZE).unwrap_or(u32::MAX).max(1);
    let fv = FilterView::of(&f);
    let ids: Vec<Uuid> = rows.iter().map(|m| m.id.0).collect();
    let mut worst: BTreeMap<String, &'static rdpfleet_proto::causes::Cause> = BTreeMap::new();
    for (machine, cause) in state.store.current_causes(&ids).await? {
        if let Some(c) = rdpfleet_proto::causes::lookup(&cause) {
            let e = worst.entry(machine).or_insert(c);
            if c.severity > e.severity {
                *e = c;
            }
        }
    }
    let views = rows
        .iter()
        .map(|m| {
            let mut v = MachineView::of(m);
            v.cause = worst.get(&v.id).map(|c| c.title.to_owned()).unwrap_or_default();
            v
        })
        .collect();
    let page = MachinesPage {
        nav: Nav::of(&session, "machines"),
        rows: views,
        total,
        page: f.page.unwrap_or(1).max(1),
        pages,
        query: fv.query(),
        f: fv,
        sites: state.store.sites().await?,
    };
    render(&page)
}

fn path_view(r: &CurrentResult) -> PathView {
    let d: Option<Diagnosis> = serde_json::from_value(r.evidence.clone()).ok();
    let layers = d
        .as_ref()
        .map(|d| {
            d.layers
                .iter()
                .map(|l| LayerView {
                    name: l.layer.title().to_owned(),
                    status: serde_json::to_value(l.status)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_owned))
                        .unwrap_or_default(),
                    summary: l.summary.clone(),
                    findings: l.findings.iter().map(|f| format!("{} — {}", f.cause, f.detail)).collect(),
                })
                .collect()
        })
        .unwrap_or_default();
    PathView {
        target: r.target.clone(),
        status: r.status.as_str().to_owned(),
        summary: r.summary.clone(),
        cause: r.cause.clone(),
        layers,
        observed: ago(r.observed_at),
    }
}

pub async fn machine(
    State(state): State<AppState>,
    session: Session,
    id: Result<Path<String>, PathRejection>,
) -> WebResult<Response> {
    let id = uuid_of(id)?;
    let s = &state.store;
    let row = s.machine_summary(id).await?.ok_or(WebError::NotFound)?;
    let full = s.machine(id).await?.ok_or(WebError::NotFound)?;
    let mut results = s.latest_results(id).await?;
    // What needs attention first, then by check.
    let rank = |st: CheckStatus| match st {
        CheckStatus::Fail => 0,
        CheckStatus::Error => 1,
        CheckStatus::Warn => 2,
        CheckStatus::Pass => 3,
        CheckStatus::Skipped => 4,
    };
    results.sort_by(|a, b| {
        rank(a.status).cmp(&rank(b.status)).then(a.check_id.cmp(&b.check_id)).then(a.target.cmp(&b.target))
    });
    // A host's page shows the clients that fail toward it, by every name it goes by.
    let (inbound, inbound_total) = if full.role == rdpfleet_proto::enroll::MachineRole::Client {
        (vec![], 0)
    } else {
        let lower = full.hostname.to_lowercase();
        let short = lower.split('.').next().unwrap_or(&lower).to_owned();
        let reported = results.iter().find(|r| r.check_id == "host.identity").map(|r| &r.evidence);
        let identity = crate::domain::host_names::HostIdentity::of_report(id.to_string(), lower.clone(), reported);
        let mut names: Vec<String> = identity.names.iter().map(|n| n.to_lowercase()).collect();
        names.push(short.clone());
        names.extend(identity.addresses);
        s.inbound_failures(&names, &short, 50).await?
    };
    let page = MachinePage {
        inbound: inbound
            .iter()
            .map(|p| InboundView {
                machine_id: p.machine_id.clone(),
                hostname: p.hostname.clone(),
                target: p.target.clone(),
                status: p.status.clone(),
                cause_title: p.cause.as_deref().map(cause_title).unwrap_or_default(),
                cause: p.cause.clone().unwrap_or_default(),
                since: ago(p.status_since),
            })
            .collect(),
        inbound_total,
        can_propose: session.user.role >= crate::domain::users::Role::Operator,
        nav: Nav::of(&session, "machines"),
        m: MachineView::of(&row),
        labels: full.labels.join(", "),
        reports_received: full.reports_received,
        reports_dropped: full.reports_dropped,
        paths: results.iter().filter(|r| r.check_id == "rdp.path").map(path_view).collect(),
        results: results
            .iter()
            .map(|r| {
                let problem = matches!(r.status, CheckStatus::Fail | CheckStatus::Warn);
                let cause = r.cause.as_deref().filter(|_| problem).and_then(rdpfleet_proto::causes::lookup);
                // A path's cause on the host's (or gateway's) side is fixed there, not here.
                let elsewhere =
                    r.check_id == PATH_CHECK && cause.is_some_and(|c| c.side != rdpfleet_proto::causes::Side::Client);
                ResultView {
                    check_title: check_title(&r.check_id),
                    fix: cause
                        .filter(|_| !elsewhere)
                        .and_then(|c| c.fix)
                        .and_then(|f| rdpfleet_proto::fixes::for_os(f, &full.os))
                        .filter(|f| rdpfleet_proto::fixes::lookup(f).is_some_and(|f| f.target.fits(full.role)))
                        .map(str::to_owned),
                    fault_on: elsewhere.then(|| crate::store::results::host_of(&r.target)),
                    cause_title: r.cause.as_deref().map(cause_title).unwrap_or_default(),
                    remedy: cause.and_then(|c| rdpfleet_proto::remedies::remedy(c.id)),
                    check_id: r.check_id.clone(),
                    target: r.target.clone(),
                    status: r.status.as_str().to_owned(),
                    summary: r.summary.clone(),
                    cause: r.cause.clone(),
                    since: ago(r.status_since),
                    observed: ago(r.observed_at),
                    evidence: match &r.evidence {
                        serde_json::Value::String(text) => text.clone(),
                        v => serde_json::to_string_pretty(v).unwrap_or_default(),
                    },
                }
            })
            .collect(),
        history: s
            .transitions(id, 200)
            .await?
            .into_iter()
            .map(|t| TransitionView {
                at: at(t.at),
                check_id: t.check_id,
                target: t.target,
                from: t.from.map_or_else(|| "new".into(), |f| f.as_str().to_owned()),
                to: t.to.as_str().to_owned(),
                cause: t.cause,
                summary: t.summary,
            })
            .collect(),
        incidents: s.machine_incidents(id).await?.iter().map(IncidentView::of).collect(),
    };
    render(&page)
}

#[derive(Debug, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct PageQuery {
    pub page: Option<u32>,
}

pub async fn check(
    State(state): State<AppState>,
    session: Session,
    p: Result<Path<String>, PathRejection>,
    q: Result<Query<PageQuery>, QueryRejection>,
) -> WebResult<Response> {
    let Path(check_id) = p.map_err(|_| WebError::NotFound)?;
    let Query(q) = q.map_err(bad_query)?;
    if check_id.is_empty() || check_id.len() > 64 {
        return Err(WebError::NotFound);
    }
    let stat = state.store.check_stats(1000).await?.into_iter().find(|s| s.check_id == check_id);
    let (failing, warning) = stat.as_ref().map_or((0, 0), |s| (s.failing, s.warning));
    let pages = u32::try_from((failing + warning + PAGE_SIZE - 1) / PAGE_SIZE).unwrap_or(u32::MAX).max(1);
    let page = q.page.unwrap_or(1).clamp(1, pages);
    let rows = state.store.check_machines(&check_id, PAGE_SIZE, i64::from(page - 1) * PAGE_SIZE).await?;
    let page = CheckPage {
        nav: Nav::of(&session, "machines"),
        title: check_title(&check_id),
        failing,
        warning,
        rows: rows.iter().map(CheckRowView::of).collect(),
        check_id,
        page,
        pages,
    };
    render(&page)
}

#[derive(Debug, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct StateQuery {
    pub state: Option<String>,
}

/// `open` (default), `resolved` or `all` → the store's filter.
pub fn incident_state(q: &StateQuery) -> WebResult<(String, Option<IncidentState>)> {
    match q.state.as_deref().unwrap_or("open") {
        "" => Ok(("open".into(), Some(IncidentState::Open))),
        "all" => Ok(("all".into(), None)),
        other => match IncidentState::parse(other) {
            Some(s) => Ok((s.as_str().into(), Some(s))),
            None => Err(WebError::BadRequest(format!("unknown state {other:?}"))),
        },
    }
}

pub async fn incidents(
    State(state): State<AppState>,
    session: Session,
    q: Result<Query<StateQuery>, QueryRejection>,
) -> WebResult<Response> {
    let Query(q) = q.map_err(bad_query)?;
    let (name, filter) = incident_state(&q)?;
    let rows = state.store.incidents(filter, 500, 0).await?;
    render(&IncidentsPage {
        nav: Nav::of(&session, "incidents"),
        rows: rows.iter().map(IncidentView::of).collect(),
        state: name,
    })
}

/// Affected machines listed on an incident page.
const AFFECTED_LISTED: usize = 25;

pub async fn incident(
    State(state): State<AppState>,
    session: Session,
    id: Result<Path<String>, PathRejection>,
) -> WebResult<Response> {
    let id = uuid_of(id)?;
    let s = &state.store;
    let i = s.incident(id).await?.ok_or(WebError::NotFound)?;
    let chain = i.evidence["chain"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|l| {
                    let t = |k: &str| l[k].as_str().unwrap_or_default().to_owned();
                    LinkView {
                        machine: t("machine"),
                        check: t("check"),
                        target: t("target"),
                        cause_title: cause_title(&t("cause")),
                        cause: t("cause"),
                        since: l["since"].as_i64().map(at).unwrap_or_default(),
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    let text = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_owned();
    let list = |k: &str| i.evidence[k].as_array().cloned().unwrap_or_default();
    let groups = list("groups")
        .iter()
        .map(|g| GroupView {
            cause_title: cause_title(&text(&g["cause"])),
            cause: text(&g["cause"]),
            check_title: check_title(&text(&g["check"])),
            check: text(&g["check"]),
            host: text(&g["host"]),
            machines: g["machines"].as_i64().unwrap_or(0),
            failures: g["failures"].as_i64().unwrap_or(0),
            examples: g["examples"]
                .as_array()
                .map(|a| a.iter().filter_map(|m| m.as_str()).collect::<Vec<_>>().join(", "))
                .unwrap_or_default(),
        })
        .collect();
    // Sources come first in the store's order; a large incident lists its first affected
    // machines and counts the rest (the evidence above is already counted by cause and host).
    let mut machines = s.incident_machines(id, 1000).await?;
    let sources_n = machines.iter().filter(|m| m.relation == crate::domain::incident::Relation::Source).count();
    machines.truncate(sources_n + AFFECTED_LISTED);
    let members = if machines.is_empty() { 0 } else { usize::try_from(i.affected_count).unwrap_or(0) };
    let more_affected = members.saturating_sub(machines.len());
    let page = IncidentPage {
        can_propose: session.user.role >= crate::domain::users::Role::Operator,
        nav: Nav::of(&session, "incidents"),
        remedy: rdpfleet_proto::remedies::remedy(&i.root_cause),
        symptoms: list("symptoms").iter().map(|c| (text(c), cause_title(&text(c)))).collect(),
        names: list("names").iter().map(text).collect::<Vec<_>>().join(", "),
        intermittent: i.evidence["intermittent"].as_bool().unwrap_or(false),
        unknown_cause: i.evidence["unknown_cause"].as_bool().unwrap_or(false),
        groups,
        sources: sources_n,
        more_affected,
        machines,
        events: s.incident_events(id).await?.into_iter().map(|e| (at(e.at), e)).collect(),
        failures: i.evidence["failures"].as_i64().unwrap_or(0),
        chain,
        approval_note: i
            .fix_id
            .as_deref()
            .and_then(rdpfleet_proto::fixes::lookup)
            .and_then(|f| f.risk.reason(f.id))
            .map(|r| format!("A rollout of it needs a second person's approval: {r}.")),
        i: IncidentView::of(&i),
    };
    render(&page)
}

#[derive(Debug, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct MapQuery {
    pub site: Option<String>,
}

/// Most hosts shown as columns (those with the most failing paths first).
const MAP_MAX_HOSTS: usize = 60;

pub async fn map(
    State(state): State<AppState>,
    session: Session,
    q: Result<Query<MapQuery>, QueryRejection>,
) -> WebResult<Response> {
    let Query(q) = q.map_err(bad_query)?;
    let site = q.site.filter(|s| !s.is_empty());
    let cells = state.store.path_map(site.as_deref(), 20_000).await?;
    let mut host_fail: BTreeMap<&str, i64> = BTreeMap::new();
    for c in &cells {
        *host_fail.entry(c.host.as_str()).or_default() += c.failing;
    }
    let mut hosts: Vec<(&str, i64)> = host_fail.into_iter().collect();
    hosts.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    hosts.truncate(MAP_MAX_HOSTS);
    let hosts: Vec<String> = {
        let mut h: Vec<String> = hosts.into_iter().map(|(h, _)| h.to_owned()).collect();
        h.sort();
        h
    };
    let clients: BTreeSet<&str> = cells.iter().map(|c| c.client.as_str()).collect();
    let by: BTreeMap<(&str, &str), &crate::store::dashboard::PathCell> =
        cells.iter().map(|c| ((c.client.as_str(), c.host.as_str()), c)).collect();
    let rows = clients
        .into_iter()
        .map(|client| MapRowView {
            client: client.to_owned(),
            cells: hosts
                .iter()
                .map(|h| match by.get(&(client, h.as_str())) {
                    Some(c) => MapCellView {
                        host: h.clone(),
                        paths: c.paths,
                        failing: c.failing,
                        warning: c.warning,
                        layer: c.layer.clone().unwrap_or_default(),
                        class: if c.failing > 0 {
                            "bad"
                        } else if c.warning > 0 {
                            "warn"
                        } else {
                            "ok"
                        },
                    },
                    None => MapCellView {
                        host: h.clone(),
                        paths: 0,
                        failing: 0,
                        warning: 0,
                        layer: String::new(),
                        class: "none",
                    },
                })
                .collect(),
        })
        .collect();
    render(&MapPage {
        nav: Nav::of(&session, "map"),
        hosts,
        rows,
        site: site.unwrap_or_default(),
        sites: state.store.sites().await?,
    })
}
