//! A rollout: one catalogue fix for a set of machines, in waves, with a second person's
//! approval when the policy asks for it. This module defines its two state machines (the
//! rollout's and each target machine's), the actions people take and what the engine does, and
//! the only table of allowed transitions; the store refuses any move that is not in it.
use crate::domain::ids::{JobId, MachineId, RolloutId, UserId};
use crate::domain::users::Role;

/// Where a rollout stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RolloutState {
    /// Proposed; a second person must approve it before it can start.
    AwaitingApproval,
    /// May be started.
    Ready,
    /// The engine is handing out the current wave's jobs.
    Running,
    Paused,
    /// A wave had more failures than allowed; that wave's changes were rolled back.
    Halted,
    Aborted,
    Completed,
}

crate::domain::text_enum!(RolloutState { AwaitingApproval = "awaiting_approval", Ready = "ready", Running = "running", Paused = "paused", Halted = "halted", Aborted = "aborted", Completed = "completed" });

impl RolloutState {
    /// The one table of allowed moves. `Running → Running` is the engine opening the next wave.
    pub fn can_move_to(self, to: RolloutState) -> bool {
        use RolloutState::*;
        matches!(
            (self, to),
            (AwaitingApproval, Ready | Aborted)
                | (Ready, Running | Aborted)
                | (Running, Running | Paused | Halted | Aborted | Completed)
                | (Paused, Running | Aborted)
                | (Halted, Aborted)
        )
    }

    /// The engine no longer hands out jobs (it may still collect rollback answers).
    pub fn is_final(self) -> bool {
        matches!(self, RolloutState::Aborted | RolloutState::Completed)
    }
}

/// Where one machine of a rollout stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetState {
    /// Its wave has not reached it.
    Pending,
    /// Its apply (or dry-run) job is out.
    Running,
    Succeeded,
    Failed,
    /// Its rollback job is out.
    RollingBack,
    RolledBack,
    /// The rollout was aborted before its job was created.
    Cancelled,
}

crate::domain::text_enum!(TargetState { Pending = "pending", Running = "running", Succeeded = "succeeded", Failed = "failed", RollingBack = "rolling_back", RolledBack = "rolled_back", Cancelled = "cancelled" });

impl TargetState {
    /// The one table of a target's allowed moves: a job goes out, its answer comes back.
    pub fn can_move_to(self, to: TargetState) -> bool {
        use TargetState::*;
        matches!(
            (self, to),
            (Pending, Running | Cancelled)
                | (Running, Succeeded | Failed)
                | (Succeeded, RollingBack)
                | (RollingBack, RolledBack | Failed)
        )
    }

    /// A job of this target is out and unanswered.
    pub fn is_in_flight(self) -> bool {
        matches!(self, TargetState::Running | TargetState::RollingBack)
    }
}

/// What a person can do to a rollout (the JSON API and the dashboard's forms alike).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Approve,
    Start,
    Pause,
    Resume,
    Abort,
}

/// Who may take an action, from which states, into which state, and its audit action.
#[derive(Debug, Clone, Copy)]
pub struct ActionRule {
    pub role: Role,
    pub from: &'static [RolloutState],
    pub to: RolloutState,
    pub audit_action: &'static str,
}

impl Action {
    pub const ALL: [Action; 5] = [Action::Approve, Action::Start, Action::Pause, Action::Resume, Action::Abort];

    pub fn parse(s: &str) -> Option<Action> {
        match s {
            "approve" => Some(Action::Approve),
            "start" => Some(Action::Start),
            "pause" => Some(Action::Pause),
            "resume" => Some(Action::Resume),
            "abort" => Some(Action::Abort),
            _ => None,
        }
    }

    pub fn rule(self) -> ActionRule {
        use RolloutState::*;
        let (role, from, to, audit_action): (Role, &'static [RolloutState], RolloutState, &'static str) = match self {
            Action::Approve => (Role::Admin, &[AwaitingApproval], Ready, "rollout.approved"),
            Action::Start => (Role::Operator, &[Ready], Running, "rollout.started"),
            Action::Pause => (Role::Operator, &[Running], Paused, "rollout.paused"),
            Action::Resume => (Role::Operator, &[Paused], Running, "rollout.resumed"),
            Action::Abort => {
                (Role::Operator, &[AwaitingApproval, Ready, Running, Paused, Halted], Aborted, "rollout.aborted")
            }
        };
        ActionRule { role, from, to, audit_action }
    }
}

/// What the engine does with a running rollout whose current wave has every answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WaveOutcome {
    /// More failures than allowed: halt and roll the wave's successes back.
    Halt {
        reason: String,
    },
    /// Open the next wave.
    Next(i64),
    Complete,
}

impl WaveOutcome {
    /// Decides on a finished wave: `failed` machines of it, and whether a later wave exists.
    pub fn of(wave: i64, failed: i64, max_failures: i64, later_wave: bool) -> WaveOutcome {
        if failed > max_failures {
            WaveOutcome::Halt {
                reason: format!("wave {wave}: {failed} machine(s) failed, more than the {max_failures} allowed"),
            }
        } else if later_wave {
            WaveOutcome::Next(wave + 1)
        } else {
            WaveOutcome::Complete
        }
    }

    /// The rollout's state after this outcome.
    pub fn state(&self) -> RolloutState {
        match self {
            WaveOutcome::Halt { .. } => RolloutState::Halted,
            WaveOutcome::Next(_) => RolloutState::Running,
            WaveOutcome::Complete => RolloutState::Completed,
        }
    }
}

/// Wave numbers for `n` machines: `canary` in wave 1, each later wave `growth` times larger.
pub fn waves(n: usize, canary: usize, growth: usize) -> Vec<i64> {
    let mut out = Vec::with_capacity(n);
    let (mut size, mut wave) = (canary.max(1), 1i64);
    while out.len() < n {
        for _ in 0..size.min(n - out.len()) {
            out.push(wave);
        }
        wave += 1;
        size = size.saturating_mul(growth.max(1));
    }
    out
}

/// A rollout as stored (its serialized form is what webhooks receive).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Rollout {
    pub id: RolloutId,
    pub fix_id: String,
    /// The fix's parameters (a JSON object, or null).
    pub params: serde_json::Value,
    pub dry_run: bool,
    /// Where it came from (`incident:<id>`), when proposed from an incident.
    pub source: Option<String>,
    pub state: RolloutState,
    pub proposed_by: String,
    /// The proposer's account (absent on rollouts from before it was kept).
    #[serde(skip)]
    pub proposed_by_id: Option<UserId>,
    pub approved_by: Option<String>,
    pub canary: i64,
    pub growth: i64,
    pub max_failures: i64,
    pub current_wave: i64,
    pub halted_reason: Option<String>,
    /// Why a second person must approve it (empty: it needs no approval).
    pub approval_reasons: Vec<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// One machine of a rollout, with its jobs and the agent's last answer.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Target {
    pub machine_id: MachineId,
    pub hostname: String,
    /// The fix for this machine's platform.
    pub fix_id: String,
    pub wave: i64,
    pub state: TargetState,
    pub job_id: Option<JobId>,
    pub rollback_job_id: Option<JobId>,
    pub message: Option<String>,
    /// The agent's report of the (apply or dry-run) job: what was, or would be, changed.
    pub evidence: Option<serde_json::Value>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waves_grow_from_the_canary() {
        assert_eq!(waves(10, 1, 3), vec![1, 2, 2, 2, 3, 3, 3, 3, 3, 3]);
        assert_eq!(waves(3, 5, 2), vec![1, 1, 1]);
        assert_eq!(waves(0, 1, 2), Vec::<i64>::new());
    }

    #[test]
    fn states_round_trip_as_text() {
        for s in RolloutState::ALL {
            assert_eq!(RolloutState::parse(s.as_str()), Some(s));
            assert_eq!(serde_json::to_value(s).unwrap(), serde_json::json!(s.as_str()));
        }
        for s in TargetState::ALL {
            assert_eq!(TargetState::parse(s.as_str()), Some(s));
        }
        assert_eq!(RolloutState::parse("Running"), None);
    }

    #[test]
    fn every_action_moves_along_the_table() {
        for a in Action::ALL {
            let rule = a.rule();
            assert!(!rule.from.is_empty(), "{a:?}");
            for from in rule.from {
                assert!(from.can_move_to(rule.to), "{a:?}: {from} -> {} is not in the table", rule.to);
            }
        }
    }

    #[test]
    fn final_states_go_nowhere_and_approval_comes_first() {
        for from in RolloutState::ALL.into_iter().filter(|s| s.is_final()) {
            assert!(RolloutState::ALL.iter().all(|to| !from.can_move_to(*to)), "{from}");
        }
        // Nothing skips the approval: only approving (or aborting) leaves it.
        let out: Vec<_> =
            RolloutState::ALL.into_iter().filter(|to| RolloutState::AwaitingApproval.can_move_to(*to)).collect();
        assert_eq!(out, vec![RolloutState::Ready, RolloutState::Aborted]);
        assert!(!RolloutState::Halted.can_move_to(RolloutState::Running), "a halted rollout cannot resume");
        assert!(!RolloutState::Paused.can_move_to(RolloutState::Completed));
    }

    #[test]
    fn targets_get_one_job_then_an_answer() {
        use TargetState::*;
        assert!(Pending.can_move_to(Running));
        assert!(!Pending.can_move_to(Succeeded), "no answer without a job");
        assert!(!Failed.can_move_to(RollingBack), "only a success is rolled back");
        assert!(!RolledBack.can_move_to(Running));
        assert!(Running.is_in_flight() && RollingBack.is_in_flight() && !Succeeded.is_in_flight());
    }

    #[test]
    fn a_finished_wave_halts_opens_the_next_or_completes() {
        let halt = WaveOutcome::of(2, 3, 1, true);
        assert_eq!(halt, WaveOutcome::Halt { reason: "wave 2: 3 machine(s) failed, more than the 1 allowed".into() });
        assert_eq!(WaveOutcome::of(2, 1, 1, true), WaveOutcome::Next(3));
        assert_eq!(WaveOutcome::of(3, 0, 0, false), WaveOutcome::Complete);
        for o in [halt, WaveOutcome::Next(3), WaveOutcome::Complete] {
            assert!(RolloutState::Running.can_move_to(o.state()));
        }
    }
}
