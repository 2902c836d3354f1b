//! The Overview's fleet-wide health counts, recounted in the background. Counting every
//! machine's health is the one query on that page that grows with the fleet (tens of
//! milliseconds at 100,000 machines on PostgreSQL while reports stream in); the page shows
//! the last count and when it was taken instead of making each visitor wait for a new one.
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::domain::health::OFFLINE_AFTER_MS;
use crate::store::dashboard::HealthCounts;
use crate::store::{Store, StoreResult, now_ms};

/// A count older than this (the refresher is stuck or failing) is taken anew by the request.
const MAX_AGE_MS: i64 = 30_000;

#[derive(Debug, Default)]
pub struct FleetCounts {
    latest: RwLock<Option<(HealthCounts, i64)>>,
}

impl FleetCounts {
    /// The latest counts and when (Unix ms) they were taken.
    pub async fn get(&self, store: &Store) -> StoreResult<(HealthCounts, i64)> {
        let latest = self.latest.read().unwrap_or_else(|p| p.into_inner()).clone();
        match latest {
            Some((counts, at)) if now_ms() - at < MAX_AGE_MS => Ok((counts, at)),
            _ => self.recount(store).await,
        }
    }

    async fn recount(&self, store: &Store) -> StoreResult<(HealthCounts, i64)> {
        let at = now_ms();
        let counts = store.health_counts(OFFLINE_AFTER_MS).await?;
        *self.latest.write().unwrap_or_else(|p| p.into_inner()) = Some((counts.clone(), at));
        Ok((counts, at))
    }

    /// Recounts every `period` until `cancel`.
    pub fn spawn_refresher(
        self: Arc<Self>,
        store: Store,
        period: Duration,
        cancel: CancellationToken,
    ) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    () = cancel.cancelled() => return,
                    _ = tick.tick() => {
                        if let Err(e) = self.recount(&store).await {
                            tracing::warn!(error = %e, "fleet counts: recount failed");
                        }
                    }
                }
            }
        })
    }
}
