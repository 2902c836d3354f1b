//! The cause catalogue: every problem the probe and checks can name, with what it means, how
//! bad it is, which side must change, and the fix that resolves it. One table, shared by the
//! agent (which names causes) and the server (which explains them).
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Info,
    Low,
    Medium,
    High,
    /// Connections fail.
    Critical,
}

/// Which side has to change for the problem to go away.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Side {
    Client,
    Host,
    Gateway,
    Network,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Cause {
    pub id: &'static str,
    pub title: &'static str,
    pub explanation: &'static str,
    pub severity: Severity,
    pub side: Side,
    /// Fix from the fix catalogue that resolves it, when one exists.
    pub fix: Option<&'static str>,
}

const fn cause(
    id: &'static str,
    severity: Severity,
    side: Side,
    fix: Option<&'static str>,
    title: &'static str,
    explanation: &'static str,
) -> Cause {
    Cause { id, title, explanation, severity, side, fix }
}

use Severity::{Critical, High, Low, Medium};
use Side::{Client, Gateway, Host, Network};

pub static CAUSES: &[Cause] = &[
    // Name resolution and reachability.
    cause(
        "net.dns_unresolved",
        Critical,
        Network,
        None,
        "Host name does not resolve",
        "The name the client uses for the RDP host has no DNS record reachable from this machine, so no connection can start.",
    ),
    cause(
        "net.dns_timeout",
        Critical,
        Network,
        None,
        "DNS lookup timed out",
        "This machine's DNS servers did not answer in time for the RDP host's name.",
    ),
    cause(
        "net.dns_unexpected_address",
        High,
        Network,
        None,
        "Host name resolves to the wrong address",
        "The name resolves, but not to the address it should: a stale record, split-horizon DNS or a hosts-file entry sends the client elsewhere.",
    ),
    cause(
        "net.port_closed",
        Critical,
        Host,
        Some("host.rdp.enable"),
        "RDP port refuses connections",
        "The host answers but nothing accepts connections on the RDP port: Remote Desktop is disabled, the service is stopped, it listens on another port, or a firewall rejects the connection.",
    ),
    cause(
        "net.port_filtered",
        Critical,
        Network,
        None,
        "RDP port does not answer",
        "Connection attempts to the RDP port time out: a firewall drops them (often the host's own firewall on a Public network profile), or the host is down.",
    ),
    cause(
        "net.host_unreachable",
        Critical,
        Network,
        None,
        "Host unreachable",
        "There is no network route from this machine to the RDP host.",
    ),
    cause(
        "net.tcp_intermittent",
        Medium,
        Network,
        None,
        "Intermittent connection failures",
        "Some connection attempts to the RDP port fail while others succeed: packet loss, an overloaded host, or a load balancer with a bad member.",
    ),
    // Reported by a host's own agent.
    cause(
        "host.rdp_disabled",
        Critical,
        Host,
        Some("host.rdp.enable"),
        "Remote Desktop is disabled on the host",
        "fDenyTSConnections is 1 (locally or by Group Policy): the host refuses every RDP connection.",
    ),
    cause(
        "host.tls12_disabled",
        High,
        Host,
        Some("host.tls12.enable"),
        "TLS 1.2 is disabled for the server role",
        "Schannel's TLS 1.2 server role is disabled: RDP over TLS fails with clients that require it.",
    ),
    cause(
        "host.listener_cert_expired",
        Critical,
        Host,
        Some("host.cert.regenerate"),
        "The RDP listener's certificate has expired",
        "The certificate the host presents for RDP over TLS is outside its validity period: clients that check it refuse the connection, and Schannel logs 36881/36887.",
    ),
    cause(
        "host.listener_cert_expiring",
        Medium,
        Host,
        Some("host.cert.regenerate"),
        "The RDP listener's certificate expires soon",
        "The certificate the host presents for RDP over TLS expires within the warning period.",
    ),
    cause(
        "host.listener_cert_no_key",
        Critical,
        Host,
        Some("host.cert.regenerate"),
        "The RDP listener's certificate has no usable private key",
        "The certificate is in the store but its private key is missing or cannot be opened: the host cannot complete a TLS handshake (clients see 0x904 / 0x7).",
    ),
    cause(
        "host.listener_cert_missing",
        High,
        Host,
        Some("host.cert.regenerate"),
        "The RDP listener's certificate is missing",
        "SSLCertificateSHA1Hash names a certificate that is not in LocalMachine\\My, or the Remote Desktop store is empty: the listener has no certificate to offer.",
    ),
    cause(
        "host.service_stopped",
        Critical,
        Host,
        None,
        "Remote Desktop Services is not running",
        "TermService is stopped or not installed: nothing accepts RDP connections.",
    ),
    cause(
        "host.umrdp_stopped",
        Low,
        Host,
        None,
        "The RDP device redirector service is not running",
        "UmRdpService is stopped: connections work, but drives, printers and clipboard are not redirected.",
    ),
    cause(
        "host.firewall_closed",
        Critical,
        Host,
        Some("host.firewall.enable"),
        "The Remote Desktop firewall rules are off",
        "The firewall's \"Remote Desktop\" rule group is disabled on the active profile: the port is filtered and clients time out.",
    ),
    cause(
        "host.port_not_allowed",
        Critical,
        Host,
        None,
        "No firewall rule admits the RDP port",
        "The listener's PortNumber is not admitted by any enabled inbound rule on the active profile (typically the port was changed and the rule still says 3389).",
    ),
    cause(
        "host.not_listening",
        Critical,
        Host,
        None,
        "Nothing listens on the RDP port",
        "No process accepts connections on the listener's PortNumber on this host.",
    ),
    cause(
        "host.network_public",
        Medium,
        Host,
        Some("host.network.set_private"),
        "The network is classified as Public",
        "The active network's category is Public, whose firewall profile usually keeps Remote Desktop closed. Making it Private is a policy decision and needs approval.",
    ),
    // Reported by a client's own agent.
    cause(
        "client.mslicensing_cache",
        Low,
        Client,
        Some("client.mslicensing.clear"),
        "An RDP licensing cache is present",
        "The client keeps a licensing cache (HKLM\\SOFTWARE\\Microsoft\\MSLicensing). A stale one makes connections to Remote Desktop Session Hosts fail with licensing errors; Windows rebuilds it when cleared.",
    ),
    cause(
        "client.cached_credentials",
        Low,
        Client,
        Some("client.credentials.delete"),
        "Saved RDP credentials for a target",
        "Credential Manager holds TERMSRV/ credentials for a host this client connects to. After a password change they cause repeated failed logons (and lockouts).",
    ),
    cause(
        "client.server_auth_disabled",
        Medium,
        Client,
        None,
        "Server authentication is disabled by policy",
        "The AuthenticationLevel policy is 0: the client connects without verifying the server's identity, which hides certificate problems and allows interception.",
    ),
    cause(
        "client.cert_warnings_silenced",
        High,
        Client,
        None,
        "Certificate warnings are silenced (security)",
        "AuthenticationLevelOverride = 0 makes the RDP client accept any server certificate without a warning: a known attacker tactic. rdpfleet reports it and never sets it.",
    ),
    cause(
        "client.tls12_disabled",
        High,
        Client,
        Some("host.tls12.enable"),
        "TLS 1.2 is disabled for the client role",
        "Schannel's TLS 1.2 client role is disabled: connections to hosts and gateways that require TLS 1.2 fail.",
    ),
    cause(
        "host.logon_failures",
        Medium,
        Client,
        None,
        "Repeated RDP logon failures",
        "The host logged failed RDP logons (bad user name or password, RdpCoreTS 140): stale cached credentials on a client, or someone guessing passwords.",
    ),
    cause(
        "client.disconnect_0x904",
        High,
        Client,
        None,
        "Client disconnected with 0x904",
        "The RDP client logged disconnect reason 2308 (0x904, socket closed): client and host reached each other but the connection broke, typically while agreeing on a secure channel.",
    ),
    // X.224 negotiation (MS-RDPBCGR 2.2.1.2).
    cause(
        "rdp.no_reply",
        Critical,
        Host,
        None,
        "Port accepts but RDP never answers",
        "The TCP connection opens but no RDP negotiation reply arrives: the service is hung, or a proxy or firewall swallows the traffic.",
    ),
    cause(
        "rdp.not_rdp",
        Critical,
        Host,
        None,
        "Something other than RDP answers",
        "The reply on this port is not an RDP Connection Confirm: another service listens on the RDP port.",
    ),
    cause(
        "rdp.connection_reset",
        Critical,
        Host,
        None,
        "Connection closed during negotiation",
        "The host closed the connection before completing the RDP negotiation reply: an IPS, a listener fault, or a licensing/connection limit.",
    ),
    cause(
        "rdp.tls_not_allowed",
        High,
        Host,
        Some("host.security_layer.set"),
        "Host only allows legacy RDP security",
        "The host refuses TLS and NLA (SSL_NOT_ALLOWED_BY_SERVER, SecurityLayer=0). Clients that require TLS or NLA cannot agree on a secure channel: error 0x904 / extended 0x7.",
    ),
    cause(
        "rdp.server_cert_missing",
        Critical,
        Host,
        Some("host.cert.regenerate"),
        "Host has no usable TLS certificate",
        "The host is configured for TLS but has no certificate to use (SSL_CERT_NOT_ON_SERVER): every TLS or NLA connection fails.",
    ),
    cause(
        "rdp.inconsistent_flags",
        High,
        Host,
        None,
        "Host reports inconsistent negotiation flags",
        "The host answered INCONSISTENT_FLAGS to a standard client request: its RDP listener configuration is damaged.",
    ),
    cause(
        "rdp.user_auth_required",
        High,
        Client,
        None,
        "Host requires TLS with user authentication",
        "The host requires TLS with user authentication (SSL_WITH_USER_AUTH_REQUIRED_BY_SERVER), which standard clients do not offer.",
    ),
    cause(
        "rdp.negotiation_refused",
        High,
        Host,
        Some("host.security_layer.set"),
        "Host refuses the standard client request",
        "The host refused the protocols a current Windows client requests (TLS, CredSSP, CredSSP with early authorization).",
    ),
    cause(
        "rdp.legacy_security_only",
        High,
        Host,
        Some("host.security_layer.set"),
        "Host does not negotiate security",
        "The host answers without negotiation data, as pre-Vista servers do: only legacy RDP security is possible and clients that require TLS or NLA disconnect.",
    ),
    cause(
        "rdp.legacy_security_selected",
        High,
        Host,
        Some("host.security_layer.set"),
        "Host chose legacy RDP security",
        "Offered TLS and NLA, the host selected legacy RDP security. Clients that require TLS or NLA disconnect with 0x904 / 0x7; others connect without server authentication.",
    ),
    cause(
        "rdp.unrequested_protocol",
        High,
        Host,
        None,
        "Host selected a protocol the client did not offer",
        "The host's negotiation reply selects a security protocol that was not in the request; clients abort the connection.",
    ),
    cause(
        "rdp.nla_not_required",
        Low,
        Host,
        Some("host.nla.enable"),
        "Network Level Authentication is not required",
        "The host accepts connections without NLA, so anyone can reach its logon screen and exhaust sessions before authenticating.",
    ),
    // TLS.
    cause(
        "tls.handshake_failed",
        Critical,
        Host,
        Some("host.tls12.enable"),
        "No TLS version works",
        "The host selected TLS but no TLS handshake (1.0 to 1.3) completes: Schannel protocols or cipher suites are disabled, or the certificate's private key is unusable.",
    ),
    cause(
        "tls.legacy_only",
        High,
        Host,
        Some("host.tls12.enable"),
        "Host only speaks TLS 1.0/1.1",
        "The host offers neither TLS 1.2 nor 1.3. Clients with the old versions disabled (the default on current Windows) cannot connect.",
    ),
    cause(
        "tls.legacy_enabled",
        Low,
        Host,
        None,
        "TLS 1.0/1.1 still enabled",
        "The host still accepts TLS 1.0 or 1.1, which are deprecated and weak.",
    ),
    cause(
        "tls.weak_cipher",
        Medium,
        Host,
        None,
        "Weak cipher negotiated",
        "The host chose a cipher suite with RC4, 3DES, NULL or export-grade encryption.",
    ),
    // The host's certificate.
    cause(
        "cert.expired",
        High,
        Host,
        Some("host.cert.regenerate"),
        "RDP certificate expired",
        "The host's RDP certificate is past its end date. Clients warn or, when server authentication is required, refuse to connect.",
    ),
    cause(
        "cert.not_yet_valid",
        High,
        Host,
        Some("host.cert.regenerate"),
        "RDP certificate not yet valid",
        "The host's RDP certificate starts in the future: its clock or the issuing CA's clock is wrong.",
    ),
    cause(
        "cert.expiring_soon",
        Medium,
        Host,
        Some("host.cert.regenerate"),
        "RDP certificate expires soon",
        "The host's RDP certificate expires within the warning period.",
    ),
    cause(
        "cert.name_mismatch",
        High,
        Host,
        Some("host.cert.regenerate"),
        "RDP certificate does not match the host name",
        "Neither the certificate's subject alternative names nor its common name match the name clients use, so clients cannot authenticate the host.",
    ),
    cause(
        "cert.self_signed",
        Medium,
        Host,
        None,
        "Self-signed RDP certificate",
        "The host presents a self-signed certificate that clients do not trust; users are trained to click through warnings, and strict clients refuse.",
    ),
    cause(
        "cert.untrusted",
        Medium,
        Client,
        None,
        "RDP certificate chain is not trusted",
        "The host's certificate does not chain to a root this machine trusts (or to the configured CA bundle).",
    ),
    cause(
        "cert.no_server_auth_eku",
        High,
        Host,
        Some("host.cert.regenerate"),
        "Certificate not valid for server authentication",
        "The certificate's extended key usage lacks Server Authentication (1.3.6.1.5.5.7.3.1) and Remote Desktop Authentication (1.3.6.1.4.1.311.54.1.2).",
    ),
    cause(
        "cert.weak_key",
        Medium,
        Host,
        Some("host.cert.regenerate"),
        "Weak certificate key",
        "The certificate's key is shorter than 2048 bits (RSA) or 256 bits (EC).",
    ),
    cause(
        "cert.weak_signature",
        Medium,
        Host,
        Some("host.cert.regenerate"),
        "Weak certificate signature",
        "The certificate is signed with SHA-1 or MD5, which current clients reject or distrust.",
    ),
    cause(
        "cert.corrupt",
        High,
        Host,
        Some("host.cert.regenerate"),
        "Certificate cannot be read",
        "The host presented a certificate that does not parse as X.509.",
    ),
    // RD Gateway.
    cause(
        "gateway.dns_unresolved",
        Critical,
        Network,
        None,
        "RD Gateway name does not resolve",
        "The RD Gateway's name has no DNS record reachable from this machine.",
    ),
    cause(
        "gateway.unreachable",
        Critical,
        Network,
        None,
        "RD Gateway unreachable on 443",
        "TCP port 443 on the RD Gateway refuses or drops connections.",
    ),
    cause(
        "gateway.tls_failed",
        Critical,
        Gateway,
        None,
        "RD Gateway TLS handshake fails",
        "No TLS handshake with the RD Gateway completes.",
    ),
    cause(
        "gateway.cert_expired",
        Critical,
        Gateway,
        None,
        "RD Gateway certificate expired",
        "The gateway's certificate is past its end date; clients refuse to connect through it.",
    ),
    cause(
        "gateway.cert_not_yet_valid",
        Critical,
        Gateway,
        None,
        "RD Gateway certificate not yet valid",
        "The gateway's certificate starts in the future.",
    ),
    cause(
        "gateway.cert_expiring_soon",
        Medium,
        Gateway,
        None,
        "RD Gateway certificate expires soon",
        "The gateway's certificate expires within the warning period.",
    ),
    cause(
        "gateway.cert_name_mismatch",
        Critical,
        Gateway,
        None,
        "RD Gateway certificate does not match its name",
        "The gateway's certificate does not match the gateway name clients use; every client through this gateway fails.",
    ),
    cause(
        "gateway.cert_untrusted",
        Critical,
        Client,
        None,
        "RD Gateway certificate not trusted",
        "The gateway's certificate does not chain to a root this machine trusts; clients refuse the gateway (its CA must be in the machine's Trusted Root store).",
    ),
    cause(
        "gateway.cert_self_signed",
        Critical,
        Gateway,
        None,
        "RD Gateway certificate is self-signed",
        "The gateway presents a self-signed certificate that clients do not trust.",
    ),
    cause(
        "gateway.cert_no_server_auth_eku",
        Critical,
        Gateway,
        None,
        "RD Gateway certificate not valid for server authentication",
        "The gateway's certificate lacks the Server Authentication extended key usage.",
    ),
    cause(
        "gateway.cert_weak_key",
        Medium,
        Gateway,
        None,
        "Weak RD Gateway certificate key",
        "The gateway certificate's key is shorter than 2048 bits (RSA) or 256 bits (EC).",
    ),
    cause(
        "gateway.cert_weak_signature",
        Medium,
        Gateway,
        None,
        "Weak RD Gateway certificate signature",
        "The gateway's certificate is signed with SHA-1 or MD5.",
    ),
    cause(
        "gateway.cert_corrupt",
        Critical,
        Gateway,
        None,
        "RD Gateway certificate cannot be read",
        "The gateway presented a certificate that does not parse as X.509.",
    ),
    // Time.
    cause(
        "clock.skew",
        High,
        Client,
        None,
        "Clock skew",
        "This machine's clock differs from the rdpfleet server's by more than 5 minutes: Kerberos and CredSSP (NLA) fail, and certificates look expired or not yet valid.",
    ),
    cause(
        "clock.drift",
        Low,
        Client,
        None,
        "Clock drift",
        "This machine's clock differs from the rdpfleet server's by more than a minute.",
    ),
];

/// Causes a `warn` result carries when connections fail only some of the time: they form
/// incidents (marked intermittent) although the path as a whole still works.
pub static INTERMITTENT: &[&str] = &["net.tcp_intermittent"];

pub fn means_intermittent(id: &str) -> bool {
    INTERMITTENT.contains(&id)
}

/// The catalogue entry for a cause id.
pub fn lookup(id: &str) -> Option<&'static Cause> {
    CAUSES.iter().find(|c| c.id == id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_well_formed() {
        let mut seen = std::collections::HashSet::new();
        for c in CAUSES {
            assert!(seen.insert(c.id), "duplicate cause {}", c.id);
            assert!(
                c.id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'_'),
                "{}",
                c.id
            );
            assert!(c.id.len() <= crate::check::MAX_CHECK_ID_LEN);
            assert!(!c.title.is_empty() && !c.explanation.is_empty());
        }
        assert_eq!(lookup("cert.expired").map(|c| c.side), Some(Side::Host));
        // A named fix is one the agents have: never a promise the product cannot keep.
        for c in CAUSES {
            if let Some(f) = c.fix {
                assert!(crate::fixes::lookup(f).is_some(), "{}: fix {f} is not in the fix catalogue", c.id);
            }
        }
        assert!(lookup("nope").is_none());
    }
}
