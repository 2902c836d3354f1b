//! The dashboard's router: every page for every role, sign-in and sign-out, CSRF on every form,
//! same-origin checks, security headers, sign-in throttling, the first-run page.
#![allow(clippy::unwrap_used)]

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
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
use serde_json::json;
use tower::ServiceExt;

const COOKIE: &str = "__Host-rdpfleet_session";
const PASSWORD: &str = "correct horse battery";

struct App {
    router: Router,
    store: Store,
}

struct Resp {
    status: StatusCode,
    location: Option<String>,
    set_cookie: Option<String>,
    body: String,
}

fn audit() -> NewAuditEntry {
    NewAuditEntry::new(ActorKind::Cli, "test", "setup", "x")
}

impl App {
    async fn new(db: &TestDb) -> App {
        let store = Store::connect(db.url()).await.unwrap();
        let settings = Settings { database_url: db.url().to_owned(), ..Settings::default() };
        let state =
            rdpfleet_server::app_state(settings, store.clone(), ed25519_dalek::SigningKey::from_bytes(&[1u8; 32]));
        App { router: rdpfleet_server::router::router(state), store }
    }

    async fn send(
        &self,
        method: &str,
        uri: &str,
        cookie: Option<&str>,
        form: Option<&str>,
        origin: Option<&str>,
    ) -> Resp {
        let mut req = Request::builder().method(method).uri(uri).header(header::HOST, "rdpfleet.test");
        if let Some(c) = cookie {
            req = req.header(header::COOKIE, format!("{COOKIE}={c}"));
        }
        if let Some(o) = origin {
            req = req.header(header::ORIGIN, o);
        }
        let body = match form {
            Some(f) => {
                req = req.header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
                Body::from(f.to_owned())
            }
            None => Body::empty(),
        };
        let resp = self.router.clone().oneshot(req.body(body).unwrap()).await.unwrap();
        let h = resp.headers().clone();
        // Every response carries the security headers.
        assert_eq!(h.get(header::X_CONTENT_TYPE_OPTIONS).unwrap(), "nosniff", "{uri}");
        assert_eq!(h.get(header::X_FRAME_OPTIONS).unwrap(), "DENY", "{uri}");
        assert_eq!(h.get(header::REFERRER_POLICY).unwrap(), "same-origin", "{uri}");
        let csp = h.get(header::CONTENT_SECURITY_POLICY).unwrap().to_str().unwrap();
        assert!(
            csp.contains("default-src 'none'") && csp.contains("script-src 'self'") && !csp.contains("unsafe"),
            "{csp}"
        );
        assert!(csp.contains("frame-ancestors 'none'") && csp.contains("form-action 'self'"));
        let text = |k| h.get(k).map(|v: &axum::http::HeaderValue| v.to_str().unwrap().to_owned());
        let status = resp.status();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        Resp {
            status,
            location: text(header::LOCATION),
            set_cookie: text(header::SET_COOKIE),
            body: String::from_utf8_lossy(&bytes).into(),
        }
    }

    async fn get(&self, uri: &str, cookie: Option<&str>) -> Resp {
        self.send("GET", uri, cookie, None, None).await
    }

    async fn post(&self, uri: &str, cookie: Option<&str>, form: &str) -> Resp {
        self.send("POST", uri, cookie, Some(form), Some("http://rdpfleet.test")).await
    }

    /// Signs in through the form; returns the session cookie and the page's CSRF token.
    async fn sign_in(&self, user: &str) -> (String, String) {
        let r = self
            .post("/login", None, &format!("username={user}&password={}&next=%2F", PASSWORD.replace(' ', "+")))
            .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
        let c = r.set_cookie.unwrap();
        assert!(c.starts_with(&format!("{COOKIE}=")), "{c}");
        for attr in ["HttpOnly", "SameSite=Strict", "Secure", "Path=/"] {
            assert!(c.contains(attr), "cookie lacks {attr}: {c}");
        }
        assert!(!c.contains("Domain"), "__Host- cookies have no Domain");
        let value = c[COOKIE.len() + 1..].split(';').next().unwrap().to_owned();
        let page = self.get("/", Some(&value)).await;
        assert_eq!(page.status, StatusCode::OK);
        let csrf = page.body.split("name=\"csrf\" value=\"").nth(1).unwrap().split('"').next().unwrap().to_owned();
        (value, csrf)
    }
}

/// A rollout of NLA for the seeded machine, created as an operator would.
async fn propose_nla(app: &App, machine: &str) -> String {
    let (cookie, csrf) = app.sign_in("operator").await;
    let r = app
        .post("/rollouts", Some(&cookie), &format!("csrf={csrf}&fix=host.nla.enable&machine={machine}&canary=1"))
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    r.location.unwrap().trim_start_matches("/rollouts/").to_owned()
}

async fn seed(app: &App) -> (String, String) {
    let s = &app.store;
    for (name, role) in [("viewer", Role::Viewer), ("operator", Role::Operator), ("admin", Role::Admin)] {
        s.create_user(name, &hash_password(PASSWORD).unwrap(), role, audit()).await.unwrap();
    }
    s.create_enrollment_token(
        NewEnrollmentToken {
            label: "seed",
            token_hash: &token_hash("rfe_seed"),
            expires_at: now_ms() + 3_600_000,
            max_uses: 100,
        },
        audit(),
    )
    .await
    .unwrap();
    let m = NewMachine {
        hostname: "<script>alert(1)</script>",
        // Both roles: host fixes (NLA) and client fixes may be proposed for it.
        role: MachineRole::Both,
        os: "windows",
        agent_version: "0.1.0",
        site: Some("hq"),
        labels: &[],
    };
    let id = s.enroll(&token_hash("rfe_seed"), m, &token_hash("rfa_seed")).await.unwrap();
    let r = CheckResult {
        check: "client.cert_warning_override".into(),
        target: None,
        status: CheckStatus::Fail,
        summary: "silenced".into(),
        cause: Some("client.cert_warnings_silenced".into()),
        evidence: json!({}),
        observed_at: time::OffsetDateTime::now_utc(),
        duration_ms: 1,
    };
    s.store_report(id, 1, None, &[r]).await.unwrap();
    rdpfleet_server::tasks::correlation::run_once(s, &Default::default()).await.unwrap();
    let incident = s.incidents(Some(rdpfleet_server::domain::incident::IncidentState::Open), 10, 0).await.unwrap()[0]
        .id
        .to_string();
    (id.to_string(), incident)
}

#[tokio::test]
async fn every_page_for_every_role() {
    let db = TestDb::sqlite();
    let app = App::new(&db).await;

    // First run: no user yet → the sign-in page sends to /setup, which works once.
    let r = app.get("/login", None).await;
    assert_eq!((r.status, r.location.as_deref()), (StatusCode::SEE_OTHER, Some("/setup")));
    assert_eq!(app.get("/setup", None).await.status, StatusCode::OK);
    let r = app.post("/setup", None, "username=root&password=short").await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    let r = app.post("/setup", None, "username=root&password=a+long+enough+one").await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert!(r.set_cookie.is_some(), "signed in as the new admin");
    assert_eq!(app.get("/setup", None).await.status, StatusCode::NOT_FOUND, "only while no user exists");
    assert_eq!(
        app.post("/setup", None, "username=evil&password=a+long+enough+one").await.status,
        StatusCode::NOT_FOUND
    );

    let (machine, incident) = seed(&app).await;
    let rollout = propose_nla(&app, &machine).await;
    let pages = [
        "/".to_owned(),
        "/machines".into(),
        "/machines?q=%3Cscr&status=fail&site=hq&role=client&sort=failing&check=client.cert_warning_override&page=1"
            .into(),
        format!("/machines/{machine}"),
        "/checks/client.cert_warning_override".into(),
        "/incidents".into(),
        "/incidents?state=all".into(),
        format!("/incidents/{incident}"),
        "/map".into(),
        "/map?site=hq".into(),
        "/export/machines.csv".into(),
        "/export/machines.json".into(),
        "/export/incidents.csv?state=all".into(),
        "/export/incidents.json".into(),
        "/export/results.csv?status=fail".into(),
        "/export/results.json".into(),
        "/rollouts".into(),
        format!("/rollouts/{rollout}"),
        "/audit".into(),
        "/audit?action=session.&actor=admin".into(),
        "/export/audit.csv?action=user.".into(),
    ];
    let admin_pages = ["/admin/users", "/admin/tokens"];

    // Anonymous: every page sends to the sign-in page, and back afterwards.
    for p in pages.iter().map(String::as_str).chain(admin_pages) {
        let r = app.get(p, None).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{p}");
        assert!(r.location.unwrap().starts_with("/login?next=/"), "{p}");
    }
    // A forged cookie is no session.
    assert_eq!(app.get("/", Some("forged")).await.status, StatusCode::SEE_OTHER);

    for (user, admin) in [("viewer", false), ("operator", false), ("admin", true)] {
        let (cookie, _) = app.sign_in(user).await;
        for p in &pages {
            let r = app.get(p, Some(&cookie)).await;
            assert_eq!(r.status, StatusCode::OK, "{user} {p}: {}", r.body);
            if !p.starts_with("/export") {
                assert!(!r.body.contains("<script>alert(1)"), "{p}: output is escaped");
            }
        }
        for p in admin_pages {
            let want = if admin { StatusCode::OK } else { StatusCode::FORBIDDEN };
            assert_eq!(app.get(p, Some(&cookie)).await.status, want, "{user} {p}");
        }
    }

    // An operator sees a "propose fix" form for a failing result with a fix; a viewer does not.
    let (oc, _) = app.sign_in("operator").await;
    let (cookie, _) = app.sign_in("viewer").await;
    app.store
        .store_report(
            machine.parse().unwrap(),
            2,
            None,
            &[CheckResult {
                check: "host.nla".into(),
                target: None,
                status: CheckStatus::Fail,
                summary: "NLA off".into(),
                cause: Some("rdp.nla_not_required".into()),
                evidence: json!({}),
                observed_at: time::OffsetDateTime::now_utc(),
                duration_ms: 1,
            }],
        )
        .await
        .unwrap();
    let op_page = app.get(&format!("/machines/{machine}"), Some(&oc)).await.body;
    assert!(op_page.contains("Propose a dry run of <code>host.nla.enable</code>"), "{op_page}");
    assert!(!app.get(&format!("/machines/{machine}"), Some(&cookie)).await.body.contains("Propose a dry run"));

    // Content: the machine, its incident and its check are on their pages.
    let page = app.get(&format!("/incidents/{incident}"), Some(&cookie)).await.body;
    assert!(page.contains("client.cert_warnings_silenced") && page.contains("&#60;script&#62;"), "{page}");
    let csv = app.get("/export/machines.csv", Some(&cookie)).await.body;
    assert!(csv.starts_with("id,hostname,role,site"), "{csv}");

    // Bad input → 400 or 404 pages, not 500.
    for (p, want) in [
        ("/machines?status=bogus", StatusCode::BAD_REQUEST),
        ("/machines?page=-1", StatusCode::BAD_REQUEST),
        ("/machines?unknown=1", StatusCode::BAD_REQUEST),
        ("/machines/not-a-uuid", StatusCode::NOT_FOUND),
        ("/machines/00000000-0000-0000-0000-000000000000", StatusCode::NOT_FOUND),
        ("/incidents?state=maybe", StatusCode::BAD_REQUEST),
        ("/incidents/00000000-0000-0000-0000-000000000000", StatusCode::NOT_FOUND),
        ("/export/results.csv?status=x", StatusCode::BAD_REQUEST),
    ] {
        assert_eq!(app.get(p, Some(&cookie)).await.status, want, "{p}");
    }
}

#[tokio::test]
async fn forms_need_the_role_the_csrf_token_and_the_same_origin() {
    let db = TestDb::sqlite();
    let app = App::new(&db).await;
    seed(&app).await;
    let users = || async { app.store.accounts().await.unwrap().len() };
    let before = users().await;

    // A viewer and an operator cannot change anything, even with their valid token.
    for who in ["viewer", "operator"] {
        let (cookie, csrf) = app.sign_in(who).await;
        let r = app
            .post(
                "/admin/users",
                Some(&cookie),
                &format!("csrf={csrf}&username=x1&password=twelve+chars+ok&role=admin"),
            )
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{who}");
        let r = app.post("/admin/tokens", Some(&cookie), &format!("csrf={csrf}&label=x&max_uses=1&hours=1")).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{who}");
    }
    assert_eq!(users().await, before);

    let (cookie, csrf) = app.sign_in("admin").await;
    let form = "username=newbie&password=twelve+chars+ok&role=viewer";
    // No token, a wrong token, another site's Origin: refused, nothing written.
    for (body, origin) in [
        (form.to_owned(), Some("http://rdpfleet.test")),
        (format!("csrf=wrong&{form}"), Some("http://rdpfleet.test")),
        (format!("csrf={csrf}&{form}"), Some("https://evil.example")),
        (format!("csrf=wrong&{form}"), Some("null")),
    ] {
        let r = app.send("POST", "/admin/users", Some(&cookie), Some(&body), origin).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{body} from {origin:?}");
    }
    assert_eq!(users().await, before, "no rejected form changed anything");
    let r = app.post("/admin/users", Some(&cookie), &format!("csrf={csrf}&{form}")).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert_eq!(users().await, before + 1);
    let r = app.post("/admin/users", Some(&cookie), &format!("csrf={csrf}&{form}")).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "the name is taken");

    // Enrollment tokens: created (shown once), revoked.
    let r = app.post("/admin/tokens", Some(&cookie), &format!("csrf={csrf}&label=branch&max_uses=3&hours=2")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.body.contains("rfe_"), "the new token is shown once");
    let id = app.store.list_enrollment_tokens().await.unwrap().into_iter().find(|t| t.label == "branch").unwrap().id;
    let r = app.post(&format!("/admin/tokens/{id}/revoke"), Some(&cookie), "csrf=nope").await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = app.post(&format!("/admin/tokens/{id}/revoke"), Some(&cookie), &format!("csrf={csrf}")).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let r = app.post("/admin/tokens", Some(&cookie), &format!("csrf={csrf}&label=&max_uses=0&hours=1")).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);

    // Rollout forms: a viewer cannot propose; an operator can; approval needs another admin.
    let machine = app.store.machines(10, 0).await.unwrap()[0].id.to_string();
    let (vc, vt) = app.sign_in("viewer").await;
    let form = format!("fix=client.credentials.delete&params=%7B%22target%22%3A%22rdp01%22%7D&machine={machine}");
    assert_eq!(app.post("/rollouts", Some(&vc), &format!("csrf={vt}&{form}")).await.status, StatusCode::FORBIDDEN);
    let (oc, ot) = app.sign_in("operator").await;
    assert_eq!(app.post("/rollouts", Some(&oc), &form).await.status, StatusCode::FORBIDDEN, "no CSRF token");
    let r = app.post("/rollouts", Some(&oc), &format!("csrf={ot}&{form}")).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let page = r.location.unwrap();
    assert!(app.get(&page, Some(&oc)).await.body.contains("awaiting_approval"));
    assert_eq!(
        app.post(&format!("{page}/approve"), Some(&oc), &format!("csrf={ot}")).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        app.post(&format!("{page}/start"), Some(&oc), &format!("csrf={ot}")).await.status,
        StatusCode::CONFLICT,
        "not approved yet"
    );
    assert_eq!(app.post(&format!("{page}/approve"), Some(&cookie), "csrf=nope").await.status, StatusCode::FORBIDDEN);
    assert_eq!(
        app.post(&format!("{page}/approve"), Some(&cookie), &format!("csrf={csrf}")).await.status,
        StatusCode::SEE_OTHER
    );
    assert_eq!(
        app.post(&format!("{page}/start"), Some(&vc), &format!("csrf={vt}")).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        app.post(&format!("{page}/start"), Some(&oc), &format!("csrf={ot}")).await.status,
        StatusCode::SEE_OTHER
    );
    assert!(app.get(&page, Some(&oc)).await.body.contains("running"));
    let r = app
        .post("/rollouts", Some(&oc), &format!("csrf={ot}&fix=host.nla.enable&machine={machine}&params=%7Bbad"))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        app.post(&format!("{page}/explode"), Some(&oc), &format!("csrf={ot}")).await.status,
        StatusCode::NOT_FOUND
    );

    // Sign-out needs the token too, and ends the session.
    assert_eq!(app.post("/logout", Some(&cookie), "csrf=bad").await.status, StatusCode::FORBIDDEN);
    let r = app.post("/logout", Some(&cookie), &format!("csrf={csrf}")).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert!(r.set_cookie.unwrap().contains("Max-Age=0"));
    assert_eq!(app.get("/", Some(&cookie)).await.status, StatusCode::SEE_OTHER, "the old cookie is dead");

    // The audit log has the story.
    let actions: Vec<String> = app.store.audit_entries(0, 1000).await.unwrap().into_iter().map(|e| e.action).collect();
    for a in
        ["session.created", "user.created", "enrollment_token.created", "enrollment_token.revoked", "session.ended"]
    {
        assert!(actions.iter().any(|x| x == a), "{a} in {actions:?}");
    }
}

#[tokio::test]
async fn sign_in_is_throttled() {
    let db = TestDb::sqlite();
    let app = App::new(&db).await;
    seed(&app).await;
    for _ in 0..5 {
        let r = app.post("/login", None, "username=admin&password=wrong").await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        assert!(r.body.contains("Wrong user name or password"));
    }
    let r = app.post("/login", None, &format!("username=admin&password={}", PASSWORD.replace(' ', "+"))).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "locked even with the right password");
    // An unknown user fails the same way as a wrong password.
    let r = app.post("/login", None, "username=nobody&password=x").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    // After sign-in, only a local path is followed.
    let r = app
        .post(
            "/login",
            None,
            &format!("username=viewer&password={}&next=%2F%2Fevil.example", PASSWORD.replace(' ', "+")),
        )
        .await;
    assert_eq!(r.location.as_deref(), Some("/"));
}

#[tokio::test]
async fn every_page_is_also_json_in_the_openapi_document() {
    let db = TestDb::sqlite();
    let app = App::new(&db).await;
    let (machine, incident) = seed(&app).await;
    let viewer = app.store.user_by_name("viewer").await.unwrap().unwrap().0;
    let token = "rfu_viewer_token";
    app.store.create_api_token(&viewer, "t", &token_hash(token), audit()).await.unwrap();
    let call = |uri: String, auth: bool| {
        let router = app.router.clone();
        async move {
            let mut req = Request::builder().uri(&uri);
            if auth {
                req = req.header(header::AUTHORIZATION, format!("Bearer {token}"));
            }
            let resp = router.oneshot(req.body(Body::empty()).unwrap()).await.unwrap();
            let status = resp.status();
            let bytes = resp.into_body().collect().await.unwrap().to_bytes();
            (status, serde_json::from_slice::<serde_json::Value>(&bytes).unwrap_or_default())
        }
    };
    let paths = [
        "/api/v1/overview".to_owned(),
        "/api/v1/fleet/machines?status=fail&site=hq".into(),
        "/api/v1/checks/client.cert_warning_override".into(),
        "/api/v1/incidents?state=all".into(),
        format!("/api/v1/incidents/{incident}"),
        "/api/v1/map".into(),
    ];
    for p in &paths {
        assert_eq!(call(p.clone(), false).await.0, StatusCode::UNAUTHORIZED, "{p}");
        let (status, v) = call(p.clone(), true).await;
        assert_eq!(status, StatusCode::OK, "{p}: {v}");
    }
    let (_, v) = call("/api/v1/overview".into(), true).await;
    assert_eq!(v["machines"]["fail"], 1);
    assert_eq!(v["largest_incidents"][0]["root_cause"], "client.cert_warnings_silenced");
    let (_, v) = call("/api/v1/fleet/machines?status=fail".into(), true).await;
    assert_eq!((v["total"].as_i64(), v["machines"][0]["id"].as_str()), (Some(1), Some(machine.as_str())));
    let (_, v) = call(format!("/api/v1/incidents/{incident}"), true).await;
    assert_eq!(v["machines"][0]["relation"], "source");
    // Host-name prefix search is case-insensitive and only a prefix.
    for (q, n) in [("%3CSCRIPT", 1), ("%3Cscript%3Ealert", 1), ("script", 0), ("%25", 0), ("_", 0)] {
        let (_, v) = call(format!("/api/v1/fleet/machines?q={q}"), true).await;
        assert_eq!(v["total"].as_i64(), Some(n), "q={q}: {v}");
    }
    let (status, v) = call("/api/v1/fleet/machines?status=bogus".into(), true).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(call("/api/v1/incidents?state=x".into(), true).await.0, StatusCode::UNPROCESSABLE_ENTITY);
    let (_, doc) = call("/api/openapi.json".into(), false).await;
    for p in [
        "/api/v1/overview",
        "/api/v1/fleet/machines",
        "/api/v1/checks/{check_id}",
        "/api/v1/incidents",
        "/api/v1/incidents/{incident_id}",
        "/api/v1/map",
    ] {
        assert!(doc["paths"].get(p).is_some(), "{p} documented");
    }
}

/// The admin's next action: the right fix on the right machine, refusals inside the layout,
/// the propose form's defaults, manual steps, a dry run applied for real, and no dry run and
/// real run of one fix on one machine at once.
#[tokio::test]
async fn the_next_action_is_the_right_fix_on_the_right_machine() {
    let db = TestDb::sqlite();
    let app = App::new(&db).await;
    seed(&app).await;
    let s = &app.store;
    let enroll = |name: &'static str, role: MachineRole, n: u32| {
        let m =
            NewMachine { hostname: name, role, os: "windows", agent_version: "0.1.0", site: Some("hq"), labels: &[] };
        async move { s.enroll(&token_hash("rfe_seed"), m, &token_hash(&format!("rfa_next_{n}"))).await.unwrap() }
    };
    let host = enroll("rdp01", MachineRole::Host, 1).await;
    let client = enroll("pc-01", MachineRole::Client, 2).await;
    let listener = CheckResult {
        check: "host.listener_cert".into(),
        target: None,
        status: CheckStatus::Fail,
        summary: "expired".into(),
        cause: Some("host.listener_cert_expired".into()),
        evidence: json!({}),
        observed_at: time::OffsetDateTime::now_utc(),
        duration_ms: 1,
    };
    s.store_report(host, 1, None, &[listener]).await.unwrap();
    let path = rdpfleet_e2e::diag::path_result(
        "rdp01.corp.example",
        None,
        Some((rdpfleet_proto::diagnosis::Layer::Certificate, "cert.expired")),
        &["10.0.0.1"],
        0,
    );
    s.store_report(client, 1, None, &[path]).await.unwrap();
    rdpfleet_server::tasks::correlation::run_once(s, &Default::default()).await.unwrap();
    let open = s.incidents(Some(rdpfleet_server::domain::incident::IncidentState::Open), 10, 0).await.unwrap();
    let incident = open.iter().find(|i| i.scope == "rdp01.corp.example").unwrap().id.to_string();
    let (cookie, csrf) = app.sign_in("operator").await;

    // The client's page: the path fails for a host-side cause; the fix is offered on the host,
    // never on the client.
    let page = app.get(&format!("/machines/{client}"), Some(&cookie)).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.body.contains("The fault is on the host&#x27;s side")
            || page.body.contains("The fault is on the host's side"),
        "{}",
        page.body
    );
    assert!(page.body.contains("/machines?q=rdp01.corp.example"), "links to the host");
    assert!(!page.body.contains("name=\"fix\" value=\"host.cert.regenerate\""), "no host fix offered on a client");
    assert!(page.body.contains("RDP certificate expired"), "the cause's title first");
    // Manual steps sit beside each failing result.
    assert!(page.body.contains("what to do by hand"), "{}", page.body);
    // The host's page offers it, as a dry run.
    let page = app.get(&format!("/machines/{host}"), Some(&cookie)).await;
    assert!(page.body.contains("name=\"fix\" value=\"host.cert.regenerate\""), "{}", page.body);
    assert!(page.body.contains("Propose a dry run"), "{}", page.body);

    // Server-side: a host fix for a client is refused, in the page layout, and in the API.
    let r =
        app.post("/rollouts", Some(&cookie), &format!("csrf={csrf}&fix=host.cert.regenerate&machine={client}")).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    assert!(r.body.contains("The rollout was not proposed") && r.body.contains("changes RDP hosts"), "{}", r.body);
    assert!(r.body.contains("<nav") || r.body.contains("class=\"top\""), "inside the layout: {}", r.body);
    // A fix the incident's causes do not call for is refused too.
    let r = app.post("/rollouts", Some(&cookie), &format!("csrf={csrf}&fix=host.nla.enable&incident={incident}")).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    assert!(r.body.contains("does not fix this incident"), "{}", r.body);

    // The incident page: manual steps, the form with dry run on by default and the waves said.
    let page = app.get(&format!("/incidents/{incident}"), Some(&cookie)).await;
    assert!(page.body.contains("What to do") && page.body.contains("Remote Desktop store"), "{}", page.body);
    assert!(page.body.contains("name=\"dry_run\" value=\"1\" checked"), "{}", page.body);
    assert!(page.body.contains("1 machine(s) in one wave"), "{}", page.body);
    assert!(page.body.contains("It explains: RDP certificate expired"), "{}", page.body);

    // Propose the dry run from the incident: it targets the host only.
    let r = app
        .post(
            "/rollouts",
            Some(&cookie),
            &format!("csrf={csrf}&fix=host.cert.regenerate&incident={incident}&dry_run=1"),
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let dry = r.location.unwrap();
    let page = app.get(&dry, Some(&cookie)).await;
    assert!(page.body.contains("rdp01") && !page.body.contains("pc-01"), "{}", page.body);
    // Apply for real with the same targets.
    let dry_id = dry.trim_start_matches("/rollouts/");
    let r =
        app.post("/rollouts", Some(&cookie), &format!("csrf={csrf}&fix=host.cert.regenerate&repeat_of={dry_id}")).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let real = r.location.unwrap();
    let page = app.get(&real, Some(&cookie)).await;
    assert!(page.body.contains("rdp01") && !page.body.contains("(dry run)"), "{}", page.body);
    // The dry run's page links its incident; the real one's links the same incident.
    assert!(page.body.contains(&format!("href=\"/incidents/{incident}\"")), "{}", page.body);

    // Aggregates and links: the host's page lists the clients failing toward it, the list has
    // a cause column, the map links a failing cell to those clients, checks read by title.
    let page = app.get(&format!("/machines/{host}"), Some(&cookie)).await;
    assert!(page.body.contains("Clients failing toward this host") && page.body.contains("pc-01"), "{}", page.body);
    let list = app.get("/machines?q=pc-01", Some(&cookie)).await;
    assert!(list.body.contains("Worst cause") && list.body.contains("RDP certificate expired"), "{}", list.body);
    let toward = app.get("/machines?toward=rdp01.corp.example", Some(&cookie)).await;
    assert!(toward.body.contains("pc-01") && !toward.body.contains(">rdp01<"), "{}", toward.body);
    assert!(toward.body.contains("1 machine(s)"), "{}", toward.body);
    let map = app.get("/map", Some(&cookie)).await;
    assert!(map.body.contains("/machines?toward=rdp01.corp.example&amp;site=hq"), "{}", map.body);
    let check = app.get("/checks/rdp.path", Some(&cookie)).await;
    assert!(check.body.contains("Connection path to an RDP host") && check.body.contains("RDP certificate expired"));
    assert_eq!(app.get("/checks/rdp.path?page=2", Some(&cookie)).await.status, StatusCode::OK);
    assert_eq!(app.get("/checks/rdp.path?page=x", Some(&cookie)).await.status, StatusCode::BAD_REQUEST);
    let overview = app.get("/", Some(&cookie)).await;
    assert!(overview.body.contains("connection paths (client → host)") && overview.body.contains("machines failing"));
    // Versions: their distribution on the Overview, each a link to its machines.
    assert!(overview.body.contains("Agent versions") && overview.body.contains("href=\"/machines?version=0.1.0\""));
    let v = app.get("/machines?version=0.1.0", Some(&cookie)).await;
    assert!(v.body.contains("pc-01") && v.body.contains("rdp01"), "{}", v.body);
    let none = app.get("/machines?version=9.9.9", Some(&cookie)).await;
    assert!(
        none.body.contains("0 machine(s)") && none.body.contains("No machine matches these filters"),
        "{}",
        none.body
    );
    // Failing results come first on a machine page.
    let ok = CheckResult {
        check: "host.nla".into(),
        target: None,
        status: CheckStatus::Pass,
        summary: "compliant".into(),
        cause: None,
        evidence: json!({}),
        observed_at: time::OffsetDateTime::now_utc(),
        duration_ms: 1,
    };
    s.store_report(host, 2, None, &[ok]).await.unwrap();
    let page = app.get(&format!("/machines/{host}"), Some(&cookie)).await;
    let (fail_at, pass_at) = (
        page.body.find("RDP listener certificate").unwrap(),
        page.body.find("Network Level Authentication required").unwrap(),
    );
    assert!(fail_at < pass_at, "the failing result before the passing one");
    // A machine enrolled but silent says so instead of contradictory counts.
    let silent = enroll("new-pc", MachineRole::Client, 3).await;
    let page = app.get(&format!("/machines/{silent}"), Some(&cookie)).await;
    assert!(page.body.contains("has enrolled but not reported yet"), "{}", page.body);

    // Started together, they would race on one machine: the second is refused.
    let r = app.post(&format!("{dry}/start"), Some(&cookie), &format!("csrf={csrf}")).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let r = app.post(&format!("{real}/start"), Some(&cookie), &format!("csrf={csrf}")).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);
    assert!(r.body.contains("of the same fix is running on rdp01"), "{}", r.body);
    // The audit links a rollout's entries to its page, details as fields.
    let audit_page = app.get("/audit?action=rollout.", Some(&cookie)).await;
    assert!(audit_page.body.contains(&format!("href=\"{dry}\"")), "{}", audit_page.body);

    // A large incident lists its source and its first affected machines, and counts the rest.
    for n in 0..27u32 {
        let name: &'static str = Box::leak(format!("ws-{n:02}").into_boxed_str());
        let m = enroll(name, MachineRole::Client, 100 + n).await;
        let path = rdpfleet_e2e::diag::path_result(
            "rdp01.corp.example",
            None,
            Some((rdpfleet_proto::diagnosis::Layer::Certificate, "cert.expired")),
            &[],
            0,
        );
        s.store_report(m, 1, None, &[path]).await.unwrap();
    }
    rdpfleet_server::tasks::correlation::run_once(s, &Default::default()).await.unwrap();
    let page = app.get(&format!("/incidents/{incident}"), Some(&cookie)).await;
    assert!(page.body.contains("and 3 more affected machine(s)"), "{}", page.body);
    assert!(page.body.contains("/machines?toward=rdp01.corp.example"), "{}", page.body);
    let listed = page.body.matches("<tr><td><a href=\"/machines/").count();
    assert_eq!(listed, 26, "the source and 25 affected machines");
}

/// First-run pages: empty states say what to do, the enrollment page gives complete commands
/// per OS with the server's reachable address (never 0.0.0.0), the audit reads as fields with
/// links, and the sign-in page warns when secure cookies cannot stick.
#[tokio::test]
async fn first_run_pages_say_what_to_do_next() {
    let db = TestDb::sqlite();
    let store = Store::connect(db.url()).await.unwrap();
    let settings =
        Settings { database_url: db.url().to_owned(), listen: "0.0.0.0:8080".parse().unwrap(), ..Settings::default() };
    let state = rdpfleet_server::app_state(settings, store.clone(), ed25519_dalek::SigningKey::from_bytes(&[1u8; 32]));
    let app = App { router: rdpfleet_server::router::router(state), store };
    for (name, role) in [("admin", Role::Admin)] {
        app.store.create_user(name, &hash_password(PASSWORD).unwrap(), role, audit()).await.unwrap();
    }
    // The sign-in page over plain HTTP at a network name: signing in would not stick.
    let login = app.get("/login", None).await;
    assert!(login.body.contains("signing in will not stick"), "{}", login.body);
    let (cookie, csrf) = app.sign_in("admin").await;
    let overview = app.get("/", Some(&cookie)).await;
    assert!(overview.body.contains("No machine has enrolled yet"), "{}", overview.body);
    let machines = app.get("/machines", Some(&cookie)).await;
    assert!(machines.body.contains("No machine has enrolled yet"), "{}", machines.body);
    let tokens = app.get("/admin/tokens", Some(&cookie)).await;
    assert!(!tokens.body.contains("0.0.0.0"), "{}", tokens.body);
    assert!(tokens.body.contains("https://SERVER-NAME:8080") && tokens.body.contains("public_url"), "{}", tokens.body);
    assert!(tokens.body.contains("service install") && tokens.body.contains("systemctl enable --now rdpfleet-agent"));
    // A created token is in the commands.
    let r = app.post("/admin/tokens", Some(&cookie), &format!("csrf={csrf}&label=pcs&max_uses=5&hours=24")).await;
    let page = if r.status == StatusCode::OK {
        r.body
    } else {
        app.get(r.location.as_deref().unwrap(), Some(&cookie)).await.body
    };
    let token = page.split("<pre>").nth(1).unwrap().split("</pre>").next().unwrap().trim().to_owned();
    assert!(token.starts_with("rfe_"), "{page}");
    assert!(page.contains(&format!("--token {token} --role client")), "{page}");
    // The audit: the token's creation with its details as fields.
    let audit_page = app.get("/audit", Some(&cookie)).await;
    assert!(audit_page.body.contains("<dl class=\"fields\">"), "{}", audit_page.body);
}

#[tokio::test]
async fn the_releases_page_lists_releases_and_proposes_an_update_of_older_machines() {
    let db = TestDb::sqlite();
    let app = App::new(&db).await;
    let (machine, _) = seed(&app).await;
    let (cookie, csrf) = app.sign_in("operator").await;
    let empty = app.get("/releases", Some(&cookie)).await;
    assert!(empty.status == StatusCode::OK && empty.body.contains("No releases yet"), "{}", empty.body);

    let release = |version: &'static str| rdpfleet_server::store::releases::NewRelease {
        version,
        platform: rdpfleet_proto::release::Platform::WindowsX86_64,
        sha256: "ab",
        signature: "c2ln",
        key_fingerprint: "0123456789abcdef0123",
        binary: b"MZ",
        added_by: "ci",
    };
    let newer = app.store.add_release(release("0.2.0"), audit()).await.unwrap();
    let older = app.store.add_release(release("0.0.9"), audit()).await.unwrap();
    let page = app.get("/releases", Some(&cookie)).await;
    assert!(page.body.contains("0.2.0") && page.body.contains("windows-x86_64"), "{}", page.body);
    assert!(page.body.contains("Propose update of older windows-x86_64 machines"));

    // The seeded Windows machine runs 0.1.0: an update to 0.2.0 goes to it and awaits approval.
    let r = app.post(&format!("/releases/{newer}/propose"), Some(&cookie), &format!("csrf={csrf}&canary=1")).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let rollout = r.location.unwrap();
    let detail = app.get(&rollout, Some(&cookie)).await;
    assert!(detail.body.contains("agent.update") && detail.body.contains("replaces the agent"), "{}", detail.body);
    assert!(detail.body.contains(&machine) || detail.body.contains("alert(1)"), "the machine is a target");
    let page = app.get("/releases", Some(&cookie)).await;
    assert!(page.body.contains("awaiting_approval"), "the release lists its rollout: {}", page.body);

    // Nothing runs an older version than 0.0.9: a clear refusal, no rollout.
    let r = app.post(&format!("/releases/{older}/propose"), Some(&cookie), &format!("csrf={csrf}&canary=1")).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    assert!(r.body.contains("no windows-x86_64 machine runs a version older than 0.0.9"), "{}", r.body);
    // A viewer may look but not propose.
    let (viewer, vcsrf) = app.sign_in("viewer").await;
    assert_eq!(app.get("/releases", Some(&viewer)).await.status, StatusCode::OK);
    let r = app.post(&format!("/releases/{newer}/propose"), Some(&viewer), &format!("csrf={vcsrf}&canary=1")).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
}
