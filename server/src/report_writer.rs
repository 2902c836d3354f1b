//! Group commit for agent reports: concurrent reports queue here and one writer stores up to
//! `MAX_BATCH` of them per transaction. Each report still gets its own outcome (stored once,
//! duplicates recognised by its machine's high-water mark); a batch that fails is retried one
//! report at a time, so one bad report cannot fail the others.
use rdpfleet_proto::check::CheckResult;
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use crate::store::results::{ReportIn, ReportOutcome};
use crate::store::{Store, StoreError, StoreResult};

const MAX_BATCH: usize = 64;

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

#[derive(Clone)]
pub struct ReportWriter {
    queue: mpsc::Sender<Pending>,
    store: Store,
}

impl ReportWriter {
    /// Starts the writer on the current runtime.
    pub fn spawn(store: Store) -> ReportWriter {
        let (queue, mut rx) = mpsc::channel::<Pending>(4096);
        let writer = store.clone();
        tokio::spawn(async move {
            while let Some(first) = rx.recv().await {
                let mut batch = vec![first];
                while batch.len() < MAX_BATCH {
                    match rx.try_recv() {
                        Ok(p) => batch.push(p),
                        Err(_) => break,
                    }
                }
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
        });
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
