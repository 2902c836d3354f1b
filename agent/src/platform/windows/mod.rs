//! The Windows implementations of the platform traits. Wine runs the registry, certificate
//! store, credential and service code for real; it stubs the firewall, the network list and the
//! event log, whose logic is therefore tested through the traits with the in-memory fakes.
pub mod certstore;
pub mod credentials;
pub mod eventlog;
pub mod firewall;
pub mod registry;
pub mod services;
pub mod state_dir;

use super::PlatformError;

/// A Windows error as a platform error, keeping access-denied and not-found distinguishable.
pub(crate) fn win_error(what: &str, e: &windows::core::Error) -> PlatformError {
    // HRESULT_FROM_WIN32(ERROR_ACCESS_DENIED), E_ACCESSDENIED, HRESULT_FROM_WIN32(ERROR_NOT_FOUND / FILE_NOT_FOUND)
    match e.code().0 as u32 {
        0x8007_0005 => PlatformError::AccessDenied(format!("{what}: {}", e.message())),
        0x8007_0490 | 0x8007_0002 => PlatformError::NotFound(format!("{what}: {}", e.message())),
        0x8000_4001 => PlatformError::Unsupported("not implemented by this Windows (E_NOTIMPL)"),
        _ => PlatformError::Io(format!("{what}: {} ({:#010x})", e.message(), e.code().0)),
    }
}

/// COM for the current thread, for as long as the guard lives.
pub(crate) struct Com {
    initialised: bool,
}

impl Com {
    pub(crate) fn init() -> Com {
        use windows::Win32::System::Com::{COINIT_MULTITHREADED, CoInitializeEx};
        // S_OK and S_FALSE both need a matching CoUninitialize; RPC_E_CHANGED_MODE means the
        // thread already has COM in another model, which serves as well.
        let hr = unsafe { CoInitializeEx(None, COINIT_MULTITHREADED) };
        Com { initialised: hr.is_ok() }
    }
}

impl Drop for Com {
    fn drop(&mut self) {
        if self.initialised {
            unsafe { windows::Win32::System::Com::CoUninitialize() };
        }
    }
}

pub(crate) fn wide(s: &str) -> Vec<u16> {
    s.encode_utf16().chain(std::iter::once(0)).collect()
}
