//! Jobs written straight into a server's SQLite database, as an attacker with database access
//! (or a test of the agent's checks) would, and the agent's answer read back.
use std::time::Duration;

use rdpfleet_proto::job::Job;
use uuid::Uuid;

/// Queues `job` as a row, storing `stored_params` (which may differ from what was signed).
pub async fn insert(pool: &sqlx::SqlitePool, job: &Job, stored_params: &serde_json::Value) {
    let now = (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64;
    sqlx::query(
        "INSERT INTO jobs (id, machine_id, fix_id, action, params, nonce, signature, state, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, 'queued', $8, $9)",
    )
    .bind(job.id.to_string())
    .bind(job.machine_id.to_string())
    .bind(&job.fix)
    .bind(job.action.as_str())
    .bind(stored_params.to_string())
    .bind(&job.nonce)
    .bind(job.signature.as_deref())
    .bind(now)
    .bind(job.expires_at.unix_timestamp() * 1000)
    .execute(pool)
    .await
    .unwrap();
}

/// Waits (up to `secs`) until the agent answered the job: its state and message.
pub async fn finished(pool: &sqlx::SqlitePool, id: Uuid, secs: u64) -> (String, String) {
    tokio::time::timeout(Duration::from_secs(secs), async {
        loop {
            let row: (String, Option<String>) = sqlx::query_as("SELECT state, outcome_message FROM jobs WHERE id = $1")
                .bind(id.to_string())
                .fetch_one(pool)
                .await
                .unwrap();
            if !["queued", "leased"].contains(&row.0.as_str()) {
                return (row.0, row.1.unwrap_or_default());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("the agent answered within {secs} s"))
}
