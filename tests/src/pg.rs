//! One PostgreSQL database per test, created on the server named by `RDPFLEET_TEST_PG_URL`
//! (default `postgres://postgres@127.0.0.1:5432/postgres`) and dropped afterwards.
//!
//! Without a reachable server, PostgreSQL tests print why they are skipped and pass, unless
//! `RDPFLEET_REQUIRE_PG=1` (set by `.ci/run`), which makes them fail instead.
use std::time::Duration;

use sqlx::Connection;
use sqlx::postgres::PgConnection;

pub const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

pub fn admin_url() -> String {
    std::env::var("RDPFLEET_TEST_PG_URL").unwrap_or_else(|_| DEFAULT_URL.to_owned())
}

pub fn required() -> bool {
    std::env::var("RDPFLEET_REQUIRE_PG").is_ok_and(|v| v == "1")
}

pub struct PgDatabase {
    pub url: String,
    name: String,
    admin_url: String,
}

impl PgDatabase {
    pub async fn create() -> Option<PgDatabase> {
        let admin_url = admin_url();
        let mut conn = match tokio::time::timeout(Duration::from_secs(5), PgConnection::connect(&admin_url)).await {
            Ok(Ok(c)) => c,
            failure => {
                let why = match failure {
                    Ok(Err(e)) => e.to_string(),
                    _ => "connection timed out".to_owned(),
                };
                if required() {
                    panic!("PostgreSQL is required (RDPFLEET_REQUIRE_PG=1) but unreachable at {admin_url}: {why}");
                }
                eprintln!(
                    "SKIPPED: PostgreSQL test, no server at {admin_url} ({why}); set RDPFLEET_TEST_PG_URL or start PostgreSQL"
                );
                return None;
            }
        };
        let name = format!("rdpfleet_t_{}", uuid::Uuid::new_v4().simple());
        sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut conn).await.expect("create test database");
        let _ = conn.close().await;
        let base = admin_url.rsplit_once('/').map_or(admin_url.as_str(), |(b, _)| b);
        Some(PgDatabase { url: format!("{base}/{name}"), name, admin_url })
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let (admin_url, name) = (self.admin_url.clone(), self.name.clone());
        // Drop runs inside the test's runtime; use a thread with its own runtime to finish the I/O.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
            rt.block_on(async {
                let mut conn = PgConnection::connect(&admin_url).await.ok()?;
                sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).execute(&mut conn).await.ok()
            })
        })
        .join();
    }
}
