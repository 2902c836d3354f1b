//! Sign-in throttling: after `MAX_FAILURES` failed sign-ins for one user name or from one
//! address within `WINDOW`, further attempts are refused until the window has passed. Kept in
//! memory per replica: with several replicas an attacker gets the limit once per replica.
//!
//! An attempt is counted *before* the password is checked ([`FailureCounter::try_begin`]) and
//! given back when it succeeds: counting only after a failed check let parallel guesses all be
//! checked before the first failure was counted.
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

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<K, (u32, Instant)>> {
        self.failures.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes an attempt for every key at once, counted as a failure until [`Self::refund`]:
    /// `false` (and nothing counted) when any key has used up its failures in the window.
    pub fn try_begin(&self, keys: &[K]) -> bool {
        let mut map = self.lock();
        let spent =
            |e: Option<&(u32, Instant)>| e.is_some_and(|(n, first)| *n >= self.max && first.elapsed() <= WINDOW);
        if keys.iter().any(|k| spent(map.get(k))) {
            return false;
        }
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
        true
    }

    /// Gives back an attempt taken by [`Self::try_begin`] that did not fail.
    pub fn refund(&self, keys: &[K]) {
        let mut map = self.lock();
        for k in keys {
            if let Some(e) = map.get_mut(k) {
                e.0 = e.0.saturating_sub(1);
            }
        }
    }

    pub fn clear(&self, key: &K) {
        self.lock().remove(key);
    }
}

/// Sign-in failures by user name (as sign-in reads it: trimmed, any case) and by address.
pub struct LoginThrottle {
    counter: FailureCounter<String>,
}

impl Default for LoginThrottle {
    fn default() -> Self {
        LoginThrottle { counter: FailureCounter::new(MAX_FAILURES) }
    }
}

impl LoginThrottle {
    fn name_key(user: &str) -> String {
        format!("u:{}", user.trim().to_lowercase())
    }

    fn keys(user: &str, ip: Option<std::net::IpAddr>) -> Vec<String> {
        let mut k = vec![Self::name_key(user)];
        if let Some(ip) = ip {
            k.push(format!("a:{ip}"));
        }
        k
    }

    /// Takes an attempt (counted as failed until [`Self::succeeded`]); `false` when the name
    /// or the address is locked.
    pub fn begin(&self, user: &str, ip: Option<std::net::IpAddr>) -> bool {
        self.counter.try_begin(&Self::keys(user, ip))
    }

    /// The attempt succeeded: the name's failures are forgotten, the address gets its attempt back.
    pub fn succeeded(&self, user: &str, ip: Option<std::net::IpAddr>) {
        self.counter.clear(&Self::name_key(user));
        if let Some(ip) = ip {
            self.counter.refund(&[format!("a:{ip}")]);
        }
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
            assert!(t.begin("alice", ip));
        }
        assert!(!t.begin("ALICE", None), "by name, whatever the address");
        assert!(!t.begin("  alice ", None), "by the name sign-in uses: trimmed");
        assert!(!t.begin("bob", ip), "by address, whatever the name");
        assert!(t.begin("bob", Some("10.0.0.2".parse().unwrap())));
        t.succeeded("alice", None);
        assert!(t.begin("alice", None), "a success clears the name");
    }

    #[test]
    fn a_success_gives_its_attempt_back() {
        let t = LoginThrottle::default();
        let ip = Some("10.0.0.1".parse().unwrap());
        for _ in 0..10 * MAX_FAILURES {
            assert!(t.begin("alice", ip));
            t.succeeded("alice", ip);
        }
    }

    #[test]
    fn enrollment_failures_are_counted_per_address() {
        let t = enroll_throttle();
        let (a, b): (std::net::IpAddr, std::net::IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        for _ in 0..MAX_ENROLL_FAILURES {
            assert!(t.try_begin(&[a]));
        }
        assert!(!t.try_begin(&[a]));
        assert!(t.try_begin(&[b]));
        t.refund(&[b]);
    }
}
