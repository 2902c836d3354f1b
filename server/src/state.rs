//! Shared state of the running server.
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::config::Settings;
use crate::store::Store;
use crate::tasks::job_wakeup::JobWakeups;

#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub settings: Arc<Settings>,
    /// Base64 Ed25519 public key handed to agents at enrollment.
    pub job_signing_public_key: Arc<str>,
    /// Signs every job (rollouts); its public half is pinned by agents at enrollment.
    pub signing_key: Arc<ed25519_dalek::SigningKey>,
    pub wakeups: JobWakeups,
    /// Group commit of agent reports.
    pub reports: crate::tasks::report_writer::ReportWriter,
    /// Throttles the `last_seen_at` writes of job polls.
    pub seen: crate::tasks::job_wakeup::SeenCache,
    /// Cancelled when the server shuts down, so long polls return at once.
    pub shutdown: CancellationToken,
    pub throttle: Arc<crate::domain::throttle::LoginThrottle>,
    /// The Overview's fleet counts, recounted in the background.
    pub fleet_counts: Arc<crate::tasks::fleet_counts::FleetCounts>,
    /// Failed enrollments per address.
    pub enroll_throttle: Arc<crate::domain::throttle::FailureCounter<std::net::IpAddr>>,
    /// Outbound webhooks.
    pub notifier: crate::webhook::Notifier,
    /// Base64 Ed25519 public key of the release key, handed to agents at enrollment (none in
    /// servers built for tests without one).
    pub release_signing_public_key: Option<Arc<str>>,
    /// Rotations of the release key, handed to agents with every job poll.
    pub release_key_rotations: Arc<Vec<rdpfleet_proto::job::KeyRotation>>,
    /// Rotations of the job-signing key, handed to agents with every job poll.
    pub key_rotations: Arc<Vec<rdpfleet_proto::job::KeyRotation>>,
}
