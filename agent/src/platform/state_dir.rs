//! Who may write to the agent's state directory. It holds the credential, the job journal, the
//! fixes' backups and the outbox; a backup planted there by an ordinary user would be restored as
//! SYSTEM (or root) on rollback, and under `C:\ProgramData` ordinary users may create files by
//! default. So a directory the agent creates is restricted to SYSTEM and Administrators (mode
//! 0700 elsewhere), and the agent refuses to run from one that lets anyone else write.
use std::path::Path;

use super::PlatformResult;

pub trait StateDirAccess: Send + Sync {
    /// Restricts `dir` to the system and administrators: on Windows a protected DACL (nothing
    /// inherited from the parent) granting full control to SYSTEM and Administrators only.
    fn protect(&self, dir: &Path) -> PlatformResult<()>;
    /// Everyone else who may create, change or delete files in `dir` (empty: nobody).
    fn other_writers(&self, dir: &Path) -> PlatformResult<Vec<String>>;
}

/// Unix permissions: the directory is the agent's alone.
pub struct UnixStateDir;

impl StateDirAccess for UnixStateDir {
    fn protect(&self, dir: &Path) -> PlatformResult<()> {
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
        }
        #[cfg(not(unix))]
        let _ = dir;
        Ok(())
    }

    fn other_writers(&self, dir: &Path) -> PlatformResult<Vec<String>> {
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir)?.permissions().mode();
            let mut who = Vec::new();
            if mode & 0o020 != 0 {
                who.push("its group (mode g+w)".to_owned());
            }
            if mode & 0o002 != 0 {
                who.push("everyone (mode o+w)".to_owned());
            }
            Ok(who)
        }
        #[cfg(not(unix))]
        {
            let _ = dir;
            Ok(vec![])
        }
    }
}

/// Creates the state directory, protected, when it does not exist (an existing one is left as
/// its owner set it, and judged by [`secure`]).
pub fn create_protected(access: &dyn StateDirAccess, dir: &Path) -> anyhow::Result<()> {
    if !dir.exists() {
        std::fs::create_dir_all(dir)
            .map_err(|e| anyhow::anyhow!("cannot create the state directory {}: {e}", dir.display()))?;
        access
            .protect(dir)
            .map_err(|e| anyhow::anyhow!("cannot restrict the new state directory {}: {e}", dir.display()))?;
    }
    Ok(())
}

/// [`create_protected`], then refuses a directory that others may write to, saying who and how
/// to repair it.
pub fn secure(access: &dyn StateDirAccess, dir: &Path) -> anyhow::Result<()> {
    create_protected(access, dir)?;
    let others = access
        .other_writers(dir)
        .map_err(|e| anyhow::anyhow!("cannot read who may write to {}: {e}", dir.display()))?;
    if !others.is_empty() {
        let repair = if cfg!(windows) {
            format!(
                "icacls \"{}\" /inheritance:r /grant:r *S-1-5-18:(OI)(CI)F *S-1-5-32-544:(OI)(CI)F /T",
                dir.display()
            )
        } else {
            format!("chmod 700 {}", dir.display())
        };
        anyhow::bail!(
            "refusing to run: the state directory {} can be written by {}. Its job journal and backups are \
             restored with the agent's privileges, so only SYSTEM/root and administrators may write there. \
             Restrict it (e.g. `{repair}`) or remove it and enroll again",
            dir.display(),
            others.join(", ")
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::memory::MemoryStateDir;

    #[test]
    fn a_new_directory_is_protected_and_an_open_one_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let access = MemoryStateDir::default();
        let dir = tmp.path().join("state");
        secure(&access, &dir).unwrap();
        assert_eq!(*access.protected.lock().unwrap(), vec![dir.clone()], "protected when created");
        // Someone widened it afterwards (or it existed so): refused, naming who.
        access.writers.lock().unwrap().insert(dir.clone(), vec!["S-1-5-32-545".into()]);
        let e = secure(&access, &dir).unwrap_err().to_string();
        assert!(e.contains("S-1-5-32-545") && e.contains("refusing"), "{e}");
        assert_eq!(access.protected.lock().unwrap().len(), 1, "an existing directory is not silently changed");
    }

    #[cfg(unix)]
    #[test]
    fn unix_modes_that_let_others_write_are_refused() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("state");
        secure(&UnixStateDir, &dir).unwrap();
        assert_eq!(std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777, 0o700);
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        let e = secure(&UnixStateDir, &dir).unwrap_err().to_string();
        assert!(e.contains("everyone") && e.contains("group"), "{e}");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        secure(&UnixStateDir, &dir).unwrap();
    }
}
