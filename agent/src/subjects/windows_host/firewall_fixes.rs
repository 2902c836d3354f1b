//! Firewall and network-category fixes: enable the "Remote Desktop" rule group on the active
//! profiles (and only there), and make Public networks Private (a policy decision: approval).
use serde_json::Value;

use crate::engine::backup::Saved;
use crate::engine::fix::{Backup, Fix, FixError, Verdict, no_params};
use crate::platform::firewall::{Category, REMOTE_DESKTOP_GROUP};
use crate::platform::{Platform, PlatformResult};

/// Active profiles on which the firewall filters and the group is off.
pub fn closed_profiles(p: &Platform) -> PlatformResult<Vec<crate::platform::firewall::Profile>> {
    let mut closed = Vec::new();
    for profile in p.firewall.active_profiles()? {
        if p.firewall.profile_enabled(profile)? && !p.firewall.group_enabled(REMOTE_DESKTOP_GROUP, profile)? {
            closed.push(profile);
        }
    }
    Ok(closed)
}

pub struct EnableRemoteDesktopGroup;

impl Fix for EnableRemoteDesktopGroup {
    fn id(&self) -> &'static str {
        "host.firewall.enable"
    }
    fn verify(&self, p: &Platform, params: &Value) -> Result<Verdict, FixError> {
        no_params(params)?;
        let closed = closed_profiles(p)?;
        Ok(Verdict {
            ok: closed.is_empty(),
            detail: if closed.is_empty() {
                "Remote Desktop is allowed on every active profile".into()
            } else {
                format!("Remote Desktop rules are off on {closed:?}")
            },
        })
    }
    fn backup(&self, p: &Platform, _: &Value) -> Result<Backup, FixError> {
        let mut b = Backup::default();
        for profile in closed_profiles(p)? {
            b.firewall_group(p, REMOTE_DESKTOP_GROUP, profile)?;
        }
        Ok(b)
    }
    fn apply(&self, p: &Platform, _: &Value) -> Result<(), FixError> {
        for profile in closed_profiles(p)? {
            p.firewall.set_group(REMOTE_DESKTOP_GROUP, profile, true)?;
        }
        Ok(())
    }
}

pub struct SetNetworkPrivate;

impl Fix for SetNetworkPrivate {
    fn id(&self) -> &'static str {
        "host.network.set_private"
    }
    fn verify(&self, p: &Platform, params: &Value) -> Result<Verdict, FixError> {
        no_params(params)?;
        let public: Vec<String> =
            p.networks.connected()?.into_iter().filter(|n| n.category == Category::Public).map(|n| n.name).collect();
        Ok(Verdict {
            ok: public.is_empty(),
            detail: if public.is_empty() {
                "no connected network is Public".into()
            } else {
                format!("Public: {}", public.join(", "))
            },
        })
    }
    fn backup(&self, p: &Platform, _: &Value) -> Result<Backup, FixError> {
        let saved = p
            .networks
            .connected()?
            .into_iter()
            .filter(|n| n.category == Category::Public)
            .map(|n| Saved::NetworkCategory { id: n.id, name: n.name, category: n.category })
            .collect();
        Ok(Backup { saved })
    }
    fn apply(&self, p: &Platform, _: &Value) -> Result<(), FixError> {
        for n in p.networks.connected()? {
            if n.category == Category::Public {
                p.networks.set_category(&n.id, Category::Private)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::fix::{FixOutcome, run};
    use crate::platform::firewall::{Network, Profile};
    use crate::platform::memory::MemoryPlatform;
    use serde_json::json;

    fn groups(m: &MemoryPlatform) -> Vec<(String, Profile)> {
        m.firewall.groups.lock().unwrap().iter().cloned().collect()
    }

    #[test]
    fn enables_the_group_only_where_it_was_off_and_restores_exactly() {
        let m = MemoryPlatform::new();
        *m.firewall.active.lock().unwrap() = vec![Profile::Domain, Profile::Public];
        m.firewall.groups.lock().unwrap().insert((REMOTE_DESKTOP_GROUP.into(), Profile::Domain));
        let p = m.platform();
        let before = groups(&m);
        let r = run(&EnableRemoteDesktopGroup, &p, &json!({}), false);
        assert_eq!(r.outcome, FixOutcome::Succeeded, "{r:?}");
        assert_eq!(r.backup.saved.len(), 1, "only the Public profile was off");
        assert!(p.firewall.group_enabled(REMOTE_DESKTOP_GROUP, Profile::Public).unwrap());
        assert!(!p.firewall.group_enabled(REMOTE_DESKTOP_GROUP, Profile::Private).unwrap(), "inactive: untouched");
        assert_eq!(run(&EnableRemoteDesktopGroup, &p, &json!({}), false).outcome, FixOutcome::AlreadyCompliant);
        r.backup.restore(&p).unwrap();
        assert_eq!(groups(&m), before, "disabled again only where it was off");
    }

    #[test]
    fn a_profile_with_the_firewall_off_needs_nothing_and_wine_errors_fail_cleanly() {
        let m = MemoryPlatform::new();
        m.firewall.disabled_profiles.lock().unwrap().insert(Profile::Private);
        let p = m.platform();
        assert_eq!(run(&EnableRemoteDesktopGroup, &p, &json!({}), false).outcome, FixOutcome::AlreadyCompliant);
        m.firewall.broken.store(true, std::sync::atomic::Ordering::Relaxed);
        let r = run(&EnableRemoteDesktopGroup, &p, &json!({}), false);
        assert_eq!(r.outcome, FixOutcome::Failed);
        assert!(r.message.contains("not implemented"), "{}", r.message);
    }

    #[test]
    fn apply_failure_rolls_back_the_profiles_already_enabled() {
        /// Enables the group, then fails: the rollback must disable it again.
        struct HalfWay;
        impl Fix for HalfWay {
            fn id(&self) -> &'static str {
                "test.half"
            }
            fn verify(&self, p: &Platform, v: &Value) -> Result<Verdict, FixError> {
                EnableRemoteDesktopGroup.verify(p, v)
            }
            fn backup(&self, p: &Platform, v: &Value) -> Result<Backup, FixError> {
                EnableRemoteDesktopGroup.backup(p, v)
            }
            fn apply(&self, p: &Platform, _: &Value) -> Result<(), FixError> {
                p.firewall.set_group(REMOTE_DESKTOP_GROUP, Profile::Domain, true)?;
                Err(FixError::Precondition("interrupted".into()))
            }
        }
        let m = MemoryPlatform::new();
        *m.firewall.active.lock().unwrap() = vec![Profile::Domain, Profile::Private];
        let p = m.platform();
        let r = run(&HalfWay, &p, &json!({}), false);
        assert_eq!(r.outcome, FixOutcome::RolledBack, "{r:?}");
        assert!(groups(&m).is_empty(), "the profile enabled before the failure is off again");
    }

    #[test]
    fn public_networks_become_private_and_back() {
        let m = MemoryPlatform::new();
        *m.firewall.networks.lock().unwrap() = vec![
            Network { id: "{A}".into(), name: "corp".into(), category: Category::DomainAuthenticated },
            Network { id: "{B}".into(), name: "hotel".into(), category: Category::Public },
        ];
        let p = m.platform();
        assert!(crate::engine::fix::info(&SetNetworkPrivate).unwrap().needs_approval());
        let before = m.firewall.networks.lock().unwrap().clone();
        let r = run(&SetNetworkPrivate, &p, &json!({}), false);
        assert_eq!(r.outcome, FixOutcome::Succeeded, "{r:?}");
        assert_eq!(p.networks.connected().unwrap()[1].category, Category::Private);
        assert_eq!(p.networks.connected().unwrap()[0].category, Category::DomainAuthenticated);
        r.backup.restore(&p).unwrap();
        assert_eq!(*m.firewall.networks.lock().unwrap(), before);
    }
}
