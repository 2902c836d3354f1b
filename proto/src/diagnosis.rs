//! The result of diagnosing one RDP connection path, layer by layer.
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::causes::Severity;
use crate::check::CheckStatus;

/// The check whose results are connection paths, with a [`Diagnosis`] as evidence.
pub const PATH_CHECK: &str = "rdp.path";

/// The layers, in the order a connection (and a troubleshooter) walks them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Layer {
    Dns,
    Tcp,
    Negotiation,
    Tls,
    Certificate,
    Gateway,
    Clock,
}

impl Layer {
    pub fn title(self) -> &'static str {
        match self {
            Layer::Dns => "DNS",
            Layer::Tcp => "TCP",
            Layer::Negotiation => "RDP negotiation",
            Layer::Tls => "TLS",
            Layer::Certificate => "Certificate",
            Layer::Gateway => "RD Gateway",
            Layer::Clock => "Clock",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum LayerStatus {
    Pass,
    Warn,
    Fail,
    /// An earlier layer failed, so this one could not be examined.
    NotReached,
    /// Not applicable or not configured (no gateway, not enrolled).
    Skipped,
}

/// One problem found, named by its cause id in the cause catalogue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Finding {
    pub cause: String,
    pub severity: Severity,
    /// The specifics of this occurrence, in plain words.
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LayerReport {
    pub layer: Layer,
    pub status: LayerStatus,
    pub summary: String,
    pub duration_ms: u64,
    pub findings: Vec<Finding>,
}

/// RDP security protocols (MS-RDPBCGR 2.2.1.1.1 requestedProtocols).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    /// Standard RDP security (0).
    Rdp,
    /// TLS (PROTOCOL_SSL, 0x1).
    Tls,
    /// CredSSP, i.e. NLA (PROTOCOL_HYBRID, 0x2).
    Nla,
    /// RDSTLS (0x4).
    Rdstls,
    /// CredSSP with Early User Authorization Result (PROTOCOL_HYBRID_EX, 0x8).
    NlaEx,
    /// RDS AAD authentication (0x10).
    Rdsaad,
}

impl Protocol {
    pub const ALL: [Protocol; 6] =
        [Protocol::Rdp, Protocol::Tls, Protocol::Nla, Protocol::Rdstls, Protocol::NlaEx, Protocol::Rdsaad];

    /// The requestedProtocols / selectedProtocol bit (0 for standard RDP security).
    pub fn bits(self) -> u32 {
        match self {
            Protocol::Rdp => 0,
            Protocol::Tls => 0x1,
            Protocol::Nla => 0x2,
            Protocol::Rdstls => 0x4,
            Protocol::NlaEx => 0x8,
            Protocol::Rdsaad => 0x10,
        }
    }

    pub fn from_selected(bits: u32) -> Option<Protocol> {
        Protocol::ALL.into_iter().find(|p| p.bits() == bits)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DnsDetail {
    pub addresses: Vec<String>,
    pub elapsed_ms: u64,
    pub expected_address: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TcpDetail {
    /// The address probed (the first one DNS returned).
    pub address: String,
    pub attempts: u32,
    pub successes: u32,
    pub latency_p50_ms: Option<f64>,
    pub latency_p95_ms: Option<f64>,
    /// Errors of failed attempts, e.g. `refused`, `timed out`.
    pub errors: Vec<String>,
}

/// What the server answered to one Connection Request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum NegotiationReply {
    /// RDP_NEG_RSP: the server selected a protocol.
    Selected { protocol: u32, flags: u8 },
    /// RDP_NEG_FAILURE with its failureCode (1–6 are defined).
    Failure { code: u32, name: String },
    /// A Connection Confirm without negotiation data (pre-negotiation servers).
    Legacy,
    /// Not an answer: timeout, reset, garbage; the text says which.
    Error { error: String },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NegotiationExchange {
    /// requestedProtocols sent.
    pub requested: u32,
    pub reply: NegotiationReply,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NegotiationDetail {
    pub exchanges: Vec<NegotiationExchange>,
    /// Protocols the server selects when offered alone (or with their companion flags).
    pub supported: Vec<Protocol>,
    /// The weakest protocol the server accepts; `Tls` or `Nla` means the weaker ones are refused.
    pub minimum: Option<Protocol>,
    /// What the server selected for a current Windows client's request (TLS | CredSSP | CredSSP-EX).
    pub selected_for_client: Option<Protocol>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum TlsVersion {
    #[serde(rename = "TLSv1.0")]
    Tls10,
    #[serde(rename = "TLSv1.1")]
    Tls11,
    #[serde(rename = "TLSv1.2")]
    Tls12,
    #[serde(rename = "TLSv1.3")]
    Tls13,
}

impl TlsVersion {
    pub const ALL: [TlsVersion; 4] = [TlsVersion::Tls10, TlsVersion::Tls11, TlsVersion::Tls12, TlsVersion::Tls13];
    pub fn name(self) -> &'static str {
        match self {
            TlsVersion::Tls10 => "TLSv1.0",
            TlsVersion::Tls11 => "TLSv1.1",
            TlsVersion::Tls12 => "TLSv1.2",
            TlsVersion::Tls13 => "TLSv1.3",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TlsAttempt {
    pub version: TlsVersion,
    pub accepted: bool,
    pub cipher: Option<String>,
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TlsDetail {
    /// The requestedProtocols used to start TLS (0 for a gateway's plain HTTPS).
    pub requested: u32,
    pub attempts: Vec<TlsAttempt>,
}

impl TlsDetail {
    pub fn accepted(&self) -> Vec<TlsVersion> {
        self.attempts.iter().filter(|a| a.accepted).map(|a| a.version).collect()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CertDetail {
    pub subject: String,
    pub issuer: String,
    pub common_names: Vec<String>,
    pub dns_names: Vec<String>,
    pub ip_addresses: Vec<String>,
    #[serde(with = "time::serde::rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub not_before: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub not_after: OffsetDateTime,
    /// Days until expiry (negative when expired).
    pub days_left: i64,
    pub self_signed: bool,
    /// Extended key usages by name or OID; empty when the extension is absent (any purpose).
    pub extended_key_usage: Vec<String>,
    pub key_algorithm: String,
    pub key_bits: Option<u32>,
    pub signature_algorithm: String,
    /// The name checked against the certificate.
    pub checked_name: String,
    pub name_matches: bool,
    pub chain_trusted: bool,
    /// Why the chain did not verify, when it did not.
    pub chain_error: Option<String>,
    pub sha1_thumbprint: String,
    pub sha256_fingerprint: String,
    pub chain_length: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GatewayDetail {
    pub name: String,
    pub port: u16,
    pub addresses: Vec<String>,
    pub tcp_ok: bool,
    pub tls: Option<TlsDetail>,
    pub certificate: Option<CertDetail>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ClockDetail {
    /// Local clock minus the rdpfleet server's, in milliseconds (positive: this machine is ahead).
    pub skew_ms: i64,
    /// Round-trip time of the measurement; the skew is accurate to about half of it, plus 1 s
    /// (the HTTP Date header has whole seconds).
    pub rtt_ms: u64,
    pub reference: String,
}

/// The diagnosis of one connection path: client → (gateway) → host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Diagnosis {
    /// `host:port` as the client connects to it.
    pub target: String,
    pub host: String,
    pub port: u16,
    pub gateway: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub started_at: OffsetDateTime,
    pub duration_ms: u64,
    /// `pass`, `warn` or `fail`.
    pub status: CheckStatus,
    /// The first layer that failed; later layers are `not_reached`.
    pub first_failing_layer: Option<Layer>,
    /// The root cause: the most severe finding of the first failing (else first warning) layer.
    pub cause: Option<String>,
    pub summary: String,
    pub layers: Vec<LayerReport>,
    pub dns: Option<DnsDetail>,
    pub tcp: Option<TcpDetail>,
    pub negotiation: Option<NegotiationDetail>,
    pub tls: Option<TlsDetail>,
    pub certificate: Option<CertDetail>,
    pub gateway_detail: Option<GatewayDetail>,
    pub clock: Option<ClockDetail>,
}

impl Diagnosis {
    pub fn layer(&self, layer: Layer) -> Option<&LayerReport> {
        self.layers.iter().find(|l| l.layer == layer)
    }

    /// Every finding of every layer.
    pub fn findings(&self) -> impl Iterator<Item = &Finding> {
        self.layers.iter().flat_map(|l| l.findings.iter())
    }

    pub fn has_cause(&self, cause: &str) -> bool {
        self.findings().any(|f| f.cause == cause)
    }
}
