//! Job-signing key rotation with a real server and a real agent: `signing-key rotate` makes a
//! new key and a statement signed by the old one; the agent checks it with the key it pinned,
//! pins the new key (also across its own restart) and accepts the old one only for the grace
//! period. A server started with a rotated-out or a foreign key file refuses to start, and an
//! agent refuses a job from a key that no rotation vouches for — the fleet never silently
//! loses the ability to receive fixes.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use base64::Engine;
use ed25519_dalek::{Signer, SigningKey};
use rdpfleet_e2e::TestDb;
use rdpfleet_e2e::procs::{AgentDir, Server, bin, signal};
use rdpfleet_proto::job::{Job, JobAction};
use uuid::Uuid;

const INI: &str = "[Globals]\nport=3389\nsecurity_layer=rdp\ncertificate=\nkey_file=\n[Xorg]\nport=-1\n";

fn key_in(path: &std::path::Path) -> SigningKey {
    let bytes = hex::decode(std::fs::read_to_string(path).unwrap().trim()).unwrap();
    SigningKey::from_bytes(&bytes.try_into().unwrap())
}

fn public(k: &SigningKey) -> String {
    base64::engine::general_purpose::STANDARD.encode(k.verifying_key().to_bytes())
}

/// Queues a job signed by `key` straight into the database and waits for the agent's answer.
async fn run_job(pool: &sqlx::SqlitePool, machine: Uuid, key: &SigningKey) -> (String, String) {
    let params = serde_json::json!({"level": "tls"});
    let mut job = Job {
        id: Uuid::new_v4(),
        machine_id: machine,
        fix: "xrdp.security_layer.set".into(),
        action: JobAction::DryRun,
        params: params.clone(),
        nonce: Uuid::new_v4().to_string(),
        expires_at: time::OffsetDateTime::now_utc() + time::Duration::hours(1),
        signature: None,
    };
    job.signature = Some(base64::engine::general_purpose::STANDARD.encode(key.sign(&job.signing_payload()).to_bytes()));
    rdpfleet_e2e::jobs::insert(pool, &job, &params).await;
    rdpfleet_e2e::jobs::finished(pool, job.id, 90).await
}

/// Starts `rdpfleet-server serve` with a key file and returns what it printed when it exited
/// (it must refuse to start).
async fn refused_start(
    db_url: &str,
    dir: &std::path::Path,
    key: &std::path::Path,
    audit_key: &std::path::Path,
) -> String {
    let out = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::process::Command::new(bin("rdpfleet-server"))
            .current_dir(dir)
            .args(["--database-url", db_url, "serve", "--listen", "127.0.0.1:0"])
            .env("RDPFLEET_SIGNING_KEY_PATH", key)
            .env("RDPFLEET_AUDIT_KEY_PATH", audit_key)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the server refused to start at once, instead of serving")
    .unwrap();
    assert!(!out.status.success());
    String::from_utf8_lossy(&out.stderr).into_owned()
}

async fn wait_exit(server: &mut Server) {
    signal(&server.child, "-TERM");
    tokio::time::timeout(Duration::from_secs(60), server.child.wait()).await.unwrap().unwrap();
}

#[tokio::test]
async fn agents_follow_a_key_rotation() {
    let db = TestDb::sqlite();
    let work = tempfile::tempdir().unwrap();
    let listen = format!("127.0.0.1:{}", rdpfleet_e2e::rdp_servers::free_port());
    let env = [("RDPFLEET_LONG_POLL_MAX_SECS", "2")];
    let mut server = Server::start_on(db.url(), work.path(), &env, &listen).await;
    let key_path = work.path().join("rdpfleet-signing.key");
    let old = key_in(&key_path);

    let ini = work.path().join("xrdp.ini");
    std::fs::write(&ini, INI).unwrap();
    let agent = AgentDir::new(&format!(
        "role = \"host\"\ninterval_secs = 3600\n[xrdp]\nini = \"{}\"\nservice = \"rdpfleet-test-no-such-unit\"\n",
        ini.display()
    ));
    let token = server.admin(&["enroll-token", "create", "--label", "rotation"]).await;
    let out = agent.command().args(["enroll", "--server", &server.url, "--token", &token]).output().await.unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let machine: Uuid = agent.credential()["machine_id"].as_str().unwrap().parse().unwrap();
    assert_eq!(agent.credential()["job_signing_public_key"], public(&old));
    let mut run = agent.command().arg("run").stderr(std::process::Stdio::null()).spawn().unwrap();
    let pool = sqlx::SqlitePool::connect(db.url()).await.unwrap();
    assert_eq!(run_job(&pool, machine, &old).await.0, "succeeded");

    // Rotate while the server is down, as an operator would, then start it with the new key.
    wait_exit(&mut server).await;
    let printed = server.admin(&["signing-key", "rotate", "--grace-days", "1"]).await;
    let new = key_in(&key_path);
    assert_eq!(printed, public(&new));
    assert_ne!(public(&old), public(&new));
    let retired: Vec<_> = std::fs::read_dir(work.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains(".retired-"))
        .collect();
    assert_eq!(retired.len(), 1, "the old key file is kept");
    let server = Server::start_on(db.url(), work.path(), &env, &listen).await;

    // A job signed with the new key: the agent takes the rotation from its next poll first.
    let (state, message) = run_job(&pool, machine, &new).await;
    assert_eq!(state, "succeeded", "{message}");
    let cred = agent.credential();
    assert_eq!(cred["job_signing_public_key"], public(&new), "the new key is pinned");
    assert_eq!(cred["previous_signing_keys"][0]["key"], public(&old));
    // The old key still works within its grace period; a key nobody vouched for does not.
    assert_eq!(run_job(&pool, machine, &old).await.0, "succeeded");
    let (state, message) = run_job(&pool, machine, &SigningKey::from_bytes(&[7; 32])).await;
    assert_eq!(state, "refused", "{message}");

    // The pin survives the agent's restart.
    signal(&run, "-KILL");
    let _ = run.wait().await;
    let mut run = agent.command().arg("run").stderr(std::process::Stdio::null()).spawn().unwrap();
    assert_eq!(run_job(&pool, machine, &new).await.0, "succeeded");
    signal(&run, "-KILL");
    let _ = run.wait().await;

    // A server given the rotated-out key, or a new one, refuses to start and says why.
    let elsewhere = tempfile::tempdir().unwrap();
    let audit_key = work.path().join("rdpfleet-audit.key");
    let msg = refused_start(db.url(), elsewhere.path(), &retired[0].path(), &audit_key).await;
    assert!(msg.contains("rotated out"), "{msg}");
    let msg = refused_start(db.url(), elsewhere.path(), &elsewhere.path().join("fresh.key"), &audit_key).await;
    assert!(msg.contains("is not this database's key"), "{msg}");
    // The refused starts changed nothing: the real server still signs and the audit log holds
    // the rotation.
    let out = server.admin(&["audit", "verify"]).await;
    assert!(out.starts_with("audit chain intact"), "{out}");
    let rotated: (i64,) = sqlx::query_as("SELECT COUNT(*) FROM audit_log WHERE action = 'signing_key.rotated'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(rotated.0, 1);
}
