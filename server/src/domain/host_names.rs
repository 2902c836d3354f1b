//! One name per host. Clients name a host in many ways — `RDP01`, `rdp01.corp.example.`,
//! `10.0.0.5` — and its own agent reports yet another; correlation must see one host. Names are
//! normalised (case, trailing dot, brackets, IP text), then joined into one host when they
//! resolve to the same address, when a host's own agent claims them, or when a short name is
//! the first label of exactly one known FQDN.
//!
//! Joining is cautious: an address two different host agents claim (a NAT address, a load
//! balancer's) joins nothing, and no join puts two host agents into one host.
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use serde::Deserialize;

/// A host as its own agent describes it.
#[derive(Debug, Clone, Default)]
pub struct HostIdentity {
    pub machine_id: String,
    /// Its host name and any other names it reports (FQDN).
    pub names: Vec<String>,
    pub addresses: Vec<String>,
}

impl HostIdentity {
    /// A host from its machine name and its `host.identity` check's evidence (when it has
    /// reported one): names capped in length and number, addresses only when they are addresses.
    pub fn of_report(machine_id: String, hostname: String, evidence: Option<&serde_json::Value>) -> HostIdentity {
        #[derive(serde::Deserialize, Default)]
        #[serde(default)]
        struct Reported {
            names: Vec<String>,
            addresses: Vec<String>,
        }
        let reported = evidence.and_then(|e| Reported::deserialize(e).ok()).unwrap_or_default();
        let mut names = vec![hostname];
        names.extend(reported.names.into_iter().filter(|n| n.len() <= 255).take(16));
        let addresses = reported.addresses.into_iter().filter(|a| a.parse::<IpAddr>().is_ok()).take(32).collect();
        HostIdentity { machine_id, names, addresses }
    }
}

/// Lower case, no trailing dot, no brackets around an IPv6 address, an address in its
/// canonical text form.
pub fn normalise(name: &str) -> String {
    let n = name.trim().trim_end_matches('.');
    let n = n.strip_prefix('[').and_then(|r| r.strip_suffix(']')).unwrap_or(n);
    match n.parse::<IpAddr>() {
        Ok(ip) => ip.to_string(),
        Err(_) => n.to_lowercase(),
    }
}

fn is_address(name: &str) -> bool {
    name.parse::<IpAddr>().is_ok()
}

/// Addresses that say nothing about which host it is.
fn joins_hosts(addr: &str) -> bool {
    match addr.parse::<IpAddr>() {
        Ok(IpAddr::V4(a)) => !(a.is_loopback() || a.is_unspecified() || a.is_link_local() || a.is_broadcast()),
        Ok(IpAddr::V6(a)) => !(a.is_loopback() || a.is_unspecified() || (a.segments()[0] & 0xffc0) == 0xfe80),
        Err(_) => false,
    }
}

/// The names seen for the fleet's hosts, joined into hosts.
#[derive(Debug, Default)]
pub struct HostNames {
    index: BTreeMap<String, usize>,
    parent: Vec<usize>,
    names: Vec<String>,
    /// Host agents (machine ids) per root.
    agents: BTreeMap<usize, BTreeSet<String>>,
    /// Filled once the joins are done, so each lookup is one map access (correlation asks for
    /// every failing path, and a fleet has thousands of names).
    members: BTreeMap<usize, BTreeSet<String>>,
    canonical: BTreeMap<usize, String>,
}

impl HostNames {
    /// `resolved`: each name clients used with the addresses it resolved to for them;
    /// `identities`: what the hosts' own agents say.
    pub fn build<'a>(
        resolved: impl IntoIterator<Item = (&'a str, &'a [String])>,
        identities: &[HostIdentity],
    ) -> HostNames {
        let mut h = HostNames::default();
        // An address claimed by two host agents belongs to neither.
        let mut claims: BTreeMap<String, BTreeSet<&str>> = BTreeMap::new();
        for id in identities {
            for a in &id.addresses {
                claims.entry(normalise(a)).or_default().insert(id.machine_id.as_str());
            }
        }
        for id in identities {
            let own: Vec<String> = id.names.iter().map(|n| normalise(n)).filter(|n| !n.is_empty()).collect();
            let Some(first) = own.first() else { continue };
            let root = h.id(first);
            let root = h.find(root);
            h.agents.entry(root).or_default().insert(id.machine_id.clone());
            for n in own.iter().skip(1) {
                h.join(first, n);
            }
            for a in &id.addresses {
                let a = normalise(a);
                if joins_hosts(&a) && claims.get(&a).is_some_and(|c| c.len() == 1) {
                    h.join(first, &a);
                }
            }
        }
        for (name, addresses) in resolved {
            let name = normalise(name);
            if name.is_empty() {
                continue;
            }
            h.id(&name);
            for a in addresses {
                let a = normalise(a);
                if joins_hosts(&a) && claims.get(&a).is_none_or(|c| c.len() == 1) && a != name {
                    h.join(&name, &a);
                }
            }
        }
        // A short name joins the one FQDN it is the first label of; with two candidates
        // (rdp01.corp.example and rdp01.lab.example) it stays apart.
        let mut fqdns_by_label: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for n in h.names.iter().filter(|n| !is_address(n) && n.contains('.')) {
            if let Some(label) = n.split('.').next() {
                fqdns_by_label.entry(label.to_owned()).or_default().insert(n.clone());
            }
        }
        let shorts: Vec<String> = h.names.iter().filter(|n| !is_address(n) && !n.contains('.')).cloned().collect();
        for s in shorts {
            if let Some(fqdns) = fqdns_by_label.get(&s) {
                let roots: BTreeSet<usize> = fqdns.iter().map(|f| h.root_of(f)).collect();
                if roots.len() == 1 {
                    if let Some(f) = fqdns.iter().next() {
                        let f = f.clone();
                        h.join(&s, &f);
                    }
                }
            }
        }
        h.settle();
        h
    }

    /// Records each host's names and its one name.
    fn settle(&mut self) {
        for i in 0..self.names.len() {
            let root = self.find(i);
            self.members.entry(root).or_default().insert(self.names[i].clone());
        }
        for (root, names) in &self.members {
            let best = names.iter().max_by(|a, b| {
                (!is_address(a), a.matches('.').count(), std::cmp::Reverse(a.as_str())).cmp(&(
                    !is_address(b),
                    b.matches('.').count(),
                    std::cmp::Reverse(b.as_str()),
                ))
            });
            if let Some(best) = best {
                self.canonical.insert(*root, best.clone());
            }
        }
    }

    fn id(&mut self, name: &str) -> usize {
        if let Some(&i) = self.index.get(name) {
            return i;
        }
        let i = self.names.len();
        self.names.push(name.to_owned());
        self.parent.push(i);
        self.index.insert(name.to_owned(), i);
        i
    }

    fn find(&mut self, mut i: usize) -> usize {
        while self.parent[i] != i {
            self.parent[i] = self.parent[self.parent[i]];
            i = self.parent[i];
        }
        i
    }

    fn root_of(&mut self, name: &str) -> usize {
        let i = self.id(name);
        self.find(i)
    }

    /// Joins the hosts of `a` and `b`, unless that would make two host agents one host.
    fn join(&mut self, a: &str, b: &str) {
        let (ra, rb) = (self.root_of(a), self.root_of(b));
        if ra == rb {
            return;
        }
        let agents_a = self.agents.get(&ra).cloned().unwrap_or_default();
        let agents_b = self.agents.get(&rb).cloned().unwrap_or_default();
        if !agents_a.is_empty() && !agents_b.is_empty() && agents_a != agents_b {
            return;
        }
        self.parent[rb] = ra;
        if let Some(b) = self.agents.remove(&rb) {
            self.agents.entry(ra).or_default().extend(b);
        }
    }

    fn root_readonly(&self, name: &str) -> Option<usize> {
        let mut i = *self.index.get(&normalise(name))?;
        while self.parent[i] != i {
            i = self.parent[i];
        }
        Some(i)
    }

    /// Every name of the host `name` belongs to (itself alone when unknown), sorted.
    pub fn names_of(&self, name: &str) -> BTreeSet<String> {
        self.root_readonly(name)
            .and_then(|root| self.members.get(&root).cloned())
            .unwrap_or_else(|| BTreeSet::from([normalise(name)]))
    }

    /// The one name for the host `name` belongs to: its longest DNS name (an FQDN over a short
    /// name), an address only when no name is known; ties by text, so it is stable.
    pub fn canonical(&self, name: &str) -> String {
        self.root_readonly(name).and_then(|root| self.canonical.get(&root).cloned()).unwrap_or_else(|| normalise(name))
    }

    /// The host agents (machine ids) of the host `name` belongs to.
    pub fn agents_of(&self, name: &str) -> BTreeSet<String> {
        self.root_readonly(name).and_then(|r| self.agents.get(&r)).cloned().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ident(id: &str, names: &[&str], addrs: &[&str]) -> HostIdentity {
        HostIdentity {
            machine_id: id.into(),
            names: names.iter().map(|s| (*s).to_owned()).collect(),
            addresses: addrs.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    #[test]
    fn spellings_of_one_host_are_one_host() {
        let a = vec!["10.0.0.5".to_owned()];
        let none: Vec<String> = vec![];
        let resolved: Vec<(&str, &[String])> = vec![
            ("RDP01.corp.example.", &a),
            ("rdp01", &none),
            ("10.0.0.5", &none),
            ("[::1]", &none),
            ("app02.corp.example", &none),
        ];
        let h = HostNames::build(resolved, &[ident("m1", &["RDP01"], &["10.0.0.5", "127.0.1.1"])]);
        assert_eq!(h.canonical("rdp01"), "rdp01.corp.example");
        assert_eq!(h.canonical("10.0.0.5"), "rdp01.corp.example");
        assert_eq!(h.canonical("RDP01.CORP.EXAMPLE"), "rdp01.corp.example");
        assert_eq!(
            h.names_of("rdp01"),
            ["10.0.0.5", "rdp01", "rdp01.corp.example"].iter().map(|s| (*s).to_owned()).collect()
        );
        assert_eq!(h.agents_of("rdp01.corp.example"), BTreeSet::from(["m1".to_owned()]));
        assert_eq!(h.canonical("app02.corp.example"), "app02.corp.example");
        assert_eq!(h.canonical("::1"), "::1", "loopback joins nothing");
        assert_eq!(h.canonical("never.seen"), "never.seen");
    }

    #[test]
    fn shared_addresses_and_ambiguous_short_names_join_nothing() {
        let nat = vec!["10.0.2.15".to_owned()];
        let resolved: Vec<(&str, &[String])> =
            vec![("rdp01.a.example", &nat), ("rdp01.b.example", &[]), ("rdp01", &[]), ("rdp02.a.example", &[])];
        // Both host agents claim the NAT address: it belongs to neither.
        let h = HostNames::build(
            resolved,
            &[ident("m1", &["rdp01.a.example"], &["10.0.2.15"]), ident("m2", &["rdp02.a.example"], &["10.0.2.15"])],
        );
        assert_ne!(h.canonical("rdp01.a.example"), h.canonical("rdp02.a.example"));
        assert_eq!(h.canonical("rdp01"), "rdp01", "two FQDNs start with rdp01");
        assert_eq!(h.canonical("rdp01.b.example"), "rdp01.b.example");
    }

    #[test]
    fn two_host_agents_never_become_one_host() {
        let shared = vec!["10.9.9.9".to_owned()];
        // Clients resolve both names to one load-balancer address.
        let resolved: Vec<(&str, &[String])> = vec![("h1.example", &shared), ("h2.example", &shared)];
        let h = HostNames::build(resolved, &[ident("m1", &["h1.example"], &[]), ident("m2", &["h2.example"], &[])]);
        assert_ne!(h.canonical("h1.example"), h.canonical("h2.example"));
    }
}
