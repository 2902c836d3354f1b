//! Runs the catalogue and stamps each finding into a wire `CheckResult`.
use std::time::{Duration, Instant};

use futures::future::join_all;
use rdpfleet_proto::check::{CheckResult, MAX_SUMMARY_LEN};

use crate::config::Target;
use crate::engine::check::{Check, CheckContext, Finding, Scope};

/// Runs every check (per-target checks for all targets concurrently), each bounded by
/// `check_timeout`, and returns results in catalogue order.
pub async fn run_all(catalogue: &[Box<dyn Check>], ctx: &CheckContext, check_timeout: Duration) -> Vec<CheckResult> {
    let mut out = Vec::new();
    for check in catalogue.iter().filter(|c| c.applies(ctx)) {
        let targets: Vec<Option<&Target>> = match check.scope() {
            Scope::Machine => vec![None],
            Scope::Target => ctx.targets.iter().map(Some).collect(),
        };
        let runs = targets.into_iter().map(|target| run_one(check.as_ref(), ctx, target, check_timeout));
        out.extend(join_all(runs).await);
    }
    out
}

async fn run_one(check: &dyn Check, ctx: &CheckContext, target: Option<&Target>, limit: Duration) -> CheckResult {
    let observed_at = time::OffsetDateTime::now_utc();
    let started = Instant::now();
    let finding = tokio::time::timeout(limit, check.run(ctx, target))
        .await
        .unwrap_or_else(|_| Finding::error(format!("check did not finish within {} s", limit.as_secs())));
    CheckResult {
        check: check.id().to_owned(),
        target: target.map(ToString::to_string),
        status: finding.status,
        summary: truncate(finding.summary, MAX_SUMMARY_LEN),
        cause: finding.cause.map(str::to_owned),
        evidence: finding.evidence,
        observed_at,
        duration_ms: started.elapsed().as_millis() as u64,
    }
}

fn truncate(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_trait::async_trait;
    use rdpfleet_proto::check::CheckStatus;

    struct Slow;
    #[async_trait]
    impl Check for Slow {
        fn id(&self) -> &'static str {
            "test.slow"
        }
        fn scope(&self) -> Scope {
            Scope::Machine
        }
        async fn run(&self, _: &CheckContext, _: Option<&Target>) -> Finding {
            tokio::time::sleep(Duration::from_secs(30)).await;
            Finding::pass("never", serde_json::Value::Null)
        }
    }

    #[tokio::test]
    async fn a_hanging_check_becomes_an_error_result() {
        let mut config = crate::config::AgentConfig::default();
        config.probe.platform_roots = false;
        let ctx = CheckContext::from_config(&config, None).unwrap();
        let catalogue: Vec<Box<dyn Check>> = vec![Box::new(Slow)];
        let r = run_all(&catalogue, &ctx, Duration::from_millis(50)).await;
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].status, CheckStatus::Error);
        assert_eq!(r[0].target, None);
    }

    #[test]
    fn truncation_respects_char_boundaries() {
        assert_eq!(truncate("héllo".into(), 2), "h");
        assert_eq!(truncate("abc".into(), 5), "abc");
    }
}
