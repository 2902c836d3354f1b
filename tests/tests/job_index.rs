//! Job polls answer from the server's in-memory index of machines with jobs, not the database.
//! A job the server did not write itself (another replica whose notification was lost, a
//! restore, a hand-made row) must still reach a long-polling agent: the server re-reads the
//! machines with deliverable jobs every 5 s.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use rdpfleet_e2e::TestDb;
use rdpfleet_e2e::http::call;
use rdpfleet_e2e::procs::Server;
use serde_json::json;
use sqlx::Connection;

async fn insert_job_behind_the_servers_back(db_url: &str, machine_id: &str) -> String {
    let id = uuid::Uuid::new_v4().to_string();
    let now = time::OffsetDateTime::now_utc().unix_timestamp() * 1000;
    let sql = "INSERT INTO jobs (id, machine_id, fix_id, action, params, nonce, signature, state, created_at, expires_at) \
               VALUES ($1, $2, 'host.nla.enable', 'apply', '{}', 'n-1', NULL, 'queued', $3, $4)";
    macro_rules! insert {
        ($conn:expr) => {{
            let mut conn = $conn;
            sqlx::query(sql)
                .bind(&id)
                .bind(machine_id)
                .bind(now)
                .bind(now + 3_600_000)
                .execute(&mut conn)
                .await
                .unwrap();
        }};
    }
    if db_url.starts_with("sqlite:") {
        insert!(sqlx::sqlite::SqliteConnection::connect(db_url).await.unwrap());
    } else {
        insert!(sqlx::postgres::PgConnection::connect(db_url).await.unwrap());
    }
    id
}

async fn a_job_written_elsewhere_reaches_a_long_poll(db: TestDb) {
    let work = tempfile::tempdir().unwrap();
    let server = Server::start_with(db.url(), work.path(), &[("RDPFLEET_LONG_POLL_MAX_SECS", "30")]).await;
    let token = server.admin(&["enroll-token", "create", "--label", "idx", "--max-uses", "2"]).await;
    let (s, v) = call(
        "POST",
        &format!("{}/api/agent/v1/enroll", server.url),
        "",
        Some(json!({"token": token, "hostname": "idx1", "role": "host", "os": "linux", "agent_version": "0.1.0"})),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    let (id, tok) = (v["machine_id"].as_str().unwrap().to_owned(), v["agent_token"].as_str().unwrap().to_owned());
    let polls = format!("{}/api/agent/v1/machines/{id}/jobs", server.url);

    // Nothing queued: an immediate poll is empty (and settles the machine out of the index).
    let (s, v) = call("GET", &format!("{polls}?wait=0"), &tok, None).await;
    assert_eq!((s, v["jobs"].as_array().map(Vec::len)), (200, Some(0)), "{v}");

    let poll = tokio::spawn({
        let (polls, tok) = (polls.clone(), tok.clone());
        async move { call("GET", &format!("{polls}?wait=30"), &tok, None).await }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let job = insert_job_behind_the_servers_back(db.url(), &id).await;
    let written = Instant::now();
    let (s, v) = poll.await.unwrap();
    let took = written.elapsed();
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["jobs"][0]["id"].as_str(), Some(job.as_str()), "{v}");
    // The index is re-read every 5 s; a poll that waited out its 30 s would mean it never was.
    assert!(took < Duration::from_secs(12), "delivered {took:?} after it was written");
}

#[tokio::test]
async fn a_job_written_elsewhere_reaches_a_long_poll_sqlite() {
    a_job_written_elsewhere_reaches_a_long_poll(TestDb::sqlite()).await;
}

#[tokio::test]
async fn a_job_written_elsewhere_reaches_a_long_poll_postgres() {
    let Some(db) = TestDb::postgres().await else { return };
    a_job_written_elsewhere_reaches_a_long_poll(db).await;
}
