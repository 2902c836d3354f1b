//! Job handling. This version has no fix catalogue yet: every job is answered `refused`
//! ("unknown fix"), so the server learns at once that nothing was changed. Job ids already
//! answered are remembered so a redelivered job is not processed twice.
use std::collections::HashSet;

use rdpfleet_proto::job::{Job, JobOutcome, JobResultRequest};
use serde_json::json;

use crate::client::{Client, ClientError};

#[derive(Default)]
pub struct JobHandler {
    answered: HashSet<uuid::Uuid>,
}

impl JobHandler {
    pub fn decide(&self, job: &Job, machine_id: uuid::Uuid) -> JobResultRequest {
        let message = if job.machine_id != machine_id {
            "job is addressed to another machine".to_owned()
        } else {
            format!("this agent ({}) has no fix {:?}; nothing was changed", crate::AGENT_VERSION, job.fix)
        };
        JobResultRequest {
            outcome: JobOutcome::Refused,
            message,
            evidence: json!({"fix": job.fix, "action": job.action}),
        }
    }

    pub async fn handle(&mut self, client: &Client, machine_id: uuid::Uuid, job: &Job) -> Result<(), ClientError> {
        if self.answered.contains(&job.id) {
            return Ok(());
        }
        let answer = self.decide(job, machine_id);
        tracing::warn!(job = %job.id, fix = %job.fix, "refusing job: {}", answer.message);
        client.job_result(machine_id, job.id, &answer).await?;
        self.answered.insert(job.id);
        Ok(())
    }
}
