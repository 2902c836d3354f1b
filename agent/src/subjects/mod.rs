//! Every subject the agent checks and repairs, one folder (or file) each, and the two
//! catalogues. Adding a check is adding its file to its subject and a line to [`all_checks`];
//! adding a fix is the same with [`all_fixes`] (and its entry in `rdpfleet_proto::fixes`,
//! which the server validates rollouts against).
use crate::config::XrdpSettings;
use crate::engine::check::Check;
use crate::engine::fix::Fix;

pub mod events;
pub mod identity;
pub mod rdp_path;
pub mod registry_fixes;
pub mod windows_client;
pub mod windows_host;
pub mod xrdp;

// The fixes against the real Windows APIs (under Wine in CI); seeding a certificate store takes
// one raw FFI call.
#[cfg(test)]
#[cfg(windows)]
#[allow(unsafe_code)]
mod native_tests;

/// Every check this agent knows, in the order a troubleshooter would walk them.
pub fn all_checks() -> Vec<Box<dyn Check>> {
    let mut v: Vec<Box<dyn Check>> = vec![Box::new(rdp_path::RdpPath)];
    v.extend(windows_host::registry_checks::checks());
    v.extend(windows_host::checks::checks());
    v.extend(windows_client::checks::checks());
    v.push(Box::new(events::RecentEvents));
    v.push(Box::new(identity::HostIdentity));
    v.extend(xrdp::host_checks::checks());
    v
}

/// Every fix this agent knows; `xrdp` configures the xrdp ones.
pub fn all_fixes(xrdp: &XrdpSettings) -> Vec<Box<dyn Fix>> {
    let mut v: Vec<Box<dyn Fix>> = registry_fixes::all();
    v.push(Box::new(windows_host::listener_cert::RegenerateSelfSigned));
    v.push(Box::new(windows_host::firewall_fixes::EnableRemoteDesktopGroup));
    v.push(Box::new(windows_host::firewall_fixes::SetNetworkPrivate));
    v.push(Box::new(windows_client::credential_fix::DeleteTermsrvCredentials));
    v.extend(xrdp::fixes(xrdp));
    v
}

pub fn find_fix(id: &str) -> Option<Box<dyn Fix>> {
    all_fixes(&XrdpSettings::default()).into_iter().find(|f| f.id() == id)
}

#[cfg(test)]
mod catalogue_tests {
    /// The dashboard names checks by the shared titles: every check this agent has has one.
    #[test]
    fn every_check_has_a_title_in_the_shared_catalogue() {
        for c in super::all_checks() {
            assert!(rdpfleet_proto::checks::title(c.id()).is_some(), "{} has no title in proto::checks", c.id());
        }
    }

    /// The server validates rollouts against `rdpfleet_proto::fixes`, and the agent takes each
    /// fix's title and risk from it: it must list exactly the fixes this agent has, besides the
    /// agent update (carried out by `update`, not the fix runner).
    #[test]
    fn the_shared_catalogue_lists_exactly_the_agents_fixes() {
        let ours = super::all_fixes(&crate::config::XrdpSettings::default());
        let mut ids: Vec<&str> = ours.iter().map(|f| f.id()).collect();
        ids.sort_unstable();
        let mut shared: Vec<&str> = rdpfleet_proto::fixes::FIXES
            .iter()
            .filter(|f| f.platform != rdpfleet_proto::fixes::FixPlatform::Agent)
            .map(|f| f.id)
            .collect();
        shared.sort_unstable();
        assert_eq!(ids, shared);
    }
}
