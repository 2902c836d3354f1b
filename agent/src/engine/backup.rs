//! What a fix changed, recorded before it changes it, and the exact restore.
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::platform::firewall::{Category, Profile};
use crate::platform::{Platform, PlatformError, PlatformResult, RegValue};

/// One thing saved before a change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Saved {
    /// A registry value: its old value (`None`: it did not exist) and, when its key did not exist
    /// either, the topmost key that the change will create (deleted again on restore).
    RegistryValue { key: String, name: String, value: Option<RegValue>, created_key: Option<String> },
    /// A whole key tree, exported (`None`: the key did not exist).
    RegistryTree { key: String, entries: Option<Vec<(String, String, Option<RegValue>)>> },
    /// A file's content (`None`: it did not exist), or the target when it was a symbolic link.
    File { path: PathBuf, content: Option<Vec<u8>>, link: Option<PathBuf> },
    /// Every certificate of a store, exported with its properties (key link included).
    CertStore { store: String, certs: Vec<(String, Vec<u8>)> },
    /// A firewall rule group's state on one profile.
    FirewallGroup { group: String, profile: Profile, enabled: bool },
    /// A network's category.
    NetworkCategory { id: String, name: String, category: Category },
    /// Something that cannot be put back (a deleted secret), recorded for the audit trail.
    Irreversible { what: String },
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Backup {
    pub saved: Vec<Saved>,
}

impl Backup {
    pub fn registry_value(&mut self, p: &Platform, key: &str, name: &str) -> PlatformResult<()> {
        let value = p.registry.get(key, name)?;
        let mut created_key = None;
        if !p.registry.key_exists(key)? {
            // Walk down from the hive to the first missing key: that one and all below are new.
            let mut acc = String::new();
            for part in key.split('\\') {
                if !acc.is_empty() {
                    acc.push('\\');
                }
                acc.push_str(part);
                if !p.registry.key_exists(&acc)? {
                    created_key = Some(acc.clone());
                    break;
                }
            }
        }
        self.saved.push(Saved::RegistryValue { key: key.to_owned(), name: name.to_owned(), value, created_key });
        Ok(())
    }

    pub fn registry_tree(&mut self, p: &Platform, key: &str) -> PlatformResult<()> {
        let entries = if p.registry.key_exists(key)? { Some(p.registry.export_tree(key)?) } else { None };
        self.saved.push(Saved::RegistryTree { key: key.to_owned(), entries });
        Ok(())
    }

    pub fn file(&mut self, p: &Platform, path: &std::path::Path) -> PlatformResult<()> {
        let link = p.files.read_link(path)?;
        let content = if link.is_some() { None } else { p.files.read(path)? };
        self.saved.push(Saved::File { path: path.to_owned(), content, link });
        Ok(())
    }

    pub fn cert_store(&mut self, p: &Platform, store: &str) -> PlatformResult<()> {
        let mut certs = Vec::new();
        for c in p.certs.list(store)? {
            if let Some(element) = p.certs.export(store, &c.thumbprint)? {
                certs.push((c.thumbprint, element));
            }
        }
        self.saved.push(Saved::CertStore { store: store.to_owned(), certs });
        Ok(())
    }

    pub fn firewall_group(&mut self, p: &Platform, group: &str, profile: Profile) -> PlatformResult<()> {
        let enabled = p.firewall.group_enabled(group, profile)?;
        self.saved.push(Saved::FirewallGroup { group: group.to_owned(), profile, enabled });
        Ok(())
    }

    /// Whether every item can be restored.
    pub fn reversible(&self) -> bool {
        !self.saved.iter().any(|s| matches!(s, Saved::Irreversible { .. }))
    }

    /// Puts everything back as it was, newest change first, writing only what differs from the
    /// saved state (an item the fix never reached is left alone). Tries every item even when
    /// one fails, and reports the first failure.
    pub fn restore(&self, p: &Platform) -> PlatformResult<()> {
        let mut first_error = None;
        for item in self.saved.iter().rev() {
            if let Err(e) = restore_item(p, item) {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

fn restore_item(p: &Platform, item: &Saved) -> PlatformResult<()> {
    match item {
        Saved::RegistryValue { created_key: Some(created), .. } => {
            if p.registry.key_exists(created)? {
                p.registry.delete_tree(created)?;
            }
            Ok(())
        }
        Saved::RegistryValue { key, name, value, created_key: None } => {
            if p.registry.get(key, name)? == *value {
                return Ok(());
            }
            match value {
                Some(v) => p.registry.set(key, name, v),
                None => p.registry.delete_value(key, name),
            }
        }
        Saved::RegistryTree { key, entries } => {
            let now = if p.registry.key_exists(key)? { Some(p.registry.export_tree(key)?) } else { None };
            if now == *entries {
                return Ok(());
            }
            restore_tree(p, key, entries.as_deref())
        }
        Saved::File { path, content, link } => {
            let (now_link, now_content) = (p.files.read_link(path)?, p.files.read(path)?);
            match link {
                Some(target) if now_link.as_ref() != Some(target) => p.files.symlink(target, path),
                Some(_) => Ok(()),
                None if now_link.is_none() && now_content == *content => Ok(()),
                None => match content {
                    Some(c) => p.files.write(path, c, 0o600),
                    None => p.files.remove(path),
                },
            }
        }
        Saved::CertStore { store, certs } => restore_cert_store(p, store, certs),
        Saved::FirewallGroup { group, profile, enabled } => {
            if p.firewall.group_enabled(group, *profile)? != *enabled {
                p.firewall.set_group(group, *profile, *enabled)?;
            }
            Ok(())
        }
        Saved::NetworkCategory { id, category, .. } => {
            let now = p.networks.connected()?.into_iter().find(|n| n.id == *id);
            match now {
                Some(n) if n.category == *category => Ok(()),
                Some(_) => p.networks.set_category(id, *category),
                // A network that is gone has nothing to restore.
                None => Ok(()),
            }
        }
        Saved::Irreversible { what } => Err(PlatformError::Io(format!("cannot be restored: {what}"))),
    }
}

fn restore_cert_store(p: &Platform, store: &str, certs: &[(String, Vec<u8>)]) -> PlatformResult<()> {
    let now = p.certs.list(store)?;
    for c in &now {
        if !certs.iter().any(|(t, _)| *t == c.thumbprint) {
            p.certs.delete(store, &c.thumbprint)?;
        }
    }
    for (thumbprint, element) in certs {
        if !now.iter().any(|c| c.thumbprint == *thumbprint) {
            p.certs.import(store, element)?;
        }
    }
    Ok(())
}

fn restore_tree(p: &Platform, key: &str, entries: Option<&[(String, String, Option<RegValue>)]>) -> PlatformResult<()> {
    p.registry.delete_tree(key)?;
    for (rel, name, value) in entries.unwrap_or_default() {
        let full = if rel.is_empty() { key.to_owned() } else { format!("{key}\\{rel}") };
        match value {
            Some(v) => p.registry.set(&full, name, v)?,
            None => p.registry.create_key(&full)?,
        }
    }
    Ok(())
}
