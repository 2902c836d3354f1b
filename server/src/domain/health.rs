//! A machine's health: the worst status of its current check results.

/// Ordered from best to worst, so the worst of a set is its maximum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Health {
    /// No result that says anything (none yet, or all skipped).
    Unknown,
    Pass,
    Warn,
    /// A check could not run.
    Error,
    Fail,
}

crate::domain::text_enum!(Health { Unknown = "unknown", Pass = "pass", Warn = "warn", Error = "error", Fail = "fail" });

impl Health {
    /// A result status's contribution (`skipped` and unknown statuses say nothing).
    fn of_status(s: &str) -> Health {
        Health::parse(s).unwrap_or(Health::Unknown)
    }

    /// A machine's failing-result count and worst status over its current results.
    pub fn of_results<'a>(statuses: impl Iterator<Item = &'a str>) -> (i64, Health) {
        let mut failing = 0;
        let mut worst = Health::Unknown;
        for s in statuses {
            let h = Health::of_status(s);
            failing += i64::from(h == Health::Fail);
            worst = worst.max(h);
        }
        (failing, worst)
    }
}

/// A machine not heard from in this long is shown as offline.
pub const OFFLINE_AFTER_MS: i64 = 30 * 60 * 1000;

#[cfg(test)]
mod tests {
    use super::Health;

    #[test]
    fn worst_status_wins_and_fails_are_counted() {
        assert_eq!(Health::of_results(["pass", "warn", "fail", "fail"].into_iter()), (2, Health::Fail));
        assert_eq!(Health::of_results(["pass", "error", "warn"].into_iter()), (0, Health::Error));
        assert_eq!(Health::of_results(["pass", "skipped"].into_iter()), (0, Health::Pass));
        assert_eq!(Health::of_results(["skipped"].into_iter()), (0, Health::Unknown));
        assert_eq!(Health::of_results([].into_iter()), (0, Health::Unknown));
    }

    #[test]
    fn every_health_round_trips() {
        for h in Health::ALL {
            assert_eq!(Health::parse(h.as_str()), Some(h));
        }
        assert_eq!(Health::parse("skipped"), None);
    }
}
