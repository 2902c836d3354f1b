//! rdpfleet server: the agent API, the dashboard and JSON API, storage, correlation and
//! rollouts. `launch` runs it; `cli` is the command line of the `rdpfleet-server` binary. The
//! layers, from the bottom: `domain` (rules, no I/O) ← `store` ← `services` ← `tasks` ←
//! `state` ← `auth`/`extract` ← `api`/`web` ← `router`; see docs/architecture.md.
#![forbid(unsafe_code)]

pub mod api;
pub mod auth;
pub mod bootstrap;
pub mod cli;
pub mod client_ip;
pub mod config;
pub mod demo;
pub mod demo_agents;
pub mod domain;
pub mod error;
pub mod extract;
pub mod router;
pub mod secrets;
pub mod serve;
pub mod services;
pub mod signing;
pub mod state;
pub mod store;
pub mod tasks;
pub mod web;
pub mod webhook;

use std::future::Future;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::Settings;
use crate::state::AppState;
use crate::store::Store;

/// Builds the state shared by all requests; `signing_key` signs the jobs agents will run.
pub fn app_state(settings: Settings, store: Store, signing_key: ed25519_dalek::SigningKey) -> AppState {
    AppState {
        store: store.clone(),
        job_signing_public_key: signing::public_key_base64(&signing_key).into(),
        signing_key: Arc::new(signing_key),
        wakeups: tasks::job_wakeup::JobWakeups::default(),
        reports: tasks::report_writer::ReportWriter::spawn(store.clone()),
        seen: tasks::job_wakeup::SeenCache::default(),
        shutdown: CancellationToken::new(),
        throttle: Arc::default(),
        fleet_counts: Arc::default(),
        enroll_throttle: Arc::new(domain::throttle::enroll_throttle()),
        notifier: webhook::Notifier::new(settings.webhook_urls.clone(), settings.webhook_secret.clone()),
        settings: Arc::new(settings),
        key_rotations: Arc::default(),
        release_signing_public_key: None,
        release_key_rotations: Arc::default(),
    }
}

/// Serves until `shutdown` completes, then stops accepting, lets in-flight requests finish
/// (long polls return at once) and closes the database.
pub async fn launch(
    state: AppState,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let cancel = state.shutdown.clone();
    let store = state.store.clone();
    let wakeups = state.wakeups.clone();
    let job_listener = store.spawn_job_listener(move |m| wakeups.wake(m), cancel.clone());
    let revocations = store.spawn_revocation_watch(std::time::Duration::from_secs(2), cancel.clone());
    let job_index = state.wakeups.spawn_refresher(store.clone(), std::time::Duration::from_secs(5), cancel.clone());
    let counts =
        state.fleet_counts.clone().spawn_refresher(store.clone(), std::time::Duration::from_secs(5), cancel.clone());
    let seen = state.seen.spawn_flusher(store.clone(), std::time::Duration::from_secs(5), cancel.clone());
    let checkpoints = tasks::audit_checkpoint::spawn(
        store.clone(),
        state.settings.audit_checkpoint_path.clone(),
        std::time::Duration::from_secs(state.settings.audit_checkpoint_secs),
        state.notifier.clone(),
        cancel.clone(),
    );
    let notifier = state.notifier.clone();
    let rollouts = tasks::rollout_engine::spawn(
        store.clone(),
        (*state.signing_key).clone(),
        std::time::Duration::from_secs(2),
        cancel.clone(),
        notifier.clone(),
        state.wakeups.clone(),
    );
    let correlation = tasks::correlation::spawn(
        store.clone(),
        std::time::Duration::from_secs(state.settings.correlation_interval_secs),
        cancel.clone(),
        notifier,
        state.settings.history_retention_days,
    );
    let limits = serve::ConnLimits {
        header_read_timeout: std::time::Duration::from_secs(state.settings.header_read_timeout_secs),
        max_connections: state.settings.max_connections,
    };
    let cancel_after = cancel.clone();
    let app = router::router(state);
    let result = serve::serve(listener, app, limits, async move {
        shutdown.await;
        tracing::info!("shutting down");
        cancel.cancel();
    })
    .await;
    // The flusher writes its last marks when it sees the cancellation.
    cancel_after.cancel();
    let _ = seen.await;
    let _ = checkpoints.await;
    correlation.abort();
    rollouts.abort();
    job_index.abort();
    counts.abort();
    revocations.abort();
    if let Some(l) = job_listener {
        l.abort();
    }
    let _ = correlation.await;
    let _ = rollouts.await;
    store.close().await;
    result
}
