//! The authorization matrix: every route × {anonymous, agent token, another agent's token,
//! viewer, operator, admin} with the status each must get, plus revoked credentials and expired
//! sessions. API routes are called with bearer tokens; dashboard routes with the users' session
//! cookies (and CSRF tokens on forms) — and with the agents' bearer tokens, which must not open
//! the dashboard.
#![allow(clippy::unwrap_used)]

use axum::Router;
use axum::body::Body;
use axum::http::{Request, header};
use http_body_util::BodyExt;
use rdpfleet_e2e::TestDb;
use rdpfleet_proto::check::{CheckResult, CheckStatus};
use rdpfleet_proto::enroll::MachineRole;
use rdpfleet_server::config::Settings;
use rdpfleet_server::domain::users::Role;
use rdpfleet_server::secrets::{hash_password, token_hash};
use rdpfleet_server::store::Store;
use rdpfleet_server::store::audit::{ActorKind, NewAuditEntry};
use rdpfleet_server::store::enrollment::{NewEnrollmentToken, NewMachine};
use rdpfleet_server::store::now_ms;
use serde_json::{Value, json};
use tower::ServiceExt;

const COOKIE: &str = "__Host-rdpfleet_session";
const PASSWORD: &str = "correct horse battery";
const ORIGIN: &str = "http://rdpfleet.test";

#[derive(Debug, Clone, Copy, PartialEq)]
enum Who {
    Anonymous,
    Agent,
    OtherAgent,
    Viewer,
    Operator,
    Admin,
}
const EVERYONE: [Who; 6] = [Who::Anonymous, Who::Agent, Who::OtherAgent, Who::Viewer, Who::Operator, Who::Admin];

fn audit() -> NewAuditEntry {
    NewAuditEntry::new(ActorKind::Cli, "test", "setup", "x")
}

struct Fleet {
    router: Router,
    store: Store,
    machine: String,
    incident: String,
    rollout: String,
    /// Session cookie and CSRF token per user.
    sessions: Vec<(Who, String, String)>,
}

impl Fleet {
    async fn call(&self, who: Who, method: &str, uri: &str, body: Option<Body>, web: bool) -> (u16, String) {
        let mut req = Request::builder().method(method).uri(uri).header(header::HOST, "rdpfleet.test");
        let bearer = match who {
            Who::Anonymous => None,
            Who::Agent => Some("rfa_mine".to_owned()),
            Who::OtherAgent => Some("rfa_other".to_owned()),
            user if !web => Some(format!("rfu_{}", format!("{user:?}").to_lowercase())),
            _ => None,
        };
        if let Some(t) = bearer {
            req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        if web && let Some((_, cookie, _)) = self.sessions.iter().find(|(w, _, _)| *w == who) {
            req = req.header(header::COOKIE, format!("{COOKIE}={cookie}"));
        }
        if method == "POST" {
            req = req.header(header::ORIGIN, ORIGIN);
            req = req.header(
                header::CONTENT_TYPE,
                if web { "application/x-www-form-urlencoded" } else { "application/json" },
            );
        }
        let resp = self.router.clone().oneshot(req.body(body.unwrap_or_else(Body::empty)).unwrap()).await.unwrap();
        let status = resp.status().as_u16();
        let location = resp.headers().get(header::LOCATION).map(|l| l.to_str().unwrap().to_owned());
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        (status, location.unwrap_or_else(|| String::from_utf8_lossy(&bytes).into_owned()))
    }

    fn csrf(&self, who: Who) -> String {
        self.sessions.iter().find(|(w, _, _)| *w == who).map(|(_, _, c)| c.clone()).unwrap_or_default()
    }
}

async fn fleet(db: &TestDb) -> Fleet {
    let store = Store::connect(db.url()).await.unwrap();
    let settings = Settings { database_url: db.url().to_owned(), ..Settings::default() };
    let state = rdpfleet_server::app_state(settings, store.clone(), ed25519_dalek::SigningKey::from_bytes(&[1u8; 32]));
    let router = rdpfleet_server::router::router(state);
    for (name, role) in [("viewer", Role::Viewer), ("operator", Role::Operator), ("admin", Role::Admin)] {
        store.create_user(name, &hash_password(PASSWORD).unwrap(), role, audit()).await.unwrap();
        let (user, _) = store.user_by_name(name).await.unwrap().unwrap();
        store.create_api_token(&user, "t", &token_hash(&format!("rfu_{name}")), audit()).await.unwrap();
    }
    store
        .create_enrollment_token(
            NewEnrollmentToken {
                label: "m",
                token_hash: &token_hash("rfe_m"),
                expires_at: now_ms() + 3_600_000,
                max_uses: 5,
            },
            audit(),
        )
        .await
        .unwrap();
    let new = |hostname| NewMachine {
        hostname,
        role: MachineRole::Host,
        os: "windows 10.0.20348",
        agent_version: "0.1.0",
        site: Some("hq"),
        labels: &[],
    };
    let mine = store.enroll(&token_hash("rfe_m"), new("mine"), &token_hash("rfa_mine")).await.unwrap();
    store.enroll(&token_hash("rfe_m"), new("other"), &token_hash("rfa_other")).await.unwrap();
    let r = CheckResult {
        check: "host.nla".into(),
        target: None,
        status: CheckStatus::Fail,
        summary: "NLA off".into(),
        cause: Some("host.nla_disabled".into()),
        evidence: json!({}),
        observed_at: time::OffsetDateTime::now_utc(),
        duration_ms: 1,
    };
    store.store_report(mine, 1, None, &[r]).await.unwrap();
    rdpfleet_server::tasks::correlation::run_once(&store, &Default::default()).await.unwrap();
    let incident = store.incidents(Some(rdpfleet_server::domain::incident::IncidentState::Open), 10, 0).await.unwrap()
        [0]
    .id
    .to_string();
    let mut f = Fleet { router, store, machine: mine.to_string(), incident, rollout: String::new(), sessions: vec![] };
    for who in [Who::Viewer, Who::Operator, Who::Admin] {
        let name = format!("{who:?}").to_lowercase();
        let form = format!("username={name}&password={}&next=%2F", PASSWORD.replace(' ', "+"));
        let req = Request::post("/login")
            .header(header::HOST, "rdpfleet.test")
            .header(header::ORIGIN, ORIGIN)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(form))
            .unwrap();
        let resp = f.router.clone().oneshot(req).await.unwrap();
        let c = resp.headers().get(header::SET_COOKIE).unwrap().to_str().unwrap().to_owned();
        let cookie = c[COOKIE.len() + 1..].split(';').next().unwrap().to_owned();
        f.sessions.push((who, cookie, String::new()));
        let req = Request::get("/")
            .header(header::HOST, "rdpfleet.test")
            .header(header::COOKIE, format!("{COOKIE}={}", f.sessions.last().unwrap().1))
            .body(Body::empty())
            .unwrap();
        let body = f.router.clone().oneshot(req).await.unwrap().into_body().collect().await.unwrap().to_bytes();
        let body = String::from_utf8_lossy(&body);
        let csrf = body.split("name=\"csrf\" value=\"").nth(1).unwrap().split('"').next().unwrap().to_owned();
        f.sessions.last_mut().unwrap().2 = csrf;
    }
    // A rollout (NLA needs no approval) by the operator, for the rollout routes.
    let (status, body) = f
        .call(
            Who::Operator,
            "POST",
            "/api/v1/rollouts",
            Some(Body::from(json!({"fix": "host.nla.enable", "machines": [f.machine], "canary": 1}).to_string())),
            false,
        )
        .await;
    assert_eq!(status, 201, "{body}");
    f.rollout = serde_json::from_str::<Value>(&body).map(|v| v["rollout"]["id"].as_str().unwrap().to_owned()).unwrap();
    f
}

/// Expected statuses in the order of `EVERYONE`.
type Row = (&'static str, String, Option<String>, [u16; 6]);

fn report_body() -> String {
    json!({"seq": 10, "results": []}).to_string()
}

async fn check_rows(f: &Fleet, rows: Vec<Row>, web: bool) -> Vec<String> {
    let mut wrong = vec![];
    for (method, uri, body, expected) in rows {
        for (who, want) in EVERYONE.iter().zip(expected) {
            let body = body.as_ref().map(|b| Body::from(b.replace("CSRF", &f.csrf(*who))));
            let (got, detail) = f.call(*who, method, &uri, body, web).await;
            if got != want {
                let detail: String = detail.chars().take(160).collect();
                wrong.push(format!("{method} {uri} as {who:?}: {got} (expected {want}) {detail}"));
            }
        }
    }
    wrong
}

async fn the_matrix(db: TestDb) {
    let f = fleet(&db).await;
    let (m, inc, ro) = (f.machine.clone(), f.incident.clone(), f.rollout.clone());
    let nobody = "00000000-0000-4000-8000-000000000000";
    let propose = json!({"fix": "host.nla.enable", "machines": [m], "canary": 1}).to_string();

    // Bearer-token routes. 401: no or wrong kind of credential; 403: the right kind, not allowed.
    #[rustfmt::skip]
    let api: Vec<Row> = vec![
        ("GET", "/healthz".into(), None, [200, 200, 200, 200, 200, 200]),
        ("GET", "/readyz".into(), None, [200, 200, 200, 200, 200, 200]),
        ("GET", "/api/openapi.json".into(), None, [200, 200, 200, 200, 200, 200]),
        // Enrollment needs no credential, only a valid enrollment token.
        ("POST", "/api/agent/v1/enroll".into(), Some(json!({"token": "rfe_wrong", "hostname": "h", "role": "client", "os": "linux", "agent_version": "1"}).to_string()), [401, 401, 401, 401, 401, 401]),
        ("POST", format!("/api/agent/v1/machines/{m}/reports"), Some(report_body()), [401, 200, 403, 401, 401, 401]),
        ("GET", format!("/api/agent/v1/machines/{m}/jobs?wait=0"), None, [401, 200, 403, 401, 401, 401]),
        ("POST", format!("/api/agent/v1/machines/{m}/jobs/{nobody}/result"), Some(json!({"outcome": "succeeded", "message": "x", "evidence": {}}).to_string()), [401, 404, 403, 401, 401, 401]),
        ("GET", format!("/api/agent/v1/machines/{m}/releases/{nobody}"), None, [401, 404, 403, 401, 401, 401]),
        ("GET", "/api/v1/releases".into(), None, [401, 401, 401, 200, 200, 200]),
        ("GET", "/api/v1/machines".into(), None, [401, 401, 401, 200, 200, 200]),
        ("GET", format!("/api/v1/machines/{m}"), None, [401, 401, 401, 200, 200, 200]),
        ("GET", format!("/api/v1/machines/{m}/results"), None, [401, 401, 401, 200, 200, 200]),
        ("GET", format!("/api/v1/machines/{m}/history"), None, [401, 401, 401, 200, 200, 200]),
        ("GET", format!("/api/v1/machines/{m}/diagnoses"), None, [401, 401, 401, 200, 200, 200]),
        ("GET", "/api/v1/overview".into(), None, [401, 401, 401, 200, 200, 200]),
        ("GET", "/api/v1/fleet/machines".into(), None, [401, 401, 401, 200, 200, 200]),
        ("GET", "/api/v1/checks/host.nla".into(), None, [401, 401, 401, 200, 200, 200]),
        ("GET", "/api/v1/incidents".into(), None, [401, 401, 401, 200, 200, 200]),
        ("GET", format!("/api/v1/incidents/{inc}"), None, [401, 401, 401, 200, 200, 200]),
        ("GET", "/api/v1/map".into(), None, [401, 401, 401, 200, 200, 200]),
        ("GET", "/api/v1/rollouts".into(), None, [401, 401, 401, 200, 200, 200]),
        ("GET", format!("/api/v1/rollouts/{ro}"), None, [401, 401, 401, 200, 200, 200]),
        ("POST", "/api/v1/rollouts".into(), Some(propose.clone()), [401, 401, 401, 403, 201, 201]),
        // NLA needs no approval: there is nothing to approve (409) for those allowed to try.
        ("POST", format!("/api/v1/rollouts/{ro}/approve"), None, [401, 401, 401, 403, 403, 409]),
        ("POST", format!("/api/v1/rollouts/{ro}/pause"), None, [401, 401, 401, 403, 409, 409]),
        ("POST", format!("/api/v1/rollouts/{ro}/resume"), None, [401, 401, 401, 403, 409, 409]),
        // Nothing ran yet: a rollback has nothing to restore and succeeds.
        ("POST", format!("/api/v1/rollouts/{ro}/rollback"), Some("{}".into()), [401, 401, 401, 403, 200, 200]),
        ("POST", format!("/api/v1/rollouts/{nobody}/start"), None, [401, 401, 401, 403, 404, 404]),
        ("POST", format!("/api/v1/rollouts/{nobody}/abort"), None, [401, 401, 401, 403, 404, 404]),
        // People: administrators only (a user may see and revoke their own tokens).
        ("GET", "/api/v1/users".into(), None, [401, 401, 401, 403, 403, 200]),
        ("POST", format!("/api/v1/users/{nobody}/disable"), None, [401, 401, 401, 403, 403, 404]),
        ("POST", format!("/api/v1/users/{nobody}/enable"), None, [401, 401, 401, 403, 403, 404]),
        ("POST", format!("/api/v1/users/{nobody}/delete"), None, [401, 401, 401, 403, 403, 404]),
        ("POST", format!("/api/v1/users/{nobody}/role"), Some(json!({"role": "viewer"}).to_string()), [401, 401, 401, 403, 403, 404]),
        ("GET", format!("/api/v1/users/{nobody}/tokens"), None, [401, 401, 401, 403, 403, 200]),
        ("POST", format!("/api/v1/tokens/{nobody}/revoke"), None, [401, 401, 401, 404, 404, 404]),
    ];
    let mut wrong = check_rows(&f, api, false).await;

    // Dashboard routes. Without a session every page and form sends to the sign-in page (303)
    // and changes nothing; with one, a role that may not do it gets 403.
    let csrf = "csrf=CSRF";
    #[rustfmt::skip]
    let web: Vec<Row> = vec![
        ("GET", "/login".into(), None, [200, 200, 200, 200, 200, 200]),
        ("GET", "/static/app.css".into(), None, [200, 200, 200, 200, 200, 200]),
        ("GET", "/static/app.js".into(), None, [200, 200, 200, 200, 200, 200]),
        ("GET", "/setup".into(), None, [404, 404, 404, 404, 404, 404]),
        ("GET", "/".into(), None, [303, 303, 303, 200, 200, 200]),
        ("GET", "/machines".into(), None, [303, 303, 303, 200, 200, 200]),
        ("GET", format!("/machines/{m}"), None, [303, 303, 303, 200, 200, 200]),
        ("GET", "/checks/host.nla".into(), None, [303, 303, 303, 200, 200, 200]),
        ("GET", "/incidents".into(), None, [303, 303, 303, 200, 200, 200]),
        ("GET", format!("/incidents/{inc}"), None, [303, 303, 303, 200, 200, 200]),
        ("GET", "/map".into(), None, [303, 303, 303, 200, 200, 200]),
        ("GET", "/rollouts".into(), None, [303, 303, 303, 200, 200, 200]),
        ("GET", format!("/rollouts/{ro}"), None, [303, 303, 303, 200, 200, 200]),
        ("GET", "/audit".into(), None, [303, 303, 303, 200, 200, 200]),
        ("GET", "/releases".into(), None, [303, 303, 303, 200, 200, 200]),
        ("POST", format!("/releases/{nobody}/propose"), Some(format!("{csrf}&canary=1")), [303, 303, 303, 403, 404, 404]),
        ("GET", "/export/audit.csv".into(), None, [303, 303, 303, 200, 200, 200]),
        ("GET", "/export/machines.csv".into(), None, [303, 303, 303, 200, 200, 200]),
        ("GET", "/export/machines.json".into(), None, [303, 303, 303, 200, 200, 200]),
        ("GET", "/export/incidents.csv".into(), None, [303, 303, 303, 200, 200, 200]),
        ("GET", "/export/incidents.json".into(), None, [303, 303, 303, 200, 200, 200]),
        ("GET", "/export/results.csv".into(), None, [303, 303, 303, 200, 200, 200]),
        ("GET", "/export/results.json".into(), None, [303, 303, 303, 200, 200, 200]),
        ("GET", "/admin/users".into(), None, [303, 303, 303, 403, 403, 200]),
        ("GET", "/admin/tokens".into(), None, [303, 303, 303, 403, 403, 200]),
        ("POST", "/admin/users".into(), Some(format!("{csrf}&username=new1&role=viewer&password=a+long+enough+one")), [303, 303, 303, 403, 403, 303]),
        ("POST", "/admin/tokens".into(), Some(format!("{csrf}&label=x&max_uses=1&hours=1")), [303, 303, 303, 403, 403, 200]),
        ("POST", format!("/admin/tokens/{nobody}/revoke"), Some(csrf.into()), [303, 303, 303, 403, 403, 404]),
        ("POST", format!("/admin/users/{nobody}/disable"), Some(csrf.into()), [303, 303, 303, 403, 403, 404]),
        ("POST", format!("/admin/users/{nobody}/role"), Some(format!("{csrf}&role=viewer")), [303, 303, 303, 403, 403, 404]),
        ("POST", format!("/admin/api-tokens/{nobody}/revoke"), Some(csrf.into()), [303, 303, 303, 403, 403, 404]),
        ("POST", "/rollouts".into(), Some(format!("{csrf}&fix=host.nla.enable&machine={m}&canary=1")), [303, 303, 303, 403, 303, 303]),
        ("POST", format!("/rollouts/{ro}/pause"), Some(csrf.into()), [303, 303, 303, 403, 409, 409]),
        ("POST", format!("/rollouts/{ro}/approve"), Some(csrf.into()), [303, 303, 303, 403, 403, 409]),
        // A form without the session's CSRF token is refused whoever sends it.
        ("POST", format!("/rollouts/{ro}/pause"), Some("csrf=forged".into()), [303, 303, 303, 403, 403, 403]),
        ("POST", "/logout".into(), Some(csrf.into()), [303, 303, 303, 303, 303, 303]),
    ];
    wrong.extend(check_rows(&f, web, true).await);
    assert!(wrong.is_empty(), "{} cells differ:\n{}", wrong.len(), wrong.join("\n"));

    // Signed out (the last row): the old cookie opens nothing.
    assert_eq!(f.call(Who::Viewer, "GET", "/", None, true).await.0, 303);

    // A revoked agent's token is refused everywhere it worked.
    let other = f.store.agent_by_token(&token_hash("rfa_mine")).await.unwrap().unwrap().machine_id;
    f.store.revoke_agent(other, audit()).await.unwrap();
    let (status, _) = f.call(Who::Agent, "GET", &format!("/api/agent/v1/machines/{m}/jobs?wait=0"), None, false).await;
    assert_eq!(status, 401);
    let (status, _) = f
        .call(
            Who::Agent,
            "POST",
            &format!("/api/agent/v1/machines/{m}/reports"),
            Some(Body::from(report_body())),
            false,
        )
        .await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn authorization_matrix_sqlite() {
    the_matrix(TestDb::sqlite()).await;
}

#[tokio::test]
async fn authorization_matrix_postgres() {
    if let Some(db) = TestDb::postgres().await {
        the_matrix(db).await;
    }
}

#[tokio::test]
async fn an_expired_session_opens_nothing() {
    let db = TestDb::sqlite();
    let f = fleet(&db).await;
    assert_eq!(f.call(Who::Admin, "GET", "/admin/users", None, true).await.0, 200);
    let pool = sqlx::SqlitePool::connect(db.url()).await.unwrap();
    sqlx::query("UPDATE sessions SET expires_at = $1").bind(now_ms() - 1).execute(&pool).await.unwrap();
    assert_eq!(f.call(Who::Admin, "GET", "/admin/users", None, true).await, (303, "/login?next=/admin/users".into()));
    let form = format!("csrf={}&username=late&role=admin&password=a+long+enough+one", f.csrf(Who::Admin));
    assert_eq!(f.call(Who::Admin, "POST", "/admin/users", Some(Body::from(form)), true).await.0, 303);
    assert!(f.store.user_by_name("late").await.unwrap().is_none());
}

/// Credentials that once worked but are restricted or ended: a read-only token reads and changes
/// nothing; an expired or revoked token, a disabled or deleted user's token, opens nothing.
async fn restricted_credentials(db: TestDb) {
    use rdpfleet_server::domain::users::TokenScope;
    use rdpfleet_server::store::users::{AccountChange, NewApiToken};
    let f = fleet(&db).await;
    let (admin, _) = f.store.user_by_name("admin").await.unwrap().unwrap();
    let token = |label: &'static str, scope, expires_at| {
        let store = f.store.clone();
        let admin = admin.clone();
        async move {
            let secret = format!("rfu_{label}");
            let t = NewApiToken { label, token_hash: &token_hash(&secret), scope, expires_at };
            store.create_scoped_api_token(&admin, t, audit()).await.unwrap()
        }
    };
    token("read", TokenScope::Read, None).await;
    token("expired", TokenScope::Operate, Some(now_ms() - 1)).await;
    let revoked = token("revoked", TokenScope::Operate, Some(now_ms() + 3_600_000)).await;
    f.store.revoke_api_token(revoked, None, audit()).await.unwrap();
    let m = &f.machine;
    let nobody = "00000000-0000-4000-8000-000000000000";
    let propose = json!({"fix": "host.nla.enable", "machines": [m]}).to_string();
    let call = |token: &'static str, method: &'static str, uri: String, body: Option<String>| {
        let router = f.router.clone();
        async move {
            let mut req =
                Request::builder().method(method).uri(&uri).header(header::AUTHORIZATION, format!("Bearer {token}"));
            if body.is_some() {
                req = req.header(header::CONTENT_TYPE, "application/json");
            }
            let req = req.body(body.map_or(Body::empty(), Body::from)).unwrap();
            router.oneshot(req).await.unwrap().status().as_u16()
        }
    };
    #[rustfmt::skip]
    let routes: Vec<(&str, String, Option<String>, u16)> = vec![
        ("GET", "/api/v1/machines".into(), None, 200),
        ("GET", "/api/v1/users".into(), None, 200),
        ("GET", format!("/api/v1/rollouts/{}", f.rollout), None, 200),
        ("POST", "/api/v1/rollouts".into(), Some(propose), 403),
        ("POST", format!("/api/v1/rollouts/{}/start", f.rollout), None, 403),
        ("POST", format!("/api/v1/rollouts/{}/rollback", f.rollout), Some("{}".into()), 403),
        ("POST", format!("/api/v1/users/{nobody}/disable"), None, 403),
        ("POST", format!("/api/v1/users/{nobody}/role"), Some(json!({"role": "admin"}).to_string()), 403),
    ];
    let mut wrong = vec![];
    for (method, uri, body, read_only) in &routes {
        for (token, want) in [("rfu_read", *read_only), ("rfu_expired", 401), ("rfu_revoked", 401)] {
            let got = call(token, method, uri.clone(), body.clone()).await;
            if got != want {
                wrong.push(format!("{method} {uri} with {token}: {got} (expected {want})"));
            }
        }
    }
    // A disabled user's token, then a deleted user's, opens nothing (the operator's).
    let (operator, _) = f.store.user_by_name("operator").await.unwrap().unwrap();
    let (viewer, _) = f.store.user_by_name("viewer").await.unwrap().unwrap();
    f.store.change_account(operator.id, AccountChange::Disable, None, audit()).await.unwrap();
    f.store.change_account(viewer.id, AccountChange::Delete, None, audit()).await.unwrap();
    for (method, uri, body, _) in &routes {
        for token in ["rfu_operator", "rfu_viewer"] {
            let got = call(token, method, uri.clone(), body.clone()).await;
            if got != 401 {
                wrong.push(format!("{method} {uri} with {token} (disabled/deleted): {got}"));
            }
        }
    }
    assert!(f.call(Who::Operator, "GET", "/", None, true).await.0 == 303, "the disabled user's session ended");
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[tokio::test]
async fn restricted_credentials_sqlite() {
    restricted_credentials(TestDb::sqlite()).await;
}

#[tokio::test]
async fn restricted_credentials_postgres() {
    if let Some(db) = TestDb::postgres().await {
        restricted_credentials(db).await;
    }
}
