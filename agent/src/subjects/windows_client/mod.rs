//! Windows RDP clients: their TLS and CredSSP settings, licensing cache, saved credentials and
//! the RD Gateway they use — and the fixes for each.
pub mod checks;
pub mod credential_fix;
