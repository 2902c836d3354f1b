//! A generated, realistic fleet for the demo and the benchmarks: clients and hosts across sites,
//! an RD Gateway, and the failures an IT team meets — an expired host certificate, a gateway
//! whose certificate does not match its name, a site that lost its network, a host behind a
//! closed firewall, lone misconfigured clients — with a history of how they came about.
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;

use crate::store::seed::{SeedMachine, SeedPath, SeedResult, SeedTransition};
use crate::store::{Store, StoreResult, now_ms};

pub const SITES: [&str; 5] = ["hq", "branch-north", "branch-south", "lab", "remote"];
pub const GATEWAY: &str = "gw.corp.example";
/// The host whose certificate has expired.
pub const EXPIRED_HOST: &str = "rdp03.corp.example";
/// The host whose firewall rules are off.
pub const CLOSED_HOST: &str = "rdp05.corp.example";
/// The site whose network is down.
pub const OUTAGE_SITE: &str = "branch-south";

const HOUR: i64 = 3_600_000;

pub(crate) fn diagnosis(
    target: &str,
    host: &str,
    gateway: Option<&str>,
    failing: Option<(&str, &str, &str)>,
    at: i64,
) -> String {
    let order = ["dns", "tcp", "negotiation", "tls", "certificate", "gateway", "clock"];
    let stop = failing.map(|(layer, _, _)| layer);
    let mut reached = true;
    let layers: Vec<_> = order
        .iter()
        .filter(|l| **l != "gateway" || gateway.is_some())
        .map(|l| {
            let (status, summary, findings) = if !reached {
                ("not_reached", "not reached".to_owned(), json!([]))
            } else if Some(*l) == stop {
                reached = false;
                let (_, cause, detail) = failing.unwrap_or_default();
                ("fail", detail.to_owned(), json!([{"cause": cause, "severity": "critical", "detail": detail}]))
            } else {
                ("pass", format!("{l} ok"), json!([]))
            };
            json!({"layer": l, "status": status, "summary": summary, "duration_ms": 4, "findings": findings})
        })
        .collect();
    let (status, cause, summary) = match failing {
        Some((layer, cause, detail)) => ("fail", Some(cause), format!("fails at {layer}: {detail}")),
        None => ("pass", None, "every layer passes".to_owned()),
    };
    let started = crate::store::time_of(at).format(&time::format_description::well_known::Rfc3339).unwrap_or_default();
    json!({
        "target": target, "host": host, "port": 3389, "gateway": gateway, "started_at": started, "duration_ms": 180,
        "status": status, "first_failing_layer": stop, "cause": cause, "summary": summary, "layers": layers,
        "dns": null, "tcp": null, "negotiation": null, "tls": null, "certificate": null, "gateway_detail": null, "clock": null
    })
    .to_string()
}

struct Gen {
    rng: StdRng,
    now: i64,
}

impl Gen {
    fn result(
        &mut self,
        check: &str,
        target: &str,
        problem: Option<(&'static str, &str, &str)>,
        since: i64,
    ) -> (SeedResult, Vec<SeedTransition>) {
        let (status, cause, summary) = match problem {
            Some((status, cause, summary)) => (status, Some(cause.to_owned()), summary.to_owned()),
            None => ("pass", None, "compliant".to_owned()),
        };
        let enrolled = self.now - 14 * 24 * HOUR;
        let mut history = vec![SeedTransition {
            check: check.into(),
            target: target.into(),
            from: None,
            to: "pass",
            cause: None,
            summary: "compliant".into(),
            at: enrolled,
        }];
        if status != "pass" {
            history.push(SeedTransition {
                check: check.into(),
                target: target.into(),
                from: Some("pass"),
                to: status,
                cause: cause.clone(),
                summary: summary.clone(),
                at: since,
            });
        }
        let observed = self.now - self.rng.gen_range(0..5 * 60_000);
        let r = SeedResult {
            check: check.into(),
            target: target.into(),
            status,
            cause,
            summary,
            evidence: "{}".into(),
            observed_at: observed,
            status_since: if status == "pass" { enrolled } else { since },
        };
        (r, history)
    }
}

/// Generates `n` machines (≈6 % hosts), deterministically from `seed`.
pub fn fleet(n: usize, seed: u64) -> Vec<SeedMachine> {
    let now = now_ms();
    let mut g = Gen { rng: StdRng::seed_from_u64(seed), now };
    let hosts_n = (n / 16).clamp(4, 2000);
    let host_names: Vec<String> = (1..=hosts_n).map(|i| format!("rdp{i:02}.corp.example")).collect();
    let outage_since = now - 40 * 60_000;
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let is_host = i < hosts_n;
        let site = SITES[if is_host { i % 4 } else { g.rng.gen_range(0..SITES.len()) }];
        let hostname = if is_host { host_names[i].clone() } else { format!("{}-{:05}", &site[..2], i) };
        let mut results = Vec::new();
        let mut history = Vec::new();
        let mut paths = Vec::new();
        macro_rules! push {
            ($check:expr, $problem:expr, $since:expr) => {{
                let (r, h) = g.result($check, "", $problem, $since);
                results.push(r);
                history.extend(h);
            }};
        }
        if is_host {
            let expired = hostname == EXPIRED_HOST;
            let closed = hostname == CLOSED_HOST;
            push!("host.rdp_enabled", None, 0);
            push!("host.security_layer", None, 0);
            push!("host.nla", None, 0);
            push!("host.tls12", None, 0);
            push!("host.rdp_services", None, 0);
            let cert = if expired {
                Some(("fail", "host.listener_cert_expired", "CN=rdp03.corp.example expired 3 days ago"))
            } else if i % 7 == 3 {
                Some(("warn", "host.listener_cert_expiring", "the listener certificate expires in 12 day(s)"))
            } else {
                None
            };
            push!("host.listener_cert", cert, now - 3 * 24 * HOUR);
            let fw = closed.then_some((
                "fail",
                "host.firewall_closed",
                "the Remote Desktop rules are off on the Domain profile",
            ));
            push!("host.firewall", fw, now - 5 * HOUR);
            push!("events.recent", None, 0);
        } else {
            // Clients: two or three targets, the remote site through the gateway.
            let targets = g.rng.gen_range(2..=3);
            for _ in 0..targets {
                let host = host_names[g.rng.gen_range(0..hosts_n)].clone();
                let target = format!("{host}:3389");
                let via_gateway = site == "remote";
                let gateway = via_gateway.then_some(GATEWAY);
                let failing: Option<(&str, &str, &str)> = if site == OUTAGE_SITE {
                    Some(("tcp", "net.host_unreachable", "no route to the host"))
                } else if via_gateway {
                    Some((
                        "gateway",
                        "gateway.cert_name_mismatch",
                        "the gateway's certificate is issued for rdg.corp.example",
                    ))
                } else if host == EXPIRED_HOST {
                    Some(("certificate", "cert.expired", "the certificate expired 3 days ago"))
                } else if host == CLOSED_HOST {
                    Some(("tcp", "net.port_filtered", "TCP 3389 does not answer"))
                } else {
                    None
                };
                let since = match failing {
                    Some((_, c, _)) if c.starts_with("net.host") => outage_since + g.rng.gen_range(0..120_000),
                    Some((_, c, _)) if c.starts_with("gateway") => now - 26 * HOUR,
                    Some(_) => now - 3 * 24 * HOUR + g.rng.gen_range(0..HOUR),
                    None => 0,
                };
                if results.iter().any(|r: &SeedResult| r.target == target) {
                    continue;
                }
                let (mut r, h) = g.result("rdp.path", &target, failing.map(|(_, c, d)| ("fail", c, d)), since);
                r.evidence = diagnosis(&target, &host, gateway, failing, r.observed_at);
                paths.push(SeedPath {
                    target: target.clone(),
                    host: host.clone(),
                    gateway: gateway.map(str::to_owned),
                    status: r.status,
                    layer: failing.map(|(l, _, _)| l.to_owned()),
                    cause: r.cause.clone(),
                    since: r.status_since,
                    observed_at: r.observed_at,
                });
                results.push(r);
                history.extend(h);
            }
            let lone = g.rng.gen_range(0..1000);
            let over = (lone < 4).then_some((
                "fail",
                "client.cert_warnings_silenced",
                "AuthenticationLevelOverride = 0: certificate warnings are silenced",
            ));
            push!("client.cert_warning_override", over, now - 9 * HOUR);
            let tls =
                (4..7).contains(&lone).then_some(("fail", "client.tls12_disabled", "TLS 1.2 client role disabled"));
            push!("client.tls12", tls, now - 30 * HOUR);
            push!("client.auth_policy", None, 0);
            push!("client.mslicensing", None, 0);
            push!("events.recent", None, 0);
        }
        let id = uuid::Uuid::from_u128(g.rng.r#gen::<u128>() & !(0xf << 76) | (0x4 << 76)).to_string();
        out.push(SeedMachine {
            credential_hash: crate::secrets::token_hash(&format!("rfa_demo_{id}")),
            id,
            hostname,
            role: if is_host { "host" } else { "client" },
            os: if is_host { "windows server 2022".into() } else { "windows 11 23H2".into() },
            site: site.to_owned(),
            enrolled_at: now - 14 * 24 * HOUR,
            last_seen_at: now
                - g.rng.gen_range(0..4 * 60_000)
                - if g.rng.gen_range(0..100) == 0 { 3 * HOUR } else { 0 },
            results,
            paths,
            history,
        });
    }
    out
}

/// Writes a generated fleet in batches, with 48 hours of trend samples, then correlates once.
pub async fn seed(store: &Store, n: usize, seed: u64) -> StoreResult<()> {
    let machines = fleet(n, seed);
    for batch in machines.chunks(1000) {
        store.seed_machines(batch).await?;
    }
    let now = now_ms();
    let bucket = crate::tasks::correlation::SAMPLE_BUCKET_MS;
    let total = n as i64;
    let fail_now = machines.iter().filter(|m| m.results.iter().any(|r| r.status == "fail")).count() as i64;
    let mut rng = StdRng::seed_from_u64(seed ^ 0x5eed);
    for k in (1..=48 * 12).rev() {
        let at = (now / bucket - k) * bucket;
        let hours_ago = k / 12;
        // Baseline noise, the gateway problem for the last day, the host certificate for three.
        let base = total / 200 + rng.gen_range(0..=(total / 400).max(1));
        let failing =
            base + if hours_ago < 26 { fail_now / 3 } else { 0 } + if hours_ago < 1 { fail_now / 2 } else { 0 };
        store
            .seed_health_sample(
                at,
                total,
                failing.min(total),
                total / 40 + rng.gen_range(0..=(total / 200).max(1)),
                2 + i64::from(hours_ago < 26) + i64::from(hours_ago < 1),
            )
            .await?;
    }
    crate::tasks::correlation::run_once(store, &crate::domain::correlation::Rules::default()).await?;
    Ok(())
}

/// Keeps the demo alive: every few seconds a few clients change state (a client's TLS 1.2 is
/// disabled or restored), and the site outage ends after ten minutes — through the same report
/// path agents use, so history, incidents and the trend follow.
pub fn spawn_changes(store: Store) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let started = now_ms();
        let mut rng = StdRng::seed_from_u64(now_ms() as u64);
        let mut outage_over = false;
        loop {
            tokio::time::sleep(std::time::Duration::from_secs(15)).await;
            let Ok(clients) = store
                .machines_matching(
                    &crate::store::dashboard::MachineFilter { role: Some("client".into()), ..Default::default() },
                    100_000,
                )
                .await
            else {
                continue;
            };
            if clients.is_empty() {
                continue;
            }
            for _ in 0..3 {
                let m = &clients[rng.gen_range(0..clients.len())];
                let fail = rng.gen_range(0..3) == 0;
                let r = rdpfleet_proto::check::CheckResult {
                    check: "client.tls12".into(),
                    target: None,
                    status: if fail {
                        rdpfleet_proto::check::CheckStatus::Fail
                    } else {
                        rdpfleet_proto::check::CheckStatus::Pass
                    },
                    summary: if fail { "TLS 1.2 client role disabled".into() } else { "compliant".into() },
                    cause: fail.then(|| "client.tls12_disabled".into()),
                    evidence: json!({}),
                    observed_at: time::OffsetDateTime::now_utc(),
                    duration_ms: 2,
                };
                report(&store, m.id.0, vec![r]).await;
            }
            if !outage_over && now_ms() - started > 10 * 60_000 {
                outage_over = true;
                for m in clients.iter().filter(|m| m.site.as_deref() == Some(OUTAGE_SITE)) {
                    let Ok(results) = store.latest_results(m.id.0).await else { continue };
                    let fixed = results
                        .iter()
                        .filter(|r| r.check_id == "rdp.path")
                        .map(|r| {
                            let host = crate::store::results::host_of(&r.target);
                            rdpfleet_proto::check::CheckResult {
                                check: "rdp.path".into(),
                                target: Some(r.target.clone()),
                                status: rdpfleet_proto::check::CheckStatus::Pass,
                                summary: "every layer passes".into(),
                                cause: None,
                                evidence: serde_json::from_str(&diagnosis(&r.target, &host, None, None, now_ms()))
                                    .unwrap_or_default(),
                                observed_at: time::OffsetDateTime::now_utc(),
                                duration_ms: 150,
                            }
                        })
                        .collect();
                    report(&store, m.id.0, fixed).await;
                }
            }
        }
    })
}

async fn report(store: &Store, id: uuid::Uuid, results: Vec<rdpfleet_proto::check::CheckResult>) {
    if let Err(e) = report_next(store, id, &results).await {
        tracing::warn!(error = %e, "demo change not stored");
    }
}

/// Stores `results` as a demo machine's next report (the one after the last it sent), through
/// the path agents' reports take.
pub(crate) async fn report_next(
    store: &Store,
    id: uuid::Uuid,
    results: &[rdpfleet_proto::check::CheckResult],
) -> StoreResult<()> {
    let Some(m) = store.machine(id).await? else { return Ok(()) };
    let seq = u64::try_from(m.last_report_seq + 1).unwrap_or(1);
    store.store_report(id, seq, None, results).await.map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fleet_has_the_advertised_problems() {
        let f = fleet(600, 7);
        assert_eq!(f.len(), 600);
        let hosts = f.iter().filter(|m| m.role == "host").count();
        assert!((30..=40).contains(&hosts), "{hosts}");
        let causes: std::collections::BTreeSet<&str> =
            f.iter().flat_map(|m| m.results.iter().filter_map(|r| r.cause.as_deref())).collect();
        for c in [
            "host.listener_cert_expired",
            "cert.expired",
            "gateway.cert_name_mismatch",
            "net.host_unreachable",
            "host.firewall_closed",
            "net.port_filtered",
        ] {
            assert!(causes.contains(c), "{c} in {causes:?}");
        }
        assert_eq!(fleet(50, 1)[10].hostname, fleet(50, 1)[10].hostname, "deterministic");
        let d: rdpfleet_proto::diagnosis::Diagnosis = serde_json::from_str(
            &f.iter()
                .find(|m| !m.paths.is_empty())
                .unwrap()
                .results
                .iter()
                .find(|r| r.check == "rdp.path")
                .unwrap()
                .evidence,
        )
        .expect("demo paths are real Diagnosis documents");
        assert!(!d.layers.is_empty());
    }
}
