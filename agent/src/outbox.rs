//! Reports waiting for the server, kept on disk: they survive a restart or a crash of the agent
//! and are sent in order when the server is back. Bounded: when full, the oldest report is
//! dropped, and the number dropped is kept (on disk too) and sent with every report so the
//! server can show that this machine's history has a gap.
//!
//! One file per report, `<seq>.json`, written atomically (temporary file, fsync, rename), so a
//! crash leaves either the whole report or none of it.
use std::collections::VecDeque;
use std::path::{Path, PathBuf};

use rdpfleet_proto::report::ReportRequest;

use crate::fsutil::write_private;

const DROPPED_FILE: &str = "dropped";

pub struct Outbox {
    dir: PathBuf,
    /// Sequence numbers of the queued reports, oldest first.
    queued: VecDeque<u64>,
    capacity: usize,
    dropped: u64,
}

fn file_seq(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".json")?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

impl Outbox {
    /// Opens (creating) `state_dir/outbox`. Reports beyond `capacity` (after the setting was
    /// lowered) are dropped oldest first and counted.
    pub fn open(state_dir: &Path, capacity: usize) -> std::io::Result<Outbox> {
        let dir = state_dir.join("outbox");
        std::fs::create_dir_all(&dir)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))?;
        }
        let mut queued: Vec<u64> = Vec::new();
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            if let Some(seq) = entry.file_name().to_str().and_then(file_seq) {
                queued.push(seq);
            }
        }
        queued.sort_unstable();
        let dropped = match std::fs::read_to_string(dir.join(DROPPED_FILE)) {
            Ok(t) => t.trim().parse::<u64>().unwrap_or(0),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => return Err(e),
        };
        let mut outbox = Outbox { dir, queued: queued.into(), capacity: capacity.max(1), dropped };
        while outbox.queued.len() > outbox.capacity {
            outbox.drop_oldest()?;
        }
        Ok(outbox)
    }

    fn path_of(&self, seq: u64) -> PathBuf {
        self.dir.join(format!("{seq:020}.json"))
    }

    pub fn len(&self) -> usize {
        self.queued.len()
    }

    pub fn is_empty(&self) -> bool {
        self.queued.is_empty()
    }

    /// Reports dropped so far, over the agent's whole life on this machine.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// The highest sequence number queued.
    pub fn last_seq(&self) -> Option<u64> {
        self.queued.back().copied()
    }

    /// Counts `n` more reports as lost (the server refused them for good) and keeps the count.
    pub fn count_lost(&mut self, n: u64) -> std::io::Result<()> {
        self.dropped += n;
        write_private(&self.dir.join(DROPPED_FILE), self.dropped.to_string().as_bytes())
    }

    fn drop_oldest(&mut self) -> std::io::Result<()> {
        if let Some(seq) = self.queued.pop_front() {
            remove_if_present(&self.path_of(seq))?;
            self.count_lost(1)?;
            tracing::warn!(seq, dropped_total = self.dropped, "outbox full; dropped the oldest report");
        }
        Ok(())
    }

    /// Queues a report: it is on disk when this returns. Drops the oldest when full.
    pub fn push(&mut self, report: &ReportRequest) -> std::io::Result<()> {
        if self.queued.back().is_some_and(|&last| report.seq <= last) {
            return Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, "outbox sequence must increase"));
        }
        let bytes = serde_json::to_vec(report).map_err(std::io::Error::other)?;
        while self.queued.len() >= self.capacity {
            self.drop_oldest()?;
        }
        write_private(&self.path_of(report.seq), &bytes)?;
        self.queued.push_back(report.seq);
        Ok(())
    }

    /// The oldest queued report. A file that cannot be read back (damaged disk, edited by hand)
    /// is removed and counted as dropped rather than blocking every later report.
    pub fn front(&mut self) -> std::io::Result<Option<ReportRequest>> {
        while let Some(&seq) = self.queued.front() {
            let path = self.path_of(seq);
            let parsed = std::fs::read(&path)
                .map_err(|e| e.to_string())
                .and_then(|b| serde_json::from_slice::<ReportRequest>(&b).map_err(|e| e.to_string()));
            match parsed {
                Ok(r) if r.seq == seq => return Ok(Some(r)),
                Ok(_) => tracing::error!(path = %path.display(), "outbox file holds another report; dropping it"),
                Err(e) => tracing::error!(path = %path.display(), error = %e, "outbox file unreadable; dropping it"),
            }
            self.queued.pop_front();
            remove_if_present(&path)?;
            self.count_lost(1)?;
        }
        Ok(None)
    }

    /// Removes the oldest report (the server acknowledged it).
    pub fn pop_front(&mut self) -> std::io::Result<()> {
        if let Some(seq) = self.queued.pop_front() {
            remove_if_present(&self.path_of(seq))?;
        }
        Ok(())
    }
}

fn remove_if_present(path: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(seq: u64) -> ReportRequest {
        ReportRequest { seq, agent_version: None, dropped_reports: 0, results: vec![] }
    }

    #[test]
    fn reports_survive_reopen_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let mut o = Outbox::open(dir.path(), 10).unwrap();
        for seq in [3, 4, 9] {
            o.push(&report(seq)).unwrap();
        }
        drop(o);
        let mut o = Outbox::open(dir.path(), 10).unwrap();
        assert_eq!((o.len(), o.last_seq()), (3, Some(9)));
        let mut seen = vec![];
        while let Some(r) = o.front().unwrap() {
            seen.push(r.seq);
            o.pop_front().unwrap();
        }
        assert_eq!(seen, vec![3, 4, 9]);
        assert!(Outbox::open(dir.path(), 10).unwrap().is_empty());
    }

    #[test]
    fn full_outbox_drops_the_oldest_and_counts_across_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let mut o = Outbox::open(dir.path(), 2).unwrap();
        for seq in 1..=5 {
            o.push(&report(seq)).unwrap();
        }
        assert_eq!((o.len(), o.dropped()), (2, 3));
        assert_eq!(o.front().unwrap().unwrap().seq, 4);
        drop(o);
        // Lowering the capacity drops the excess at once.
        let o = Outbox::open(dir.path(), 1).unwrap();
        assert_eq!((o.len(), o.dropped(), o.last_seq()), (1, 4, Some(5)));
    }

    #[test]
    fn a_damaged_file_is_dropped_and_counted_not_a_block() {
        let dir = tempfile::tempdir().unwrap();
        let mut o = Outbox::open(dir.path(), 10).unwrap();
        o.push(&report(1)).unwrap();
        o.push(&report(2)).unwrap();
        std::fs::write(dir.path().join("outbox").join(format!("{:020}.json", 1)), b"{not json").unwrap();
        assert_eq!(o.front().unwrap().unwrap().seq, 2);
        assert_eq!(o.dropped(), 1);
    }

    #[test]
    fn sequence_must_increase_and_stray_files_are_ignored() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("outbox")).unwrap();
        std::fs::write(dir.path().join("outbox").join(".00000000000000000007.json.tmp"), b"half").unwrap();
        std::fs::write(dir.path().join("outbox").join("notes.txt"), b"x").unwrap();
        let mut o = Outbox::open(dir.path(), 10).unwrap();
        assert!(o.is_empty());
        o.push(&report(5)).unwrap();
        assert!(o.push(&report(5)).is_err());
        assert_eq!(o.len(), 1);
    }
}
