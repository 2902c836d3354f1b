//! Windows Defender Firewall (INetFwPolicy2) and the network list (INetworkListManager), over
//! COM. Wine answers E_NOTIMPL for both; their logic is tested through the traits with fakes.
use windows::Win32::Foundation::{VARIANT_FALSE, VARIANT_TRUE};
use windows::Win32::NetworkManagement::WindowsFirewall::{
    INetFwPolicy2, INetFwRule, NET_FW_ACTION_ALLOW, NET_FW_IP_PROTOCOL_ANY, NET_FW_IP_PROTOCOL_TCP,
    NET_FW_PROFILE_TYPE2, NET_FW_RULE_DIR_IN, NetFwPolicy2,
};
use windows::Win32::Networking::NetworkListManager::{
    INetwork, INetworkListManager, NLM_ENUM_NETWORK_CONNECTED, NLM_NETWORK_CATEGORY, NetworkListManager,
};
use windows::Win32::System::Com::{CLSCTX_ALL, CoCreateInstance, IDispatch};
use windows::Win32::System::Ole::IEnumVARIANT;
use windows::Win32::System::Variant::{VARIANT, VT_DISPATCH, VariantClear};
use windows::core::{BSTR, Interface};

use super::{Com, win_error};
use crate::platform::PlatformResult;
use crate::platform::firewall::{Category, Firewall, InboundRule, Network, Networks, Profile};

pub struct WindowsFirewall;

fn policy() -> PlatformResult<INetFwPolicy2> {
    unsafe { CoCreateInstance(&NetFwPolicy2, None, CLSCTX_ALL) }.map_err(|e| win_error("INetFwPolicy2", &e))
}

fn manager() -> PlatformResult<INetworkListManager> {
    unsafe { CoCreateInstance(&NetworkListManager, None, CLSCTX_ALL) }.map_err(|e| win_error("INetworkListManager", &e))
}

fn rule_from(r: &INetFwRule) -> windows::core::Result<Option<InboundRule>> {
    unsafe {
        if r.Direction()? != NET_FW_RULE_DIR_IN {
            return Ok(None);
        }
        let protocol = r.Protocol()?;
        Ok(Some(InboundRule {
            name: r.Name()?.to_string(),
            group: r.Grouping().map(|g| g.to_string()).unwrap_or_default(),
            enabled: r.Enabled()? == VARIANT_TRUE,
            allow: r.Action()? == NET_FW_ACTION_ALLOW,
            tcp: protocol == NET_FW_IP_PROTOCOL_TCP.0 || protocol == NET_FW_IP_PROTOCOL_ANY.0,
            local_ports: r.LocalPorts().map(|p| p.to_string()).unwrap_or_else(|_| "*".into()),
            profiles: r.Profiles()?,
        }))
    }
}

impl Firewall for WindowsFirewall {
    fn active_profiles(&self) -> PlatformResult<Vec<Profile>> {
        let _com = Com::init();
        let mask = unsafe { policy()?.CurrentProfileTypes() }.map_err(|e| win_error("CurrentProfileTypes", &e))?;
        Ok(Profile::in_mask(mask))
    }

    fn profile_enabled(&self, profile: Profile) -> PlatformResult<bool> {
        let _com = Com::init();
        let on = unsafe { policy()?.get_FirewallEnabled(NET_FW_PROFILE_TYPE2(profile.bit())) }
            .map_err(|e| win_error("FirewallEnabled", &e))?;
        Ok(on == VARIANT_TRUE)
    }

    fn group_enabled(&self, group: &str, profile: Profile) -> PlatformResult<bool> {
        let _com = Com::init();
        let on = unsafe { policy()?.IsRuleGroupEnabled(profile.bit(), &BSTR::from(group)) }
            .map_err(|e| win_error("IsRuleGroupEnabled", &e))?;
        Ok(on == VARIANT_TRUE)
    }

    fn set_group(&self, group: &str, profile: Profile, enabled: bool) -> PlatformResult<()> {
        let _com = Com::init();
        let flag = if enabled { VARIANT_TRUE } else { VARIANT_FALSE };
        unsafe { policy()?.EnableRuleGroup(profile.bit(), &BSTR::from(group), flag) }
            .map_err(|e| win_error("EnableRuleGroup", &e))
    }

    fn inbound_rules(&self) -> PlatformResult<Vec<InboundRule>> {
        let _com = Com::init();
        let rules = unsafe { policy()?.Rules() }.map_err(|e| win_error("Rules", &e))?;
        let en: IEnumVARIANT = unsafe { rules._NewEnum() }
            .and_then(|u| u.cast())
            .map_err(|e| win_error("enumerate firewall rules", &e))?;
        let mut out = Vec::new();
        loop {
            let mut items = [VARIANT::default()];
            let mut fetched = 0u32;
            let hr = unsafe { en.Next(&mut items, &mut fetched) };
            if hr.is_err() || fetched == 0 {
                break;
            }
            let [mut item] = items;
            let rule = unsafe {
                let v = &item.Anonymous.Anonymous;
                if v.vt == VT_DISPATCH {
                    let d: &Option<IDispatch> = &v.Anonymous.pdispVal;
                    d.as_ref().and_then(|d| d.cast::<INetFwRule>().ok())
                } else {
                    None
                }
            };
            unsafe {
                let _ = VariantClear(&mut item);
            }
            if let Some(r) = rule {
                if let Ok(Some(r)) = rule_from(&r) {
                    out.push(r);
                }
            }
        }
        Ok(out)
    }
}

fn category_of(n: &INetwork) -> windows::core::Result<Option<Category>> {
    Ok(Category::from_nlm(unsafe { n.GetCategory()? }.0))
}

impl Networks for WindowsFirewall {
    fn connected(&self) -> PlatformResult<Vec<Network>> {
        let _com = Com::init();
        let nets =
            unsafe { manager()?.GetNetworks(NLM_ENUM_NETWORK_CONNECTED) }.map_err(|e| win_error("GetNetworks", &e))?;
        let mut out = Vec::new();
        loop {
            let mut item = [None];
            let mut fetched = 0u32;
            if unsafe { nets.Next(&mut item, Some(&mut fetched)) }.is_err() || fetched == 0 {
                break;
            }
            let [Some(n)] = item else { break };
            let (Ok(id), Ok(name), Ok(Some(category))) =
                (unsafe { n.GetNetworkId() }, unsafe { n.GetName() }, category_of(&n))
            else {
                continue;
            };
            out.push(Network { id: format!("{{{id:?}}}"), name: name.to_string(), category });
        }
        Ok(out)
    }

    fn set_category(&self, id: &str, category: Category) -> PlatformResult<()> {
        let _com = Com::init();
        let nets =
            unsafe { manager()?.GetNetworks(NLM_ENUM_NETWORK_CONNECTED) }.map_err(|e| win_error("GetNetworks", &e))?;
        loop {
            let mut item = [None];
            let mut fetched = 0u32;
            if unsafe { nets.Next(&mut item, Some(&mut fetched)) }.is_err() || fetched == 0 {
                break;
            }
            let [Some(n)] = item else { break };
            if unsafe { n.GetNetworkId() }.is_ok_and(|g| format!("{{{g:?}}}").eq_ignore_ascii_case(id)) {
                return unsafe { n.SetCategory(NLM_NETWORK_CATEGORY(category.to_nlm())) }
                    .map_err(|e| win_error("SetCategory", &e));
            }
        }
        Err(crate::platform::PlatformError::NotFound(format!("network {id}")))
    }
}
