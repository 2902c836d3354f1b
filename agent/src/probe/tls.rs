//! TLS handshakes at one fixed version, with OpenSSL at security level 0 and every cipher
//! suite offered: the probe must complete a handshake with whatever the server accepts
//! (including TLS 1.0/1.1 and suites rustls deliberately lacks) to say what it supports.
//! Certificates are not verified here; they are collected and judged in `cert`.
use std::net::TcpStream;

use openssl::ssl::{Ssl, SslContext, SslMethod, SslOptions, SslVerifyMode, SslVersion};
use rdpfleet_proto::diagnosis::{TlsAttempt, TlsVersion};

/// A completed or failed handshake, with the peer's chain (leaf first) when one was received.
pub struct Handshake {
    pub attempt: TlsAttempt,
    pub chain: Vec<Vec<u8>>,
}

fn ssl_version(v: TlsVersion) -> SslVersion {
    match v {
        TlsVersion::Tls10 => SslVersion::TLS1,
        TlsVersion::Tls11 => SslVersion::TLS1_1,
        TlsVersion::Tls12 => SslVersion::TLS1_2,
        TlsVersion::Tls13 => SslVersion::TLS1_3,
    }
}

/// Runs a handshake on an already connected stream (after X.224 selected a TLS-based protocol,
/// or directly for HTTPS). `sni` is sent when it is a DNS name.
pub fn handshake(stream: TcpStream, version: TlsVersion, sni: &str) -> Handshake {
    let fail = |error: String| Handshake {
        attempt: TlsAttempt { version, accepted: false, cipher: None, error: Some(error) },
        chain: vec![],
    };
    let ssl = match context(version).and_then(|ctx| {
        let mut ssl = Ssl::new(&ctx)?;
        if sni.parse::<std::net::IpAddr>().is_err() && !sni.is_empty() {
            ssl.set_hostname(sni)?;
        }
        Ok(ssl)
    }) {
        Ok(s) => s,
        Err(e) => return fail(format!("OpenSSL set-up failed: {e}")),
    };
    match ssl.connect(stream) {
        Ok(tls) => {
            let ssl = tls.ssl();
            let chain = ssl
                .peer_cert_chain()
                .map(|c| c.iter().filter_map(|x| x.to_der().ok()).collect())
                .or_else(|| ssl.peer_certificate().and_then(|x| x.to_der().ok()).map(|d| vec![d]))
                .unwrap_or_default();
            Handshake {
                attempt: TlsAttempt {
                    version,
                    accepted: true,
                    cipher: ssl.current_cipher().map(|c| c.name().to_owned()),
                    error: None,
                },
                chain,
            }
        }
        Err(e) => fail(short_error(&e.to_string())),
    }
}

/// A bare client context: no CA loading (`SslConnector` would read the system bundle on every
/// call), since nothing is verified during the handshake.
fn context(version: TlsVersion) -> Result<SslContext, openssl::error::ErrorStack> {
    let mut b = SslContext::builder(SslMethod::tls_client())?;
    b.set_verify(SslVerifyMode::NONE);
    b.set_security_level(0);
    b.set_cipher_list("ALL:COMPLEMENTOFALL:@SECLEVEL=0")?;
    b.set_min_proto_version(Some(ssl_version(version)))?;
    b.set_max_proto_version(Some(ssl_version(version)))?;
    // Old Schannel servers lack the renegotiation-info extension OpenSSL 3 insists on:
    // SSL_OP_LEGACY_SERVER_CONNECT (0x4), which the openssl crate does not name.
    b.set_options(SslOptions::from_bits_retain(0x4) | SslOptions::NO_TICKET);
    Ok(b.build())
}

/// OpenSSL's errors are long stacks; keep the reason.
fn short_error(e: &str) -> String {
    let reason = e.split(':').rev().find(|p| !p.trim().is_empty() && !p.contains(".c") && p.len() > 3).unwrap_or(e);
    let reason = reason.trim().trim_end_matches(|c: char| !c.is_alphanumeric());
    if reason.is_empty() { e.chars().take(200).collect() } else { reason.chars().take(200).collect() }
}
