//! The `rdpfleet-agent` command line.
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use rdpfleet_proto::check::{CheckResult, CheckStatus};
use rdpfleet_proto::enroll::MachineRole;
use tokio_util::sync::CancellationToken;

use crate::engine::check::CheckContext;
use crate::subjects::all_checks;

/// `println!` that never panics: a closed pipe (`| head`) ends the output quietly.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}
use crate::config::{AgentConfig, default_config_path};
use crate::credential::Credential;
use crate::enrollment::Enrollment;

#[derive(Debug, Parser)]
#[command(name = "rdpfleet-agent", version, about = "rdpfleet agent: RDP checks, reports and fixes")]
pub struct Cli {
    /// Agent configuration (TOML). Default: /etc/rdpfleet/agent.toml (Linux),
    /// C:\ProgramData\rdpfleet\agent.toml (Windows); also RDPFLEET_AGENT_CONFIG.
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,
    /// State directory (credential, report sequence), overriding the configuration.
    #[arg(long, global = true)]
    pub state_dir: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Enroll this machine with a server, storing the agent credential in the state directory.
    Enroll {
        /// Server URL, e.g. https://rdpfleet.corp.example
        #[arg(long)]
        server: String,
        /// Enrollment token (or RDPFLEET_ENROLL_TOKEN, which keeps it out of the process list).
        #[arg(long)]
        token: Option<String>,
        /// Name to enroll under (default: this machine's hostname).
        #[arg(long)]
        hostname: Option<String>,
        /// Role, overriding the configuration.
        #[arg(long, value_enum)]
        role: Option<RoleArg>,
        /// Replace an existing credential.
        #[arg(long)]
        force: bool,
    },
    /// Run: checks on a schedule, reports, job polling.
    Run,
    /// Diagnose the connection path to one RDP host, layer by layer.
    Diagnose {
        /// HOST[:PORT] as the client connects to it (default port 3389).
        target: String,
        /// RD Gateway the client uses, NAME[:PORT] (default port 443).
        #[arg(long)]
        gateway: Option<String>,
        /// Print the diagnosis as JSON.
        #[arg(long)]
        json: bool,
        /// Extra trusted CAs (PEM), in addition to the configuration's.
        #[arg(long)]
        ca_bundle: Option<PathBuf>,
        /// Address the host name must resolve to.
        #[arg(long)]
        expect_address: Option<std::net::IpAddr>,
    },
    /// Event-log findings from exported .evtx files (for a machine without an agent).
    Evidence {
        /// One or more .evtx files (System, RdpCoreTS, RemoteConnectionManager, client logs).
        #[arg(long = "evtx", required = true, num_args = 1..)]
        files: Vec<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Apply or list the fixes this agent knows (locally, with backup, verification and rollback).
    #[command(subcommand)]
    Fix(FixCmd),
    /// Install, remove or run the agent as a Windows service (Linux: use the systemd unit).
    #[command(subcommand)]
    Service(ServiceCmd),
    /// Started by the agent itself during an update: restores the previous binary if the new
    /// one does not start and report in time.
    #[command(hide = true)]
    UpdateWatchdog {
        #[arg(long)]
        state_dir: PathBuf,
    },
    /// Run the checks locally and print the results; talks to no server.
    Check {
        /// Run one cycle and exit (otherwise repeat every interval).
        #[arg(long)]
        once: bool,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum FixCmd {
    /// List the fixes, with their approval and reversibility flags.
    List,
    /// Apply one fix: precondition, backup, apply, verify, automatic rollback.
    Apply {
        id: String,
        /// Parameters as a JSON object, e.g. '{"level": 2}'.
        #[arg(long, default_value = "{}")]
        params: String,
        /// Only report what would change.
        #[arg(long)]
        dry_run: bool,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum ServiceCmd {
    /// Register the service (automatic start, LocalSystem, restart on failure). The service
    /// runs with this command's --config and --state-dir.
    Install {
        #[arg(long, default_value = crate::service::DEFAULT_NAME)]
        name: String,
    },
    /// Stop and remove the service.
    Uninstall {
        #[arg(long, default_value = crate::service::DEFAULT_NAME)]
        name: String,
    },
    /// The service's entry point, started by the Service Control Manager. A configuration file
    /// that does not exist yet is written from the installer's settings (see the MSI).
    Run {
        #[arg(long, default_value = crate::service::DEFAULT_NAME)]
        name: String,
    },
    /// Delete the configuration and the state directory (credential, outbox, backups); the MSI's
    /// uninstall runs this with PURGE_STATE=1.
    PurgeState {
        /// Required: there is no undo.
        #[arg(long)]
        yes: bool,
    },
    /// Delete what agent updates left beside this binary (the binary they replaced); the MSI's
    /// uninstall runs this.
    #[command(hide = true)]
    RemoveUpdateFiles,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum RoleArg {
    Client,
    Host,
    Both,
}

impl From<RoleArg> for MachineRole {
    fn from(r: RoleArg) -> Self {
        match r {
            RoleArg::Client => MachineRole::Client,
            RoleArg::Host => MachineRole::Host,
            RoleArg::Both => MachineRole::Both,
        }
    }
}

/// Exit codes: 0 healthy / done, 1 a check found a problem, 2 could not run.
pub fn main() -> ExitCode {
    main_as(env!("CARGO_PKG_VERSION"))
}

/// [`main`] for a build that reports `version` (a semantic version) instead of the crate's.
pub fn main_as(version: &'static str) -> ExitCode {
    let _ = crate::VERSION.set(version);
    let cli = Cli::parse();
    let explicit = cli.config.clone().or_else(|| std::env::var_os("RDPFLEET_AGENT_CONFIG").map(PathBuf::from));
    let config_path = explicit.clone().unwrap_or_else(default_config_path);
    // The service's first start after an installer writes the file itself.
    let first_start = matches!(cli.command, Command::Service(ServiceCmd::Run { .. } | ServiceCmd::PurgeState { .. }));
    let mut config = match AgentConfig::load(&config_path, explicit.is_some() && !first_start) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("rdpfleet-agent: {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(dir) = cli.state_dir.clone() {
        config.state_dir = dir;
    }
    if let Command::UpdateWatchdog { state_dir } = &cli.command {
        return match crate::update::watchdog::run(state_dir) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("rdpfleet-agent: {e:#}");
                ExitCode::from(2)
            }
        };
    }
    if let Command::Service(cmd) = &cli.command {
        return match service(cmd, &cli, config, config_path) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("rdpfleet-agent: {e:#}");
                ExitCode::from(2)
            }
        };
    }
    init_tracing(None);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("rdpfleet-agent: cannot start runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Enroll { server, token, hostname, role, force } => {
                enroll(config, server, token, hostname, role, force).await
            }
            Command::Run => run(config).await,
            Command::Check { once, json } => check(config, once, json).await,
            Command::Fix(cmd) => fix(config, cmd),
            // Handled before the runtime starts: the service dispatcher blocks its thread.
            Command::Service(_) | Command::UpdateWatchdog { .. } => Ok(ExitCode::from(2)),
            Command::Evidence { files, json } => evidence(&files, json),
            Command::Diagnose { target, gateway, json, ca_bundle, expect_address } => {
                diagnose(config, &target, gateway, json, ca_bundle, expect_address).await
            }
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("rdpfleet-agent: {e:#}");
            if let Some(h) = crate::hints::hint(&e) {
                eprintln!("hint: {h}");
            }
            ExitCode::from(2)
        }
    }
}

/// Logs to stderr, or to `file` (a service has no console).
fn init_tracing(file: Option<std::fs::File>) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("RDPFLEET_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,evtx=warn"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match file {
        Some(f) => builder.with_ansi(false).with_writer(std::sync::Mutex::new(f)).init(),
        None => {
            builder.with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())).with_writer(std::io::stderr).init()
        }
    }
}

#[cfg(windows)]
fn service(cmd: &ServiceCmd, cli: &Cli, config: AgentConfig, config_path: PathBuf) -> anyhow::Result<()> {
    use crate::service::windows as svc;
    match cmd {
        ServiceCmd::Install { name } => {
            init_tracing(None);
            svc::install(name, cli.config.as_deref(), cli.state_dir.as_deref())?;
            say!("installed service {name}; start it with `sc start {name}`");
        }
        ServiceCmd::Uninstall { name } => {
            init_tracing(None);
            svc::uninstall(name)?;
            say!("removed service {name}");
        }
        ServiceCmd::Run { name } => {
            // Created protected here, so the log below lands in it; judged when the loop starts.
            // The configuration's folder first: under C:\ProgramData it would otherwise inherit
            // the right of every user to create files in it.
            let platform = crate::platform::Platform::native();
            if let Some(dir) = config_path.parent().filter(|d| !d.as_os_str().is_empty()) {
                crate::platform::state_dir::create_protected(platform.state_dir.as_ref(), dir)?;
            }
            crate::platform::state_dir::create_protected(platform.state_dir.as_ref(), &config.state_dir)?;
            let log = std::fs::OpenOptions::new().create(true).append(true).open(svc::log_path(&config))?;
            init_tracing(Some(log));
            svc::run(name, config, config_path)?;
        }
        ServiceCmd::RemoveUpdateFiles => {
            init_tracing(None);
            crate::update::remove_leftovers(&std::env::current_exe()?)?;
        }
        ServiceCmd::PurgeState { yes } => {
            init_tracing(None);
            anyhow::ensure!(*yes, "this deletes the credential, outbox and backups for good; pass --yes");
            crate::service::purge_state(&config_path, &config.state_dir)?;
            say!("deleted {} and {}", config_path.display(), config.state_dir.display());
        }
    }
    Ok(())
}

#[cfg(not(windows))]
fn service(_: &ServiceCmd, _: &Cli, _: AgentConfig, _: PathBuf) -> anyhow::Result<()> {
    anyhow::bail!(
        "Windows services exist only on Windows; on Linux install the systemd unit \
         (agent/packaging/rdpfleet-agent.service) and run `rdpfleet-agent run`"
    )
}

async fn enroll(
    config: AgentConfig,
    server: String,
    token: Option<String>,
    hostname: Option<String>,
    role: Option<RoleArg>,
    force: bool,
) -> anyhow::Result<ExitCode> {
    let token = token
        .or_else(|| std::env::var("RDPFLEET_ENROLL_TOKEN").ok())
        .context("no enrollment token: pass --token or set RDPFLEET_ENROLL_TOKEN")?;
    if !force && crate::credential::path_in(&config.state_dir).exists() {
        anyhow::bail!(
            "already enrolled ({} exists); pass --force to enroll again",
            crate::credential::path_in(&config.state_dir).display()
        );
    }
    let hostname = hostname.unwrap_or_else(crate::sysinfo::hostname);
    let role = role.map_or(config.role, MachineRole::from);
    let request = Enrollment { server, token, hostname: hostname.clone(), role };
    let credential = crate::enrollment::enroll(&config, request).await?;
    say!("enrolled as machine {} ({})", credential.machine_id, hostname);
    Ok(ExitCode::SUCCESS)
}

async fn run(config: AgentConfig) -> anyhow::Result<ExitCode> {
    let credential = Credential::load(&config.state_dir)?;
    let shutdown = CancellationToken::new();
    let signal = shutdown.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("stopping");
        signal.cancel();
    });
    crate::run_loop::run(config, credential, shutdown).await?;
    Ok(ExitCode::SUCCESS)
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        if let Ok(mut term) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

/// Exit codes: 0 nothing found, 1 findings, 2 a file could not be opened or yielded no event.
/// Records that cannot be parsed are reported on stderr; the rest still count.
fn evidence(files: &[PathBuf], json: bool) -> anyhow::Result<ExitCode> {
    let mut events = Vec::new();
    let mut reads = Vec::new();
    let mut incomplete = false;
    for path in files {
        match crate::evidence::evtx_file::read(path) {
            Ok(r) => {
                if r.events.is_empty() {
                    incomplete = true;
                }
                if r.unreadable > 0 {
                    eprintln!(
                        "rdpfleet-agent: {}: {} record(s) or chunk(s) could not be parsed, the file may be damaged ({}); {} event(s) were read",
                        path.display(),
                        r.unreadable,
                        r.first_error.as_deref().unwrap_or("?"),
                        r.events.len()
                    );
                }
                reads.push(serde_json::json!({"file": path, "events": r.events.len(), "unreadable": r.unreadable}));
                events.extend(r.events);
            }
            Err(e) => {
                incomplete = true;
                eprintln!("rdpfleet-agent: {e}");
                reads.push(serde_json::json!({"file": path, "error": e.to_string()}));
            }
        }
    }
    let ev = crate::evidence::analyse(&events);
    if json {
        say!("{}", serde_json::to_string_pretty(&serde_json::json!({"files": reads, "evidence": ev}))?);
    } else {
        say!("{} event(s) read from {} file(s)", ev.events_read, files.len());
        let relevant = ["RdpCoreTS/", "RemoteConnectionManager/", "Schannel/", "ClientActiveXCore/"];
        for (k, n) in ev.counts.iter().filter(|(k, _)| relevant.iter().any(|r| k.starts_with(r))) {
            say!("  {k:<40} {n}");
        }
        for (ip, n) in &ev.connections_from {
            say!("  connections from {ip}: {n}");
        }
        for (ip, n) in &ev.logon_failures_from {
            say!("  failed logons from {ip}: {n}");
        }
        if ev.findings.is_empty() {
            say!("no findings");
        }
        for f in &ev.findings {
            say!("{:<8} {} — {}", format!("{:?}", f.severity).to_lowercase(), f.cause, f.detail);
        }
    }
    Ok(if incomplete {
        ExitCode::from(2)
    } else if ev.findings.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn fix(config: AgentConfig, cmd: FixCmd) -> anyhow::Result<ExitCode> {
    let catalogue = crate::subjects::all_fixes(&config.xrdp);
    match cmd {
        FixCmd::List => {
            for f in &catalogue {
                let m = crate::engine::fix::info(f.as_ref());
                let (approval, irreversible) = m.map_or((false, false), |m| (m.needs_approval(), m.irreversible()));
                let flags = [(approval, "needs approval"), (irreversible, "irreversible")]
                    .iter()
                    .filter(|(on, _)| *on)
                    .map(|(_, n)| *n)
                    .collect::<Vec<_>>()
                    .join(", ");
                say!(
                    "{:<28} {}{}",
                    f.id(),
                    m.map_or("", |m| m.title),
                    if flags.is_empty() { String::new() } else { format!(" ({flags})") }
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        FixCmd::Apply { id, params, dry_run, json } => {
            let params: serde_json::Value = serde_json::from_str(&params).context("--params must be JSON")?;
            let fix = catalogue
                .iter()
                .find(|f| f.id() == id)
                .with_context(|| format!("no fix {id:?}; see `rdpfleet-agent fix list`"))?;
            let report = crate::engine::fix::run(fix.as_ref(), &crate::platform::Platform::native(), &params, dry_run);
            if json {
                say!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                say!("{}: {:?} — {}", report.fix, report.outcome, report.message);
            }
            use crate::engine::fix::FixOutcome;
            Ok(match report.outcome {
                FixOutcome::Succeeded | FixOutcome::AlreadyCompliant | FixOutcome::WouldChange => ExitCode::SUCCESS,
                FixOutcome::RolledBack | FixOutcome::Failed => ExitCode::from(1),
            })
        }
    }
}

async fn diagnose(
    mut config: AgentConfig,
    target: &str,
    gateway: Option<String>,
    json: bool,
    ca_bundle: Option<PathBuf>,
    expect_address: Option<std::net::IpAddr>,
) -> anyhow::Result<ExitCode> {
    let mut t = crate::config::Target::parse(target).map_err(|e| anyhow::anyhow!("bad target: {e}"))?;
    t.gateway = gateway;
    t.expected_address = expect_address;
    let gateway = t.gateway().map_err(|e| anyhow::anyhow!("bad gateway: {e}"))?;
    if ca_bundle.is_some() {
        config.probe.ca_bundle = ca_bundle;
    }
    let enrolled = Credential::load(&config.state_dir).ok().map(|c| c.server);
    let ctx = CheckContext::from_config(&config, enrolled)?;
    let pt = crate::probe::ProbeTarget { host: t.host, port: t.port, expected_address: t.expected_address, gateway };
    let d = crate::probe::diagnose(&pt, &ctx.probe).await;
    if json {
        say!("{}", serde_json::to_string_pretty(&d)?);
    } else {
        {
            use std::io::Write as _;
            let _ = write!(std::io::stdout(), "{}", crate::probe::render::render(&d, std::io::stdout().is_terminal()));
        }
    }
    Ok(match d.status {
        CheckStatus::Pass => ExitCode::SUCCESS,
        CheckStatus::Warn | CheckStatus::Fail => ExitCode::from(1),
        CheckStatus::Error | CheckStatus::Skipped => ExitCode::from(2),
    })
}

async fn check(config: AgentConfig, once: bool, json: bool) -> anyhow::Result<ExitCode> {
    let catalogue = all_checks();
    let enrolled = Credential::load(&config.state_dir).ok().map(|c| c.server);
    let ctx = CheckContext::from_config(&config, enrolled)?;
    loop {
        let results = crate::runner::run_all(&catalogue, &ctx, Duration::from_secs(config.check_timeout_secs)).await;
        if json {
            say!("{}", serde_json::to_string_pretty(&results)?);
        } else {
            print_table(&results, std::io::stdout().is_terminal());
        }
        if once {
            let problem = results.iter().any(|r| r.status.is_problem());
            return Ok(if problem { ExitCode::from(1) } else { ExitCode::SUCCESS });
        }
        tokio::time::sleep(Duration::from_secs(config.interval_secs)).await;
    }
}

fn print_table(results: &[CheckResult], color: bool) {
    if results.is_empty() {
        say!("no checks ran: configure [[targets]] in the agent configuration");
    }
    for line in table_lines(results, color) {
        say!("{line}");
    }
}

/// The table `check` prints: a header, then one line per result with the columns as wide as
/// their longest value (targets capped at 40), and the cause once — after the summary unless
/// the summary already names it.
fn table_lines(results: &[CheckResult], color: bool) -> Vec<String> {
    let target = |r: &CheckResult| r.target.clone().unwrap_or_else(|| "-".to_owned());
    let check_w = results.iter().map(|r| r.check.len()).max().unwrap_or(5).max(5);
    let target_w = results.iter().map(|r| target(r).chars().count()).max().unwrap_or(6).clamp(6, 40);
    let mut out = vec![format!("{:<7} {:<check_w$} {:<target_w$} SUMMARY", "STATUS", "CHECK", "TARGET")];
    for r in results {
        let status = r.status.as_str().to_uppercase();
        let status = if color {
            let code = match r.status {
                CheckStatus::Pass => "32",
                CheckStatus::Warn => "33",
                CheckStatus::Fail | CheckStatus::Error => "31",
                CheckStatus::Skipped => "90",
            };
            format!("\x1b[{code}m{status:<7}\x1b[0m")
        } else {
            format!("{status:<7}")
        };
        let cause = match r.cause.as_deref() {
            Some(c) if !r.summary.contains(c) => format!(" [{c}]"),
            _ => String::new(),
        };
        let mut t = target(r);
        if t.chars().count() > target_w {
            t = format!("{}…", t.chars().take(target_w - 1).collect::<String>());
        }
        out.push(format!("{status} {:<check_w$} {t:<target_w$} {}{cause}", r.check, r.summary));
    }
    out
}

#[cfg(test)]
mod table_tests {
    use rdpfleet_proto::check::{CheckResult, CheckStatus};

    fn result(check: &str, target: Option<&str>, summary: &str, cause: Option<&str>) -> CheckResult {
        CheckResult {
            check: check.into(),
            target: target.map(str::to_owned),
            status: if cause.is_some() { CheckStatus::Fail } else { CheckStatus::Pass },
            summary: summary.into(),
            cause: cause.map(str::to_owned),
            evidence: serde_json::Value::Null,
            observed_at: time::OffsetDateTime::UNIX_EPOCH,
            duration_ms: 1,
        }
    }

    #[test]
    fn columns_align_and_the_cause_is_printed_once() {
        let lines = super::table_lines(
            &[
                result(
                    "rdp.path",
                    Some("rdp01.corp.example:3389"),
                    "TCP fails: net.port_closed",
                    Some("net.port_closed"),
                ),
                result(
                    "client.cert_warning_override",
                    None,
                    "warnings silenced",
                    Some("client.cert_warnings_silenced"),
                ),
                result("host.nla", None, "compliant", None),
            ],
            false,
        );
        // Every line's summary starts in the same column.
        let col = lines[0].find("SUMMARY").unwrap();
        assert!(lines[1][col..].starts_with("TCP fails"), "{lines:#?}");
        assert!(lines[2][col..].starts_with("warnings silenced"), "{lines:#?}");
        assert!(lines[3][col..].starts_with("compliant"), "{lines:#?}");
        assert_eq!(lines[1].matches("net.port_closed").count(), 1, "the cause once: {}", lines[1]);
        assert!(lines[2].ends_with("[client.cert_warnings_silenced]"), "{}", lines[2]);
    }
}
