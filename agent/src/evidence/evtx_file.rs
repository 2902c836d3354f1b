//! Events from exported `.evtx` files (the `evtx` crate). A damaged file yields the events
//! that could be read and a count of those that could not — never a panic.
use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

use super::Event;

#[derive(Debug, thiserror::Error)]
pub enum EvtxError {
    #[error("cannot open {path}: {message}")]
    Open { path: String, message: String },
}

pub struct EvtxRead {
    pub events: Vec<Event>,
    /// Records or chunks that could not be parsed (the file is damaged).
    pub unreadable: usize,
    pub first_error: Option<String>,
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Object(o) => o.get("#text").and_then(text),
        _ => None,
    }
}

/// Flattens `EventData` (`{"Name": value}`, or `Data` arrays) and `UserData/*` into name → text.
fn fields(event: &Value) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut take = |obj: &serde_json::Map<String, Value>| {
        for (k, v) in obj {
            if k.starts_with('#') {
                continue;
            }
            if let Some(t) = text(v) {
                out.insert(k.clone(), t);
            }
        }
    };
    if let Some(Value::Object(d)) = event.get("EventData") {
        take(d);
    }
    if let Some(Value::Object(u)) = event.get("UserData") {
        for inner in u.values() {
            if let Value::Object(i) = inner {
                take(i);
            }
        }
    }
    out
}

pub fn event_from_json(v: &Value) -> Option<Event> {
    let e = v.get("Event")?;
    let sys = e.get("System")?;
    let id = match sys.get("EventID")? {
        Value::Number(n) => n.as_u64()? as u32,
        other => text(other)?.parse().ok()?,
    };
    let provider = sys.get("Provider")?.get("#attributes")?.get("Name")?.as_str()?.to_owned();
    let time =
        sys.get("TimeCreated").and_then(|t| t.get("#attributes")).and_then(|a| a.get("SystemTime")).and_then(text);
    let computer = sys.get("Computer").and_then(text);
    Some(Event { provider, id, time, computer, data: fields(e) })
}

pub fn read(path: &Path) -> Result<EvtxRead, EvtxError> {
    let shown = path.display().to_string();
    let parser = evtx::EvtxParser::from_path(path)
        .map_err(|e| EvtxError::Open { path: shown.clone(), message: e.to_string() })?;
    Ok(collect(parser))
}

/// The same from bytes already in memory (`name` names them in errors).
pub fn read_bytes(name: &str, bytes: Vec<u8>) -> Result<EvtxRead, EvtxError> {
    let parser = evtx::EvtxParser::from_buffer(bytes)
        .map_err(|e| EvtxError::Open { path: name.to_owned(), message: e.to_string() })?;
    Ok(collect(parser))
}

fn collect<T: std::io::Read + std::io::Seek>(mut parser: evtx::EvtxParser<T>) -> EvtxRead {
    let mut read = EvtxRead { events: Vec::new(), unreadable: 0, first_error: None };
    // The evtx crate can panic on a damaged record (a record size below its header's, found by
    // fuzzing: fuzz/regressions/evtx/): what was read before it is kept and the rest of the file
    // is reported unreadable, never a crash of the agent.
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        for record in parser.records_json_value() {
            match record {
                Ok(r) => {
                    if let Some(e) = event_from_json(&r.data) {
                        read.events.push(e);
                    }
                }
                Err(e) => {
                    read.unreadable += 1;
                    read.first_error.get_or_insert_with(|| e.to_string());
                }
            }
        }
    }));
    if let Err(panic) = outcome {
        let why = panic
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown fault".to_owned());
        read.unreadable += 1;
        read.first_error.get_or_insert_with(|| format!("damaged record, the rest of the file was not read ({why})"));
    }
    read
}
