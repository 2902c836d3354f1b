//! Each machine's current results as this process last stored them, so that storing a report
//! need not read them back from the database first.
//!
//! An entry is tagged with the machine's report high-water mark it was written at, and a batch
//! uses it only when the database still holds that mark (read, and on PostgreSQL locked, in the
//! batch's own transaction). Anything else that stored a report for the machine — another
//! replica, another process, a transaction that rolled back after the entry was made — moves
//! or keeps the mark so that the entry no longer matches, and the batch reads the database.
//! Entries are made only after their transaction committed.
use std::collections::HashMap;
use std::sync::Mutex;

use uuid::Uuid;

use super::report_plan::{Current, CurrentResults};

/// A bound on memory (an entry is about 32 bytes per result: some 80 MB for 100,000 machines
/// of 25 results). Machines beyond it are read from the database each time.
const MAX_MACHINES: usize = 250_000;

#[derive(Debug, Default)]
pub(crate) struct CurrentCache {
    machines: Mutex<HashMap<Uuid, Entry>>,
}

#[derive(Debug)]
struct Entry {
    seq: i64,
    results: Box<[(u64, Current)]>,
}

impl CurrentCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, Entry>> {
        self.machines.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The machine's current results, if this cache holds them as of high-water mark `seq`.
    pub(super) fn get(&self, machine: Uuid, seq: i64) -> Option<CurrentResults> {
        let machines = self.lock();
        let entry = machines.get(&machine).filter(|e| e.seq == seq)?;
        Some(entry.results.iter().copied().collect())
    }

    /// Records a machine's current results as of `seq`, once the transaction that stored them
    /// has committed. An older `seq` than the entry's is ignored (two writers finishing out of
    /// order on PostgreSQL).
    pub(super) fn put(&self, machine: Uuid, seq: i64, current: &CurrentResults) {
        let results: Box<[(u64, Current)]> = current.iter().map(|(k, c)| (*k, *c)).collect();
        let mut machines = self.lock();
        if let Some(e) = machines.get_mut(&machine) {
            if e.seq <= seq {
                *e = Entry { seq, results };
            }
        } else if machines.len() < MAX_MACHINES {
            machines.insert(machine, Entry { seq, results });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::report_plan::{CauseFingerprint, result_key};
    use rdpfleet_proto::check::CheckStatus;

    fn current(status: CheckStatus) -> CurrentResults {
        let mut c = CurrentResults::new();
        c.insert(result_key("a", ""), Current { status, since: 1, cause: CauseFingerprint::of(None), path: None });
        c
    }

    #[test]
    fn an_entry_counts_only_at_its_own_mark() {
        let cache = CurrentCache::default();
        let m = Uuid::new_v4();
        assert!(cache.get(m, 0).is_none());
        cache.put(m, 3, &current(CheckStatus::Fail));
        assert_eq!(cache.get(m, 3), Some(current(CheckStatus::Fail)));
        // Someone else stored report 4: the entry is stale.
        assert!(cache.get(m, 4).is_none());
        // A writer finishing late with an older report does not replace a newer entry.
        cache.put(m, 2, &current(CheckStatus::Pass));
        assert_eq!(cache.get(m, 3), Some(current(CheckStatus::Fail)));
        cache.put(m, 5, &current(CheckStatus::Pass));
        assert_eq!(cache.get(m, 5), Some(current(CheckStatus::Pass)));
    }
}
