//! What a fix changed, recorded before it changes it, and the exact restore.
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::platform::{Platform, PlatformResult, RegValue};

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
    }
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
