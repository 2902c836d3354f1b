//! The correlation task: every `correlation_interval_secs`, the replica holding the
//! `correlation` lease turns the fleet's current failures into incidents (the engine is
//! `domain::correlation`) and records a health sample for the trend chart.
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::store::incidents::ReconcileStats;
use crate::store::{Store, StoreResult, now_ms};

/// Width of one trend-chart bucket.
pub const SAMPLE_BUCKET_MS: i64 = 5 * 60 * 1000;

/// One correlation pass: failures → drafts → incidents; then a health sample.
pub async fn run_once(store: &Store, rules: &crate::domain::correlation::Rules) -> StoreResult<ReconcileStats> {
    let t0 = std::time::Instant::now();
    let observations = store.observations(rules.flap_window_ms).await?;
    let t1 = std::time::Instant::now();
    let drafts = crate::domain::correlation::correlate(&observations, rules);
    let t2 = std::time::Instant::now();
    let stats = store.reconcile_incidents(&drafts).await?;
    tracing::debug!(
        read_ms = (t1 - t0).as_millis() as u64,
        engine_ms = (t2 - t1).as_millis() as u64,
        write_ms = t2.elapsed().as_millis() as u64,
        paths = observations.paths.len(),
        incidents = drafts.len(),
        "correlation run"
    );
    store.record_health_sample(now_ms() / SAMPLE_BUCKET_MS * SAMPLE_BUCKET_MS).await?;
    Ok(stats)
}

/// Runs the task until `shutdown`; only the lease holder correlates, so replicas do not race.
pub fn spawn(
    store: Store,
    interval: Duration,
    shutdown: CancellationToken,
    notifier: crate::webhook::Notifier,
    retention_days: u64,
) -> tokio::task::JoinHandle<()> {
    let holder = uuid::Uuid::new_v4().to_string();
    tokio::spawn(async move {
        let rules = crate::domain::correlation::Rules::default();
        let lease_ms = i64::try_from(interval.as_millis()).unwrap_or(i64::MAX / 4).saturating_mul(3);
        loop {
            match store.try_lease("correlation", &holder, now_ms().saturating_add(lease_ms)).await {
                Ok(true) => {
                    match run_once(&store, &rules).await {
                        Ok(s) if s.opened + s.changed + s.resolved > 0 => {
                            tracing::info!(
                                opened = s.opened,
                                changed = s.changed,
                                resolved = s.resolved,
                                open = s.open,
                                "incidents"
                            );
                            notify(&store, &notifier, &s).await;
                        }
                        Ok(_) => {}
                        Err(e) => tracing::warn!(error = %e, "correlation failed"),
                    }
                    // The lease holder's housekeeping.
                    if let Err(e) = store.purge_sessions().await {
                        tracing::warn!(error = %e, "cannot purge expired sessions");
                    }
                    if retention_days > 0 {
                        let days = i64::try_from(retention_days).unwrap_or(i64::MAX / 86_400_000);
                        match store.purge_history(now_ms() - days * 86_400_000).await {
                            Ok(n) if n > 0 => tracing::info!(rows = n, "history past its retention deleted"),
                            Ok(_) => {}
                            Err(e) => tracing::warn!(error = %e, "cannot purge old history"),
                        }
                    }
                }
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, "cannot take the correlation lease"),
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(interval) => {}
            }
        }
    })
}

/// Sends the incident.opened / incident.resolved webhooks of one run.
async fn notify(store: &Store, notifier: &crate::webhook::Notifier, s: &ReconcileStats) {
    if !notifier.is_on() {
        return;
    }
    for (event, ids) in [("incident.opened", &s.opened_ids), ("incident.resolved", &s.resolved_ids)] {
        for id in ids {
            let Ok(uuid) = id.parse() else { continue };
            if let Ok(Some(i)) = store.incident(uuid).await {
                let subject = serde_json::to_value(&i).unwrap_or_default();
                notifier.send(crate::webhook::Event { event, at: now_ms(), subject });
            }
        }
    }
}
