//! IP addresses of cloud configs and manifests: CIDR ranges (`10.0.0.0/24`) and address ranges
//! (`10.0.0.10 - 10.0.0.20`, a single address, or a CIDR block), IPv4 and IPv6.
//!
//! Follows the director's `ip_util.rb` (`each_ip`, `string_to_range`): a range is split on `-` and
//! each side trimmed; one side alone may be a CIDR block. A CIDR with host bits set (`10.0.0.5/24`)
//! means its network, as Ruby's `IPAddr` does. Addresses are compared as integers of their family.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// A CIDR block: a subnet's `range`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

/// An inclusive range of addresses of one family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct IpRange {
    first: IpAddr,
    last: IpAddr,
}

/// Why an address, a CIDR block or a range did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Not an IPv4 or IPv6 address.
    #[error("invalid IP address {0:?}")]
    Address(String),
    /// Not `<address>/<prefix>` with a prefix the family allows.
    #[error("invalid CIDR range {0:?}")]
    Cidr(String),
    /// Not `<address>`, `<address>/<prefix>` or `<address> - <address>`.
    #[error("invalid IP range {0:?}")]
    Range(String),
    /// The two ends are of different families or in the wrong order.
    #[error("invalid IP range {0:?}: the first address must not be after the last, in one family")]
    Order(String),
}

impl Cidr {
    /// Parses `<address>/<prefix>`.
    pub fn parse(text: &str) -> Result<Cidr, Error> {
        let invalid = || Error::Cidr(text.to_owned());
        let (address, prefix) = text.trim().split_once('/').ok_or_else(invalid)?;
        let address: IpAddr = address.trim().parse().map_err(|_| invalid())?;
        let prefix: u8 = prefix.trim().parse().map_err(|_| invalid())?;
        if prefix > bits(address) {
            return Err(invalid());
        }
        let network = from_int(address, to_int(address) & !host_mask(address, prefix));
        Ok(Cidr { network, prefix })
    }

    /// The network address (the first of the block).
    pub fn first(&self) -> IpAddr {
        self.network
    }

    /// The last address of the block (the IPv4 broadcast address).
    pub fn last(&self) -> IpAddr {
        from_int(
            self.network,
            to_int(self.network) | host_mask(self.network, self.prefix),
        )
    }

    /// The prefix length.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// The netmask, e.g. `255.255.255.0` for `/24`.
    pub fn netmask(&self) -> IpAddr {
        let all = if self.network.is_ipv4() {
            u128::from(u32::MAX)
        } else {
            u128::MAX
        };
        from_int(self.network, all & !host_mask(self.network, self.prefix))
    }

    /// Whether `ip` is in the block.
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.range().contains(ip)
    }

    /// The block as a range.
    pub fn range(&self) -> IpRange {
        IpRange {
            first: self.first(),
            last: self.last(),
        }
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

impl IpRange {
    /// Parses `<address>`, `<address>/<prefix>` or `<address> - <address>`.
    pub fn parse(text: &str) -> Result<IpRange, Error> {
        let parts: Vec<&str> = text.split('-').map(str::trim).collect();
        match parts.as_slice() {
            [one] if one.contains('/') => Ok(Cidr::parse(one)?.range()),
            [one] => {
                let ip = one.parse().map_err(|_| Error::Address((*one).to_owned()))?;
                Ok(IpRange::single(ip))
            }
            [first, last] => {
                let parse = |part: &str| -> Result<IpAddr, Error> {
                    part.parse().map_err(|_| Error::Range(text.to_owned()))
                };
                IpRange::new(parse(first)?, parse(last)?)
                    .ok_or_else(|| Error::Order(text.to_owned()))
            }
            _ => Err(Error::Range(text.to_owned())),
        }
    }

    /// The range from `first` to `last`; `None` when they are of different families or out of order.
    pub fn new(first: IpAddr, last: IpAddr) -> Option<IpRange> {
        (first.is_ipv4() == last.is_ipv4() && to_int(first) <= to_int(last))
            .then_some(IpRange { first, last })
    }

    /// The range of one address.
    pub fn single(ip: IpAddr) -> IpRange {
        IpRange {
            first: ip,
            last: ip,
        }
    }

    /// The first address.
    pub fn first(&self) -> IpAddr {
        self.first
    }

    /// The last address.
    pub fn last(&self) -> IpAddr {
        self.last
    }

    /// Whether `ip` is in the range (and of its family).
    pub fn contains(&self, ip: IpAddr) -> bool {
        ip.is_ipv4() == self.first.is_ipv4()
            && to_int(self.first) <= to_int(ip)
            && to_int(ip) <= to_int(self.last)
    }

    /// Whether the two ranges share an address.
    pub fn overlaps(&self, other: &IpRange) -> bool {
        self.first.is_ipv4() == other.first.is_ipv4()
            && to_int(self.first) <= to_int(other.last)
            && to_int(other.first) <= to_int(self.last)
    }

    /// The number of addresses, saturating at `u128::MAX`.
    pub fn len(&self) -> u128 {
        (to_int(self.last) - to_int(self.first)).saturating_add(1)
    }

    /// Always false: a range holds at least one address.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Every address, in order.
    pub fn iter(&self) -> impl Iterator<Item = IpAddr> + use<> {
        let first = self.first;
        (to_int(self.first)..=to_int(self.last)).map(move |int| from_int(first, int))
    }
}

impl fmt::Display for IpRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.first == self.last {
            write!(f, "{}", self.first)
        } else {
            write!(f, "{} - {}", self.first, self.last)
        }
    }
}

/// The address after `ip`, if its family has one.
pub fn next(ip: IpAddr) -> Option<IpAddr> {
    let int = to_int(ip).checked_add(1)?;
    (int <= max_int(ip)).then(|| from_int(ip, int))
}

/// The address as an integer of its family.
pub(crate) fn to_int(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

/// The address of `family`'s family with the integer value `int` (cut to the family's width).
pub(crate) fn from_int(family: IpAddr, int: u128) -> IpAddr {
    match family {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::from((int & u128::from(u32::MAX)) as u32)),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::from(int)),
    }
}

fn bits(ip: IpAddr) -> u8 {
    if ip.is_ipv4() { 32 } else { 128 }
}

fn max_int(ip: IpAddr) -> u128 {
    if ip.is_ipv4() {
        u128::from(u32::MAX)
    } else {
        u128::MAX
    }
}

/// The host bits of a block of `prefix` in `ip`'s family.
fn host_mask(ip: IpAddr, prefix: u8) -> u128 {
    let host_bits = u32::from(bits(ip) - prefix);
    if host_bits == 128 {
        u128::MAX
    } else {
        (1u128 << host_bits) - 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn cidr_gives_network_broadcast_and_netmask() {
        let cidr = Cidr::parse("10.0.1.7/24").unwrap();
        assert_eq!(cidr.to_string(), "10.0.1.0/24");
        assert_eq!(cidr.first(), ip("10.0.1.0"));
        assert_eq!(cidr.last(), ip("10.0.1.255"));
        assert_eq!(cidr.netmask(), ip("255.255.255.0"));
        assert!(cidr.contains(ip("10.0.1.200")));
        assert!(!cidr.contains(ip("10.0.2.1")));
        assert!(!cidr.contains(ip("::1")));

        let v6 = Cidr::parse("fd00::/120").unwrap();
        assert_eq!(v6.last(), ip("fd00::ff"));
        assert_eq!(v6.netmask(), ip("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ff00"));
        assert_eq!(
            Cidr::parse("0.0.0.0/0").unwrap().last(),
            ip("255.255.255.255")
        );
    }

    #[test]
    fn bad_cidrs_are_refused() {
        for text in ["10.0.0.0", "10.0.0.0/33", "10.0.0/24", "x/8", "fd00::/129"] {
            assert_eq!(
                Cidr::parse(text),
                Err(Error::Cidr(text.to_owned())),
                "{text}"
            );
        }
    }

    #[test]
    fn ranges_parse_in_the_three_forms() {
        let range = IpRange::parse("10.0.0.10 - 10.0.0.12").unwrap();
        assert_eq!(
            range.iter().collect::<Vec<_>>(),
            [ip("10.0.0.10"), ip("10.0.0.11"), ip("10.0.0.12")]
        );
        assert_eq!(range.to_string(), "10.0.0.10 - 10.0.0.12");
        assert_eq!(IpRange::parse("10.0.0.10-10.0.0.10").unwrap().len(), 1);
        assert_eq!(
            IpRange::parse(" 10.0.0.9 ").unwrap().to_string(),
            "10.0.0.9"
        );
        let block = IpRange::parse("10.0.0.8/30").unwrap();
        assert_eq!(
            (block.first(), block.last()),
            (ip("10.0.0.8"), ip("10.0.0.11"))
        );
    }

    #[test]
    fn bad_ranges_are_refused_with_the_text() {
        assert_eq!(
            IpRange::parse("10.0.0.300"),
            Err(Error::Address("10.0.0.300".into()))
        );
        assert_eq!(
            IpRange::parse("10.0.0.1 - x"),
            Err(Error::Range("10.0.0.1 - x".into()))
        );
        assert_eq!(
            IpRange::parse("10.0.0.1 - 10.0.0.2 - 10.0.0.3"),
            Err(Error::Range("10.0.0.1 - 10.0.0.2 - 10.0.0.3".into()))
        );
        assert_eq!(
            IpRange::parse("10.0.0.9 - 10.0.0.1"),
            Err(Error::Order("10.0.0.9 - 10.0.0.1".into()))
        );
        assert!(matches!(
            IpRange::parse("10.0.0.1 - ::2"),
            Err(Error::Order(_))
        ));
    }

    #[test]
    fn overlap_and_next_respect_families() {
        let a = IpRange::parse("10.0.0.1 - 10.0.0.5").unwrap();
        let b = IpRange::parse("10.0.0.5 - 10.0.0.9").unwrap();
        let c = IpRange::parse("10.0.0.6").unwrap();
        assert!(a.overlaps(&b) && b.overlaps(&a));
        assert!(!a.overlaps(&c));
        assert_eq!(next(ip("10.0.0.255")), Some(ip("10.0.1.0")));
        assert_eq!(next(ip("255.255.255.255")), None);
        assert_eq!(next(ip("::ffff")), Some(ip("::1:0")));
    }
}
