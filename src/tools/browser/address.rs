//! Which addresses the browser may reach, and which hosts the operator opened on purpose.
//!
//! An address is public when it is global unicast by the IANA special-purpose registries (the
//! table of the `ip_network` crate) and not multicast; an IPv4 address carried inside IPv6
//! (mapped, compatible, NAT64 `64:ff9b::/96`, 6to4 `2002::/16`) is judged as that IPv4
//! address. Pure: no resolution happens here.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ip_network::{Ipv4Network, Ipv6Network};

/// What the operator allows beyond public addresses (`[browser]`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    pub allow_private_networks: bool,
    /// `host` or `host:port`, compared without case.
    pub allowed_hosts: Vec<String>,
}

impl Policy {
    /// Whether `host` (as named in the request) is opened whatever it resolves to.
    pub fn trusts_host(&self, host: &str, port: u16) -> bool {
        self.allow_private_networks
            || self.allowed_hosts.iter().any(|allowed| {
                allowed.eq_ignore_ascii_case(host)
                    || allowed.eq_ignore_ascii_case(&format!("{host}:{port}"))
            })
    }

    /// Whether a connection to `ip` for `host:port` may be made.
    pub fn permits(&self, host: &str, port: u16, ip: IpAddr) -> bool {
        self.trusts_host(host, port) || is_public(ip)
    }
}

/// Global unicast, judged by the special-purpose registries.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => !v4.is_multicast() && Ipv4Network::from(v4).is_global(),
        IpAddr::V6(v6) => match embedded_ipv4(v6) {
            Some(v4) => is_public(IpAddr::V4(v4)),
            None => !v6.is_multicast() && Ipv6Network::from(v6).is_global(),
        },
    }
}

/// The IPv4 address an IPv6 address carries, for the forms that reach it.
fn embedded_ipv4(v6: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = v6.segments();
    let tail = || Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    if let Some(v4) = v6.to_ipv4_mapped() {
        return Some(v4);
    }
    if s[..6] == [0; 6] {
        return Some(tail()); // IPv4-compatible, and :: and ::1 (0.0.0.0, 0.0.0.1: not public)
    }
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return Some(tail()); // NAT64
    }
    if s[0] == 0x2002 {
        return Some(Ipv4Addr::new(
            (s[1] >> 8) as u8,
            s[1] as u8,
            (s[2] >> 8) as u8,
            s[2] as u8,
        )); // 6to4
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn special_purpose_ranges_are_not_public() {
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "0.1.2.3",
            "100.64.0.1",
            "198.18.0.1",
            "240.0.0.1",
            "255.255.255.255",
            "224.0.0.1",
            "192.0.0.8",
            "::1",
            "::",
            "fe80::1",
            "fc00::1",
            "ff02::1",
            "ff0e::1",
            "::ffff:127.0.0.1",
            "::127.0.0.1",
            "64:ff9b::a00:1",
            "64:ff9b::7f00:1",
            "2002:7f00:1::",
            "2002:a00:1::1",
            "2001:db8::1",
        ] {
            let ip: IpAddr = private.parse().unwrap();
            assert!(!is_public(ip), "{private} counted as public");
        }
        for public in [
            "93.184.216.34",
            "8.8.8.8",
            "2606:4700:4700::1111",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2002:808:808::1",
        ] {
            let ip: IpAddr = public.parse().unwrap();
            assert!(is_public(ip), "{public} counted as private");
        }
    }

    #[test]
    fn trusted_hosts_are_named_with_or_without_a_port() {
        let policy = Policy {
            allow_private_networks: false,
            allowed_hosts: vec!["intranet.local".into(), "127.0.0.1:8080".into()],
        };
        let loopback: IpAddr = "127.0.0.1".parse().unwrap();
        assert!(policy.permits("Intranet.Local", 443, loopback));
        assert!(policy.permits("127.0.0.1", 8080, loopback));
        assert!(!policy.permits("127.0.0.1", 8081, loopback));
        assert!(!policy.permits("elsewhere", 80, loopback));
        assert!(policy.permits("elsewhere", 80, "8.8.8.8".parse().unwrap()));
    }
}
