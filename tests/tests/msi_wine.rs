//! The agent's MSI under Wine's real msiexec, against a real server on loopback: a silent
//! install with properties registers and starts the service, which writes its configuration,
//! enrolls and reports; a newer MSI upgrades it in place keeping its identity; uninstall removes
//! the service and the binary and keeps the state unless PURGE_STATE=1.
//!
//! The MSI-installed service also updates itself from a signed release through an approved
//! rollout (`RDPFLEET_WINDOWS_AGENT_NEXT=…/rdpfleet-agent-next.exe`, the agent stamped with the
//! next version): the running binary is swapped and the watchdog restarts the service.
//!
//! Needs the cross-built agent (`RDPFLEET_WINDOWS_AGENT=…/rdpfleet-agent.exe`), Wine, wixl and
//! mingw-w64; `.ci/run` runs it after the Windows build. Without the agent it is skipped, unless
//! `RDPFLEET_REQUIRE_WINE=1`.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use rdpfleet_e2e::TestDb;
use rdpfleet_e2e::http::call;
use rdpfleet_e2e::procs::Server;
use serde_json::Value;

const SERVICE: &str = "rdpfleet-agent";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_owned()
}

fn windows_agent() -> Option<PathBuf> {
    match std::env::var_os("RDPFLEET_WINDOWS_AGENT") {
        Some(p) => Some(PathBuf::from(p)),
        None if std::env::var_os("RDPFLEET_REQUIRE_WINE").is_some() => {
            panic!("RDPFLEET_REQUIRE_WINE is set but RDPFLEET_WINDOWS_AGENT names no agent executable")
        }
        None => {
            eprintln!("skipped: set RDPFLEET_WINDOWS_AGENT to the cross-built rdpfleet-agent.exe");
            None
        }
    }
}

/// A Wine prefix of its own, whose wineserver stays up between commands (the service lives in
/// it) and is stopped at the end.
struct Wine {
    prefix: tempfile::TempDir,
}

impl Wine {
    fn new() -> Wine {
        let prefix = tempfile::tempdir().unwrap();
        let wine = Wine { prefix };
        let out = wine.output(Command::new("bash").arg(repo().join(".ci/wine/prefix.sh")).arg(wine.prefix.path()));
        assert!(out.status.success(), "prefix: {}", String::from_utf8_lossy(&out.stderr));
        // The prefix's first server is on its way out: wait, then start one that stays.
        assert!(wine.command("wineserver").arg("-w").status().unwrap().success());
        let out = wine.output(wine.command("wineserver").arg("-p"));
        assert!(out.status.success(), "wineserver -p: {}", String::from_utf8_lossy(&out.stderr));
        wine
    }

    fn command(&self, program: &str) -> Command {
        let mut c = Command::new(program);
        c.env("WINEPREFIX", self.prefix.path()).env("WINEDEBUG", "-all");
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.output(self.command("wine").args(args))
    }

    /// Like `Command::output`, through files: processes Wine starts in the background (the
    /// wineserver, services.exe, the service) inherit the handles, and a pipe would never close.
    fn output(&self, cmd: &mut Command) -> Output {
        let out = tempfile::NamedTempFile::new().unwrap();
        let err = tempfile::NamedTempFile::new().unwrap();
        let status = cmd.stdout(out.reopen().unwrap()).stderr(err.reopen().unwrap()).status().unwrap();
        Output { status, stdout: std::fs::read(out.path()).unwrap(), stderr: std::fs::read(err.path()).unwrap() }
    }

    fn c_drive(&self, path: &str) -> PathBuf {
        self.prefix.path().join("drive_c").join(path)
    }

    /// msiexec with a verbose log; returns the log's text.
    fn msiexec(&self, args: &[&str]) -> String {
        let log = self.c_drive("msi.log");
        let _ = std::fs::remove_file(&log);
        let mut all: Vec<&str> = vec!["msiexec"];
        all.extend(args);
        all.extend(["/qn", "/l*v", r"C:\msi.log"]);
        let out = self.run(&all);
        let text = read_log(&log);
        assert!(out.status.success(), "msiexec {args:?}: {}\n{text}", String::from_utf8_lossy(&out.stderr));
        text
    }

    /// `sc query`'s state word (RUNNING, STOPPED…), or None when there is no such service.
    fn service_state(&self) -> Option<String> {
        let out = self.run(&["sc", "query", SERVICE]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let line = text.lines().find(|l| l.trim_start().starts_with("STATE"))?;
        line.split_whitespace().last().map(str::to_owned)
    }

    fn wait_for_service(&self, want: Option<&str>) {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let now = self.service_state();
            if now.as_deref() == want {
                return;
            }
            assert!(Instant::now() < deadline, "service is {now:?}, expected {want:?}");
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    fn registry_value(&self, key: &str, name: &str) -> Option<String> {
        let out = self.run(&["reg", "query", key, "/v", name]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.lines().find(|l| l.trim_start().starts_with(name)).map(|l| l.trim().to_owned())
    }

    fn machine_id(&self) -> Option<String> {
        let text = std::fs::read_to_string(self.c_drive("ProgramData/rdpfleet/agent/credential.json")).ok()?;
        let v: Value = serde_json::from_str(&text).ok()?;
        v["machine_id"].as_str().map(str::to_owned)
    }
}

impl Drop for Wine {
    fn drop(&mut self) {
        let _ = self.command("wineserver").arg("-k").status();
    }
}

fn read_log(path: &Path) -> String {
    String::from_utf8_lossy(&std::fs::read(path).unwrap_or_default()).into_owned()
}

fn build_msi(exe: &Path, out: &Path, version: &str) -> String {
    let o =
        Command::new("bash").arg(repo().join("packaging/msi/build.sh")).args([exe, out]).arg(version).output().unwrap();
    assert!(o.status.success(), "build.sh: {}", String::from_utf8_lossy(&o.stderr));
    // msiexec takes a Windows path: Wine maps Z: to /.
    format!("Z:{}", String::from_utf8(o.stdout).unwrap().trim().replace('/', "\\"))
}

/// The reports the server stored for a machine.
async fn reports(server: &Server, api: &str, machine: &str) -> Option<i64> {
    let (status, m) = call("GET", &format!("{}/api/v1/machines/{machine}", server.url), api, None).await;
    (status == 200).then(|| m["reports_received"].as_i64()).flatten()
}

async fn machine_count(server: &Server, api: &str) -> i64 {
    let (status, body) = call("GET", &format!("{}/api/v1/machines", server.url), api, None).await;
    assert_eq!(status, 200, "{body}");
    i64::try_from(body.as_array().unwrap().len()).unwrap()
}

/// An `agent.update` rollout of the MSI-installed service to `next` (version `version`).
async fn self_update(server: &Server, api: &str, machine: &str, next: &Path, version: &str, wine: &Wine) {
    let file = next.display().to_string();
    server.admin(&["release", "add", &file, "--version", version, "--platform", "windows-x86_64"]).await;
    server.admin(&["user", "create", "--username", "approver", "--role", "admin"]).await;
    let approver = server.admin(&["user", "token", "--username", "approver"]).await;
    let body = serde_json::json!({"fix": "agent.update", "params": {"version": version, "health_gate_mins": 5},
                                  "machines": [machine], "canary": 1});
    let (s, r) = call("POST", &format!("{}/api/v1/rollouts", server.url), api, Some(body)).await;
    assert_eq!(s, 201, "{r}");
    let id = r["rollout"]["id"].as_str().unwrap().to_owned();
    let (s, r) = call("POST", &format!("{}/api/v1/rollouts/{id}/approve", server.url), &approver, None).await;
    assert_eq!(s, 200, "{r}");
    let (s, r) = call("POST", &format!("{}/api/v1/rollouts/{id}/start", server.url), api, None).await;
    assert_eq!(s, 200, "{r}");
    let url = format!("{}/api/v1/rollouts/{id}", server.url);
    let r = rdpfleet_e2e::http::until(300, "the update rollout to end", || async {
        let (_, r) = call("GET", &url, api, None).await;
        matches!(r["rollout"]["state"].as_str(), Some("completed" | "halted")).then_some(r)
    })
    .await;
    let log = std::fs::read_to_string(wine.c_drive("ProgramData/rdpfleet/agent/agent.log")).unwrap_or_default();
    assert_eq!(r["rollout"]["state"], "completed", "{r}\n{log}");
    let (_, m) = call("GET", &format!("{}/api/v1/machines/{machine}", server.url), api, None).await;
    assert_eq!(m["agent_version"], version, "the service reports the new version: {m}");
    let installed = std::fs::read(wine.c_drive("Program Files/rdpfleet/rdpfleet-agent.exe")).unwrap();
    assert_eq!(installed, std::fs::read(next).unwrap(), "the new binary is in place");
    assert!(wine.c_drive("Program Files/rdpfleet/rdpfleet-agent.exe.previous").exists(), "the old one kept aside");
    wine.wait_for_service(Some("RUNNING"));
}

#[tokio::test(flavor = "multi_thread")]
async fn msi_install_enroll_upgrade_uninstall_under_wine() {
    let Some(exe) = windows_agent() else { return };
    let db = TestDb::sqlite();
    let work = tempfile::tempdir().unwrap();
    let server = Server::start(db.url(), work.path()).await;
    let token = server.admin(&["enroll-token", "create", "--label", "msi", "--max-uses", "1"]).await;
    let api = server.admin(&["user", "token", "--username", "admin"]).await;

    let version = env!("CARGO_PKG_VERSION");
    let mut parts: Vec<u32> = version.split('.').map(|p| p.parse().unwrap()).collect();
    parts[2] += 1;
    let newer = format!("{}.{}.{}", parts[0], parts[1], parts[2]);
    let msis = work.path().join("msi");
    let (msi_a, msi_b) = (build_msi(&exe, &msis, version), build_msi(&exe, &msis, &newer));

    let wine = Wine::new();
    let log = wine.msiexec(&[
        "/i",
        &msi_a,
        &format!("SERVER_URL={}", server.url),
        &format!("ENROLL_TOKEN={token}"),
        "ROLE=host",
        "SITE=lab",
        "LABELS=msi, wine",
    ]);
    // Windows Installer keeps a property named in MsiHiddenProperties out of its log; Wine's
    // msi.dll logs it anyway, so here the package's table is what can be checked.
    assert!(log.contains("MsiHiddenProperties = ENROLL_TOKEN"), "the token is marked hidden");
    assert!(wine.c_drive("Program Files/rdpfleet/rdpfleet-agent.exe").exists(), "installed to Program Files");
    wine.wait_for_service(Some("RUNNING"));

    // The service wrote its configuration, enrolled and reports.
    let machine =
        rdpfleet_e2e::http::until(120, "the MSI-installed agent enrolls", || async { wine.machine_id() }).await;
    let first = rdpfleet_e2e::http::until(120, "the agent reports", || async {
        reports(&server, &api, &machine).await.filter(|s| *s > 0)
    })
    .await;
    let (_, m) = call("GET", &format!("{}/api/v1/machines/{machine}", server.url), &api, None).await;
    assert_eq!((m["role"].as_str(), m["site"].as_str()), (Some("host"), Some("lab")), "{m}");
    let config = std::fs::read_to_string(wine.c_drive("ProgramData/rdpfleet/agent.toml")).unwrap();
    assert!(config.contains("role = \"host\"") && config.contains("\"wine\""), "{config}");
    assert!(!config.contains(&token), "no token in the configuration");
    let key = r"HKLM\SOFTWARE\rdpfleet\Install";
    assert_eq!(wine.registry_value(key, "EnrollToken").filter(|v| v.contains(&token)), None, "token left the registry");
    assert!(!wine.c_drive("ProgramData/rdpfleet/agent/pending-enrollment.json").exists(), "token deleted after use");

    // A newer build upgrades in place: same machine, reporting again.
    wine.msiexec(&["/i", &msi_b]);
    wine.wait_for_service(Some("RUNNING"));
    assert_eq!(wine.machine_id().as_deref(), Some(machine.as_str()), "the credential survived the upgrade");
    rdpfleet_e2e::http::until(120, "the upgraded agent reports", || async {
        reports(&server, &api, &machine).await.filter(|s| *s > first)
    })
    .await;
    assert_eq!(machine_count(&server, &api).await, 1, "one machine, not a second enrollment");
    let products = wine.run(&["reg", "query", r"HKLM\Software\Microsoft\Windows\CurrentVersion\Uninstall", "/s"]);
    let products = String::from_utf8_lossy(&products.stdout).into_owned();
    assert!(products.contains(&newer), "the newer version is installed: {products}");

    // The service updates itself from a signed release through an approved rollout: the running
    // binary is swapped and the service restarted by the watchdog through the SCM.
    if let Some(next) = std::env::var_os("RDPFLEET_WINDOWS_AGENT_NEXT").map(PathBuf::from) {
        self_update(&server, &api, &machine, &next, &newer, &wine).await;
    } else if std::env::var_os("RDPFLEET_REQUIRE_WINE").is_some() {
        panic!("RDPFLEET_REQUIRE_WINE is set but RDPFLEET_WINDOWS_AGENT_NEXT names no rdpfleet-agent-next.exe");
    }

    // Uninstall: no service, no binary (nor what an update left); the state stays for a reinstall.
    wine.msiexec(&["/x", &msi_b]);
    wine.wait_for_service(None);
    let left: Vec<String> = std::fs::read_dir(wine.c_drive("Program Files/rdpfleet"))
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "the binaries are removed: {left:?}");
    assert_eq!(wine.machine_id().as_deref(), Some(machine.as_str()), "state kept by default");

    // Reinstalled without a token it is the same machine; PURGE_STATE=1 removes everything.
    wine.msiexec(&["/i", &msi_b, &format!("SERVER_URL={}", server.url)]);
    wine.wait_for_service(Some("RUNNING"));
    assert_eq!(wine.machine_id().as_deref(), Some(machine.as_str()));
    wine.msiexec(&["/x", &msi_b, "PURGE_STATE=1"]);
    wine.wait_for_service(None);
    assert!(!wine.c_drive("ProgramData/rdpfleet").exists(), "PURGE_STATE=1 removes configuration and state");
    assert!(!wine.c_drive("Program Files/rdpfleet/rdpfleet-agent.exe").exists());
}
