//! Job security end to end: the real server and a real agent. Job rows are written straight into
//! the server's database — unsigned, tampered, addressed to another machine, re-queued after
//! they ran — beside one the server's key signed properly. The agent acts only on the signed one,
//! refuses the others and says why, and never applies a job twice.
#![allow(clippy::unwrap_used)]

use base64::Engine;
use ed25519_dalek::{Signer, SigningKey};
use rdpfleet_e2e::TestDb;
use rdpfleet_e2e::jobs::insert;
use rdpfleet_e2e::procs::{AgentDir, Server};
use rdpfleet_proto::job::{Job, JobAction};
use uuid::Uuid;

const INI: &str = "[Globals]\nport=3389\nsecurity_layer=rdp\ncertificate=\nkey_file=\n[Xorg]\nport=-1\n";

fn signed(key: &SigningKey, job: &mut Job) {
    job.signature = Some(base64::engine::general_purpose::STANDARD.encode(key.sign(&job.signing_payload()).to_bytes()));
}

async fn finished(pool: &sqlx::SqlitePool, id: Uuid) -> (String, String) {
    rdpfleet_e2e::jobs::finished(pool, id, 60).await
}

#[tokio::test]
async fn the_agent_acts_only_on_jobs_the_server_signed() {
    let db = TestDb::sqlite();
    let work = tempfile::tempdir().unwrap();
    let server = Server::start(db.url(), work.path()).await;
    let seed: [u8; 32] = hex_seed(&std::fs::read_to_string(work.path().join("rdpfleet-signing.key")).unwrap());
    let key = SigningKey::from_bytes(&seed);

    let ini = work.path().join("xrdp.ini");
    std::fs::write(&ini, INI).unwrap();
    let agent = AgentDir::new(&format!(
        "role = \"host\"\ninterval_secs = 3600\n[xrdp]\nini = \"{}\"\nservice = \"rdpfleet-test-no-such-unit\"\n",
        ini.display()
    ));
    let token = server.admin(&["enroll-token", "create", "--label", "jobs"]).await;
    let out = agent.command().args(["enroll", "--server", &server.url, "--token", &token]).output().await.unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let machine: Uuid = agent.credential()["machine_id"].as_str().unwrap().parse().unwrap();
    let mut run = agent.command().arg("run").stderr(std::process::Stdio::null()).spawn().unwrap();
    let pool = sqlx::SqlitePool::connect(db.url()).await.unwrap();

    let job = |params: serde_json::Value| Job {
        id: Uuid::new_v4(),
        machine_id: machine,
        fix: "xrdp.security_layer.set".into(),
        action: JobAction::Apply,
        params,
        nonce: Uuid::new_v4().to_string(),
        expires_at: time::OffsetDateTime::now_utc() + time::Duration::hours(1),
        signature: None,
    };
    let tls = serde_json::json!({"level": "tls"});

    // A row written straight into the database, unsigned.
    let unsigned = job(tls.clone());
    insert(&pool, &unsigned, &tls).await;
    // Signed for "negotiate", stored as "tls": tampered.
    let mut tampered = job(serde_json::json!({"level": "negotiate"}));
    signed(&key, &mut tampered);
    insert(&pool, &tampered, &tls).await;
    // Signed for another machine, queued for this one.
    let mut elsewhere = job(tls.clone());
    elsewhere.machine_id = Uuid::new_v4();
    signed(&key, &mut elsewhere);
    elsewhere.machine_id = machine;
    insert(&pool, &elsewhere, &tls).await;
    // Signed by a key that is not the server's.
    let mut forged = job(tls.clone());
    signed(&SigningKey::from_bytes(&[7u8; 32]), &mut forged);
    insert(&pool, &forged, &tls).await;
    for (j, why) in
        [(&unsigned, "not signed"), (&tampered, "signature"), (&elsewhere, "signature"), (&forged, "signature")]
    {
        let (state, message) = finished(&pool, j.id).await;
        assert_eq!(state, "refused", "{why}: {message}");
        assert!(message.contains(why), "{why}: {message}");
    }
    assert_eq!(std::fs::read_to_string(&ini).unwrap(), INI, "nothing was changed");

    // The genuine job runs: backup, apply, verify.
    let mut good = job(tls.clone());
    signed(&key, &mut good);
    insert(&pool, &good, &tls).await;
    let (state, message) = finished(&pool, good.id).await;
    assert_eq!(state, "succeeded", "{message}");
    assert!(std::fs::read_to_string(&ini).unwrap().contains("security_layer=tls"));

    // Replayed: someone puts the finished job back in the queue after undoing its effect.
    std::fs::write(&ini, INI).unwrap();
    sqlx::query("UPDATE jobs SET state = 'queued', finished_at = NULL WHERE id = $1")
        .bind(good.id.to_string())
        .execute(&pool)
        .await
        .unwrap();
    let (state, _) = finished(&pool, good.id).await;
    assert_eq!(state, "succeeded", "the recorded answer again");
    assert_eq!(std::fs::read_to_string(&ini).unwrap(), INI, "not applied a second time");

    // The server's audit log holds every answer.
    let actions: Vec<(String,)> =
        sqlx::query_as("SELECT action FROM audit_log WHERE action LIKE 'job.%'").fetch_all(&pool).await.unwrap();
    assert!(actions.len() >= 5, "{actions:?}");
    run.kill().await.unwrap();
    drop(server);
}

fn hex_seed(text: &str) -> [u8; 32] {
    let t = text.trim();
    let mut out = [0u8; 32];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(&t[i * 2..i * 2 + 2], 16).unwrap();
    }
    out
}

/// The machine owner's `[fixes]` policy holds against jobs the server signed properly.
#[tokio::test]
async fn the_agents_local_policy_overrides_the_server() {
    let db = TestDb::sqlite();
    let work = tempfile::tempdir().unwrap();
    let server = Server::start(db.url(), work.path()).await;
    let key =
        SigningKey::from_bytes(&hex_seed(&std::fs::read_to_string(work.path().join("rdpfleet-signing.key")).unwrap()));
    let ini = work.path().join("xrdp.ini");
    std::fs::write(&ini, INI).unwrap();
    let agent = AgentDir::new(&format!(
        "role = \"host\"\ninterval_secs = 3600\n[xrdp]\nini = \"{}\"\nservice = \"rdpfleet-test-no-such-unit\"\n\
         [fixes]\ndeny = [\"xrdp.security_layer.set\"]\n",
        ini.display()
    ));
    let token = server.admin(&["enroll-token", "create", "--label", "policy"]).await;
    let out = agent.command().args(["enroll", "--server", &server.url, "--token", &token]).output().await.unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let machine: Uuid = agent.credential()["machine_id"].as_str().unwrap().parse().unwrap();
    let mut run = agent.command().arg("run").stderr(std::process::Stdio::null()).spawn().unwrap();
    let pool = sqlx::SqlitePool::connect(db.url()).await.unwrap();
    let tls = serde_json::json!({"level": "tls"});
    let mut job = Job {
        id: Uuid::new_v4(),
        machine_id: machine,
        fix: "xrdp.security_layer.set".into(),
        action: JobAction::Apply,
        params: tls.clone(),
        nonce: Uuid::new_v4().to_string(),
        expires_at: time::OffsetDateTime::now_utc() + time::Duration::hours(1),
        signature: None,
    };
    signed(&key, &mut job);
    insert(&pool, &job, &tls).await;
    let (state, message) = finished(&pool, job.id).await;
    assert_eq!(state, "refused", "{message}");
    assert!(message.contains("deny-list"), "{message}");
    assert_eq!(std::fs::read_to_string(&ini).unwrap(), INI, "nothing was changed");
    run.kill().await.unwrap();
}
