//! Windows RDP hosts: is RDP enabled and listening, with which security layer, NLA and
//! certificate, through which firewall profile — and the fixes for each.
pub mod checks;
pub mod firewall_fixes;
pub mod listener_cert;
pub mod registry_checks;
