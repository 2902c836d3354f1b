//! The live Windows event log: events of some ids from one channel since a point in time.
//! Windows renders each event as XML (`evidence::event_xml` turns it into an `Event`); Wine's
//! EvtQuery returns NULL, which surfaces here as `Unsupported`.
use std::time::Duration;

use super::{PlatformError, PlatformResult};
use crate::evidence::Event;

pub trait EventLog: Send + Sync {
    /// Events with one of `ids` logged to `channel` within the last `window`, oldest first,
    /// at most `limit` of them (the newest are kept).
    fn query(&self, channel: &str, ids: &[u32], window: Duration, limit: usize) -> PlatformResult<Vec<Event>>;
}

/// The XPath filter for EvtQuery.
pub fn xpath(ids: &[u32], window: Duration) -> String {
    let ids = ids.iter().map(|i| format!("EventID={i}")).collect::<Vec<_>>().join(" or ");
    format!("*[System[({ids}) and TimeCreated[timediff(@SystemTime) <= {}]]]", window.as_millis())
}

/// Where there is no Windows event log.
pub struct NoEventLog;

impl EventLog for NoEventLog {
    fn query(&self, _: &str, _: &[u32], _: Duration, _: usize) -> PlatformResult<Vec<Event>> {
        Err(PlatformError::Unsupported("Windows event log"))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn xpath_filters_ids_and_time() {
        assert_eq!(
            super::xpath(&[140, 131], std::time::Duration::from_secs(3600)),
            "*[System[(EventID=140 or EventID=131) and TimeCreated[timediff(@SystemTime) <= 3600000]]]"
        );
    }
}
