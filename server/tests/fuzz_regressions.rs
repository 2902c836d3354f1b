//! Replays the report decoder's fuzz seeds and found crashes (`fuzz/regressions/report/`) in
//! every CI run, through the same decoding and validation as the fuzz target.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use rdpfleet_proto::report::ReportRequest;

#[test]
fn report_inputs() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
    let mut seen = 0;
    for dir in ["seeds", "regressions"] {
        let Ok(entries) = std::fs::read_dir(root.join(dir).join("report")) else { continue };
        for e in entries {
            let path = e.unwrap().path();
            if path.file_name().is_some_and(|n| n == ".keep") {
                continue;
            }
            let data = std::fs::read(&path).unwrap();
            seen += 1;
            if let Ok(req) = serde_json::from_slice::<ReportRequest>(&data)
                && rdpfleet_server::api::agent::report::validate(&req).is_ok()
            {
                let again: ReportRequest = serde_json::from_slice(&serde_json::to_vec(&req).unwrap()).unwrap();
                assert_eq!(again, req, "{}", path.display());
            }
        }
    }
    assert!(seen > 0, "the seeds are in the repository");
}
