//! Sign-in and enrollment throttling cannot be bypassed: a name with spaces is the same name,
//! parallel guesses are counted before any is checked, and behind a trusted proxy each client is
//! throttled by its own address (one attacker no longer locks everyone out), while a client that
//! is not a trusted proxy cannot pick its address with `X-Forwarded-For`.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, header};
use rdpfleet_e2e::TestDb;
use rdpfleet_server::config::Settings;
use rdpfleet_server::domain::users::Role;
use rdpfleet_server::secrets::{hash_password, token_hash};
use rdpfleet_server::store::Store;
use rdpfleet_server::store::audit::{ActorKind, NewAuditEntry};
use rdpfleet_server::store::enrollment::NewEnrollmentToken;
use rdpfleet_server::store::now_ms;
use tower::ServiceExt;

const PASSWORD: &str = "correct horse battery";
const PROXY: &str = "10.0.0.2:40000";

async fn make_app(db: &TestDb, trusted: &[&str]) -> (Router, Store) {
    let store = Store::connect(db.url()).await.unwrap();
    let settings = Settings {
        database_url: db.url().to_owned(),
        trusted_proxies: trusted.iter().map(|t| t.parse().unwrap()).collect(),
        ..Settings::default()
    };
    let audit = || NewAuditEntry::new(ActorKind::Cli, "test", "setup", "x");
    store.create_user("alice", &hash_password(PASSWORD).unwrap(), Role::Operator, audit()).await.unwrap();
    let token = NewEnrollmentToken {
        label: "t",
        token_hash: &token_hash("rfe_good"),
        expires_at: now_ms() + 3_600_000,
        max_uses: 10,
    };
    store.create_enrollment_token(token, audit()).await.unwrap();
    let state = rdpfleet_server::app_state(settings, store.clone(), ed25519_dalek::SigningKey::from_bytes(&[1u8; 32]));
    (rdpfleet_server::router::router(state), store)
}

/// A POST from `peer`, with `X-Forwarded-For: xff` when given; the status.
async fn post(app: &Router, uri: &str, peer: &str, xff: Option<&str>, content_type: &str, body: String) -> u16 {
    let mut req = Request::post(uri).header(header::HOST, "rdpfleet.test").header(header::CONTENT_TYPE, content_type);
    if let Some(x) = xff {
        req = req.header("x-forwarded-for", x);
    }
    let mut req = req.body(Body::from(body)).unwrap();
    req.extensions_mut().insert(ConnectInfo(peer.parse::<SocketAddr>().unwrap()));
    app.clone().oneshot(req).await.unwrap().status().as_u16()
}

async fn sign_in(app: &Router, peer: &str, xff: Option<&str>, user: &str, password: &str) -> u16 {
    let form = format!("username={}&password={}", user.replace(' ', "+"), password.replace(' ', "+"));
    post(app, "/login", peer, xff, "application/x-www-form-urlencoded", form).await
}

async fn enroll(app: &Router, peer: &str, xff: Option<&str>, token: &str) -> u16 {
    let body =
        serde_json::json!({"token": token, "hostname": "pc1", "role": "client", "os": "windows", "agent_version": "1"});
    post(app, "/api/agent/v1/enroll", peer, xff, "application/json", body.to_string()).await
}

#[tokio::test]
async fn a_padded_name_is_the_same_name() {
    let db = TestDb::sqlite();
    let (app, _) = make_app(&db, &[]).await;
    // From five addresses, so that only the name can lock.
    for (i, name) in ["alice ", " alice", "ALICE  ", "\talice", "alice"].iter().enumerate() {
        assert_eq!(sign_in(&app, &format!("198.51.100.{}:1", i + 1), None, name, "wrong password!").await, 401);
    }
    assert_eq!(sign_in(&app, "198.51.100.99:1", None, "alice", PASSWORD).await, 429, "the name is locked");
}

/// 20 wrong passwords for one name at once, from 20 addresses: 5 are checked, 15 refused.
async fn parallel_guesses() {
    let db = TestDb::sqlite();
    let (app, _) = make_app(&db, &[]).await;
    let handles: Vec<_> = (0..20)
        .map(|i| {
            let app = app.clone();
            tokio::spawn(async move {
                sign_in(&app, &format!("198.51.100.{}:1", i + 1), None, "alice", &format!("guess number {i}")).await
            })
        })
        .collect();
    let mut statuses = vec![];
    for h in handles {
        statuses.push(h.await.unwrap());
    }
    let checked = statuses.iter().filter(|s| **s == 401).count();
    let refused = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!((checked, refused), (5, 15), "{statuses:?}");
}

#[tokio::test]
async fn parallel_guesses_are_counted_before_they_are_checked() {
    parallel_guesses().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_guesses_on_threads_are_counted_before_they_are_checked() {
    parallel_guesses().await;
}

#[tokio::test]
async fn behind_a_trusted_proxy_each_client_has_its_own_address() {
    let db = TestDb::sqlite();
    let (app, _) = make_app(&db, &["10.0.0.0/24"]).await;
    // An attacker behind the proxy sprays bogus names until its address is locked...
    for i in 0..5 {
        assert_eq!(sign_in(&app, PROXY, Some("203.0.113.66"), &format!("nobody{i}"), "wrong password!").await, 401);
    }
    assert_eq!(sign_in(&app, PROXY, Some("203.0.113.66"), "alice", PASSWORD).await, 429);
    // ...and cannot escape the lock by forging a left-hand entry (the proxy appends the real one).
    assert_eq!(sign_in(&app, PROXY, Some("1.2.3.4, 203.0.113.66"), "alice", PASSWORD).await, 429);
    // The real user, behind the same proxy, signs in.
    assert_eq!(sign_in(&app, PROXY, Some("203.0.113.10"), "alice", PASSWORD).await, 303);

    // Enrollment: 20 bogus tokens from one client behind the proxy do not block a valid token
    // from another.
    for _ in 0..20 {
        assert_eq!(enroll(&app, PROXY, Some("203.0.113.66"), "rfe_bogus").await, 401);
    }
    assert_eq!(enroll(&app, PROXY, Some("203.0.113.66"), "rfe_good").await, 429);
    assert_eq!(enroll(&app, PROXY, Some("203.0.113.20"), "rfe_good").await, 201);
}

#[tokio::test]
async fn an_untrusted_peer_cannot_choose_its_address() {
    let db = TestDb::sqlite();
    // No trusted proxies: X-Forwarded-For is ignored, whoever sends it.
    let (app, _) = make_app(&db, &[]).await;
    for i in 0..5 {
        let forged = format!("203.0.113.{i}");
        assert_eq!(sign_in(&app, "198.51.100.7:1", Some(&forged), &format!("nobody{i}"), "wrong password!").await, 401);
    }
    assert_eq!(sign_in(&app, "198.51.100.7:1", Some("203.0.113.200"), "alice", PASSWORD).await, 429);
    // A peer outside the trusted networks is not a proxy either.
    let db = TestDb::sqlite();
    let (app, _) = make_app(&db, &["10.0.0.0/24"]).await;
    for i in 0..20 {
        let forged = format!("203.0.113.{i}");
        assert_eq!(enroll(&app, "198.51.100.7:1", Some(&forged), "rfe_bogus").await, 401);
    }
    assert_eq!(enroll(&app, "198.51.100.7:1", Some("203.0.113.250"), "rfe_good").await, 429);
}
