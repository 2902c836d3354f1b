//! `rdpfleet-agent run`: checks on a schedule, reports, job polling — until shutdown.
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::backoff::{Backoff, jittered};
use crate::client::{Client, ClientError};
use crate::config::AgentConfig;
use crate::credential::Credential;
use crate::engine::check::CheckContext;
use crate::jobs::{JobHandler, Journal, Verifier};
use crate::outbox::Outbox;
use crate::reporter::{Delivery, Reporter};
use crate::runner::run_all;
use crate::sequence::Sequence;
use crate::subjects::all_checks;

/// Longest a job poll asks the server to wait.
const POLL_WAIT: Duration = Duration::from_secs(30);

pub async fn run(config: AgentConfig, credential: Credential, shutdown: CancellationToken) -> anyhow::Result<()> {
    let platform = crate::platform::Platform::native();
    crate::platform::state_dir::secure(platform.state_dir.as_ref(), &config.state_dir)?;
    let base = crate::client::parse_server_url(&credential.server, config.allow_insecure_http)?;
    let client = Client::new(base, Some(credential.agent_token.clone()))?;
    let sequence = Sequence::open(&config.state_dir)?;
    let outbox = Outbox::open(&config.state_dir, config.max_queued_reports)?;
    let reporter = Reporter::new(client.clone(), credential.machine_id, sequence, outbox)?;
    if reporter.queued() > 0 {
        tracing::info!(queued = reporter.queued(), "reports from before the restart are waiting in the outbox");
    }
    tracing::info!(machine_id = %credential.machine_id, server = %credential.server, targets = config.targets.len(), "agent running");
    let mut handler = JobHandler {
        verifier: Verifier::of(&credential),
        policy: config.fixes.clone(),
        credential: Some((config.state_dir.clone(), credential.clone())),
        journal: Journal::open(&config.state_dir)?,
        platform,
        xrdp: config.xrdp.clone(),
        restart: crate::update::restart_mode(),
        restarting: false,
    };
    let (reported_tx, reported) = tokio::sync::watch::channel(false);
    let state_dir = config.state_dir.clone();
    let checks = tokio::spawn(check_loop(config, credential.server.clone(), reporter, reported_tx, shutdown.clone()));
    let jobs = tokio::spawn(async move {
        // After an update, the build answers its job once it has reported (the health gate).
        if crate::update::Pending::load(&state_dir).ok().flatten().is_some() {
            let mut reported = reported;
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = reported.wait_for(|r| *r) => {}
            }
            if let Err(e) = handler.finish_update(&client, credential.machine_id, &state_dir).await {
                tracing::error!(error = %format!("{e:#}"), "cannot answer the update job");
            }
        }
        job_loop(client, credential.machine_id, handler, shutdown).await
    });
    let (a, b) = tokio::join!(checks, jobs);
    a??;
    b?;
    Ok(())
}

async fn check_loop(
    config: AgentConfig,
    clock_reference: String,
    mut reporter: Reporter,
    reported: tokio::sync::watch::Sender<bool>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let catalogue = all_checks();
    let ctx = CheckContext::from_config(&config, Some(clock_reference))?;
    let check_timeout = Duration::from_secs(config.check_timeout_secs);
    let scale = time_scale();
    let interval = Duration::from_secs(config.interval_secs) / scale;
    let mut backoff = Backoff::new(Duration::from_secs(2) / scale, interval.max(Duration::from_secs(60) / scale));
    let mut next_check = Instant::now();
    let mut next_retry: Option<Instant> = None;
    loop {
        let wake = next_retry.map_or(next_check, |r| r.min(next_check));
        tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            () = tokio::time::sleep_until(wake) => {}
        }
        if Instant::now() >= next_check {
            let results = run_all(&catalogue, &ctx, check_timeout).await;
            let seq = reporter.enqueue(results)?;
            tracing::debug!(seq, "check cycle done");
            next_check = Instant::now() + jittered(interval, config.jitter_pct);
        }
        next_retry = match reporter.deliver().await {
            Delivery::Done => {
                backoff.reset();
                reported.send_replace(true);
                None
            }
            Delivery::Retry => Some(Instant::now() + backoff.next_delay()),
            Delivery::Unauthorized => {
                tracing::error!(
                    "the server refused this agent's credential (revoked?); run `rdpfleet-agent enroll` again"
                );
                Some(Instant::now() + backoff.next_delay())
            }
        };
    }
}

/// `RDPFLEET_AGENT_TIME_SCALE=N` runs the check schedule and its retry backoff N times faster,
/// so tests and simulations can play a day of reports in seconds. 1 (real time) unless set.
fn time_scale() -> u32 {
    match std::env::var("RDPFLEET_AGENT_TIME_SCALE") {
        Err(_) => 1,
        Ok(v) => match v.parse::<u32>() {
            Ok(n) if (1..=100_000).contains(&n) => {
                if n > 1 {
                    tracing::warn!(scale = n, "RDPFLEET_AGENT_TIME_SCALE: the schedule runs faster than configured");
                }
                n
            }
            _ => {
                tracing::warn!(value = %v, "RDPFLEET_AGENT_TIME_SCALE must be within 1..=100000; ignored");
                1
            }
        },
    }
}

async fn job_loop(client: Client, machine_id: uuid::Uuid, mut handler: JobHandler, shutdown: CancellationToken) {
    let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(300));
    loop {
        let polled = tokio::select! {
            () = shutdown.cancelled() => return,
            r = client.poll_jobs(machine_id, POLL_WAIT) => r,
        };
        let failure = match polled {
            Ok(resp) => {
                if let Err(e) = handler.follow_rotations(&resp.key_rotations) {
                    tracing::error!(error = %e, "could not record the server's new job-signing key");
                }
                if let Err(e) = handler.follow_release_rotations(&resp.release_key_rotations) {
                    tracing::error!(error = %e, "could not record the server's new release key");
                }
                let mut failure = None;
                for job in &resp.jobs {
                    if let Err(e) = handler.handle(&client, machine_id, job).await {
                        failure = Some(e);
                        break;
                    }
                    if handler.restarting {
                        // The service manager stops this process for the new build.
                        shutdown.cancelled().await;
                        return;
                    }
                }
                failure
            }
            Err(e) => Some(e),
        };
        let delay = match failure {
            None => {
                backoff.reset();
                continue;
            }
            Some(ClientError::Unauthorized) => {
                tracing::error!("job poll refused: credential revoked?");
                backoff.next_delay()
            }
            Some(e) => {
                tracing::warn!(error = %e, "job poll failed");
                backoff.next_delay()
            }
        };
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(delay) => {}
        }
    }
}
