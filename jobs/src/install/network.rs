//! Resolving the DHCP networks of an apply spec before it is applied and persisted, as
//! `agent/applier/applyspec/concrete_v1_service.go` (`PopulateDHCPNetworks`) does: the director
//! does not know the addresses of dynamic networks, so for every spec network that is DHCP in the
//! settings the agent fills in the settings' `ip`, `netmask` and `gateway`. The director later
//! compares `get_state`'s networks with its own, so every other key is kept verbatim.
//!
//! A network named `local` with `ip` `127.0.0.1` is skipped (old MicroBOSH specs carry one); any
//! other spec network missing from the settings is an error, with Go's text. Networks are visited in
//! name order, so the error names the same network every time (Go's map order is random).

use std::collections::BTreeMap;

use serde_json::Value;

use settings::model::Networks;

/// Why the spec's networks could not be resolved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// A spec network the settings do not have; Go's text.
    #[error("Network '{0}' is not found in settings")]
    NotFound(String),
}

/// The spec's networks, with `ip`, `netmask` and `gateway` of DHCP networks taken from the
/// settings.
pub fn resolve_dhcp_networks(
    spec_networks: &BTreeMap<String, BTreeMap<String, Value>>,
    settings_networks: &Networks,
) -> Result<BTreeMap<String, BTreeMap<String, Value>>, Error> {
    let mut resolved = spec_networks.clone();
    for (name, fields) in &mut resolved {
        let is_local_loopback =
            name == "local" && fields.get("ip").and_then(Value::as_str) == Some("127.0.0.1");
        if is_local_loopback {
            continue;
        }
        let network = settings_networks
            .0
            .get(name)
            .ok_or_else(|| Error::NotFound(name.clone()))?;
        if !network.is_dhcp() {
            continue;
        }
        fields.insert("ip".to_owned(), Value::from(network.ip.as_str()));
        fields.insert("netmask".to_owned(), Value::from(network.netmask.as_str()));
        fields.insert("gateway".to_owned(), Value::from(network.gateway.as_str()));
    }
    Ok(resolved)
}

#[cfg(test)]
mod tests {
    use super::*;

    use serde_json::json;

    fn spec_networks(value: Value) -> BTreeMap<String, BTreeMap<String, Value>> {
        serde_json::from_value(value).unwrap()
    }

    fn settings_networks(value: Value) -> Networks {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn dhcp_networks_get_the_settings_addresses_and_keep_their_other_keys() {
        let spec = spec_networks(json!({
            "dyn": {"type": "dynamic", "default": ["dns", "gateway"], "dns": ["8.8.8.8"]},
            "man": {"ip": "10.0.0.5", "netmask": "255.255.255.0", "gateway": "10.0.0.1"},
        }));
        let settings = settings_networks(json!({
            "dyn": {"type": "dynamic", "ip": "10.1.0.9", "netmask": "255.255.0.0", "gateway": "10.1.0.1"},
            "man": {"type": "manual", "ip": "10.0.0.5", "netmask": "255.255.255.0", "gateway": "10.0.0.1"},
        }));
        let resolved = resolve_dhcp_networks(&spec, &settings).unwrap();
        assert_eq!(
            serde_json::to_value(&resolved).unwrap(),
            json!({
                "dyn": {"type": "dynamic", "default": ["dns", "gateway"], "dns": ["8.8.8.8"],
                        "ip": "10.1.0.9", "netmask": "255.255.0.0", "gateway": "10.1.0.1"},
                "man": {"ip": "10.0.0.5", "netmask": "255.255.255.0", "gateway": "10.0.0.1"},
            })
        );
    }

    #[test]
    fn a_local_loopback_network_is_skipped_and_other_unknown_networks_fail() {
        let settings = settings_networks(
            json!({"a": {"type": "manual", "ip": "1.1.1.1", "netmask": "255.0.0.0"}}),
        );
        let spec = spec_networks(json!({"local": {"ip": "127.0.0.1"}, "a": {}}));
        assert_eq!(resolve_dhcp_networks(&spec, &settings).unwrap(), spec);

        let spec = spec_networks(json!({"local": {"ip": "10.0.0.1"}, "a": {}, "z": {}}));
        let err = resolve_dhcp_networks(&spec, &settings).unwrap_err();
        assert_eq!(err.to_string(), "Network 'local' is not found in settings");
        let spec = spec_networks(json!({"a": {}, "z": {}}));
        assert_eq!(
            resolve_dhcp_networks(&spec, &settings).unwrap_err(),
            Error::NotFound("z".into())
        );
    }
}
