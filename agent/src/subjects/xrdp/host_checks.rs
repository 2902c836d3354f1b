//! `xrdp.security_layer`, `xrdp.certificate`, `xrdp.tls_protocols`: an xrdp host's own
//! configuration. They apply only where xrdp.ini exists.
use async_trait::async_trait;

use crate::config::Target;
use crate::engine::check::{Check, CheckContext, Finding, Scope};
use crate::subjects::xrdp::checks;

#[derive(Clone, Copy)]
enum Part {
    SecurityLayer,
    Certificate,
    TlsProtocols,
}

struct XrdpCheck(Part);

pub fn checks() -> Vec<Box<dyn Check>> {
    vec![
        Box::new(XrdpCheck(Part::SecurityLayer)),
        Box::new(XrdpCheck(Part::Certificate)),
        Box::new(XrdpCheck(Part::TlsProtocols)),
    ]
}

#[async_trait]
impl Check for XrdpCheck {
    fn id(&self) -> &'static str {
        match self.0 {
            Part::SecurityLayer => "xrdp.security_layer",
            Part::Certificate => "xrdp.certificate",
            Part::TlsProtocols => "xrdp.tls_protocols",
        }
    }

    fn scope(&self) -> Scope {
        Scope::Machine
    }

    fn applies(&self, ctx: &CheckContext) -> bool {
        ctx.platform.files.read(&ctx.xrdp.ini).is_ok_and(|f| f.is_some())
    }

    async fn run(&self, ctx: &CheckContext, _: Option<&Target>) -> Finding {
        let cfg = match checks::load(&ctx.platform, &ctx.xrdp) {
            Ok(Some(c)) => c,
            Ok(None) => return Finding::skipped("xrdp is not installed"),
            Err(e) => return Finding::error(format!("cannot read {}: {e}", ctx.xrdp.ini.display())),
        };
        match self.0 {
            Part::SecurityLayer => {
                Finding::from_problems(&format!("security_layer={}", cfg.security_layer), &checks::security_layer(&cfg))
            }
            Part::TlsProtocols => Finding::from_problems(
                &format!("ssl_protocols={}", cfg.ssl_protocols.join(", ")),
                &checks::tls_protocols(&cfg),
            ),
            Part::Certificate => {
                match checks::certificate(&ctx.platform, &cfg, &ctx.xrdp, time::OffsetDateTime::now_utc()) {
                    Ok(problems) => Finding::from_problems(
                        &format!("{} is valid for {}", cfg.certificate.display(), ctx.xrdp.names().join(", ")),
                        &problems,
                    ),
                    Err(e) => Finding::error(format!("cannot read the certificate: {e}")),
                }
            }
        }
    }
}
