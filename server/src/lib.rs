//! rdpfleet server: the agent API, storage and (in later versions) the dashboard, correlation
//! and rollouts. `launch` runs it; `cli` is the command line of the `rdpfleet-server` binary.
#![forbid(unsafe_code)]

pub mod accounts;
pub mod api;
pub mod audit_checkpoint;
pub mod auth;
pub mod bootstrap;
pub mod cli;
pub mod client_ip;
pub mod config;
pub mod correlate;
pub mod demo;
pub mod error;
pub mod extract;
pub mod job_wakeup;
pub mod report_writer;
pub mod rollout;
pub mod router;
pub mod secrets;
pub mod serve;
pub mod signing;
pub mod state;
pub mod store;
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
        wakeups: job_wakeup::JobWakeups::default(),
        reports: report_writer::ReportWriter::spawn(store.clone()),
        seen: job_wakeup::SeenCache::default(),
        shutdown: CancellationToken::new(),
        throttle: Arc::default(),
        fleet_counts: Arc::default(),
        enroll_throttle: Arc::new(web::throttle::enroll_throttle()),
        notifier: webhook::Notifier::new(settings.webhook_urls.clone(), settings.webhook_secret.clone()),
        settings: Arc::new(settings),
        key_rotations: Arc::default(),
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
    let job_listener = store.spawn_job_listener(state.wakeups.clone(), cancel.clone());
    let revocations = store.spawn_revocation_watch(std::time::Duration::from_secs(2), cancel.clone());
    let job_index = state.wakeups.spawn_refresher(store.clone(), std::time::Duration::from_secs(5), cancel.clone());
    let counts =
        state.fleet_counts.clone().spawn_refresher(store.clone(), std::time::Duration::from_secs(5), cancel.clone());
    let seen = state.seen.spawn_flusher(store.clone(), std::time::Duration::from_secs(5), cancel.clone());
    let checkpoints = audit_checkpoint::spawn(
        store.clone(),
        state.settings.audit_checkpoint_path.clone(),
        std::time::Duration::from_secs(state.settings.audit_checkpoint_secs),
        state.notifier.clone(),
        cancel.clone(),
    );
    let notifier = state.notifier.clone();
    let rollouts = rollout::spawn(
        store.clone(),
        (*state.signing_key).clone(),
        std::time::Duration::from_secs(2),
        cancel.clone(),
        notifier.clone(),
        state.wakeups.clone(),
    );
    let correlation = correlate::spawn(
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
