//! `events.recent`: the Windows event log of the last hours, read live and turned into findings
//! by the same analysis as `rdpfleet-agent evidence --evtx` (Schannel alerts, RdpCoreTS,
//! RemoteConnectionManager on hosts; ClientActiveXCore disconnects on clients).
use async_trait::async_trait;
use serde_json::json;

use crate::config::Target;
use crate::engine::check::{Check, CheckContext, Finding, Scope};
use crate::evidence::{self, Event};
use crate::platform::PlatformError;
use crate::subjects::windows_host::checks::platform_finding;

/// Events read per channel and cycle, newest kept: bounds the work on a noisy log.
const MAX_EVENTS_PER_CHANNEL: usize = 2000;

/// (channel, event ids, whose) — `true` for host channels, `false` for client ones.
const CHANNELS: &[(&str, &[u32], Side)] = &[
    ("System", &[36874, 36881, 36887, 36888], Side::Both),
    ("Microsoft-Windows-RemoteDesktopServices-RdpCoreTS/Operational", &[131, 140], Side::Host),
    ("Microsoft-Windows-TerminalServices-RemoteConnectionManager/Operational", &[261, 1149], Side::Host),
    ("Microsoft-Windows-TerminalServices-RDPClient/Operational", &[1026], Side::Client),
];

#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    Host,
    Client,
    Both,
}

pub struct RecentEvents;

impl RecentEvents {
    fn channels(ctx: &CheckContext) -> impl Iterator<Item = &'static (&'static str, &'static [u32], Side)> + '_ {
        CHANNELS.iter().filter(|(_, _, side)| match side {
            Side::Both => true,
            Side::Host => ctx.is_host(),
            Side::Client => ctx.is_client(),
        })
    }
}

#[async_trait]
impl Check for RecentEvents {
    fn id(&self) -> &'static str {
        "events.recent"
    }
    fn scope(&self) -> Scope {
        Scope::Machine
    }
    fn applies(&self, ctx: &CheckContext) -> bool {
        ctx.is_windows()
    }
    async fn run(&self, ctx: &CheckContext, _: Option<&Target>) -> Finding {
        let mut events: Vec<Event> = Vec::new();
        let mut unreadable = Vec::new();
        for (channel, ids, _) in Self::channels(ctx) {
            match ctx.platform.events.query(channel, ids, ctx.event_window, MAX_EVENTS_PER_CHANNEL) {
                Ok(mut e) => events.append(&mut e),
                Err(e @ PlatformError::Unsupported(_)) => return platform_finding("event log", &e),
                // One channel that cannot be read (disabled, access denied) does not hide the others.
                Err(e) => unreadable.push(format!("{channel}: {e}")),
            }
        }
        let ev = evidence::analyse(&events);
        let problems: Vec<_> = ev
            .findings
            .iter()
            .filter_map(|f| rdpfleet_proto::causes::lookup(&f.cause).map(|c| (c.id, f.severity, f.detail.clone())))
            .collect();
        let hours = ctx.event_window.as_secs() / 3600;
        let mut f =
            Finding::from_problems(&format!("no RDP failures in the event log of the last {hours} h"), &problems);
        f.evidence = json!({
            "window_hours": hours,
            "events_read": ev.events_read,
            "counts": ev.counts,
            "connections_from": ev.connections_from,
            "logon_failures_from": ev.logon_failures_from,
            "unreadable_channels": unreadable,
            "problems": f.evidence,
        });
        f
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::memory::MemoryPlatform;
    use crate::subjects::windows_host::checks::tests::ctx;
    use rdpfleet_proto::check::CheckStatus;
    use rdpfleet_proto::enroll::MachineRole;

    fn event(provider: &str, id: u32, data: &[(&str, &str)]) -> Event {
        Event {
            provider: provider.into(),
            id,
            time: Some("2026-11-23T08:00:00Z".into()),
            computer: Some("H".into()),
            data: data.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
        }
    }

    #[tokio::test]
    async fn host_events_become_findings() {
        let m = MemoryPlatform::new();
        let c = ctx(&m, MachineRole::Host);
        assert_eq!(RecentEvents.run(&c, None).await.status, CheckStatus::Pass);
        {
            let mut ch = m.events.channels.lock().unwrap();
            ch.insert(
                "System".into(),
                vec![event("Schannel", 36888, &[("AlertDesc", "45")]), event("Schannel", 7, &[])],
            );
            ch.insert(
                "Microsoft-Windows-RemoteDesktopServices-RdpCoreTS/Operational".into(),
                (0..4)
                    .map(|_| {
                        event("Microsoft-Windows-RemoteDesktopServices-RdpCoreTS", 140, &[("IPString", "10.1.1.1")])
                    })
                    .collect(),
            );
            // A client channel on a host is not read.
            ch.insert(
                "Microsoft-Windows-TerminalServices-RDPClient/Operational".into(),
                vec![event("Microsoft-Windows-TerminalServices-ClientActiveXCore", 1026, &[("Value", "2308")])],
            );
        }
        let f = RecentEvents.run(&c, None).await;
        assert_eq!((f.status, f.cause), (CheckStatus::Fail, Some("cert.expired")), "{f:?}");
        assert!(f.summary.contains("certificate_expired"), "{}", f.summary);
        assert!(f.summary.contains("4 failed RDP logons from 10.1.1.1"), "{}", f.summary);
        assert_eq!(f.evidence["events_read"], 5, "filtered by id: the unrelated System event is not read");
        assert!(!f.summary.contains("0x904"));
    }

    #[tokio::test]
    async fn client_disconnects_and_an_unavailable_log() {
        let m = MemoryPlatform::new();
        let c = ctx(&m, MachineRole::Client);
        m.events.channels.lock().unwrap().insert(
            "Microsoft-Windows-TerminalServices-RDPClient/Operational".into(),
            vec![event("Microsoft-Windows-TerminalServices-ClientActiveXCore", 1026, &[("Value", "2308")])],
        );
        let f = RecentEvents.run(&c, None).await;
        assert_eq!(f.cause, Some("client.disconnect_0x904"), "{f:?}");
        m.events.unavailable.store(true, std::sync::atomic::Ordering::Relaxed);
        assert_eq!(RecentEvents.run(&c, None).await.status, CheckStatus::Skipped, "Wine: EvtQuery returns NULL");
    }
}
