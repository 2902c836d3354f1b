//! First-run mistakes with the real binaries: the server on a busy port, `--listen` without a
//! subcommand, an agent whose state directory cannot take its credential, `--server host:port`,
//! and a server that is not running.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use rdpfleet_e2e::procs::{AgentDir, Server, bin};
use tokio::process::Command;

#[tokio::test]
async fn a_busy_port_fails_before_any_credential_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port();
    let db = format!("sqlite://{}", dir.path().join("r.db").display());
    let out = tokio::time::timeout(
        Duration::from_secs(60),
        Command::new(bin("rdpfleet-server"))
            .current_dir(dir.path())
            .args(["--database-url", &db, "--listen", &format!("127.0.0.1:{port}")])
            .output(),
    )
    .await
    .expect("the server gives up at once")
    .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot listen on") && err.contains("--listen"), "{err}");
    assert!(!dir.path().join("initial-credentials.txt").exists(), "no credentials for a server that never ran");
    drop(busy);

    // `--listen` works without `serve` (the default command), and the first start then writes
    // its credentials.
    let mut child = Command::new(bin("rdpfleet-server"))
        .current_dir(dir.path())
        .args(["--database-url", &db, "--listen", "127.0.0.1:0"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    use tokio::io::AsyncBufReadExt;
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let listening = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(l) = lines.next_line().await.unwrap() {
            if l.starts_with("rdpfleet-server listening on ") {
                return true;
            }
        }
        false
    })
    .await
    .unwrap();
    assert!(listening);
    assert!(dir.path().join("initial-credentials.txt").exists());
}

#[tokio::test]
async fn agent_mistakes_get_one_line_and_a_hint_and_leave_no_ghost_machine() {
    let work = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", work.path().join("r.db").display());
    let server = Server::start(&db, work.path()).await;
    let token = server.admin(&["enroll-token", "create", "--label", "first", "--max-uses", "5"]).await;
    let api = server.admin(&["user", "token", "--username", "admin"]).await;

    // A state directory that cannot take the credential (a file is in its place): the agent
    // refuses before the server makes a machine.
    let agent = AgentDir::new("role = \"client\"\n");
    std::fs::write(agent.dir.path().join("state"), b"not a directory").unwrap();
    let out = agent.command().args(["enroll", "--server", &server.url, "--token", &token]).output().await.unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
    let machines: serde_json::Value = reqwest::Client::new()
        .get(format!("{}/api/v1/fleet/machines", server.url))
        .bearer_auth(&api)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(machines["total"], 0, "no ghost machine: {machines}");

    // host:port without a scheme.
    let agent = AgentDir::new("role = \"client\"\n");
    let bare = server.url.trim_start_matches("http://").to_owned();
    let out = agent.command().args(["enroll", "--server", &bare, "--token", &token]).output().await.unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    assert!(err.contains(&format!("https://{bare}")), "{err}");

    // A server that is not running: one error line, then a hint.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let out = agent
        .command()
        .args(["enroll", "--server", &format!("http://127.0.0.1:{closed}"), "--token", &token])
        .output()
        .await
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("rdpfleet-agent:") || l.starts_with("hint:")).collect();
    assert_eq!(lines.len(), 2, "{err}");
    assert!(lines[1].contains("is rdpfleet-server running"), "{err}");
}
