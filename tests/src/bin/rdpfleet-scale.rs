//! `rdpfleet-scale`: the scale benchmark. In one run, for SQLite and (with
//! `RDPFLEET_TEST_PG_URL` reachable) PostgreSQL, against the real release `rdpfleet-server`:
//!
//! 1. enrolls N simulated agents over HTTP (N distinct machines);
//! 2. **first reports**: every agent's first report, back to back (every result new, and so
//!    also a history row);
//!    **ceiling**: then the fleet's steady-state reports (one result in 50 reports changes),
//!    back to back by many senders — the most results/s the server stores;
//! 3. **fleet load**: N agents at their real rates (a job poll every 60 s, a report of 25 results
//!    every 5 min, spread evenly) with the dashboard pages requested, signed in, during it —
//!    latency percentiles, errors, server CPU and peak RSS;
//! 4. **physical baseline**: the rows the ceiling wrote (same machines, same order, at least
//!    100,000) upserted straight into the same database in batches (one connection, no HTTP,
//!    no server), and the ratio of the ceiling to it.
//!
//! Run it with the server pinned to one core and this process to the other (`bench/scale.sh`
//! does that). `rdpfleet-scale [--agents 100000] [--load-secs 120] [--ceiling-secs 20]
//! [--server-cpu 0] [--only sqlite|postgres] [--poll-wait 60]`
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rdpfleet_e2e::procs::Server;
use rdpfleet_e2e::sim::{self, Load, Stats, pct};
use rdpfleet_e2e::{TestDb, pg};
use sqlx::Connection;

struct Args {
    agents: usize,
    load: Duration,
    ceiling: Duration,
    ceiling_senders: usize,
    server_cpu: Option<u32>,
    only: Option<String>,
    /// Seconds each agent's long poll waits (0, the default: a short poll every 60 s instead;
    /// long polls hold a connection per agent, which needs that many file descriptors).
    poll_wait: u64,
}

fn args() -> Args {
    let mut a = Args {
        agents: 100_000,
        load: Duration::from_secs(120),
        ceiling: Duration::from_secs(20),
        ceiling_senders: 64,
        server_cpu: None,
        only: None,
        poll_wait: 0,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let mut v = || it.next().unwrap_or_else(|| panic!("{k} needs a value"));
        match k.as_str() {
            "--agents" => a.agents = v().parse().expect("--agents"),
            "--load-secs" => a.load = Duration::from_secs(v().parse().expect("seconds")),
            "--ceiling-secs" => a.ceiling = Duration::from_secs(v().parse().expect("seconds")),
            "--ceiling-senders" => a.ceiling_senders = v().parse().expect("count"),
            "--server-cpu" => a.server_cpu = Some(v().parse().expect("cpu number")),
            "--only" => a.only = Some(v()),
            "--poll-wait" => a.poll_wait = v().parse().expect("seconds"),
            other => panic!("unknown argument {other}"),
        }
    }
    a
}

const RESULTS: usize = 25;
/// Percent of reports in which one result changes state.
const CHANGE_PCT: u32 = 2;
const PAGES: [&str; 4] = ["/", "/machines?status=fail", "/machines?q=scale-00&sort=failing", "/incidents"];

/// CPU seconds (user + system) a process has used, from /proc.
fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11).and_then(|u| u.parse().ok()).unwrap_or(0.0)
        + f.get(12).and_then(|s| s.parse::<f64>().ok()).unwrap_or(0.0);
    ticks / 100.0
}

fn peak_rss_mb(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

async fn sign_in(server: &Server) -> (reqwest::Client, String) {
    let password = server.admin(&["user", "create", "--username", "scale", "--role", "viewer"]).await;
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let login = client
        .post(format!("{}/login", server.url))
        .header("Origin", &server.url)
        .form(&[("username", "scale"), ("password", password.as_str()), ("next", "/")])
        .send()
        .await
        .unwrap();
    let cookie =
        login.headers().get("set-cookie").expect("signed in").to_str().unwrap().split(';').next().unwrap().to_owned();
    (client, cookie)
}

/// Requests the dashboard pages in turn until `stop`; latencies per page.
async fn dashboard_probe(
    server: String,
    client: reqwest::Client,
    cookie: String,
    stop: Arc<AtomicBool>,
) -> Vec<Vec<f64>> {
    let mut times = vec![Vec::new(); PAGES.len()];
    while !stop.load(Ordering::Relaxed) {
        for (i, page) in PAGES.iter().enumerate() {
            let t = Instant::now();
            let r = client.get(format!("{server}{page}")).header("Cookie", &cookie).send().await.unwrap();
            assert_eq!(r.status(), 200, "{page}");
            let _ = r.bytes().await.unwrap();
            times[i].push(t.elapsed().as_secs_f64() * 1000.0);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    times
}

/// Upserts `rows` result rows of `machine_ids` (25 each, in turn) straight into the database,
/// 400 rows per statement (`BARE_ROWS_PER_STATEMENT`) and 4,000 per transaction, as the
/// server's rows look.
/// Rows per second.
async fn bare_upsert_rate(db_url: &str, machine_ids: &[String], rows: usize) -> f64 {
    let per_statement: usize =
        std::env::var("BARE_ROWS_PER_STATEMENT").ok().and_then(|v| v.parse().ok()).unwrap_or(400);
    let per_statement = per_statement.clamp(1, 3000);
    let per_tx: usize = (4000 / per_statement).max(1);
    let now = time::OffsetDateTime::now_utc().unix_timestamp() * 1000;
    let row = |n: usize| -> (String, String, String) {
        let machine = machine_ids[(n / RESULTS) % machine_ids.len()].clone();
        let i = n % RESULTS;
        // The simulator's checks and targets, so the baseline writes the rows the server wrote.
        let check = sim::CHECKS[i % sim::CHECKS.len()];
        let target = if i < sim::CHECKS.len() { String::new() } else { format!("rdp{i:02}.corp.example:3389") };
        (machine, check.to_owned(), target)
    };
    // The server's own statement (`rdpfleet_server::store::results`), so the baseline writes
    // exactly as the server does.
    let backend = rdpfleet_server::store::Backend::from_url(db_url).unwrap();
    let sql = rdpfleet_server::store::results::upsert_results_sql(backend, per_statement);
    macro_rules! run {
        ($conn:expr) => {{
            let mut conn = $conn;
            let started = Instant::now();
            let mut n = 0usize;
            while n < rows {
                let mut tx = conn.begin().await.unwrap();
                for _ in 0..per_tx {
                    let mut q = sqlx::query(&sql);
                    for k in 0..per_statement {
                        let (m, c, t) = row(n + k);
                        q = q
                            .bind(m)
                            .bind(c)
                            .bind(t)
                            .bind("pass")
                            .bind("compliant")
                            .bind(None::<String>)
                            .bind(format!("{{\"n\":{}}}", (n + k) % RESULTS))
                            .bind(now)
                            .bind(12_i64)
                            .bind(now);
                    }
                    q.execute(&mut *tx).await.unwrap();
                    n += per_statement;
                }
                tx.commit().await.unwrap();
            }
            n as f64 / started.elapsed().as_secs_f64()
        }};
    }
    if db_url.starts_with("sqlite:") {
        // The server's own SQLite settings (`Store::connect`): WAL, synchronous=NORMAL, its
        // page cache size, foreign keys on.
        let opts: sqlx::sqlite::SqliteConnectOptions = db_url.parse().unwrap();
        let opts = opts
            .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
            .synchronous(sqlx::sqlite::SqliteSynchronous::Normal)
            .foreign_keys(true)
            .pragma("cache_size", "-16384")
            .pragma("temp_store", "memory");
        run!(sqlx::sqlite::SqliteConnection::connect_with(&opts).await.unwrap())
    } else {
        run!(sqlx::postgres::PgConnection::connect(db_url).await.unwrap())
    }
}

fn pin(pid: u32, cpu: u32) {
    let ok = std::process::Command::new("taskset")
        .args(["-a", "-p", "-c", &cpu.to_string(), &pid.to_string()])
        .stdout(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "taskset could not pin the server to CPU {cpu}");
}

async fn run(label: &str, db: &TestDb, a: &Args, work: &Path) {
    // Room for every agent's long poll, held open, and the rest.
    let max_conn = (a.agents * 2 + 1000).to_string();
    let long_poll_max = a.poll_wait.to_string();
    let mut env = vec![("RDPFLEET_MAX_CONNECTIONS", max_conn.as_str())];
    if a.poll_wait > 0 {
        env.push(("RDPFLEET_LONG_POLL_MAX_SECS", long_poll_max.as_str()));
    }
    let server = Server::start_with(db.url(), work, &env).await;
    let pid = server.child.id().unwrap();
    if let Some(cpu) = a.server_cpu {
        pin(pid, cpu);
    }
    let token =
        server.admin(&["enroll-token", "create", "--label", "scale", "--max-uses", &a.agents.to_string()]).await;
    let client = sim::client(512);

    let stats = Arc::new(Stats::default());
    let t = Instant::now();
    // One address may have 20 enrollments in flight before the enrollment throttle answers 429
    // (it counts attempts before it checks them): all the simulated agents share one address.
    let agents = sim::enroll(&client, &server.url, &token, "scale", a.agents, 16, &stats).await;
    let enroll_secs = t.elapsed().as_secs_f64();
    assert_eq!(agents.len(), a.agents, "enrollment errors: {:?}", stats.errors());
    println!(
        "[{label}] enrolled {} agents over HTTP in {enroll_secs:.1} s ({:.0}/s)",
        agents.len(),
        agents.len() as f64 / enroll_secs
    );

    // First reports: every agent's first, back to back. Every result is new, so each is a
    // history row too — a fleet's first hour, not its steady state.
    let first = Arc::new(Stats::default());
    let took = sim::flood(
        &client,
        &server.url,
        &agents,
        RESULTS,
        0,
        a.ceiling_senders,
        Duration::from_secs(3600),
        Some(agents.len() as u64),
        &first,
    )
    .await;
    let f = first.figures("report");
    println!(
        "[{label}] first reports: {} in {:.1} s = {:.0} reports/s, {:.0} results/s (each also a history row); p99 {:.1} ms; errors {}",
        f.count,
        took.as_secs_f64(),
        f.count as f64 / took.as_secs_f64(),
        first.results_stored() as f64 / took.as_secs_f64(),
        f.p99_ms,
        first.error_count()
    );

    // Ceiling: the fleet's steady-state reports (a result changes in 2 of 100), back to back.
    let ceiling = Arc::new(Stats::default());
    let (cpu0, own0) = (cpu_secs(pid), cpu_secs(std::process::id()));
    let took =
        sim::flood(&client, &server.url, &agents, RESULTS, CHANGE_PCT, a.ceiling_senders, a.ceiling, None, &ceiling)
            .await;
    let ceiling_rate = ceiling.results_stored() as f64 / took.as_secs_f64();
    let f = ceiling.figures("report");
    println!(
        "[{label}] ceiling: {} reports in {:.1} s by {} senders = {:.0} reports/s, {ceiling_rate:.0} results/s; p50 {:.1} ms, p99 {:.1} ms; errors {}; server CPU {:.2} cores, simulator CPU {:.2} cores",
        f.count,
        took.as_secs_f64(),
        a.ceiling_senders,
        f.count as f64 / took.as_secs_f64(),
        f.p50_ms,
        f.p99_ms,
        ceiling.error_count(),
        (cpu_secs(pid) - cpu0) / took.as_secs_f64(),
        (cpu_secs(std::process::id()) - own0) / took.as_secs_f64()
    );
    // The baseline writes the rows the ceiling wrote: the same machines in the same order.
    let ceiling_machines: Vec<String> =
        agents.iter().take((f.count).clamp(1, agents.len())).map(|x| x.id.clone()).collect();
    let ceiling_rows = (ceiling.results_stored() as usize).max(100_000);

    // Fleet load with the dashboard watched.
    let (web, cookie) = sign_in(&server).await;
    let stop = Arc::new(AtomicBool::new(false));
    let probe = tokio::spawn(dashboard_probe(server.url.clone(), web, cookie, stop.clone()));
    let load = Load {
        results: RESULTS,
        report_interval: Duration::from_secs(300),
        poll_interval: Duration::from_secs(60),
        duration: a.load,
        change_pct: CHANGE_PCT,
        max_in_flight: 512,
        poll_wait: (a.poll_wait > 0).then(|| Duration::from_secs(a.poll_wait)),
    };
    let stats = Arc::new(Stats::default());
    let cpu0 = cpu_secs(pid);
    let t = Instant::now();
    sim::paced(&client, &server.url, &agents, &load, &stats).await;
    let secs = t.elapsed().as_secs_f64();
    let cpu = (cpu_secs(pid) - cpu0) / secs;
    stop.store(true, Ordering::Relaxed);
    let mut pages = probe.await.unwrap();
    let (r, p) = (stats.figures("report"), stats.figures(if a.poll_wait > 0 { "long_poll" } else { "poll" }));
    println!(
        "[{label}] fleet load: {} agents for {secs:.0} s: {:.0} reports/s ({:.0} results/s), {:.0} polls/s",
        agents.len(),
        r.count as f64 / secs,
        stats.results_stored() as f64 / secs,
        // Long polls first come back one wait after they start.
        p.count as f64 / (secs - a.poll_wait as f64).max(1.0)
    );
    println!("[{label}]   report p50 {:.2} ms, p99 {:.2} ms, max {:.1} ms", r.p50_ms, r.p99_ms, r.max_ms);
    if a.poll_wait > 0 {
        println!(
            "[{label}]   long poll (wait={} s, every agent holding one open): answered after the wait by p50 {:.2} ms, p99 {:.2} ms, max {:.1} ms",
            a.poll_wait, p.p50_ms, p.p99_ms, p.max_ms
        );
    } else {
        println!("[{label}]   poll   p50 {:.2} ms, p99 {:.2} ms, max {:.1} ms", p.p50_ms, p.p99_ms, p.max_ms);
    }
    println!(
        "[{label}]   errors {}{}",
        stats.error_count(),
        if stats.error_count() > 0 { format!(" {:?}", stats.errors()) } else { String::new() }
    );
    println!("[{label}]   server CPU {cpu:.2} cores, peak RSS {:.0} MB", peak_rss_mb(pid));
    for (page, times) in PAGES.iter().zip(pages.iter_mut()) {
        let n = times.len();
        println!(
            "[{label}]   dashboard {page:<36} p50 {:>6.1} ms  p95 {:>6.1} ms  ({n} requests during the load)",
            pct(times, 0.5),
            pct(times, 0.95)
        );
    }
    // What the server itself logged as going wrong: a count, and the first lines other than
    // sqlx's slow-statement notes.
    let log = server.log();
    let problems: Vec<&str> = log.lines().filter(|l| l.contains(" WARN ") || l.contains(" ERROR ")).collect();
    let slow = problems.iter().filter(|l| l.contains("slow statement")).count();
    println!(
        "[{label}]   server log: {} warnings or errors, {slow} of them sqlx's slow-statement notes",
        problems.len()
    );
    for line in problems.iter().filter(|l| !l.contains("slow statement")).take(8) {
        println!("[{label}]     {}", line.chars().take(500).collect::<String>());
    }
    let mut server = server;
    let _ = server.child.kill().await;
    let _ = server.child.wait().await;

    // Physical baseline in the same database, the server stopped.
    let bare = bare_upsert_rate(db.url(), &ceiling_machines, ceiling_rows).await;
    println!(
        "[{label}] bare batched upsert of the same rows: {bare:.0} rows/s; server ceiling / bare = {:.2}",
        ceiling_rate / bare
    );
}

#[tokio::main]
async fn main() {
    let a = args();
    let work = tempfile::tempdir().unwrap();
    if a.only.as_deref().is_none_or(|o| o == "sqlite") {
        let db = TestDb::sqlite();
        let dir = work.path().join("sqlite");
        std::fs::create_dir_all(&dir).unwrap();
        run("sqlite", &db, &a, &dir).await;
    }
    if a.only.as_deref().is_none_or(|o| o == "postgres") {
        match TestDb::postgres().await {
            Some(db) => {
                let dir = work.path().join("postgres");
                std::fs::create_dir_all(&dir).unwrap();
                run("postgres", &db, &a, &dir).await;
            }
            None => println!("[postgres] skipped: no server at {}", pg::admin_url()),
        }
    }
}
