//! The Windows registry, as checks and fixes see it. Keys are full paths with the hive,
//! e.g. `HKLM\SYSTEM\CurrentControlSet\Control\Terminal Server`.
use super::{PlatformError, PlatformResult};

/// Present on every Windows edition: its existence says the machine is Windows.
pub const TS_KEY: &str = r"HKLM\SYSTEM\CurrentControlSet\Control\Terminal Server";

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "type", content = "data", rename_all = "snake_case")]
pub enum RegValue {
    Dword(u32),
    Qword(u64),
    String(String),
    ExpandString(String),
    MultiString(Vec<String>),
    Binary(Vec<u8>),
}

impl RegValue {
    pub fn as_dword(&self) -> Option<u32> {
        match self {
            RegValue::Dword(v) => Some(*v),
            _ => None,
        }
    }
}

pub trait Registry: Send + Sync {
    fn key_exists(&self, key: &str) -> PlatformResult<bool>;
    /// Names of the key's direct subkeys; a missing key has none.
    fn subkeys(&self, key: &str) -> PlatformResult<Vec<String>>;
    /// `None` when the key or the value does not exist.
    fn get(&self, key: &str, name: &str) -> PlatformResult<Option<RegValue>>;
    /// Creates the key (and its parents) when missing.
    fn set(&self, key: &str, name: &str, value: &RegValue) -> PlatformResult<()>;
    /// Deleting a missing value is not an error.
    fn delete_value(&self, key: &str, name: &str) -> PlatformResult<()>;
    /// Creates the key (and its parents) when missing.
    fn create_key(&self, key: &str) -> PlatformResult<()>;
    /// Deletes the key and everything below it; a missing key is not an error.
    fn delete_tree(&self, key: &str) -> PlatformResult<()>;
    /// Every value under the key and its subkeys, as (relative subkey path, name, value), with
    /// empty subkeys listed as (path, "", None) so an export restores the shape exactly.
    fn export_tree(&self, key: &str) -> PlatformResult<Vec<(String, String, Option<RegValue>)>>;
}

/// Where there is no registry (Linux): every read says "absent", writes are refused.
pub struct NoRegistry;

impl Registry for NoRegistry {
    fn key_exists(&self, _: &str) -> PlatformResult<bool> {
        Ok(false)
    }
    fn subkeys(&self, _: &str) -> PlatformResult<Vec<String>> {
        Ok(vec![])
    }
    fn get(&self, _: &str, _: &str) -> PlatformResult<Option<RegValue>> {
        Ok(None)
    }
    fn set(&self, _: &str, _: &str, _: &RegValue) -> PlatformResult<()> {
        Err(PlatformError::Unsupported("registry"))
    }
    fn delete_value(&self, _: &str, _: &str) -> PlatformResult<()> {
        Err(PlatformError::Unsupported("registry"))
    }
    fn create_key(&self, _: &str) -> PlatformResult<()> {
        Err(PlatformError::Unsupported("registry"))
    }
    fn delete_tree(&self, _: &str) -> PlatformResult<()> {
        Err(PlatformError::Unsupported("registry"))
    }
    fn export_tree(&self, _: &str) -> PlatformResult<Vec<(String, String, Option<RegValue>)>> {
        Ok(vec![])
    }
}
