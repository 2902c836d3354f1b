//! Limits of the real server process: a client that sends its headers slowly (slow-loris) or
//! idles on a kept-alive connection is cut off; failed enrollments from one address are
//! throttled; an oversized body is refused with a JSON error and the server carries on.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use rdpfleet_e2e::TestDb;
use rdpfleet_e2e::procs::Server;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn closed_within(stream: &mut tokio::net::TcpStream, secs: u64) -> Option<Duration> {
    let started = Instant::now();
    let mut buf = [0u8; 512];
    loop {
        match tokio::time::timeout(Duration::from_secs(secs), stream.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => return Some(started.elapsed()),
            Ok(Ok(_)) => continue,
            Err(_) => return None,
        }
    }
}

#[tokio::test]
async fn slow_and_idle_connections_are_cut_off() {
    let db = TestDb::sqlite();
    let work = tempfile::tempdir().unwrap();
    let server = Server::start_with(db.url(), work.path(), &[("RDPFLEET_HEADER_READ_TIMEOUT_SECS", "1")]).await;
    let addr = server.url.trim_start_matches("http://").to_owned();

    // Headers trickling in, a byte at a time: cut off after the timeout.
    let mut slow = tokio::net::TcpStream::connect(&addr).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    let trickle = tokio::spawn(async move {
        for _ in 0..20 {
            tokio::time::sleep(Duration::from_millis(200)).await;
            if slow.write_all(b"X").await.is_err() {
                break;
            }
        }
        slow
    });
    let mut slow = trickle.await.unwrap();
    let took = closed_within(&mut slow, 5).await.expect("the slow client was cut off");
    assert!(took < Duration::from_secs(3), "{took:?}");

    // A connection that never sends anything is closed too.
    let mut idle = tokio::net::TcpStream::connect(&addr).await.unwrap();
    assert!(closed_within(&mut idle, 5).await.is_some(), "an idle connection is closed");

    // A kept-alive connection idling after a request is closed; the server still answers.
    let mut kept = tokio::net::TcpStream::connect(&addr).await.unwrap();
    kept.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    assert!(closed_within(&mut kept, 5).await.is_some());
    let r = reqwest::get(format!("{}/healthz", server.url)).await.unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn failed_enrollments_are_throttled_per_address() {
    let db = TestDb::sqlite();
    let work = tempfile::tempdir().unwrap();
    let server = Server::start(db.url(), work.path()).await;
    let good = server.admin(&["enroll-token", "create", "--label", "limits"]).await;
    let client = reqwest::Client::new();
    let enroll = |token: String| {
        let (client, url) = (client.clone(), server.url.clone());
        async move {
            let body = json!({"token": token, "hostname": "h", "role": "client", "os": "linux", "agent_version": "1"});
            let r = client.post(format!("{url}/api/agent/v1/enroll")).json(&body).send().await.unwrap();
            let status = r.status().as_u16();
            (status, r.json::<serde_json::Value>().await.unwrap())
        }
    };
    for i in 0..20 {
        let (status, body) = enroll(format!("rfe_guess{i}")).await;
        assert_eq!((status, body["error"]["code"].as_str()), (401, Some("enrollment_token_invalid")));
    }
    let (status, body) = enroll(good.clone()).await;
    assert_eq!((status, body["error"]["code"].as_str()), (429, Some("too_many_attempts")), "{body}");
    // The throttle refused before the token was looked at: it is still unused.
    let out = server.admin(&["enroll-token", "list"]).await;
    assert!(out.contains("limits"), "{out}");
}

#[tokio::test]
async fn an_oversized_body_is_refused_and_the_server_carries_on() {
    let db = TestDb::sqlite();
    let work = tempfile::tempdir().unwrap();
    let server = Server::start_with(db.url(), work.path(), &[("RDPFLEET_MAX_BODY_BYTES", "4096")]).await;
    let client = reqwest::Client::new();
    let big = format!("{{\"token\": \"rfe_x\", \"hostname\": \"{}\"}}", "a".repeat(10_000));
    let r = client
        .post(format!("{}/api/agent/v1/enroll", server.url))
        .header("Content-Type", "application/json")
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "payload_too_large");
    assert_eq!(reqwest::get(format!("{}/healthz", server.url)).await.unwrap().status(), 200);
}
