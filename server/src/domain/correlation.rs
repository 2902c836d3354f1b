//! From failures to incidents: a pure function over the fleet's current failures, so every rule
//! is tested on built scenarios. The incident key (kind and scope) is what stays the same while a
//! problem lasts; the root cause and the affected set may change under it.
//!
//! Before the rules, every host gets one name ([`HostNames`]), and each client path failure is
//! weighed against the client's own failing checks: when one of them explains the failure
//! (TLS 1.2 off on the client explains a failed handshake), the failure follows the client,
//! unless the host's own agent explains it too and no other client reaches the host.
//!
//! Rules, in order (each failure is used once):
//! 1. **Site network**: at least `network_min_machines` machines of one site whose paths fail at
//!    the network layers toward at least two hosts, starting within `network_window_ms` of each
//!    other (and not intermittent) → one incident for the site.
//! 2. **Host**: every failure whose fault is on host H — clients' path failures with a host-side
//!    cause, clients that cannot reach H at all when several do, and H's own failing host checks
//!    → one incident for H.
//! 3. **Clients**: clients whose path failures one shared local cause explains → one incident
//!    for the group when there are `group_min_clients` of them.
//! 4. **Gateway**: path failures with a gateway-side cause, grouped by gateway.
//! 5. **Machine**: whatever is left is local to one machine (a client's own misconfiguration, a
//!    client alone unable to reach a host, a cause this server does not know) → one incident per
//!    machine.
//!
//! In every incident the root cause is the cause that explains the others
//! (`rdpfleet_proto::explains`); severity only breaks ties between unrelated causes, and the
//! explained causes are listed as its symptoms.
use std::collections::{BTreeMap, BTreeSet};

use rdpfleet_proto::causes::{self, Severity, Side};
use rdpfleet_proto::explains::explains;
use serde::Serialize;

pub use crate::domain::host_names::HostIdentity;
use crate::domain::host_names::HostNames;

/// A failing connection path of a client.
#[derive(Debug, Clone, Default)]
pub struct PathFailure {
    pub machine_id: String,
    pub hostname: String,
    pub site: Option<String>,
    pub target: String,
    /// The host name the client uses (any spelling; correlation gives each host one name).
    pub host: String,
    /// The addresses that name resolved to for this client.
    pub addresses: Vec<String>,
    pub gateway: Option<String>,
    pub layer: Option<String>,
    /// The cause id the agent reported (`None` when it named none).
    pub cause: Option<String>,
    pub since: i64,
    /// The path fails now and then (flaps, or warns of intermittent loss) rather than for good.
    pub intermittent: bool,
}

/// A failing local check (not a path) of a machine.
#[derive(Debug, Clone, Default)]
pub struct LocalFailure {
    pub machine_id: String,
    pub hostname: String,
    pub site: Option<String>,
    pub is_host: bool,
    pub check: String,
    pub target: String,
    pub cause: String,
    pub since: i64,
}

/// What correlation reads: failures, and what it needs to weigh them.
#[derive(Debug, Clone, Default)]
pub struct Observations {
    pub paths: Vec<PathFailure>,
    pub locals: Vec<LocalFailure>,
    /// Every host name clients use with the addresses it resolved to (passing paths too).
    pub resolved: Vec<(String, Vec<String>)>,
    /// Clients whose path to a host (by the name they use) passes now, counted per name.
    pub reachable: Vec<(String, usize)>,
    /// The hosts' own agents.
    pub identities: Vec<HostIdentity>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Host,
    Gateway,
    Network,
    Machine,
    /// A group of clients sharing one local cause.
    Clients,
}

crate::domain::text_enum!(Kind {
    Host = "host",
    Gateway = "gateway",
    Network = "network",
    Machine = "machine",
    Clients = "clients"
});

/// One link of an incident's evidence chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Link {
    pub machine: String,
    pub check: String,
    pub target: String,
    pub cause: String,
    pub since: i64,
}

/// Failures of one cause toward one host (or local to machines), counted: a 110-machine
/// incident reads as a few lines.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EvidenceGroup {
    pub cause: String,
    pub check: String,
    /// The host the failures lead to; `None` for machines' own checks.
    pub host: Option<String>,
    pub machines: usize,
    pub failures: usize,
    /// A few of the machines, by name.
    pub examples: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Draft {
    pub key: String,
    pub kind: Kind,
    pub scope: String,
    pub root_cause: String,
    pub title: String,
    pub fix_id: Option<String>,
    /// Machines at fault (a host's own agent, the clients of a group), by id.
    pub sources: BTreeSet<String>,
    /// Machines that suffer from it, by id.
    pub affected: BTreeSet<String>,
    /// Failures behind the verdict, root-cause evidence first (capped).
    pub evidence: Vec<Link>,
    /// The evidence counted by cause and host, root cause first.
    pub groups: Vec<EvidenceGroup>,
    /// Causes present that the root cause explains.
    pub symptoms: Vec<String>,
    /// The names seen for the host (host incidents).
    pub names: BTreeSet<String>,
    /// Its failures come and go.
    pub intermittent: bool,
    /// The root cause is not in this server's catalogue (a newer agent, a typo).
    pub unknown_cause: bool,
    /// Failures in all, before the cap.
    pub failures: usize,
    /// When the earliest of its failures began.
    pub started_at: i64,
}

#[derive(Debug, Clone, Copy)]
pub struct Rules {
    pub network_min_machines: usize,
    pub network_window_ms: i64,
    /// Clients that must fail to reach a host before it counts as the host's fault.
    pub unreachable_min_clients: usize,
    /// Clients sharing a local cause that make a group incident (fewer: machine incidents).
    pub group_min_clients: usize,
    /// A path that failed twice or more within this window is intermittent: it stays in its
    /// incident while it passes between failures.
    pub flap_window_ms: i64,
    pub max_evidence: usize,
}

impl Default for Rules {
    fn default() -> Self {
        Rules {
            network_min_machines: 3,
            network_window_ms: 15 * 60 * 1000,
            unreachable_min_clients: 3,
            group_min_clients: 2,
            flap_window_ms: 30 * 60 * 1000,
            max_evidence: 50,
        }
    }
}

/// The side of a known cause; `None` for a cause this server does not know.
fn side(cause: &str) -> Option<Side> {
    causes::lookup(cause).map(|c| c.side)
}

fn severity(cause: &str) -> Severity {
    causes::lookup(cause).map_or(Severity::Medium, |c| c.severity)
}

/// The cause id of a path failure; a failure without one is unknown.
const UNNAMED: &str = "unknown";

fn path_cause(p: &PathFailure) -> &str {
    p.cause.as_deref().unwrap_or(UNNAMED)
}

fn title(kind: Kind, scope: &str, cause: &str, clients: usize) -> String {
    let what = causes::lookup(cause).map_or_else(|| format!("unknown cause {cause}"), |c| c.title.to_owned());
    match kind {
        Kind::Network => format!("Site {scope}: network failure ({what})"),
        Kind::Clients => format!("{clients} clients: {what}"),
        _ => format!("{scope}: {what}"),
    }
}

fn link_path(p: &PathFailure) -> Link {
    Link {
        machine: p.hostname.clone(),
        check: "rdp.path".into(),
        target: p.target.clone(),
        cause: path_cause(p).to_owned(),
        since: p.since,
    }
}

fn link_local(l: &LocalFailure) -> Link {
    Link {
        machine: l.hostname.clone(),
        check: l.check.clone(),
        target: l.target.clone(),
        cause: l.cause.clone(),
        since: l.since,
    }
}

/// One piece of evidence with what grouping needs.
struct Item {
    link: Link,
    /// The canonical host a path leads to.
    host: Option<String>,
    /// Reported by a machine at fault.
    from_source: bool,
    intermittent: bool,
}

struct Builder {
    kind: Kind,
    scope: String,
    items: Vec<Item>,
    sources: BTreeSet<String>,
    affected: BTreeSet<String>,
    names: BTreeSet<String>,
}

impl Builder {
    fn new(kind: Kind, scope: &str) -> Builder {
        Builder {
            kind,
            scope: scope.to_owned(),
            items: vec![],
            sources: BTreeSet::new(),
            affected: BTreeSet::new(),
            names: BTreeSet::new(),
        }
    }

    fn source_local(&mut self, l: &LocalFailure) {
        self.sources.insert(l.machine_id.clone());
        self.items.push(Item { link: link_local(l), host: None, from_source: true, intermittent: false });
    }

    fn source_path(&mut self, p: &PathFailure, host: &str) {
        self.sources.insert(p.machine_id.clone());
        self.items.push(Item {
            link: link_path(p),
            host: Some(host.to_owned()),
            from_source: true,
            intermittent: p.intermittent,
        });
    }

    fn affected_path(&mut self, p: &PathFailure, host: &str) {
        self.affected.insert(p.machine_id.clone());
        self.items.push(Item {
            link: link_path(p),
            host: Some(host.to_owned()),
            from_source: false,
            intermittent: p.intermittent,
        });
    }

    /// The root cause: of the causes present, the one explaining the most others; then the most
    /// severe, one its source reports, the commonest, and by name so that it is stable.
    fn root_cause(&self) -> (String, Vec<String>) {
        let mut count: BTreeMap<&str, (usize, bool)> = BTreeMap::new();
        for i in &self.items {
            let e = count.entry(i.link.cause.as_str()).or_default();
            e.0 += 1;
            e.1 |= i.from_source;
        }
        let present: Vec<&str> = count.keys().copied().collect();
        let explained = |c: &str| present.iter().filter(|s| explains(c, s)).count();
        let root = present
            .iter()
            .copied()
            .max_by(|a, b| {
                let key = |c: &str| (explained(c), severity(c), count[c].1, count[c].0);
                key(a).cmp(&key(b)).then(b.cmp(a))
            })
            .unwrap_or(UNNAMED)
            .to_owned();
        let symptoms = present.iter().filter(|s| explains(&root, s)).map(|s| (*s).to_owned()).collect();
        (root, symptoms)
    }

    fn finish(self, rules: &Rules) -> Draft {
        let (root_cause, symptoms) = self.root_cause();
        let failures = self.items.len();
        let started_at = self.items.iter().map(|i| i.link.since).min().unwrap_or(0);
        let intermittent = !self.items.is_empty()
            && self.items.iter().filter(|i| i.link.check == "rdp.path").all(|i| i.intermittent)
            && self.items.iter().any(|i| i.intermittent);
        let groups = groups(&self.items, &root_cause);
        let mut items = self.items;
        // Root cause first, then its source's findings, then the oldest.
        items.sort_by(|a, b| {
            (b.link.cause == root_cause)
                .cmp(&(a.link.cause == root_cause))
                .then(b.from_source.cmp(&a.from_source))
                .then(a.link.since.cmp(&b.link.since))
                .then(a.link.machine.cmp(&b.link.machine))
        });
        let mut evidence: Vec<Link> = items.into_iter().map(|i| i.link).collect();
        evidence.truncate(rules.max_evidence);
        let unknown_cause = causes::lookup(&root_cause).is_none();
        let clients = self.sources.len().max(self.affected.len());
        Draft {
            key: format!("{}:{}", self.kind.as_str(), self.scope),
            kind: self.kind,
            title: title(self.kind, &self.scope, &root_cause, clients),
            fix_id: causes::lookup(&root_cause).and_then(|c| c.fix).map(str::to_owned),
            root_cause,
            scope: self.scope,
            sources: self.sources,
            affected: self.affected,
            evidence,
            groups,
            symptoms,
            names: self.names,
            intermittent,
            unknown_cause,
            failures,
            started_at,
        }
    }
}

/// Counts the evidence by (cause, check, host), the root cause's groups first, then the largest.
fn groups(items: &[Item], root: &str) -> Vec<EvidenceGroup> {
    type Key<'a> = (&'a str, &'a str, Option<&'a str>);
    let mut by: BTreeMap<Key, (BTreeSet<&str>, usize)> = BTreeMap::new();
    for i in items {
        let e = by.entry((&i.link.cause, &i.link.check, i.host.as_deref())).or_default();
        e.0.insert(&i.link.machine);
        e.1 += 1;
    }
    let mut out: Vec<EvidenceGroup> = by
        .into_iter()
        .map(|((cause, check, host), (machines, failures))| EvidenceGroup {
            cause: cause.to_owned(),
            check: check.to_owned(),
            host: host.map(str::to_owned),
            machines: machines.len(),
            failures,
            examples: machines.iter().take(5).map(|m| (*m).to_owned()).collect(),
        })
        .collect();
    out.sort_by(|a, b| (b.cause == root).cmp(&(a.cause == root)).then(b.machines.cmp(&a.machines)));
    out
}

/// How each path failure is attributed before the rules group them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Blame {
    /// Rules 1, 2 and 4 decide by the cause's side.
    BySide,
    /// One of the client's own failing checks (by index into the locals) explains it.
    Client(usize),
    /// An unknown cause: never the host's.
    Unknown,
}

/// Turns the current failures into incidents, sorted by key.
pub fn correlate(obs: &Observations, rules: &Rules) -> Vec<Draft> {
    let paths = &obs.paths;
    let locals = &obs.locals;
    let names = HostNames::build(obs.resolved.iter().map(|(n, a)| (n.as_str(), a.as_slice())), &obs.identities);
    let host_of: Vec<String> = paths.iter().map(|p| names.canonical(&p.host)).collect();
    let mut reachable: BTreeMap<String, usize> = BTreeMap::new();
    for (name, n) in &obs.reachable {
        *reachable.entry(names.canonical(name)).or_default() += n;
    }
    // A host agent's own failures, by canonical host: matched by the machine's name.
    let host_agent_locals: BTreeMap<String, Vec<usize>> = {
        let mut m: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        for (i, l) in locals.iter().enumerate() {
            if l.is_host && side(&l.cause) == Some(Side::Host) {
                m.entry(names.canonical(&l.hostname)).or_default().push(i);
            }
        }
        m
    };
    let mut local_by_machine: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, l) in locals.iter().enumerate() {
        local_by_machine.entry(l.machine_id.as_str()).or_default().push(i);
    }

    let blame: Vec<Blame> = paths
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let cause = path_cause(p);
            if side(cause).is_none() {
                return Blame::Unknown;
            }
            // The client's own failing check that explains it, if any.
            let own = local_by_machine.get(p.machine_id.as_str()).and_then(|ls| {
                ls.iter().copied().find(|&l| {
                    side(&locals[l].cause).is_some_and(|s| s == Side::Client) && explains(&locals[l].cause, cause)
                })
            });
            let Some(own) = own else { return Blame::BySide };
            let host = &host_of[i];
            let host_explains = host_agent_locals
                .get(host)
                .is_some_and(|ls| ls.iter().any(|&l| explains(&locals[l].cause, cause) || locals[l].cause == cause));
            // Both sides could explain it: the side that differs is the client when other
            // clients reach the host.
            if host_explains && reachable.get(host).copied().unwrap_or(0) == 0 {
                Blame::BySide
            } else {
                Blame::Client(own)
            }
        })
        .collect();

    let mut used_paths = vec![false; paths.len()];
    let mut used_locals = vec![false; locals.len()];
    let mut out: Vec<Draft> = Vec::new();

    site_network(paths, &host_of, &blame, &mut used_paths, rules, &mut out);
    hosts(obs, &names, &host_of, &host_agent_locals, &blame, &mut used_paths, &mut used_locals, rules, &mut out);
    client_groups(paths, locals, &host_of, &blame, &mut used_paths, &mut used_locals, rules, &mut out);

    // 4. Gateways.
    let mut gateways: BTreeMap<String, Builder> = BTreeMap::new();
    for (i, p) in paths.iter().enumerate() {
        if used_paths[i] || blame[i] != Blame::BySide || side(path_cause(p)) != Some(Side::Gateway) {
            continue;
        }
        let g = p.gateway.as_deref().map_or_else(|| "unknown gateway".into(), |g| names.canonical(g));
        used_paths[i] = true;
        gateways.entry(g.clone()).or_insert_with(|| Builder::new(Kind::Gateway, &g)).affected_path(p, &host_of[i]);
    }
    out.extend(gateways.into_values().map(|b| b.finish(rules)));

    // 5. What is left is local to one machine.
    let mut machines: BTreeMap<String, Builder> = BTreeMap::new();
    for (i, p) in paths.iter().enumerate() {
        if !used_paths[i] {
            machines
                .entry(p.machine_id.clone())
                .or_insert_with(|| Builder::new(Kind::Machine, &p.hostname))
                .source_path(p, &host_of[i]);
        }
    }
    for (i, l) in locals.iter().enumerate() {
        if !used_locals[i] {
            machines
                .entry(l.machine_id.clone())
                .or_insert_with(|| Builder::new(Kind::Machine, &l.hostname))
                .source_local(l);
        }
    }
    for (id, b) in machines {
        let mut d = b.finish(rules);
        // Host names are not unique across a fleet; the machine id keeps the key so.
        d.key = format!("machine:{id}");
        out.push(d);
    }
    out.sort_by(|a, b| a.key.cmp(&b.key));
    out
}

/// Rule 1: network-side path failures of several machines of one site toward several hosts
/// that began together.
fn site_network(
    paths: &[PathFailure],
    host_of: &[String],
    blame: &[Blame],
    used: &mut [bool],
    rules: &Rules,
    out: &mut Vec<Draft>,
) {
    let mut by_site: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    // An outage is failures that start together and last: paths that come and go are left to
    // the host and machine rules.
    for (i, p) in paths.iter().enumerate().filter(|(_, p)| !p.intermittent) {
        if let (Blame::BySide, Some(Side::Network), Some(site)) = (blame[i], side(path_cause(p)), p.site.as_deref()) {
            by_site.entry(site).or_default().push(i);
        }
    }
    for (site, mut idx) in by_site {
        idx.sort_by_key(|&i| paths[i].since);
        // The largest group of failures starting within the window of each other (most
        // machines, then most failures).
        let mut best: &[usize] = &[];
        let mut best_rank = (0, 0);
        let mut start = 0;
        // Failures per machine inside the window, so the distinct count moves in O(1).
        let mut inside: BTreeMap<&str, usize> = BTreeMap::new();
        for end in 0..idx.len() {
            *inside.entry(paths[idx[end]].machine_id.as_str()).or_default() += 1;
            while paths[idx[end]].since - paths[idx[start]].since > rules.network_window_ms {
                let m = paths[idx[start]].machine_id.as_str();
                if let Some(n) = inside.get_mut(m) {
                    *n -= 1;
                    if *n == 0 {
                        inside.remove(m);
                    }
                }
                start += 1;
            }
            let rank = (inside.len(), end + 1 - start);
            if rank > best_rank {
                best_rank = rank;
                best = &idx[start..=end];
            }
        }
        // Failures that all lead to one host are that host's problem, not the site's network.
        let hosts: BTreeSet<&str> = best.iter().map(|&i| host_of[i].as_str()).collect();
        if hosts.len() < 2 {
            continue;
        }
        let machines: BTreeSet<&str> = best.iter().map(|&i| paths[i].machine_id.as_str()).collect();
        if machines.len() >= rules.network_min_machines {
            let mut b = Builder::new(Kind::Network, site);
            for &i in best {
                used[i] = true;
                b.affected_path(&paths[i], &host_of[i]);
            }
            out.push(b.finish(rules));
        }
    }
}

/// Rule 2: client failures with a host-side cause, hosts that several clients cannot reach,
/// and the hosts' own host-side failures.
#[allow(clippy::too_many_arguments)]
fn hosts(
    obs: &Observations,
    names: &HostNames,
    host_of: &[String],
    host_agent_locals: &BTreeMap<String, Vec<usize>>,
    blame: &[Blame],
    used_paths: &mut [bool],
    used_locals: &mut [bool],
    rules: &Rules,
    out: &mut Vec<Draft>,
) {
    let (paths, locals) = (&obs.paths, &obs.locals);
    let mut hosts: BTreeMap<String, Builder> = BTreeMap::new();
    let mut unreachable: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, p) in paths.iter().enumerate() {
        if used_paths[i] || blame[i] != Blame::BySide {
            continue;
        }
        match side(path_cause(p)) {
            Some(Side::Host) => {
                used_paths[i] = true;
                let h = &host_of[i];
                hosts.entry(h.clone()).or_insert_with(|| Builder::new(Kind::Host, h)).affected_path(p, h);
            }
            Some(Side::Network) => unreachable.entry(host_of[i].as_str()).or_default().push(i),
            _ => {}
        }
    }
    for (host, idx) in unreachable {
        let clients: BTreeSet<&str> = idx.iter().map(|&i| paths[i].machine_id.as_str()).collect();
        if clients.len() >= rules.unreachable_min_clients || hosts.contains_key(host) {
            let b = hosts.entry(host.to_owned()).or_insert_with(|| Builder::new(Kind::Host, host));
            for i in idx {
                used_paths[i] = true;
                b.affected_path(&paths[i], host);
            }
        }
    }
    for (host, idx) in host_agent_locals {
        let b = hosts.entry(host.clone()).or_insert_with(|| Builder::new(Kind::Host, host));
        for &i in idx {
            used_locals[i] = true;
            b.source_local(&locals[i]);
        }
    }
    for (host, mut b) in hosts {
        b.names = names.names_of(&host);
        out.push(b.finish(rules));
    }
}

/// Rule 3: clients whose path failures their own shared local cause explains. A group of
/// `group_min_clients` or more is one incident; a single client is left to rule 5, where its
/// own cause leads its machine incident.
#[allow(clippy::too_many_arguments)]
fn client_groups(
    paths: &[PathFailure],
    locals: &[LocalFailure],
    host_of: &[String],
    blame: &[Blame],
    used_paths: &mut [bool],
    used_locals: &mut [bool],
    rules: &Rules,
    out: &mut Vec<Draft>,
) {
    let mut by_cause: BTreeMap<&str, (BTreeSet<&str>, Vec<usize>)> = BTreeMap::new();
    for (i, b) in blame.iter().enumerate() {
        if let (Blame::Client(l), false) = (b, used_paths[i]) {
            let e = by_cause.entry(locals[*l].cause.as_str()).or_default();
            e.0.insert(paths[i].machine_id.as_str());
            e.1.push(i);
        }
    }
    for (cause, (clients, idx)) in by_cause {
        if clients.len() < rules.group_min_clients {
            continue;
        }
        let mut b = Builder::new(Kind::Clients, cause);
        for (l, local) in locals.iter().enumerate() {
            if !used_locals[l] && local.cause == cause && clients.contains(local.machine_id.as_str()) {
                used_locals[l] = true;
                b.source_local(local);
            }
        }
        for i in idx {
            used_paths[i] = true;
            b.source_path(&paths[i], &host_of[i]);
        }
        out.push(b.finish(rules));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(machine: &str, host: &str, cause: &str) -> PathFailure {
        PathFailure {
            machine_id: machine.into(),
            hostname: machine.into(),
            site: Some("hq".into()),
            target: format!("{host}:3389"),
            host: host.into(),
            cause: Some(cause.into()),
            since: 1,
            ..PathFailure::default()
        }
    }

    fn local(machine: &str, is_host: bool, cause: &str) -> LocalFailure {
        LocalFailure {
            machine_id: machine.into(),
            hostname: machine.into(),
            is_host,
            check: "c".into(),
            cause: cause.into(),
            since: 1,
            ..LocalFailure::default()
        }
    }

    fn run(obs: Observations) -> Vec<Draft> {
        correlate(&obs, &Rules::default())
    }

    #[test]
    fn the_cause_that_explains_the_others_is_the_root_whatever_its_name() {
        let d = run(Observations {
            locals: vec![local("rdp01", true, "host.not_listening"), local("rdp01", true, "host.rdp_disabled")],
            ..Observations::default()
        });
        assert_eq!(d.len(), 1);
        assert_eq!((d[0].root_cause.as_str(), d[0].fix_id.as_deref()), ("host.rdp_disabled", Some("host.rdp.enable")));
        assert_eq!(d[0].symptoms, vec!["host.not_listening"]);
        assert_eq!(d[0].evidence[0].cause, "host.rdp_disabled");
    }

    #[test]
    fn unknown_causes_stay_on_the_machine_that_reported_them() {
        let d = run(Observations {
            paths: vec![path("a", "rdp01", "cert.from_the_future"), path("b", "rdp01", "cert.from_the_future")],
            locals: vec![local("c", true, "host.brand_new_check")],
            ..Observations::default()
        });
        assert_eq!(d.iter().map(|d| d.kind).collect::<Vec<_>>(), vec![Kind::Machine; 3]);
        assert!(d.iter().all(|d| d.unknown_cause && d.fix_id.is_none()));
        assert!(d[0].title.contains("unknown cause"), "{}", d[0].title);
    }

    #[test]
    fn a_shared_client_cause_makes_one_group_incident_when_others_reach_the_host() {
        let mut paths = vec![path("a", "rdp01", "tls.handshake_failed"), path("b", "rdp01", "tls.handshake_failed")];
        paths[1].host = "RDP01.".into();
        let d = run(Observations {
            paths,
            locals: vec![local("a", false, "client.tls12_disabled"), local("b", false, "client.tls12_disabled")],
            reachable: vec![("rdp01".into(), 5)],
            ..Observations::default()
        });
        assert_eq!(d.len(), 1, "{d:#?}");
        assert_eq!((d[0].kind, d[0].root_cause.as_str()), (Kind::Clients, "client.tls12_disabled"));
        assert_eq!(d[0].sources, ["a", "b"].iter().map(|s| (*s).to_owned()).collect());
        assert_eq!(d[0].symptoms, vec!["tls.handshake_failed"]);
        assert_eq!(d[0].groups[0].machines, 2);
    }
}
