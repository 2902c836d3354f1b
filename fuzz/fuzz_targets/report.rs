//! The server's report decoder: JSON bytes → `ReportRequest` → validation, as the report
//! endpoint does before anything is written. A report that passes must serialise again.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rdpfleet_proto::report::ReportRequest;

fuzz_target!(|data: &[u8]| {
    if let Ok(req) = serde_json::from_slice::<ReportRequest>(data) {
        if rdpfleet_server::api::agent::report::validate(&req).is_ok() {
            let again = serde_json::to_vec(&req).expect("a valid report serialises");
            let back: ReportRequest = serde_json::from_slice(&again).expect("and reads back");
            assert_eq!(back.seq, req.seq);
            assert_eq!(back.results.len(), req.results.len());
        }
    }
});
