//! The live event log through the Windows Event Log API (EvtQuery / EvtNext / EvtRender),
//! each event rendered as XML and read by `evidence::event_xml`.
use std::time::Duration;

use windows::Win32::System::EventLog::{
    EVT_HANDLE, EvtClose, EvtNext, EvtQuery, EvtQueryChannelPath, EvtQueryReverseDirection, EvtRender,
    EvtRenderEventXml,
};
use windows::core::PCWSTR;

use super::{wide, win_error};
use crate::evidence::Event;
use crate::platform::eventlog::{EventLog, xpath};
use crate::platform::{PlatformError, PlatformResult};

pub struct WindowsEventLog;

struct Handle(EVT_HANDLE);

impl Drop for Handle {
    fn drop(&mut self) {
        unsafe {
            let _ = EvtClose(self.0);
        }
    }
}

const ERROR_NO_MORE_ITEMS: i32 = 259;
const ERROR_INSUFFICIENT_BUFFER: i32 = 122;
const ERROR_EVT_CHANNEL_NOT_FOUND: i32 = 15007;

fn render(event: &Handle) -> PlatformResult<String> {
    let mut buf: Vec<u16> = vec![0; 4096];
    loop {
        let (mut used, mut props) = (0u32, 0u32);
        let r = unsafe {
            EvtRender(
                None,
                event.0,
                EvtRenderEventXml.0,
                (buf.len() * 2) as u32,
                Some(buf.as_mut_ptr() as *mut _),
                &mut used,
                &mut props,
            )
        };
        match r {
            Ok(()) => {
                let chars = (used as usize / 2).min(buf.len());
                return Ok(String::from_utf16_lossy(&buf[..chars]).trim_end_matches('\0').to_owned());
            }
            Err(e) if e.code().0 == (0x8007_0000u32 as i32 | ERROR_INSUFFICIENT_BUFFER) => {
                buf = vec![0; used as usize / 2 + 1];
            }
            Err(e) => return Err(win_error("EvtRender", &e)),
        }
    }
}

impl EventLog for WindowsEventLog {
    fn query(&self, channel: &str, ids: &[u32], window: Duration, limit: usize) -> PlatformResult<Vec<Event>> {
        let (c, q) = (wide(channel), wide(&xpath(ids, window)));
        // Newest first, so `limit` keeps the most recent events.
        let flags = EvtQueryChannelPath.0 | EvtQueryReverseDirection.0;
        let results = match unsafe { EvtQuery(None, PCWSTR(c.as_ptr()), PCWSTR(q.as_ptr()), flags) } {
            Ok(h) if !h.is_invalid() && h.0 != 0 => Handle(h),
            // Wine returns NULL without setting an error.
            Ok(_) => return Err(PlatformError::Unsupported("Windows event log (EvtQuery returned no handle)")),
            Err(e) if e.code().0 == (0x8007_0000u32 as i32 | ERROR_EVT_CHANNEL_NOT_FOUND) => return Ok(vec![]),
            Err(e) if e.code().0 == 0 => {
                return Err(PlatformError::Unsupported("Windows event log (EvtQuery returned no handle)"));
            }
            Err(e) => return Err(win_error(&format!("EvtQuery {channel}"), &e)),
        };
        let mut out = Vec::new();
        'outer: while out.len() < limit {
            let mut raw = [0isize; 64];
            let mut got = 0u32;
            match unsafe { EvtNext(results.0, &mut raw, 1000, 0, &mut got) } {
                Ok(()) => {}
                Err(e) if e.code().0 == (0x8007_0000u32 as i32 | ERROR_NO_MORE_ITEMS) => break,
                Err(e) => return Err(win_error("EvtNext", &e)),
            }
            let handles: Vec<Handle> = raw[..got as usize].iter().map(|h| Handle(EVT_HANDLE(*h))).collect();
            for h in &handles {
                let xml = render(h)?;
                match crate::evidence::event_xml::parse(&xml) {
                    Ok(e) => out.push(e),
                    Err(err) => tracing::debug!(%err, "skipping an event that does not parse"),
                }
                if out.len() >= limit {
                    break 'outer;
                }
            }
        }
        out.reverse();
        Ok(out)
    }
}
