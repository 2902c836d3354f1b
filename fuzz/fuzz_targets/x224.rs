//! TPKT/X.224 Connection Confirm parsing: any bytes a server sends give a value or an error.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rdpfleet_agent::probe::x224;

fuzz_target!(|data: &[u8]| {
    if let Ok(len) = x224::tpkt_length(data) {
        // A length the parser accepts is one the probe would read: it must be bounded.
        assert!(len <= 65_535);
    }
    if let Ok(confirm) = x224::parse_confirm(data) {
        let _ = format!("{confirm:?}");
    }
});
