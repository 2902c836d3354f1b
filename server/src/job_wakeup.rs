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

/// When each machine's `last_seen_at` was last written by a poll: a poll every few seconds must
/// not cost a database write each time (reports write it too).
#[derive(Clone, Default)]
pub struct SeenCache {
    inner: Arc<Mutex<HashMap<Uuid, std::time::Instant>>>,
}

impl SeenCache {
    /// Whether to write now (and remember that we did).
    pub fn should_touch(&self, machine_id: Uuid, every: std::time::Duration) -> bool {
        let mut map = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let now = std::time::Instant::now();
        match map.get(&machine_id) {
            Some(t) if now.duration_since(*t) < every => false,
            _ => {
                if map.len() > 1_000_000 {
                    map.clear();
                }
                map.insert(machine_id, now);
                true
            }
        }
    }
}
