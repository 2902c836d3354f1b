//! Layer 2: the RDP port accepts TCP connections; several attempts show intermittent loss.
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use rdpfleet_proto::diagnosis::{Layer, LayerReport, TcpDetail};

use super::layers::{finding, report};

/// Pause between attempts, so the server accepts each connection before the next arrives.
const ATTEMPT_SPACING: Duration = Duration::from_millis(10);

/// A connection attempt is given at least this long. A SYN dropped by a busy server's full
/// accept queue, or lost once on the way, is sent again after 1 s (Linux) to 3 s (Windows): that
/// connection is slow, which the latency figures show, not lost. A shorter I/O timeout still
/// bounds every read and handshake.
const MIN_CONNECT_TIMEOUT: Duration = Duration::from_millis(3_500);

/// How long one TCP connection attempt may take under the probe's I/O timeout.
pub(super) fn connect_timeout(io_timeout: Duration) -> Duration {
    io_timeout.max(MIN_CONNECT_TIMEOUT)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Failure {
    Refused,
    TimedOut,
    Unreachable,
}

impl Failure {
    fn cause(self) -> &'static str {
        match self {
            Failure::Refused => "net.port_closed",
            Failure::TimedOut => "net.port_filtered",
            Failure::Unreachable => "net.host_unreachable",
        }
    }
    fn words(self) -> &'static str {
        match self {
            Failure::Refused => "refused",
            Failure::TimedOut => "timed out",
            Failure::Unreachable => "unreachable",
        }
    }
}

async fn connect_once(addr: SocketAddr, timeout: Duration) -> Result<f64, Failure> {
    let started = Instant::now();
    match tokio::time::timeout(connect_timeout(timeout), tokio::net::TcpStream::connect(addr)).await {
        Ok(Ok(_)) => Ok(started.elapsed().as_secs_f64() * 1000.0),
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => Err(Failure::Refused),
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::TimedOut => Err(Failure::TimedOut),
        Ok(Err(_)) => Err(Failure::Unreachable),
        Err(_) => Err(Failure::TimedOut),
    }
}

fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.saturating_sub(1).min(sorted.len() - 1)).map(|v| (v * 100.0).round() / 100.0)
}

/// The first of a name's addresses (at most four, in resolver order) that accepts a connection,
/// as a client falls back from IPv6 to IPv4; else the first address and why it failed.
pub(super) async fn first_accepting(
    addrs: &[IpAddr],
    port: u16,
    timeout: Duration,
) -> Result<SocketAddr, (SocketAddr, Failure)> {
    let mut first_failure = None;
    for ip in addrs.iter().take(4) {
        let addr = SocketAddr::new(*ip, port);
        match connect_once(addr, timeout).await {
            Ok(_) => return Ok(addr),
            Err(f) => {
                first_failure.get_or_insert((addr, f));
            }
        }
    }
    Err(first_failure.unwrap_or((SocketAddr::new(IpAddr::from([0, 0, 0, 0]), port), Failure::Unreachable)))
}

/// Picks the first address that accepts (as a client falls back from IPv6 to IPv4), then makes
/// `attempts` connections to it, one after another. Returns the address for the later layers.
pub async fn probe(
    addrs: &[IpAddr],
    port: u16,
    attempts: u32,
    timeout: Duration,
) -> (LayerReport, TcpDetail, Option<SocketAddr>) {
    let started = Instant::now();
    let addr = match first_accepting(addrs, port, timeout).await {
        Ok(addr) => addr,
        Err((addr, f)) => {
            let detail = TcpDetail {
                address: addr.to_string(),
                attempts: 1,
                successes: 0,
                latency_p50_ms: None,
                latency_p95_ms: None,
                errors: vec![f.words().to_owned()],
            };
            let ms = started.elapsed().as_millis() as u64;
            let fnd = finding(f.cause(), format!("connection to {addr} {}", f.words()));
            return (report(Layer::Tcp, format!("port {port}: connection {}", f.words()), ms, vec![fnd]), detail, None);
        }
    };
    // Sequential, as clients connect: a burst would overflow small listen backlogs (xrdp's is
    // tiny) and show retransmission delays that real clients never see.
    let mut results = Vec::new();
    for i in 0..attempts.max(1) {
        if i > 0 {
            tokio::time::sleep(ATTEMPT_SPACING).await;
        }
        results.push(connect_once(addr, timeout).await);
    }
    let mut latencies: Vec<f64> = results.iter().filter_map(|r| r.as_ref().ok().copied()).collect();
    latencies.sort_by(f64::total_cmp);
    let errors: Vec<String> = results.iter().filter_map(|r| r.as_ref().err().map(|f| f.words().to_owned())).collect();
    let successes = latencies.len() as u32;
    let detail = TcpDetail {
        address: addr.to_string(),
        attempts: attempts.max(1),
        successes,
        latency_p50_ms: percentile(&latencies, 50.0),
        latency_p95_ms: percentile(&latencies, 95.0),
        errors,
    };
    let mut findings = vec![];
    if successes < detail.attempts {
        findings.push(finding(
            "net.tcp_intermittent",
            format!("{} of {} connections to {addr} failed", detail.attempts - successes, detail.attempts),
        ));
    }
    let summary = format!(
        "{addr}: {successes}/{} connected, p50 {:.1} ms, p95 {:.1} ms",
        detail.attempts,
        detail.latency_p50_ms.unwrap_or(0.0),
        detail.latency_p95_ms.unwrap_or(0.0)
    );
    (report(Layer::Tcp, summary, started.elapsed().as_millis() as u64, findings), detail, Some(addr))
}

#[cfg(test)]
mod tests {
    use super::percentile;

    #[test]
    fn percentiles_use_nearest_rank() {
        let v = [1.0, 2.0, 3.0, 4.0, 100.0];
        assert_eq!(percentile(&v, 50.0), Some(3.0));
        assert_eq!(percentile(&v, 95.0), Some(100.0));
        assert_eq!(percentile(&[], 50.0), None);
    }
}
