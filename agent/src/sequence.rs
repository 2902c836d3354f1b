//! The report sequence number, persisted before each use so a number is never reused for
//! different content, even across restarts.
use std::path::{Path, PathBuf};

pub struct Sequence {
    path: PathBuf,
    next: u64,
}

impl Sequence {
    pub fn open(state_dir: &Path) -> std::io::Result<Sequence> {
        let path = state_dir.join("sequence");
        let next = match std::fs::read_to_string(&path) {
            Ok(t) => t.trim().parse::<u64>().map_err(|_| {
                std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{} is damaged", path.display()))
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 1,
            Err(e) => return Err(e),
        };
        Ok(Sequence { path, next: next.max(1) })
    }

    /// The number `take` will return next.
    pub fn peek(&self) -> u64 {
        self.next
    }

    /// Makes sure no number up to `used` is handed out again.
    pub fn advance_past(&mut self, used: u64) -> std::io::Result<()> {
        if used >= self.next {
            crate::fsutil::write_private(&self.path, (used + 1).to_string().as_bytes())?;
            self.next = used + 1;
        }
        Ok(())
    }

    /// Takes the next number; it is on disk before it is returned.
    pub fn take(&mut self) -> std::io::Result<u64> {
        let n = self.next;
        crate::fsutil::write_private(&self.path, (n + 1).to_string().as_bytes())?;
        self.next = n + 1;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_increase_across_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Sequence::open(dir.path()).unwrap();
        assert_eq!(s.take().unwrap(), 1);
        assert_eq!(s.take().unwrap(), 2);
        let mut s = Sequence::open(dir.path()).unwrap();
        assert_eq!(s.take().unwrap(), 3);
        s.advance_past(9).unwrap();
        s.advance_past(4).unwrap();
        assert_eq!(s.peek(), 10);
        assert_eq!(Sequence::open(dir.path()).unwrap().take().unwrap(), 10);
    }
}
