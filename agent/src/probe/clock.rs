//! Layer 7: this machine's clock against the rdpfleet server's (HTTP `Date` header).
use std::time::{Duration, Instant, SystemTime};

use rdpfleet_proto::diagnosis::{ClockDetail, Layer, LayerReport};

use super::layers::{finding, report};

/// Past this, Kerberos (default tolerance 5 minutes) and CredSSP fail.
const SKEW_LIMIT_MS: i64 = 5 * 60 * 1000;
const DRIFT_LIMIT_MS: i64 = 60 * 1000;

pub async fn probe(reference: &str, timeout: Duration) -> (LayerReport, Option<ClockDetail>) {
    let url = format!("{}/healthz", reference.trim_end_matches('/'));
    let client = match reqwest::Client::builder().timeout(timeout).build() {
        Ok(c) => c,
        Err(e) => return (super::layers::skipped(Layer::Clock, &format!("cannot measure: {e}")), None),
    };
    let sent = SystemTime::now();
    let started = Instant::now();
    let resp = match client.get(&url).send().await {
        Ok(r) => r,
        Err(e) => return (super::layers::skipped(Layer::Clock, &format!("rdpfleet server unreachable: {e}")), None),
    };
    let rtt = started.elapsed();
    let Some(server) = resp
        .headers()
        .get(reqwest::header::DATE)
        .and_then(|d| d.to_str().ok())
        .and_then(|d| httpdate::parse_http_date(d).ok())
    else {
        return (super::layers::skipped(Layer::Clock, "the server sent no Date header"), None);
    };
    // The Date header is truncated to the second: its true time is on average half a second later.
    let server_ms = millis(server) + 500;
    let local_mid_ms = millis(sent) + (rtt.as_millis() as i64) / 2;
    let skew_ms = local_mid_ms - server_ms;
    let detail = ClockDetail { skew_ms, rtt_ms: rtt.as_millis() as u64, reference: reference.to_owned() };
    let mut findings = vec![];
    let words = format!(
        "this machine's clock is {:.1} s {} the rdpfleet server's",
        skew_ms.abs() as f64 / 1000.0,
        if skew_ms >= 0 { "ahead of" } else { "behind" }
    );
    if skew_ms.abs() > SKEW_LIMIT_MS {
        findings.push(finding("clock.skew", words.clone()));
    } else if skew_ms.abs() > DRIFT_LIMIT_MS {
        findings.push(finding("clock.drift", words.clone()));
    }
    (report(Layer::Clock, words, rtt.as_millis() as u64, findings), Some(detail))
}

fn millis(t: SystemTime) -> i64 {
    match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => d.as_millis() as i64,
        Err(e) => -(e.duration().as_millis() as i64),
    }
}
