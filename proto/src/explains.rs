//! Causal relations between causes: "X explains Y" when X being true is enough for Y to be
//! observed (RDP disabled on a host explains that nothing listens on its port and that clients
//! find the port closed). Correlation uses them to name the root of a set of findings and to
//! list the rest as its symptoms; severity only breaks ties between unrelated causes.
//!
//! The relation is read transitively: `host.rdp_disabled` explains `host.not_listening`, which
//! explains `net.port_closed`, so the first explains the last.

/// Direct relations, cause → the causes it explains. A unit test keeps every id in the cause
/// catalogue and the graph free of cycles.
pub static EXPLAINS: &[(&str, &[&str])] = &[
    // A host that does not accept RDP: what its own agent sees explains what clients see.
    ("host.rdp_disabled", &["host.not_listening", "net.port_closed"]),
    ("host.service_stopped", &["host.not_listening", "host.umrdp_stopped", "rdp.no_reply"]),
    ("host.not_listening", &["net.port_closed"]),
    // Windows firewall rules are per profile: a Public profile is why the rules do not apply.
    ("host.network_public", &["host.firewall_closed", "host.port_not_allowed"]),
    ("host.firewall_closed", &["host.port_not_allowed", "net.port_filtered", "net.port_closed"]),
    ("host.port_not_allowed", &["net.port_filtered"]),
    // Schannel on the host: clients' handshakes fail and their logs show 0x904.
    ("host.tls12_disabled", &["tls.handshake_failed", "tls.legacy_only"]),
    // The listener's certificate as the host's agent reads it, as clients see it.
    ("host.listener_cert_expired", &["cert.expired"]),
    ("host.listener_cert_expiring", &["cert.expiring_soon"]),
    ("host.listener_cert_no_key", &["rdp.server_cert_missing", "tls.handshake_failed", "rdp.connection_reset"]),
    ("host.listener_cert_missing", &["rdp.server_cert_missing", "tls.handshake_failed"]),
    // Schannel on the client: no handshake succeeds from it.
    ("client.tls12_disabled", &["tls.handshake_failed", "tls.legacy_only", "gateway.tls_failed"]),
    // A client whose clock is wrong judges valid certificates expired or not yet valid.
    ("clock.skew", &["cert.expired", "cert.not_yet_valid", "gateway.cert_expired", "gateway.cert_not_yet_valid"]),
    // What the client's event log shows after a failed security negotiation.
    ("tls.handshake_failed", &["client.disconnect_0x904"]),
    ("tls.legacy_only", &["client.disconnect_0x904"]),
    ("rdp.tls_not_allowed", &["client.disconnect_0x904"]),
    ("rdp.negotiation_refused", &["client.disconnect_0x904"]),
    ("rdp.user_auth_required", &["client.disconnect_0x904"]),
    ("rdp.server_cert_missing", &["client.disconnect_0x904"]),
    ("cert.expired", &["client.disconnect_0x904"]),
    ("cert.untrusted", &["client.disconnect_0x904"]),
    // Name resolution comes before everything that needs the address.
    ("net.dns_unresolved", &["net.host_unreachable"]),
    ("net.dns_timeout", &["net.host_unreachable"]),
    (
        "net.dns_unexpected_address",
        &["net.port_filtered", "net.port_closed", "net.host_unreachable", "cert.name_mismatch"],
    ),
    ("gateway.dns_unresolved", &["gateway.unreachable"]),
];

fn direct(cause: &str) -> &'static [&'static str] {
    EXPLAINS.iter().find(|(c, _)| *c == cause).map_or(&[], |(_, e)| e)
}

/// Whether `cause` explains `symptom`, directly or through other causes. A cause does not
/// explain itself.
pub fn explains(cause: &str, symptom: &str) -> bool {
    // Depth-first over a small acyclic graph (a test keeps it acyclic, so this terminates).
    let mut stack: Vec<&str> = direct(cause).to_vec();
    let mut seen: Vec<&str> = Vec::new();
    while let Some(c) = stack.pop() {
        if c == symptom {
            return true;
        }
        if !seen.contains(&c) {
            seen.push(c);
            stack.extend_from_slice(direct(c));
        }
    }
    false
}

/// Of `present` causes, the ones no other present cause explains: the candidates for the root.
pub fn unexplained<'a>(present: &[&'a str]) -> Vec<&'a str> {
    present.iter().copied().filter(|s| !present.iter().any(|c| c != s && explains(c, s))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_relation_names_catalogued_causes_and_has_no_cycle() {
        for (c, symptoms) in EXPLAINS {
            assert!(crate::causes::lookup(c).is_some(), "{c} is not in the cause catalogue");
            for s in *symptoms {
                assert!(crate::causes::lookup(s).is_some(), "{s} (explained by {c}) is not in the catalogue");
            }
            assert!(!explains(c, c), "{c} explains itself through a cycle");
        }
        assert_eq!(EXPLAINS.iter().map(|(c, _)| c).collect::<std::collections::HashSet<_>>().len(), EXPLAINS.len());
    }

    #[test]
    fn relations_are_transitive_and_directed() {
        assert!(explains("host.rdp_disabled", "net.port_closed"));
        assert!(explains("host.network_public", "net.port_filtered"));
        assert!(explains("client.tls12_disabled", "client.disconnect_0x904"));
        assert!(!explains("net.port_closed", "host.rdp_disabled"));
        assert!(!explains("cert.expired", "cert.expired"));
        assert!(!explains("nope", "cert.expired"));
    }

    #[test]
    fn the_unexplained_causes_are_the_roots() {
        assert_eq!(unexplained(&["host.not_listening", "host.rdp_disabled"]), vec!["host.rdp_disabled"]);
        assert_eq!(unexplained(&["client.disconnect_0x904", "client.tls12_disabled"]), vec!["client.tls12_disabled"]);
        // Unrelated causes stay side by side; severity decides between them elsewhere.
        assert_eq!(unexplained(&["cert.expired", "host.umrdp_stopped"]), vec!["cert.expired", "host.umrdp_stopped"]);
    }
}
