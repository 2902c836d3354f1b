//! Real RDP servers on loopback for the probe tests: xrdp (Debian package `xrdp`) and FreeRDP's
//! shadow server (`freerdp2-shadow-x11`, with `xvfb` and `winpr-utils`).
//!
//! When a server is not installed the test prints why it is skipped and passes, unless
//! `RDPFLEET_REQUIRE_RDP=1` (set by `.ci/run`), which makes it fail.
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::certs::Issued;

/// Whether `program` can run here; prints the reason to skip otherwise.
pub fn available(program: &str) -> bool {
    let found = ["/usr/sbin", "/usr/bin", "/sbin", "/bin"].iter().any(|d| Path::new(d).join(program).exists());
    if !found {
        if std::env::var("RDPFLEET_REQUIRE_RDP").is_ok_and(|v| v == "1") {
            panic!("{program} is required (RDPFLEET_REQUIRE_RDP=1) but not installed");
        }
        eprintln!("SKIPPED: {program} is not installed (apt-get install xrdp freerdp2-shadow-x11 xvfb winpr-utils)");
    }
    found
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Waits until something accepts on the port (bounded), polling rather than sleeping blindly.
fn wait_listening(ip: &str, port: u16, child: &mut Child, log: &Path) {
    if let Err(e) = try_wait_listening(ip, port, child, log) {
        panic!("{e}");
    }
}

fn try_wait_listening(ip: &str, port: u16, child: &mut Child, log: &Path) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if std::net::TcpStream::connect((ip, port)).is_ok() {
            return Ok(());
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!(
                "server exited ({status}) before listening: {}",
                std::fs::read_to_string(log).unwrap_or_default()
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("server did not listen on {port} within 20 s: {}", std::fs::read_to_string(log).unwrap_or_default());
}

pub struct Server {
    pub port: u16,
    /// The server's configuration file (xrdp.ini), when it has one.
    pub config: Option<PathBuf>,
    children: Vec<Child>,
}

impl Drop for Server {
    fn drop(&mut self) {
        for c in self.children.iter_mut().rev() {
            // SIGTERM first: Xvfb killed outright leaves its socket behind, and the next Xvfb
            // given that display number then cannot listen.
            let _ = Command::new("kill").args(["-TERM", &c.id().to_string()]).status();
            let deadline = Instant::now() + Duration::from_secs(2);
            while Instant::now() < deadline && matches!(c.try_wait(), Ok(None)) {
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Removes X sockets that no running server owns (no lock file): left by an Xvfb that was
/// killed outright, they make a new Xvfb on that display fail to listen.
fn remove_stale_x_sockets() {
    let Ok(entries) = std::fs::read_dir("/tmp/.X11-unix") else { return };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if let Some(n) = name.strip_prefix('X') {
            if n.parse::<u32>().is_ok() && !Path::new(&format!("/tmp/.X{n}-lock")).exists() {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
}

impl Server {
    pub fn stop(self) {}
}

/// Where an xrdp listener takes its certificate from.
pub enum XrdpCert<'a> {
    Files(&'a Issued),
    /// Paths that do not exist: xrdp in TLS mode then answers SSL_CERT_NOT_ON_SERVER.
    Missing,
}

/// xrdp with `security_layer` = `tls`, `negotiate` or `rdp`.
pub fn xrdp(dir: &Path, security_layer: &str, cert: XrdpCert<'_>) -> Server {
    xrdp_at(dir, "127.0.0.1", security_layer, cert)
}

/// xrdp on a given loopback address (127.0.0.2, 127.0.0.3...: several "hosts" on one machine).
pub fn xrdp_at(dir: &Path, ip: &str, security_layer: &str, cert: XrdpCert<'_>) -> Server {
    let port = free_port();
    let template = std::fs::read_to_string("/etc/xrdp/xrdp.ini").expect("/etc/xrdp/xrdp.ini");
    let (cert_path, key_path): (PathBuf, PathBuf) = match cert {
        XrdpCert::Files(i) => (i.cert.clone(), i.key.clone()),
        XrdpCert::Missing => (dir.join("absent.crt"), dir.join("absent.key")),
    };
    let log = dir.join(format!("xrdp-{port}.log"));
    let mut section = String::new();
    let mut ini = String::new();
    for line in template.lines() {
        if line.starts_with('[') {
            section = line.to_owned();
        }
        let key = line.split('=').next().unwrap_or("");
        let replaced = match (section.as_str(), key) {
            ("[Globals]", "port") => format!("port=tcp://{ip}:{port}"),
            ("[Globals]", "security_layer") => format!("security_layer={security_layer}"),
            ("[Globals]", "certificate") => format!("certificate={}", cert_path.display()),
            ("[Globals]", "key_file") => format!("key_file={}", key_path.display()),
            ("[Logging]", "LogFile") => format!("LogFile={}", log.display()),
            ("[Logging]", "EnableSyslog") => "EnableSyslog=false".to_owned(),
            _ => line.to_owned(),
        };
        ini.push_str(&replaced);
        ini.push('\n');
    }
    let ini_path = dir.join(format!("xrdp-{port}.ini"));
    std::fs::write(&ini_path, ini).unwrap();
    let out = std::fs::File::create(dir.join(format!("xrdp-{port}.out"))).unwrap();
    let mut child = Command::new("xrdp")
        .args(["--nodaemon", "--config"])
        .arg(&ini_path)
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .expect("start xrdp");
    wait_listening(ip, port, &mut child, &log);
    Server { port, config: Some(ini_path), children: vec![child] }
}

/// FreeRDP's shadow server with `/sec:nla` or `/sec:rdp`, on its own Xvfb display.
pub fn shadow(dir: &Path, sec: &str, cert: &Issued) -> Server {
    // Xvfb displays are picked concurrently by parallel tests; a shadow server that starts while
    // its display is still coming up exits at once. Start the pair again in that case.
    let mut last = String::new();
    for _ in 0..3 {
        match try_shadow(dir, sec, cert) {
            Ok(s) => return s,
            Err(e) => last = e,
        }
    }
    panic!("{last}");
}

fn try_shadow(dir: &Path, sec: &str, cert: &Issued) -> Result<Server, String> {
    remove_stale_x_sockets();
    let port = free_port();
    let home = dir.join(format!("shadow-home-{port}"));
    let cfg = home.join(".config/freerdp/shadow");
    std::fs::create_dir_all(&cfg).unwrap();
    std::fs::copy(&cert.cert, cfg.join("shadow.crt")).unwrap();
    std::fs::copy(&cert.key, cfg.join("shadow.key")).unwrap();
    let sam = dir.join(format!("sam-{port}"));
    let hash = Command::new("winpr-hash")
        .args(["-u", "rdpfleet", "-p", "not-a-secret", "-f", "sam"])
        .output()
        .expect("winpr-hash");
    std::fs::write(&sam, hash.stdout).unwrap();
    // -displayfd prints the display number Xvfb picked, so parallel tests never collide.
    let mut xvfb = Command::new("Xvfb")
        .args(["-displayfd", "1", "-nolisten", "tcp", "-screen", "0", "800x600x24"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start Xvfb");
    let mut display = String::new();
    {
        use std::io::BufRead;
        let stdout = xvfb.stdout.take().unwrap();
        std::io::BufReader::new(stdout).read_line(&mut display).unwrap();
    }
    let display_no = display.trim().to_owned();
    let display = format!(":{display_no}");
    // Ready when its socket accepts connections.
    #[cfg(unix)]
    {
        let socket = format!("/tmp/.X11-unix/X{display_no}");
        let ready = Instant::now() + Duration::from_secs(10);
        while std::os::unix::net::UnixStream::connect(&socket).is_err() && Instant::now() < ready {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let log = dir.join(format!("shadow-{port}.log"));
    let out = std::fs::File::create(&log).unwrap();
    let child = Command::new("freerdp-shadow-cli")
        .arg(format!("/port:{port}"))
        .arg("/bind-address:127.0.0.1")
        .arg(format!("/sec:{sec}"))
        .arg("+auth")
        .arg(format!("/sam-file:{}", sam.display()))
        .env("HOME", &home)
        .env("DISPLAY", &display)
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .expect("start freerdp-shadow-cli");
    let mut server = Server { port, config: None, children: vec![xvfb, child] };
    let waited = try_wait_listening("127.0.0.1", port, &mut server.children[1], &log);
    waited.map(|()| server)
}
