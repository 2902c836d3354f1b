//! A simulated fleet of agents over real HTTP: enrollment, paced reports and job polls (as a
//! real fleet spreads them), answers to jobs, and a flood of back-to-back reports to find the
//! server's ingest ceiling. Used by `rdpfleet-sim` and the scale benchmark `rdpfleet-scale`.
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::sync::Semaphore;

pub struct Agent {
    pub id: String,
    pub token: String,
    seq: AtomicU64,
    failing: Mutex<Vec<bool>>,
}

/// Latencies and errors per operation.
#[derive(Default)]
pub struct Stats {
    lat: Mutex<HashMap<&'static str, Vec<f64>>>,
    errors: Mutex<HashMap<String, u64>>,
    results_stored: AtomicU64,
}

/// One operation's figures.
#[derive(Debug, Clone, Copy, Default)]
pub struct OpFigures {
    pub count: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl Stats {
    fn ok(&self, op: &'static str, ms: f64) {
        self.lat.lock().unwrap().entry(op).or_default().push(ms);
    }
    fn err(&self, op: &'static str, what: String) {
        *self.errors.lock().unwrap().entry(format!("{op}: {what}")).or_default() += 1;
    }
    pub fn figures(&self, op: &str) -> OpFigures {
        let mut lat = self.lat.lock().unwrap();
        let Some(v) = lat.get_mut(op) else { return OpFigures::default() };
        OpFigures { count: v.len(), p50_ms: pct(v, 0.5), p99_ms: pct(v, 0.99), max_ms: pct(v, 1.0) }
    }
    pub fn results_stored(&self) -> u64 {
        self.results_stored.load(Ordering::Relaxed)
    }
    pub fn errors(&self) -> Vec<(String, u64)> {
        let mut e: Vec<(String, u64)> = self.errors.lock().unwrap().iter().map(|(k, n)| (k.clone(), *n)).collect();
        e.sort();
        e
    }
    pub fn error_count(&self) -> u64 {
        self.errors.lock().unwrap().values().sum()
    }
}

/// Percentile `p` (0..=1) of `v`, sorting it.
pub fn pct(v: &mut [f64], p: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    v[((v.len() as f64 * p).ceil() as usize).clamp(1, v.len()) - 1]
}

/// The checks a simulated report carries (results beyond these are `rdp.path`-like targets).
pub const CHECKS: [&str; 8] = [
    "rdp.path",
    "host.listener_cert",
    "host.firewall",
    "host.port",
    "client.tls12",
    "client.auth_policy",
    "events.recent",
    "host.nla",
];

/// A report of `n` results, as an agent sends them: mostly unchanged, now and then one result
/// changes state (`change_pct` percent of reports).
pub fn report_body(agent: &Agent, n: usize, change_pct: u32) -> Value {
    let mut failing = agent.failing.lock().unwrap();
    if failing.len() != n {
        *failing = vec![false; n];
    }
    if rand_u32() % 100 < change_pct {
        let i = (rand_u32() as usize) % n;
        failing[i] = !failing[i];
    }
    let now = time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap();
    let results: Vec<Value> = (0..n)
        .map(|i| {
            let fail = failing[i];
            if CHECKS[i % CHECKS.len()] == "rdp.path" {
                // A connection path carries the probe's Diagnosis, as a real agent's does.
                let failure = fail.then_some((rdpfleet_proto::diagnosis::Layer::Certificate, "cert.expired"));
                let host = format!("rdp{i:02}.corp.example");
                let r = crate::diag::path_result(&host, None, failure, &["10.0.0.10"], 0);
                return serde_json::to_value(r).unwrap();
            }
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

/// What went wrong, without the URL (errors are counted by kind): the innermost cause.
fn error_kind(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        return "timeout".into();
    }
    let mut cause: &dyn std::error::Error = e;
    while let Some(inner) = cause.source() {
        cause = inner;
    }
    let what = if e.is_connect() {
        "connect"
    } else if e.is_request() {
        "request"
    } else {
        "transport"
    };
    format!("{what}: {cause}")
}

fn rand_u32() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(Instant::now().elapsed().as_nanos() ^ u128::from(std::process::id()));
    h.finish() as u32
}

pub fn client(max_in_flight: usize) -> reqwest::Client {
    reqwest::Client::builder().pool_max_idle_per_host(max_in_flight).timeout(Duration::from_secs(30)).build().unwrap()
}

/// Enrolls `n` agents named `{prefix}-{i:06}` with one enrollment token.
pub async fn enroll(
    client: &reqwest::Client,
    server: &str,
    token: &str,
    prefix: &str,
    n: usize,
    max_in_flight: usize,
    stats: &Arc<Stats>,
) -> Vec<Arc<Agent>> {
    let gate = Arc::new(Semaphore::new(max_in_flight));
    let mut handles = Vec::with_capacity(n);
    for i in 0..n {
        let (client, server, token, stats, gate) =
            (client.clone(), server.to_owned(), token.to_owned(), stats.clone(), gate.clone());
        let hostname = format!("{prefix}-{i:06}");
        handles.push(tokio::spawn(async move {
            let _p = gate.acquire_owned().await.unwrap();
            let started = Instant::now();
            let body = json!({"token": token, "hostname": hostname, "role": "both", "os": "windows 10.0.22631", "agent_version": "sim"});
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
                    stats.err("enroll", error_kind(&e));
                    None
                }
            }
        }));
    }
    let mut agents = Vec::with_capacity(n);
    for h in handles {
        if let Some(agent) = h.await.unwrap() {
            agents.push(agent);
        }
    }
    agents
}

/// The paced load of a real fleet.
#[derive(Debug, Clone)]
pub struct Load {
    pub results: usize,
    pub report_interval: Duration,
    pub poll_interval: Duration,
    pub duration: Duration,
    pub change_pct: u32,
    pub max_in_flight: usize,
    /// `Some(wait)`: every agent holds a long poll open (`?wait=`) as the real agent does,
    /// instead of a short poll every `poll_interval`.
    pub poll_wait: Option<Duration>,
}

async fn send_report(
    client: &reqwest::Client,
    server: &str,
    agent: &Agent,
    results: usize,
    change_pct: u32,
    stats: &Stats,
) {
    let started = Instant::now();
    let req = client
        .post(format!("{server}/api/agent/v1/machines/{}/reports", agent.id))
        .json(&report_body(agent, results, change_pct))
        .bearer_auth(&agent.token);
    match req.send().await {
        Ok(r) if r.status().is_success() => {
            let v: Value = r.json().await.unwrap_or_default();
            stats.ok("report", started.elapsed().as_secs_f64() * 1000.0);
            stats.results_stored.fetch_add(v["stored"].as_u64().unwrap_or(0), Ordering::Relaxed);
        }
        Ok(r) => stats.err("report", r.status().to_string()),
        Err(e) => stats.err("report", error_kind(&e)),
    }
}

/// Answers each job a poll handed out as done, as an agent that applied it would.
async fn answer_jobs(client: &reqwest::Client, server: &str, agent: &Agent, jobs: &[Value]) {
    for job in jobs {
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

async fn poll_jobs(client: &reqwest::Client, server: &str, agent: &Agent, stats: &Stats) {
    let started = Instant::now();
    let req = client.get(format!("{server}/api/agent/v1/machines/{}/jobs?wait=0", agent.id)).bearer_auth(&agent.token);
    match req.send().await {
        Ok(r) if r.status().is_success() => {
            let v: Value = r.json().await.unwrap_or_default();
            stats.ok("poll", started.elapsed().as_secs_f64() * 1000.0);
            answer_jobs(client, server, agent, v["jobs"].as_array().map_or(&[][..], Vec::as_slice)).await;
        }
        Ok(r) => stats.err("poll", r.status().to_string()),
        Err(e) => stats.err("poll", error_kind(&e)),
    }
}

/// Reports and polls, each spread evenly over the fleet (one agent's turn every interval / N),
/// for `load.duration`; returns when the last request has finished.
pub async fn paced(client: &reqwest::Client, server: &str, agents: &[Arc<Agent>], load: &Load, stats: &Arc<Stats>) {
    let agents: Arc<Vec<Arc<Agent>>> = Arc::new(agents.to_vec());
    let gate = Arc::new(Semaphore::new(load.max_in_flight));
    let deadline = Instant::now() + load.duration;
    let mut loops = Vec::new();
    let ops: &[(&'static str, Duration)] = match load.poll_wait {
        Some(wait) => {
            let (server, agents, stats) = (server.to_owned(), agents.clone(), stats.clone());
            let duration = load.duration;
            loops.push(tokio::spawn(async move { long_polls(&server, &agents, wait, duration, &stats).await }));
            &[("report", load.report_interval)]
        }
        None => &[("report", load.report_interval), ("poll", load.poll_interval)],
    };
    for &(op, interval) in ops {
        let (client, server, stats, gate, agents) =
            (client.clone(), server.to_owned(), stats.clone(), gate.clone(), agents.clone());
        let (results, change_pct) = (load.results, load.change_pct);
        loops.push(tokio::spawn(async move {
            let step = interval.div_f64(agents.len() as f64);
            let mut tick = tokio::time::interval(step.max(Duration::from_micros(50)));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            // Start each loop at a different agent so one agent's report and poll do not coincide.
            let mut i = if op == "poll" { agents.len() / 2 } else { 0 };
            while Instant::now() < deadline {
                tick.tick().await;
                let agent = agents[i % agents.len()].clone();
                i += 1;
                let (client, server, stats, gate) = (client.clone(), server.clone(), stats.clone(), gate.clone());
                tokio::spawn(async move {
                    let _p = gate.acquire_owned().await.unwrap();
                    if op == "report" {
                        send_report(&client, &server, &agent, results, change_pct, &stats).await;
                    } else {
                        poll_jobs(&client, &server, &agent, &stats).await;
                    }
                });
            }
        }));
    }
    for l in loops {
        l.await.unwrap();
    }
    let _ = gate.acquire_many(load.max_in_flight as u32).await;
}

/// Agents per HTTP client in [`long_polls`]: each client connects from its own loopback
/// address, as one address has only ~28,000 ephemeral ports towards one server port.
const AGENTS_PER_CLIENT: usize = 20_000;

/// Every agent holds a job long poll (`?wait=`) open for `duration`, asking again as soon as
/// one returns, as the real agent does; the first polls are spread evenly over one `wait`.
/// Records as `long_poll` how late each empty poll came back (its time beyond `wait`), answers
/// any job it is given, and counts an empty poll that returns early as an error.
pub async fn long_polls(server: &str, agents: &[Arc<Agent>], wait: Duration, duration: Duration, stats: &Arc<Stats>) {
    let loopback = server.contains("//127.0.0.1:");
    let clients: Vec<reqwest::Client> = (0..agents.len().div_ceil(AGENTS_PER_CLIENT).max(1))
        .map(|k| {
            let mut b = reqwest::Client::builder()
                .pool_max_idle_per_host(AGENTS_PER_CLIENT)
                .timeout(wait + Duration::from_secs(30));
            if loopback {
                b = b.local_address(std::net::IpAddr::from([127, 0, 0, 1 + (k % 250) as u8]));
            }
            b.build().unwrap()
        })
        .collect();
    let deadline = tokio::time::Instant::now() + duration;
    let step = wait.div_f64(agents.len().max(1) as f64);
    let mut tasks = Vec::with_capacity(agents.len());
    for (i, agent) in agents.iter().enumerate() {
        let client = clients[i / AGENTS_PER_CLIENT].clone();
        let (server, agent, stats) = (server.to_owned(), agent.clone(), stats.clone());
        let start = tokio::time::Instant::now() + step.mul_f64(i as f64);
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep_until(start).await;
            let url = format!("{server}/api/agent/v1/machines/{}/jobs?wait={}", agent.id, wait.as_secs());
            while tokio::time::Instant::now() < deadline {
                let started = Instant::now();
                let answer = tokio::select! {
                    () = tokio::time::sleep_until(deadline) => return,
                    r = client.get(&url).bearer_auth(&agent.token).send() => r,
                };
                let body: Value = match answer {
                    Ok(r) if r.status().is_success() => r.json().await.unwrap_or_default(),
                    Ok(r) => {
                        stats.err("long_poll", r.status().to_string());
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        continue;
                    }
                    Err(e) => {
                        stats.err("long_poll", error_kind(&e));
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        continue;
                    }
                };
                let jobs = body["jobs"].as_array().cloned().unwrap_or_default();
                let took = started.elapsed();
                if jobs.is_empty() {
                    if took + Duration::from_secs(1) < wait {
                        stats.err("long_poll", format!("empty answer after {took:?}, before the wait ended"));
                    } else {
                        stats.ok("long_poll", took.saturating_sub(wait).as_secs_f64() * 1000.0);
                    }
                }
                answer_jobs(&client, &server, &agent, &jobs).await;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

/// Sends reports back to back from `concurrency` senders, agent after agent in order (from
/// the first, round and round), until `duration` has passed or, with `max_reports`, that many
/// were sent. Returns the time taken.
#[allow(clippy::too_many_arguments)]
pub async fn flood(
    client: &reqwest::Client,
    server: &str,
    agents: &[Arc<Agent>],
    results: usize,
    change_pct: u32,
    concurrency: usize,
    duration: Duration,
    max_reports: Option<u64>,
    stats: &Arc<Stats>,
) -> Duration {
    let agents: Arc<Vec<Arc<Agent>>> = Arc::new(agents.to_vec());
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + duration;
    let mut senders = Vec::new();
    for _ in 0..concurrency {
        let (client, server, stats, agents, next) =
            (client.clone(), server.to_owned(), stats.clone(), agents.clone(), next.clone());
        senders.push(tokio::spawn(async move {
            while Instant::now() < deadline {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if max_reports.is_some_and(|max| n >= max) {
                    break;
                }
                let i = n as usize % agents.len();
                send_report(&client, &server, &agents[i], results, change_pct, &stats).await;
            }
        }));
    }
    for s in senders {
        s.await.unwrap();
    }
    started.elapsed()
}
