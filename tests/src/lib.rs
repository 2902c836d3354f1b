//! Harness for tests that run the real `rdpfleet-server` and `rdpfleet-agent` binaries, and
//! per-test databases on SQLite and PostgreSQL.
#![forbid(unsafe_code)]
#![allow(clippy::unwrap_used)] // test support: a failed set-up should stop the test loudly

pub mod certs;
pub mod diag;
pub mod http;
pub mod jobs;
pub mod pg;
pub mod procs;
pub mod rdp_servers;
pub mod sim;

/// A fresh, empty database for one test.
pub enum TestDb {
    Sqlite { _dir: tempfile::TempDir, url: String },
    Postgres(pg::PgDatabase),
}

impl TestDb {
    pub fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("rdpfleet.db").display());
        TestDb::Sqlite { _dir: dir, url }
    }

    /// `None` (after printing why) when PostgreSQL is unreachable and not required.
    pub async fn postgres() -> Option<TestDb> {
        pg::PgDatabase::create().await.map(TestDb::Postgres)
    }

    pub fn url(&self) -> &str {
        match self {
            TestDb::Sqlite { url, .. } => url,
            TestDb::Postgres(p) => &p.url,
        }
    }
}
