//! Report delivery: numbered batches, delivered in order from the on-disk outbox.
use rdpfleet_proto::check::CheckResult;
use rdpfleet_proto::report::ReportRequest;
use uuid::Uuid;

use crate::client::{Client, ClientError};
use crate::outbox::Outbox;
use crate::sequence::Sequence;

pub struct Reporter {
    client: Client,
    machine_id: Uuid,
    sequence: Sequence,
    outbox: Outbox,
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
    /// A sequence number is never reused: after a crash between queuing a report and saving the
    /// next number, the outbox's highest number wins.
    pub fn new(client: Client, machine_id: Uuid, mut sequence: Sequence, outbox: Outbox) -> std::io::Result<Reporter> {
        if let Some(last) = outbox.last_seq() {
            sequence.advance_past(last)?;
        }
        Ok(Reporter { client, machine_id, sequence, outbox })
    }

    pub fn queued(&self) -> usize {
        self.outbox.len()
    }

    pub fn dropped(&self) -> u64 {
        self.outbox.dropped()
    }

    /// Numbers a batch and queues it on disk (dropping the oldest when the outbox is full). The
    /// report is in the outbox before its number is used up, so a crash in between leaves no gap.
    pub fn enqueue(&mut self, results: Vec<CheckResult>) -> std::io::Result<u64> {
        let seq = self.sequence.peek();
        let report =
            ReportRequest { seq, agent_version: Some(crate::agent_version().to_owned()), dropped_reports: 0, results };
        self.outbox.push(&report)?;
        self.sequence.take()?;
        Ok(seq)
    }

    /// Sends queued batches in order until one fails.
    pub async fn deliver(&mut self) -> Delivery {
        loop {
            let mut report = match self.outbox.front() {
                Ok(Some(r)) => r,
                Ok(None) => return Delivery::Done,
                Err(e) => {
                    tracing::error!(error = %e, "cannot read the outbox");
                    return Delivery::Retry;
                }
            };
            // The count as of sending, not queuing: the server keeps the highest it has seen.
            report.dropped_reports = self.outbox.dropped();
            match self.client.report(self.machine_id, &report).await {
                Ok(resp) => {
                    tracing::info!(
                        seq = resp.seq,
                        stored = resp.stored,
                        transitions = resp.transitions,
                        duplicate = resp.duplicate,
                        queued = self.outbox.len().saturating_sub(1),
                        "report delivered"
                    );
                    if let Err(e) = self.outbox.pop_front() {
                        tracing::error!(error = %e, "cannot remove a delivered report from the outbox");
                        return Delivery::Retry;
                    }
                }
                Err(ClientError::Unauthorized) => return Delivery::Unauthorized,
                Err(e) if e.is_retryable() => {
                    tracing::warn!(error = %e, queued = self.outbox.len(), "report not delivered; will retry");
                    return Delivery::Retry;
                }
                Err(e) => {
                    // A 4xx other than 401 will fail the same way every time: drop it, say so.
                    tracing::error!(error = %e, seq = report.seq, "server refused a report; dropping it");
                    if self.outbox.pop_front().and_then(|()| self.outbox.count_lost(1)).is_err() {
                        return Delivery::Retry;
                    }
                }
            }
        }
    }
}
