//! Agent updates as rollouts: each target's job carries the release for its platform, lives
//! only as long as the health gate, and counts as succeeded only when the machine reports the
//! new version.
use rdpfleet_proto::job::{JobOutcome, JobResultRequest};
use rdpfleet_proto::release::{AGENT_UPDATE, Platform, UpdateParams};

use crate::domain::{DomainError, DomainResult};
use crate::store::Store;

/// The largest agent binary a release may hold.
pub const MAX_RELEASE_BYTES: usize = 256 << 20;
/// How long an updated agent has to start and report by default.
const DEFAULT_GATE_MINS: u64 = 15;

/// The health gate of an update rollout's parameters, in milliseconds.
pub fn gate_ms(params: &serde_json::Value) -> i64 {
    let mins = params["health_gate_mins"].as_u64().unwrap_or(DEFAULT_GATE_MINS).clamp(1, 1440);
    i64::try_from(mins * 60_000).unwrap_or(i64::MAX)
}

fn version_of(params: &serde_json::Value) -> DomainResult<&str> {
    params["version"].as_str().ok_or_else(|| DomainError::Invalid("an agent update names a version".into()))
}

/// Refuses an update rollout to machines whose platform has no release of the version.
pub async fn check_available(
    store: &Store,
    params: &serde_json::Value,
    machines: &[(String, String)],
) -> DomainResult<()> {
    let version = version_of(params)?;
    let mut seen: Vec<Platform> = Vec::new();
    for (hostname, os) in machines {
        let platform = Platform::of_os(os)
            .ok_or_else(|| DomainError::Invalid(format!("{hostname} ({os}) has no agent releases")))?;
        if seen.contains(&platform) {
            continue;
        }
        if store.release_for(version, platform).await?.is_none() {
            return Err(DomainError::Invalid(format!(
                "there is no release {version} for {platform} ({hostname}); add it with \
                 `rdpfleet-server release add FILE --version {version} --platform {platform}`"
            )));
        }
        seen.push(platform);
    }
    Ok(())
}

/// The signed parameters of one machine's update job.
pub async fn job_params(store: &Store, params: &serde_json::Value, os: &str) -> DomainResult<serde_json::Value> {
    let version = version_of(params)?;
    let platform = Platform::of_os(os).ok_or_else(|| DomainError::Invalid(format!("{os} has no agent releases")))?;
    let r = store
        .release_for(version, platform)
        .await?
        .ok_or_else(|| DomainError::Invalid(format!("there is no release {version} for {platform}")))?;
    let p = UpdateParams {
        release: r.id,
        version: r.version,
        platform,
        sha256: r.sha256,
        size: u64::try_from(r.size).unwrap_or(0),
        signature: r.signature,
        health_gate_secs: u64::try_from(gate_ms(params) / 1000).unwrap_or(900),
    };
    serde_json::to_value(p).map_err(|e| DomainError::Invalid(e.to_string()))
}

/// The health gate: an update's success counts only when the machine's last report came from
/// the new version (the agent answers after its first report from the new build).
pub async fn judge_result(
    store: &Store,
    machine_id: uuid::Uuid,
    job_id: uuid::Uuid,
    req: JobResultRequest,
) -> DomainResult<JobResultRequest> {
    if req.outcome != JobOutcome::Succeeded {
        return Ok(req);
    }
    let Some(stored) = store.job(job_id).await? else { return Ok(req) };
    if stored.job.fix != AGENT_UPDATE || stored.job.action != rdpfleet_proto::job::JobAction::Apply {
        return Ok(req);
    }
    let want = stored.job.params["version"].as_str().unwrap_or_default().to_owned();
    let reported = store.machine(machine_id).await?.map(|m| m.agent_version).unwrap_or_default();
    if reported == want {
        return Ok(req);
    }
    Ok(JobResultRequest {
        outcome: JobOutcome::Failed,
        message: format!(
            "the agent answered that it updated to {want}, but the machine last reported version {reported:?}: \
             not counted as succeeded"
        ),
        evidence: req.evidence,
    })
}

/// A release and the `agent.update` rollouts to its version.
pub struct ReleaseRollouts {
    pub release: crate::store::releases::Release,
    pub rollouts: Vec<crate::domain::rollout::Rollout>,
}

/// Every release with the update rollouts to its version, newest first.
pub async fn with_rollouts(store: &Store) -> DomainResult<Vec<ReleaseRollouts>> {
    let rollouts = store.rollouts(500).await?;
    let releases = store.releases().await?;
    Ok(releases
        .into_iter()
        .map(|release| ReleaseRollouts {
            rollouts: rollouts
                .iter()
                .filter(|x| x.fix_id == AGENT_UPDATE && x.params["version"].as_str() == Some(release.version.as_str()))
                .cloned()
                .collect(),
            release,
        })
        .collect())
}

/// Proposes an update to `release` of every machine of its platform that runs an older version.
pub async fn propose_update(
    store: &Store,
    policy: crate::domain::approval::ApprovalPolicy,
    proposer: &crate::domain::users::User,
    release: uuid::Uuid,
    canary: Option<i64>,
    dry_run: bool,
) -> DomainResult<crate::domain::ids::RolloutId> {
    let r = store.release(release).await?.ok_or(DomainError::NotFound("release"))?;
    let target = semver::Version::parse(&r.version).map_err(|e| DomainError::Invalid(e.to_string()))?;
    let machines: Vec<uuid::Uuid> = store
        .agent_versions()
        .await?
        .into_iter()
        .filter(|(_, os, v)| {
            Platform::of_os(os) == Some(r.platform) && semver::Version::parse(v).is_ok_and(|v| v < target)
        })
        .map(|(id, _, _)| id)
        .collect();
    if machines.is_empty() {
        return Err(DomainError::Invalid(format!("no {} machine runs a version older than {}", r.platform, r.version)));
    }
    let proposal = crate::services::rollouts::Proposal {
        fix: AGENT_UPDATE.to_owned(),
        params: serde_json::json!({"version": r.version}),
        machines,
        incident: None,
        repeat_of: None,
        dry_run,
        canary,
        growth: None,
        max_failures: None,
    };
    crate::services::rollouts::create(store, policy, proposer, &proposal).await
}
