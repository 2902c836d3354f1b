//! The rollout engine's schedule: every tick, the replica holding the `rollouts` lease runs one
//! `services::rollouts::advance` pass, wakes the agents given a job and tells the webhooks of
//! rollouts that halted or completed.
use std::time::Duration;

use ed25519_dalek::SigningKey;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::services::rollouts::advance;
use crate::store::{Store, now_ms};
use crate::tasks::job_wakeup::JobWakeups;
use crate::webhook::{Event, Notifier};

/// Runs the engine until `shutdown`, on the replica holding the `rollouts` lease.
pub fn spawn(
    store: Store,
    key: SigningKey,
    every: Duration,
    shutdown: CancellationToken,
    notifier: Notifier,
    wakeups: JobWakeups,
) -> tokio::task::JoinHandle<()> {
    let holder = Uuid::new_v4().to_string();
    tokio::spawn(async move {
        loop {
            let lease = i64::try_from(every.as_millis()).unwrap_or(1000).saturating_mul(5);
            match store.try_lease("rollouts", &holder, now_ms() + lease).await {
                Ok(true) => match advance(&store, &key).await {
                    Ok(done) => {
                        for m in done.new_jobs_for {
                            wakeups.wake(m.0);
                        }
                        for (event, id) in done.ended {
                            let rollout = store.rollout(id).await.ok().flatten();
                            let subject = serde_json::to_value(&rollout).unwrap_or_default();
                            notifier.send(Event { event, at: now_ms(), subject });
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "rollout engine"),
                },
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, "cannot take the rollouts lease"),
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(every) => {}
            }
        }
    })
}
