//! Report delivery: numbered batches, delivered in order, kept while the server is away.
use std::collections::VecDeque;

use rdpfleet_proto::check::CheckResult;
use rdpfleet_proto::report::ReportRequest;
use uuid::Uuid;

use crate::client::{Client, ClientError};
use crate::sequence::Sequence;

pub struct Reporter {
    client: Client,
    machine_id: Uuid,
    sequence: Sequence,
    queue: VecDeque<ReportRequest>,
    capacity: usize,
    /// Batches dropped because the queue was full (the server was away too long).
    pub dropped: u64,
}

/// Result of one delivery attempt.
#[derive(Debug, PartialEq, Eq)]
pub enum Delivery {
    /// Everything queued was acknowledged.
    Done,
    /// The server could not be reached or failed; the rest stays queued.
    Retry,
    /// The credential was refused; nothing more can be sent until the agent is enrolled again.
    Unauthorized,
}

impl Reporter {
    pub fn new(client: Client, machine_id: Uuid, sequence: Sequence, capacity: usize) -> Reporter {
        Reporter { client, machine_id, sequence, queue: VecDeque::new(), capacity, dropped: 0 }
    }

    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// Numbers a batch (the number is on disk first) and queues it, dropping the oldest
    /// batch when the queue is full.
    pub fn enqueue(&mut self, results: Vec<CheckResult>) -> std::io::Result<u64> {
        let seq = self.sequence.take()?;
        if self.queue.len() >= self.capacity {
            self.queue.pop_front();
            self.dropped += 1;
            tracing::warn!(dropped_total = self.dropped, "report queue full; dropped the oldest report");
        }
        self.queue.push_back(ReportRequest { seq, agent_version: Some(crate::AGENT_VERSION.to_owned()), results });
        Ok(seq)
    }

    /// Sends queued batches in order until one fails.
    pub async fn deliver(&mut self) -> Delivery {
        while let Some(front) = self.queue.front() {
            match self.client.report(self.machine_id, front).await {
                Ok(resp) => {
                    tracing::info!(
                        seq = resp.seq,
                        stored = resp.stored,
                        transitions = resp.transitions,
                        duplicate = resp.duplicate,
                        "report delivered"
                    );
                    self.queue.pop_front();
                }
                Err(ClientError::Unauthorized) => return Delivery::Unauthorized,
                Err(e) if e.is_retryable() => {
                    tracing::warn!(error = %e, queued = self.queue.len(), "report not delivered; will retry");
                    return Delivery::Retry;
                }
                Err(e) => {
                    // A 4xx other than 401 will fail the same way every time: drop it, say so.
                    tracing::error!(error = %e, seq = front.seq, "server refused a report; dropping it");
                    self.queue.pop_front();
                    self.dropped += 1;
                }
            }
        }
        Delivery::Done
    }
}
