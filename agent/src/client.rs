//! HTTP client for the server's agent API v1.
use std::time::Duration;

use rdpfleet_proto::AGENT_API_V1;
use rdpfleet_proto::enroll::{EnrollRequest, EnrollResponse};
use rdpfleet_proto::error::ErrorBody;
use rdpfleet_proto::job::{JobPollResponse, JobResultRequest};
use rdpfleet_proto::report::{ReportRequest, ReportResponse};
use reqwest::{StatusCode, Url};
use serde::de::DeserializeOwned;
use uuid::Uuid;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("server URL {0:?} is not valid: {1}")]
    BadUrl(String, String),
    #[error("cannot reach the server: {0}")]
    Transport(#[source] reqwest::Error),
    #[error("the server rejected the agent's credential (revoked?); enroll again")]
    Unauthorized,
    #[error("server answered {status} {code}: {message}")]
    Rejected { status: StatusCode, code: String, message: String },
    #[error("server error {status}")]
    Server { status: StatusCode },
    #[error("unexpected answer from the server: {0}")]
    Decode(String),
}

impl ClientError {
    /// Whether trying the same request later may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            ClientError::Transport(_) | ClientError::Server { .. } => true,
            ClientError::Rejected { status, .. } => {
                *status == StatusCode::TOO_MANY_REQUESTS || *status == StatusCode::REQUEST_TIMEOUT
            }
            _ => false,
        }
    }
}

#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: Url,
    token: Option<String>,
}

/// Checks the server URL; plain HTTP is only allowed to loopback unless explicitly permitted,
/// because the agent token would otherwise cross the network in clear.
pub fn parse_server_url(url: &str, allow_insecure_http: bool) -> Result<Url, ClientError> {
    // `--server host:port` parses as a URL whose scheme is the host name: say what is meant.
    if !url.contains("://") {
        return Err(ClientError::BadUrl(
            url.to_owned(),
            format!(
                "give the whole URL with its scheme, e.g. https://{url} (http:// only for a server on this machine)"
            ),
        ));
    }
    let parsed = Url::parse(url).map_err(|e| ClientError::BadUrl(url.to_owned(), e.to_string()))?;
    match parsed.scheme() {
        "https" => {}
        "http" => {
            let loopback = match parsed.host() {
                Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
                Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
                Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
                None => false,
            };
            if !loopback && !allow_insecure_http {
                return Err(ClientError::BadUrl(
                    url.to_owned(),
                    "plain http is only allowed to loopback; use https or set allow_insecure_http = true".into(),
                ));
            }
        }
        other => return Err(ClientError::BadUrl(url.to_owned(), format!("unsupported scheme {other}"))),
    }
    Ok(parsed)
}

impl Client {
    pub fn new(base: Url, token: Option<String>) -> Result<Client, ClientError> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .user_agent(format!("rdpfleet-agent/{}", crate::agent_version()))
            .build()
            .map_err(ClientError::Transport)?;
        Ok(Client { http, base, token })
    }

    fn url(&self, path: &str) -> Result<Url, ClientError> {
        let full = format!("{}{AGENT_API_V1}{path}", self.base.as_str().trim_end_matches('/'));
        Url::parse(&full).map_err(|e| ClientError::BadUrl(full, e.to_string()))
    }

    fn authed(&self, rb: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.token {
            Some(t) => rb.bearer_auth(t),
            None => rb,
        }
    }

    pub async fn enroll(&self, req: &EnrollRequest) -> Result<EnrollResponse, ClientError> {
        let rb = self.http.post(self.url("/enroll")?).json(req).timeout(Duration::from_secs(30));
        decode(rb.send().await.map_err(ClientError::Transport)?).await
    }

    pub async fn report(&self, machine_id: Uuid, req: &ReportRequest) -> Result<ReportResponse, ClientError> {
        let rb = self
            .http
            .post(self.url(&format!("/machines/{machine_id}/reports"))?)
            .json(req)
            .timeout(Duration::from_secs(60));
        decode(self.authed(rb).send().await.map_err(ClientError::Transport)?).await
    }

    /// Long poll: waits up to `wait` for jobs.
    pub async fn poll_jobs(&self, machine_id: Uuid, wait: Duration) -> Result<JobPollResponse, ClientError> {
        let rb = self
            .http
            .get(self.url(&format!("/machines/{machine_id}/jobs"))?)
            .query(&[("wait", wait.as_secs())])
            .timeout(wait + Duration::from_secs(30));
        decode(self.authed(rb).send().await.map_err(ClientError::Transport)?).await
    }

    pub async fn job_result(&self, machine_id: Uuid, job_id: Uuid, req: &JobResultRequest) -> Result<(), ClientError> {
        let rb = self
            .http
            .post(self.url(&format!("/machines/{machine_id}/jobs/{job_id}/result"))?)
            .json(req)
            .timeout(Duration::from_secs(30));
        let _: serde_json::Value = decode(self.authed(rb).send().await.map_err(ClientError::Transport)?).await?;
        Ok(())
    }
}

impl Client {
    /// A release's bytes, at most `max` of them.
    pub async fn download_release(&self, machine_id: Uuid, release: Uuid, max: u64) -> Result<Vec<u8>, ClientError> {
        let rb = self
            .http
            .get(self.url(&format!("/machines/{machine_id}/releases/{release}"))?)
            .timeout(Duration::from_secs(600));
        let mut resp = self.authed(rb).send().await.map_err(ClientError::Transport)?;
        if !resp.status().is_success() {
            return Err(decode::<serde_json::Value>(resp).await.err().unwrap_or(ClientError::Decode("no body".into())));
        }
        let mut bytes = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(ClientError::Transport)? {
            bytes.extend_from_slice(&chunk);
            if bytes.len() as u64 > max {
                return Err(ClientError::Decode(format!("the release is larger than the {max} bytes the job names")));
            }
        }
        Ok(bytes)
    }
}

async fn decode<T: DeserializeOwned>(resp: reqwest::Response) -> Result<T, ClientError> {
    let status = resp.status();
    if status.is_success() {
        return resp.json::<T>().await.map_err(|e| ClientError::Decode(e.to_string()));
    }
    if status == StatusCode::UNAUTHORIZED {
        // Enrollment answers 401 with a specific code; keep it for the message.
        let body = resp.json::<ErrorBody>().await.ok();
        return match body {
            Some(b) if b.error.code.starts_with("enrollment_token") => {
                Err(ClientError::Rejected { status, code: b.error.code, message: b.error.message })
            }
            _ => Err(ClientError::Unauthorized),
        };
    }
    if status.is_server_error() {
        return Err(ClientError::Server { status });
    }
    let (code, message) = match resp.json::<ErrorBody>().await {
        Ok(b) => (b.error.code, b.error.message),
        Err(_) => ("unknown".to_owned(), "no error body".to_owned()),
    };
    Err(ClientError::Rejected { status, code, message })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_only_to_loopback() {
        assert!(parse_server_url("http://127.0.0.1:8080", false).is_ok());
        assert!(parse_server_url("http://localhost:8080", false).is_ok());
        assert!(parse_server_url("http://[::1]:8080", false).is_ok());
        assert!(parse_server_url("https://rdpfleet.corp.example", false).is_ok());
        assert!(parse_server_url("http://rdpfleet.corp.example", false).is_err());
        assert!(parse_server_url("http://rdpfleet.corp.example", true).is_ok());
        assert!(parse_server_url("ftp://x", true).is_err());
        assert!(parse_server_url("not a url", true).is_err());
        // host:port without a scheme gets a hint, not "unsupported scheme rdpfleet.corp.example".
        let e = parse_server_url("rdpfleet.corp.example:8443", false).unwrap_err().to_string();
        assert!(e.contains("https://rdpfleet.corp.example:8443"), "{e}");
    }
}
