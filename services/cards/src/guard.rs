//! Which addresses cards may fetch from: public ones only, unless the
//! allow-list (`CARDS_ALLOW_ADDRESSES`) names them. Loopback, private,
//! link-local (the cloud metadata service at 169.254.169.254 among them),
//! shared, reserved and multicast addresses are refused.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// An address or a network in CIDR form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network {
    address: IpAddr,
    prefix: u8,
}

impl Network {
    fn contains(&self, ip: IpAddr) -> bool {
        match (self.address, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl FromStr for Network {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (address, prefix) = text.trim().split_once('/').unwrap_or((text.trim(), ""));
        let address: IpAddr = address
            .parse()
            .map_err(|_| format!("{text:?} is not an IP address or CIDR network"))?;
        let longest = if address.is_ipv4() { 32 } else { 128 };
        let prefix = if prefix.is_empty() {
            longest
        } else {
            prefix
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= longest)
                .ok_or_else(|| format!("{text:?} has a bad prefix length"))?
        };
        Ok(Self { address, prefix })
    }
}

/// The fetch policy for addresses.
#[derive(Debug, Clone, Default)]
pub struct AddressPolicy {
    allowed: Vec<Network>,
}

impl AddressPolicy {
    pub fn allowing(allowed: Vec<Network>) -> Self {
        Self { allowed }
    }

    /// Whether cards may connect to `ip`.
    pub fn permits(&self, ip: IpAddr) -> bool {
        is_public(ip) || self.allowed.iter().any(|net| net.contains(ip))
    }
}

fn in_v4(ip: Ipv4Addr, net: [u8; 4], prefix: u8) -> bool {
    Network {
        address: IpAddr::V4(Ipv4Addr::from(net)),
        prefix,
    }
    .contains(IpAddr::V4(ip))
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    !(ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || in_v4(ip, [0, 0, 0, 0], 8)
        || in_v4(ip, [100, 64, 0, 0], 10) // shared address space (carrier NAT)
        || in_v4(ip, [192, 0, 0, 0], 24)
        || in_v4(ip, [198, 18, 0, 0], 15) // benchmarking
        || in_v4(ip, [240, 0, 0, 0], 4)) // reserved
}

/// The IPv4 addresses an IPv6 address carries, by every standard way of
/// carrying one: a packet to it may well reach them. (RFC 4291 §2.5.5
/// compatible and mapped, RFC 2765 translated, RFC 6052 and RFC 8215
/// NAT64, RFC 3056 6to4, RFC 4380 Teredo server and client, RFC 5214 ISATAP.)
fn embedded_v4(ip: Ipv6Addr) -> Vec<Ipv4Addr> {
    let s = ip.segments();
    let last32 = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    let mut found = Vec::new();
    let compatible = s[..6] == [0; 6] && !ip.is_unspecified() && !ip.is_loopback();
    let mapped = s[..5] == [0; 5] && s[5] == 0xffff;
    let translated = s[..4] == [0; 4] && s[4] == 0xffff && s[5] == 0;
    // 64:ff9b::/96 (well-known) and 64:ff9b:1::/48 (local use) both start so.
    let nat64 = s[0] == 0x0064 && s[1] == 0xff9b;
    if compatible || mapped || translated || nat64 {
        found.push(last32);
    }
    // 2002:AABB:CCDD::/48, 6to4
    if s[0] == 0x2002 {
        found.push(Ipv4Addr::new(
            (s[1] >> 8) as u8,
            s[1] as u8,
            (s[2] >> 8) as u8,
            s[2] as u8,
        ));
    }
    // 2001:0000:SSSS:SSSS:…:CCCC:CCCC, Teredo: the server, and the client (bits inverted)
    if s[0] == 0x2001 && s[1] == 0 {
        found.push(Ipv4Addr::new(
            (s[2] >> 8) as u8,
            s[2] as u8,
            (s[3] >> 8) as u8,
            s[3] as u8,
        ));
        found.push(Ipv4Addr::from(!u32::from(last32)));
    }
    // …:0000:5efe:a.b.c.d or …:0200:5efe:a.b.c.d, ISATAP interface ids
    if (s[4] & 0xfdff) == 0 && s[5] == 0x5efe {
        found.push(last32);
    }
    found
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let embedded = embedded_v4(ip);
    if !embedded.is_empty() {
        return embedded.into_iter().all(is_public_v4);
    }
    let first = ip.segments()[0];
    !(ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        || (first & 0xfe00) == 0xfc00 // unique local
        || (first & 0xffc0) == 0xfe80 // link-local
        || (first == 0x2001 && ip.segments()[1] == 0x0db8) // documentation
        || (first == 0x0100 && ip.segments()[1..4] == [0; 3])) // discard-only
}

fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn loopback_private_link_local_metadata_and_mapped_addresses_are_refused() {
        let policy = AddressPolicy::default();
        for refused in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "::1",
            "::",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a9fe:a9fe",
        ] {
            assert!(!policy.permits(ip(refused)), "{refused} must be refused");
        }
        for allowed in ["93.184.215.14", "1.1.1.1", "2606:4700:4700::1111"] {
            assert!(policy.permits(ip(allowed)), "{allowed} is public");
        }
    }

    #[test]
    fn every_ipv6_form_that_carries_an_ipv4_address_is_judged_by_it() {
        let policy = AddressPolicy::default();
        for refused in [
            "::127.0.0.2", // IPv4-compatible
            "::7f00:1",    // the same, in hex
            "::10.0.0.1",
            "::169.254.169.254",
            "::ffff:10.1.2.3",    // mapped
            "::ffff:0:127.0.0.1", // translated (SIIT)
            "64:ff9b::127.0.0.1", // NAT64, well-known prefix
            "64:ff9b::10.0.0.1",
            "64:ff9b:1::a9fe:a9fe",        // local-use NAT64
            "2002:7f00:1::",               // 6to4 of 127.0.0.1
            "2002:a9fe:a9fe::1",           // 6to4 of the metadata service
            "2001:0:a9fe:a9fe::1",         // Teredo, server 169.254.169.254
            "2001:0:5db8:d70e::80ff:fffe", // Teredo, client 127.0.0.1 (inverted)
            "fe80::5efe:127.0.0.1",        // ISATAP
            "2606:4700::200:5efe:a00:1",   // ISATAP id of 10.0.0.1 under a public prefix
            "100::1",                      // discard-only
        ] {
            assert!(!policy.permits(ip(refused)), "{refused} must be refused");
        }
        for allowed in [
            "64:ff9b::1.1.1.1",
            "2002:0101:0101::1",
            "::ffff:93.184.215.14",
            "2001:0:5db8:d70e::fefe:fefe", // Teredo: public server, client 1.1.1.1
        ] {
            assert!(
                policy.permits(ip(allowed)),
                "{allowed} carries a public address"
            );
        }
    }

    #[test]
    fn the_allow_list_permits_the_addresses_and_networks_it_names() {
        let policy = AddressPolicy::allowing(vec![
            "127.0.0.1".parse().unwrap(),
            "10.0.0.0/8".parse().unwrap(),
        ]);
        assert!(policy.permits(ip("127.0.0.1")));
        assert!(!policy.permits(ip("127.0.0.2")));
        assert!(policy.permits(ip("10.200.1.1")));
        assert!(!policy.permits(ip("169.254.169.254")));
        assert!("10.0.0.0/33".parse::<Network>().is_err());
        assert!("localhost".parse::<Network>().is_err());
    }
}
