//! Group commit for agent reports: concurrent reports queue here and one writer stores up to
//! `MAX_BATCH` of them per transaction. Each report still gets its own outcome (stored once,
//! duplicates recognised by its machine's high-water mark); a batch that fails is retried one
//! report at a time, so one bad report cannot fail the others.
use rdpfleet_proto::check::CheckResult;
use std::sync::Arc;

use tokio::sync::{Mutex, mpsc, oneshot};
use uuid::Uuid;

use crate::store::results::{ReportIn, ReportOutcome};
use crate::store::{Store, StoreError, StoreResult};

const MAX_BATCH: usize = 64;
/// Concurrent writers on PostgreSQL (each holds one pooled connection while it writes).
const POSTGRES_WRITERS: usize = 4;

struct Pending {
    machine_id: Uuid,
    seq: u64,
    agent_version: Option<String>,
    dropped_reports: u64,
    results: Vec<CheckResult>,
    reply: oneshot::Sender<StoreResult<ReportOutcome>>,
}

impl Pending {
    fn report_in(&self) -> ReportIn<'_> {
        ReportIn {
            machine_id: self.machine_id,
            seq: self.seq,
            agent_version: self.agent_version.as_deref(),
            dropped_reports: self.dropped_reports,
            results: &self.results,
        }
    }
}

fn single(mut outcomes: Vec<ReportOutcome>) -> StoreResult<ReportOutcome> {
    outcomes.pop().ok_or_else(|| StoreError::Corrupt("no outcome".into()))
}

/// Takes up to `MAX_BATCH` waiting reports at a time and stores them in one transaction.
async fn write_batches(writer: Store, rx: Arc<Mutex<mpsc::Receiver<Pending>>>) {
    loop {
        let mut batch = {
            let mut rx = rx.lock().await;
            let Some(first) = rx.recv().await else { return };
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(p) => batch.push(p),
                    Err(_) => break,
                }
            }
            batch
        };
        // Concurrent batches lock machine rows in one order (stable: a machine's reports keep
        // their order), so they cannot deadlock each other.
        batch.sort_by_key(|p| p.machine_id);
        let ins: Vec<ReportIn<'_>> = batch.iter().map(Pending::report_in).collect();
        match writer.store_reports(&ins).await {
            Ok(outcomes) => {
                drop(ins);
                for (p, o) in batch.into_iter().zip(outcomes) {
                    let _ = p.reply.send(Ok(o));
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, reports = batch.len(), "batch failed; storing its reports one by one");
                drop(ins);
                for p in batch {
                    let r = writer.store_reports(&[p.report_in()]).await.and_then(single);
                    let _ = p.reply.send(r);
                }
            }
        }
    }
}

#[derive(Clone)]
pub struct ReportWriter {
    queue: mpsc::Sender<Pending>,
    store: Store,
}

impl ReportWriter {
    /// Starts the writers on the current runtime: one on SQLite (one writer at a time is all
    /// it allows), several on PostgreSQL, where a transaction spends most of its time waiting for
    /// round trips and others can use the connection time meanwhile.
    pub fn spawn(store: Store) -> ReportWriter {
        let writers = match store.backend() {
            crate::store::Backend::Sqlite => 1,
            crate::store::Backend::Postgres => POSTGRES_WRITERS,
        };
        let (queue, rx) = mpsc::channel::<Pending>(4096);
        let rx = Arc::new(Mutex::new(rx));
        for _ in 0..writers {
            tokio::spawn(write_batches(store.clone(), rx.clone()));
        }
        ReportWriter { queue, store }
    }

    /// Stores one report through the group commit (directly if the writer is gone).
    pub async fn store(
        &self,
        machine_id: Uuid,
        seq: u64,
        agent_version: Option<String>,
        dropped_reports: u64,
        results: Vec<CheckResult>,
    ) -> StoreResult<ReportOutcome> {
        let (reply, answer) = oneshot::channel();
        let pending = Pending { machine_id, seq, agent_version, dropped_reports, results, reply };
        match self.queue.send(pending).await {
            Ok(()) => answer.await.map_err(|_| StoreError::Corrupt("the report writer stopped".into()))?,
            Err(mpsc::error::SendError(p)) => self.store.store_reports(&[p.report_in()]).await.and_then(single),
        }
    }
}
