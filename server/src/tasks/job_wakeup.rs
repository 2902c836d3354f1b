//! In-memory wake-ups for long-polling agents, and an index of the machines that may have a job
//! to collect, so that a poll — the most frequent request of a fleet — costs no database query
//! when its machine has nothing queued (almost always).
//!
//! The index only ever errs towards "may have work": a machine leaves it only when a poll asked
//! the database and found nothing, and no wake-up came in the meantime. Jobs written elsewhere
//! (another replica, a lease that ran out) reach it through `refresh`, which a background task
//! runs every few seconds, and PostgreSQL's notifications.
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;
use uuid::Uuid;

#[derive(Clone, Default)]
pub struct JobWakeups {
    inner: Arc<Mutex<Wakeups>>,
}

#[derive(Default)]
struct Wakeups {
    notifies: HashMap<Uuid, Arc<Notify>>,
    /// Machines that may have deliverable jobs, each with the generation of its last wake-up.
    open: HashMap<Uuid, u64>,
    generation: u64,
    /// False until the first read of the database: until then every poll asks the database.
    loaded: bool,
}

/// What the index says of a machine's jobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobHint {
    /// Nothing to collect: no need to ask the database.
    Nothing,
    /// Ask the database; pass the token to [`JobWakeups::settle`] if it had nothing.
    Ask(u64),
}

impl JobWakeups {
    fn lock(&self) -> std::sync::MutexGuard<'_, Wakeups> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn for_machine(&self, machine_id: Uuid) -> Arc<Notify> {
        self.lock().notifies.entry(machine_id).or_default().clone()
    }

    /// Jobs were queued for these machines.
    pub fn wake_all(&self, machines: impl IntoIterator<Item = Uuid>) {
        for m in machines {
            self.wake(m);
        }
    }

    /// A job was queued for `machine_id`: its pollers look at once.
    pub fn wake(&self, machine_id: Uuid) {
        let notify = {
            let mut w = self.lock();
            w.generation += 1;
            let generation = w.generation;
            w.open.insert(machine_id, generation);
            w.notifies.get(&machine_id).cloned()
        };
        if let Some(n) = notify {
            n.notify_waiters();
        }
    }

    /// True once the index has been read from the database.
    pub fn loaded(&self) -> bool {
        self.lock().loaded
    }

    pub fn hint(&self, machine_id: Uuid) -> JobHint {
        let w = self.lock();
        match w.open.get(&machine_id) {
            Some(&generation) => JobHint::Ask(generation),
            None if w.loaded => JobHint::Nothing,
            // Not loaded yet: 0 is no generation, so `settle` keeps nothing out of the index.
            None => JobHint::Ask(0),
        }
    }

    /// The database had nothing to deliver to `machine_id`: drop it from the index, unless it
    /// was woken after `hint` handed out `token`.
    pub fn settle(&self, machine_id: Uuid, token: JobHint) {
        let JobHint::Ask(generation) = token else { return };
        let mut w = self.lock();
        if w.open.get(&machine_id) == Some(&generation) {
            w.open.remove(&machine_id);
        }
    }

    /// Adds the machines the database says have deliverable jobs (waking their pollers if the
    /// index did not know); the first call turns the index on.
    pub fn refresh(&self, machines: &[Uuid]) {
        let mut wake = Vec::new();
        {
            let mut w = self.lock();
            for &m in machines {
                if !w.open.contains_key(&m) {
                    w.generation += 1;
                    let generation = w.generation;
                    w.open.insert(m, generation);
                    if let Some(n) = w.notifies.get(&m) {
                        wake.push(n.clone());
                    }
                }
            }
            w.loaded = true;
        }
        for n in wake {
            n.notify_waiters();
        }
    }

    /// Reads the machines with deliverable jobs into the index now, then every `every` until
    /// `cancel`. Polls ask the database for every machine until the first read succeeds.
    pub fn spawn_refresher(
        &self,
        store: crate::store::Store,
        every: std::time::Duration,
        cancel: tokio_util::sync::CancellationToken,
    ) -> tokio::task::JoinHandle<()> {
        let wakeups = self.clone();
        tokio::spawn(async move {
            loop {
                match store.machines_with_deliverable_jobs().await {
                    Ok(machines) => wakeups.refresh(&machines),
                    Err(e) => tracing::warn!(error = %e, "could not read which machines have jobs"),
                }
                tokio::select! {
                    () = cancel.cancelled() => return,
                    () = tokio::time::sleep(every) => {}
                }
            }
        })
    }
}

#[cfg(test)]
mod index_tests {
    use super::*;

    #[test]
    fn until_loaded_every_poll_asks_the_database() {
        let w = JobWakeups::default();
        let m = Uuid::new_v4();
        let hint = w.hint(m);
        assert_eq!(hint, JobHint::Ask(0));
        w.settle(m, hint);
        assert_eq!(w.hint(m), JobHint::Ask(0));
        w.refresh(&[]);
        assert_eq!(w.hint(m), JobHint::Nothing);
    }

    #[test]
    fn a_machine_leaves_the_index_only_when_the_database_had_nothing_since_its_last_wake() {
        let w = JobWakeups::default();
        w.refresh(&[]);
        let m = Uuid::new_v4();
        w.wake(m);
        let first = w.hint(m);
        assert!(matches!(first, JobHint::Ask(_)));
        // A job queued while the poll was asking the database keeps the machine in.
        w.wake(m);
        w.settle(m, first);
        let second = w.hint(m);
        assert!(matches!(second, JobHint::Ask(_)));
        w.settle(m, second);
        assert_eq!(w.hint(m), JobHint::Nothing);
    }

    #[test]
    fn refresh_adds_and_wakes_but_never_removes() {
        let w = JobWakeups::default();
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        w.wake(a);
        let notify = w.for_machine(b);
        let woken = notify.notified();
        tokio::pin!(woken);
        woken.as_mut().enable();
        w.refresh(&[b]);
        assert!(matches!(w.hint(a), JobHint::Ask(_)));
        assert!(matches!(w.hint(b), JobHint::Ask(_)));
        assert!(futures_poll_ready(woken.as_mut()));
    }

    fn futures_poll_ready(f: std::pin::Pin<&mut tokio::sync::futures::Notified<'_>>) -> bool {
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        std::future::Future::poll(f, &mut cx).is_ready()
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
