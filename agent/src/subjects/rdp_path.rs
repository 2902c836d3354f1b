//! `rdp.path`: the full connection-path diagnosis of one configured target. The result's
//! evidence is the whole `Diagnosis`; its status and cause are the diagnosis's verdict.
use async_trait::async_trait;

use crate::config::Target;
use crate::engine::check::{Check, CheckContext, Finding, Scope};
use crate::probe::{self, ProbeTarget};

pub struct RdpPath;

#[async_trait]
impl Check for RdpPath {
    fn id(&self) -> &'static str {
        "rdp.path"
    }

    fn scope(&self) -> Scope {
        Scope::Target
    }

    async fn run(&self, ctx: &CheckContext, target: Option<&Target>) -> Finding {
        let Some(t) = target else {
            return Finding::error("rdp.path needs a target");
        };
        let gateway = match t.gateway() {
            Ok(g) => g,
            Err(e) => return Finding::error(format!("bad gateway setting: {e}")),
        };
        let pt = ProbeTarget { host: t.host.clone(), port: t.port, expected_address: t.expected_address, gateway };
        let d = probe::diagnose(&pt, &ctx.probe).await;
        let evidence = serde_json::to_value(&d).unwrap_or(serde_json::Value::Null);
        let cause = d.cause.as_deref().and_then(rdpfleet_proto::causes::lookup).map(|c| c.id);
        Finding { status: d.status, summary: d.summary, cause, evidence }
    }
}
