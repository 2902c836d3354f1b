//! Optional outbound webhooks: a JSON POST to each configured URL when an incident opens or
//! resolves and when a rollout halts or completes. Sent in the background with a timeout and
//! three attempts; a failure is logged, never blocks the server. With `webhook_secret` set, each
//! request carries `X-Rdpfleet-Signature: sha256=<HMAC-SHA256 of the body>` so receivers can
//! check it came from this server. Redirects are never followed and URLs never logged.
use std::sync::Arc;
use std::time::Duration;

use hmac::{Hmac, Mac};
use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct Event {
    /// `incident.opened`, `incident.resolved`, `rollout.halted`, `rollout.completed`,
    /// `user.admin_created`, `user.admin_changed` (an administrator promoted, demoted, disabled,
    /// deleted), `audit.checkpoint`, `signing_key.rotated`.
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
        // Never follow a redirect: a receiver (or whoever controls its DNS) could send the signed
        // body on to anywhere.
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .ok();
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

    /// Sends in the background (the server's events).
    pub fn send(&self, event: Event) {
        for delivery in self.deliveries(&event) {
            tokio::spawn(delivery);
        }
    }

    /// Sends and waits until every receiver has answered or all attempts failed (the command
    /// line, which would otherwise exit before its events left).
    pub async fn deliver(&self, event: Event) {
        let handles: Vec<_> = self.deliveries(&event).into_iter().map(tokio::spawn).collect();
        for h in handles {
            let _ = h.await;
        }
    }

    fn deliveries(&self, event: &Event) -> Vec<impl std::future::Future<Output = ()> + Send + 'static> {
        let (Some(client), true) = (self.client.clone(), self.is_on()) else { return vec![] };
        let Ok(body) = serde_json::to_vec(event) else { return vec![] };
        let signature = self.secret.as_deref().map(|s| Notifier::signature(s, &body));
        let mut out = Vec::new();
        for (index, url) in self.urls.iter().enumerate() {
            let (client, body, signature, url) = (client.clone(), body.clone(), signature.clone(), url.clone());
            out.push(async move {
                for attempt in 0..3u32 {
                    let mut req = client.post(&url).header("content-type", "application/json").body(body.clone());
                    if let Some(s) = &signature {
                        req = req.header("x-rdpfleet-signature", s);
                    }
                    match req.send().await {
                        Ok(r) if r.status().is_success() => return,
                        // Webhook URLs often carry their secret (Slack, Teams): the log names the
                        // receiver by its position in `webhook_urls`, never by its URL.
                        Ok(r) => tracing::warn!(status = %r.status(), attempt, receiver = index, "webhook refused"),
                        Err(e) => {
                            tracing::warn!(error = %e.without_url(), attempt, receiver = index, "webhook failed")
                        }
                    }
                    if attempt < 2 {
                        tokio::time::sleep(Duration::from_millis(500 * 2u64.pow(attempt))).await;
                    }
                }
            });
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use axum::Router;
    use axum::routing::post;

    use super::*;

    /// Collects log output in memory.
    #[derive(Clone, Default)]
    struct Logs(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Logs {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn redirects_are_not_followed_and_urls_not_logged() {
        let logs = Logs::default();
        let writer = logs.clone();
        let subscriber = tracing_subscriber::fmt().with_writer(move || writer.clone()).with_ansi(false).finish();
        let _guard = tracing::subscriber::set_default(subscriber);

        let hits: Arc<Mutex<Vec<&'static str>>> = Arc::default();
        let (h1, h2) = (hits.clone(), hits.clone());
        let app = Router::new()
            .route(
                "/hook/{secret}",
                post(move || async move {
                    h1.lock().unwrap().push("redirector");
                    (axum::http::StatusCode::TEMPORARY_REDIRECT, [(axum::http::header::LOCATION, "/elsewhere")])
                }),
            )
            .route(
                "/elsewhere",
                post(move || async move {
                    h2.lock().unwrap().push("elsewhere");
                }),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        // A closed port too, for the transport-error path (its URL carries a secret as well).
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        let notifier = Notifier::new(
            vec![format!("http://{addr}/hook/T0PSECRET-A"), format!("http://{closed}/hook/T0PSECRET-B")],
            None,
        );
        notifier.send(Event { event: "rollout.halted", at: 0, subject: serde_json::json!({}) });
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let text = String::from_utf8_lossy(&logs.0.lock().unwrap()).into_owned();
            let (refused, failed) = (text.matches("webhook refused").count(), text.matches("webhook failed").count());
            if refused == 3 && failed == 3 {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "three attempts each were not logged: {text}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let text = String::from_utf8_lossy(&logs.0.lock().unwrap()).into_owned();
        assert!(!text.contains("T0PSECRET"), "a webhook URL reached the log: {text}");
        assert!(text.contains("receiver=0") && text.contains("receiver=1"), "{text}");
        assert_eq!(*hits.lock().unwrap(), vec!["redirector"; 3], "the redirect was followed");
    }
}
