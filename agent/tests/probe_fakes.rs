//! The probe against in-process fake servers: what real servers cannot be made to do.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use rdpfleet_agent::probe::trust::TrustStore;
use rdpfleet_agent::probe::{ProbeOptions, ProbeTarget, diagnose};
use rdpfleet_proto::check::CheckStatus;
use rdpfleet_proto::diagnosis::{Diagnosis, Layer, LayerStatus, NegotiationReply, Protocol};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

#[derive(Clone, Copy)]
enum Behaviour {
    /// Accept, read the request, never answer.
    Hang,
    Garbage,
    /// Send the first 10 bytes of a 19-byte confirm, then close.
    Truncated,
    /// An 11-byte Connection Confirm without negotiation data.
    Legacy,
    Failure(u32),
}

async fn fake(behaviour: Behaviour) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else { return };
            tokio::spawn(async move {
                let mut buf = [0u8; 64];
                let _ = sock.read(&mut buf).await;
                let reply: Vec<u8> = match behaviour {
                    Behaviour::Hang => {
                        tokio::time::sleep(Duration::from_secs(60)).await;
                        return;
                    }
                    Behaviour::Garbage => b"HTTP/1.1 400 Bad Request\r\n\r\n".to_vec(),
                    Behaviour::Truncated => vec![0x03, 0x00, 0x00, 0x13, 0x0e, 0xd0, 0, 0, 0x12, 0x34],
                    Behaviour::Legacy => vec![0x03, 0x00, 0x00, 0x0b, 0x06, 0xd0, 0, 0, 0x12, 0x34, 0],
                    Behaviour::Failure(code) => {
                        let mut r =
                            vec![0x03, 0x00, 0x00, 0x13, 0x0e, 0xd0, 0, 0, 0x12, 0x34, 0, 0x03, 0x00, 0x08, 0x00];
                        r.extend_from_slice(&code.to_le_bytes());
                        r
                    }
                };
                let _ = sock.write_all(&reply).await;
                let _ = sock.shutdown().await;
            });
        }
    });
    port
}

fn options(io_timeout_ms: u64) -> ProbeOptions {
    ProbeOptions {
        io_timeout: Duration::from_millis(io_timeout_ms),
        tcp_attempts: 3,
        expiry_warn_days: 30,
        trust: Arc::new(TrustStore::load(None, false).unwrap()),
        clock_reference: None,
    }
}

async fn run(port: u16, io_timeout_ms: u64) -> Diagnosis {
    let t = ProbeTarget { host: "127.0.0.1".into(), port, expected_address: None, gateway: None };
    diagnose(&t, &options(io_timeout_ms)).await
}

fn assert_stops_at_negotiation(d: &Diagnosis, cause: &str) {
    assert_eq!(d.status, CheckStatus::Fail, "{d:#?}");
    assert_eq!(d.first_failing_layer, Some(Layer::Negotiation));
    assert_eq!(d.cause.as_deref(), Some(cause), "{d:#?}");
    assert_eq!(d.layer(Layer::Tcp).unwrap().status, LayerStatus::Pass);
    assert_eq!(d.layer(Layer::Tls).unwrap().status, LayerStatus::NotReached);
    assert_eq!(d.layer(Layer::Certificate).unwrap().status, LayerStatus::NotReached);
}

#[tokio::test]
async fn closed_port_fails_at_tcp() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let d = run(port, 500).await;
    assert_eq!(d.first_failing_layer, Some(Layer::Tcp));
    assert_eq!(d.cause.as_deref(), Some("net.port_closed"));
    assert_eq!(d.layer(Layer::Negotiation).unwrap().status, LayerStatus::NotReached);
    assert_eq!(d.layer(Layer::Dns).unwrap().status, LayerStatus::Pass);
}

#[tokio::test]
async fn a_server_that_accepts_then_hangs_is_bounded_and_reported() {
    let port = fake(Behaviour::Hang).await;
    let started = Instant::now();
    let d = run(port, 300).await;
    let elapsed = started.elapsed();
    assert_stops_at_negotiation(&d, "rdp.no_reply");
    // 7 requests, 2 at a time, each bounded by 300 ms: well under 3 s.
    assert!(elapsed < Duration::from_secs(3), "took {elapsed:?}");
    assert!(
        d.negotiation
            .unwrap()
            .exchanges
            .iter()
            .all(|e| matches!(&e.reply, NegotiationReply::Error { error } if error.contains("no reply")))
    );
}

#[tokio::test]
async fn garbage_is_not_rdp() {
    let d = run(fake(Behaviour::Garbage).await, 1000).await;
    assert_stops_at_negotiation(&d, "rdp.not_rdp");
}

#[tokio::test]
async fn a_truncated_reply_is_a_reset() {
    let d = run(fake(Behaviour::Truncated).await, 1000).await;
    assert_stops_at_negotiation(&d, "rdp.connection_reset");
    let n = d.negotiation.unwrap();
    assert!(
        n.exchanges
            .iter()
            .all(|e| matches!(&e.reply, NegotiationReply::Error { error } if error.contains("truncated after 10"))),
        "{n:#?}"
    );
}

#[tokio::test]
async fn an_11_byte_legacy_confirm_means_rdp_security_only() {
    let d = run(fake(Behaviour::Legacy).await, 1000).await;
    assert_stops_at_negotiation(&d, "rdp.legacy_security_only");
    let n = d.negotiation.unwrap();
    assert_eq!(n.supported, vec![Protocol::Rdp]);
    assert_eq!(n.minimum, Some(Protocol::Rdp));
}

#[tokio::test]
async fn failure_codes_4_and_6() {
    let d = run(fake(Behaviour::Failure(4)).await, 1000).await;
    assert_stops_at_negotiation(&d, "rdp.inconsistent_flags");
    let d = run(fake(Behaviour::Failure(6)).await, 1000).await;
    assert_stops_at_negotiation(&d, "rdp.user_auth_required");
    assert!(d.negotiation.unwrap().exchanges.iter().all(|e| matches!(&e.reply, NegotiationReply::Failure { code: 6, name } if name == "SSL_WITH_USER_AUTH_REQUIRED_BY_SERVER")));
}

#[tokio::test]
async fn unresolvable_name_fails_at_dns_and_nothing_else_runs() {
    let t = ProbeTarget { host: "no-such-host.invalid".into(), port: 3389, expected_address: None, gateway: None };
    let d = diagnose(&t, &options(2000)).await;
    assert_eq!(d.first_failing_layer, Some(Layer::Dns));
    assert!(matches!(d.cause.as_deref(), Some("net.dns_unresolved" | "net.dns_timeout")));
    for l in [Layer::Tcp, Layer::Negotiation, Layer::Tls, Layer::Certificate] {
        assert_eq!(d.layer(l).unwrap().status, LayerStatus::NotReached);
    }
}

#[tokio::test]
async fn an_unreachable_gateway_is_its_own_failing_layer() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let host = fake(Behaviour::Failure(2)).await;
    let t = ProbeTarget {
        host: "127.0.0.1".into(),
        port: host,
        expected_address: None,
        gateway: Some(("127.0.0.1".into(), closed)),
    };
    let d = diagnose(&t, &options(500)).await;
    assert_eq!(d.first_failing_layer, Some(Layer::Negotiation), "the host path is walked first");
    let g = d.layer(Layer::Gateway).unwrap();
    assert_eq!((g.status, g.findings[0].cause.as_str()), (LayerStatus::Fail, "gateway.unreachable"));
}

/// An HTTP server whose `Date` header is `offset_secs` away from now.
async fn skewed_clock(offset_secs: i64) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else { return };
            let mut buf = [0u8; 1024];
            let _ = sock.read(&mut buf).await;
            let (now, delta) = (std::time::SystemTime::now(), Duration::from_secs(offset_secs.unsigned_abs()));
            let t = if offset_secs >= 0 { now + delta } else { now - delta };
            let resp = format!(
                "HTTP/1.1 200 OK\r\nDate: {}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                httpdate::fmt_http_date(t)
            );
            let _ = sock.write_all(resp.as_bytes()).await;
        }
    });
    format!("http://127.0.0.1:{port}")
}

#[tokio::test]
async fn clock_skew_against_the_server_is_measured_and_judged() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let t = ProbeTarget { host: "127.0.0.1".into(), port: closed, expected_address: None, gateway: None };
    for (offset, cause) in [(0i64, None), (-120, Some("clock.drift")), (600, Some("clock.skew"))] {
        let mut o = options(1000);
        o.clock_reference = Some(skewed_clock(offset).await);
        let d = diagnose(&t, &o).await;
        let c = d.clock.as_ref().unwrap();
        // Local minus server: a server 600 s ahead means this machine is ~600 s behind.
        assert!((c.skew_ms + offset * 1000).abs() < 2_000, "offset {offset}: {c:?}");
        let l = d.layer(Layer::Clock).unwrap();
        assert_eq!(l.findings.first().map(|f| f.cause.as_str()), cause, "offset {offset}");
    }
}

#[tokio::test]
async fn gateway_certificate_is_checked_against_the_gateway_name() {
    use openssl::ssl::{SslAcceptor, SslFiletype, SslMethod};
    let dir = tempfile::tempdir().unwrap();
    let ca = rdpfleet_e2e::certs::TestCa::new();
    let bundle = ca.write_bundle(dir.path());
    let issued = ca.issue(dir.path(), "gw", &["other-gateway.example"], -1, 365);
    let mut acceptor = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls()).unwrap();
    acceptor.set_certificate_chain_file(&issued.cert).unwrap();
    acceptor.set_private_key_file(&issued.key, SslFiletype::PEM).unwrap();
    let acceptor = acceptor.build();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let gw_port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let acceptor = acceptor.clone();
            std::thread::spawn(move || drop(acceptor.accept(stream)));
        }
    });
    let host = fake(Behaviour::Failure(2)).await;
    let t = ProbeTarget {
        host: "127.0.0.1".into(),
        port: host,
        expected_address: None,
        gateway: Some(("localhost".into(), gw_port)),
    };
    let mut o = options(2000);
    o.trust = Arc::new(TrustStore::load(Some(&bundle), false).unwrap());
    let d = diagnose(&t, &o).await;
    let g = d.layer(Layer::Gateway).unwrap();
    assert_eq!(g.status, LayerStatus::Fail, "{g:#?}");
    assert_eq!(g.findings.iter().map(|f| f.cause.as_str()).collect::<Vec<_>>(), vec!["gateway.cert_name_mismatch"]);
    let gd = d.gateway_detail.as_ref().unwrap();
    let cert = gd.certificate.as_ref().unwrap();
    assert!(cert.chain_trusted && !cert.name_matches && gd.tcp_ok);
    assert!(gd.tls.as_ref().unwrap().accepted().contains(&rdpfleet_proto::diagnosis::TlsVersion::Tls12));
}
