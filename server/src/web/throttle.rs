//! Sign-in throttling: after `MAX_FAILURES` failed sign-ins for one user name or from one
//! address within `WINDOW`, further attempts are refused until the window has passed. Kept in
//! memory per replica: with several replicas an attacker gets the limit once per replica.
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub const MAX_FAILURES: u32 = 5;
pub const WINDOW: Duration = Duration::from_secs(15 * 60);
/// Entries kept at most; the oldest are dropped beyond (bounded memory under a spray).
const MAX_ENTRIES: usize = 100_000;

#[derive(Default)]
pub struct LoginThrottle {
    failures: Mutex<HashMap<String, (u32, Instant)>>,
}

impl LoginThrottle {
    fn keys(user: &str, ip: Option<std::net::IpAddr>) -> Vec<String> {
        let mut k = vec![format!("u:{}", user.to_lowercase())];
        if let Some(ip) = ip {
            k.push(format!("a:{ip}"));
        }
        k
    }

    /// Whether an attempt may be made now.
    pub fn allowed(&self, user: &str, ip: Option<std::net::IpAddr>) -> bool {
        let map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        Self::keys(user, ip).iter().all(|k| match map.get(k) {
            Some((n, first)) => *n < MAX_FAILURES || first.elapsed() > WINDOW,
            None => true,
        })
    }

    pub fn failed(&self, user: &str, ip: Option<std::net::IpAddr>) {
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX_ENTRIES {
            map.retain(|_, (_, first)| first.elapsed() <= WINDOW);
        }
        for k in Self::keys(user, ip) {
            let e = map.entry(k).or_insert((0, Instant::now()));
            if e.1.elapsed() > WINDOW {
                *e = (0, Instant::now());
            }
            e.0 += 1;
        }
    }

    pub fn succeeded(&self, user: &str) {
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        map.remove(&format!("u:{}", user.to_lowercase()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locks_after_repeated_failures_by_name_or_address() {
        let t = LoginThrottle::default();
        let ip = Some("10.0.0.1".parse().unwrap());
        for _ in 0..MAX_FAILURES {
            assert!(t.allowed("Alice", ip));
            t.failed("alice", ip);
        }
        assert!(!t.allowed("ALICE", None), "by name, whatever the address");
        assert!(!t.allowed("bob", ip), "by address, whatever the name");
        assert!(t.allowed("bob", Some("10.0.0.2".parse().unwrap())));
    }
}
