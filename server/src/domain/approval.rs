//! Who must agree before a rollout changes machines, and who may be that second person.
//!
//! One operator alone must not be able to widen exposure across the fleet: a rollout needs a
//! second person's approval when any of its fixes widens exposure or cannot be undone
//! (`rdpfleet_proto::fixes::Risk`), or when it changes more machines than
//! `approval_above_machines`; and its first wave is capped (`max_canary_pct` of the targets, at
//! least one machine), so even an approved rollout is tried small first.
use std::collections::HashSet;

use rdpfleet_proto::fixes::FixInfo;
use uuid::Uuid;

use crate::domain::users::{Account, Role};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApprovalPolicy {
    /// More machines than this need approval whatever the fix.
    pub above_machines: usize,
    /// The first wave holds at most this percentage of the targets (at least one machine).
    pub max_canary_pct: u32,
}

impl ApprovalPolicy {
    /// Why a rollout of these fixes over `machines` machines needs approval (empty: it does
    /// not). A dry run changes nothing and needs none.
    pub fn reasons(&self, fixes: &[&FixInfo], machines: usize, dry_run: bool) -> Vec<String> {
        if dry_run {
            return vec![];
        }
        let mut reasons: Vec<String> = Vec::new();
        for f in fixes {
            if let Some(r) = f.risk.reason(f.id)
                && !reasons.contains(&r)
            {
                reasons.push(r);
            }
        }
        if machines > self.above_machines {
            reasons.push(format!(
                "it changes {machines} machines, more than the {} a rollout may change without approval",
                self.above_machines
            ));
        }
        reasons
    }

    /// The largest first wave for `targets` machines.
    pub fn canary_cap(&self, targets: usize) -> usize {
        (targets * self.max_canary_pct as usize / 100).max(1)
    }
}

/// Why `approver` may not approve a rollout proposed by `proposer` at `proposed_at`, if so.
/// The approver must be another person: not the proposer, not an account the proposer created
/// or promoted (directly or through accounts they made — `sponsors` holds everyone who created
/// or promoted the approver, transitively), and an administrator since before the proposal (an
/// account made or promoted afterwards is exactly what a puppet looks like).
pub fn approver_refusal(
    approver: &Account,
    sponsors: &HashSet<Uuid>,
    proposer: Option<Uuid>,
    proposer_name: &str,
    proposed_at: i64,
) -> Option<&'static str> {
    if proposer.map_or(approver.username == proposer_name, |p| p == approver.id) {
        return Some("a rollout is approved by someone other than its proposer");
    }
    if proposer.is_some_and(|p| sponsors.contains(&p)) {
        return Some("the approver's account was created or promoted by the proposer: approve as another person");
    }
    if approver.role < Role::Admin {
        return Some("your role does not allow this");
    }
    if approver.created_at >= proposed_at || approver.role_changed_at.is_some_and(|t| t >= proposed_at) {
        return Some("the approver's account (or its admin role) is newer than the rollout");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdpfleet_proto::fixes::lookup;

    fn account(role: Role, created_at: i64) -> Account {
        Account {
            id: Uuid::new_v4(),
            username: "a".into(),
            role,
            created_at,
            created_by: None,
            promoted_by: None,
            role_changed_at: None,
            disabled_at: None,
            deleted_at: None,
        }
    }

    #[test]
    fn exposure_irreversibility_and_size_need_approval() {
        let p = ApprovalPolicy { above_machines: 25, max_canary_pct: 5 };
        let f = |id| lookup(id).unwrap();
        assert!(p.reasons(&[f("host.nla.enable")], 25, false).is_empty());
        assert_eq!(p.reasons(&[f("host.nla.enable")], 26, false).len(), 1);
        for id in ["host.rdp.enable", "host.firewall.enable", "host.security_layer.set", "host.network.set_private"] {
            assert!(p.reasons(&[f(id)], 1, false)[0].contains("widens exposure"), "{id}");
        }
        assert!(p.reasons(&[f("client.credentials.delete")], 1, false)[0].contains("cannot be undone"));
        assert!(p.reasons(&[f("host.rdp.enable")], 100_000, true).is_empty(), "a dry run changes nothing");
        assert_eq!(p.reasons(&[f("host.rdp.enable")], 100, false).len(), 2);
    }

    #[test]
    fn the_canary_is_capped_at_a_share_of_the_targets() {
        let p = ApprovalPolicy { above_machines: 25, max_canary_pct: 5 };
        assert_eq!(p.canary_cap(1), 1);
        assert_eq!(p.canary_cap(39), 1);
        assert_eq!(p.canary_cap(40), 2);
        assert_eq!(p.canary_cap(100_000), 5_000);
    }

    #[test]
    fn the_approver_is_another_older_person() {
        let proposer = Uuid::new_v4();
        let mut approver = account(Role::Admin, 10);
        let none = HashSet::new();
        assert_eq!(approver_refusal(&approver, &none, Some(proposer), "p", 100), None);
        assert!(approver_refusal(&approver, &none, Some(approver.id), "p", 100).is_some(), "the proposer");
        assert!(approver_refusal(&approver, &none, None, "a", 100).is_some(), "the proposer by name (old rollouts)");
        assert!(
            approver_refusal(&approver, &HashSet::from([proposer]), Some(proposer), "p", 100).is_some(),
            "a puppet"
        );
        assert!(approver_refusal(&approver, &none, Some(proposer), "p", 10).is_some(), "made after the proposal");
        approver.role_changed_at = Some(150);
        assert!(approver_refusal(&approver, &none, Some(proposer), "p", 100).is_some(), "promoted afterwards");
        assert!(approver_refusal(&account(Role::Operator, 1), &none, Some(proposer), "p", 100).is_some());
    }
}
