//! The human-readable, layered report of a diagnosis. The first failing layer and its cause
//! stand out; colours only when writing to a terminal.
use std::fmt::Write;

use rdpfleet_proto::causes;
use rdpfleet_proto::check::CheckStatus;
use rdpfleet_proto::diagnosis::{Diagnosis, LayerStatus};

struct Paint(bool);

impl Paint {
    fn wrap(&self, code: &str, s: &str) -> String {
        if self.0 { format!("\x1b[{code}m{s}\x1b[0m") } else { s.to_owned() }
    }
}

pub fn render(d: &Diagnosis, color: bool) -> String {
    let p = Paint(color);
    let mut out = String::new();
    let verdict = match d.status {
        CheckStatus::Pass => p.wrap("1;32", "HEALTHY"),
        CheckStatus::Warn => p.wrap("1;33", "WARNING"),
        _ => p.wrap("1;31", "PROBLEM"),
    };
    let via = d.gateway.as_deref().map(|g| format!(" (gateway {g})")).unwrap_or_default();
    let _ = writeln!(out, "{}{via} — {verdict}: {}", d.target, d.summary);
    if let Some(cause) = d.cause.as_deref().and_then(causes::lookup) {
        let _ = writeln!(out, "  cause: {} — {}", p.wrap("1", cause.title), cause.explanation);
        let _ = writeln!(
            out,
            "  change on: {:?}{}",
            cause.side,
            cause.fix.map(|f| format!(" · fix: {f}")).unwrap_or_default()
        );
    }
    let _ = writeln!(out);
    for l in &d.layers {
        let (mark, code) = match l.status {
            LayerStatus::Pass => ("ok  ", "32"),
            LayerStatus::Warn => ("WARN", "33"),
            LayerStatus::Fail => ("FAIL", "1;31"),
            LayerStatus::NotReached => ("--  ", "90"),
            LayerStatus::Skipped => ("--  ", "90"),
        };
        let first = d.first_failing_layer == Some(l.layer);
        let title = format!("{:<16}", l.layer.title());
        let title = if first { p.wrap("1", &title) } else { title };
        let _ = writeln!(out, "  [{}] {title} {}", p.wrap(code, mark), l.summary);
        for f in &l.findings {
            let sev = format!("{:?}", f.severity).to_lowercase();
            let _ = writeln!(out, "         {:<8} {} — {}", sev, f.cause, f.detail);
        }
    }
    let _ = writeln!(out, "\n  {} ms", d.duration_ms);
    out
}
