//! Dashboard latency with a large fleet: seeds 100,000 machines (about 2.7 million latest results,
//! connection paths and history rows) with `demo::fleet`, correlates, then requests the Overview,
//! filtered Machines pages and the Incidents page over real HTTP, signed in, and prints p50/p95/p99.
//! SQLite always; PostgreSQL too when RDPFLEET_BENCH_PG_URL (an empty database) is set.
//!
//! `cargo bench -p rdpfleet-server --bench dashboard` (RDPFLEET_BENCH_MACHINES to change the size).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use rdpfleet_server::config::Settings;
use rdpfleet_server::domain::users::Role;
use rdpfleet_server::secrets::hash_password;
use rdpfleet_server::store::Store;
use rdpfleet_server::store::audit::{ActorKind, NewAuditEntry};

const REQUESTS: usize = 200;

fn pct(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i].as_secs_f64() * 1000.0
}

async fn run(label: &str, url: &str, machines: usize) {
    let store = Store::connect(url).await.unwrap();
    let t = Instant::now();
    let fleet = rdpfleet_server::demo::fleet(machines, 42);
    let rows: usize = fleet.iter().map(|m| 1 + m.results.len() + m.paths.len() + m.history.len()).sum();
    for chunk in fleet.chunks(2000) {
        store.seed_machines(chunk).await.unwrap();
    }
    drop(fleet);
    let seeded = t.elapsed();
    let t = Instant::now();
    let stats = rdpfleet_server::tasks::correlation::run_once(&store, &Default::default()).await.unwrap();
    let correlated = t.elapsed();
    println!(
        "[{label}] seeded {machines} machines ({rows} rows) in {:.1} s; one correlation run {:.0} ms → {} open incidents",
        seeded.as_secs_f64(),
        correlated.as_secs_f64() * 1000.0,
        stats.open
    );

    let audit = NewAuditEntry::new(ActorKind::Cli, "bench", "user.created", "bench");
    store.create_user("bench", &hash_password("benchmark-password").unwrap(), Role::Viewer, audit).await.unwrap();
    // The benchmark correlated once above; the server's own task stays out of the measurement.
    let settings = Settings { database_url: url.to_owned(), correlation_interval_secs: 3600, ..Settings::default() };
    let state = rdpfleet_server::app_state(settings, store.clone(), ed25519_dalek::SigningKey::from_bytes(&[1u8; 32]));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(rdpfleet_server::launch(state, listener, async move {
        let _ = stop_rx.await;
    }));
    let base = format!("http://{addr}");
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let login = client
        .post(format!("{base}/login"))
        .header("Origin", &base)
        .form(&[("username", "bench"), ("password", "benchmark-password"), ("next", "/")])
        .send()
        .await
        .unwrap();
    let cookie = login.headers().get("set-cookie").unwrap().to_str().unwrap().split(';').next().unwrap().to_owned();

    println!(
        "[{label}] page                                      p50 ms   p95 ms   p99 ms  ({REQUESTS} requests each, signed in, over HTTP)"
    );
    for page in [
        "/",
        "/machines",
        "/machines?status=fail&site=hq",
        "/machines?q=hq-0&sort=failing",
        "/machines?check=client.tls12&page=2",
        "/incidents",
        "/incidents?state=all",
    ] {
        let mut times = Vec::with_capacity(REQUESTS);
        for i in 0..REQUESTS + 10 {
            let t = Instant::now();
            let r = client.get(format!("{base}{page}")).header("Cookie", &cookie).send().await.unwrap();
            assert_eq!(r.status(), 200, "{page}");
            let body = r.bytes().await.unwrap();
            assert!(body.len() > 500);
            if i >= 10 {
                times.push(t.elapsed());
            }
        }
        times.sort();
        println!(
            "[{label}] {page:<40} {:>7.2}  {:>7.2}  {:>7.2}",
            pct(&times, 0.5),
            pct(&times, 0.95),
            pct(&times, 0.99)
        );
    }
    let _ = stop_tx.send(());
    let _ = server.await;
}

fn main() {
    let machines: usize = std::env::var("RDPFLEET_BENCH_MACHINES").ok().and_then(|v| v.parse().ok()).unwrap_or(100_000);
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    rt.block_on(run("sqlite", &format!("sqlite://{}", dir.path().join("bench.db").display()), machines));
    if let Ok(pg) = std::env::var("RDPFLEET_BENCH_PG_URL") {
        rt.block_on(run("postgres", &pg, machines));
    }
}
