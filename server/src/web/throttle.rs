//! Sign-in throttling: after `MAX_FAILURES` failed sign-ins for one user name or from one
//! address within `WINDOW`, further attempts are refused until the window has passed. Kept in
//! memory per replica: with several replicas an attacker gets the limit once per replica.
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub const MAX_FAILURES: u32 = 5;
pub const WINDOW: Duration = Duration::from_secs(15 * 60);
/// Failed enrollments allowed from one address per window: an agent retrying a dead token is
/// fine, a guesser is stopped.
pub const MAX_ENROLL_FAILURES: u32 = 20;
/// Entries kept at most; the oldest are dropped beyond (bounded memory under a spray).
const MAX_ENTRIES: usize = 100_000;

/// Failures per key within a window.
pub struct FailureCounter<K> {
    max: u32,
    failures: Mutex<HashMap<K, (u32, Instant)>>,
}

impl<K: std::hash::Hash + Eq + Clone> FailureCounter<K> {
    pub fn new(max: u32) -> Self {
        FailureCounter { max, failures: Mutex::new(HashMap::new()) }
    }

    /// Whether none of `keys` has used up its failures.
    pub fn allowed(&self, keys: &[K]) -> bool {
        let map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        keys.iter().all(|k| match map.get(k) {
            Some((n, first)) => *n < self.max || first.elapsed() > WINDOW,
            None => true,
        })
    }

    pub fn failed(&self, keys: &[K]) {
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX_ENTRIES {
            map.retain(|_, (_, first)| first.elapsed() <= WINDOW);
        }
        for k in keys {
            let e = map.entry(k.clone()).or_insert((0, Instant::now()));
            if e.1.elapsed() > WINDOW {
                *e = (0, Instant::now());
            }
            e.0 += 1;
        }
    }

    pub fn clear(&self, key: &K) {
        self.failures.lock().unwrap_or_else(|p| p.into_inner()).remove(key);
    }
}

/// Sign-in failures by user name and by address.
pub struct LoginThrottle {
    counter: FailureCounter<String>,
}

impl Default for LoginThrottle {
    fn default() -> Self {
        LoginThrottle { counter: FailureCounter::new(MAX_FAILURES) }
    }
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
        self.counter.allowed(&Self::keys(user, ip))
    }

    pub fn failed(&self, user: &str, ip: Option<std::net::IpAddr>) {
        self.counter.failed(&Self::keys(user, ip));
    }

    pub fn succeeded(&self, user: &str) {
        self.counter.clear(&format!("u:{}", user.to_lowercase()));
    }
}

/// Failed enrollments by address.
pub fn enroll_throttle() -> FailureCounter<std::net::IpAddr> {
    FailureCounter::new(MAX_ENROLL_FAILURES)
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
        t.succeeded("alice");
        assert!(t.allowed("alice", None), "a success clears the name");
    }

    #[test]
    fn enrollment_failures_are_counted_per_address() {
        let t = enroll_throttle();
        let (a, b): (std::net::IpAddr, std::net::IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        for _ in 0..MAX_ENROLL_FAILURES {
            assert!(t.allowed(&[a]));
            t.failed(&[a]);
        }
        assert!(!t.allowed(&[a]));
        assert!(t.allowed(&[b]));
    }
}
