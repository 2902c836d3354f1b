//! An in-memory platform for tests: a case-insensitive registry, services, files. Failures can
//! be injected to exercise the rollback paths.
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use std::time::Duration;

use super::certstore::{CertStore, StoredCert};
use super::credentials::{Credentials, SavedCredential};
use super::eventlog::EventLog;
use super::firewall::{Category, Firewall, InboundRule, Network, Networks, Profile};
use super::registry::{RegValue, Registry};
use super::services::{ServiceState, Services};
use super::{Files, Platform, PlatformError, PlatformResult};
use crate::evidence::Event;

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

    fn subkeys(&self, key: &str) -> PlatformResult<Vec<String>> {
        let prefix = format!("{}\\", key.to_lowercase());
        let s = lock(&self.state);
        Ok(s.keys
            .iter()
            .filter_map(|(lower, original)| {
                let rest = lower.strip_prefix(&prefix)?;
                (!rest.contains('\\'))
                    .then(|| original.get(original.len().saturating_sub(rest.len())..).unwrap_or(rest).to_owned())
            })
            .collect())
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

/// Runs when a service (re)starts: how a test makes "restart TermService" regenerate a
/// certificate, as Windows does.
pub type StartHook = Box<dyn Fn() + Send + Sync>;

#[derive(Default)]
pub struct MemoryServices {
    pub states: Mutex<HashMap<String, ServiceState>>,
    pub restarts: Mutex<Vec<String>>,
    pub on_start: Mutex<HashMap<String, StartHook>>,
}

impl MemoryServices {
    pub fn set(&self, name: &str, state: ServiceState) {
        lock(&self.states).insert(name.to_lowercase(), state);
    }

    fn transition(&self, name: &str, to: ServiceState) -> PlatformResult<()> {
        {
            let mut states = lock(&self.states);
            match states.get(&name.to_lowercase()) {
                None | Some(ServiceState::NotInstalled) => return Err(PlatformError::NotFound(name.to_owned())),
                Some(_) => states.insert(name.to_lowercase(), to),
            };
        }
        if to == ServiceState::Running {
            if let Some(hook) = lock(&self.on_start).get(&name.to_lowercase()) {
                hook();
            }
        }
        Ok(())
    }
}

impl Services for MemoryServices {
    fn state(&self, name: &str) -> PlatformResult<ServiceState> {
        Ok(lock(&self.states).get(&name.to_lowercase()).copied().unwrap_or(ServiceState::NotInstalled))
    }
    fn restart(&self, name: &str) -> PlatformResult<()> {
        self.transition(name, ServiceState::Running)?;
        lock(&self.restarts).push(name.to_owned());
        Ok(())
    }
    fn start(&self, name: &str) -> PlatformResult<()> {
        if self.state(name)? == ServiceState::Running {
            return Ok(());
        }
        self.transition(name, ServiceState::Running)
    }
    fn stop(&self, name: &str) -> PlatformResult<()> {
        self.transition(name, ServiceState::Stopped)
    }
}

/// Certificate stores: store name (lower case) → certificates.
#[derive(Default)]
pub struct MemoryCertStore {
    pub stores: Mutex<HashMap<String, Vec<StoredCert>>>,
}

impl MemoryCertStore {
    pub fn add(&self, store: &str, der: Vec<u8>, has_private_key: bool) -> String {
        let thumbprint = super::certstore::thumbprint(&der);
        let mut stores = lock(&self.stores);
        let certs = stores.entry(store.to_lowercase()).or_default();
        certs.retain(|c| c.thumbprint != thumbprint);
        certs.push(StoredCert { thumbprint: thumbprint.clone(), der, has_private_key });
        thumbprint
    }
}

impl CertStore for MemoryCertStore {
    fn list(&self, store: &str) -> PlatformResult<Vec<StoredCert>> {
        Ok(lock(&self.stores).get(&store.to_lowercase()).cloned().unwrap_or_default())
    }
    fn export(&self, store: &str, thumbprint: &str) -> PlatformResult<Option<Vec<u8>>> {
        let found = self.list(store)?.into_iter().find(|c| c.thumbprint == thumbprint);
        Ok(found.map(|c| {
            let mut element = vec![u8::from(c.has_private_key)];
            element.extend(c.der);
            element
        }))
    }
    fn import(&self, store: &str, element: &[u8]) -> PlatformResult<()> {
        let (key, der) = element.split_first().ok_or_else(|| PlatformError::Io("empty certificate element".into()))?;
        self.add(store, der.to_vec(), *key == 1);
        Ok(())
    }
    fn delete(&self, store: &str, thumbprint: &str) -> PlatformResult<()> {
        if let Some(certs) = lock(&self.stores).get_mut(&store.to_lowercase()) {
            certs.retain(|c| c.thumbprint != thumbprint);
        }
        Ok(())
    }
}

/// Firewall profiles, rule groups and networks.
pub struct MemoryFirewall {
    pub active: Mutex<Vec<Profile>>,
    pub disabled_profiles: Mutex<BTreeSet<Profile>>,
    /// (group, profile) pairs that are enabled.
    pub groups: Mutex<BTreeSet<(String, Profile)>>,
    pub rules: Mutex<Vec<InboundRule>>,
    pub networks: Mutex<Vec<Network>>,
    /// Set: every call fails as on Wine (E_NOTIMPL).
    pub broken: std::sync::atomic::AtomicBool,
}

impl Default for MemoryFirewall {
    fn default() -> Self {
        MemoryFirewall {
            active: Mutex::new(vec![Profile::Private]),
            disabled_profiles: Mutex::default(),
            groups: Mutex::default(),
            rules: Mutex::default(),
            networks: Mutex::default(),
            broken: std::sync::atomic::AtomicBool::new(false),
        }
    }
}

impl MemoryFirewall {
    fn check(&self) -> PlatformResult<()> {
        if self.broken.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(PlatformError::Io("not implemented (0x80004001)".into()));
        }
        Ok(())
    }
}

impl Firewall for MemoryFirewall {
    fn active_profiles(&self) -> PlatformResult<Vec<Profile>> {
        self.check()?;
        Ok(lock(&self.active).clone())
    }
    fn profile_enabled(&self, profile: Profile) -> PlatformResult<bool> {
        self.check()?;
        Ok(!lock(&self.disabled_profiles).contains(&profile))
    }
    fn group_enabled(&self, group: &str, profile: Profile) -> PlatformResult<bool> {
        self.check()?;
        Ok(lock(&self.groups).contains(&(group.to_owned(), profile)))
    }
    fn set_group(&self, group: &str, profile: Profile, enabled: bool) -> PlatformResult<()> {
        self.check()?;
        let mut groups = lock(&self.groups);
        if enabled {
            groups.insert((group.to_owned(), profile));
        } else {
            groups.remove(&(group.to_owned(), profile));
        }
        // The group's rules follow, as on Windows.
        for r in lock(&self.rules).iter_mut().filter(|r| r.group == group) {
            r.profiles = if enabled { r.profiles | profile.bit() } else { r.profiles & !profile.bit() };
            r.enabled = r.profiles != 0;
        }
        Ok(())
    }
    fn inbound_rules(&self) -> PlatformResult<Vec<InboundRule>> {
        self.check()?;
        Ok(lock(&self.rules).clone())
    }
}

impl Networks for MemoryFirewall {
    fn connected(&self) -> PlatformResult<Vec<Network>> {
        self.check()?;
        Ok(lock(&self.networks).clone())
    }
    fn set_category(&self, id: &str, category: Category) -> PlatformResult<()> {
        self.check()?;
        let mut nets = lock(&self.networks);
        let net = nets.iter_mut().find(|n| n.id == id).ok_or_else(|| PlatformError::NotFound(id.to_owned()))?;
        net.category = category;
        // The active profile follows the category.
        let profiles: BTreeSet<Profile> = nets
            .iter()
            .map(|n| match n.category {
                Category::Public => Profile::Public,
                Category::Private => Profile::Private,
                Category::DomainAuthenticated => Profile::Domain,
            })
            .collect();
        *lock(&self.active) = profiles.into_iter().collect();
        Ok(())
    }
}

/// Events per channel; queries filter by id (the time window is the caller's to honour).
#[derive(Default)]
pub struct MemoryEventLog {
    pub channels: Mutex<HashMap<String, Vec<Event>>>,
    pub unavailable: std::sync::atomic::AtomicBool,
}

impl EventLog for MemoryEventLog {
    fn query(&self, channel: &str, ids: &[u32], _window: Duration, limit: usize) -> PlatformResult<Vec<Event>> {
        if self.unavailable.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(PlatformError::Unsupported("Windows event log"));
        }
        let all = lock(&self.channels).get(channel).cloned().unwrap_or_default();
        let mut v: Vec<Event> = all.into_iter().filter(|e| ids.contains(&e.id)).collect();
        let skip = v.len().saturating_sub(limit);
        v.drain(..skip);
        Ok(v)
    }
}

#[derive(Default)]
pub struct MemoryCredentials {
    pub saved: Mutex<Vec<SavedCredential>>,
}

impl Credentials for MemoryCredentials {
    fn list(&self, prefix: &str) -> PlatformResult<Vec<SavedCredential>> {
        let prefix = prefix.to_lowercase();
        Ok(lock(&self.saved).iter().filter(|c| c.target.to_lowercase().starts_with(&prefix)).cloned().collect())
    }
    fn delete(&self, target: &str) -> PlatformResult<()> {
        lock(&self.saved).retain(|c| !c.target.eq_ignore_ascii_case(target));
        Ok(())
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
#[derive(Default)]
pub struct MemoryPlatform {
    pub registry: Arc<MemoryRegistry>,
    pub services: Arc<MemoryServices>,
    pub files: Arc<MemoryFiles>,
    pub certs: Arc<MemoryCertStore>,
    pub firewall: Arc<MemoryFirewall>,
    pub events: Arc<MemoryEventLog>,
    pub credentials: Arc<MemoryCredentials>,
    pub state_dir: Arc<MemoryStateDir>,
}

/// Directory ACLs as a map from directory to the accounts other than SYSTEM and Administrators
/// that may write to it; `protect` empties the entry.
#[derive(Default)]
pub struct MemoryStateDir {
    pub writers: Mutex<std::collections::HashMap<std::path::PathBuf, Vec<String>>>,
    pub protected: Mutex<Vec<std::path::PathBuf>>,
}

impl super::StateDirAccess for MemoryStateDir {
    fn protect(&self, dir: &std::path::Path) -> PlatformResult<()> {
        self.writers.lock().unwrap_or_else(|p| p.into_inner()).remove(dir);
        self.protected.lock().unwrap_or_else(|p| p.into_inner()).push(dir.to_owned());
        Ok(())
    }
    fn other_writers(&self, dir: &std::path::Path) -> PlatformResult<Vec<String>> {
        Ok(self.writers.lock().unwrap_or_else(|p| p.into_inner()).get(dir).cloned().unwrap_or_default())
    }
}

impl MemoryPlatform {
    pub fn new() -> MemoryPlatform {
        MemoryPlatform::default()
    }

    pub fn platform(&self) -> Platform {
        Platform {
            registry: self.registry.clone(),
            services: self.services.clone(),
            files: self.files.clone(),
            certs: self.certs.clone(),
            firewall: self.firewall.clone(),
            networks: self.firewall.clone(),
            events: self.events.clone(),
            credentials: self.credentials.clone(),
            state_dir: self.state_dir.clone(),
        }
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
