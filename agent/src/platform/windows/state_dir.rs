//! The state directory's DACL: set protected (SYSTEM and Administrators, full control, inherited
//! by everything below) when the agent creates it, and read back to refuse a directory others
//! may write to. Besides SYSTEM and Administrators, the agent's own account may write (it is the
//! one restoring backups). Wine maps a DACL to Unix mode bits (owner = the process's account,
//! world = Everyone), which is what its test can read back.
use std::ffi::c_void;
use std::path::Path;

use windows::Win32::Foundation::{CloseHandle, ERROR_SUCCESS, HANDLE, HLOCAL, LocalFree};
use windows::Win32::Security::Authorization::{
    ConvertSidToStringSidW, ConvertStringSecurityDescriptorToSecurityDescriptorW, GetNamedSecurityInfoW,
    SDDL_REVISION_1, SE_FILE_OBJECT, SetNamedSecurityInfoW,
};
use windows::Win32::Security::{
    ACCESS_ALLOWED_ACE, ACE_HEADER, ACL, ACL_SIZE_INFORMATION, AclSizeInformation, DACL_SECURITY_INFORMATION, EqualSid,
    GetAce, GetAclInformation, GetSecurityDescriptorDacl, GetTokenInformation, IsWellKnownSid,
    PROTECTED_DACL_SECURITY_INFORMATION, PSECURITY_DESCRIPTOR, PSID, TOKEN_QUERY, TOKEN_USER, TokenUser,
    UNPROTECTED_DACL_SECURITY_INFORMATION, WinBuiltinAdministratorsSid, WinCreatorOwnerSid, WinLocalSystemSid,
};
use windows::Win32::System::Threading::{GetCurrentProcess, OpenProcessToken};
use windows::core::{BOOL, PCWSTR, PWSTR};

use super::{wide, win_error};
use crate::platform::{PlatformError, PlatformResult, StateDirAccess};

/// Full control for SYSTEM and Administrators, on the directory and inherited by its files and
/// subdirectories; `P` protects it from the parent's inheritable entries.
const PROTECTED_SDDL: &str = "D:P(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)";

/// Rights that let someone add, change or delete files, or change who may: FILE_WRITE_DATA /
/// ADD_FILE, FILE_APPEND_DATA / ADD_SUBDIRECTORY, FILE_WRITE_EA, FILE_DELETE_CHILD,
/// FILE_WRITE_ATTRIBUTES, DELETE, WRITE_DAC, WRITE_OWNER, GENERIC_ALL, GENERIC_WRITE.
const WRITE_RIGHTS: u32 = 0x2 | 0x4 | 0x10 | 0x40 | 0x100 | 0x1_0000 | 0x4_0000 | 0x8_0000 | 0x1000_0000 | 0x4000_0000;
const ACCESS_ALLOWED_ACE_TYPE: u8 = 0;

/// Frees memory the security APIs allocated with LocalAlloc.
struct Local(*mut c_void);

impl Drop for Local {
    fn drop(&mut self) {
        if !self.0.is_null() {
            unsafe { LocalFree(Some(HLOCAL(self.0))) };
        }
    }
}

fn path_wide(dir: &Path) -> PlatformResult<Vec<u16>> {
    dir.to_str().map(wide).ok_or_else(|| PlatformError::Io(format!("{} is not valid Unicode", dir.display())))
}

pub struct WindowsStateDir;

impl StateDirAccess for WindowsStateDir {
    fn protect(&self, dir: &Path) -> PlatformResult<()> {
        set_dacl(dir, PROTECTED_SDDL)
    }

    fn other_writers(&self, dir: &Path) -> PlatformResult<Vec<String>> {
        other_writers(dir)
    }
}

/// Sets the directory's DACL from SDDL (`D:P(...)` for a protected one).
pub(crate) fn set_dacl(dir: &Path, sddl: &str) -> PlatformResult<()> {
    {
        let protected = sddl.starts_with("D:P");
        let sddl = wide(sddl);
        let mut sd = PSECURITY_DESCRIPTOR::default();
        unsafe {
            ConvertStringSecurityDescriptorToSecurityDescriptorW(PCWSTR(sddl.as_ptr()), SDDL_REVISION_1, &mut sd, None)
        }
        .map_err(|e| win_error("building the state directory's DACL", &e))?;
        let _sd = Local(sd.0);
        let (mut present, mut defaulted) = (BOOL(0), BOOL(0));
        let mut dacl: *mut ACL = std::ptr::null_mut();
        unsafe { GetSecurityDescriptorDacl(sd, &mut present, &mut dacl, &mut defaulted) }
            .map_err(|e| win_error("reading the built DACL", &e))?;
        let name = path_wide(dir)?;
        let err = unsafe {
            SetNamedSecurityInfoW(
                PCWSTR(name.as_ptr()),
                SE_FILE_OBJECT,
                if protected {
                    DACL_SECURITY_INFORMATION | PROTECTED_DACL_SECURITY_INFORMATION
                } else {
                    DACL_SECURITY_INFORMATION | UNPROTECTED_DACL_SECURITY_INFORMATION
                },
                None,
                None,
                Some(dacl),
                None,
            )
        };
        if err != ERROR_SUCCESS {
            return Err(PlatformError::Io(format!("setting the DACL of {}: Win32 error {}", dir.display(), err.0)));
        }
        Ok(())
    }
}

/// The SID of the account this process runs as, copied out of its token (None if unreadable).
fn own_sid() -> Option<Vec<u8>> {
    let mut token = HANDLE::default();
    unsafe { OpenProcessToken(GetCurrentProcess(), TOKEN_QUERY, &mut token) }.ok()?;
    let mut buf = vec![0u8; 256];
    let mut len = 0u32;
    let got =
        unsafe { GetTokenInformation(token, TokenUser, Some(buf.as_mut_ptr().cast()), buf.len() as u32, &mut len) };
    let _ = unsafe { CloseHandle(token) };
    got.ok()?;
    let user = unsafe { &*(buf.as_ptr() as *const TOKEN_USER) };
    let sid = user.User.Sid.0 as *const u8;
    // A SID is 8 bytes plus 4 per sub-authority (the count is its second byte).
    let n = 8 + 4 * usize::from(unsafe { *sid.add(1) });
    Some(unsafe { std::slice::from_raw_parts(sid, n) }.to_vec())
}

fn other_writers(dir: &Path) -> PlatformResult<Vec<String>> {
    {
        let name = path_wide(dir)?;
        let mut sd = PSECURITY_DESCRIPTOR::default();
        let mut dacl: *mut ACL = std::ptr::null_mut();
        let err = unsafe {
            GetNamedSecurityInfoW(
                PCWSTR(name.as_ptr()),
                SE_FILE_OBJECT,
                DACL_SECURITY_INFORMATION,
                None,
                None,
                Some(&mut dacl),
                None,
                &mut sd,
            )
        };
        if err != ERROR_SUCCESS {
            return Err(PlatformError::Io(format!("reading the DACL of {}: Win32 error {}", dir.display(), err.0)));
        }
        let _sd = Local(sd.0);
        if dacl.is_null() {
            return Ok(vec!["Everyone (the directory has no DACL)".into()]);
        }
        let mut info = ACL_SIZE_INFORMATION::default();
        unsafe {
            GetAclInformation(
                dacl,
                (&mut info as *mut ACL_SIZE_INFORMATION).cast(),
                std::mem::size_of::<ACL_SIZE_INFORMATION>() as u32,
                AclSizeInformation,
            )
        }
        .map_err(|e| win_error("reading the DACL's size", &e))?;
        let own = own_sid();
        let mut writers = Vec::new();
        for i in 0..info.AceCount {
            let mut ace: *mut c_void = std::ptr::null_mut();
            unsafe { GetAce(dacl, i, &mut ace) }.map_err(|e| win_error("reading an ACE", &e))?;
            let header = unsafe { &*(ace as *const ACE_HEADER) };
            if header.AceType != ACCESS_ALLOWED_ACE_TYPE {
                continue;
            }
            let allowed = unsafe { &*(ace as *const ACCESS_ALLOWED_ACE) };
            if allowed.Mask & WRITE_RIGHTS == 0 {
                continue;
            }
            let sid = PSID((&allowed.SidStart as *const u32).cast_mut().cast());
            // CREATOR OWNER only ever grants to whoever could create the file in the first place;
            // the agent's own account (SYSTEM for the service) runs the restores anyway.
            let trusted = [WinLocalSystemSid, WinBuiltinAdministratorsSid, WinCreatorOwnerSid]
                .into_iter()
                .any(|w| unsafe { IsWellKnownSid(sid, w) }.as_bool())
                || own.as_ref().is_some_and(|o| unsafe { EqualSid(sid, PSID(o.as_ptr().cast_mut().cast())) }.is_ok());
            if trusted {
                continue;
            }
            let mut text = PWSTR::null();
            let shown = match unsafe { ConvertSidToStringSidW(sid, &mut text) } {
                Ok(()) => {
                    let _t = Local(text.0.cast());
                    unsafe { text.to_string() }.unwrap_or_else(|_| "an account".into())
                }
                Err(_) => "an account".into(),
            };
            if !writers.contains(&shown) {
                writers.push(shown);
            }
        }
        Ok(writers)
    }
}
