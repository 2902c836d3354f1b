//! A real browser on the real dashboard: Debian's headless Chromium, driven over WebDriver
//! (chromedriver), signs in to a server started with `rdpfleet-server demo`, opens the Overview,
//! an incident and machines, checks what they show, and saves screenshots (PNG) as artifacts in
//! `RDPFLEET_ARTIFACT_DIR` (default: a temporary directory, printed).
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use fantoccini::{ClientBuilder, Locator};
use rdpfleet_e2e::procs::bin;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

fn require() -> bool {
    std::env::var("RDPFLEET_REQUIRE_BROWSER").is_ok_and(|v| v == "1")
}

fn find_tool(names: &[&str]) -> Option<PathBuf> {
    names.iter().map(|n| Path::new("/usr/bin").join(n)).find(|p| p.exists())
}

/// `rdpfleet-server demo` on a free port: (process, base URL, demo password).
async fn demo_server(dir: &Path) -> (Child, String, String) {
    let mut child = Command::new(bin("rdpfleet-server"))
        .current_dir(dir)
        .args(["--database-url", &format!("sqlite://{}", dir.join("demo.db").display())])
        .args(["demo", "--listen", "127.0.0.1:0", "--machines", "600"])
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(dir.join("server.log")).unwrap())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let (mut url, mut password) = (None, None);
    tokio::time::timeout(Duration::from_secs(120), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(p) = line.strip_prefix("Sign in as demo / ") {
                password = Some(p.trim().to_owned());
            }
            if let Some(u) = line.strip_prefix("rdpfleet-server listening on ") {
                url = Some(u.trim().to_owned());
                break;
            }
        }
    })
    .await
    .expect("the demo server did not start");
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, url.expect("listening line"), password.expect("demo password"))
}

async fn chromedriver(path: &Path) -> (Child, u16) {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let child = Command::new(path)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            return (child, port);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("chromedriver did not start");
}

fn artifact_dir() -> PathBuf {
    let dir = std::env::var_os("RDPFLEET_ARTIFACT_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("rdpfleet-screenshots"));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn shot(c: &fantoccini::Client, name: &str) {
    let png = c.screenshot().await.unwrap();
    assert!(png.starts_with(b"\x89PNG"), "a PNG");
    let path = artifact_dir().join(format!("{name}.png"));
    std::fs::write(&path, png).unwrap();
    println!("screenshot: {}", path.display());
}

/// The page's text; empty while the browser is between two documents (after a form post, or
/// while the live refresh swaps the page), so callers that wait simply look again.
async fn text(c: &fantoccini::Client) -> String {
    match c.find(Locator::Css("body")).await {
        Ok(body) => body.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    }
}

/// Clicks the button `xpath` names, again if the page was swapped under the click (the rollout
/// page refreshes itself every 3 s): up to 30 s.
async fn click(c: &fantoccini::Client, xpath: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let clicked = match c.find(Locator::XPath(xpath)).await {
            Ok(button) => button.click().await.is_ok(),
            Err(_) => false,
        };
        if clicked {
            return;
        }
        // A click that took the browser to the next page can still report an error: when the
        // button is gone a moment later, it was pressed (the caller then waits for its effect).
        tokio::time::sleep(Duration::from_millis(300)).await;
        if c.find(Locator::XPath(xpath)).await.is_err() {
            return;
        }
        if std::time::Instant::now() > deadline {
            shot(c, "timeout-click").await;
            panic!("no clickable {xpath}: the page shows {}", text(c).await);
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[tokio::test]
async fn a_browser_signs_in_and_reads_the_dashboard() {
    let (Some(chromium), Some(driver)) = (find_tool(&["chromium", "chromium-browser"]), find_tool(&["chromedriver"]))
    else {
        assert!(!require(), "chromium and chromedriver are required (RDPFLEET_REQUIRE_BROWSER=1)");
        eprintln!("skipping: install chromium and chromium-driver to run the browser test");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (_server, url, password) = demo_server(dir.path()).await;
    let (_driver, port) = chromedriver(&driver).await;
    let caps = serde_json::json!({
        "goog:chromeOptions": {
            "binary": chromium,
            "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                     "--disable-dev-shm-usage", "--window-size=1400,1000"]
        }
    });
    let c = ClientBuilder::native()
        .capabilities(caps.as_object().unwrap().clone())
        .connect(&format!("http://127.0.0.1:{port}"))
        .await
        .expect("a WebDriver session");

    // Not signed in: the dashboard sends the browser to the sign-in page.
    c.goto(&format!("{url}/incidents")).await.unwrap();
    assert!(c.current_url().await.unwrap().path().starts_with("/login"));
    shot(&c, "01-sign-in").await;
    c.find(Locator::Css("input[name=username]")).await.unwrap().send_keys("demo").await.unwrap();
    c.find(Locator::Css("input[name=password]")).await.unwrap().send_keys(&password).await.unwrap();
    c.find(Locator::Css("button[type=submit]")).await.unwrap().click().await.unwrap();
    if c.wait().for_url(url::Url::parse(&format!("{url}/incidents")).unwrap()).await.is_err() {
        shot(&c, "01b-after-sign-in").await;
        panic!("not signed in: at {} showing {}", c.current_url().await.unwrap(), text(&c).await);
    }

    // Overview: numbers, open incidents, the chart, styles applied (CSP lets our CSS in).
    c.goto(&format!("{url}/")).await.unwrap();
    let body = text(&c).await;
    assert!(body.contains("Fleet overview") && body.contains("600") && body.contains("machines"), "{body}");
    assert!(body.contains("rdp03.corp.example: The RDP listener's certificate has expired"), "{body}");
    assert!(body.contains("gw.corp.example"), "the gateway incident");
    c.find(Locator::Css("svg.chart polyline.fail")).await.expect("the trend chart is drawn");
    let bg = c
        .execute("return getComputedStyle(document.querySelector('header.top')).backgroundColor", vec![])
        .await
        .unwrap();
    assert_eq!(bg, "rgb(20, 35, 60)", "the stylesheet is applied");
    let live = c.execute("return document.body.getAttribute('data-live')", vec![]).await.unwrap();
    assert_eq!(live, "15", "the page refreshes itself");
    shot(&c, "02-overview").await;

    // The expired-certificate incident: root cause from the host's own agent, affected clients.
    c.find(Locator::LinkText("rdp03.corp.example: The RDP listener's certificate has expired"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    c.wait().for_element(Locator::Css("h1.sev-critical")).await.unwrap();
    let body = text(&c).await;
    assert!(body.contains("Root cause: The RDP listener's certificate has expired"), "{body}");
    assert!(body.contains("host.cert.regenerate"), "names the fix");
    assert!(body.contains("source") && body.contains("affected"), "{body}");
    assert!(body.contains("What to do"), "manual steps beside the fix: {body}");
    shot(&c, "03-incident").await;
    let incident_url = c.current_url().await.unwrap().to_string();

    // The host's machine page, then a client's connection paths as layers.
    c.find(Locator::LinkText("rdp03.corp.example")).await.unwrap().click().await.unwrap();
    c.wait().for_element(Locator::Css("h1 .st")).await.unwrap();
    let body = text(&c).await;
    assert!(body.contains("host.listener_cert") && body.contains("History"), "{body}");
    shot(&c, "04-host").await;
    c.goto(&format!("{url}/machines?site=remote&status=fail")).await.unwrap();
    c.find(Locator::Css("table.list tbody a")).await.unwrap().click().await.unwrap();
    c.wait().for_element(Locator::Css("ol.layers")).await.unwrap();
    let body = text(&c).await;
    assert!(body.contains("Connection paths") && body.contains("gateway.cert_name_mismatch"), "{body}");
    shot(&c, "05-client-paths").await;

    // The connection map.
    c.goto(&format!("{url}/map")).await.unwrap();
    c.find(Locator::Css("table.map td.bad")).await.expect("failing pairs are marked");
    shot(&c, "06-map").await;

    // The next action, end to end: from the incident, a dry run (the form's default) on the
    // machine at fault; it completes; then the same fix for real on the same machines; the
    // demo's machines answer like agents, the host reports its certificate renewed, and the
    // incident resolves.
    c.goto(&incident_url).await.unwrap();
    let dry = c.find(Locator::Css("form.propose input[name=dry_run]")).await.unwrap();
    assert_eq!(dry.prop("checked").await.unwrap().as_deref(), Some("true"), "dry run is the default");
    let preview = c.find(Locator::Css("form.propose [data-preview]")).await.unwrap().text().await.unwrap();
    assert!(preview.contains("1 machine(s) in one wave"), "{preview}");
    click(&c, "//form[contains(@class, 'propose')]//button[@type='submit']").await;
    let body = until(&c, "the dry run's page", |b| b.contains("(dry run)") && b.contains("ready")).await;
    assert!(body.contains("rdp03"), "the host is the target, not a client: {body}");
    shot(&c, "07-dry-run-proposed").await;
    click(&c, "//button[text()='Start']").await;
    until(&c, "the dry run completes", |b| b.contains("(dry run) completed")).await;
    shot(&c, "08-dry-run-completed").await;
    click(&c, "//button[starts-with(text(), 'Apply for real')]").await;
    until(&c, "the real rollout's page", |b| !b.contains("(dry run)") && b.contains("ready")).await;
    click(&c, "//button[text()='Start']").await;
    until(&c, "the rollout completes", |b| b.contains("completed") && b.contains("1 succeeded")).await;
    shot(&c, "09-rollout-completed").await;
    c.goto(&incident_url).await.unwrap();
    until(&c, "the incident resolves", |b| b.contains("resolved")).await;
    shot(&c, "10-incident-resolved").await;
    c.close().await.unwrap();
}

/// Waits (reloading the page now and then) until its text satisfies `ok`; fails with the page.
async fn until(c: &fantoccini::Client, what: &str, ok: impl Fn(&str) -> bool) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(180);
    let mut n = 0u32;
    loop {
        let body = text(c).await;
        if ok(&body) {
            return body;
        }
        if std::time::Instant::now() > deadline {
            shot(c, &format!("timeout-{}", what.replace(' ', "-"))).await;
            panic!("{what}: not seen in time; the page shows {body}");
        }
        n += 1;
        if n % 6 == 0 {
            c.refresh().await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
