//! Exported event logs and event XML: a damaged or hostile file gives events or an error, and
//! the findings are computed from whatever was read; never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rdpfleet_agent::evidence::{analyse, event_xml, evtx_file};

fuzz_target!(|data: &[u8]| {
    if let Ok(read) = evtx_file::read_bytes("fuzz", data.to_vec()) {
        let _ = analyse(&read.events);
    }
    if let Ok(xml) = std::str::from_utf8(data)
        && let Ok(event) = event_xml::parse(xml)
    {
        let _ = analyse(&[event]);
    }
});
