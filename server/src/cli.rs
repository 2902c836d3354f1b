//! The `rdpfleet-server` command line: `serve` and the admin commands.
use std::io::{BufRead, IsTerminal};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use rdpfleet_proto::release::Platform;
use uuid::Uuid;

use crate::config::{FlagOverrides, LogFormat, Settings, redact_url};
use crate::domain::users::{Role, TokenScope};
use crate::secrets::{TokenKind, hash_password, new_password, new_token, token_hash};
use crate::services::accounts::{Actor, Delivery};
use crate::store::audit::{ActorKind, AuditKey, NewAuditEntry};
use crate::store::enrollment::NewEnrollmentToken;
use crate::store::signing_keys::{KeyCheck, KeyPurpose};
use crate::store::users::{AccountChange, ChangeOutcome, NewApiToken};
use crate::store::{Store, now_ms, time_of};
use crate::webhook::Notifier;

#[derive(Debug, Parser)]
#[command(name = "rdpfleet-server", version, about = "rdpfleet server: agent API, storage, dashboard")]
pub struct Cli {
    /// TOML configuration file (also RDPFLEET_CONFIG).
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,
    /// Database URL, overriding the file and RDPFLEET_DATABASE_URL.
    #[arg(long, global = true)]
    pub database_url: Option<String>,
    /// Address to serve on (serve is the default command), e.g. 0.0.0.0:8080.
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (the default).
    Serve {
        /// Address to listen on, e.g. 0.0.0.0:8080 (port 0 picks a free port).
        #[arg(long)]
        listen: Option<SocketAddr>,
    },
    /// Seed a realistic generated fleet into an empty database, then serve it with a few
    /// machines changing now and then (for a first look; never point it at production data).
    Demo {
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// Machines to generate.
        #[arg(long, default_value_t = 600, value_parser = clap::value_parser!(u64).range(10..=500_000))]
        machines: u64,
    },
    /// Manage users.
    #[command(subcommand)]
    User(UserCmd),
    /// Manage enrollment tokens.
    #[command(subcommand)]
    EnrollToken(EnrollTokenCmd),
    /// Manage enrolled agents.
    #[command(subcommand)]
    Agent(AgentCmd),
    /// The audit log.
    #[command(subcommand)]
    Audit(AuditCmd),
    /// Agent releases that `agent.update` rollouts install.
    #[command(subcommand)]
    Release(ReleaseCmd),
    /// Create the job-signing, audit and release key files if they do not exist (mode 0600) and print
    /// the signing key's public half; for deployments where several replicas share the keys.
    /// `signing-key rotate` replaces the signing key.
    SigningKey {
        #[command(subcommand)]
        action: Option<SigningKeyCmd>,
    },
}

#[derive(Debug, Subcommand)]
pub enum ReleaseCmd {
    /// Store an agent binary with its SHA-256 and a signature by the release key
    /// (`release_key_path`, created on first use). Agents install only releases signed by the
    /// release key they pinned at enrollment.
    Add {
        /// The agent executable (rdpfleet-agent or rdpfleet-agent.exe).
        file: PathBuf,
        /// Its version as it reports it (semantic version, e.g. 0.2.0).
        #[arg(long)]
        version: String,
        #[arg(long, value_parser = ["windows-x86_64", "linux-x86_64"])]
        platform: String,
    },
    /// List the releases.
    List,
    /// Replace the release key: agents follow a rotation statement signed by the old key, and
    /// every stored release is re-signed with the new one. Restart every replica afterwards.
    RotateKey,
}

#[derive(Debug, Subcommand)]
pub enum SigningKeyCmd {
    /// Make a new job-signing key and a rotation statement signed by the current one. Agents
    /// check the statement with the key they pinned, pin the new key and accept the old one for
    /// the grace period. Restart every replica (sharing the new key file) within it.
    Rotate {
        /// Days agents keep accepting jobs signed by the old key.
        #[arg(long, default_value_t = 14, value_parser = clap::value_parser!(i64).range(1..=365))]
        grace_days: i64,
    },
}

#[derive(Debug, Subcommand)]
pub enum AuditCmd {
    /// Check the keyed hash chain and every signed checkpoint; exit 0 when all agree, 1 naming
    /// the first entry (or range of entries) that does not.
    Verify {
        /// Checkpoint file (default: `audit_checkpoint_path`); give copies kept elsewhere too.
        #[arg(long)]
        checkpoints: Vec<PathBuf>,
    },
    /// Write a signed checkpoint of the chain now (the server writes one every
    /// `audit_checkpoint_secs` while the chain moves).
    Checkpoint,
    /// Print the public key that checkpoints are signed with (give it to whoever keeps copies).
    CheckpointKey,
}

#[derive(Debug, Subcommand)]
pub enum UserCmd {
    /// Create a user. The password is read from stdin with --password-stdin, else generated and printed once.
    Create {
        #[arg(long)]
        username: String,
        #[arg(long, value_enum)]
        role: RoleArg,
        #[arg(long)]
        password_stdin: bool,
    },
    /// Create a personal API token for the JSON API; printed once.
    Token {
        #[arg(long)]
        username: String,
        #[arg(long, default_value = "cli")]
        label: String,
        /// `read` tokens only read, whatever the user's role; `operate` tokens act with it.
        #[arg(long, value_enum, default_value_t = ScopeArg::Operate)]
        scope: ScopeArg,
        /// Days until the token expires (default: it does not).
        #[arg(long, value_parser = clap::value_parser!(i64).range(1..=crate::services::accounts::MAX_TOKEN_DAYS))]
        expires_in_days: Option<i64>,
    },
    /// List users.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Disable a user: their sessions end and their API tokens are revoked at once.
    Disable {
        #[arg(long)]
        username: String,
    },
    /// Enable a disabled user (their old sessions and tokens stay ended).
    Enable {
        #[arg(long)]
        username: String,
    },
    /// Change a user's role; their sessions end and their API tokens are revoked.
    SetRole {
        #[arg(long)]
        username: String,
        #[arg(long, value_enum)]
        role: RoleArg,
    },
    /// Delete a user: sessions and tokens end; the name stays taken so the audit log stays clear.
    Delete {
        #[arg(long)]
        username: String,
    },
    /// List a user's API tokens (never their secrets).
    Tokens {
        #[arg(long)]
        username: String,
        #[arg(long)]
        json: bool,
    },
    /// Revoke an API token by id.
    RevokeToken { id: Uuid },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ScopeArg {
    Read,
    Operate,
}

impl From<ScopeArg> for TokenScope {
    fn from(s: ScopeArg) -> TokenScope {
        match s {
            ScopeArg::Read => TokenScope::Read,
            ScopeArg::Operate => TokenScope::Operate,
        }
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum RoleArg {
    Viewer,
    Operator,
    Admin,
}

impl From<RoleArg> for Role {
    fn from(r: RoleArg) -> Role {
        match r {
            RoleArg::Viewer => Role::Viewer,
            RoleArg::Operator => Role::Operator,
            RoleArg::Admin => Role::Admin,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum EnrollTokenCmd {
    /// Create a token; it is printed once on stdout.
    Create {
        #[arg(long)]
        label: String,
        /// Hours until it expires.
        #[arg(long, default_value_t = 72, value_parser = clap::value_parser!(u64).range(1..=24 * 365))]
        expires_in_hours: u64,
        /// How many machines may enroll with it.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(i64).range(1..=1_000_000))]
        max_uses: i64,
    },
    /// List tokens (never their secrets).
    List {
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token by id.
    Revoke { id: Uuid },
}

#[derive(Debug, Subcommand)]
pub enum AgentCmd {
    /// List enrolled machines.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Revoke every credential of a machine; its agent gets 401 from then on.
    Revoke { machine_id: Uuid },
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let listen = match (&cli.command, cli.listen) {
        (None, top) => top,
        (Some(Command::Serve { listen } | Command::Demo { listen, .. }), top) => listen.or(top),
        (Some(_), Some(_)) => {
            eprintln!("error: --listen is for serving (rdpfleet-server --listen ADDR, or serve / demo --listen ADDR)");
            return ExitCode::from(2);
        }
        (Some(_), None) => None,
    };
    // The demo gets its own database unless one is named.
    let database_url = cli.database_url.clone().or_else(|| {
        (matches!(cli.command, Some(Command::Demo { .. })) && std::env::var_os("RDPFLEET_DATABASE_URL").is_none())
            .then(|| "sqlite://rdpfleet-demo.db".to_owned())
    });
    let config = cli.config.clone().or_else(|| std::env::var_os("RDPFLEET_CONFIG").map(PathBuf::from));
    let settings = match Settings::load(config.as_deref(), &FlagOverrides { listen, database_url }) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("rdpfleet-server: {e}");
            return ExitCode::from(2);
        }
    };
    init_tracing(settings.log_format);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("rdpfleet-server: cannot start runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command.unwrap_or(Command::Serve { listen: None }), settings)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rdpfleet-server: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("RDPFLEET_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn,tower_http=info"));
    // Colours only on a terminal: journald, files and log shippers get plain text.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

async fn run(command: Command, settings: Settings) -> anyhow::Result<()> {
    if let Command::SigningKey { action: None } = command {
        let key = crate::signing::load_or_create(&settings.signing_key_path)?;
        // Replicas share the audit and release keys as they share the signing key: made here too.
        crate::signing::load_or_create_secret(&settings.audit_key_path)?;
        crate::signing::load_or_create(&settings.release_key_path)?;
        println!("{}", crate::signing::public_key_base64(&key));
        return Ok(());
    }
    let store = Store::connect(&settings.database_url)
        .await
        .with_context(|| format!("cannot open database {}", redact_url(&settings.database_url)))?;
    let key = audit_key(&settings, &store, &command).await?;
    let store = store.with_audit_key(key);
    if !matches!(command, Command::Audit(AuditCmd::Verify { .. })) {
        store.check_audit_key().await.context("refusing to write to the audit chain")?;
    }
    let actor = std::env::var("USER").unwrap_or_else(|_| "cli".to_owned());
    let audit =
        |action: &'static str, subject: String| NewAuditEntry::new(ActorKind::Cli, actor.clone(), action, subject);
    let notifier = Notifier::new(settings.webhook_urls.clone(), settings.webhook_secret.clone());
    match command {
        Command::Serve { .. } => serve(settings, store).await,
        Command::Release(ReleaseCmd::Add { file, version, platform }) => {
            let platform = Platform::parse(&platform).context("unknown platform")?;
            let id = add_release(&settings, &store, &file, &version, platform, audit("release.added", version.clone()))
                .await?;
            println!("{id}");
            Ok(())
        }
        Command::Release(ReleaseCmd::RotateKey) => rotate_release_key(&settings, &store, &actor).await,
        Command::Release(ReleaseCmd::List) => {
            for r in store.releases().await? {
                println!(
                    "{}\t{}\t{}\t{}\t{} bytes\tsha256 {}",
                    r.id, r.version, r.platform, r.added_by, r.size, r.sha256
                );
            }
            Ok(())
        }
        Command::SigningKey { action: None } => Ok(()),
        Command::SigningKey { action: Some(SigningKeyCmd::Rotate { grace_days }) } => {
            rotate_signing_key(&settings, &store, &notifier, &actor, grace_days).await
        }
        Command::Audit(AuditCmd::Verify { checkpoints }) => {
            let files = if checkpoints.is_empty() { vec![settings.audit_checkpoint_path.clone()] } else { checkpoints };
            let mut all = Vec::new();
            for f in &files {
                all.extend(crate::tasks::audit_checkpoint::read_all(f).map_err(|e| anyhow::anyhow!(e))?);
            }
            let v = crate::tasks::audit_checkpoint::verify(&store, &all).await?;
            for p in &v.problems {
                eprintln!("audit checkpoint problem: {p}");
            }
            match v.chain {
                crate::store::audit::ChainCheck::Intact { entries } if v.problems.is_empty() => {
                    println!(
                        "audit chain intact: {entries} entries, key {}, {} checkpoint(s) agree",
                        store.audit_key().id(),
                        v.checkpoints
                    );
                    Ok(())
                }
                crate::store::audit::ChainCheck::Intact { .. } => {
                    anyhow::bail!("audit chain disagrees with {} checkpoint(s)", v.problems.len())
                }
                crate::store::audit::ChainCheck::Broken { entry, reason } => {
                    anyhow::bail!("audit chain broken at entry {entry}: {reason}")
                }
            }
        }
        Command::Audit(AuditCmd::Checkpoint) => {
            let c = crate::tasks::audit_checkpoint::write_now(&store, &settings.audit_checkpoint_path, &notifier, None)
                .await?;
            if let Some(c) = c {
                println!("checkpoint of {} entries written to {}", c.count, settings.audit_checkpoint_path.display());
            }
            Ok(())
        }
        Command::Audit(AuditCmd::CheckpointKey) => {
            let vk = store.audit_key().checkpoint_signing_key().verifying_key();
            println!("{}", base64::Engine::encode(&base64::engine::general_purpose::STANDARD, vk.to_bytes()));
            Ok(())
        }
        Command::Demo { machines, .. } => {
            if store.machines(1, 0).await?.is_empty() {
                println!(
                    "Generating a demo fleet of {machines} machines in {} ...",
                    redact_url(&settings.database_url)
                );
                let n = usize::try_from(machines).unwrap_or(600);
                crate::demo::seed(&store, n, 42).await?;
            } else {
                println!("The database already holds machines: serving it as it is.");
            }
            if store.user_by_name("demo").await?.is_none() {
                let password = new_password();
                store
                    .create_user("demo", &hash_password(&password)?, Role::Admin, audit("user.created", "demo".into()))
                    .await?;
                println!("Sign in as demo / {password}");
            }
            let live = crate::demo::spawn_changes(store.clone());
            let agents = crate::demo_agents::spawn(store.clone());
            let result = serve(settings, store).await;
            live.abort();
            agents.abort();
            result
        }
        Command::User(UserCmd::Create { username, role, password_stdin }) => {
            crate::api::check_text("username", &username, 64).map_err(|e| anyhow::anyhow!("{e}"))?;
            let password = if password_stdin {
                let mut line = String::new();
                std::io::stdin().lock().read_line(&mut line)?;
                let p = line.trim_end_matches(['\r', '\n']).to_owned();
                anyhow::ensure!(p.len() >= 12, "password must be at least 12 characters");
                p
            } else {
                new_password()
            };
            let user = crate::services::accounts::create(
                &store,
                &notifier,
                Delivery::Wait,
                &Actor::cli(actor.clone()),
                &username,
                &hash_password(&password)?,
                role.into(),
            )
            .await
            .map_err(|e| match e {
                crate::domain::DomainError::Conflict(_) => anyhow::anyhow!("user {username:?} already exists"),
                e => e.into(),
            })?;
            eprintln!("created user {} with role {}", user.username, user.role.as_str());
            if !password_stdin {
                println!("{password}");
            }
            Ok(())
        }
        Command::User(UserCmd::Token { username, label, scope, expires_in_days }) => {
            crate::api::check_text("label", &label, 128).map_err(|e| anyhow::anyhow!("{e}"))?;
            let (user, _) =
                store.user_by_name(&username).await?.with_context(|| format!("no active user {username:?}"))?;
            let token = new_token(TokenKind::UserApi);
            let scope: TokenScope = scope.into();
            let expires_at = expires_in_days.map(|d| now_ms() + d * 86_400_000);
            let details = serde_json::json!({"label": label, "scope": scope.as_str(), "expires_at": expires_at});
            let id = store
                .create_scoped_api_token(
                    &user,
                    NewApiToken { label: &label, token_hash: &token_hash(&token), scope, expires_at },
                    audit("api_token.created", username.clone()).details(details),
                )
                .await?;
            eprintln!(
                "API token {id} for {username} ({}, {})",
                scope.as_str(),
                match expires_at {
                    Some(e) => format!("expires {}", format_ms(e)),
                    None => "does not expire".to_owned(),
                }
            );
            println!("{token}");
            Ok(())
        }
        Command::User(UserCmd::List { json }) => {
            let accounts = store.accounts().await?;
            if json {
                let rows: Vec<_> = accounts.into_iter().map(crate::api::user::users::AccountView::from).collect();
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                println!("{:<36}  {:<8}  {:<8}  {:<20}  USERNAME", "ID", "ROLE", "STATE", "CREATED (UTC)");
                for a in accounts {
                    println!(
                        "{:<36}  {:<8}  {:<8}  {:<20}  {}",
                        a.id,
                        a.role.as_str(),
                        a.state(),
                        format_ms(a.created_at),
                        a.username
                    );
                }
            }
            Ok(())
        }
        Command::User(UserCmd::Disable { username }) => {
            change_user(&store, &notifier, &actor, &username, AccountChange::Disable).await
        }
        Command::User(UserCmd::Enable { username }) => {
            change_user(&store, &notifier, &actor, &username, AccountChange::Enable).await
        }
        Command::User(UserCmd::SetRole { username, role }) => {
            change_user(&store, &notifier, &actor, &username, AccountChange::SetRole(role.into())).await
        }
        Command::User(UserCmd::Delete { username }) => {
            change_user(&store, &notifier, &actor, &username, AccountChange::Delete).await
        }
        Command::User(UserCmd::Tokens { username, json }) => {
            let account = store.account_by_name(&username).await?.with_context(|| format!("no user {username:?}"))?;
            let tokens = store.api_tokens(Some(account.id)).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&tokens)?);
            } else {
                let now = now_ms();
                println!(
                    "{:<36}  {:<7}  {:<8}  {:<20}  {:<20}  LABEL",
                    "ID", "SCOPE", "STATE", "EXPIRES (UTC)", "LAST USED (UTC)"
                );
                for t in tokens {
                    println!(
                        "{:<36}  {:<7}  {:<8}  {:<20}  {:<20}  {}",
                        t.id,
                        t.scope.as_str(),
                        t.state(now),
                        t.expires_at.map_or_else(|| "never".to_owned(), format_ms),
                        t.last_used_at.map_or_else(|| "never".to_owned(), format_ms),
                        t.label
                    );
                }
            }
            Ok(())
        }
        Command::User(UserCmd::RevokeToken { id }) => {
            anyhow::ensure!(
                store.revoke_api_token(id, None, audit("api_token.revoked", id.to_string())).await?,
                "no active API token {id}"
            );
            eprintln!("revoked API token {id}");
            Ok(())
        }
        Command::EnrollToken(EnrollTokenCmd::Create { label, expires_in_hours, max_uses }) => {
            crate::api::check_text("label", &label, 128).map_err(|e| anyhow::anyhow!("{e}"))?;
            let token = new_token(TokenKind::Enrollment);
            let expires_at = now_ms() + i64::try_from(expires_in_hours)? * 3_600_000;
            let id = store
                .create_enrollment_token(
                    NewEnrollmentToken { label: &label, token_hash: &token_hash(&token), expires_at, max_uses },
                    audit("enrollment_token.created", label.clone()),
                )
                .await?;
            eprintln!("enrollment token {id} ({label}): {max_uses} use(s), expires {}", time_of(expires_at));
            println!("{token}");
            Ok(())
        }
        Command::EnrollToken(EnrollTokenCmd::List { json }) => {
            let now = now_ms();
            let tokens = store.list_enrollment_tokens().await?;
            if json {
                let rows: Vec<_> = tokens
                    .iter()
                    .map(|t| serde_json::json!({"id": t.id, "label": t.label, "state": t.state(now), "uses": t.uses, "max_uses": t.max_uses, "expires_at": time_of(t.expires_at).unix_timestamp()}))
                    .collect();
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                println!("{:<36}  {:<8}  {:>9}  {:<20}  LABEL", "ID", "STATE", "USES", "EXPIRES (UTC)");
                for t in tokens {
                    println!(
                        "{:<36}  {:<8}  {:>4}/{:<4}  {:<20}  {}",
                        t.id,
                        t.state(now),
                        t.uses,
                        t.max_uses,
                        format_ms(t.expires_at),
                        t.label
                    );
                }
            }
            Ok(())
        }
        Command::EnrollToken(EnrollTokenCmd::Revoke { id }) => {
            anyhow::ensure!(
                store.revoke_enrollment_token(id, audit("enrollment_token.revoked", id.to_string())).await?,
                "no active enrollment token {id}"
            );
            eprintln!("revoked enrollment token {id}");
            Ok(())
        }
        Command::Agent(AgentCmd::List { json }) => {
            let machines = store.machines(1_000_000, 0).await?;
            if json {
                let rows: Vec<_> = machines.into_iter().map(crate::api::user::MachineView::from).collect();
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                println!("{:<36}  {:<6}  {:<8}  {:<20}  HOSTNAME", "MACHINE ID", "ROLE", "STATE", "LAST SEEN (UTC)");
                for m in machines {
                    println!(
                        "{:<36}  {:<6}  {:<8}  {:<20}  {}",
                        m.id,
                        m.role.as_str(),
                        if m.revoked { "revoked" } else { "active" },
                        format_ms(m.last_seen_at),
                        m.hostname
                    );
                }
            }
            Ok(())
        }
        Command::Agent(AgentCmd::Revoke { machine_id }) => {
            let n = store.revoke_agent(machine_id, audit("agent.revoked", machine_id.to_string())).await?;
            anyhow::ensure!(n > 0, "no machine {machine_id} with an active credential");
            eprintln!("revoked {n} credential(s) of machine {machine_id}");
            Ok(())
        }
    }
}

async fn change_user(
    store: &Store,
    notifier: &Notifier,
    actor: &str,
    username: &str,
    change: AccountChange,
) -> anyhow::Result<()> {
    let account = store.account_by_name(username).await?.with_context(|| format!("no user {username:?}"))?;
    let outcome =
        crate::services::accounts::change(store, notifier, Delivery::Wait, &Actor::cli(actor), account.id, change)
            .await?;
    match outcome {
        ChangeOutcome::Done => {
            eprintln!("{username}: done; their sessions and API tokens are ended");
            Ok(())
        }
        ChangeOutcome::NotFound => anyhow::bail!("no user {username:?}"),
        refused @ (ChangeOutcome::Unchanged | ChangeOutcome::LastAdmin) => {
            anyhow::bail!("{username}: {}", refused.conflict().unwrap_or_default())
        }
    }
}

/// The files of a key rotation: the current key, and the new one written beside it.
struct KeyFiles {
    old: ed25519_dalek::SigningKey,
    old_fp: String,
    new: ed25519_dalek::SigningKey,
    new_fp: String,
    pending: PathBuf,
}

impl KeyFiles {
    /// Reads the current key at `path` and writes a new one to `<path>.new`.
    fn begin(path: &std::path::Path) -> anyhow::Result<KeyFiles> {
        let old = ed25519_dalek::SigningKey::from_bytes(&crate::signing::load_secret(path)?);
        let new = ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng);
        let pending = path.with_extension("key.new");
        crate::signing::write_secret(&pending, &new.to_bytes()).with_context(|| {
            format!(
                "cannot write {} (an interrupted rotation may have left it: check and remove it)",
                pending.display()
            )
        })?;
        Ok(KeyFiles {
            old_fp: crate::signing::fingerprint(&old.verifying_key()),
            new_fp: crate::signing::fingerprint(&new.verifying_key()),
            old,
            new,
            pending,
        })
    }

    /// Once the database has switched: keeps the old file as `<path>.retired-<fingerprint>` and
    /// puts the new one in its place. Returns where the old one went.
    fn finish(path: &std::path::Path, pending: &std::path::Path, old_fp: &str) -> anyhow::Result<PathBuf> {
        let retired = path.with_extension(format!("key.retired-{}", &old_fp[..16]));
        std::fs::rename(path, &retired).with_context(|| format!("cannot move the old key to {}", retired.display()))?;
        std::fs::rename(pending, path).with_context(|| format!("cannot install the new key at {}", path.display()))?;
        Ok(retired)
    }
}

/// `signing-key rotate`: the new key is written beside the old one, the database switched (with
/// the statement), then the files swapped; the old file is kept as `<path>.retired-<fingerprint>`.
async fn rotate_signing_key(
    settings: &Settings,
    store: &Store,
    notifier: &Notifier,
    actor: &str,
    grace_days: i64,
) -> anyhow::Result<()> {
    let path = &settings.signing_key_path;
    let KeyFiles { old, old_fp, new, new_fp, pending } = KeyFiles::begin(path)?;
    let statement = crate::signing::rotation_statement(&old, &new, time::Duration::days(grace_days));
    let audit =
        NewAuditEntry::new(ActorKind::Cli, actor, "signing_key.rotated", &new_fp[..16]).details(serde_json::json!({
            "old": old_fp, "new": new_fp, "old_key_valid_until": statement.old_key_valid_until.unix_timestamp(),
        }));
    let rotated = store
        .rotate_signing_key(
            KeyPurpose::Jobs,
            &[],
            &old_fp,
            &new_fp,
            &statement.new_key,
            &serde_json::to_string(&statement)?,
            audit,
        )
        .await?;
    if !rotated {
        let _ = std::fs::remove_file(&pending);
        anyhow::bail!("the key in {} is not this database's current signing key: nothing rotated", path.display());
    }
    let retired = KeyFiles::finish(path, &pending, &old_fp)?;
    notifier
        .deliver(crate::webhook::Event {
            event: "signing_key.rotated",
            at: now_ms(),
            subject: serde_json::json!({"old": old_fp, "new": new_fp, "old_key_valid_until": statement.old_key_valid_until.unix_timestamp()}),
        })
        .await;
    eprintln!(
        "rotated the job-signing key: {} -> {}; agents accept the old key until {}. Restart every replica \
         with the new key file ({}) before then; the old one is kept as {}",
        &old_fp[..16],
        &new_fp[..16],
        statement.old_key_valid_until,
        path.display(),
        retired.display()
    );
    println!("{}", statement.new_key);
    Ok(())
}

/// The audit key: created by `serve` and `demo` (and by any command while the database has no
/// keyed chain yet); otherwise it must exist, since a new one would not match the chain.
async fn audit_key(settings: &Settings, store: &Store, command: &Command) -> anyhow::Result<AuditKey> {
    let path = &settings.audit_key_path;
    let may_create =
        matches!(command, Command::Serve { .. } | Command::Demo { .. }) || store.audit_head().await?.key_id.is_none();
    let secret = if may_create {
        crate::signing::load_or_create_secret(path)?
    } else {
        crate::signing::load_secret(path).with_context(|| {
            format!(
                "this database's audit chain is keyed: the audit key file {} is needed (audit_key_path)",
                path.display()
            )
        })?
    };
    Ok(AuditKey::from_bytes(secret))
}

fn format_ms(ms: i64) -> String {
    let t = time_of(ms);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

async fn serve(settings: Settings, store: Store) -> anyhow::Result<()> {
    let key = crate::signing::load_or_create(&settings.signing_key_path)?;
    let fingerprint = crate::signing::fingerprint(&key.verifying_key());
    let shown = settings.signing_key_path.display();
    match store.check_signing_key(KeyPurpose::Jobs, &fingerprint, &crate::signing::public_key_base64(&key)).await? {
        KeyCheck::Registered | KeyCheck::Current => {}
        KeyCheck::Retired { retired_at, current } => anyhow::bail!(
            "the job-signing key {shown} (fingerprint {}) was rotated out on {}; the current key is {}. \
             Install the current key file on this server (every replica shares it)",
            &fingerprint[..16],
            format_ms(retired_at),
            &current[..16.min(current.len())]
        ),
        KeyCheck::Mismatch { current } => anyhow::bail!(
            "the job-signing key {shown} (fingerprint {}) is not this database's key ({}): agents pinned that key \
             at enrollment and would refuse every job signed with this one. Restore the original key file \
             (a lost key means enrolling the fleet again); to change keys, use `rdpfleet-server signing-key rotate`",
            &fingerprint[..16],
            &current[..16.min(current.len())]
        ),
    }
    let rotations = store
        .key_rotations(KeyPurpose::Jobs)
        .await?
        .iter()
        .map(|r| serde_json::from_str::<rdpfleet_proto::job::KeyRotation>(r))
        .collect::<Result<Vec<_>, _>>()
        .context("a stored key rotation is damaged")?;
    let (release_key, release_rotations) = release_key(&settings, &store).await?;
    // Bound before the first start writes credentials: a busy port must not leave a
    // credentials file (and an admin) behind for a server that never ran.
    let listener = tokio::net::TcpListener::bind(settings.listen).await.with_context(|| {
        format!("cannot listen on {} (is another server running there? choose another with --listen)", settings.listen)
    })?;
    if let Some(b) = crate::bootstrap::first_start(&store).await? {
        let path = PathBuf::from("initial-credentials.txt");
        crate::bootstrap::write_credentials(&path, &b, &settings.agent_url())
            .with_context(|| format!("cannot write {}", path.display()))?;
        println!("First start: created user 'admin' and an enrollment token (24 h, 10 machines).");
        println!("Their secrets are in {} (mode 0600). Enroll an agent with:", path.display());
        println!(
            "  rdpfleet-agent enroll --server {} --token \"$(sed -n 's/^enrollment_token=//p' {})\"",
            settings.agent_url(),
            path.display()
        );
        if settings.known_agent_url().is_none() {
            println!(
                "  (this server listens on every address and has no public_url: replace SERVER-NAME with the name \
                 agents reach it by, or set public_url in the configuration)"
            );
        }
        println!("More tokens: rdpfleet-server enroll-token create --label NAME --max-uses N");
        println!("API token for the JSON API: rdpfleet-server user token --username admin");
    }
    let addr = listener.local_addr()?;
    tracing::info!(%addr, database = %redact_url(&settings.database_url), backend = ?store.backend(), "listening");
    // A stable line on stdout that scripts and the end-to-end tests wait for.
    println!("rdpfleet-server listening on http://{addr}");
    if std::io::stdout().is_terminal() {
        println!("OpenAPI document: http://{addr}/api/openapi.json");
    }
    let mut state = crate::app_state(settings, store, key);
    state.key_rotations = std::sync::Arc::new(rotations);
    state.release_signing_public_key = Some(release_key.into());
    state.release_key_rotations = std::sync::Arc::new(release_rotations);
    crate::launch(state, listener, shutdown_signal()).await?;
    Ok(())
}

/// The release key, checked against the database's (a lost or replaced key file would make
/// agents refuse every release it signs); registered on first use.
async fn checked_release_key(settings: &Settings, store: &Store) -> anyhow::Result<ed25519_dalek::SigningKey> {
    let path = &settings.release_key_path;
    let key = crate::signing::load_or_create(path).with_context(|| format!("the release key {}", path.display()))?;
    let public = crate::signing::public_key_base64(&key);
    let fingerprint = crate::signing::fingerprint(&key.verifying_key());
    match store.check_signing_key(KeyPurpose::Releases, &fingerprint, &public).await? {
        KeyCheck::Registered | KeyCheck::Current => Ok(key),
        KeyCheck::Retired { current, .. } | KeyCheck::Mismatch { current } => anyhow::bail!(
            "the release key {} (fingerprint {}) is not this database's release key ({}): agents pinned that \
             key and would refuse every release signed with this one. Install the current key file (every \
             replica and `release add` share it, see release_key_path); to change keys, use \
             `rdpfleet-server release rotate-key`",
            path.display(),
            &fingerprint[..16],
            &current[..16.min(current.len())]
        ),
    }
}

/// The release key's public half and its rotations, for agents.
async fn release_key(
    settings: &Settings,
    store: &Store,
) -> anyhow::Result<(String, Vec<rdpfleet_proto::job::KeyRotation>)> {
    let key = checked_release_key(settings, store).await?;
    let rotations = store
        .key_rotations(KeyPurpose::Releases)
        .await?
        .iter()
        .map(|r| serde_json::from_str::<rdpfleet_proto::job::KeyRotation>(r))
        .collect::<Result<Vec<_>, _>>()
        .context("a stored release key rotation is damaged")?;
    Ok((crate::signing::public_key_base64(&key), rotations))
}

/// Replaces the release key: a rotation statement signed by the old key (agents follow it with
/// their next job poll), every stored release re-signed with the new key, in one transaction.
async fn rotate_release_key(settings: &Settings, store: &Store, actor: &str) -> anyhow::Result<()> {
    let path = &settings.release_key_path;
    let KeyFiles { old, old_fp, new, new_fp, pending } = KeyFiles::begin(path)?;
    let statement = crate::signing::release_rotation_statement(&old, &new);
    let resigned: Vec<(uuid::Uuid, String)> = store
        .releases()
        .await?
        .into_iter()
        .map(|r| {
            let payload = rdpfleet_proto::release::signing_payload(&r.version, r.platform, &r.sha256);
            (r.id, crate::signing::sign_bytes(&new, &payload))
        })
        .collect();
    let audit = NewAuditEntry::new(ActorKind::Cli, actor, "release_key.rotated", &new_fp[..16])
        .details(serde_json::json!({"old": old_fp, "new": new_fp, "releases_resigned": resigned.len()}));
    let rotated = store
        .rotate_signing_key(
            KeyPurpose::Releases,
            &resigned,
            &old_fp,
            &new_fp,
            &statement.new_key,
            &serde_json::to_string(&statement)?,
            audit,
        )
        .await?;
    if !rotated {
        let _ = std::fs::remove_file(&pending);
        anyhow::bail!("the key in {} is not this database's current release key: nothing rotated", path.display());
    }
    let retired = KeyFiles::finish(path, &pending, &old_fp)?;
    eprintln!(
        "rotated the release key: {} -> {}; {} release(s) re-signed. Restart every replica with the new key \
         file ({}); agents follow the rotation with their next job poll. The old key is kept as {}",
        &old_fp[..16],
        &new_fp[..16],
        resigned.len(),
        path.display(),
        retired.display()
    );
    println!("{}", statement.new_key);
    Ok(())
}

/// Checks, hashes and signs an agent binary, then stores it.
async fn add_release(
    settings: &Settings,
    store: &Store,
    file: &std::path::Path,
    version: &str,
    platform: Platform,
    audit: NewAuditEntry,
) -> anyhow::Result<uuid::Uuid> {
    use sha2::Digest;
    semver::Version::parse(version.trim())
        .with_context(|| format!("{version:?} is not a semantic version (e.g. 0.2.0)"))?;
    let binary = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    anyhow::ensure!(!binary.is_empty(), "{} is empty", file.display());
    anyhow::ensure!(
        binary.len() <= crate::services::releases::MAX_RELEASE_BYTES,
        "{} is larger than 256 MiB",
        file.display()
    );
    let looks_right = match platform {
        Platform::WindowsX86_64 => binary.starts_with(b"MZ"),
        Platform::LinuxX86_64 => binary.starts_with(b"\x7fELF") || binary.starts_with(b"#!"),
    };
    anyhow::ensure!(looks_right, "{} is not an executable for {platform}", file.display());
    let key = checked_release_key(settings, store).await?;
    let fingerprint = crate::signing::fingerprint(&key.verifying_key());
    let sha256 = hex::encode(sha2::Sha256::digest(&binary));
    let signature =
        crate::signing::sign_bytes(&key, &rdpfleet_proto::release::signing_payload(version, platform, &sha256));
    let added_by = audit.actor.clone();
    let release = crate::store::releases::NewRelease {
        version: version.trim(),
        platform,
        sha256: &sha256,
        signature: &signature,
        key_fingerprint: &fingerprint,
        binary: &binary,
        added_by: &added_by,
    };
    match store.add_release(release, audit).await {
        Err(crate::store::StoreError::Conflict) => anyhow::bail!("release {version} for {platform} already exists"),
        other => Ok(other?),
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::{Cli, Command};

    #[test]
    fn listen_works_at_the_top_level_where_serve_is_the_default() {
        let cli = Cli::try_parse_from(["rdpfleet-server", "--listen", "127.0.0.1:9443"]).expect("parses");
        assert!(cli.command.is_none());
        assert_eq!(cli.listen.map(|a| a.port()), Some(9443));
        let cli = Cli::try_parse_from(["rdpfleet-server", "serve", "--listen", "127.0.0.1:1"]).expect("parses");
        assert!(matches!(cli.command, Some(Command::Serve { listen: Some(_) })));
        assert!(Cli::try_parse_from(["rdpfleet-server", "--listen", "not-an-address"]).is_err());
    }
}
