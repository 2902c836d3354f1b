//! What storing one report changes, worked out in Rust from the machine's current results:
//! the latest-result rows, the history transitions, the connection paths and the machine's
//! health. The store then writes the plans of a whole batch with a few multi-row statements.
use std::collections::HashMap;
use std::hash::{Hash, Hasher};

use rdpfleet_proto::check::{CheckResult, CheckStatus};
use serde::Deserialize;

use super::ms_of;
use crate::domain::health::Health;

/// The check whose results are connection paths.
pub const PATH_CHECK: &str = "rdp.path";

/// The host part of `host`, `host:port` or `[v6]:port`.
pub fn host_of(target: &str) -> String {
    if let Some(rest) = target.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest).to_owned();
    }
    match target.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') && p.parse::<u16>().is_ok() => h.to_owned(),
        _ => target.to_owned(),
    }
}

/// A machine's current result for one (check, target): its status, since when, and a
/// fingerprint of its cause. Small on purpose: [`super::current_cache`] holds one per result
/// of every machine in the fleet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Current {
    pub status: CheckStatus,
    pub since: i64,
    pub cause: CauseFingerprint,
    /// For an `rdp.path` result, a fingerprint of the connection-path row last written for it
    /// (`None` when not known: the row is then written).
    pub path: Option<u32>,
}

/// A 32-bit fingerprint of a result's cause: a cause only needs comparing (a new cause within
/// a status is history), and two different causes of one result sharing a fingerprint by
/// chance (about 1 in 4 billion) costs one history row that is not written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct CauseFingerprint(u32);

impl CauseFingerprint {
    pub fn of(cause: Option<&str>) -> CauseFingerprint {
        let mut h = std::hash::DefaultHasher::new();
        cause.hash(&mut h);
        CauseFingerprint(h.finish() as u32)
    }
}

/// A fingerprint of what a connection-path row says (everything but its times).
fn path_fingerprint(p: &PathRow) -> u32 {
    let mut h = std::hash::DefaultHasher::new();
    (&p.target, &p.host, &p.gateway, p.status, &p.layer, &p.cause, &p.addresses).hash(&mut h);
    h.finish() as u32
}

/// A (check, target) key as a 64-bit hash; a machine has a few dozen results, so two of them
/// sharing one by chance is about 1 in 10^16.
pub(super) fn result_key(check: &str, target: &str) -> u64 {
    let mut h = std::hash::DefaultHasher::new();
    (check, target).hash(&mut h);
    h.finish()
}

/// A machine's current results by [`result_key`].
pub(super) type CurrentResults = HashMap<u64, Current>;

/// A latest-result row about to be written.
pub(super) struct ResultRow {
    pub check: String,
    pub target: String,
    pub status: &'static str,
    pub summary: String,
    pub cause: Option<String>,
    pub evidence: String,
    pub observed: i64,
    pub duration: i64,
    pub since: i64,
}

/// A history row about to be written.
pub(super) struct NewTransition {
    pub check: String,
    pub target: String,
    pub from: Option<&'static str>,
    pub to: &'static str,
    pub cause: Option<String>,
    pub summary: String,
    pub evidence: String,
    pub at: i64,
}

/// A connection path about to be written (from an `rdp.path` result's `Diagnosis` evidence).
pub(super) struct PathRow {
    pub target: String,
    pub host: String,
    pub gateway: Option<String>,
    pub status: &'static str,
    pub layer: Option<String>,
    pub cause: Option<String>,
    /// Space-separated addresses the host name resolved to for the client.
    pub addresses: String,
    /// When its status began, when new; a stored path keeps its own while the status holds.
    pub since: i64,
    pub observed: i64,
}

/// The parts of a `Diagnosis` a path row keeps (the report API has validated the whole).
#[derive(serde::Deserialize, Default)]
#[serde(default)]
struct PathEvidence {
    host: Option<String>,
    gateway: Option<String>,
    first_failing_layer: Option<String>,
    dns: Option<DnsEvidence>,
}

#[derive(serde::Deserialize, Default)]
#[serde(default)]
struct DnsEvidence {
    addresses: Vec<String>,
}

impl PathRow {
    fn of(r: &CheckResult) -> PathRow {
        let e = PathEvidence::deserialize(&r.evidence).unwrap_or_default();
        let target = r.target.clone().unwrap_or_default();
        let host = e.host.unwrap_or_else(|| host_of(&target)).to_lowercase();
        let gateway = e.gateway.map(|g| host_of(&g).to_lowercase());
        let observed = ms_of(r.observed_at);
        let addresses = e.dns.map(|d| d.addresses.join(" ")).unwrap_or_default();
        PathRow {
            target,
            host,
            gateway,
            status: r.status.as_str(),
            layer: e.first_failing_layer,
            cause: r.cause.clone(),
            addresses,
            since: observed,
            observed,
        }
    }
}

pub(super) struct ReportPlan {
    pub rows: Vec<ResultRow>,
    pub transitions: Vec<NewTransition>,
    pub paths: Vec<PathRow>,
    pub failing: i64,
    pub health: Health,
    /// The machine's current results once this report is stored.
    pub current: CurrentResults,
}

/// Plans one report against the machine's `current` results. A later result for the same
/// check and target replaces an earlier one, as sequential writes would; history records
/// changes of status, and of cause within a status (a path that keeps failing, but now for
/// another reason, is news).
pub(super) fn plan(results: &[CheckResult], mut current: CurrentResults) -> ReportPlan {
    let mut rows: Vec<ResultRow> = Vec::with_capacity(results.len());
    // Where each key's row is in `rows`, so a repeated key replaces its row in place.
    let mut row_of: HashMap<u64, usize> = HashMap::with_capacity(results.len());
    let mut transitions = Vec::new();
    for r in results {
        let target = r.target.clone().unwrap_or_default();
        let status = r.status;
        let evidence = r.evidence.to_string();
        let observed = ms_of(r.observed_at);
        let cause = CauseFingerprint::of(r.cause.as_deref());
        let key = result_key(&r.check, &target);
        let previous = current.get(&key).copied();
        let path = previous.and_then(|p| p.path);
        let status_changed = previous.is_none_or(|p| p.status != status);
        let changed = status_changed || previous.is_some_and(|p| p.cause != cause);
        let since = match previous {
            Some(p) if !status_changed => p.since,
            _ => observed,
        };
        if changed {
            transitions.push(NewTransition {
                check: r.check.clone(),
                target: target.clone(),
                from: previous.map(|p| p.status.as_str()),
                to: status.as_str(),
                cause: r.cause.clone(),
                summary: r.summary.clone(),
                evidence: evidence.clone(),
                at: observed,
            });
        }
        current.insert(key, Current { status, since, cause, path });
        let row = ResultRow {
            check: r.check.clone(),
            target,
            status: status.as_str(),
            summary: r.summary.clone(),
            cause: r.cause.clone(),
            evidence,
            observed,
            duration: i64::try_from(r.duration_ms).unwrap_or(i64::MAX),
            since,
        };
        // One statement cannot upsert a row twice: a later result for a key wins.
        match row_of.get(&key) {
            Some(&at) => rows[at] = row,
            None => {
                row_of.insert(key, rows.len());
                rows.push(row);
            }
        }
    }
    // One statement cannot upsert a row twice: the last result for a target wins.
    let mut paths: Vec<PathRow> = Vec::new();
    for r in results.iter().filter(|r| r.check == PATH_CHECK) {
        let path = PathRow::of(r);
        paths.retain(|p| p.target != path.target);
        paths.push(path);
    }
    // A path row is written when it says something new against the row last stored (its
    // `observed_at` is when it last changed; the result's own row has the latest observation).
    paths.retain(|path| {
        let Some(now) = current.get_mut(&result_key(PATH_CHECK, &path.target)) else { return true };
        let fingerprint = path_fingerprint(path);
        now.path.replace(fingerprint) != Some(fingerprint)
    });
    let (failing, health) = Health::of_results(current.values().map(|c| c.status.as_str()));
    ReportPlan { rows, transitions, paths, failing, health, current }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(check: &str, target: Option<&str>, status: CheckStatus, cause: Option<&str>) -> CheckResult {
        CheckResult {
            check: check.into(),
            target: target.map(str::to_owned),
            status,
            summary: "s".into(),
            cause: cause.map(str::to_owned),
            evidence: serde_json::json!({}),
            observed_at: time::OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap(),
            duration_ms: 1,
        }
    }

    fn current(status: CheckStatus, since: i64, cause: Option<&str>) -> Current {
        Current { status, since, cause: CauseFingerprint::of(cause), path: None }
    }

    #[test]
    fn unchanged_results_keep_their_since_and_make_no_history() {
        let mut now = CurrentResults::new();
        now.insert(result_key("a", ""), current(CheckStatus::Pass, 5, None));
        let p = plan(&[result("a", None, CheckStatus::Pass, None)], now);
        assert_eq!((p.rows.len(), p.transitions.len(), p.rows[0].since), (1, 0, 5));
        assert_eq!((p.failing, p.health), (0, Health::Pass));
    }

    #[test]
    fn a_new_cause_within_a_status_is_history_but_keeps_since() {
        let mut now = CurrentResults::new();
        now.insert(result_key("rdp.path", "h:3389"), current(CheckStatus::Fail, 5, Some("tls.version")));
        now.insert(result_key("b", ""), current(CheckStatus::Pass, 1, None));
        let p = plan(&[result("rdp.path", Some("h:3389"), CheckStatus::Fail, Some("cert.expired"))], now);
        assert_eq!(p.transitions.len(), 1);
        assert_eq!(p.transitions[0].from, Some("fail"));
        assert_eq!(p.rows[0].since, 5);
        assert_eq!((p.paths.len(), p.paths[0].host.as_str()), (1, "h"));
        // Health counts the machine's results not in this report too.
        assert_eq!((p.failing, p.health), (1, Health::Fail));
    }

    #[test]
    fn a_repeated_result_counts_once_and_the_later_one_wins() {
        let p = plan(
            &[result("a", None, CheckStatus::Fail, None), result("a", None, CheckStatus::Pass, None)],
            CurrentResults::new(),
        );
        assert_eq!(p.rows.len(), 1);
        assert_eq!(p.rows[0].status, "pass");
        assert_eq!(p.transitions.len(), 2);
        assert_eq!((p.failing, p.health), (0, Health::Pass));
    }

    #[test]
    fn a_path_row_is_written_only_when_it_says_something_new() {
        let path = |gateway: &str| {
            let mut r = result("rdp.path", Some("h:3389"), CheckStatus::Pass, None);
            r.evidence = serde_json::json!({"host": "h", "gateway": gateway});
            r
        };
        let first = plan(&[path("gw1")], CurrentResults::new());
        assert_eq!(first.paths.len(), 1, "not known yet");
        let again = plan(&[path("gw1")], first.current.clone());
        assert_eq!((again.paths.len(), again.rows.len()), (0, 1), "unchanged: the result row only");
        let moved = plan(&[path("gw2")], again.current.clone());
        assert_eq!(moved.paths.len(), 1, "a new gateway is written");
        // The same path twice in one report, not known before: written once.
        let twice = plan(&[path("gw3"), path("gw3")], moved.current.clone());
        assert_eq!(twice.paths.len(), 1);
        // Read back from the database (fingerprint unknown): written.
        let mut read = moved.current.clone();
        read.values_mut().for_each(|c| c.path = None);
        assert_eq!(plan(&[path("gw2")], read).paths.len(), 1);
    }
}
