//! The demo's machines answer jobs like agents do, so a rollout in the demo runs to its end: a
//! dry run reports what it would change, an apply succeeds (or, on about one machine in
//! twenty-five, fails and changes nothing), and a machine fixed for real reports its problem
//! gone — and its clients report their paths to it healthy again — through the same report path
//! agents use, so the incident resolves at the next correlation.
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use rdpfleet_proto::check::{CheckResult, CheckStatus};
use rdpfleet_proto::job::{JobAction, JobOutcome};
use serde_json::json;
use uuid::Uuid;

use crate::store::dashboard::MachineFilter;
use crate::store::results::host_of;
use crate::store::{Store, StoreResult};

/// How long a simulated agent holds a job before it answers.
const LEASE_MS: i64 = 60_000;

/// Answers the jobs of the machines present now (the seeded fleet), every second, until
/// aborted. A real agent enrolled later answers its own jobs.
pub fn spawn(store: Store) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let Ok(fleet) = store.machines_matching(&MachineFilter::default(), 1_000_000).await else { return };
        let demo: BTreeSet<Uuid> = fleet.iter().map(|m| m.id.0).collect();
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            if let Err(e) = answer_all(&store, &demo).await {
                tracing::warn!(error = %e, "demo agents could not answer their jobs");
            }
        }
    })
}

async fn answer_all(store: &Store, demo: &BTreeSet<Uuid>) -> StoreResult<()> {
    for machine in store.machines_with_deliverable_jobs().await? {
        if !demo.contains(&machine) {
            continue;
        }
        for stored in store.lease_jobs(machine, LEASE_MS, 10).await? {
            let job = &stored.job;
            let fails = job.action == JobAction::Apply && machine.as_bytes()[0] % 25 == 0;
            let (outcome, message, evidence) = match job.action {
                JobAction::DryRun => (
                    JobOutcome::Succeeded,
                    format!("dry run: {} would change this machine's settings; nothing changed", job.fix),
                    json!({"report": {"dry_run": true, "fix": job.fix}}),
                ),
                JobAction::Apply if fails => (
                    JobOutcome::Failed,
                    "simulated failure: the precondition was not met; nothing changed".to_owned(),
                    json!({"report": {"fix": job.fix}}),
                ),
                JobAction::Apply => (
                    JobOutcome::Succeeded,
                    format!("{} applied and verified (simulated)", job.fix),
                    json!({"report": {"fix": job.fix}}),
                ),
                JobAction::Rollback => (
                    JobOutcome::Succeeded,
                    "restored from the backup (simulated)".to_owned(),
                    json!({"report": {"fix": job.fix}}),
                ),
            };
            store.finish_job(machine, job.id, outcome, &message, &evidence).await?;
            if job.action == JobAction::Apply && !fails {
                fixed(store, machine, &job.fix).await?;
            }
        }
    }
    Ok(())
}

/// Whether `fix` resolves `cause`, directly or through a cause it explains.
fn resolves(fix: &str, cause: &str) -> bool {
    let fixed_by = |c: &str| rdpfleet_proto::causes::lookup(c).and_then(|c| c.fix).is_some_and(|f| f == fix);
    fixed_by(cause)
        || rdpfleet_proto::causes::CAUSES
            .iter()
            .any(|c| c.fix == Some(fix) && rdpfleet_proto::explains::explains(c.id, cause))
}

/// After `fix` succeeded on `machine`: its own results with a cause the fix resolves pass, and
/// so do the clients' paths to it that failed for such a cause.
async fn fixed(store: &Store, machine: Uuid, fix: &str) -> StoreResult<()> {
    let Some(m) = store.machine(machine).await? else { return Ok(()) };
    let now = time::OffsetDateTime::now_utc();
    let pass = |evidence: serde_json::Value| CheckResult {
        check: String::new(),
        target: None,
        status: CheckStatus::Pass,
        summary: "compliant".into(),
        cause: None,
        evidence,
        observed_at: now,
        duration_ms: 3,
    };
    let own: Vec<CheckResult> = store
        .latest_results(machine)
        .await?
        .iter()
        .filter(|r| r.status != CheckStatus::Pass && r.cause.as_deref().is_some_and(|c| resolves(fix, c)))
        .map(|r| CheckResult {
            check: r.check_id.clone(),
            target: (!r.target.is_empty()).then(|| r.target.clone()),
            ..pass(json!({}))
        })
        .collect();
    report(store, machine, own).await?;
    // The clients' failing paths toward this host, found the way the host's own page finds them.
    let lower = m.hostname.to_lowercase();
    let short = lower.split('.').next().unwrap_or(&lower).to_owned();
    let (inbound, _) = store.inbound_failures(&[lower.clone(), short.clone()], &short, 1_000_000).await?;
    let mut healed: BTreeMap<String, Vec<CheckResult>> = BTreeMap::new();
    for p in inbound.iter().filter(|p| p.cause.as_deref().is_some_and(|c| resolves(fix, c))) {
        let host = host_of(&p.target);
        let evidence =
            serde_json::from_str(&crate::demo::diagnosis(&p.target, &host, None, None, crate::store::now_ms()))
                .unwrap_or_default();
        healed.entry(p.machine_id.clone()).or_default().push(CheckResult {
            check: rdpfleet_proto::diagnosis::PATH_CHECK.into(),
            target: Some(p.target.clone()),
            summary: "every layer passes".into(),
            ..pass(evidence)
        });
    }
    for (client, results) in healed {
        let Ok(client) = client.parse::<Uuid>() else { continue };
        report(store, client, results).await?;
    }
    Ok(())
}

async fn report(store: &Store, id: Uuid, results: Vec<CheckResult>) -> StoreResult<()> {
    if results.is_empty() {
        return Ok(());
    }
    crate::demo::report_next(store, id, &results).await
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_fix_resolves_its_causes_and_what_they_explain() {
        assert!(super::resolves("host.cert.regenerate", "host.listener_cert_expired"));
        assert!(super::resolves("host.cert.regenerate", "cert.expired"));
        assert!(super::resolves("host.rdp.enable", "host.not_listening"));
        assert!(!super::resolves("host.rdp.enable", "cert.expired"));
    }
}
