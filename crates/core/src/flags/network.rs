//! IP addresses and networks for the `remoteAddress` strategy and the `IN_CIDR`
//! operator.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// An IP network in CIDR notation (`10.0.0.0/8`, `2001:db8::/32`); a bare address is
/// the network of that address alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddressRange {
    network: IpAddr,
    prefix: u8,
}

impl AddressRange {
    /// Whether `address` is inside this network. An IPv4 address written as an
    /// IPv4-mapped IPv6 address (`::ffff:10.1.2.3`) counts as the IPv4 address, so
    /// that a dual-stack listener does not hide clients from IPv4 ranges.
    pub fn contains(&self, address: IpAddr) -> bool {
        let address = match address {
            IpAddr::V6(v6) => v6
                .to_ipv4_mapped()
                .map(IpAddr::V4)
                .unwrap_or(IpAddr::V6(v6)),
            v4 => v4,
        };
        match (self.network, address) {
            (IpAddr::V4(network), IpAddr::V4(address)) => prefix_matches(
                u128::from(u32::from(network)),
                u128::from(u32::from(address)),
                self.prefix,
                32,
            ),
            (IpAddr::V6(network), IpAddr::V6(address)) => {
                prefix_matches(u128::from(network), u128::from(address), self.prefix, 128)
            }
            _ => false,
        }
    }

    /// Whether the text is an address inside this network; text that is not an
    /// address is inside no network.
    pub fn contains_text(&self, address: &str) -> bool {
        address
            .trim()
            .parse::<IpAddr>()
            .is_ok_and(|address| self.contains(address))
    }
}

/// Whether the first `prefix` of `width` bits of the two numbers agree.
fn prefix_matches(network: u128, address: u128, prefix: u8, width: u32) -> bool {
    let prefix = u32::from(prefix);
    if prefix == 0 {
        return true;
    }
    let shift = width - prefix;
    (network >> shift) == (address >> shift)
}

/// Why text is not an address or a network.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{0:?} is not an IP address or a network in CIDR notation (e.g. 10.0.0.0/8 or 2001:db8::/32)"
)]
pub struct InvalidRange(pub String);

impl FromStr for AddressRange {
    type Err = InvalidRange;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let invalid = || InvalidRange(text.to_string());
        let trimmed = text.trim();
        let (address, prefix) = match trimmed.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (trimmed, None),
        };
        let network: IpAddr = address.parse().map_err(|_| invalid())?;
        let width = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => width,
            Some(digits) if !digits.is_empty() && digits.chars().all(|c| c.is_ascii_digit()) => {
                digits
                    .parse::<u8>()
                    .ok()
                    .filter(|p| *p <= width)
                    .ok_or_else(invalid)?
            }
            Some(_) => return Err(invalid()),
        };
        Ok(Self { network, prefix })
    }
}

impl fmt::Display for AddressRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(text: &str) -> AddressRange {
        text.parse().unwrap()
    }

    #[test]
    fn ranges_contain_what_they_should() {
        let cases = [
            ("127.0.0.1", "127.0.0.1", true),
            ("127.0.0.1", "127.0.0.2", false),
            ("160.33.0.0/16", "160.33.0.33", true),
            ("160.33.0.0/16", "160.34.0.1", false),
            ("160.33.7.9/16", "160.33.200.1", true),
            ("0.0.0.0/0", "8.8.8.8", true),
            ("10.0.0.0/8", "::ffff:10.1.2.3", true),
            ("10.0.0.0/8", "11.0.0.1", false),
            ("2001:db8::1", "2001:db8::1", true),
            ("2001:db8::1", "2001:db8::2", false),
            ("2001:db8::/32", "2001:db8:0:1::42", true),
            ("2001:db8::/32", "2001:db9::1", false),
            ("::/0", "2001:db9::1", true),
            ("10.0.0.0/8", "2001:db8::1", false),
            ("2001:db8::/32", "10.0.0.1", false),
            ("10.0.0.0/8", "not an address", false),
        ];
        for (network, address, expected) in cases {
            assert_eq!(
                range(network).contains_text(address),
                expected,
                "{network} contains {address}"
            );
        }
    }

    #[test]
    fn malformed_ranges_are_refused() {
        for text in [
            "127.invalid",
            "bad::cidr",
            "10.0.0.0/33",
            "2001:db8::/129",
            "10.0.0.0/",
            "10.0.0.0/+8",
            "10.0.0.0/8/8",
            "",
        ] {
            let error = text.parse::<AddressRange>().unwrap_err();
            assert!(error.to_string().contains("CIDR"), "{text}: {error}");
        }
    }

    #[test]
    fn ranges_display_in_cidr_notation() {
        assert_eq!(range("10.1.2.3").to_string(), "10.1.2.3/32");
        assert_eq!(range(" 2001:db8::/32 ").to_string(), "2001:db8::/32");
    }
}
