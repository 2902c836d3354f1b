//! The real Windows registry (`winreg`). Paths start with the hive: `HKLM\...`, `HKCU\...`.
use winreg::RegKey;
use winreg::enums::{
    HKEY_CLASSES_ROOT, HKEY_CURRENT_USER, HKEY_LOCAL_MACHINE, HKEY_USERS, KEY_READ, KEY_WRITE, REG_BINARY, REG_DWORD,
    REG_EXPAND_SZ, REG_MULTI_SZ, REG_QWORD, REG_SZ,
};

use crate::platform::registry::{RegValue, Registry};
use crate::platform::{PlatformError, PlatformResult};

pub struct WindowsRegistry;

fn split(path: &str) -> PlatformResult<(RegKey, &str)> {
    let (hive, rest) = path.split_once('\\').unwrap_or((path, ""));
    let root = match hive.to_ascii_uppercase().as_str() {
        "HKLM" | "HKEY_LOCAL_MACHINE" => HKEY_LOCAL_MACHINE,
        "HKCU" | "HKEY_CURRENT_USER" => HKEY_CURRENT_USER,
        "HKU" | "HKEY_USERS" => HKEY_USERS,
        "HKCR" | "HKEY_CLASSES_ROOT" => HKEY_CLASSES_ROOT,
        _ => return Err(PlatformError::NotFound(format!("unknown registry hive in {path}"))),
    };
    Ok((RegKey::predef(root), rest))
}

fn is_missing(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::NotFound
}

fn utf16(s: &str, multi: bool) -> Vec<u8> {
    let mut units: Vec<u16> = s.encode_utf16().collect();
    units.push(0);
    if multi {
        units.push(0);
    }
    units.iter().flat_map(|u| u.to_le_bytes()).collect()
}

fn from_utf16(bytes: &[u8]) -> Vec<String> {
    let units: Vec<u16> = bytes.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect();
    units.split(|u| *u == 0).filter(|s| !s.is_empty()).map(String::from_utf16_lossy).collect()
}

fn decode(v: &winreg::RegValue) -> RegValue {
    let b = &v.bytes;
    match v.vtype {
        REG_DWORD if b.len() >= 4 => RegValue::Dword(u32::from_le_bytes([b[0], b[1], b[2], b[3]])),
        REG_QWORD if b.len() >= 8 => {
            RegValue::Qword(u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]))
        }
        REG_SZ => RegValue::String(from_utf16(b).into_iter().next().unwrap_or_default()),
        REG_EXPAND_SZ => RegValue::ExpandString(from_utf16(b).into_iter().next().unwrap_or_default()),
        REG_MULTI_SZ => RegValue::MultiString(from_utf16(b)),
        _ => RegValue::Binary(b.clone()),
    }
}

fn encode(v: &RegValue) -> winreg::RegValue {
    let (bytes, vtype) = match v {
        RegValue::Dword(x) => (x.to_le_bytes().to_vec(), REG_DWORD),
        RegValue::Qword(x) => (x.to_le_bytes().to_vec(), REG_QWORD),
        RegValue::String(s) => (utf16(s, false), REG_SZ),
        RegValue::ExpandString(s) => (utf16(s, false), REG_EXPAND_SZ),
        RegValue::MultiString(v) => {
            let mut b: Vec<u8> = v.iter().flat_map(|s| utf16(s, false)).collect();
            b.extend_from_slice(&[0, 0]);
            (b, REG_MULTI_SZ)
        }
        RegValue::Binary(b) => (b.clone(), REG_BINARY),
    };
    winreg::RegValue { bytes, vtype }
}

impl Registry for WindowsRegistry {
    fn key_exists(&self, key: &str) -> PlatformResult<bool> {
        let (root, rest) = split(key)?;
        match root.open_subkey_with_flags(rest, KEY_READ) {
            Ok(_) => Ok(true),
            Err(e) if is_missing(&e) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    fn subkeys(&self, key: &str) -> PlatformResult<Vec<String>> {
        let (root, rest) = split(key)?;
        match root.open_subkey_with_flags(rest, KEY_READ) {
            Ok(k) => Ok(k.enum_keys().collect::<Result<_, _>>()?),
            Err(e) if is_missing(&e) => Ok(vec![]),
            Err(e) => Err(e.into()),
        }
    }

    fn get(&self, key: &str, name: &str) -> PlatformResult<Option<RegValue>> {
        let (root, rest) = split(key)?;
        let k = match root.open_subkey_with_flags(rest, KEY_READ) {
            Ok(k) => k,
            Err(e) if is_missing(&e) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        match k.get_raw_value(name) {
            Ok(v) => Ok(Some(decode(&v))),
            Err(e) if is_missing(&e) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    fn set(&self, key: &str, name: &str, value: &RegValue) -> PlatformResult<()> {
        let (root, rest) = split(key)?;
        let (k, _) = root.create_subkey(rest)?;
        Ok(k.set_raw_value(name, &encode(value))?)
    }

    fn create_key(&self, key: &str) -> PlatformResult<()> {
        let (root, rest) = split(key)?;
        root.create_subkey(rest)?;
        Ok(())
    }

    fn delete_value(&self, key: &str, name: &str) -> PlatformResult<()> {
        let (root, rest) = split(key)?;
        let k = match root.open_subkey_with_flags(rest, KEY_READ | KEY_WRITE) {
            Ok(k) => k,
            Err(e) if is_missing(&e) => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        match k.delete_value(name) {
            Err(e) if !is_missing(&e) => Err(e.into()),
            _ => Ok(()),
        }
    }

    fn delete_tree(&self, key: &str) -> PlatformResult<()> {
        let (root, rest) = split(key)?;
        match root.delete_subkey_all(rest) {
            Err(e) if !is_missing(&e) => Err(e.into()),
            _ => Ok(()),
        }
    }

    fn export_tree(&self, key: &str) -> PlatformResult<Vec<(String, String, Option<RegValue>)>> {
        let (root, rest) = split(key)?;
        let mut out = Vec::new();
        // Collect first, then recurse: never modify or re-open while enumerating.
        let mut pending = vec![String::new()];
        while let Some(rel) = pending.pop() {
            let path = if rel.is_empty() { rest.to_owned() } else { format!("{rest}\\{rel}") };
            let k = root.open_subkey_with_flags(&path, KEY_READ)?;
            let values: Vec<(String, winreg::RegValue)> = k.enum_values().collect::<Result<_, _>>()?;
            if values.is_empty() {
                out.push((rel.clone(), String::new(), None));
            }
            for (name, v) in values {
                out.push((rel.clone(), name, Some(decode(&v))));
            }
            let subkeys: Vec<String> = k.enum_keys().collect::<Result<_, _>>()?;
            for s in subkeys.into_iter().rev() {
                pending.push(if rel.is_empty() { s } else { format!("{rel}\\{s}") });
            }
        }
        // The registry is case-insensitive: order as the in-memory registry does.
        out.sort_by_key(|a| (a.0.to_lowercase(), a.1.to_lowercase()));
        Ok(out)
    }
}
