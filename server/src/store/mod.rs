//! Persistence on SQLite (default, embedded) or PostgreSQL (scale-out).
//!
//! Every query is written once. `with_db!` expands a body for each backend with its concrete
//! pool type, so the same SQL text (with `$1` placeholders, which both accept) is compiled
//! against both drivers and cannot drift. Types are limited to what both decode the same way:
//! TEXT, BIGINT/INTEGER (`i64`), nullable variants. Times are Unix milliseconds.
use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};

pub mod audit;
mod current_cache;
pub mod dashboard;
pub mod enrollment;
pub mod incidents;
pub mod jobs;
pub mod machines;
pub mod releases;
mod report_plan;
pub mod results;
pub mod rollouts;
pub mod seed;
pub mod sessions;
pub mod signing_keys;
pub(crate) mod sql;
mod token_cache;
pub mod users;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("unsupported database URL scheme (expected sqlite:// or postgres://)")]
    UnsupportedUrl,
    #[error("database error: {0}")]
    Sqlx(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("a row with the same unique value already exists")]
    Conflict,
    #[error("stored data is not valid: {0}")]
    Corrupt(String),
}

impl StoreError {
    /// Maps unique-constraint violations to `Conflict`, so callers can answer 409.
    pub(crate) fn from_write(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict,
            _ => StoreError::Sqlx(e),
        }
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

impl From<StoreError> for crate::domain::DomainError {
    fn from(e: StoreError) -> Self {
        use crate::domain::DomainError;
        match e {
            StoreError::Conflict => DomainError::Conflict("already exists".into()),
            StoreError::Sqlx(sqlx::Error::PoolTimedOut) => DomainError::Unavailable,
            other => DomainError::Internal(other.into()),
        }
    }
}

#[derive(Clone, Debug)]
pub enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

#[derive(Clone, Debug)]
pub struct Store {
    pub(crate) pool: Pool,
    pub(crate) tokens: std::sync::Arc<token_cache::TokenCache>,
    pub(crate) current: std::sync::Arc<current_cache::CurrentCache>,
    pub(crate) audit_key: std::sync::Arc<audit::AuditKey>,
}

/// Runs `$body` with `$p` bound to the concrete pool of the active backend.
macro_rules! with_db {
    ($store:expr, $p:ident => $body:expr) => {
        match &$store.pool {
            $crate::store::Pool::Sqlite($p) => $body,
            $crate::store::Pool::Postgres($p) => $body,
        }
    };
}
pub(crate) use with_db;

/// Which backend a URL selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn from_url(url: &str) -> StoreResult<Backend> {
        if url.starts_with("sqlite:") {
            Ok(Backend::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Backend::Postgres)
        } else {
            Err(StoreError::UnsupportedUrl)
        }
    }
}

/// Creates a new SQLite database file readable by its owner only: it holds session and token
/// hashes and the audit log. SQLite gives the `-wal` and `-shm` files the mode of the database
/// file, so they are private too. An existing file is left as it is.
fn create_private(path: &std::path::Path) -> StoreResult<()> {
    if path.as_os_str().is_empty() || path.as_os_str() == ":memory:" {
        return Ok(());
    }
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    match opts.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(StoreError::Sqlx(sqlx::Error::Io(e))),
    }
}

impl Store {
    /// Connects, creating the SQLite file if needed, and applies pending migrations.
    pub async fn connect(url: &str) -> StoreResult<Store> {
        let pool = match Backend::from_url(url)? {
            Backend::Sqlite => {
                let opts = SqliteConnectOptions::from_str(url)?
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    // NORMAL in WAL mode survives a process crash (the tests SIGKILL the server);
                    // only an OS crash can lose the last transactions.
                    .synchronous(SqliteSynchronous::Normal)
                    .busy_timeout(Duration::from_secs(10))
                    .foreign_keys(true)
                    // A fleet's tables outgrow SQLite's 2 MB default cache many times over.
                    // (Not mmap: while reports grow the file, every transaction on every
                    // connection unmapped and remapped it — measured at 100k agents.)
                    .pragma("cache_size", "-16384")
                    .pragma("temp_store", "memory");
                create_private(opts.get_filename())?;
                let pool = SqlitePoolOptions::new().max_connections(8).connect_with(opts).await?;
                sqlx::migrate!("../migrations/sqlite").run(&pool).await?;
                Pool::Sqlite(pool)
            }
            Backend::Postgres => {
                let pool = PgPoolOptions::new()
                    .max_connections(16)
                    .acquire_timeout(Duration::from_secs(10))
                    .connect(url)
                    .await?;
                // sqlx takes an advisory lock here, so replicas starting together migrate once.
                sqlx::migrate!("../migrations/postgres").run(&pool).await?;
                Pool::Postgres(pool)
            }
        };
        Ok(Store {
            pool,
            tokens: std::sync::Arc::default(),
            current: std::sync::Arc::default(),
            audit_key: std::sync::Arc::new(audit::AuditKey::unconfigured()),
        })
    }

    /// This store with the audit chain keyed by `key` (the server and the command line always
    /// set the configured key; without one, tests get a fixed key).
    pub fn with_audit_key(mut self, key: audit::AuditKey) -> Store {
        self.audit_key = std::sync::Arc::new(key);
        self
    }

    pub fn audit_key(&self) -> &audit::AuditKey {
        &self.audit_key
    }

    pub fn backend(&self) -> Backend {
        match self.pool {
            Pool::Sqlite(_) => Backend::Sqlite,
            Pool::Postgres(_) => Backend::Postgres,
        }
    }

    /// The statement that opens a transaction that writes. On SQLite that is `BEGIN
    /// IMMEDIATE`, which takes the write lock first (waiting up to the busy timeout): a
    /// deferred transaction that reads and then writes fails at once with `SQLITE_BUSY` when
    /// another connection wrote in between, and no timeout helps.
    pub(crate) fn begin_write(&self) -> &'static str {
        match self.pool {
            Pool::Sqlite(_) => "BEGIN IMMEDIATE",
            Pool::Postgres(_) => "BEGIN",
        }
    }

    pub async fn ping(&self) -> StoreResult<()> {
        with_db!(self, p => {
            sqlx::query("SELECT 1").execute(p).await?;
        });
        Ok(())
    }

    /// Tells every replica that `machine` has a new job (PostgreSQL NOTIFY on `rdpfleet_jobs`;
    /// a no-op on SQLite, where one server owns the database and wakes its own pollers).
    pub async fn notify_job(&self, machine: uuid::Uuid) -> StoreResult<()> {
        if let Pool::Postgres(p) = &self.pool {
            sqlx::query("SELECT pg_notify('rdpfleet_jobs', $1)").bind(machine.to_string()).execute(p).await?;
        }
        Ok(())
    }

    /// On PostgreSQL, calls `on_job` with the machine whenever any replica queues a job for it
    /// (`notify_job`), until `shutdown`; `None` on SQLite, where no other process writes jobs.
    pub fn spawn_job_listener(
        &self,
        on_job: impl Fn(uuid::Uuid) + Send + 'static,
        shutdown: tokio_util::sync::CancellationToken,
    ) -> Option<tokio::task::JoinHandle<()>> {
        let Pool::Postgres(pool) = &self.pool else { return None };
        let pool = pool.clone();
        Some(tokio::spawn(async move {
            loop {
                let mut listener = match sqlx::postgres::PgListener::connect_with(&pool).await {
                    Ok(l) => l,
                    Err(e) => {
                        tracing::warn!(error = %e, "job notifications: cannot connect; retrying");
                        tokio::select! {
                            () = shutdown.cancelled() => return,
                            () = tokio::time::sleep(Duration::from_secs(5)) => continue,
                        }
                    }
                };
                if let Err(e) = listener.listen("rdpfleet_jobs").await {
                    tracing::warn!(error = %e, "job notifications: cannot listen");
                    continue;
                }
                loop {
                    tokio::select! {
                        () = shutdown.cancelled() => return,
                        n = listener.recv() => match n {
                            Ok(n) => {
                                if let Ok(id) = n.payload().parse() {
                                    on_job(id);
                                }
                            }
                            Err(e) => {
                                tracing::warn!(error = %e, "job notifications lost; reconnecting");
                                break;
                            }
                        },
                    }
                }
            }
        }))
    }

    pub async fn close(&self) {
        with_db!(self, p => p.close().await)
    }
}

/// Current time in Unix milliseconds.
pub fn now_ms() -> i64 {
    ms_of(time::OffsetDateTime::now_utc())
}

pub fn ms_of(t: time::OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

pub fn time_of(ms: i64) -> time::OffsetDateTime {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
}

pub(crate) fn parse_uuid(s: &str) -> StoreResult<uuid::Uuid> {
    uuid::Uuid::parse_str(s).map_err(|_| StoreError::Corrupt(format!("bad uuid {s:?}")))
}

/// A stored value that does not read back as its type.
pub(crate) fn corrupt(what: &str, value: &str) -> StoreError {
    StoreError::Corrupt(format!("{what} {value:?}"))
}

/// Rows into their domain type (the store's boundary); one bad row fails the read.
pub(crate) fn convert<R, T: TryFrom<R, Error = StoreError>>(rows: Vec<R>) -> StoreResult<Vec<T>> {
    rows.into_iter().map(T::try_from).collect()
}

#[cfg(all(test, unix))]
mod file_mode_tests {
    use std::os::unix::fs::PermissionsExt;

    #[tokio::test]
    async fn a_new_sqlite_database_and_its_wal_files_are_private() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("fleet.db");
        let store = super::Store::connect(&format!("sqlite://{}", db.display())).await.unwrap();
        store.count_users().await.unwrap();
        for name in ["fleet.db", "fleet.db-wal", "fleet.db-shm"] {
            let mode = std::fs::metadata(dir.path().join(name)).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{name}");
        }
        store.close().await;
    }
}
