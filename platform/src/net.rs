//! Network operations the actions call: the errors of
//! [`Platform::delete_arp_entries`](crate::Platform::delete_arp_entries), and the check of its input
//! (`agent/action/delete_arp_entries.go`, `platform/linux_platform.go` `DeleteARPEntryWithIP`, which
//! runs `ip neigh flush to <ip>` for each address).
//!
//! Go hands each string to `ip` unchecked and ignores the failures. We refuse the whole list before
//! touching anything if one entry is not an IP address, so a stray argument never reaches `ip`.

use std::net::{AddrParseError, IpAddr};

use crate::dummy;

/// Why a network operation failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `ip neigh flush to <ip>` failed (Go's text).
    #[error("Deleting arp entry for {ip}")]
    DeleteArpEntry {
        /// The address.
        ip: IpAddr,
        /// The cause.
        #[source]
        source: Box<crate::cmd::Error>,
    },
    /// An entry of the list is not an IP address.
    #[error("'{ip}' is not an ip address")]
    InvalidIp {
        /// The entry as given.
        ip: String,
        /// The cause.
        #[source]
        source: AddrParseError,
    },
    /// The dummy platform's state files could not be written.
    #[error(transparent)]
    State(#[from] dummy::state::Error),
    /// The default route or its interface's address could not be found; the text says which
    /// (Go's texts).
    #[error("{0}")]
    DefaultNetwork(String),
}

/// What a DHCP network got: the default route's interface address, its netmask and the route's
/// gateway ([`Platform::default_network`](crate::Platform::default_network)).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(default)]
pub struct DefaultNetwork {
    /// The address.
    pub ip: String,
    /// Its netmask.
    pub netmask: String,
    /// The default gateway.
    pub gateway: String,
}

/// `pub type Result<T>` of this module.
pub type Result<T> = std::result::Result<T, Error>;

/// Parses every entry of `ips` as an IPv4 or IPv6 address; the first that is not one is the error.
pub fn parse_ips(ips: &[String]) -> Result<Vec<IpAddr>> {
    ips.iter()
        .map(|ip| {
            ip.parse().map_err(|source| Error::InvalidIp {
                ip: ip.clone(),
                source,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_ip_addresses_pass() {
        let cases: &[(&[&str], std::result::Result<usize, &str>)] = &[
            (&[], Ok(0)),
            (&["10.0.0.1", "fd00::1"], Ok(2)),
            (
                &["10.0.0.1", "10.0.0.256"],
                Err("'10.0.0.256' is not an ip address"),
            ),
            (&["-f"], Err("'-f' is not an ip address")),
            (
                &["10.0.0.1 dev eth0"],
                Err("'10.0.0.1 dev eth0' is not an ip address"),
            ),
            (&[""], Err("'' is not an ip address")),
        ];
        for (ips, expected) in cases {
            let ips: Vec<String> = ips.iter().map(|ip| (*ip).to_owned()).collect();
            let parsed = parse_ips(&ips)
                .map(|parsed| parsed.len())
                .map_err(|err| err.to_string());
            assert_eq!(parsed, expected.map_err(str::to_owned), "{ips:?}");
        }
    }
}
