//! An in-memory platform for tests: a case-insensitive registry, services, files. Failures can
//! be injected to exercise the rollback paths.
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::registry::{RegValue, Registry};
use super::services::{ServiceState, Services};
use super::{Files, Platform, PlatformError, PlatformResult};

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[derive(Default)]
struct RegState {
    /// Lower-cased key path → the key's original spelling.
    keys: BTreeMap<String, String>,
    /// (lower key, lower value name) → (original name, value).
    values: BTreeMap<(String, String), (String, RegValue)>,
}

#[derive(Default)]
pub struct MemoryRegistry {
    state: Mutex<RegState>,
    /// Writes to keys under these (lower-cased) prefixes fail with access denied.
    pub deny_writes_under: Mutex<BTreeSet<String>>,
}

fn parents(key: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut acc = String::new();
    for part in key.split('\\') {
        if !acc.is_empty() {
            acc.push('\\');
        }
        acc.push_str(part);
        out.push(acc.clone());
    }
    out
}

impl MemoryRegistry {
    fn check_write(&self, key: &str) -> PlatformResult<()> {
        let k = key.to_lowercase();
        if lock(&self.deny_writes_under).iter().any(|p| k.starts_with(p.as_str())) {
            return Err(PlatformError::AccessDenied(key.to_owned()));
        }
        Ok(())
    }

    /// Every key and value, for comparing states exactly.
    pub fn snapshot(&self) -> (Vec<String>, Vec<(String, String, RegValue)>) {
        let s = lock(&self.state);
        (
            s.keys.keys().cloned().collect(),
            s.values.iter().map(|((k, n), (_, v))| (k.clone(), n.clone(), v.clone())).collect(),
        )
    }
}

impl Registry for MemoryRegistry {
    fn key_exists(&self, key: &str) -> PlatformResult<bool> {
        Ok(lock(&self.state).keys.contains_key(&key.to_lowercase()))
    }

    fn get(&self, key: &str, name: &str) -> PlatformResult<Option<RegValue>> {
        Ok(lock(&self.state).values.get(&(key.to_lowercase(), name.to_lowercase())).map(|(_, v)| v.clone()))
    }

    fn set(&self, key: &str, name: &str, value: &RegValue) -> PlatformResult<()> {
        self.check_write(key)?;
        let mut s = lock(&self.state);
        for p in parents(key) {
            s.keys.entry(p.to_lowercase()).or_insert(p);
        }
        s.values.insert((key.to_lowercase(), name.to_lowercase()), (name.to_owned(), value.clone()));
        Ok(())
    }

    fn create_key(&self, key: &str) -> PlatformResult<()> {
        self.check_write(key)?;
        let mut s = lock(&self.state);
        for p in parents(key) {
            s.keys.entry(p.to_lowercase()).or_insert(p);
        }
        Ok(())
    }

    fn delete_value(&self, key: &str, name: &str) -> PlatformResult<()> {
        self.check_write(key)?;
        lock(&self.state).values.remove(&(key.to_lowercase(), name.to_lowercase()));
        Ok(())
    }

    fn delete_tree(&self, key: &str) -> PlatformResult<()> {
        self.check_write(key)?;
        let k = key.to_lowercase();
        let prefix = format!("{k}\\");
        let mut s = lock(&self.state);
        s.keys.retain(|x, _| *x != k && !x.starts_with(&prefix));
        s.values.retain(|(x, _), _| *x != k && !x.starts_with(&prefix));
        Ok(())
    }

    fn export_tree(&self, key: &str) -> PlatformResult<Vec<(String, String, Option<RegValue>)>> {
        let k = key.to_lowercase();
        let prefix = format!("{k}\\");
        let s = lock(&self.state);
        let mut out = Vec::new();
        for (lower, original) in &s.keys {
            if *lower == k || lower.starts_with(&prefix) {
                let rel = original.get(key.len()..).unwrap_or("").trim_start_matches('\\').to_owned();
                let vals: Vec<_> = s.values.iter().filter(|((vk, _), _)| vk == lower).collect();
                if vals.is_empty() {
                    out.push((rel.clone(), String::new(), None));
                }
                for (_, (name, v)) in vals {
                    out.push((rel.clone(), name.clone(), Some(v.clone())));
                }
            }
        }
        Ok(out)
    }
}

#[derive(Default)]
pub struct MemoryServices {
    pub states: Mutex<HashMap<String, ServiceState>>,
    pub restarts: Mutex<Vec<String>>,
}

impl Services for MemoryServices {
    fn state(&self, name: &str) -> PlatformResult<ServiceState> {
        Ok(lock(&self.states).get(&name.to_lowercase()).copied().unwrap_or(ServiceState::NotInstalled))
    }
    fn restart(&self, name: &str) -> PlatformResult<()> {
        let mut states = lock(&self.states);
        match states.get(&name.to_lowercase()) {
            None | Some(ServiceState::NotInstalled) => Err(PlatformError::NotFound(name.to_owned())),
            Some(_) => {
                states.insert(name.to_lowercase(), ServiceState::Running);
                lock(&self.restarts).push(name.to_owned());
                Ok(())
            }
        }
    }
}

#[derive(Default)]
pub struct MemoryFiles {
    pub files: Mutex<HashMap<PathBuf, Vec<u8>>>,
    pub links: Mutex<HashMap<PathBuf, PathBuf>>,
}

impl Files for MemoryFiles {
    fn read(&self, path: &Path) -> PlatformResult<Option<Vec<u8>>> {
        Ok(lock(&self.files).get(path).cloned())
    }
    fn write(&self, path: &Path, bytes: &[u8], _mode: u32) -> PlatformResult<()> {
        lock(&self.links).remove(path);
        lock(&self.files).insert(path.to_owned(), bytes.to_vec());
        Ok(())
    }
    fn remove(&self, path: &Path) -> PlatformResult<()> {
        lock(&self.links).remove(path);
        lock(&self.files).remove(path);
        Ok(())
    }
    fn read_link(&self, path: &Path) -> PlatformResult<Option<PathBuf>> {
        Ok(lock(&self.links).get(path).cloned())
    }
    fn symlink(&self, target: &Path, path: &Path) -> PlatformResult<()> {
        let content = lock(&self.files).get(target).cloned();
        lock(&self.files).remove(path);
        if let Some(c) = content {
            lock(&self.files).insert(path.to_owned(), c);
        }
        lock(&self.links).insert(path.to_owned(), target.to_owned());
        Ok(())
    }
}

/// An in-memory platform and handles on its parts.
pub struct MemoryPlatform {
    pub registry: Arc<MemoryRegistry>,
    pub services: Arc<MemoryServices>,
    pub files: Arc<MemoryFiles>,
}

impl MemoryPlatform {
    pub fn new() -> MemoryPlatform {
        MemoryPlatform { registry: Arc::default(), services: Arc::default(), files: Arc::default() }
    }

    pub fn platform(&self) -> Platform {
        Platform { registry: self.registry.clone(), services: self.services.clone(), files: self.files.clone() }
    }
}

impl Default for MemoryPlatform {
    fn default() -> Self {
        MemoryPlatform::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_is_case_insensitive_and_trees_round_trip() {
        let r = MemoryRegistry::default();
        r.set(r"HKLM\Software\A\B", "Val", &RegValue::Dword(1)).unwrap();
        assert!(r.key_exists(r"hklm\software\a").unwrap());
        assert_eq!(r.get(r"HKLM\SOFTWARE\a\b", "val").unwrap(), Some(RegValue::Dword(1)));
        let export = r.export_tree(r"HKLM\Software\A").unwrap();
        assert_eq!(export, vec![("".into(), "".into(), None), ("B".into(), "Val".into(), Some(RegValue::Dword(1)))]);
        r.delete_tree(r"HKLM\Software\A").unwrap();
        assert!(!r.key_exists(r"HKLM\Software\A\B").unwrap());
        assert!(r.key_exists(r"HKLM\Software").unwrap());
    }
}
