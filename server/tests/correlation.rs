//! Correlation scenarios built from real reports, on SQLite and PostgreSQL: each produces exactly
//! the expected incidents, root causes and affected sets, and they resolve on recovery.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;

use rdpfleet_e2e::TestDb;
use rdpfleet_proto::check::{CheckResult, CheckStatus};
use rdpfleet_proto::enroll::MachineRole;
use rdpfleet_server::domain::correlation::Kind;
use rdpfleet_server::domain::correlation::Rules;
use rdpfleet_server::domain::incident::{Incident, IncidentState};
use rdpfleet_server::secrets::token_hash;
use rdpfleet_server::store::Store;
use rdpfleet_server::store::audit::{ActorKind, NewAuditEntry};
use rdpfleet_server::store::enrollment::{NewEnrollmentToken, NewMachine};
use rdpfleet_server::store::now_ms;
use rdpfleet_server::tasks::correlation::run_once;
use serde_json::json;
use uuid::Uuid;

struct Fleet {
    store: Store,
    seq: std::collections::HashMap<Uuid, u64>,
    n: usize,
}

/// A path result as the agent's rdp.path check reports it.
fn path(host: &str, gateway: Option<&str>, cause: Option<&str>, layer: Option<&str>, minutes_ago: i64) -> CheckResult {
    let status = if cause.is_some() { CheckStatus::Fail } else { CheckStatus::Pass };
    CheckResult {
        check: "rdp.path".into(),
        target: Some(format!("{host}:3389")),
        status,
        summary: cause.map_or("ok".into(), |c| format!("fails: {c}")),
        cause: cause.map(Into::into),
        evidence: json!({"host": host, "gateway": gateway, "first_failing_layer": layer}),
        observed_at: time::OffsetDateTime::now_utc() - time::Duration::minutes(minutes_ago),
        duration_ms: 10,
    }
}

fn local(check: &str, cause: Option<&str>) -> CheckResult {
    CheckResult {
        check: check.into(),
        target: None,
        status: if cause.is_some() { CheckStatus::Fail } else { CheckStatus::Pass },
        summary: cause.unwrap_or("ok").into(),
        cause: cause.map(Into::into),
        evidence: json!({}),
        observed_at: time::OffsetDateTime::now_utc(),
        duration_ms: 1,
    }
}

impl Fleet {
    async fn new(db: &TestDb) -> Fleet {
        let store = Store::connect(db.url()).await.unwrap();
        store
            .create_enrollment_token(
                NewEnrollmentToken {
                    label: "t",
                    token_hash: &token_hash("rfe_t"),
                    expires_at: now_ms() + 60_000,
                    max_uses: 1000,
                },
                NewAuditEntry::new(ActorKind::Cli, "test", "enrollment_token.created", "t"),
            )
            .await
            .unwrap();
        Fleet { store, seq: Default::default(), n: 0 }
    }

    async fn machine(&mut self, hostname: &str, role: MachineRole, site: &str) -> Uuid {
        self.n += 1;
        let m = NewMachine { hostname, role, os: "windows 10", agent_version: "0.1.0", site: Some(site), labels: &[] };
        self.store.enroll(&token_hash("rfe_t"), m, &token_hash(&format!("rfa_{}", self.n))).await.unwrap()
    }

    async fn report(&mut self, m: Uuid, results: Vec<CheckResult>) {
        let seq = self.seq.entry(m).or_default();
        *seq += 1;
        self.store.store_report(m, *seq, None, &results).await.unwrap();
    }

    async fn correlate(&self) -> Vec<Incident> {
        run_once(&self.store, &Rules::default()).await.unwrap();
        let mut open = self.store.incidents(Some(IncidentState::Open), 100, 0).await.unwrap();
        open.sort_by(|a, b| a.key.cmp(&b.key));
        open
    }

    async fn members(&self, i: &Incident) -> (BTreeSet<String>, BTreeSet<String>) {
        let rows = self.store.incident_machines(i.id.0, 1000).await.unwrap();
        let pick = |rel: &str| rows.iter().filter(|r| r.relation.as_str() == rel).map(|r| r.hostname.clone()).collect();
        (pick("source"), pick("affected"))
    }
}

fn names(v: &[&str]) -> BTreeSet<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

async fn scenarios(db: TestDb) {
    let mut f = Fleet::new(&db).await;
    let host = f.machine("RDP01", MachineRole::Host, "hq").await;
    let mut clients = Vec::new();
    for i in 0..4 {
        clients.push(f.machine(&format!("pc-{i}"), MachineRole::Client, "hq").await);
    }
    let branch: Vec<Uuid> = {
        let mut v = Vec::new();
        for i in 0..3 {
            v.push(f.machine(&format!("br-{i}"), MachineRole::Client, "branch").await);
        }
        v
    };
    let lone = f.machine("kiosk-7", MachineRole::Client, "hq").await;

    // All healthy: no incident.
    for &c in clients.iter().chain(&branch) {
        f.report(c, vec![path("rdp01.corp.example", None, None, None, 0)]).await;
    }
    f.report(host, vec![local("host.listener_cert", None)]).await;
    assert!(f.correlate().await.is_empty());

    // 1. The host's certificate expires: the clients see it at the certificate layer and the
    //    host's own agent names the root cause → one host incident.
    for &c in &clients {
        f.report(c, vec![path("rdp01.corp.example", None, Some("cert.expired"), Some("certificate"), 0)]).await;
    }
    f.report(host, vec![local("host.listener_cert", Some("host.listener_cert_expired"))]).await;
    let open = f.correlate().await;
    assert_eq!(open.len(), 1, "{open:#?}");
    let i = &open[0];
    assert_eq!(
        (i.kind.as_str(), i.scope.as_str(), i.root_cause.as_str()),
        ("host", "rdp01.corp.example", "host.listener_cert_expired")
    );
    assert_eq!(i.fix_id.as_deref(), Some("host.cert.regenerate"));
    assert_eq!(i.affected_count, 5);
    assert_eq!(f.members(i).await, (names(&["RDP01"]), names(&["pc-0", "pc-1", "pc-2", "pc-3"])));
    let chain = &i.evidence;
    assert_eq!(chain["chain"][0]["machine"], "RDP01", "the root cause leads the evidence chain");
    assert_eq!(chain["failures"], 5);
    let host_incident = i.id;

    // 2. Every client through gateway G sees a name mismatch → one gateway incident.
    for (k, &c) in branch.iter().enumerate() {
        f.report(
            c,
            vec![path(
                &format!("app{k}.corp.example"),
                Some("gw.corp.example"),
                Some("gateway.cert_name_mismatch"),
                Some("gateway"),
                0,
            )],
        )
        .await;
    }
    // 3. A lone misconfigured client.
    f.report(
        lone,
        vec![
            path("rdp01.corp.example", None, None, None, 0),
            local("client.cert_warning_override", Some("client.cert_warnings_silenced")),
        ],
    )
    .await;
    let open = f.correlate().await;
    let keys: Vec<(&str, &str, &str)> =
        open.iter().map(|i| (i.kind.as_str(), i.scope.as_str(), i.root_cause.as_str())).collect();
    assert_eq!(
        keys,
        vec![
            ("gateway", "gw.corp.example", "gateway.cert_name_mismatch"),
            ("host", "rdp01.corp.example", "host.listener_cert_expired"),
            ("machine", "kiosk-7", "client.cert_warnings_silenced"),
        ]
    );
    assert_eq!(f.members(&open[0]).await.1, names(&["br-0", "br-1", "br-2"]));
    assert_eq!(f.members(&open[2]).await, (names(&["kiosk-7"]), names(&[])));
    assert_eq!(open[1].id, host_incident, "an unchanged incident keeps its identity");

    // 4. Recovery: the certificate is renewed, the gateway fixed, the client cleaned up.
    for &c in &clients {
        f.report(c, vec![path("rdp01.corp.example", None, None, None, 0)]).await;
    }
    f.report(host, vec![local("host.listener_cert", None)]).await;
    for (k, &c) in branch.iter().enumerate() {
        f.report(c, vec![path(&format!("app{k}.corp.example"), Some("gw.corp.example"), None, None, 0)]).await;
    }
    f.report(lone, vec![local("client.cert_warning_override", None)]).await;
    assert!(f.correlate().await.is_empty());
    let resolved = f.store.incidents(Some(IncidentState::Resolved), 100, 0).await.unwrap();
    assert_eq!(resolved.len(), 3);
    let events = f.store.incident_events(host_incident.0).await.unwrap();
    assert_eq!(events.iter().map(|e| e.event.as_str()).collect::<Vec<_>>(), vec!["opened", "resolved"]);

    // 5. A site network outage: the branch's clients lose the network together (their other
    //    paths fail at the network layers within minutes) → one network incident for the site.
    for (k, &c) in branch.iter().enumerate() {
        f.report(
            c,
            vec![path(
                &format!("app{k}.corp.example"),
                Some("gw.corp.example"),
                Some("net.host_unreachable"),
                Some("tcp"),
                k as i64,
            )],
        )
        .await;
    }
    // An hq client failing alone to reach another host is its own, machine incident.
    f.report(clients[0], vec![path("lab9.corp.example", None, Some("net.port_filtered"), Some("tcp"), 0)]).await;
    let open = f.correlate().await;
    let keys: Vec<(&str, &str, &str, i64)> =
        open.iter().map(|i| (i.kind.as_str(), i.scope.as_str(), i.root_cause.as_str(), i.affected_count)).collect();
    assert_eq!(
        keys,
        vec![("machine", "pc-0", "net.port_filtered", 1), ("network", "branch", "net.host_unreachable", 3)],
        "{open:#?}"
    );
    // Failures that began far apart are not one outage.
    for (k, &c) in branch.iter().enumerate() {
        f.report(c, vec![path(&format!("app{k}.corp.example"), Some("gw.corp.example"), None, None, 0)]).await;
        f.report(c, vec![path("rdp01.corp.example", None, Some("net.host_unreachable"), Some("tcp"), 60 * k as i64)])
            .await;
    }
    let open = f.correlate().await;
    assert!(open.iter().all(|i| i.kind != Kind::Network), "{open:#?}");
    assert_eq!(
        open.iter().filter(|i| i.kind == Kind::Host).count(),
        1,
        "three clients that cannot reach rdp01: the host"
    );

    // Several clients of one site that cannot reach one host: that host's problem, not the
    // site's network (here its own agent says its firewall is closed).
    for (k, &c) in branch.iter().enumerate() {
        f.report(c, vec![path("rdp01.corp.example", None, None, None, 0)]).await;
        f.report(c, vec![path("rdp01.corp.example", None, Some("net.port_filtered"), Some("tcp"), k as i64)]).await;
    }
    f.report(host, vec![local("host.firewall", Some("host.firewall_closed"))]).await;
    let open = f.correlate().await;
    let host_incidents: Vec<_> = open.iter().filter(|i| i.kind == Kind::Host).collect();
    assert_eq!(open.iter().filter(|i| i.kind == Kind::Network).count(), 0, "{open:#?}");
    assert_eq!(host_incidents.len(), 1);
    assert_eq!(host_incidents[0].root_cause, "host.firewall_closed");
    assert_eq!(f.members(host_incidents[0]).await.0, names(&["RDP01"]));

    // The Machines page's filters on this backend: prefix search (case-insensitive, wildcards
    // literal), site + health, failing check.
    use rdpfleet_server::store::dashboard::MachineFilter;
    for (q, n) in [("PC-", 4), ("pc_", 0), ("%", 0), ("br-1", 1), ("kiosk", 1)] {
        let filter = MachineFilter { q: Some(q.into()), ..Default::default() };
        assert_eq!(f.store.machine_page(&filter).await.unwrap().1, n, "q={q}");
    }
    let filter = MachineFilter { site: Some("branch".into()), status: Some("fail".into()), ..Default::default() };
    assert_eq!(f.store.machine_page(&filter).await.unwrap().1, 3);
    let filter = MachineFilter { check: Some("rdp.path".into()), sort: Some("failing".into()), ..Default::default() };
    let (rows, total) = f.store.machine_page(&filter).await.unwrap();
    assert_eq!((rows.len() as i64, total), (4, 4), "pc-0 and the three branch clients");

    // Retention: history older than the cutoff goes, latest results stay.
    let before = f.store.count_transitions().await.unwrap();
    let latest = f.store.latest_results(host).await.unwrap().len();
    let removed = f.store.purge_history(now_ms() - 30 * 60_000).await.unwrap();
    assert!(removed > 0 && f.store.count_transitions().await.unwrap() < before, "{removed} of {before}");
    assert_eq!(f.store.latest_results(host).await.unwrap().len(), latest);

    // The trend and the check stats were recorded.
    assert!(!f.store.health_samples(0).await.unwrap().is_empty());
    assert!(f.store.check_stats(10).await.unwrap().iter().any(|s| s.check_id == "rdp.path" && s.failing > 0));
}

#[tokio::test]
async fn correlation_scenarios_sqlite() {
    scenarios(TestDb::sqlite()).await;
}

#[tokio::test]
async fn correlation_scenarios_postgres() {
    if let Some(db) = TestDb::postgres().await {
        scenarios(db).await;
    }
}
