//! Running the real binaries.
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// Path of a workspace binary: `RDPFLEET_BIN_DIR`, else the target directory this test runs from
/// (cargo builds a package's binaries before its tests, and `cargo test --workspace` builds all).
pub fn bin(name: &str) -> PathBuf {
    let dir = std::env::var_os("RDPFLEET_BIN_DIR").map(PathBuf::from).unwrap_or_else(|| {
        let exe = std::env::current_exe().unwrap();
        // target/<profile>/deps/<test> → target/<profile>
        exe.parent().and_then(Path::parent).unwrap().to_owned()
    });
    let path = dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(path.exists(), "{} not found: build the workspace binaries first (cargo build --bins)", path.display());
    path
}

/// Sends `signal` (`-KILL`, `-TERM`, …) to a child process; panics if it cannot be sent.
pub fn signal(child: &Child, signal: &str) {
    let pid = child.id().expect("the process is running").to_string();
    assert!(std::process::Command::new("kill").args([signal, &pid]).status().unwrap().success(), "kill {signal} {pid}");
}

/// A running `rdpfleet-server serve` on a free loopback port.
pub struct Server {
    pub child: Child,
    pub url: String,
    pub db_url: String,
    pub dir: PathBuf,
    stderr_log: PathBuf,
    /// The environment it was started with; admin commands get it too (key paths).
    env: Vec<(String, String)>,
}

impl Server {
    /// Starts the server in `dir` (its working directory) and waits for its "listening" line.
    pub async fn start(db_url: &str, dir: &Path) -> Server {
        Self::start_with(db_url, dir, &[]).await
    }

    pub async fn start_with(db_url: &str, dir: &Path, env: &[(&str, &str)]) -> Server {
        Self::start_on(db_url, dir, env, "127.0.0.1:0").await
    }

    /// Starts on a given address (a restarted server keeps its agents' URL).
    pub async fn start_on(db_url: &str, dir: &Path, env: &[(&str, &str)], listen: &str) -> Server {
        let stderr_log = dir.join(format!("server-{}.log", uuid::Uuid::new_v4().simple()));
        let mut cmd = Command::new(bin("rdpfleet-server"));
        cmd.current_dir(dir)
            .args(["--database-url", db_url, "serve", "--listen", listen])
            .env("RDPFLEET_LOG", "info")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr_log).unwrap())
            .kill_on_drop(true);
        let mut child = cmd.spawn().unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let url = tokio::time::timeout(Duration::from_secs(60), async {
            while let Some(line) = lines.next_line().await.unwrap() {
                if let Some(url) = line.strip_prefix("rdpfleet-server listening on ") {
                    return url.trim().to_owned();
                }
            }
            panic!("server exited before listening; log: {}", std::fs::read_to_string(&stderr_log).unwrap_or_default());
        })
        .await
        .expect("server did not start within 60 s");
        // Keep draining stdout so the server never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let env = env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        Server { child, url, db_url: db_url.to_owned(), dir: dir.to_owned(), stderr_log, env }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr_log).unwrap_or_default()
    }

    /// Runs an admin command against the same database; returns stdout, panics on failure.
    pub async fn admin(&self, args: &[&str]) -> String {
        let env: Vec<(&str, &str)> = self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        admin_with(&self.db_url, &self.dir, &env, args).await
    }
}

/// `rdpfleet-server --database-url URL ARGS...`, expected to succeed; returns trimmed stdout.
pub async fn admin(db_url: &str, dir: &Path, args: &[&str]) -> String {
    admin_with(db_url, dir, &[], args).await
}

/// [`admin`] with extra environment variables.
pub async fn admin_with(db_url: &str, dir: &Path, env: &[(&str, &str)], args: &[&str]) -> String {
    let out = Command::new(bin("rdpfleet-server"))
        .current_dir(dir)
        .envs(env.iter().copied())
        .arg("--database-url")
        .arg(db_url)
        .args(args)
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "admin {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// An agent's configuration and state directory.
pub struct AgentDir {
    pub dir: tempfile::TempDir,
}

impl AgentDir {
    pub fn new(config_toml: &str) -> AgentDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("agent.toml"), config_toml).unwrap();
        AgentDir { dir }
    }

    pub fn command(&self) -> Command {
        let mut cmd = Command::new(bin("rdpfleet-agent"));
        cmd.arg("--config")
            .arg(self.dir.path().join("agent.toml"))
            .arg("--state-dir")
            .arg(self.dir.path().join("state"))
            .env("RDPFLEET_LOG", "debug")
            .kill_on_drop(true);
        cmd
    }

    pub fn credential(&self) -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(self.dir.path().join("state/credential.json")).unwrap()).unwrap()
    }
}
