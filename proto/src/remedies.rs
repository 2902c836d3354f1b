//! What a person does about a cause, in a few steps: shown beside the automatic fix when there
//! is one, and instead of it when there is none (a gateway certificate is re-issued by whoever
//! runs the gateway; no agent can do that for them).

/// Manual remediation by cause id. A unit test keeps every id in the cause catalogue and every
/// cause without an automatic fix covered.
pub static REMEDIES: &[(&str, &str)] = &[
    (
        "net.dns_unresolved",
        "Check that the host's DNS record exists in the zone the clients use (nslookup NAME from an affected client); register the host again with ipconfig /registerdns, or give the clients the FQDN instead of the short name.",
    ),
    (
        "net.dns_timeout",
        "Check the DNS servers configured on the affected machines (ipconfig /all) and that they answer from the clients' network.",
    ),
    (
        "net.dns_unexpected_address",
        "Compare the address with the host's own; remove stale records or hosts-file entries (C:\\Windows\\System32\\drivers\\etc\\hosts) and flush the client's cache (ipconfig /flushdns).",
    ),
    (
        "net.port_closed",
        "On the host: allow Remote Desktop connections, check that the Remote Desktop Services service runs and which port it listens on (netstat -an | findstr 3389), and that no firewall rejects the port.",
    ),
    (
        "net.port_filtered",
        "Check the host's firewall (the Remote Desktop rules on the active profile, often a Public profile) and every firewall or network security group on the way; Test-NetConnection HOST -Port 3389 from an affected client.",
    ),
    (
        "net.host_unreachable",
        "Check the route from the affected clients to the host (VPN up, routing, the host powered on).",
    ),
    (
        "net.tcp_intermittent",
        "Look for packet loss on the way (pathping HOST), an overloaded host, or a load balancer member that fails health checks.",
    ),
    (
        "host.rdp_disabled",
        "Allow Remote Desktop connections on the host; when a Group Policy sets it, change the policy (\"Allow users to connect remotely by using Remote Desktop Services\") instead of the local setting.",
    ),
    (
        "host.tls12_disabled",
        "Enable TLS 1.2 for the server role in Schannel (SCHANNEL\\Protocols\\TLS 1.2\\Server: Enabled=1, DisabledByDefault=0) and restart the host.",
    ),
    (
        "host.listener_cert_expired",
        "Bind a valid certificate to the RDP listener: renew the CA-issued certificate, or delete the expired self-signed one from the Remote Desktop store and restart Remote Desktop Services so that Windows makes a new one.",
    ),
    (
        "host.listener_cert_expiring",
        "Renew the listener's certificate before it expires (the CA-issued one by auto-enrolment, or regenerate the self-signed one).",
    ),
    (
        "host.listener_cert_no_key",
        "Give Remote Desktop Services (NETWORK SERVICE) read access to the certificate's private key, or bind a certificate whose key is present.",
    ),
    (
        "host.listener_cert_missing",
        "Bind an existing certificate (SSLCertificateSHA1Hash on the RDP-Tcp listener) or remove the stale binding so that Windows makes a self-signed one.",
    ),
    (
        "host.service_stopped",
        "Start Remote Desktop Services (TermService) and set it to start automatically; the System event log tells why it stopped.",
    ),
    (
        "host.umrdp_stopped",
        "Start the Remote Desktop Services UserMode Port Redirector (UmRdpService); device redirection fails without it.",
    ),
    (
        "host.firewall_closed",
        "Enable the \"Remote Desktop\" firewall rule group on the host's active profile, or the equivalent Group Policy rule.",
    ),
    (
        "host.port_not_allowed",
        "Add an inbound firewall rule for the RDP port actually configured (PortNumber on RDP-Tcp), or move RDP back to 3389.",
    ),
    (
        "host.not_listening",
        "Check the RDP-Tcp listener: Remote Desktop allowed, TermService running, and the port it is configured for (qwinsta shows the listener).",
    ),
    (
        "host.network_public",
        "Classify the network as Private or Domain (the domain controller must be reachable for Domain), or allow Remote Desktop on the Public profile by policy.",
    ),
    (
        "client.mslicensing_cache",
        "Delete HKLM\\SOFTWARE\\Microsoft\\MSLicensing (export it first) and start the Remote Desktop client once as administrator to rebuild it.",
    ),
    (
        "client.cached_credentials",
        "Remove the saved credentials for the host (cmdkey /list, cmdkey /delete:TERMSRV/HOST) so the user types the current password.",
    ),
    (
        "client.server_auth_disabled",
        "Remove the policy that turns off server authentication (AuthenticationLevel) and fix the host certificates it was hiding.",
    ),
    (
        "client.cert_warnings_silenced",
        "Delete AuthenticationLevelOverride under HKCU\\Software\\Microsoft\\Terminal Server Client and find out who set it: it is a known malware tactic.",
    ),
    (
        "client.tls12_disabled",
        "Enable TLS 1.2 for the client role in Schannel (SCHANNEL\\Protocols\\TLS 1.2\\Client: Enabled=1, DisabledByDefault=0), often set by a hardening baseline, and restart the machine.",
    ),
    (
        "host.logon_failures",
        "Check the account named in the events: wrong or expired password, locked out, or not in Remote Desktop Users.",
    ),
    (
        "client.disconnect_0x904",
        "The client and host reached each other but could not agree on a secure channel: fix the cause the path probe names (TLS versions, certificate, security layer).",
    ),
    (
        "rdp.no_reply",
        "Something accepts connections on the port but does not speak RDP in time: check the host's load and Remote Desktop Services, or a proxy in the way.",
    ),
    (
        "rdp.not_rdp",
        "Another service answers on the RDP port: check the port configuration and any port forwarding to this address.",
    ),
    (
        "rdp.connection_reset",
        "The host closed the connection during negotiation: read the host's RemoteDesktopServices-RdpCoreTS and Schannel events for the reason.",
    ),
    (
        "rdp.tls_not_allowed",
        "Set the host's security layer to Negotiate or TLS (SecurityLayer 1 or 2 on RDP-Tcp, or the Group Policy \"Require use of specific security layer\").",
    ),
    (
        "rdp.server_cert_missing",
        "Give the host a usable certificate for the RDP listener (see the listener certificate steps).",
    ),
    (
        "rdp.inconsistent_flags",
        "The host answered with flags that contradict each other: update the host's RDP server software.",
    ),
    (
        "rdp.user_auth_required",
        "The host requires Network Level Authentication with credentials the client does not send: use a client that supports CredSSP, or relax the host's requirement only if policy allows.",
    ),
    (
        "rdp.negotiation_refused",
        "Set the host's security layer to Negotiate or TLS so it accepts a standard client request.",
    ),
    (
        "rdp.legacy_security_only",
        "Move the host to TLS (SecurityLayer 2) or update its RDP server: legacy RDP security does not authenticate the server.",
    ),
    (
        "rdp.legacy_security_selected",
        "Move the host to TLS (SecurityLayer 2): legacy RDP security does not authenticate the server.",
    ),
    (
        "rdp.unrequested_protocol",
        "The host chose a protocol the client did not offer: update the host's RDP server software.",
    ),
    (
        "rdp.nla_not_required",
        "Require Network Level Authentication on the host (UserAuthentication=1 on RDP-Tcp or the Group Policy).",
    ),
    (
        "tls.handshake_failed",
        "Compare the TLS versions enabled on both sides (Schannel Protocols keys, or xrdp's ssl_protocols) and enable TLS 1.2 where it is off.",
    ),
    (
        "tls.legacy_only",
        "Enable TLS 1.2 on the host (Schannel, or ssl_protocols in xrdp.ini) and then disable TLS 1.0/1.1.",
    ),
    ("tls.legacy_enabled", "Disable TLS 1.0 and 1.1 on the host once every client speaks TLS 1.2."),
    (
        "tls.weak_cipher",
        "Remove weak cipher suites from the host's order (Group Policy \"SSL Cipher Suite Order\", or tls_ciphers in xrdp.ini).",
    ),
    ("cert.expired", "Renew the host's RDP certificate (its own agent names how it is bound)."),
    (
        "cert.not_yet_valid",
        "Check the host's and the client's clocks; a certificate issued in the future was made on a machine with a wrong clock.",
    ),
    ("cert.expiring_soon", "Renew the host's RDP certificate before it expires."),
    (
        "cert.name_mismatch",
        "Issue the host's certificate for the name users type (add it as a subject alternative name), or have users connect by the name on the certificate.",
    ),
    (
        "cert.self_signed",
        "Issue the host a certificate from the company CA (Remote Desktop Authentication template with auto-enrolment) so clients can verify it.",
    ),
    (
        "cert.untrusted",
        "Trust the issuing CA on the clients (Group Policy: Trusted Root Certification Authorities) or give the host a certificate from a CA they trust.",
    ),
    (
        "cert.no_server_auth_eku",
        "Issue the host a certificate with the Server Authentication (or Remote Desktop Authentication) extended key usage.",
    ),
    ("cert.weak_key", "Issue the host a certificate with a key of at least 2048 bits (RSA) or 256 bits (ECDSA)."),
    ("cert.weak_signature", "Issue the host a certificate signed with SHA-256 or better."),
    ("cert.corrupt", "Replace the host's certificate: the one it presents cannot be parsed."),
    (
        "gateway.dns_unresolved",
        "Publish a DNS record for the RD Gateway name the clients use (internally and externally).",
    ),
    (
        "gateway.unreachable",
        "Check that the gateway's HTTPS port (443) is reachable from the clients: firewall, reverse proxy, the gateway service itself.",
    ),
    (
        "gateway.tls_failed",
        "Compare the TLS versions and cipher suites of the gateway with the clients'; enable TLS 1.2 on the gateway.",
    ),
    (
        "gateway.cert_expired",
        "Renew the RD Gateway's certificate and bind the new one in RD Gateway Manager (SSL Certificate tab).",
    ),
    ("gateway.cert_not_yet_valid", "Check the gateway's and clients' clocks, then re-issue the gateway certificate."),
    (
        "gateway.cert_expiring_soon",
        "Renew the RD Gateway's certificate before it expires and bind it in RD Gateway Manager.",
    ),
    (
        "gateway.cert_name_mismatch",
        "Re-issue the gateway certificate for the FQDN users type (subject or subject alternative name), or change the gateway name in the clients' settings to the name on the certificate.",
    ),
    (
        "gateway.cert_untrusted",
        "Import the gateway's root CA into the clients' Trusted Root Certification Authorities (Group Policy or Intune), or give the gateway a certificate from a public or company CA the clients trust.",
    ),
    ("gateway.cert_self_signed", "Replace the gateway's self-signed certificate with one from a CA the clients trust."),
    (
        "gateway.cert_no_server_auth_eku",
        "Issue the gateway a certificate with the Server Authentication extended key usage.",
    ),
    (
        "gateway.cert_weak_key",
        "Issue the gateway a certificate with a key of at least 2048 bits (RSA) or 256 bits (ECDSA).",
    ),
    ("gateway.cert_weak_signature", "Issue the gateway a certificate signed with SHA-256 or better."),
    ("gateway.cert_corrupt", "Replace the gateway's certificate: the one it presents cannot be parsed."),
    (
        "clock.skew",
        "Fix the machine's time source (w32tm /query /status; in a domain it follows the domain hierarchy) and resync (w32tm /resync).",
    ),
    ("clock.drift", "Check the machine's time synchronisation (w32tm /query /status)."),
];

/// The manual steps for a cause.
pub fn remedy(cause: &str) -> Option<&'static str> {
    REMEDIES.iter().find(|(c, _)| *c == cause).map(|(_, r)| *r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_cause_without_a_fix_has_manual_steps_and_no_remedy_is_orphaned() {
        for (c, text) in REMEDIES {
            assert!(crate::causes::lookup(c).is_some(), "{c} is not in the cause catalogue");
            assert!(text.len() > 20, "{c}");
        }
        for c in crate::causes::CAUSES {
            if c.fix.is_none() {
                assert!(remedy(c.id).is_some(), "{} has neither a fix nor manual steps", c.id);
            }
        }
    }
}
