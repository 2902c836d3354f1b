//! `rdp.path` results as an agent's probe reports them: the evidence is a real `Diagnosis`
//! (the server refuses anything else).
use rdpfleet_proto::check::{CheckResult, CheckStatus};
use rdpfleet_proto::diagnosis::{Diagnosis, DnsDetail, Layer, LayerReport, LayerStatus, PATH_CHECK};
use time::OffsetDateTime;

/// A path to `host:3389` (through `gateway`), failing at `layer` with `cause` when given,
/// whose DNS layer resolved `addresses`, observed `minutes_ago`.
pub fn path_result(
    host: &str,
    gateway: Option<&str>,
    failure: Option<(Layer, &str)>,
    addresses: &[&str],
    minutes_ago: i64,
) -> CheckResult {
    path_status(
        host,
        gateway,
        failure,
        addresses,
        minutes_ago,
        failure.map_or(CheckStatus::Pass, |_| CheckStatus::Fail),
    )
}

/// As [`path_result`], with the status given (a `warn` of intermittent loss).
pub fn path_status(
    host: &str,
    gateway: Option<&str>,
    failure: Option<(Layer, &str)>,
    addresses: &[&str],
    minutes_ago: i64,
    status: CheckStatus,
) -> CheckResult {
    let target = format!("{host}:3389");
    let observed = OffsetDateTime::now_utc() - time::Duration::minutes(minutes_ago);
    let summary = failure.map_or_else(|| "every layer passes".to_owned(), |(l, c)| format!("{} fails: {c}", l.title()));
    let layers = [Layer::Dns, Layer::Tcp, Layer::Negotiation, Layer::Tls, Layer::Certificate]
        .into_iter()
        .map(|l| {
            let st = match failure {
                Some((f, _)) if l == f && status == CheckStatus::Warn => LayerStatus::Warn,
                Some((f, _)) if l == f => LayerStatus::Fail,
                Some((f, _)) if l > f && status == CheckStatus::Fail => LayerStatus::NotReached,
                _ => LayerStatus::Pass,
            };
            LayerReport { layer: l, status: st, summary: String::new(), duration_ms: 1, findings: vec![] }
        })
        .collect();
    let d = Diagnosis {
        target: target.clone(),
        host: host.to_owned(),
        port: 3389,
        gateway: gateway.map(str::to_owned),
        started_at: observed,
        duration_ms: 10,
        status,
        first_failing_layer: failure.filter(|_| status == CheckStatus::Fail).map(|(l, _)| l),
        cause: failure.map(|(_, c)| c.to_owned()),
        summary: summary.clone(),
        layers,
        dns: Some(DnsDetail {
            addresses: addresses.iter().map(|a| (*a).to_owned()).collect(),
            elapsed_ms: 1,
            expected_address: None,
        }),
        tcp: None,
        negotiation: None,
        tls: None,
        certificate: None,
        gateway_detail: None,
        clock: None,
    };
    CheckResult {
        check: PATH_CHECK.into(),
        target: Some(target),
        status,
        summary,
        cause: d.cause.clone(),
        evidence: serde_json::to_value(&d).unwrap(),
        observed_at: observed,
        duration_ms: 10,
    }
}
