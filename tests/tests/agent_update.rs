//! Agent self-update as a rollout, with real processes: an agent (version A, a copy of the
//! built binary) updates itself through an approved canary rollout to `rdpfleet-agent-next`
//! (the same code stamped with the next version) and reports it; a broken build (exits at start)
//! is reverted by the agent's watchdog and halts its rollout; a tampered binary and a release
//! signed by another key are refused and halt theirs; a rotation of the release key is followed.
//! Linux: the swap and exec in place.
#![cfg(unix)]
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use base64::Engine;
use ed25519_dalek::Signer;
use rdpfleet_e2e::TestDb;
use rdpfleet_e2e::http::{call, until};
use rdpfleet_e2e::procs::{Server, bin};
use serde_json::{Value, json};
use sha2::Digest;

fn version_plus(patch: u64) -> String {
    let base: Vec<u64> = env!("CARGO_PKG_VERSION").split('.').map(|p| p.parse().unwrap()).collect();
    format!("{}.{}.{}", base[0], base[1], base[2] + patch)
}

/// An agent running from its own copy of the binary (the update replaces that copy).
struct Agent {
    dir: tempfile::TempDir,
    child: tokio::process::Child,
    id: String,
}

impl Agent {
    fn exe(&self) -> PathBuf {
        self.dir.path().join("bin/rdpfleet-agent")
    }

    async fn start(server: &Server, token: &str) -> Agent {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("bin")).unwrap();
        let exe = dir.path().join("bin/rdpfleet-agent");
        std::fs::copy(bin("rdpfleet-agent"), &exe).unwrap();
        std::fs::write(
            dir.path().join("agent.toml"),
            "role = \"client\"\ninterval_secs = 5\njitter_pct = 0\ncheck_timeout_secs = 5\n[xrdp]\nini = \"/nonexistent/xrdp.ini\"\n",
        )
        .unwrap();
        let args = |extra: &[&str]| {
            let mut a: Vec<String> = vec![
                "--config".into(),
                dir.path().join("agent.toml").display().to_string(),
                "--state-dir".into(),
                dir.path().join("state").display().to_string(),
            ];
            a.extend(extra.iter().map(|s| (*s).to_owned()));
            a
        };
        let out = tokio::process::Command::new(&exe)
            .args(args(&["enroll", "--server", &server.url, "--token", token, "--hostname", "update-client"]))
            .output()
            .await
            .unwrap();
        assert!(out.status.success(), "enroll: {}", String::from_utf8_lossy(&out.stderr));
        let cred: Value =
            serde_json::from_str(&std::fs::read_to_string(dir.path().join("state/credential.json")).unwrap()).unwrap();
        assert!(cred["release_public_key"].is_string(), "the release key is pinned at enrollment: {cred}");
        let id = cred["machine_id"].as_str().unwrap().to_owned();
        let log = std::fs::File::create(dir.path().join("agent.log")).unwrap();
        // Its own process group: the watchdog, which may become the agent, is stopped with it.
        let child = tokio::process::Command::new(&exe)
            .args(args(&["run"]))
            .env("RDPFLEET_LOG", "info")
            .stderr(log)
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        Agent { dir, child, id }
    }

    fn log(&self) -> String {
        let main = std::fs::read_to_string(self.dir.path().join("agent.log")).unwrap_or_default();
        let watchdog = std::fs::read_to_string(self.dir.path().join("state/update-watchdog.log")).unwrap_or_default();
        format!("{main}\n--- watchdog ---\n{watchdog}")
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        // Not `kill -KILL -PGID`: procps-ng's kill takes that for something else entirely.
        if let Some(pid) = self.child.id().and_then(|p| i32::try_from(p).ok()) {
            #[allow(unsafe_code)] // SAFETY: kill(2) on this test's own process group.
            unsafe {
                libc::kill(-pid, libc::SIGKILL);
            }
        }
    }
}

fn sha256(path: &Path) -> String {
    hex::encode(sha2::Sha256::digest(std::fs::read(path).unwrap()))
}

struct Fleet {
    server: Server,
    proposer: String,
    approver: String,
}

impl Fleet {
    async fn machine_version(&self, id: &str) -> String {
        let (_, m) = call("GET", &format!("{}/api/v1/machines/{id}", self.server.url), &self.proposer, None).await;
        m["agent_version"].as_str().unwrap_or_default().to_owned()
    }

    /// Proposes, approves and starts an update of `machine` to `version`; returns its id.
    async fn update(&self, machine: &str, version: &str) -> String {
        let url = &self.server.url;
        let body = json!({"fix": "agent.update", "params": {"version": version, "health_gate_mins": 2},
                          "machines": [machine], "canary": 1});
        let (s, r) = call("POST", &format!("{url}/api/v1/rollouts"), &self.proposer, Some(body)).await;
        assert_eq!(s, 201, "{r}");
        let id = r["rollout"]["id"].as_str().unwrap().to_owned();
        assert_eq!(r["rollout"]["state"], "awaiting_approval", "replacing the agent takes a second person: {r}");
        let (s, r) = call("POST", &format!("{url}/api/v1/rollouts/{id}/approve"), &self.approver, None).await;
        assert_eq!(s, 200, "{r}");
        let (s, r) = call("POST", &format!("{url}/api/v1/rollouts/{id}/start"), &self.proposer, None).await;
        assert_eq!(s, 200, "{r}");
        id
    }

    async fn ended(&self, rollout: &str, agent: &Agent) -> Value {
        let url = format!("{}/api/v1/rollouts/{rollout}", self.server.url);
        let what = format!("rollout {rollout} to end; agent log:\n{}", agent.log());
        until(180, &what, || async {
            let (_, r) = call("GET", &url, &self.proposer, None).await;
            matches!(r["rollout"]["state"].as_str(), Some("completed" | "halted")).then_some(r)
        })
        .await
    }

    async fn add_release(&self, file: &Path, version: &str) {
        let file = file.display().to_string();
        self.server.admin(&["release", "add", &file, "--version", version, "--platform", "linux-x86_64"]).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_agent_updates_itself_through_a_canary_rollout_and_bad_builds_are_refused_or_reverted() {
    let db = TestDb::sqlite();
    let work = tempfile::tempdir().unwrap();
    let listen = format!("127.0.0.1:{}", rdpfleet_e2e::rdp_servers::free_port());
    let env = [("RDPFLEET_LONG_POLL_MAX_SECS", "2")];
    let server = Server::start_on(db.url(), work.path(), &env, &listen).await;
    let token = server.admin(&["enroll-token", "create", "--label", "update", "--max-uses", "1"]).await;
    let proposer = server.admin(&["user", "token", "--username", "admin"]).await;
    server.admin(&["user", "create", "--username", "approver", "--role", "admin"]).await;
    let approver = server.admin(&["user", "token", "--username", "approver"]).await;
    let mut fleet = Fleet { server, proposer, approver };

    let agent = Agent::start(&fleet.server, &token).await;
    let a = env!("CARGO_PKG_VERSION");
    until(60, "the agent's first report", || async { (fleet.machine_version(&agent.id).await == a).then_some(()) })
        .await;

    // A → B through a canary rollout: the new build reports B and answers the job.
    let b = version_plus(1);
    let next = bin("rdpfleet-agent-next");
    fleet.add_release(&next, &b).await;
    let (_, releases) = call("GET", &format!("{}/api/v1/releases", fleet.server.url), &fleet.proposer, None).await;
    assert_eq!(releases[0]["version"], b.as_str(), "{releases}");
    let rollout = fleet.update(&agent.id, &b).await;
    let r = fleet.ended(&rollout, &agent).await;
    assert_eq!(r["rollout"]["state"], "completed", "{r}\n{}", agent.log());
    assert_eq!(r["targets"][0]["state"], "succeeded", "{r}");
    assert_eq!(fleet.machine_version(&agent.id).await, b, "the machine reports B");
    assert_eq!(sha256(&agent.exe()), sha256(&next), "B is the binary on disk");
    let (_, releases) = call("GET", &format!("{}/api/v1/releases", fleet.server.url), &fleet.proposer, None).await;
    assert_eq!(releases[0]["rollouts"][0]["state"], "completed", "the release lists its rollout: {releases}");

    // The release key is rotated (the stored releases re-signed) and the replicas restarted: the
    // agent follows the statement signed by the key it pinned, and what the new key signs installs.
    let new_key = fleet.server.admin(&["release", "rotate-key"]).await;
    fleet.server.child.start_kill().unwrap();
    fleet.server.child.wait().await.unwrap();
    fleet.server = Server::start_on(db.url(), work.path(), &env, &listen).await;
    let credential = agent.dir.path().join("state/credential.json");
    until(60, "the agent pins the new release key", || async {
        let c: Value = serde_json::from_str(&std::fs::read_to_string(&credential).ok()?).ok()?;
        (c["release_public_key"] == new_key.as_str()).then_some(())
    })
    .await;

    // A build that exits at start: the watchdog restores B, which answers; the rollout halts.
    let c = version_plus(2);
    let broken = work.path().join("broken-agent");
    std::fs::write(&broken, "#!/bin/sh\nexit 3\n").unwrap();
    fleet.add_release(&broken, &c).await;
    let rollout = fleet.update(&agent.id, &c).await;
    let r = fleet.ended(&rollout, &agent).await;
    assert_eq!(r["rollout"]["state"], "halted", "{r}");
    let message = r["targets"][0]["message"].as_str().unwrap_or_default();
    assert!(message.contains("reverted"), "the agent says it reverted: {r}\n{}", agent.log());
    assert_eq!(sha256(&agent.exe()), sha256(&next), "B is back on disk");
    until(60, "B reporting again", || async { (fleet.machine_version(&agent.id).await == b).then_some(()) }).await;

    // A tampered binary (its bytes changed after signing): refused, nothing changed, halted.
    let d = version_plus(3);
    fleet.add_release(&next, &d).await;
    let pool = sqlx::SqlitePool::connect(db.url()).await.unwrap();
    sqlx::query("UPDATE agent_releases SET content = $1 WHERE version = $2")
        .bind(b"\x7fELF tampered".to_vec())
        .bind(&d)
        .execute(&pool)
        .await
        .unwrap();
    let rollout = fleet.update(&agent.id, &d).await;
    let r = fleet.ended(&rollout, &agent).await;
    assert_eq!(r["rollout"]["state"], "halted", "{r}");
    let message = r["targets"][0]["message"].as_str().unwrap_or_default();
    assert!(message.contains("does not match the signed one"), "{r}");

    // A release signed by another key (say, written straight into the database): refused.
    let e = version_plus(4);
    fleet.add_release(&next, &e).await;
    let other = ed25519_dalek::SigningKey::from_bytes(&[9; 32]);
    let sha = sha256(&next);
    let payload = rdpfleet_proto::release::signing_payload(&e, rdpfleet_proto::release::Platform::LinuxX86_64, &sha);
    let forged = base64::engine::general_purpose::STANDARD.encode(other.sign(&payload).to_bytes());
    sqlx::query("UPDATE agent_releases SET signature = $1 WHERE version = $2")
        .bind(&forged)
        .bind(&e)
        .execute(&pool)
        .await
        .unwrap();
    let rollout = fleet.update(&agent.id, &e).await;
    let r = fleet.ended(&rollout, &agent).await;
    assert_eq!(r["rollout"]["state"], "halted", "{r}");
    let message = r["targets"][0]["message"].as_str().unwrap_or_default();
    assert!(message.contains("does not verify with the release key"), "{r}");
    assert_eq!(sha256(&agent.exe()), sha256(&next), "still B");
    assert_eq!(fleet.machine_version(&agent.id).await, b);

    // A server given another release key refuses to start (agents would refuse what it signs),
    // and so does `release add` with it.
    let stranger = work.path().join("stranger-release.key");
    std::fs::write(&stranger, "11".repeat(32)).unwrap();
    let out = tokio::time::timeout(
        std::time::Duration::from_secs(60),
        tokio::process::Command::new(bin("rdpfleet-server"))
            .current_dir(work.path())
            .args(["--database-url", db.url(), "serve", "--listen", "127.0.0.1:0"])
            .env("RDPFLEET_RELEASE_KEY_PATH", &stranger)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the server refused to start at once")
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("is not this database's release key"), "{stderr}");
    let out = tokio::process::Command::new(bin("rdpfleet-server"))
        .current_dir(work.path())
        .args(["--database-url", db.url(), "release", "add"])
        .arg(&next)
        .args(["--version", &version_plus(9), "--platform", "linux-x86_64"])
        .env("RDPFLEET_RELEASE_KEY_PATH", &stranger)
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("is not this database's release key"), "{stderr}");
}
