//! What each check looks at, in words: the dashboard shows these titles first and the ids
//! second. The agent's test keeps this table equal to the checks it has.

pub static CHECK_TITLES: &[(&str, &str)] = &[
    ("rdp.path", "Connection path to an RDP host"),
    ("host.rdp_enabled", "Remote Desktop allowed"),
    ("host.nla", "Network Level Authentication required"),
    ("host.security_layer", "RDP security layer"),
    ("host.tls12", "TLS 1.2 for the server role"),
    ("host.listener_cert", "RDP listener certificate"),
    ("host.rdp_services", "Remote Desktop services running"),
    ("host.firewall", "Remote Desktop firewall rules"),
    ("host.port", "RDP port listening and allowed"),
    ("host.network_category", "Network category (Public/Private)"),
    ("host.identity", "Host names and addresses"),
    ("client.tls12", "TLS 1.2 for the client role"),
    ("client.auth_policy", "Server authentication policy"),
    ("client.cert_warning_override", "Certificate warnings override"),
    ("client.mslicensing", "RDP licensing cache"),
    ("client.saved_credentials", "Saved RDP credentials"),
    ("client.gateway_trust", "RD Gateway certificate trusted"),
    ("events.recent", "Recent RDP events in the event log"),
    ("xrdp.security_layer", "xrdp security layer"),
    ("xrdp.certificate", "xrdp certificate"),
    ("xrdp.tls_protocols", "xrdp TLS versions"),
];

/// The title of a check, `None` for one this catalogue does not know (a newer agent).
pub fn title(id: &str) -> Option<&'static str> {
    CHECK_TITLES.iter().find(|(c, _)| *c == id).map(|(_, t)| *t)
}
