//! The agent's own footprint: one full check cycle (`check --once`: every check of a host that is
//! also a client, against a real loopback xrdp) — peak RSS and CPU time of the process, measured
//! by the kernel (wait4's rusage) — and the size of the release binary.
//!
//! Run: `cargo bench -p rdpfleet-agent --bench footprint` (needs xrdp).
#![allow(clippy::unwrap_used)]

#[cfg(unix)]
use std::process::{Command, Stdio};

#[cfg(unix)]
use rdpfleet_e2e::certs::TestCa;
#[cfg(unix)]
use rdpfleet_e2e::rdp_servers::{XrdpCert, available, xrdp};

#[cfg(unix)]
const RUNS: usize = 15;

#[cfg(unix)]
#[allow(unsafe_code, clippy::zombie_processes)] // wait4 reaps it, with the rusage std does not expose.
fn run_measured(cmd: &mut Command) -> (i32, f64, f64) {
    let child = cmd.stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(r, pid);
    let cpu_ms = (usage.ru_utime.tv_sec as f64 + usage.ru_stime.tv_sec as f64) * 1000.0
        + (usage.ru_utime.tv_usec as f64 + usage.ru_stime.tv_usec as f64) / 1000.0;
    let rss_mb = usage.ru_maxrss as f64 / 1024.0;
    (libc::WEXITSTATUS(status), cpu_ms, rss_mb)
}

#[cfg(not(unix))]
fn main() {
    println!("the footprint benchmark runs on Linux (it reads the kernel's rusage of the agent)");
}

#[cfg(unix)]
fn main() {
    if !available("xrdp") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let bundle = ca.write_bundle(dir.path());
    let cert = ca.issue(dir.path(), "host", &["localhost"], -1, 365);
    let server = xrdp(dir.path(), "tls", XrdpCert::Files(&cert));
    let config = dir.path().join("agent.toml");
    std::fs::write(
        &config,
        format!(
            "role = \"both\"\nstate_dir = \"{}\"\n[probe]\nplatform_roots = false\nca_bundle = \"{}\"\n\
             [xrdp]\nini = \"{}\"\nnames = [\"localhost\"]\n[[targets]]\nhost = \"localhost\"\nport = {}\n",
            dir.path().join("state").display(),
            bundle.display(),
            server.config.as_ref().unwrap().display(),
            server.port
        ),
    )
    .unwrap();
    let bin = env!("CARGO_BIN_EXE_rdpfleet-agent");
    let mut cpu = Vec::new();
    let mut rss = Vec::new();
    for _ in 0..RUNS {
        let (code, c, r) =
            run_measured(Command::new(bin).arg("--config").arg(&config).args(["check", "--once", "--json"]));
        assert!(code == 0 || code == 1, "check --once exited {code}");
        cpu.push(c);
        rss.push(r);
    }
    cpu.sort_by(f64::total_cmp);
    rss.sort_by(f64::total_cmp);
    let size = std::fs::metadata(bin).unwrap().len() as f64 / (1024.0 * 1024.0);
    println!("agent footprint, one full check cycle (host + client checks, one real xrdp target), {RUNS} runs:");
    println!("  CPU per cycle   median {:.1} ms, max {:.1} ms   (target < 200 ms)", cpu[RUNS / 2], cpu[RUNS - 1]);
    println!("  peak RSS        median {:.1} MB, max {:.1} MB   (target < 15 MB)", rss[RUNS / 2], rss[RUNS - 1]);
    println!("  binary          {size:.1} MB ({bin})   (target < 15 MB)");
}
