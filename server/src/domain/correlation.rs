//! From failures to incidents: a pure function over the fleet's current failures, so every rule
//! is tested on built scenarios. The incident key (kind and scope) is what stays the same while a
//! problem lasts; the root cause and the affected set may change under it.
//!
//! Rules, in order (each failure is used once):
//! 1. **Site network**: at least `network_min_machines` machines of one site whose paths fail at
//!    the network layers (cause side `network`), starting within `network_window_ms` of each
//!    other → one incident for the site.
//! 2. **Host**: every failure whose fault is on host H — clients' path failures with a host-side
//!    cause, clients that cannot reach H at all when several do, and H's own failing host checks
//!    → one incident for H. The root cause is H's own most severe finding when its agent reports
//!    one (it explains what the clients see), else the clients' most common cause.
//! 3. **Gateway**: path failures with a gateway-side cause, grouped by gateway.
//! 4. **Machine**: whatever is left is local to one machine (a client's own misconfiguration, a
//!    client alone unable to reach a host) → one incident per machine.
use std::collections::{BTreeMap, BTreeSet};

use rdpfleet_proto::causes::{self, Severity, Side};
use serde::Serialize;

/// A failing connection path of a client.
#[derive(Debug, Clone)]
pub struct PathFailure {
    pub machine_id: String,
    pub hostname: String,
    pub site: Option<String>,
    pub target: String,
    /// Lower-case host name of the target.
    pub host: String,
    pub gateway: Option<String>,
    pub layer: Option<String>,
    pub cause: String,
    pub since: i64,
}

/// A failing local check (not a path) of a machine.
#[derive(Debug, Clone)]
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Host,
    Gateway,
    Network,
    Machine,
}

crate::domain::text_enum!(Kind { Host = "host", Gateway = "gateway", Network = "network", Machine = "machine" });

/// One link of an incident's evidence chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Link {
    pub machine: String,
    pub check: String,
    pub target: String,
    pub cause: String,
    pub since: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Draft {
    pub key: String,
    pub kind: Kind,
    pub scope: String,
    pub root_cause: String,
    pub title: String,
    pub fix_id: Option<String>,
    /// Machines at fault (a host's own agent), by id.
    pub sources: BTreeSet<String>,
    /// Machines that suffer from it, by id.
    pub affected: BTreeSet<String>,
    /// Failures behind the verdict, root-cause evidence first (capped).
    pub evidence: Vec<Link>,
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
    pub max_evidence: usize,
}

impl Default for Rules {
    fn default() -> Self {
        Rules {
            network_min_machines: 3,
            network_window_ms: 15 * 60 * 1000,
            unreachable_min_clients: 3,
            max_evidence: 50,
        }
    }
}

fn side(cause: &str) -> Side {
    causes::lookup(cause).map_or(Side::Host, |c| c.side)
}

fn severity(cause: &str) -> Severity {
    causes::lookup(cause).map_or(Severity::High, |c| c.severity)
}

/// Short name of a host: the first label, lower case ("rdp01" for "RDP01.corp.example"); an
/// address stays whole.
fn short(name: &str) -> String {
    if name.parse::<std::net::IpAddr>().is_ok() {
        return name.to_owned();
    }
    name.split('.').next().unwrap_or(name).to_lowercase()
}

/// The most common cause, ties broken by severity then name.
fn most_common<'a>(causes: impl Iterator<Item = &'a str>) -> String {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for c in causes {
        *counts.entry(c).or_default() += 1;
    }
    counts
        .into_iter()
        .max_by(|a, b| a.1.cmp(&b.1).then(severity(a.0).cmp(&severity(b.0))).then(b.0.cmp(a.0)))
        .map(|(c, _)| c.to_owned())
        .unwrap_or_default()
}

fn title(kind: Kind, scope: &str, cause: &str) -> String {
    let what = causes::lookup(cause).map_or(cause, |c| c.title);
    match kind {
        Kind::Network => format!("Site {scope}: network failure ({what})"),
        _ => format!("{scope}: {what}"),
    }
}

fn link_path(p: &PathFailure) -> Link {
    Link {
        machine: p.hostname.clone(),
        check: "rdp.path".into(),
        target: p.target.clone(),
        cause: p.cause.clone(),
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

struct Builder {
    kind: Kind,
    scope: String,
    root: Vec<Link>,
    rest: Vec<Link>,
    sources: BTreeSet<String>,
    affected: BTreeSet<String>,
}

impl Builder {
    fn new(kind: Kind, scope: &str) -> Builder {
        Builder {
            kind,
            scope: scope.to_owned(),
            root: vec![],
            rest: vec![],
            sources: BTreeSet::new(),
            affected: BTreeSet::new(),
        }
    }

    fn finish(mut self, rules: &Rules) -> Draft {
        // The root cause: the source's most severe finding, else the commonest among the rest.
        let root_cause = self
            .root
            .iter()
            .max_by(|a, b| severity(&a.cause).cmp(&severity(&b.cause)).then(b.cause.cmp(&a.cause)))
            .map(|l| l.cause.clone())
            .unwrap_or_else(|| most_common(self.rest.iter().map(|l| l.cause.as_str())));
        let failures = self.root.len() + self.rest.len();
        let started_at = self.root.iter().chain(&self.rest).map(|l| l.since).min().unwrap_or(0);
        self.root.sort_by(|a, b| severity(&b.cause).cmp(&severity(&a.cause)).then(a.since.cmp(&b.since)));
        self.rest.sort_by(|a, b| a.since.cmp(&b.since).then(a.machine.cmp(&b.machine)));
        let mut evidence = self.root;
        evidence.extend(self.rest);
        evidence.truncate(rules.max_evidence);
        Draft {
            key: format!("{}:{}", self.kind.as_str(), self.scope),
            kind: self.kind,
            title: title(self.kind, &self.scope, &root_cause),
            fix_id: causes::lookup(&root_cause).and_then(|c| c.fix).map(str::to_owned),
            root_cause,
            scope: self.scope,
            sources: self.sources,
            affected: self.affected,
            evidence,
            failures,
            started_at,
        }
    }
}

/// Turns the current failures into incidents, sorted by key.
pub fn correlate(paths: &[PathFailure], locals: &[LocalFailure], rules: &Rules) -> Vec<Draft> {
    let mut used_paths = vec![false; paths.len()];
    let mut out: Vec<Draft> = Vec::new();

    // 1. Site network outages: network-side path failures of several machines of one site that
    //    began together.
    let mut by_site: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, p) in paths.iter().enumerate() {
        if let (Side::Network, Some(site)) = (side(&p.cause), p.site.as_deref()) {
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
        let hosts: BTreeSet<&str> = best.iter().map(|&i| paths[i].host.as_str()).collect();
        if hosts.len() < 2 {
            continue;
        }
        let machines: BTreeSet<&str> = best.iter().map(|&i| paths[i].machine_id.as_str()).collect();
        if machines.len() >= rules.network_min_machines {
            let mut b = Builder::new(Kind::Network, site);
            for &i in best {
                used_paths[i] = true;
                b.affected.insert(paths[i].machine_id.clone());
                b.rest.push(link_path(&paths[i]));
            }
            out.push(b.finish(rules));
        }
    }

    // 2. Hosts: client failures with a host-side cause, hosts that several clients cannot reach,
    //    and the hosts' own host-side failures.
    let mut hosts: BTreeMap<String, Builder> = BTreeMap::new();
    let mut unreachable: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, p) in paths.iter().enumerate() {
        if used_paths[i] {
            continue;
        }
        match side(&p.cause) {
            Side::Host => {
                used_paths[i] = true;
                let b = hosts.entry(p.host.clone()).or_insert_with(|| Builder::new(Kind::Host, &p.host));
                b.affected.insert(p.machine_id.clone());
                b.rest.push(link_path(p));
            }
            Side::Network => unreachable.entry(p.host.as_str()).or_default().push(i),
            _ => {}
        }
    }
    for (host, idx) in unreachable {
        let clients: BTreeSet<&str> = idx.iter().map(|&i| paths[i].machine_id.as_str()).collect();
        if clients.len() >= rules.unreachable_min_clients || hosts.contains_key(host) {
            let b = hosts.entry(host.to_owned()).or_insert_with(|| Builder::new(Kind::Host, host));
            for i in idx {
                used_paths[i] = true;
                b.affected.insert(paths[i].machine_id.clone());
                b.rest.push(link_path(&paths[i]));
            }
        }
    }
    // A host's own agent: matched to the name clients use, by full name or first label.
    let mut used_locals = vec![false; locals.len()];
    for (i, l) in locals.iter().enumerate() {
        if !l.is_host || side(&l.cause) != Side::Host {
            continue;
        }
        let name = l.hostname.to_lowercase();
        let key = hosts.keys().find(|h| **h == name || short(h) == short(&name)).cloned().unwrap_or(name);
        let b = hosts.entry(key.clone()).or_insert_with(|| Builder::new(Kind::Host, &key));
        used_locals[i] = true;
        b.sources.insert(l.machine_id.clone());
        b.root.push(link_local(l));
    }
    out.extend(hosts.into_values().map(|b| b.finish(rules)));

    // 3. Gateways.
    let mut gateways: BTreeMap<String, Builder> = BTreeMap::new();
    for (i, p) in paths.iter().enumerate() {
        if used_paths[i] || side(&p.cause) != Side::Gateway {
            continue;
        }
        let g = p.gateway.clone().unwrap_or_else(|| "unknown gateway".into());
        used_paths[i] = true;
        let b = gateways.entry(g.clone()).or_insert_with(|| Builder::new(Kind::Gateway, &g));
        b.affected.insert(p.machine_id.clone());
        b.rest.push(link_path(p));
    }
    out.extend(gateways.into_values().map(|b| b.finish(rules)));

    // 4. What is left is local to one machine.
    let mut machines: BTreeMap<String, Builder> = BTreeMap::new();
    for (i, p) in paths.iter().enumerate() {
        if used_paths[i] {
            continue;
        }
        let b = machines.entry(p.machine_id.clone()).or_insert_with(|| Builder::new(Kind::Machine, &p.hostname));
        b.sources.insert(p.machine_id.clone());
        b.root.push(link_path(p));
    }
    for (i, l) in locals.iter().enumerate() {
        if used_locals[i] {
            continue;
        }
        let b = machines.entry(l.machine_id.clone()).or_insert_with(|| Builder::new(Kind::Machine, &l.hostname));
        b.sources.insert(l.machine_id.clone());
        b.root.push(link_local(l));
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
