//! Optional outbound webhooks: a JSON POST to each configured URL when an incident opens or
//! resolves and when a rollout halts or completes. Sent in the background with a timeout and
//! three attempts; a failure is logged, never blocks the server. With `webhook_secret` set, each
//! request carries `X-Rdpfleet-Signature: sha256=<HMAC-SHA256 of the body>` so receivers can
//! check it came from this server.
use std::sync::Arc;
use std::time::Duration;

use hmac::{Hmac, Mac};
use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct Event {
    /// `incident.opened`, `incident.resolved`, `rollout.halted`, `rollout.completed`.
    pub event: &'static str,
    /// Unix milliseconds.
    pub at: i64,
    pub subject: serde_json::Value,
}

#[derive(Clone, Default)]
pub struct Notifier {
    urls: Arc<Vec<String>>,
    secret: Option<Arc<String>>,
    client: Option<reqwest::Client>,
}

impl Notifier {
    pub fn new(urls: Vec<String>, secret: Option<String>) -> Notifier {
        let client = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().ok();
        Notifier { urls: Arc::new(urls), secret: secret.map(Arc::new), client }
    }

    pub fn is_on(&self) -> bool {
        !self.urls.is_empty()
    }

    /// The signature header value for a body.
    pub fn signature(secret: &str, body: &[u8]) -> String {
        #[allow(clippy::expect_used)] // HMAC takes keys of any length: this cannot fail.
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC accepts any key length");
        mac.update(body);
        format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
    }

    pub fn send(&self, event: Event) {
        let (Some(client), true) = (self.client.clone(), self.is_on()) else { return };
        let Ok(body) = serde_json::to_vec(&event) else { return };
        let signature = self.secret.as_deref().map(|s| Notifier::signature(s, &body));
        for url in self.urls.iter() {
            let (client, body, signature, url) = (client.clone(), body.clone(), signature.clone(), url.clone());
            tokio::spawn(async move {
                for attempt in 0..3u32 {
                    let mut req = client.post(&url).header("content-type", "application/json").body(body.clone());
                    if let Some(s) = &signature {
                        req = req.header("x-rdpfleet-signature", s);
                    }
                    match req.send().await {
                        Ok(r) if r.status().is_success() => return,
                        Ok(r) => tracing::warn!(status = %r.status(), attempt, "webhook refused"),
                        Err(e) => tracing::warn!(error = %e, attempt, "webhook failed"),
                    }
                    tokio::time::sleep(Duration::from_millis(500 * 2u64.pow(attempt))).await;
                }
            });
        }
    }
}
