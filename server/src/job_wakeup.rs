//! In-memory wake-ups for long-polling agents, so a queued job is delivered at once rather than
//! at the agent's next poll. A lost wake-up only delays delivery: pollers also re-check the
//! database every few seconds (which also covers jobs written by another replica).
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;
use uuid::Uuid;

#[derive(Clone, Default)]
pub struct JobWakeups {
    inner: Arc<Mutex<HashMap<Uuid, Arc<Notify>>>>,
}

impl JobWakeups {
    pub fn for_machine(&self, machine_id: Uuid) -> Arc<Notify> {
        let mut map = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(machine_id).or_default().clone()
    }

    pub fn wake(&self, machine_id: Uuid) {
        let notify = self.inner.lock().unwrap_or_else(|p| p.into_inner()).get(&machine_id).cloned();
        if let Some(n) = notify {
            n.notify_waiters();
        }
    }
}

/// Job polls mark their machine as seen here; `flush` writes the marks of many polls in one
/// statement, so polls — the most frequent request of a fleet — do not each cost a database
/// write (on SQLite each write would also queue for its one write lock).
#[derive(Clone, Default)]
pub struct SeenCache {
    inner: Arc<Mutex<SeenState>>,
}

#[derive(Default)]
struct SeenState {
    /// When each machine was last queued for a write.
    marked: HashMap<Uuid, std::time::Instant>,
    pending: Vec<Uuid>,
}

impl SeenCache {
    /// Marks a machine as heard from now; queued for the next flush at most once per `every`.
    pub fn mark(&self, machine_id: Uuid, every: std::time::Duration) {
        let mut st = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let now = std::time::Instant::now();
        if st.marked.get(&machine_id).is_some_and(|t| now.duration_since(*t) < every) {
            return;
        }
        if st.marked.len() > 1_000_000 {
            st.marked.clear();
        }
        st.marked.insert(machine_id, now);
        st.pending.push(machine_id);
    }

    /// Writes the queued marks.
    pub async fn flush(&self, store: &crate::store::Store) -> crate::store::StoreResult<usize> {
        let pending = std::mem::take(&mut self.inner.lock().unwrap_or_else(|p| p.into_inner()).pending);
        if !pending.is_empty() {
            store.touch_machines(&pending).await?;
        }
        Ok(pending.len())
    }

    /// Flushes every `every` until `cancel`, then once more.
    pub fn spawn_flusher(
        &self,
        store: crate::store::Store,
        every: std::time::Duration,
        cancel: tokio_util::sync::CancellationToken,
    ) -> tokio::task::JoinHandle<()> {
        let seen = self.clone();
        tokio::spawn(async move {
            loop {
                let stop = tokio::select! {
                    () = cancel.cancelled() => true,
                    () = tokio::time::sleep(every) => false,
                };
                if let Err(e) = seen.flush(&store).await {
                    tracing::warn!(error = %e, "could not record when agents were last seen");
                }
                if stop {
                    return;
                }
            }
        })
    }
}

#[cfg(test)]
mod seen_tests {
    use super::*;

    #[test]
    fn a_machine_is_queued_once_per_period() {
        let seen = SeenCache::default();
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        for _ in 0..3 {
            seen.mark(a, std::time::Duration::from_secs(30));
        }
        seen.mark(b, std::time::Duration::from_secs(30));
        seen.mark(a, std::time::Duration::ZERO);
        assert_eq!(seen.inner.lock().unwrap().pending, vec![a, b, a]);
    }
}
