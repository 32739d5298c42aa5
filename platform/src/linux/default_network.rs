//! The address a DHCP network got (`platform/net/default_network_resolver.go`, §4.3 of the
//! reference): the interface of the default route, its primary address and netmask, and the
//! route's gateway. The settings of a dynamic network carry no address; the agent fills it in from
//! here before `apply` resolves the spec's DHCP networks, so the director learns the VM's address.
//!
//! The default route comes from `/proc/net/route` (IPv4: destination and mask `00000000`, the
//! gateway in the kernel's byte order) or `/proc/net/ipv6_route` (destination `::/0`), the
//! interface's addresses from `getifaddrs(3)` (the first IPv4 address, or the first global IPv6
//! one). The parsers are pure and unit-tested; only [`default_network`] reads the live system.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::HostPaths;
use crate::net::{DefaultNetwork, Error, Result};

/// The default route's interface and gateway from `/proc/net/route`.
pub fn ipv4_default_route(route_table: &str) -> Option<(String, Ipv4Addr)> {
    route_table.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [iface, destination, gateway, flags, _, _, _, mask, ..] = fields.as_slice() else {
            return None;
        };
        let up = u32::from_str_radix(flags, 16).is_ok_and(|flags| flags & 0x1 != 0);
        if !up || *destination != "00000000" || *mask != "00000000" {
            return None;
        }
        // The kernel prints the address as a host-order (little-endian) number.
        let gateway = u32::from_str_radix(gateway, 16).ok()?;
        Some(((*iface).to_owned(), Ipv4Addr::from(gateway.swap_bytes())))
    })
}

/// The default route's interface and gateway from `/proc/net/ipv6_route`.
pub fn ipv6_default_route(route_table: &str) -> Option<(String, Ipv6Addr)> {
    route_table.lines().find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [destination, prefix, _, _, next_hop, _, _, _, _, iface] = fields.as_slice() else {
            return None;
        };
        if destination.chars().any(|c| c != '0') || *prefix != "00" || *iface == "lo" {
            return None;
        }
        let gateway = u128::from_str_radix(next_hop, 16).ok()?;
        Some(((*iface).to_owned(), Ipv6Addr::from(gateway)))
    })
}

/// An address of an interface, as `getifaddrs(3)` lists them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterfaceAddress {
    /// The interface.
    pub interface: String,
    /// The address.
    pub ip: IpAddr,
    /// Its netmask.
    pub netmask: IpAddr,
}

/// The primary address of `interface` in `addresses`: its first IPv4 address, or (for IPv6) its
/// first address that is not link-local.
pub fn primary_address<'a>(
    addresses: &'a [InterfaceAddress],
    interface: &str,
    ipv6: bool,
) -> Option<&'a InterfaceAddress> {
    addresses.iter().find(|address| {
        address.interface == interface
            && match address.ip {
                IpAddr::V4(_) => !ipv6,
                IpAddr::V6(ip) => ipv6 && (ip.segments()[0] & 0xffc0) != 0xfe80,
            }
    })
}

/// The live system's addresses.
fn interface_addresses() -> Result<Vec<InterfaceAddress>> {
    let addresses = nix::ifaddrs::getifaddrs()
        .map_err(|errno| Error::DefaultNetwork(format!("listing the addresses: {errno}")))?;
    Ok(addresses
        .filter_map(|entry| {
            let ip = entry.address.as_ref().and_then(sockaddr_ip)?;
            let netmask = entry.netmask.as_ref().and_then(sockaddr_ip)?;
            Some(InterfaceAddress {
                interface: entry.interface_name,
                ip,
                netmask,
            })
        })
        .collect())
}

fn sockaddr_ip(address: &nix::sys::socket::SockaddrStorage) -> Option<IpAddr> {
    if let Some(v4) = address.as_sockaddr_in() {
        return Some(IpAddr::V4(v4.ip()));
    }
    address.as_sockaddr_in6().map(|v6| IpAddr::V6(v6.ip()))
}

/// The network of the default route of `host` (IPv6 when `ipv6`).
pub fn default_network(host: &HostPaths, ipv6: bool) -> Result<DefaultNetwork> {
    let table_path = host.proc(if ipv6 { "net/ipv6_route" } else { "net/route" });
    let table = std::fs::read_to_string(&table_path).map_err(|err| {
        Error::DefaultNetwork(format!(
            "Searching routes: reading {}: {err}",
            table_path.display()
        ))
    })?;
    let (interface, gateway) = if ipv6 {
        ipv6_default_route(&table).map(|(iface, gateway)| (iface, IpAddr::V6(gateway)))
    } else {
        ipv4_default_route(&table).map(|(iface, gateway)| (iface, IpAddr::V4(gateway)))
    }
    .ok_or_else(|| Error::DefaultNetwork("Failed to find default route".to_owned()))?;
    let addresses = interface_addresses()?;
    let primary = primary_address(&addresses, &interface, ipv6).ok_or_else(|| {
        Error::DefaultNetwork(format!(
            "Getting primary IPv{} for interface '{interface}'",
            if ipv6 { 6 } else { 4 }
        ))
    })?;
    Ok(DefaultNetwork {
        ip: primary.ip.to_string(),
        netmask: primary.netmask.to_string(),
        gateway: gateway.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROUTE: &str = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
        ens3\t0002000A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n\
        ens3\t00000000\t0202000A\t0003\t0\t0\t0\t00000000\t0\t0\t0\n";

    const IPV6_ROUTE: &str = "fd000000000000000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001     ens3\n\
        00000000000000000000000000000000 00 00000000000000000000000000000000 00 fe800000000000000000000000000001 00000400 00000001 00000000 00000003     ens3\n\
        00000000000000000000000000000000 00 00000000000000000000000000000000 00 00000000000000000000000000000000 ffffffff 00000001 00000000 00200200       lo\n";

    #[test]
    fn the_default_routes_are_read_from_proc() {
        assert_eq!(
            ipv4_default_route(ROUTE),
            Some(("ens3".to_owned(), Ipv4Addr::new(10, 0, 2, 2)))
        );
        assert_eq!(
            ipv4_default_route(&ROUTE.replace("0003", "0002")),
            None,
            "a route that is down"
        );
        assert_eq!(ipv4_default_route("Iface\tDestination\n"), None);
        assert_eq!(
            ipv6_default_route(IPV6_ROUTE),
            Some(("ens3".to_owned(), "fe80::1".parse().unwrap()))
        );
        assert_eq!(ipv6_default_route(""), None);
    }

    #[test]
    fn the_primary_address_is_the_first_of_its_family_and_never_link_local() {
        let address = |interface: &str, ip: &str, netmask: &str| InterfaceAddress {
            interface: interface.to_owned(),
            ip: ip.parse().unwrap(),
            netmask: netmask.parse().unwrap(),
        };
        let addresses = [
            address("lo", "127.0.0.1", "255.0.0.0"),
            address("ens3", "fe80::5054:ff:fe12:3456", "ffff:ffff:ffff:ffff::"),
            address("ens3", "10.0.2.15", "255.255.255.0"),
            address("ens3", "10.0.2.16", "255.255.255.0"),
            address("ens3", "fd00::15", "ffff:ffff:ffff:ffff::"),
        ];
        assert_eq!(
            primary_address(&addresses, "ens3", false),
            Some(&addresses[2])
        );
        assert_eq!(
            primary_address(&addresses, "ens3", true),
            Some(&addresses[4])
        );
        assert_eq!(primary_address(&addresses, "ens4", false), None);
    }
}
