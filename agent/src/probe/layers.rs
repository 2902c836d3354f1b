//! Shared pieces of every layer: findings named from the cause catalogue, and a layer's status
//! derived from its findings.
use rdpfleet_proto::causes::{self, Severity};
use rdpfleet_proto::check::CheckStatus;
use rdpfleet_proto::diagnosis::{Finding, Layer, LayerReport, LayerStatus};

pub fn finding(cause: &'static str, detail: impl Into<String>) -> Finding {
    // An unknown id is a programming error caught by the tests; treat it as serious.
    let severity = causes::lookup(cause).map_or(Severity::High, |c| c.severity);
    debug_assert!(causes::lookup(cause).is_some(), "cause {cause} missing from the catalogue");
    Finding { cause: cause.to_owned(), severity, detail: detail.into() }
}

/// The one severity policy of the agent, given the worst severity found: High and Critical
/// fail, Medium warns, Low and Info are notes on a pass.
pub fn verdict_for(worst: Option<Severity>) -> CheckStatus {
    match worst {
        Some(Severity::Critical | Severity::High) => CheckStatus::Fail,
        Some(Severity::Medium) => CheckStatus::Warn,
        _ => CheckStatus::Pass,
    }
}

pub fn status_of(findings: &[Finding]) -> LayerStatus {
    match verdict_for(findings.iter().map(|f| f.severity).max()) {
        CheckStatus::Fail => LayerStatus::Fail,
        CheckStatus::Warn => LayerStatus::Warn,
        _ => LayerStatus::Pass,
    }
}

pub fn report(layer: Layer, summary: impl Into<String>, duration_ms: u64, mut findings: Vec<Finding>) -> LayerReport {
    findings.sort_by_key(|f| std::cmp::Reverse(f.severity));
    LayerReport { layer, status: status_of(&findings), summary: summary.into(), duration_ms, findings }
}

pub fn not_reached(layer: Layer, because: Layer) -> LayerReport {
    LayerReport {
        layer,
        status: LayerStatus::NotReached,
        summary: format!("not reached: {} failed", because.title()),
        duration_ms: 0,
        findings: vec![],
    }
}

pub fn skipped(layer: Layer, why: &str) -> LayerReport {
    LayerReport { layer, status: LayerStatus::Skipped, summary: why.to_owned(), duration_ms: 0, findings: vec![] }
}
