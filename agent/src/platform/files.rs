//! Files, for configuration the agent reads and repairs (xrdp on Linux).
use std::path::{Path, PathBuf};

use super::PlatformResult;

pub trait Files: Send + Sync {
    /// `None` when the file does not exist.
    fn read(&self, path: &Path) -> PlatformResult<Option<Vec<u8>>>;
    /// Replaces the file atomically, keeping its permissions when it existed (`mode` otherwise).
    fn write(&self, path: &Path, bytes: &[u8], mode: u32) -> PlatformResult<()>;
    fn remove(&self, path: &Path) -> PlatformResult<()>;
    /// The target when `path` is a symbolic link.
    fn read_link(&self, path: &Path) -> PlatformResult<Option<PathBuf>>;
    /// Replaces `path` with a symbolic link to `target`.
    fn symlink(&self, target: &Path, path: &Path) -> PlatformResult<()>;
}

pub struct RealFiles;

impl Files for RealFiles {
    fn read(&self, path: &Path) -> PlatformResult<Option<Vec<u8>>> {
        match std::fs::read(path) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    fn write(&self, path: &Path, bytes: &[u8], mode: u32) -> PlatformResult<()> {
        use std::io::Write;
        let dir = path.parent().unwrap_or(Path::new("."));
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
        let tmp = dir.join(format!(".{name}.rdpfleet-tmp"));
        #[cfg(unix)]
        let mode =
            std::fs::metadata(path).map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions())).unwrap_or(mode);
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, mode);
        #[cfg(not(unix))]
        let _ = mode;
        let mut f = opts.open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        #[cfg(unix)]
        std::fs::set_permissions(&tmp, std::os::unix::fs::PermissionsExt::from_mode(mode))?;
        // Renaming over a symbolic link replaces the link, never the file it points to
        // (which may be shared, like Debian's snakeoil certificate).
        std::fs::rename(&tmp, path)?;
        Ok(())
    }

    fn remove(&self, path: &Path) -> PlatformResult<()> {
        match std::fs::remove_file(path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        }
    }

    fn read_link(&self, path: &Path) -> PlatformResult<Option<PathBuf>> {
        match std::fs::symlink_metadata(path) {
            Ok(m) if m.file_type().is_symlink() => Ok(Some(std::fs::read_link(path)?)),
            _ => Ok(None),
        }
    }

    fn symlink(&self, target: &Path, path: &Path) -> PlatformResult<()> {
        self.remove(path)?;
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(target, path)?;
            Ok(())
        }
        #[cfg(not(unix))]
        {
            let _ = target;
            Err(super::PlatformError::Unsupported("symbolic links"))
        }
    }
}
