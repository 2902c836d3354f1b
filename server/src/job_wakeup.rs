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
