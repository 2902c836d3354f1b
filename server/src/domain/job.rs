//! A signed job's life on the server: queued for its machine, leased to a poll (again when the
//! lease runs out unanswered), then answered by the agent — or expired, or cancelled with its
//! rollout. This is the one table of those moves; the store's statements are written from it.
use rdpfleet_proto::job::JobOutcome;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Waiting for its machine's next poll.
    Queued,
    /// Handed to a poll; delivered again if the lease runs out without an answer.
    Leased,
    /// The agent's answers (`JobOutcome`).
    Succeeded,
    RolledBack,
    Failed,
    Refused,
    /// Not collected before its signed expiry.
    Expired,
    /// Its rollout was aborted before the job was delivered.
    Cancelled,
}

crate::domain::text_enum!(JobState { Queued = "queued", Leased = "leased", Succeeded = "succeeded", RolledBack = "rolled_back", Failed = "failed", Refused = "refused", Expired = "expired", Cancelled = "cancelled" });

impl JobState {
    /// The state an agent's answer puts the job in.
    pub fn of_outcome(outcome: JobOutcome) -> JobState {
        match outcome {
            JobOutcome::Succeeded => JobState::Succeeded,
            JobOutcome::RolledBack => JobState::RolledBack,
            JobOutcome::Failed => JobState::Failed,
            JobOutcome::Refused => JobState::Refused,
        }
    }

    /// The one table of allowed moves. An answer may arrive for a queued job too (the agent
    /// answered a delivery whose lease write was lost); only a queued job can be cancelled.
    pub fn can_move_to(self, to: JobState) -> bool {
        use JobState::*;
        let answer = matches!(to, Succeeded | RolledBack | Failed | Refused);
        match self {
            Queued => answer || matches!(to, Leased | Expired | Cancelled),
            Leased => answer || matches!(to, Leased | Expired),
            _ => false,
        }
    }

    /// Still waiting for an answer (the states every move starts from).
    pub fn is_open(self) -> bool {
        matches!(self, JobState::Queued | JobState::Leased)
    }

    /// The states from which a move to `to` is allowed, as an SQL list: `'queued', 'leased'`.
    pub fn sql_from(to: JobState) -> String {
        Self::ALL
            .iter()
            .filter(|s| s.can_move_to(to))
            .map(|s| format!("'{}'", s.as_str()))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The final states, as an SQL list.
    pub fn sql_final() -> String {
        Self::ALL.iter().filter(|s| !s.is_open()).map(|s| format!("'{}'", s.as_str())).collect::<Vec<_>>().join(", ")
    }
}

/// A job as stored: the signed job an agent receives, where it stands, and how often it was
/// handed out.
#[derive(Debug, Clone)]
pub struct StoredJob {
    pub job: rdpfleet_proto::job::Job,
    pub state: JobState,
    /// Deliveries so far (a lease that ran out unanswered is delivered again).
    pub attempts: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_round_trip_and_answers_map_to_states() {
        for s in JobState::ALL {
            assert_eq!(JobState::parse(s.as_str()), Some(s));
        }
        for o in [JobOutcome::Succeeded, JobOutcome::RolledBack, JobOutcome::Failed, JobOutcome::Refused] {
            assert_eq!(JobState::of_outcome(o).as_str(), o.as_str());
        }
    }

    #[test]
    fn final_states_go_nowhere_and_only_queued_jobs_are_cancelled() {
        for from in JobState::ALL.into_iter().filter(|s| !s.is_open()) {
            assert!(JobState::ALL.iter().all(|to| !from.can_move_to(*to)), "{from}");
        }
        assert!(JobState::Leased.can_move_to(JobState::Leased), "a lease that ran out is leased again");
        assert!(!JobState::Leased.can_move_to(JobState::Cancelled), "a delivered job may be running");
        assert_eq!(JobState::sql_from(JobState::Cancelled), "'queued'");
        assert_eq!(JobState::sql_from(JobState::Succeeded), "'queued', 'leased'");
        assert_eq!(JobState::sql_from(JobState::Expired), "'queued', 'leased'");
        assert_eq!(JobState::sql_final(), "'succeeded', 'rolled_back', 'failed', 'refused', 'expired', 'cancelled'");
    }
}
