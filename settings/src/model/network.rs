//! Networks (`settings.Network`, `settings.Networks`) and the rules the platform derives from them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One network of the VM.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Network {
    /// `manual` (also when empty), `dynamic` or `vip`.
    #[serde(rename = "type")]
    pub network_type: String,
    /// Static address.
    pub ip: String,
    /// Netmask (dotted, or an IPv6 mask).
    pub netmask: String,
    /// Gateway.
    pub gateway: String,
    /// Prefix length, as a string (`"32"`, `"128"` mean a single address).
    pub prefix: String,
    /// Whether `ip`, `netmask` and `gateway` were filled in from DHCP.
    pub resolved: bool,
    /// Configure this manual network with DHCP.
    pub use_dhcp: bool,
    /// Categories this network is the default for: `dns`, `gateway`, `addressable`.
    pub default: Vec<String>,
    /// DNS servers.
    pub dns: Vec<String>,
    /// MAC address of the interface.
    pub mac: String,
    /// The IaaS has already configured this network; the agent only writes DNS.
    pub preconfigured: bool,
    /// Extra routes.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<Route>,
    /// Interface alias (e.g. `eth0:1`).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub alias: String,
}

/// A static route. Go never tagged this struct, so it is written with Go field names.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Route {
    /// Destination network.
    #[serde(rename = "Destination")]
    pub destination: String,
    /// Next hop.
    #[serde(rename = "Gateway")]
    pub gateway: String,
    /// Destination netmask.
    #[serde(rename = "Netmask")]
    pub netmask: String,
}

/// Networks by name. Kept sorted, so "the first network" is the same on every run (Go's map order is
/// random, which made `default_network_for` pick an arbitrary one among several candidates).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Networks(pub BTreeMap<String, Network>);

impl Network {
    /// A `vip` network: the IaaS routes a public address to the VM; nothing is configured for it.
    pub fn is_vip(&self) -> bool {
        self.network_type == "vip"
    }

    /// Whether the interface is configured with DHCP: not a vip, and `dynamic`, or `use_dhcp`, or
    /// resolved from DHCP before, or missing the address or netmask a static setup needs.
    pub fn is_dhcp(&self) -> bool {
        if self.is_vip() {
            return false;
        }
        if self.network_type == "dynamic" || self.use_dhcp {
            return true;
        }
        let is_static = !self.ip.is_empty() && !self.netmask.is_empty();
        self.resolved || !is_static
    }

    /// Whether `default` lists `category`.
    pub fn is_default_for(&self, category: &str) -> bool {
        self.default.iter().any(|c| c == category)
    }
}

impl Networks {
    /// The network that is the default for `category` (`dns`, `gateway`): the only network, or the
    /// first (by name) that lists the category.
    pub fn default_network_for(&self, category: &str) -> Option<(&str, &Network)> {
        if self.0.len() == 1 {
            return self
                .0
                .iter()
                .next()
                .map(|(name, network)| (name.as_str(), network));
        }
        self.0
            .iter()
            .find(|(_, network)| network.is_default_for(category))
            .map(|(name, network)| (name.as_str(), network))
    }

    /// Whether the IaaS configured every network (vips aside), so only DNS is left to the agent.
    pub fn is_preconfigured(&self) -> bool {
        self.0
            .values()
            .filter(|network| !network.is_vip())
            .all(|network| network.preconfigured)
    }

    /// The address of a network with a `default` list, else of any network (`DefaultIP`).
    pub fn default_ip(&self) -> Option<&str> {
        self.0
            .values()
            .find(|network| !network.default.is_empty() && !network.ip.is_empty())
            .or_else(|| self.0.values().find(|network| !network.ip.is_empty()))
            .map(|network| network.ip.as_str())
    }

    /// Every configured address.
    pub fn ips(&self) -> Vec<&str> {
        self.0
            .values()
            .filter(|network| !network.ip.is_empty())
            .map(|network| network.ip.as_str())
            .collect()
    }

    /// Whether any non-vip network asks for an interface alias.
    pub fn has_interface_alias(&self) -> bool {
        self.0
            .values()
            .any(|network| !network.is_vip() && !network.alias.is_empty())
    }

    /// The networks on the interface with `mac`.
    pub fn for_mac<'a>(
        &'a self,
        mac: &'a str,
    ) -> impl Iterator<Item = (&'a str, &'a Network)> + 'a {
        self.0
            .iter()
            .filter(move |(_, network)| network.mac.eq_ignore_ascii_case(mac))
            .map(|(name, network)| (name.as_str(), network))
    }
}
