//! Files only the agent's account may read.
use std::io::Write;
use std::path::Path;

/// Writes `bytes` to `path` atomically (temp file, fsync, rename) with mode 0600 on Unix.
/// On Windows the file inherits the state directory's ACL, which the installer restricts to
/// SYSTEM and Administrators.
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let existed = dir.exists();
    std::fs::create_dir_all(dir)?;
    #[cfg(unix)]
    if !existed {
        // A state directory we create is ours alone; an existing one is left as its owner set it.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    #[cfg(not(unix))]
    let _ = existed;
    let file_name = path.file_name().and_then(|n| n.to_str()).unwrap_or("state");
    let tmp = dir.join(format!(".{file_name}.tmp"));
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts.open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path)
}

/// Whether the agent can create its files in `dir` (made if missing): a probe file is written
/// the way the credential will be, then removed.
pub fn check_writable(dir: &Path) -> std::io::Result<()> {
    let probe = dir.join(".write-test");
    write_private(&probe, b"rdpfleet")?;
    std::fs::remove_file(&probe)
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_writable_directory_passes_and_a_file_in_the_way_fails() {
        let dir = tempfile::tempdir().unwrap();
        super::check_writable(&dir.path().join("state")).unwrap();
        assert!(!dir.path().join("state/.write-test").exists(), "the probe is removed");
        std::fs::write(dir.path().join("blocked"), b"x").unwrap();
        assert!(super::check_writable(&dir.path().join("blocked")).is_err(), "a file where the directory should be");
    }
}
