//! Certificate judgement on whatever a server presents: the first bytes split into a chain of one
//! or two "certificates", judged against a name; never a panic.
#![no_main]
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use rdpfleet_agent::probe::{cert, trust::TrustStore};

static TRUST: OnceLock<TrustStore> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let trust = TRUST.get_or_init(|| TrustStore::load(None, false).expect("empty trust store"));
    let split = data.first().map_or(0, |b| usize::from(*b)).min(data.len());
    let (a, b) = data.split_at(split);
    let chain = if a.is_empty() { vec![b.to_vec()] } else { vec![b.to_vec(), a.to_vec()] };
    let now = time::OffsetDateTime::from_unix_timestamp(1_790_000_000).expect("time");
    let _ = cert::judge(&chain, "rdp01.corp.example", now, 30, trust);
    if let Ok(text) = std::str::from_utf8(data) {
        let names: Vec<String> = text.split(',').map(str::to_owned).collect();
        let _ = cert::name_matches(text, &names, &names, &names);
    }
});
