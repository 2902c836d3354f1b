//! Credential Manager (CredEnumerateW / CredDeleteW) of the account the agent runs as.
use windows::Win32::Security::Credentials::{
    CRED_ENUMERATE_FLAGS, CRED_TYPE, CREDENTIALW, CredDeleteW, CredEnumerateW, CredFree,
};
use windows::core::PCWSTR;

use super::{wide, win_error};
use crate::platform::credentials::{Credentials, SavedCredential};
use crate::platform::{PlatformError, PlatformResult};

pub struct WindowsCredentials;

/// Unix seconds from a FILETIME (100 ns ticks since 1601).
fn unix_seconds(ft: windows::Win32::Foundation::FILETIME) -> Option<i64> {
    let ticks = (u64::from(ft.dwHighDateTime) << 32) | u64::from(ft.dwLowDateTime);
    (ticks != 0).then(|| (ticks / 10_000_000) as i64 - 11_644_473_600)
}

fn text(p: windows::core::PWSTR) -> String {
    if p.is_null() { String::new() } else { unsafe { p.to_string() }.unwrap_or_default() }
}

/// (target, type) of every credential matching the filter.
fn enumerate(filter: &str) -> PlatformResult<Vec<(SavedCredential, CRED_TYPE)>> {
    let f = wide(filter);
    let mut count = 0u32;
    let mut list: *mut *mut CREDENTIALW = std::ptr::null_mut();
    match unsafe { CredEnumerateW(PCWSTR(f.as_ptr()), Some(CRED_ENUMERATE_FLAGS(0)), &mut count, &mut list) } {
        Ok(()) => {}
        // ERROR_NOT_FOUND: nothing matches.
        Err(e) if matches!(win_error("", &e), PlatformError::NotFound(_)) => return Ok(vec![]),
        Err(e) => return Err(win_error("CredEnumerateW", &e)),
    }
    let mut out = Vec::with_capacity(count as usize);
    for i in 0..count as usize {
        // Wine packs the returned block without aligning it: read every field unaligned.
        let c: CREDENTIALW =
            unsafe { std::ptr::read_unaligned(std::ptr::read_unaligned(list.add(i).cast_const()).cast_const()) };
        out.push((
            SavedCredential {
                target: text(c.TargetName),
                user: text(c.UserName),
                last_written: unix_seconds(c.LastWritten),
            },
            c.Type,
        ));
    }
    unsafe { CredFree(list as *const _) };
    Ok(out)
}

impl Credentials for WindowsCredentials {
    fn list(&self, prefix: &str) -> PlatformResult<Vec<SavedCredential>> {
        Ok(enumerate(&format!("{prefix}*"))?.into_iter().map(|(c, _)| c).collect())
    }

    fn delete(&self, target: &str) -> PlatformResult<()> {
        for (c, kind) in enumerate(target)? {
            if !c.target.eq_ignore_ascii_case(target) {
                continue;
            }
            let t = wide(&c.target);
            match unsafe { CredDeleteW(PCWSTR(t.as_ptr()), kind, None) } {
                Ok(()) => {}
                Err(e) if matches!(win_error("", &e), PlatformError::NotFound(_)) => {}
                Err(e) => return Err(win_error(&format!("delete credential {target}"), &e)),
            }
        }
        Ok(())
    }
}

/// Saves a credential as the RDP client does (tests).
#[cfg(test)]
pub(crate) fn save_for_test(target: &str, user: &str) -> PlatformResult<()> {
    use windows::Win32::Security::Credentials::{CRED_PERSIST_LOCAL_MACHINE, CRED_TYPE_GENERIC, CredWriteW};
    use windows::core::PWSTR;
    let (mut t, mut u) = (wide(target), wide(user));
    let mut secret = b"s\0e\0c\0r\0e\0t\0".to_vec();
    let cred = CREDENTIALW {
        Type: CRED_TYPE_GENERIC,
        TargetName: PWSTR(t.as_mut_ptr()),
        UserName: PWSTR(u.as_mut_ptr()),
        CredentialBlobSize: secret.len() as u32,
        CredentialBlob: secret.as_mut_ptr(),
        Persist: CRED_PERSIST_LOCAL_MACHINE,
        ..Default::default()
    };
    unsafe { CredWriteW(&cred, 0) }.map_err(|e| win_error("CredWriteW", &e))
}
