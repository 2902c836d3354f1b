//! Correlation scenarios built from real reports, on SQLite and PostgreSQL: each produces exactly
//! the expected incidents, root causes and affected sets, and they resolve on recovery.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;

use rdpfleet_e2e::TestDb;
use rdpfleet_proto::check::{CheckResult, CheckStatus};
use rdpfleet_proto::diagnosis::Layer;
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

/// A path result as the agent's rdp.path check reports it (a real Diagnosis as evidence).
fn path(host: &str, gateway: Option<&str>, cause: Option<&str>, layer: Option<&str>, minutes_ago: i64) -> CheckResult {
    path_at(host, gateway, cause, layer, &[], minutes_ago)
}

fn path_at(
    host: &str,
    gateway: Option<&str>,
    cause: Option<&str>,
    layer: Option<&str>,
    addresses: &[&str],
    minutes_ago: i64,
) -> CheckResult {
    let layer: Option<Layer> = layer.map(|l| serde_json::from_value(json!(l)).unwrap());
    let failure = cause.map(|c| (layer.unwrap_or(Layer::Tcp), c));
    rdpfleet_e2e::diag::path_result(host, gateway, failure, addresses, minutes_ago)
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

/// The held-out kinds of fleet the first engine got wrong, in one realistic fleet: hosts with
/// healthy clients beside failing ones, names spelt every way, causes it does not know, paths
/// that flap, and an outage at a site.
async fn true_root_causes(db: TestDb) {
    let mut f = Fleet::new(&db).await;
    let hosts: Vec<Uuid> = {
        let mut v = Vec::new();
        for name in ["rdp10", "RDP11", "rdp12", "rdp13", "rdp14"] {
            v.push(f.machine(name, MachineRole::Host, "hq").await);
        }
        v
    };
    let mut pcs = Vec::new();
    for i in 0..12 {
        pcs.push(f.machine(&format!("ws-{i:02}"), MachineRole::Client, "hq").await);
    }
    let mut branch = Vec::new();
    for i in 0..4 {
        branch.push(f.machine(&format!("br-{i}"), MachineRole::Client, "branch").await);
    }
    for &h in &hosts {
        f.report(h, vec![local("host.rdp_enabled", None), local("host.listener_cert", None)]).await;
    }
    for &c in pcs.iter().chain(&branch) {
        let all = ["rdp10", "rdp11", "rdp12", "rdp13", "rdp14"]
            .iter()
            .map(|h| path(&format!("{h}.corp.example"), None, None, None, 0))
            .collect();
        f.report(c, all).await;
        f.report(c, vec![local("client.tls12", None)]).await;
    }
    assert!(f.correlate().await.is_empty());

    // 1. Causal order: rdp10's RDP is disabled, so nothing listens; clients find the port
    //    closed. The root is "RDP disabled" with its fix, the rest are its symptoms.
    f.report(
        hosts[0],
        vec![local("host.rdp_enabled", Some("host.rdp_disabled")), local("host.listener", Some("host.not_listening"))],
    )
    .await;
    for &c in &pcs[..5] {
        f.report(c, vec![path("rdp10.corp.example", None, Some("net.port_closed"), Some("tcp"), 0)]).await;
    }
    // A client whose own TLS 1.2 is off, and whose event log shows the 0x904 disconnect.
    f.report(
        pcs[11],
        vec![
            local("client.tls12", Some("client.tls12_disabled")),
            local("events.recent", Some("client.disconnect_0x904")),
        ],
    )
    .await;
    let open = f.correlate().await;
    let keys: Vec<(&str, &str, &str)> =
        open.iter().map(|i| (i.kind.as_str(), i.scope.as_str(), i.root_cause.as_str())).collect();
    assert_eq!(
        keys,
        vec![("host", "rdp10.corp.example", "host.rdp_disabled"), ("machine", "ws-11", "client.tls12_disabled")],
        "{open:#?}"
    );
    assert_eq!(open[0].fix_id.as_deref(), Some("host.rdp.enable"));
    let symptoms = &open[0].evidence["symptoms"];
    assert_eq!(symptoms, &json!(["host.not_listening", "net.port_closed"]));
    assert_eq!(f.members(&open[0]).await, (names(&["rdp10"]), names(&["ws-00", "ws-01", "ws-02", "ws-03", "ws-04"])));
    assert_eq!(open[1].evidence["symptoms"], json!(["client.disconnect_0x904"]));
    assert_eq!(open[0].evidence["groups"][0]["cause"], "host.rdp_disabled", "the root's group first");
    // Recovery.
    f.report(hosts[0], vec![local("host.rdp_enabled", None), local("host.listener", None)]).await;
    for &c in &pcs[..5] {
        f.report(c, vec![path("rdp10.corp.example", None, None, None, 0)]).await;
    }
    f.report(pcs[11], vec![local("client.tls12", None), local("events.recent", None)]).await;
    assert!(f.correlate().await.is_empty());

    // 2. Blame the side that differs. Three clients with TLS 1.2 off fail the handshake with
    //    rdp11 while nine others reach it: one incident for those clients, none for rdp11.
    for &c in &pcs[..3] {
        f.report(
            c,
            vec![
                local("client.tls12", Some("client.tls12_disabled")),
                path("rdp11.corp.example", None, Some("tls.handshake_failed"), Some("tls"), 0),
            ],
        )
        .await;
    }
    // The same handshake failure toward rdp12 from three clients with nothing different about
    // them, while others reach rdp12: the host is blamed.
    for &c in &pcs[6..9] {
        f.report(c, vec![path("rdp12.corp.example", None, Some("tls.handshake_failed"), Some("tls"), 0)]).await;
    }
    let open = f.correlate().await;
    let keys: Vec<(&str, &str, &str, i64)> =
        open.iter().map(|i| (i.kind.as_str(), i.scope.as_str(), i.root_cause.as_str(), i.affected_count)).collect();
    assert_eq!(
        keys,
        vec![
            ("clients", "client.tls12_disabled", "client.tls12_disabled", 3),
            ("host", "rdp12.corp.example", "tls.handshake_failed", 3),
        ],
        "{open:#?}"
    );
    assert_eq!(f.members(&open[0]).await, (names(&["ws-00", "ws-01", "ws-02"]), names(&[])));
    assert_eq!(open[0].fix_id.as_deref(), Some("host.tls12.enable"));
    assert_eq!(open[0].evidence["symptoms"], json!(["tls.handshake_failed"]));
    for &c in &pcs[..3] {
        f.report(c, vec![local("client.tls12", None), path("rdp11.corp.example", None, None, None, 0)]).await;
    }
    for &c in &pcs[6..9] {
        f.report(c, vec![path("rdp12.corp.example", None, None, None, 0)]).await;
    }
    assert!(f.correlate().await.is_empty());

    // 3. One name per host: clients call rdp13 "RDP13", "rdp13.corp.example." and by its
    //    address; its own agent calls it "rdp13" and finds its certificate expired.
    f.report(hosts[3], vec![local("host.listener_cert", Some("host.listener_cert_expired"))]).await;
    f.report(pcs[0], vec![path_at("RDP13", None, Some("cert.expired"), Some("certificate"), &["10.1.0.13"], 0)]).await;
    f.report(
        pcs[1],
        vec![path_at("rdp13.corp.example.", None, Some("cert.expired"), Some("certificate"), &["10.1.0.13"], 0)],
    )
    .await;
    f.report(pcs[2], vec![path_at("10.1.0.13", None, Some("cert.expired"), Some("certificate"), &["10.1.0.13"], 0)])
        .await;
    let open = f.correlate().await;
    assert_eq!(open.len(), 1, "{open:#?}");
    assert_eq!((open[0].kind, open[0].scope.as_str()), (Kind::Host, "rdp13.corp.example"));
    assert_eq!(open[0].root_cause, "host.listener_cert_expired");
    assert_eq!(open[0].evidence["names"], json!(["10.1.0.13", "rdp13", "rdp13.corp.example"]));
    assert_eq!(f.members(&open[0]).await, (names(&["rdp13"]), names(&["ws-00", "ws-01", "ws-02"])));
    f.report(hosts[3], vec![local("host.listener_cert", None)]).await;
    for (k, name) in ["RDP13", "rdp13.corp.example.", "10.1.0.13"].iter().enumerate() {
        f.report(pcs[k], vec![path_at(name, None, None, None, &["10.1.0.13"], 0)]).await;
    }
    assert!(f.correlate().await.is_empty());

    // A client that uses rdp14's bare address (no DNS answer to go by): the host's own agent
    // reports that address (host.identity), so it is still rdp14.
    f.report(
        hosts[4],
        vec![
            CheckResult {
                evidence: json!({"names": ["rdp14"], "addresses": ["10.1.0.14", "127.0.1.1"]}),
                ..local("host.identity", None)
            },
            local("host.listener_cert", Some("host.listener_cert_expired")),
        ],
    )
    .await;
    f.report(pcs[7], vec![path("10.1.0.14", None, Some("cert.expired"), Some("certificate"), 0)]).await;
    let open = f.correlate().await;
    assert_eq!(open.len(), 1, "{open:#?}");
    assert_eq!((open[0].kind, open[0].scope.as_str()), (Kind::Host, "rdp14.corp.example"));
    assert_eq!(open[0].evidence["names"], json!(["10.1.0.14", "rdp14", "rdp14.corp.example"]));
    assert_eq!(f.members(&open[0]).await, (names(&["rdp14"]), names(&["ws-07"])));
    f.report(hosts[4], vec![local("host.listener_cert", None)]).await;
    f.report(pcs[7], vec![path("10.1.0.14", None, None, None, 0)]).await;
    assert!(f.correlate().await.is_empty());

    // 4. A cause this server does not know (a newer agent, a typo) never blames the host.
    for &c in &pcs[3..6] {
        f.report(c, vec![path("rdp14.corp.example", None, Some("cert.post_quantum_missing"), Some("certificate"), 0)])
            .await;
    }
    let open = f.correlate().await;
    assert_eq!(open.len(), 3, "{open:#?}");
    assert!(open.iter().all(|i| i.kind == Kind::Machine && i.fix_id.is_none()), "{open:#?}");
    assert!(open.iter().all(|i| i.evidence["unknown_cause"] == json!(true)));
    for &c in &pcs[3..6] {
        f.report(c, vec![path("rdp14.corp.example", None, None, None, 0)]).await;
    }
    assert!(f.correlate().await.is_empty());

    // 5. Flapping: a path that fails, passes, fails and passes again is one intermittent
    //    incident for the whole time, not one per failure.
    let flappy = pcs[9];
    let fail = || path("rdp14.corp.example", None, Some("net.port_filtered"), Some("tcp"), 0);
    let ok = || path("rdp14.corp.example", None, None, None, 0);
    f.report(flappy, vec![fail()]).await;
    let first = f.correlate().await;
    assert_eq!(first.len(), 1);
    f.report(flappy, vec![ok()]).await;
    assert!(f.correlate().await.is_empty(), "one failure that then passes resolves");
    f.report(flappy, vec![fail()]).await;
    let open = f.correlate().await;
    assert_eq!(open.len(), 1);
    let flapping = open[0].id;
    assert_eq!(open[0].evidence["intermittent"], json!(true), "{open:#?}");
    for _ in 0..3 {
        f.report(flappy, vec![ok()]).await;
        let open = f.correlate().await;
        assert_eq!(open.iter().map(|i| i.id).collect::<Vec<_>>(), vec![flapping], "still the one incident");
        f.report(flappy, vec![fail()]).await;
        assert_eq!(f.correlate().await.iter().map(|i| i.id).collect::<Vec<_>>(), vec![flapping]);
    }
    let events = f.store.incident_events(flapping.0).await.unwrap();
    assert_eq!(events.len(), 1, "no reopen or resolve on every flip: {events:?}");
    f.report(flappy, vec![ok()]).await;
    // Intermittent loss that warns, from three clients toward one host: the host's incident.
    for &c in &pcs[..3] {
        f.report(
            c,
            vec![rdpfleet_e2e::diag::path_status(
                "rdp12.corp.example",
                None,
                Some((Layer::Tcp, "net.tcp_intermittent")),
                &[],
                0,
                CheckStatus::Warn,
            )],
        )
        .await;
    }
    let open = f.correlate().await;
    let host12: Vec<_> = open.iter().filter(|i| i.scope == "rdp12.corp.example").collect();
    assert_eq!(host12.len(), 1, "{open:#?}");
    assert_eq!(
        (host12[0].root_cause.as_str(), host12[0].evidence["intermittent"].clone()),
        ("net.tcp_intermittent", json!(true))
    );
    for &c in &pcs[..3] {
        f.report(c, vec![path("rdp12.corp.example", None, None, None, 0)]).await;
    }

    // 6. The branch loses its network: its clients' paths to several hosts fail together → one
    //    site incident, not one per host.
    for (k, &c) in branch.iter().enumerate() {
        let down = ["rdp10", "rdp11", "rdp12"]
            .iter()
            .map(|h| path(&format!("{h}.corp.example"), None, Some("net.host_unreachable"), Some("tcp"), k as i64))
            .collect();
        f.report(c, down).await;
    }
    let open: Vec<_> = f.correlate().await.into_iter().filter(|i| i.evidence["intermittent"] != json!(true)).collect();
    let keys: Vec<(&str, &str, i64)> =
        open.iter().map(|i| (i.kind.as_str(), i.scope.as_str(), i.affected_count)).collect();
    assert_eq!(keys, vec![("network", "branch", 4)], "{open:#?}");
    assert_eq!(open[0].evidence["failures"], 12);
    let groups = open[0].evidence["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 3, "one line per host: {groups:?}");
    assert!(groups.iter().all(|g| g["machines"] == 4));
}

#[tokio::test]
async fn true_root_causes_sqlite() {
    true_root_causes(TestDb::sqlite()).await;
}

#[tokio::test]
async fn true_root_causes_postgres() {
    if let Some(db) = TestDb::postgres().await {
        true_root_causes(db).await;
    }
}
