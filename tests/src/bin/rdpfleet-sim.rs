//! `rdpfleet-sim`: plays a fleet of agents against a real server over HTTP — enrollment, reports
//! of `--results` results every `--report-interval-secs` (spread evenly over the fleet, with an
//! occasional change of state), a job poll every `--poll-interval-secs`, and answers to any job —
//! and prints throughput, latency percentiles and errors per operation.
//!
//! `rdpfleet-sim --server http://127.0.0.1:8080 --token rfe_… --agents 10000 --duration-secs 120`
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::sync::Semaphore;

struct Args {
    server: String,
    token: String,
    agents: usize,
    results: usize,
    report_interval: Duration,
    poll_interval: Duration,
    duration: Duration,
    change_pct: u32,
    max_in_flight: usize,
}

fn args() -> Args {
    let mut a = Args {
        server: "http://127.0.0.1:8080".into(),
        token: String::new(),
        agents: 1000,
        results: 25,
        report_interval: Duration::from_secs(300),
        poll_interval: Duration::from_secs(60),
        duration: Duration::from_secs(60),
        change_pct: 2,
        max_in_flight: 512,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let mut v = || it.next().unwrap_or_else(|| panic!("{k} needs a value"));
        match k.as_str() {
            "--server" => a.server = v(),
            "--token" => a.token = v(),
            "--agents" => a.agents = v().parse().expect("--agents"),
            "--results" => a.results = v().parse().expect("--results"),
            "--report-interval-secs" => a.report_interval = Duration::from_secs_f64(v().parse().expect("seconds")),
            "--poll-interval-secs" => a.poll_interval = Duration::from_secs_f64(v().parse().expect("seconds")),
            "--duration-secs" => a.duration = Duration::from_secs_f64(v().parse().expect("seconds")),
            "--change-pct" => a.change_pct = v().parse().expect("percent"),
            "--max-in-flight" => a.max_in_flight = v().parse().expect("count"),
            "--help" | "-h" => {
                println!(
                    "rdpfleet-sim --server URL --token RFE [--agents N] [--results 25] [--report-interval-secs 300] [--poll-interval-secs 60] [--duration-secs 60] [--change-pct 2] [--max-in-flight 512]"
                );
                std::process::exit(0);
            }
            other => panic!("unknown argument {other}"),
        }
    }
    assert!(!a.token.is_empty(), "--token (an enrollment token with enough uses) is required");
    a
}

#[derive(Default)]
struct Stats {
    lat: Mutex<HashMap<&'static str, Vec<f64>>>,
    errors: Mutex<HashMap<String, u64>>,
    results_stored: AtomicU64,
}

impl Stats {
    fn ok(&self, op: &'static str, ms: f64) {
        self.lat.lock().unwrap().entry(op).or_default().push(ms);
    }
    fn err(&self, op: &'static str, what: String) {
        *self.errors.lock().unwrap().entry(format!("{op}: {what}")).or_default() += 1;
    }
}

struct Agent {
    id: String,
    token: String,
    seq: AtomicU64,
    failing: Mutex<Vec<bool>>,
}

const CHECKS: [&str; 8] = [
    "rdp.path",
    "host.listener_cert",
    "host.firewall",
    "host.port",
    "client.tls12",
    "client.auth_policy",
    "events.recent",
    "host.nla",
];

fn report_body(agent: &Agent, n: usize, change_pct: u32) -> Value {
    let mut failing = agent.failing.lock().unwrap();
    if failing.len() != n {
        *failing = vec![false; n];
    }
    // Now and then one result changes state, as a real fleet's do.
    if rand_u32() % 100 < change_pct {
        let i = (rand_u32() as usize) % n;
        failing[i] = !failing[i];
    }
    let now = time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap();
    let results: Vec<Value> = (0..n)
        .map(|i| {
            let fail = failing[i];
            json!({
                "check": CHECKS[i % CHECKS.len()],
                "target": if i < CHECKS.len() { Value::Null } else { json!(format!("rdp{:02}.corp.example:3389", i)) },
                "status": if fail { "fail" } else { "pass" },
                "summary": if fail { "the certificate expired" } else { "compliant" },
                "cause": if fail { json!("cert.expired") } else { Value::Null },
                "evidence": {"n": i},
                "observed_at": now,
                "duration_ms": 12
            })
        })
        .collect();
    json!({"seq": agent.seq.fetch_add(1, Ordering::Relaxed) + 1, "results": results})
}

fn rand_u32() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(Instant::now().elapsed().as_nanos() ^ u128::from(std::process::id()));
    h.finish() as u32
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    v[((v.len() as f64 * p).ceil() as usize).clamp(1, v.len()) - 1]
}

#[tokio::main]
async fn main() {
    let a = args();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(a.max_in_flight)
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let stats = Arc::new(Stats::default());
    let gate = Arc::new(Semaphore::new(a.max_in_flight));

    // Enrollment.
    let t = Instant::now();
    let mut handles = Vec::with_capacity(a.agents);
    for i in 0..a.agents {
        let (client, server, token, stats, gate) =
            (client.clone(), a.server.clone(), a.token.clone(), stats.clone(), gate.clone());
        handles.push(tokio::spawn(async move {
            let _p = gate.acquire_owned().await.unwrap();
            let started = Instant::now();
            let body = json!({"token": token, "hostname": format!("sim-{i:06}"), "role": "both", "os": "windows 10.0.22631", "agent_version": "sim"});
            match client.post(format!("{server}/api/agent/v1/enroll")).json(&body).send().await {
                Ok(r) if r.status().as_u16() == 201 => {
                    stats.ok("enroll", started.elapsed().as_secs_f64() * 1000.0);
                    let v: Value = r.json().await.unwrap();
                    Some(Arc::new(Agent {
                        id: v["machine_id"].as_str().unwrap().to_owned(),
                        token: v["agent_token"].as_str().unwrap().to_owned(),
                        seq: AtomicU64::new(0),
                        failing: Mutex::new(vec![]),
                    }))
                }
                Ok(r) => {
                    stats.err("enroll", r.status().to_string());
                    None
                }
                Err(e) => {
                    stats.err("enroll", e.to_string());
                    None
                }
            }
        }));
    }
    let mut agents = Vec::with_capacity(a.agents);
    for h in handles {
        if let Some(agent) = h.await.unwrap() {
            agents.push(agent);
        }
    }
    println!("enrolled {} agents in {:.1} s", agents.len(), t.elapsed().as_secs_f64());
    if agents.is_empty() {
        std::process::exit(1);
    }
    let agents = Arc::new(agents);

    // Reports and polls, each spread evenly: one agent's turn every interval / N.
    let deadline = Instant::now() + a.duration;
    let mut loops = Vec::new();
    for (op, interval) in [("report", a.report_interval), ("poll", a.poll_interval)] {
        let (client, server, stats, gate, agents) =
            (client.clone(), a.server.clone(), stats.clone(), gate.clone(), agents.clone());
        let (results, change_pct) = (a.results, a.change_pct);
        loops.push(tokio::spawn(async move {
            let step = interval.div_f64(agents.len() as f64);
            let mut tick = tokio::time::interval(step.max(Duration::from_micros(50)));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            let mut i = 0usize;
            while Instant::now() < deadline {
                tick.tick().await;
                let agent = agents[i % agents.len()].clone();
                i += 1;
                let (client, server, stats, gate) = (client.clone(), server.clone(), stats.clone(), gate.clone());
                tokio::spawn(async move {
                    let _p = gate.acquire_owned().await.unwrap();
                    let started = Instant::now();
                    let req = if op == "report" {
                        client
                            .post(format!("{server}/api/agent/v1/machines/{}/reports", agent.id))
                            .json(&report_body(&agent, results, change_pct))
                    } else {
                        client.get(format!("{server}/api/agent/v1/machines/{}/jobs?wait=0", agent.id))
                    };
                    match req.bearer_auth(&agent.token).send().await {
                        Ok(r) if r.status().is_success() => {
                            let v: Value = r.json().await.unwrap_or_default();
                            stats.ok(op, started.elapsed().as_secs_f64() * 1000.0);
                            stats.results_stored.fetch_add(v["stored"].as_u64().unwrap_or(0), Ordering::Relaxed);
                            for job in v["jobs"].as_array().cloned().unwrap_or_default() {
                                let id = job["id"].as_str().unwrap_or_default();
                                let answer = json!({"outcome": "succeeded", "message": "simulated", "evidence": {}});
                                let _ = client
                                    .post(format!("{server}/api/agent/v1/machines/{}/jobs/{id}/result", agent.id))
                                    .bearer_auth(&agent.token)
                                    .json(&answer)
                                    .send()
                                    .await;
                            }
                        }
                        Ok(r) => stats.err(op, r.status().to_string()),
                        Err(e) => stats.err(op, if e.is_timeout() { "timeout".into() } else { e.to_string() }),
                    }
                });
            }
        }));
    }
    for l in loops {
        l.await.unwrap();
    }
    // Let the last requests finish.
    let _ = gate.acquire_many(a.max_in_flight as u32).await;
    let secs = a.duration.as_secs_f64();
    println!(
        "{} agents, {:.0} s: {} results per report, a report every {:?} and a poll every {:?} per agent",
        agents.len(),
        secs,
        a.results,
        a.report_interval,
        a.poll_interval
    );
    println!("operation     count      per s     p50 ms    p99 ms   max ms");
    let mut lat = stats.lat.lock().unwrap();
    for op in ["enroll", "report", "poll"] {
        let v = lat.entry(op).or_default();
        let n = v.len();
        let rate = if op == "enroll" { 0.0 } else { n as f64 / secs };
        let (p50, p99, max) = (pct(v, 0.5), pct(v, 0.99), pct(v, 1.0));
        println!("{op:<10} {n:>8} {rate:>10.1} {p50:>10.2} {p99:>9.2} {max:>8.1}");
    }
    println!(
        "results stored: {} ({:.0} per s)",
        stats.results_stored.load(Ordering::Relaxed),
        stats.results_stored.load(Ordering::Relaxed) as f64 / secs
    );
    let errors = stats.errors.lock().unwrap();
    let total: u64 = errors.values().sum();
    println!("errors: {total}");
    for (k, n) in errors.iter() {
        println!("  {n} × {k}");
    }
}
