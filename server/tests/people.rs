//! Control of people over the fleet, on SQLite and PostgreSQL: access is taken away at once
//! (disable, role change, delete, token revocation and expiry, read-only tokens) on every
//! replica; risky or large rollouts need a second person; the second person cannot be a puppet
//! of the proposer; creating or promoting an administrator reaches the webhooks.
#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use rdpfleet_e2e::TestDb;
use rdpfleet_proto::enroll::MachineRole;
use rdpfleet_server::config::Settings;
use rdpfleet_server::domain::users::{Role, TokenScope};
use rdpfleet_server::secrets::{hash_password, token_hash};
use rdpfleet_server::store::Store;
use rdpfleet_server::store::audit::{ActorKind, NewAuditEntry};
use rdpfleet_server::store::enrollment::{NewEnrollmentToken, NewMachine};
use rdpfleet_server::store::now_ms;
use rdpfleet_server::store::users::NewApiToken;
use serde_json::{Value, json};
use tower::ServiceExt;
use uuid::Uuid;

const COOKIE: &str = "__Host-rdpfleet_session";
const PASSWORD: &str = "correct horse battery";

fn audit() -> NewAuditEntry {
    NewAuditEntry::new(ActorKind::Cli, "test", "setup", "x")
}

struct App {
    router: Router,
    store: Store,
}

impl App {
    async fn new(url: &str, webhook: Option<String>) -> App {
        let store = Store::connect(url).await.unwrap();
        let settings = Settings {
            database_url: url.to_owned(),
            webhook_urls: webhook.into_iter().collect(),
            ..Settings::default()
        };
        let state =
            rdpfleet_server::app_state(settings, store.clone(), ed25519_dalek::SigningKey::from_bytes(&[7; 32]));
        App { router: rdpfleet_server::router::router(state), store }
    }

    async fn api(&self, method: &str, uri: &str, token: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut req =
            Request::builder().method(method).uri(uri).header(header::AUTHORIZATION, format!("Bearer {token}"));
        if body.is_some() {
            req = req.header(header::CONTENT_TYPE, "application/json");
        }
        let resp =
            self.router.clone().oneshot(req.body(body.map_or(Body::empty(), |b| Body::from(b.to_string()))).unwrap());
        let resp = resp.await.unwrap();
        let status = resp.status();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        (status, serde_json::from_slice(&bytes).unwrap_or_default())
    }

    /// A page or form as a signed-in user: (status, location or body).
    async fn web(&self, method: &str, uri: &str, cookie: &str, form: Option<String>) -> (StatusCode, String) {
        let mut req = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::HOST, "rdpfleet.test")
            .header(header::COOKIE, format!("{COOKIE}={cookie}"));
        if form.is_some() {
            req = req.header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        }
        let resp =
            self.router.clone().oneshot(req.body(form.map_or(Body::empty(), Body::from)).unwrap()).await.unwrap();
        let status = resp.status();
        let location = resp.headers().get(header::LOCATION).map(|l| l.to_str().unwrap().to_owned());
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        (status, location.unwrap_or_else(|| String::from_utf8_lossy(&bytes).into_owned()))
    }

    /// Signs in; the session cookie and its CSRF token.
    async fn sign_in(&self, name: &str) -> (String, String) {
        let form = format!("username={name}&password={}", PASSWORD.replace(' ', "+"));
        let req = Request::post("/login")
            .header(header::HOST, "rdpfleet.test")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(form))
            .unwrap();
        let resp = self.router.clone().oneshot(req).await.unwrap();
        assert_eq!(resp.status(), StatusCode::SEE_OTHER, "{name} signs in");
        let c = resp.headers().get(header::SET_COOKIE).unwrap().to_str().unwrap().to_owned();
        let cookie = c[COOKIE.len() + 1..].split(';').next().unwrap().to_owned();
        let (_, body) = self.web("GET", "/", &cookie, None).await;
        let csrf = body.split("name=\"csrf\" value=\"").nth(1).unwrap().split('"').next().unwrap().to_owned();
        (cookie, csrf)
    }

    async fn user(&self, name: &str, role: Role) -> Uuid {
        let u = self.store.create_user(name, &hash_password(PASSWORD).unwrap(), role, audit()).await.unwrap();
        let secret = format!("rfu_{name}_operate");
        let t =
            NewApiToken { label: "t", token_hash: &token_hash(&secret), scope: TokenScope::Operate, expires_at: None };
        self.store.create_scoped_api_token(&u, t, audit()).await.unwrap();
        u.id
    }

    /// Gives `name` a new API token (`rfu_<name>_<scope>_<random>`).
    async fn token(&self, name: &str, scope: TokenScope, expires_at: Option<i64>) -> String {
        let (u, _) = self.store.user_by_name(name).await.unwrap().unwrap();
        let secret = format!("rfu_{name}_{}_{}", scope.as_str(), Uuid::new_v4().simple());
        let t = NewApiToken { label: "t", token_hash: &token_hash(&secret), scope, expires_at };
        self.store.create_scoped_api_token(&u, t, audit()).await.unwrap();
        secret
    }

    async fn machines(&self, n: usize) -> Vec<Uuid> {
        let t = NewEnrollmentToken {
            label: "m",
            token_hash: &token_hash("rfe_m"),
            expires_at: now_ms() + 3_600_000,
            max_uses: 1000,
        };
        self.store.create_enrollment_token(t, audit()).await.unwrap();
        let mut ids = vec![];
        for i in 0..n {
            let m = NewMachine {
                hostname: &format!("pc{i:03}"),
                role: MachineRole::Host,
                os: "windows 10.0.22631",
                agent_version: "0.1.0",
                site: None,
                labels: &[],
            };
            ids.push(self.store.enroll(&token_hash("rfe_m"), m, &token_hash(&format!("rfa_{i}"))).await.unwrap());
        }
        ids
    }
}

async fn taking_access_away(db: TestDb) {
    let app = App::new(db.url(), None).await;
    // A second replica on the same database.
    let other = App::new(db.url(), None).await;
    app.user("root", Role::Admin).await;
    let bob = app.user("bob", Role::Operator).await;
    let (bob_cookie, _) = app.sign_in("bob").await;
    let bob_read = app.token("bob", TokenScope::Read, None).await;
    let (root_cookie, root_csrf) = app.sign_in("root").await;

    // Tokens are listed with label, scope, times; a use is recorded.
    assert_eq!(app.api("GET", "/api/v1/machines", "rfu_bob_operate", None).await.0, StatusCode::OK);
    let (s, v) = app.api("GET", &format!("/api/v1/users/{bob}/tokens"), "rfu_root_operate", None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let listed = v.as_array().unwrap();
    assert_eq!(listed.len(), 2);
    assert!(listed.iter().any(|t| t["scope"] == "read" && t["last_used_at"].is_null()));
    assert!(listed.iter().any(|t| t["scope"] == "operate" && t["last_used_at"].is_i64()), "{v}");
    assert!(listed.iter().all(|t| t["label"] == "t" && t["created_at"].is_i64()));
    assert!(!v.to_string().contains("hash"), "secrets are never listed");
    // Another user's tokens are an administrator's business only.
    let (s, _) = app.api("GET", &format!("/api/v1/users/{bob}/tokens"), &bob_read, None).await;
    assert_eq!(s, StatusCode::OK, "one's own tokens");
    let (s, _) = app.api("GET", "/api/v1/users", "rfu_bob_operate", None).await;
    assert_eq!(s, StatusCode::FORBIDDEN);

    // A read-only token reads, never changes, whatever the role.
    let root_read = app.token("root", TokenScope::Read, None).await;
    assert_eq!(app.api("GET", "/api/v1/users", &root_read, None).await.0, StatusCode::OK);
    let (s, v) = app.api("POST", &format!("/api/v1/users/{bob}/disable"), &root_read, None).await;
    assert_eq!((s, v["error"]["message"].as_str()), (StatusCode::FORBIDDEN, Some("this API token is read-only")));
    let machines = app.machines(1).await;
    let propose = json!({"fix": "host.nla.enable", "machines": machines});
    assert_eq!(app.api("POST", "/api/v1/rollouts", &bob_read, Some(propose.clone())).await.0, StatusCode::FORBIDDEN);
    assert_eq!(app.api("POST", "/api/v1/rollouts", "rfu_bob_operate", Some(propose)).await.0, StatusCode::CREATED);

    // An expired token opens nothing.
    let expired = app.token("root", TokenScope::Operate, Some(now_ms() - 1)).await;
    assert_ne!(expired, "rfu_root_operate");
    assert_eq!(app.api("GET", "/api/v1/machines", &expired, None).await.0, StatusCode::UNAUTHORIZED);

    // Disabling bob (on the admin page of one replica) ends his session and tokens on both.
    let form = format!("csrf={root_csrf}");
    let (s, _) = app.web("POST", &format!("/admin/users/{bob}/disable"), &root_cookie, Some(form.clone())).await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    for replica in [&app, &other] {
        assert_eq!(replica.web("GET", "/", &bob_cookie, None).await.0, StatusCode::SEE_OTHER, "session ended");
        assert_eq!(replica.api("GET", "/api/v1/machines", "rfu_bob_operate", None).await.0, StatusCode::UNAUTHORIZED);
        assert_eq!(replica.api("GET", "/api/v1/machines", &bob_read, None).await.0, StatusCode::UNAUTHORIZED);
    }
    // Enabling him back does not bring the old session or tokens back.
    let (s, v) = other.api("POST", &format!("/api/v1/users/{bob}/enable"), "rfu_root_operate", None).await;
    assert_eq!((s, v["state"].as_str()), (StatusCode::OK, Some("active")), "{v}");
    assert_eq!(app.api("GET", "/api/v1/machines", "rfu_bob_operate", None).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(app.web("GET", "/", &bob_cookie, None).await.0, StatusCode::SEE_OTHER);
    let (bob_cookie, _) = app.sign_in("bob").await;

    // A role change ends the session too; the new role holds at the next sign-in.
    let (s, v) = app
        .api("POST", &format!("/api/v1/users/{bob}/role"), "rfu_root_operate", Some(json!({"role": "viewer"})))
        .await;
    assert_eq!((s, v["role"].as_str()), (StatusCode::OK, Some("viewer")), "{v}");
    assert_eq!(app.web("GET", "/", &bob_cookie, None).await.0, StatusCode::SEE_OTHER);
    let (s, _) =
        app.api("POST", &format!("/api/v1/users/{bob}/role"), "rfu_root_operate", Some(json!({"role": "king"}))).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    let (s, _) = app
        .api("POST", &format!("/api/v1/users/{bob}/role"), "rfu_root_operate", Some(json!({"role": "viewer"})))
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "nothing to change");

    // A user revokes their own token; an administrator anyone's; nobody someone else's.
    let bob_new = app.token("bob", TokenScope::Read, None).await;
    let (_, v) = app.api("GET", &format!("/api/v1/users/{bob}/tokens"), &bob_new, None).await;
    let live =
        v.as_array().unwrap().iter().find(|t| t["revoked_at"].is_null()).unwrap()["id"].as_str().unwrap().to_owned();
    let root_id = app.store.account_by_name("root").await.unwrap().unwrap().id;
    let (_, v) = app.api("GET", &format!("/api/v1/users/{root_id}/tokens"), "rfu_root_operate", None).await;
    let roots = v.as_array().unwrap()[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(
        app.api("POST", &format!("/api/v1/tokens/{roots}/revoke"), &bob_new, None).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.api("POST", &format!("/api/v1/tokens/{live}/revoke"), &bob_new, None).await.0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(other.api("GET", "/api/v1/machines", &bob_new, None).await.0, StatusCode::UNAUTHORIZED);

    // The last administrator cannot be removed; a deleted account keeps its name.
    let (s, _) = app.api("POST", &format!("/api/v1/users/{root_id}/disable"), "rfu_root_operate", None).await;
    assert_eq!(s, StatusCode::CONFLICT, "the only admin");
    let (s, v) = app.api("POST", &format!("/api/v1/users/{bob}/delete"), "rfu_root_operate", None).await;
    assert_eq!((s, v["state"].as_str()), (StatusCode::OK, Some("deleted")));
    assert_eq!(
        app.api("POST", &format!("/api/v1/users/{bob}/enable"), "rfu_root_operate", None).await.0,
        StatusCode::CONFLICT
    );
    let form = format!("csrf={root_csrf}&username=bob&role=admin&password=a+long+enough+one");
    assert_eq!(app.web("POST", "/admin/users", &root_cookie, Some(form)).await.0, StatusCode::CONFLICT, "name kept");
    let login = format!("username=bob&password={}", PASSWORD.replace(' ', "+"));
    let req = Request::post("/login")
        .header(header::HOST, "rdpfleet.test")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(login))
        .unwrap();
    assert_eq!(app.router.clone().oneshot(req).await.unwrap().status(), StatusCode::UNAUTHORIZED);

    // Every change is in the audit log.
    let actions: Vec<String> = app.store.audit_entries(0, 1000).await.unwrap().into_iter().map(|e| e.action).collect();
    for a in ["user.disabled", "user.enabled", "user.role_changed", "user.deleted", "api_token.revoked"] {
        assert!(actions.iter().any(|x| x == a), "{a} audited: {actions:?}");
    }
    // The page lists the accounts and tokens.
    let (s, page) = app.web("GET", "/admin/users", &root_cookie, None).await;
    assert_eq!(s, StatusCode::OK);
    assert!(page.contains("deleted") && page.contains("revoked") && page.contains("read"), "{page}");
}

#[tokio::test]
async fn taking_access_away_sqlite() {
    taking_access_away(TestDb::sqlite()).await;
}

#[tokio::test]
async fn taking_access_away_postgres() {
    if let Some(db) = TestDb::postgres().await {
        taking_access_away(db).await;
    }
}

/// Webhook events received: (event, subject).
type Hooks = Arc<Mutex<Vec<(String, Value)>>>;

async fn receiver() -> (String, Hooks) {
    let hooks: Hooks = Arc::default();
    let h = hooks.clone();
    let app = Router::new().route(
        "/hook",
        axum::routing::post(move |axum::Json(v): axum::Json<Value>| async move {
            h.lock().unwrap().push((v["event"].as_str().unwrap_or_default().to_owned(), v["subject"].clone()));
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, hooks)
}

async fn second_person(db: TestDb) {
    let (hook, hooks) = receiver().await;
    let app = App::new(db.url(), Some(hook)).await;
    app.user("alice", Role::Admin).await;
    app.user("olga", Role::Operator).await;
    let carl = app.user("carl", Role::Operator).await;
    app.user("dora", Role::Admin).await;
    let machines = app.machines(30).await;
    let one = vec![machines[0]];

    // Risk classes: widening exposure needs approval, and the reason is given.
    for fix in ["host.rdp.enable", "host.firewall.enable", "host.network.set_private", "host.security_layer.set"] {
        let (s, v) =
            app.api("POST", "/api/v1/rollouts", "rfu_olga_operate", Some(json!({"fix": fix, "machines": one}))).await;
        assert_eq!((s, v["rollout"]["state"].as_str()), (StatusCode::CREATED, Some("awaiting_approval")), "{fix}: {v}");
        assert!(v["approval_reasons"][0].as_str().unwrap().contains("widens exposure"), "{v}");
        let id = v["rollout"]["id"].as_str().unwrap();
        let (s, _) = app.api("POST", &format!("/api/v1/rollouts/{id}/start"), "rfu_olga_operate", None).await;
        assert_eq!(s, StatusCode::CONFLICT, "{fix} cannot start unapproved");
    }
    // Size: 26+ machines need approval whatever the fix; 25 do not.
    let (_, v) = app
        .api(
            "POST",
            "/api/v1/rollouts",
            "rfu_olga_operate",
            Some(json!({"fix": "host.nla.enable", "machines": machines[..25]})),
        )
        .await;
    assert_eq!(v["rollout"]["state"], "ready", "{v}");
    let (_, v) = app
        .api(
            "POST",
            "/api/v1/rollouts",
            "rfu_olga_operate",
            Some(json!({"fix": "host.nla.enable", "machines": machines})),
        )
        .await;
    assert_eq!(v["rollout"]["state"], "awaiting_approval", "{v}");
    assert!(v["approval_reasons"][0].as_str().unwrap().contains("30 machines"), "{v}");
    // The canary is capped: 5 % of 30 machines is 1.
    let (s, v) = app
        .api(
            "POST",
            "/api/v1/rollouts",
            "rfu_olga_operate",
            Some(json!({"fix": "host.rdp.enable", "machines": machines, "canary": 100000})),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("at most 1"), "{v}");

    // Alice proposes an exposure-widening rollout...
    let (_, v) = app
        .api("POST", "/api/v1/rollouts", "rfu_alice_operate", Some(json!({"fix": "host.rdp.enable", "machines": one})))
        .await;
    let id = v["rollout"]["id"].as_str().unwrap().to_owned();
    let approve = format!("/api/v1/rollouts/{id}/approve");
    assert_eq!(app.api("POST", &approve, "rfu_alice_operate", None).await.0, StatusCode::FORBIDDEN, "herself");
    // ...creates a puppet admin on the admin page and approves with it: refused.
    let (cookie, csrf) = app.sign_in("alice").await;
    let form = format!("csrf={csrf}&username=puppet&role=admin&password={}", PASSWORD.replace(' ', "+"));
    assert_eq!(app.web("POST", "/admin/users", &cookie, Some(form)).await.0, StatusCode::SEE_OTHER);
    let puppet = app.token("puppet", TokenScope::Operate, None).await;
    let (s, v) = app.api("POST", &approve, &puppet, None).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("created or promoted by the proposer"), "{v}");
    // ...promotes an operator to admin and approves with him: refused (promoted by her, and
    // an admin only since after the proposal).
    let (s, _) = app
        .api("POST", &format!("/api/v1/users/{carl}/role"), "rfu_alice_operate", Some(json!({"role": "admin"})))
        .await;
    assert_eq!(s, StatusCode::OK);
    let carl_token = app.token("carl", TokenScope::Operate, None).await;
    assert_eq!(app.api("POST", &approve, &carl_token, None).await.0, StatusCode::FORBIDDEN);
    // ...and a puppet made by the puppet is still hers.
    let (pc, pcsrf) = app.sign_in("puppet").await;
    let form = format!("csrf={pcsrf}&username=puppet2&role=admin&password={}", PASSWORD.replace(' ', "+"));
    assert_eq!(app.web("POST", "/admin/users", &pc, Some(form)).await.0, StatusCode::SEE_OTHER);
    let puppet2 = app.token("puppet2", TokenScope::Operate, None).await;
    assert_eq!(app.api("POST", &approve, &puppet2, None).await.0, StatusCode::FORBIDDEN);
    // Dora, an administrator from before, who owes alice nothing, approves.
    let (s, v) = app.api("POST", &approve, "rfu_dora_operate", None).await;
    assert_eq!((s, v["rollout"]["approved_by"].as_str()), (StatusCode::OK, Some("dora")), "{v}");

    // Creating and promoting administrators reached the webhooks.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let got = hooks.lock().unwrap().clone();
        let created = got.iter().filter(|(e, _)| e == "user.admin_created").count();
        let changed = got.iter().filter(|(e, s)| e == "user.admin_changed" && s["username"] == "carl").count();
        if created == 2 && changed == 1 {
            assert!(got.iter().any(|(_, s)| s["username"] == "puppet" && s["by"] == "alice"), "{got:?}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "webhooks: {got:?}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_second_person_is_another_person_sqlite() {
    second_person(TestDb::sqlite()).await;
}

#[tokio::test]
async fn a_second_person_is_another_person_postgres() {
    if let Some(db) = TestDb::postgres().await {
        second_person(db).await;
    }
}
