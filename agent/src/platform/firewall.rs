//! Windows Defender Firewall and the network category that selects its profile. On Windows
//! through COM (INetFwPolicy2, INetworkListManager); Wine stubs both, so their logic is tested
//! through these traits with the in-memory fakes.
use serde::{Deserialize, Serialize};

use super::{PlatformError, PlatformResult};

/// The "Remote Desktop" rule group, by its language-independent indirect name.
pub const REMOTE_DESKTOP_GROUP: &str = "@FirewallAPI.dll,-28752";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Profile {
    Domain,
    Private,
    Public,
}

impl Profile {
    pub const ALL: [Profile; 3] = [Profile::Domain, Profile::Private, Profile::Public];

    /// NET_FW_PROFILE_TYPE2 bit.
    pub fn bit(self) -> i32 {
        match self {
            Profile::Domain => 1,
            Profile::Private => 2,
            Profile::Public => 4,
        }
    }

    pub fn in_mask(mask: i32) -> Vec<Profile> {
        Profile::ALL.into_iter().filter(|p| mask & p.bit() != 0).collect()
    }
}

/// An inbound rule, reduced to what decides whether RDP gets through.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InboundRule {
    pub name: String,
    pub group: String,
    pub enabled: bool,
    pub allow: bool,
    /// TCP (or any protocol).
    pub tcp: bool,
    /// As the firewall spells it: `3389`, `3389-3390,5000`, `*`, `RPC`...
    pub local_ports: String,
    /// NET_FW_PROFILE_TYPE2 mask.
    pub profiles: i32,
}

impl InboundRule {
    /// Whether the rule lets TCP `port` in on `profile`.
    pub fn admits(&self, port: u16, profile: Profile) -> bool {
        self.enabled
            && self.allow
            && self.tcp
            && self.profiles & profile.bit() != 0
            && ports_include(&self.local_ports, port)
    }
}

/// Whether a firewall port list (`*`, `Any`, `80,3389-3390`) includes `port`.
pub fn ports_include(list: &str, port: u16) -> bool {
    list.split(',').map(str::trim).any(|item| {
        if item == "*" || item.eq_ignore_ascii_case("any") {
            return true;
        }
        match item.split_once('-') {
            Some((lo, hi)) => match (lo.trim().parse::<u16>(), hi.trim().parse::<u16>()) {
                (Ok(lo), Ok(hi)) => (lo..=hi).contains(&port),
                _ => false,
            },
            None => item.parse::<u16>() == Ok(port),
        }
    })
}

pub trait Firewall: Send + Sync {
    /// The profiles in force now (one per connected network type).
    fn active_profiles(&self) -> PlatformResult<Vec<Profile>>;
    /// Whether the firewall filters on this profile at all.
    fn profile_enabled(&self, profile: Profile) -> PlatformResult<bool>;
    /// Whether every rule of the group is enabled on the profile.
    fn group_enabled(&self, group: &str, profile: Profile) -> PlatformResult<bool>;
    fn set_group(&self, group: &str, profile: Profile, enabled: bool) -> PlatformResult<()>;
    fn inbound_rules(&self) -> PlatformResult<Vec<InboundRule>>;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    Public,
    Private,
    DomainAuthenticated,
}

impl Category {
    /// NLM_NETWORK_CATEGORY.
    pub fn from_nlm(v: i32) -> Option<Category> {
        match v {
            0 => Some(Category::Public),
            1 => Some(Category::Private),
            2 => Some(Category::DomainAuthenticated),
            _ => None,
        }
    }
    pub fn to_nlm(self) -> i32 {
        match self {
            Category::Public => 0,
            Category::Private => 1,
            Category::DomainAuthenticated => 2,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Network {
    /// The network's GUID, `{...}`.
    pub id: String,
    pub name: String,
    pub category: Category,
}

pub trait Networks: Send + Sync {
    /// The connected networks.
    fn connected(&self) -> PlatformResult<Vec<Network>>;
    /// Domain-authenticated is decided by Windows; only Public and Private can be set.
    fn set_category(&self, id: &str, category: Category) -> PlatformResult<()>;
}

/// Where there is no Windows firewall (Linux hosts use their own; xrdp checks cover them).
pub struct NoFirewall;

impl Firewall for NoFirewall {
    fn active_profiles(&self) -> PlatformResult<Vec<Profile>> {
        Err(PlatformError::Unsupported("Windows firewall"))
    }
    fn profile_enabled(&self, _: Profile) -> PlatformResult<bool> {
        Err(PlatformError::Unsupported("Windows firewall"))
    }
    fn group_enabled(&self, _: &str, _: Profile) -> PlatformResult<bool> {
        Err(PlatformError::Unsupported("Windows firewall"))
    }
    fn set_group(&self, _: &str, _: Profile, _: bool) -> PlatformResult<()> {
        Err(PlatformError::Unsupported("Windows firewall"))
    }
    fn inbound_rules(&self) -> PlatformResult<Vec<InboundRule>> {
        Err(PlatformError::Unsupported("Windows firewall"))
    }
}

impl Networks for NoFirewall {
    fn connected(&self) -> PlatformResult<Vec<Network>> {
        Err(PlatformError::Unsupported("network list manager"))
    }
    fn set_category(&self, _: &str, _: Category) -> PlatformResult<()> {
        Err(PlatformError::Unsupported("network list manager"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_lists() {
        for (list, port, want) in [
            ("3389", 3389, true),
            ("3389", 3390, false),
            ("80, 3380-3399", 3389, true),
            ("*", 1, true),
            ("Any", 1, true),
            ("RPC", 3389, false),
            ("", 3389, false),
            ("3390-x", 3389, false),
        ] {
            assert_eq!(ports_include(list, port), want, "{list} {port}");
        }
    }

    #[test]
    fn rules_admit_by_profile_direction_and_action() {
        let r = InboundRule {
            name: "RDP".into(),
            group: REMOTE_DESKTOP_GROUP.into(),
            enabled: true,
            allow: true,
            tcp: true,
            local_ports: "3389".into(),
            profiles: Profile::Domain.bit() | Profile::Private.bit(),
        };
        assert!(r.admits(3389, Profile::Private));
        assert!(!r.admits(3389, Profile::Public));
        assert!(!InboundRule { allow: false, ..r.clone() }.admits(3389, Profile::Domain));
        assert!(!InboundRule { enabled: false, ..r }.admits(3389, Profile::Domain));
        assert_eq!(Profile::in_mask(5), vec![Profile::Domain, Profile::Public]);
    }
}
