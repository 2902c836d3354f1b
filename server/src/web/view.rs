//! What the templates show: page structs and the small formatting helpers they use.
use askama::Template;
use rdpfleet_proto::causes;

use crate::domain::incident::{Incident, IncidentEvent, IncidentMachine};
use crate::domain::machines::{CheckFinding, MachineSummary};
use crate::domain::rollout::{Rollout, Target, TargetState};
use crate::store::dashboard::{CheckStat, HealthCounts, HealthSample, MachineFilter};
use crate::store::now_ms;

/// The navigation bar: who is signed in, and the CSRF token for the sign-out form.
#[derive(Debug, Clone)]
pub struct Nav {
    pub user: String,
    pub role: String,
    pub csrf: String,
    pub is_admin: bool,
    pub active: &'static str,
}

impl Nav {
    pub fn of(s: &super::session::Session, active: &'static str) -> Nav {
        Nav {
            user: s.user.username.clone(),
            role: s.user.role.as_str().to_owned(),
            csrf: s.csrf.clone(),
            is_admin: s.user.role == crate::domain::users::Role::Admin,
            active,
        }
    }
}

pub fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// "3 min ago", "2 h ago", "5 d ago".
pub fn ago(ms: i64) -> String {
    let s = (now_ms() - ms).max(0) / 1000;
    match s {
        0..=59 => format!("{s} s ago"),
        60..=3599 => format!("{} min ago", s / 60),
        3600..=172_799 => format!("{} h ago", s / 3600),
        _ => format!("{} d ago", s / 86_400),
    }
}

/// UTC date and time to the minute.
pub fn at(ms: i64) -> String {
    let t = crate::store::time_of(ms);
    format!("{}-{:02}-{:02} {:02}:{:02} UTC", t.year(), u8::from(t.month()), t.day(), t.hour(), t.minute())
}

/// UTC time of day to the second.
pub fn time_of_day(ms: i64) -> String {
    let t = crate::store::time_of(ms);
    format!("{:02}:{:02}:{:02} UTC", t.hour(), t.minute(), t.second())
}

/// A check's title, its id when the catalogue does not know it.
pub fn check_title(id: &str) -> String {
    rdpfleet_proto::checks::title(id).map_or_else(|| id.to_owned(), str::to_owned)
}

/// A cause's title; a cause this server does not know (a newer agent, a typo) says so.
pub fn cause_title(id: &str) -> String {
    causes::lookup(id)
        .map_or_else(|| "Unknown cause (not in this server's catalogue)".to_owned(), |c| c.title.to_owned())
}

#[derive(Template)]
#[template(path = "error.html")]
pub struct ErrorPage {
    pub status: u16,
    pub message: String,
}

#[derive(Template)]
#[template(path = "login.html")]
pub struct LoginPage {
    pub error: Option<String>,
    pub next: String,
    /// Secure cookies over plain HTTP to a non-loopback address: say why sign-in will not stick.
    pub cookie_warning: bool,
}

#[derive(Template)]
#[template(path = "setup.html")]
pub struct SetupPage {
    pub error: Option<String>,
}

pub struct IncidentView {
    pub id: String,
    pub title: String,
    pub kind: String,
    pub scope: String,
    pub root_cause: String,
    pub root_title: String,
    pub explanation: String,
    pub fix_id: Option<String>,
    pub state: String,
    pub opened: String,
    pub opened_ago: String,
    pub resolved: Option<String>,
    pub affected: i64,
    pub severity: String,
}

impl IncidentView {
    pub fn of(i: &Incident) -> IncidentView {
        let c = causes::lookup(&i.root_cause);
        IncidentView {
            id: i.id.to_string(),
            title: i.title.clone(),
            kind: i.kind.to_string(),
            scope: i.scope.clone(),
            root_cause: i.root_cause.clone(),
            root_title: cause_title(&i.root_cause),
            explanation: c.map_or_else(String::new, |c| c.explanation.to_owned()),
            fix_id: i.fix_id.clone(),
            state: i.state.to_string(),
            opened: at(i.opened_at),
            opened_ago: ago(i.opened_at),
            resolved: i.resolved_at.map(at),
            affected: i.affected_count,
            severity: c.map_or("high".into(), |c| format!("{:?}", c.severity).to_lowercase()),
        }
    }
}

/// The trend chart, drawn on the server as SVG polylines (no script, no inline style).
pub struct Chart {
    pub width: i64,
    pub height: i64,
    pub fail_points: String,
    pub warn_points: String,
    pub max: i64,
    /// The y-axis: half the peak (the peak and 0 are the axis' ends).
    pub half: i64,
    /// Where the gridlines for the peak and its half are drawn.
    pub y_max: i64,
    pub y_half: i64,
    pub from: String,
    pub to: String,
    pub empty: bool,
}

impl Chart {
    pub fn of(samples: &[HealthSample]) -> Chart {
        let (width, height) = (720i64, 160i64);
        let max = samples.iter().map(|s| s.failing_machines.max(s.warning_machines)).max().unwrap_or(0).max(1);
        let n = samples.len().max(2) as i64 - 1;
        let points = |f: &dyn Fn(&HealthSample) -> i64| {
            samples
                .iter()
                .enumerate()
                .map(|(i, s)| format!("{},{}", i as i64 * width / n, height - f(s) * (height - 10) / max))
                .collect::<Vec<_>>()
                .join(" ")
        };
        Chart {
            width,
            height,
            fail_points: points(&|s| s.failing_machines),
            warn_points: points(&|s| s.warning_machines),
            half: max / 2,
            y_max: height - (height - 10),
            y_half: height - (max / 2) * (height - 10) / max,
            max,
            from: samples.first().map(|s| at(s.bucket_at)).unwrap_or_default(),
            to: samples.last().map(|s| at(s.bucket_at)).unwrap_or_default(),
            empty: samples.len() < 2,
        }
    }
}

pub struct CheckBar {
    pub check_id: String,
    pub title: String,
    pub failing: i64,
    pub warning: i64,
    /// Bar length in the SVG, 0..=300.
    pub width: i64,
}

pub fn bars(stats: &[CheckStat]) -> Vec<CheckBar> {
    let max = stats.iter().map(|s| s.failing + s.warning).max().unwrap_or(1).max(1);
    stats
        .iter()
        .map(|s| CheckBar {
            check_id: s.check_id.clone(),
            title: check_title(&s.check_id),
            failing: s.failing,
            warning: s.warning,
            width: (s.failing + s.warning) * 300 / max,
        })
        .collect()
}

#[derive(Template)]
#[template(path = "overview.html")]
pub struct OverviewPage {
    pub nav: Nav,
    pub counts: HealthCounts,
    /// When `counts` were taken (they are recounted every few seconds).
    pub counted_at: String,
    pub incidents: Vec<IncidentView>,
    pub open_incidents: i64,
    pub bars: Vec<CheckBar>,
    pub chart: Chart,
}

pub struct MachineView {
    pub id: String,
    pub hostname: String,
    pub role: String,
    pub site: String,
    pub os: String,
    pub agent_version: String,
    pub health: String,
    pub failing: i64,
    pub last_seen: String,
    pub offline: bool,
    /// Its worst current cause, in words (filled in by list pages).
    pub cause: String,
    /// Whether its agent has reported at all.
    pub reported: bool,
}

impl MachineView {
    pub fn of(m: &MachineSummary) -> MachineView {
        MachineView {
            id: m.id.to_string(),
            hostname: m.hostname.clone(),
            role: m.role.as_str().to_owned(),
            site: m.site.clone().unwrap_or_default(),
            os: m.os.clone(),
            agent_version: m.agent_version.clone(),
            health: m.health.to_string(),
            failing: m.failing,
            last_seen: ago(m.last_seen_at),
            offline: now_ms() - m.last_seen_at > crate::domain::health::OFFLINE_AFTER_MS,
            cause: String::new(),
            reported: m.health != crate::domain::health::Health::Unknown,
        }
    }
}

#[derive(Template)]
#[template(path = "machines.html")]
pub struct MachinesPage {
    pub nav: Nav,
    pub rows: Vec<MachineView>,
    pub total: i64,
    pub page: u32,
    pub pages: u32,
    pub f: FilterView,
    pub sites: Vec<String>,
    /// The query string without the page, for pagination and export links.
    pub query: String,
}

/// The filter form's current values (empty strings for "any").
pub struct FilterView {
    pub q: String,
    pub role: String,
    pub site: String,
    pub status: String,
    pub check: String,
    pub toward: String,
    pub version: String,
    pub sort: String,
}

impl FilterView {
    pub fn of(f: &MachineFilter) -> FilterView {
        let s = |v: &Option<String>| v.clone().unwrap_or_default();
        FilterView {
            q: s(&f.q),
            role: s(&f.role),
            site: s(&f.site),
            status: s(&f.status),
            check: s(&f.check),
            toward: s(&f.toward),
            version: s(&f.version),
            sort: s(&f.sort),
        }
    }

    pub fn query(&self) -> String {
        [
            ("q", &self.q),
            ("role", &self.role),
            ("site", &self.site),
            ("status", &self.status),
            ("check", &self.check),
            ("toward", &self.toward),
            ("version", &self.version),
            ("sort", &self.sort),
        ]
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| format!("{k}={}", url_encode(v)))
        .collect::<Vec<_>>()
        .join("&")
    }
}

pub struct LayerView {
    pub name: String,
    pub status: String,
    pub summary: String,
    pub findings: Vec<String>,
}

pub struct PathView {
    pub target: String,
    pub status: String,
    pub summary: String,
    pub cause: Option<String>,
    pub layers: Vec<LayerView>,
    pub observed: String,
}

pub struct ResultView {
    /// The fix for this result's cause on this machine's platform, when one exists and this
    /// machine is where it belongs.
    pub fix: Option<String>,
    pub check_title: String,
    /// The host at fault, for a path failure whose cause is on the host's side: the fix is
    /// proposed there, never on this machine.
    pub fault_on: Option<String>,
    /// Human title of the cause.
    pub cause_title: String,
    /// What a person does about the cause.
    pub remedy: Option<&'static str>,
    pub check_id: String,
    pub target: String,
    pub status: String,
    pub summary: String,
    pub cause: Option<String>,
    pub since: String,
    pub observed: String,
    pub evidence: String,
}

pub struct TransitionView {
    pub at: String,
    pub check_id: String,
    pub target: String,
    pub from: String,
    pub to: String,
    pub cause: Option<String>,
    pub summary: String,
}

#[derive(Template)]
#[template(path = "machine.html")]
pub struct MachinePage {
    pub nav: Nav,
    pub can_propose: bool,
    pub m: MachineView,
    pub labels: String,
    pub reports_received: i64,
    pub reports_dropped: i64,
    pub paths: Vec<PathView>,
    pub results: Vec<ResultView>,
    pub history: Vec<TransitionView>,
    pub incidents: Vec<IncidentView>,
    /// Clients' paths toward this host that fail or warn (the first 50), and how many in all.
    pub inbound: Vec<InboundView>,
    pub inbound_total: i64,
}

pub struct InboundView {
    pub machine_id: String,
    pub hostname: String,
    pub target: String,
    pub status: String,
    pub cause: String,
    pub cause_title: String,
    pub since: String,
}

pub struct CheckRowView {
    pub machine_id: String,
    pub hostname: String,
    pub site: String,
    pub target: String,
    pub status: String,
    pub cause: Option<String>,
    pub cause_title: String,
    pub summary: String,
    pub since: String,
}

impl CheckRowView {
    pub fn of(r: &CheckFinding) -> CheckRowView {
        CheckRowView {
            machine_id: r.machine_id.to_string(),
            hostname: r.hostname.clone(),
            site: r.site.clone().unwrap_or_default(),
            target: r.target.clone(),
            status: r.status.as_str().to_owned(),
            cause: r.cause.clone(),
            cause_title: r.cause.as_deref().map(cause_title).unwrap_or_default(),
            summary: r.summary.clone(),
            since: format!("{} ({})", at(r.status_since), ago(r.status_since)),
        }
    }
}

#[derive(Template)]
#[template(path = "check.html")]
pub struct CheckPage {
    pub nav: Nav,
    pub check_id: String,
    /// What the check looks at, in words.
    pub title: String,
    pub rows: Vec<CheckRowView>,
    pub failing: i64,
    pub warning: i64,
    pub page: u32,
    pub pages: u32,
}

#[derive(Template)]
#[template(path = "incidents.html")]
pub struct IncidentsPage {
    pub nav: Nav,
    pub rows: Vec<IncidentView>,
    pub state: String,
}

pub struct LinkView {
    pub machine: String,
    pub check: String,
    pub target: String,
    pub cause: String,
    pub cause_title: String,
    pub since: String,
}

pub struct GroupView {
    pub cause: String,
    pub cause_title: String,
    pub check: String,
    pub check_title: String,
    pub host: String,
    pub machines: i64,
    pub failures: i64,
    pub examples: String,
}

#[derive(Template)]
#[template(path = "incident.html")]
pub struct IncidentPage {
    pub nav: Nav,
    /// What a person does about the root cause (beside or instead of the automatic fix).
    pub remedy: Option<&'static str>,
    /// Causes present that the root cause explains: (id, title).
    pub symptoms: Vec<(String, String)>,
    /// The names seen for the host.
    pub names: String,
    pub intermittent: bool,
    pub unknown_cause: bool,
    /// The evidence counted by cause and host.
    pub groups: Vec<GroupView>,
    /// Machines at fault, which a rollout from here changes.
    pub sources: usize,
    /// Operators and admins may propose a rollout of the fix from here.
    pub can_propose: bool,
    pub i: IncidentView,
    /// The machines at fault, then the first affected ones.
    pub machines: Vec<IncidentMachine>,
    /// Affected machines beyond those listed.
    pub more_affected: usize,
    pub events: Vec<(String, IncidentEvent)>,
    pub chain: Vec<LinkView>,
    pub failures: i64,
    /// Why a rollout of the incident's fix will need a second person's approval, if it will.
    pub approval_note: Option<String>,
}

pub struct MapCellView {
    /// The host of its column (the name clients use).
    pub host: String,
    pub paths: i64,
    pub failing: i64,
    pub warning: i64,
    pub layer: String,
    pub class: &'static str,
}

pub struct MapRowView {
    pub client: String,
    pub cells: Vec<MapCellView>,
}

#[derive(Template)]
#[template(path = "map.html")]
pub struct MapPage {
    pub nav: Nav,
    pub hosts: Vec<String>,
    pub rows: Vec<MapRowView>,
    pub site: String,
    pub sites: Vec<String>,
}

#[derive(Template)]
#[template(path = "users.html")]
pub struct UsersPage {
    pub nav: Nav,
    pub users: Vec<AccountView>,
    pub message: Option<String>,
}

pub struct AccountView {
    pub id: String,
    pub username: String,
    pub role: &'static str,
    pub created: String,
    /// Who created it (empty: the command line or the first start).
    pub created_by: String,
    pub state: &'static str,
    /// The signed-in admin's own account.
    pub is_self: bool,
    pub tokens: Vec<ApiTokenView>,
}

pub struct ApiTokenView {
    pub id: String,
    pub label: String,
    pub scope: &'static str,
    pub created: String,
    pub expires: String,
    pub last_used: String,
    pub state: &'static str,
}

pub struct TokenView {
    pub id: String,
    pub label: String,
    pub state: String,
    pub uses: String,
    pub expires: String,
}

#[derive(Template)]
#[template(path = "tokens.html")]
pub struct TokensPage {
    pub nav: Nav,
    pub tokens: Vec<TokenView>,
    /// A token just created: shown once.
    pub created: Option<String>,
    /// The token in the commands: the one just created, else a placeholder.
    pub token: String,
    pub agent_url: String,
    /// False when the server cannot know the name agents reach it by (no public_url, listening
    /// on every address): the commands carry a placeholder to replace.
    pub agent_url_known: bool,
}

pub struct RolloutView {
    pub id: String,
    pub fix_id: String,
    pub fix_title: String,
    pub state: String,
    pub dry_run: bool,
    pub source: String,
    /// The page of what it came from (its incident, or the dry run it applies).
    pub source_href: Option<String>,
    pub proposed_by: String,
    pub approved_by: String,
    pub wave: i64,
    pub waves: i64,
    pub total: usize,
    pub succeeded: usize,
    pub failed: usize,
    pub running: usize,
    pub rolled_back: usize,
    pub halted_reason: String,
    /// Bar widths (of 300) for succeeded, failed and running machines.
    pub bar_ok: usize,
    pub bar_fail: usize,
    pub bar_run: usize,
    pub canary: i64,
    pub growth: i64,
    pub max_failures: i64,
    /// Why it needs a second person's approval.
    pub approval_reasons: Vec<String>,
}

impl RolloutView {
    pub fn of(r: &Rollout, targets: &[Target]) -> RolloutView {
        let count = |s: TargetState| targets.iter().filter(|t| t.state == s).count();
        let total = targets.len();
        let bar = |n: usize| (n * 300).checked_div(total).unwrap_or(0);
        let (succeeded, failed, running) = (
            count(TargetState::Succeeded),
            count(TargetState::Failed),
            targets.iter().filter(|t| t.state.is_in_flight()).count(),
        );
        RolloutView {
            id: r.id.to_string(),
            fix_id: r.fix_id.clone(),
            fix_title: rdpfleet_proto::fixes::lookup(&r.fix_id).map_or_else(String::new, |f| f.title.to_owned()),
            state: r.state.to_string(),
            dry_run: r.dry_run,
            source: r.source.clone().unwrap_or_default(),
            source_href: r.source.as_deref().and_then(|s| {
                let (kind, id) = s.split_once(':')?;
                page_of(kind, id)
            }),
            proposed_by: r.proposed_by.clone(),
            approved_by: r.approved_by.clone().unwrap_or_default(),
            wave: r.current_wave,
            waves: targets.iter().map(|t| t.wave).max().unwrap_or(0),
            total,
            succeeded,
            failed,
            running,
            rolled_back: count(TargetState::RolledBack),
            halted_reason: r.halted_reason.clone().unwrap_or_default(),
            bar_ok: bar(succeeded),
            bar_fail: bar(failed),
            bar_run: bar(running),
            canary: r.canary,
            growth: r.growth,
            max_failures: r.max_failures,
            approval_reasons: r.approval_reasons.clone(),
        }
    }
}

pub struct TargetView {
    pub machine_id: String,
    pub hostname: String,
    pub fix_id: String,
    pub wave: i64,
    pub state: String,
    pub message: String,
    /// What the agent reported it changed (or would change).
    pub changes: String,
}

impl TargetView {
    pub fn of(t: &Target) -> TargetView {
        let changes = t
            .evidence
            .as_ref()
            .and_then(|v| {
                let saved = v["report"]["backup"]["saved"].as_array()?.clone();
                Some(
                    saved
                        .iter()
                        .map(|s| {
                            let what = s["key"]
                                .as_str()
                                .or(s["path"].as_str())
                                .or(s["store"].as_str())
                                .or(s["group"].as_str())
                                .unwrap_or("?");
                            let name = s["name"].as_str().map(|n| format!("\\\\{n}")).unwrap_or_default();
                            format!("{} {what}{name}", s["kind"].as_str().unwrap_or(""))
                        })
                        .collect::<Vec<_>>()
                        .join("; "),
                )
            })
            .unwrap_or_default();
        TargetView {
            machine_id: t.machine_id.to_string(),
            hostname: t.hostname.clone(),
            fix_id: t.fix_id.clone(),
            wave: t.wave,
            state: t.state.to_string(),
            message: t.message.clone().unwrap_or_default(),
            changes,
        }
    }
}

#[derive(Template)]
#[template(path = "problem.html")]
pub struct ProblemPage {
    pub nav: Nav,
    pub title: &'static str,
    pub message: String,
}

#[derive(Template)]
#[template(path = "rollouts.html")]
pub struct RolloutsPage {
    pub nav: Nav,
    pub rows: Vec<RolloutView>,
}

#[derive(Template)]
#[template(path = "rollout.html")]
pub struct RolloutPage {
    pub nav: Nav,
    pub r: RolloutView,
    pub targets: Vec<TargetView>,
    pub params: String,
    pub created: String,
    pub can_approve: bool,
    pub can_operate: bool,
}

pub struct AuditView {
    pub id: i64,
    pub at: String,
    pub actor: String,
    pub actor_kind: String,
    pub action: String,
    pub subject: String,
    /// Where the subject's page is, when it has one.
    pub link: Option<String>,
    /// The details as fields (nested values as compact JSON).
    pub details: Vec<(String, String)>,
}

/// The page of a rollout, incident or machine (`agent` names a machine too) by its id.
fn page_of(kind: &str, id: &str) -> Option<String> {
    let id = uuid::Uuid::parse_str(id).ok()?;
    match kind {
        "rollout" => Some(format!("/rollouts/{id}")),
        "incident" => Some(format!("/incidents/{id}")),
        "machine" | "agent" => Some(format!("/machines/{id}")),
        _ => None,
    }
}

/// A page for an audited subject: its action's first word names the kind.
fn subject_link(action: &str, subject: &str) -> Option<String> {
    page_of(action.split('.').next()?, subject)
}

fn detail_fields(details: &str) -> Vec<(String, String)> {
    let short =
        |t: String| if t.chars().count() > 200 { format!("{}…", t.chars().take(200).collect::<String>()) } else { t };
    match serde_json::from_str::<serde_json::Value>(details) {
        Ok(serde_json::Value::Null) => vec![],
        Ok(serde_json::Value::Object(o)) => o
            .into_iter()
            .filter(|(_, v)| !v.is_null())
            .map(|(k, v)| (k, short(v.as_str().map_or_else(|| v.to_string(), str::to_owned))))
            .collect(),
        Ok(v) => vec![(String::new(), short(v.to_string()))],
        Err(_) => vec![(String::new(), short(details.to_owned()))],
    }
}

impl AuditView {
    pub fn of(r: &crate::store::audit::AuditRow) -> AuditView {
        AuditView {
            id: r.id,
            at: at(r.at),
            actor: r.actor.clone(),
            actor_kind: r.actor_kind.clone(),
            action: r.action.clone(),
            subject: r.subject.clone(),
            link: subject_link(&r.action, &r.subject),
            details: detail_fields(&r.details),
        }
    }
}

#[derive(Template)]
#[template(path = "releases.html")]
pub struct ReleasesPage {
    pub nav: Nav,
    pub can_propose: bool,
    pub releases: Vec<ReleaseView>,
}

pub struct ReleaseView {
    pub id: String,
    pub version: String,
    pub platform: &'static str,
    pub size: String,
    pub sha256: String,
    pub key: String,
    pub added_by: String,
    pub added: String,
    /// (link, state, dry run)
    pub rollouts: Vec<(String, String, bool)>,
}

impl ReleaseView {
    pub fn of(x: &crate::services::releases::ReleaseRollouts) -> ReleaseView {
        let r = &x.release;
        ReleaseView {
            id: r.id.to_string(),
            version: r.version.clone(),
            platform: r.platform.as_str(),
            size: format!("{:.1} MB", r.size as f64 / 1_000_000.0),
            sha256: r.sha256.clone(),
            key: r.key_fingerprint.chars().take(16).collect(),
            added_by: r.added_by.clone(),
            added: ago(r.created_at),
            rollouts: x
                .rollouts
                .iter()
                .map(|o| (format!("/rollouts/{}", o.id), o.state.as_str().to_owned(), o.dry_run))
                .collect(),
        }
    }
}

#[derive(Template)]
#[template(path = "audit.html")]
pub struct AuditPage {
    pub nav: Nav,
    pub rows: Vec<AuditView>,
    pub actor: String,
    pub action: String,
    pub subject: String,
    pub next: Option<i64>,
    pub query: String,
}
