//! Bad input gets a documented 4xx JSON error and changes nothing — on both backends.
#![allow(clippy::unwrap_used)]

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use rdpfleet_e2e::TestDb;
use rdpfleet_server::config::Settings;
use rdpfleet_server::secrets::token_hash;
use rdpfleet_server::store::Store;
use rdpfleet_server::store::audit::{ActorKind, NewAuditEntry};
use rdpfleet_server::store::enrollment::NewEnrollmentToken;
use rdpfleet_server::store::now_ms;
use serde_json::{Value, json};
use tower::ServiceExt;

struct App {
    router: Router,
    store: Store,
}

impl App {
    async fn new(db: &TestDb) -> App {
        let store = Store::connect(db.url()).await.unwrap();
        let settings = Settings { database_url: db.url().to_owned(), max_body_bytes: 64 * 1024, ..Settings::default() };
        let state =
            rdpfleet_server::app_state(settings, store.clone(), ed25519_dalek::SigningKey::from_bytes(&[1u8; 32]));
        App { router: rdpfleet_server::router::router(state), store }
    }

    async fn call(
        &self,
        method: &str,
        uri: &str,
        token: Option<&str>,
        content_type: Option<&str>,
        body: impl Into<Body>,
    ) -> (StatusCode, Value) {
        let mut req = Request::builder().method(method).uri(uri);
        if let Some(t) = token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        if let Some(ct) = content_type {
            req = req.header(header::CONTENT_TYPE, ct);
        }
        let resp = self.router.clone().oneshot(req.body(body.into()).unwrap()).await.unwrap();
        let status = resp.status();
        assert_eq!(resp.headers().get(header::X_CONTENT_TYPE_OPTIONS).unwrap(), "nosniff");
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let v = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| panic!("{method} {uri}: body is not JSON: {}", String::from_utf8_lossy(&bytes)));
        (status, v)
    }

    async fn json(&self, method: &str, uri: &str, token: Option<&str>, body: &str) -> (StatusCode, Value) {
        self.call(method, uri, token, Some("application/json"), body.to_owned()).await
    }

    async fn counts(&self) -> (usize, usize, i64) {
        let machines = self.store.machines(1000, 0).await.unwrap().len();
        let audit = self.store.audit_entries(0, 10_000).await.unwrap().len();
        (machines, audit, self.store.count_transitions().await.unwrap())
    }
}

fn code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or_else(|| panic!("no error code in {v}"))
}

fn enroll_body(token: &str) -> String {
    json!({"token": token, "hostname": "pc-1", "role": "client", "os": "linux", "agent_version": "0.1.0"}).to_string()
}

async fn the_suite(db: TestDb) {
    let app = App::new(&db).await;
    let now = now_ms();
    for (secret, uses, expires) in
        [("rfe_good", 1, now + 60_000), ("rfe_expired", 5, now - 1), ("rfe_once", 1, now + 60_000)]
    {
        app.store
            .create_enrollment_token(
                NewEnrollmentToken {
                    label: secret,
                    token_hash: &token_hash(secret),
                    expires_at: expires,
                    max_uses: uses,
                },
                NewAuditEntry::new(ActorKind::Cli, "t", "enrollment_token.created", secret),
            )
            .await
            .unwrap();
    }
    let enroll = "/api/agent/v1/enroll";
    let (s, v) = app.json("POST", enroll, None, &enroll_body("rfe_once")).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let agent_token = v["agent_token"].as_str().unwrap().to_owned();
    let machine_id = v["machine_id"].as_str().unwrap().to_owned();
    let before = app.counts().await;

    // Enrollment mistakes.
    let cases: Vec<(&str, StatusCode, &str)> = vec![
        ("{\"token\": ", StatusCode::BAD_REQUEST, "malformed_json"),
        ("[1,2]", StatusCode::UNPROCESSABLE_ENTITY, "invalid_body"),
        (
            r#"{"token":"rfe_good","hostname":"h","role":"client","os":"l","agent_version":"1","colour":"red"}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
        (
            r#"{"token":"rfe_good","hostname":"h","role":"king","os":"l","agent_version":"1"}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
        (
            r#"{"token":"rfe_good","hostname":"","role":"client","os":"l","agent_version":"1"}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            r#"{"token":"rfe_good","hostname":"a\u0000b","role":"client","os":"l","agent_version":"1"}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
    ];
    for (body, status, expected) in cases {
        let (s, v) = app.json("POST", enroll, None, body).await;
        assert_eq!((s, code(&v)), (status, expected), "body {body}");
    }
    let (s, v) = app.json("POST", enroll, None, &enroll_body("rfe_expired")).await;
    assert_eq!((s, code(&v)), (StatusCode::UNAUTHORIZED, "enrollment_token_expired"));
    let (s, v) = app.json("POST", enroll, None, &enroll_body("rfe_once")).await;
    assert_eq!((s, code(&v)), (StatusCode::UNAUTHORIZED, "enrollment_token_used_up"));
    let (s, v) = app.json("POST", enroll, None, &enroll_body("rfe_unknown")).await;
    assert_eq!((s, code(&v)), (StatusCode::UNAUTHORIZED, "enrollment_token_invalid"));
    let (s, v) = app.json("POST", enroll, None, &enroll_body("not-even-a-token")).await;
    assert_eq!((s, code(&v)), (StatusCode::UNAUTHORIZED, "enrollment_token_invalid"));
    let (s, v) = app.call("POST", enroll, None, Some("text/plain"), enroll_body("rfe_good")).await;
    assert_eq!((s, code(&v)), (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type"));
    let huge = json!({"token": "rfe_good", "hostname": "x".repeat(100_000), "role": "client", "os": "l", "agent_version": "1"}).to_string();
    let (s, v) = app.json("POST", enroll, None, &huge).await;
    assert_eq!((s, code(&v)), (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"));

    // Report mistakes.
    let reports = format!("/api/agent/v1/machines/{machine_id}/reports");
    let ok_result = json!({"check": "net.tcp", "status": "pass", "summary": "ok", "observed_at": "2026-11-23T10:00:00Z", "duration_ms": 1});
    let good = json!({"seq": 1, "results": [ok_result]}).to_string();
    let (s, v) = app.json("POST", &reports, None, &good).await;
    assert_eq!((s, code(&v)), (StatusCode::UNAUTHORIZED, "unauthorized"));
    let (s, v) = app.json("POST", &reports, Some("rfa_wrong"), &good).await;
    assert_eq!((s, code(&v)), (StatusCode::UNAUTHORIZED, "unauthorized"));
    let (s, v) = app.json("POST", &reports, Some("rfe_good"), &good).await;
    assert_eq!((s, code(&v)), (StatusCode::UNAUTHORIZED, "unauthorized"), "an enrollment token is not an agent token");
    let other = format!("/api/agent/v1/machines/{}/reports", uuid::Uuid::new_v4());
    let (s, v) = app.json("POST", &other, Some(&agent_token), &good).await;
    assert_eq!((s, code(&v)), (StatusCode::FORBIDDEN, "forbidden"), "a token only writes its own machine");
    let (s, v) = app.json("POST", "/api/agent/v1/machines/not-a-uuid/reports", Some(&agent_token), &good).await;
    assert_eq!((s, code(&v)), (StatusCode::BAD_REQUEST, "bad_request"));
    let bad_reports = [
        (json!({"seq": 0, "results": []}), "validation_failed"),
        (json!({"seq": -1, "results": []}), "invalid_body"),
        (json!({"seq": 1, "results": [], "extra": true}), "invalid_body"),
        (
            json!({"seq": 1, "results": [{"check": "Net TCP", "status": "pass", "summary": "", "observed_at": "2026-11-23T10:00:00Z", "duration_ms": 1}]}),
            "validation_failed",
        ),
        (
            json!({"seq": 1, "results": [{"check": "net.tcp", "status": "green", "summary": "", "observed_at": "2026-11-23T10:00:00Z", "duration_ms": 1}]}),
            "invalid_body",
        ),
        (
            json!({"seq": 1, "results": [{"check": "net.tcp", "status": "pass", "summary": "", "observed_at": "yesterday", "duration_ms": 1}]}),
            "invalid_body",
        ),
        (json!({"seq": 1, "results": [ok_result, ok_result]}), "validation_failed"),
        // A first report numbered near 2^63 would freeze the machine's reports forever.
        (json!({"seq": i64::MAX, "results": [ok_result]}), "validation_failed"),
        (json!({"seq": 1_000_001, "results": [ok_result]}), "validation_failed"),
        // A valid result after an invalid one: the whole report is refused, nothing stored.
        (
            json!({"seq": 1, "results": [ok_result, {"check": "net.dns", "status": "pass", "summary": "x".repeat(5000), "observed_at": "2026-11-23T10:00:00Z", "duration_ms": 1}]}),
            "validation_failed",
        ),
    ];
    for (body, expected) in bad_reports {
        let (s, v) = app.json("POST", &reports, Some(&agent_token), &body.to_string()).await;
        assert!(s.is_client_error(), "{body}: {s}");
        assert_eq!(code(&v), expected, "{body}");
    }
    let (s, v) = app.json("POST", &reports, Some(&agent_token), "{\"seq\": 1, \"results\": [").await;
    assert_eq!((s, code(&v)), (StatusCode::BAD_REQUEST, "malformed_json"));
    let many: Vec<Value> = (0..600).map(|i| json!({"check": format!("c.{i}"), "status": "pass", "summary": "y".repeat(100), "observed_at": "2026-11-23T10:00:00Z", "duration_ms": 1})).collect();
    let (s, v) = app.json("POST", &reports, Some(&agent_token), &json!({"seq": 1, "results": many}).to_string()).await;
    assert_eq!((s, code(&v)), (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"));

    // Nothing above was written: no machine, no audit entry, no history, sequence untouched.
    assert_eq!(app.counts().await, before);
    assert_eq!(app.store.latest_results(machine_id.parse().unwrap()).await.unwrap().len(), 0);
    let (s, v) = app.json("POST", &reports, Some(&agent_token), &good).await;
    assert_eq!((s, v["duplicate"].as_bool()), (StatusCode::OK, Some(false)), "sequence 1 is still free: {v}");
    let jump = json!({"seq": 1_000_001, "results": [ok_result]}).to_string();
    let (s, v) = app.json("POST", &reports, Some(&agent_token), &jump).await;
    assert_eq!((s, v["duplicate"].as_bool()), (StatusCode::OK, Some(false)), "a jump of 1,000,000 is allowed: {v}");

    // Jobs endpoints, user API and routing.
    let (s, v) = app
        .call(
            "GET",
            &format!("/api/agent/v1/machines/{machine_id}/jobs?wait=abc"),
            Some(&agent_token),
            None,
            Body::empty(),
        )
        .await;
    assert_eq!((s, code(&v)), (StatusCode::BAD_REQUEST, "bad_request"));
    let (s, v) = app
        .call(
            "GET",
            &format!("/api/agent/v1/machines/{machine_id}/jobs?wait=0"),
            Some(&agent_token),
            None,
            Body::empty(),
        )
        .await;
    assert_eq!((s, v["jobs"].as_array().map(Vec::len)), (StatusCode::OK, Some(0)));
    let result_url = format!("/api/agent/v1/machines/{machine_id}/jobs/{}/result", uuid::Uuid::new_v4());
    let (s, v) = app
        .json("POST", &result_url, Some(&agent_token), r#"{"outcome":"succeeded","message":"","evidence":{}}"#)
        .await;
    assert_eq!((s, code(&v)), (StatusCode::NOT_FOUND, "not_found"));
    let (s, v) = app.json("POST", &result_url, Some(&agent_token), r#"{"outcome":"maybe","message":""}"#).await;
    assert_eq!((s, code(&v)), (StatusCode::UNPROCESSABLE_ENTITY, "invalid_body"));
    let (s, v) = app.call("GET", "/api/v1/machines", None, None, Body::empty()).await;
    assert_eq!((s, code(&v)), (StatusCode::UNAUTHORIZED, "unauthorized"));
    let (s, v) = app.call("GET", "/api/v1/machines", Some(&agent_token), None, Body::empty()).await;
    assert_eq!((s, code(&v)), (StatusCode::UNAUTHORIZED, "unauthorized"), "agent tokens cannot read the fleet");
    let (s, v) = app.call("GET", "/nope", None, None, Body::empty()).await;
    assert_eq!((s, code(&v)), (StatusCode::NOT_FOUND, "not_found"));
    let (s, v) = app.call("DELETE", enroll, None, None, Body::empty()).await;
    assert_eq!((s, code(&v)), (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"));
    let (s, v) = app.call("GET", "/readyz", None, None, Body::empty()).await;
    assert_eq!((s, v["status"].as_str()), (StatusCode::OK, Some("ready")));
    let (s, doc) = app.call("GET", "/api/openapi.json", None, None, Body::empty()).await;
    assert_eq!(s, StatusCode::OK);
    for path in [
        "/api/agent/v1/enroll",
        "/api/agent/v1/machines/{machine_id}/reports",
        "/api/agent/v1/machines/{machine_id}/jobs",
        "/api/agent/v1/machines/{machine_id}/jobs/{job_id}/result",
        "/api/v1/machines",
    ] {
        assert!(doc["paths"][path].is_object(), "OpenAPI documents {path}");
    }
    assert!(doc["components"]["schemas"]["ReportRequest"].is_object());
}

#[tokio::test]
async fn bad_input_is_refused_cleanly_sqlite() {
    the_suite(TestDb::sqlite()).await;
}

#[tokio::test]
async fn bad_input_is_refused_cleanly_postgres() {
    if let Some(db) = TestDb::postgres().await {
        the_suite(db).await;
    }
}
