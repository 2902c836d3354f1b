//! `rdpfleet-sim`: plays a fleet of agents against a real server over HTTP — enrollment, reports
//! of `--results` results every `--report-interval-secs` (spread evenly over the fleet, with an
//! occasional change of state), a job poll every `--poll-interval-secs` (or, with
//! `--poll-wait-secs W`, a long poll held open by every agent, as the real agent does), and
//! answers to any job — and prints throughput, latency percentiles and errors per operation
//! (for long polls: how late the server answered after the wait).
//!
//! `rdpfleet-sim --server http://127.0.0.1:8080 --token rfe_… --agents 10000 --duration-secs 120`
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use rdpfleet_e2e::sim::{self, Load, Stats};

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
    poll_wait: Option<Duration>,
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
        poll_wait: None,
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
            "--poll-wait-secs" => a.poll_wait = Some(Duration::from_secs(v().parse().expect("seconds"))),
            "--help" | "-h" => {
                println!(
                    "rdpfleet-sim --server URL --token RFE [--agents N] [--results 25] [--report-interval-secs 300] [--poll-interval-secs 60] [--duration-secs 60] [--change-pct 2] [--max-in-flight 512] [--poll-wait-secs W]"
                );
                std::process::exit(0);
            }
            other => panic!("unknown argument {other}"),
        }
    }
    assert!(!a.token.is_empty(), "--token (an enrollment token with enough uses) is required");
    a
}

#[tokio::main]
async fn main() {
    let a = args();
    let client = sim::client(a.max_in_flight);
    let stats = Arc::new(Stats::default());
    let t = Instant::now();
    let agents = sim::enroll(&client, &a.server, &a.token, "sim", a.agents, a.max_in_flight, &stats).await;
    println!("enrolled {} agents in {:.1} s", agents.len(), t.elapsed().as_secs_f64());
    if agents.is_empty() {
        std::process::exit(1);
    }
    let load = Load {
        results: a.results,
        report_interval: a.report_interval,
        poll_interval: a.poll_interval,
        duration: a.duration,
        change_pct: a.change_pct,
        max_in_flight: a.max_in_flight,
        poll_wait: a.poll_wait,
    };
    sim::paced(&client, &a.server, &agents, &load, &stats).await;
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
    for op in ["enroll", "report", "poll", "long_poll"] {
        let f = stats.figures(op);
        let rate = if op == "enroll" { 0.0 } else { f.count as f64 / secs };
        println!("{op:<10} {:>8} {rate:>10.1} {:>10.2} {:>9.2} {:>8.1}", f.count, f.p50_ms, f.p99_ms, f.max_ms);
    }
    let stored = stats.results_stored();
    println!("results stored: {stored} ({:.0} per s)", stored as f64 / secs);
    println!("errors: {}", stats.error_count());
    for (k, n) in stats.errors() {
        println!("  {n} × {k}");
    }
}
