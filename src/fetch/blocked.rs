//! The SSRF guard's address test, pure: which destination addresses a worker fetching URLs for
//! a remote seeder must never connect to (loopback, private and shared ranges, link-local,
//! multicast, unspecified, broadcast, and IPv6 forms that embed such an IPv4 address). The
//! fetcher applies it after DNS resolution, to IP-literal URLs and to every redirect target
//! (see [`super::Fetcher`]).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// True when `ip` is not a public unicast destination: loopback (127/8, ::1), "this network"
/// (0/8, ::), private (10/8, 172.16/12, 192.168/16), carrier-grade NAT (100.64/10), link-local
/// (169.254/16, fe80::/10), multicast (224/4, ff00::/8), reserved and broadcast (240/4,
/// 255.255.255.255), unique-local (fc00::/7), deprecated site-local (fec0::/10), and IPv6
/// addresses carrying an IPv4 one (mapped `::ffff:a.b.c.d`, compatible `::a.b.c.d`, NAT64
/// `64:ff9b::/96`, 6to4 `2002::/16`) whose IPv4 address is blocked.
pub fn is_blocked(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_blocked_v4(v4),
        IpAddr::V6(v6) => is_blocked_v6(v6),
    }
}

fn is_blocked_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    a == 0 // "this network", including 0.0.0.0
        || ip.is_loopback()
        || ip.is_private()
        || (a == 100 && (b & 0xc0) == 64) // 100.64.0.0/10, shared address space (CGNAT)
        || ip.is_link_local()
        || ip.is_multicast()
        || a >= 240 // 240/4 reserved, and the broadcast address
}

fn is_blocked_v6(ip: Ipv6Addr) -> bool {
    let seg = ip.segments();
    if ip.is_unspecified() || ip.is_loopback() || ip.is_multicast() {
        return true;
    }
    if (seg[0] & 0xfe00) == 0xfc00 // fc00::/7 unique local
        || (seg[0] & 0xffc0) == 0xfe80 // fe80::/10 link-local
        || (seg[0] & 0xffc0) == 0xfec0
    // fec0::/10 site-local (deprecated, still routed internally by some)
    {
        return true;
    }
    if let Some(v4) = embedded_v4(ip) {
        return is_blocked_v4(v4);
    }
    false
}

/// The IPv4 address an IPv6 address stands for, when it embeds one.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let seg = ip.segments();
    let o = ip.octets();
    let low = Ipv4Addr::new(o[12], o[13], o[14], o[15]);
    match seg {
        // ::ffff:a.b.c.d (mapped)
        [0, 0, 0, 0, 0, 0xffff, _, _] => Some(low),
        // ::a.b.c.d (compatible, deprecated); :: and ::1 are handled before
        [0, 0, 0, 0, 0, 0, _, _] => Some(low),
        // 64:ff9b::/96 (NAT64 well-known prefix)
        [0x64, 0xff9b, 0, 0, 0, 0, _, _] => Some(low),
        // 2002:AABB:CCDD::/48 (6to4)
        [0x2002, hi, lo, ..] => {
            let [a, b] = hi.to_be_bytes();
            let [c, d] = lo.to_be_bytes();
            Some(Ipv4Addr::new(a, b, c, d))
        }
        _ => None,
    }
}

/// The address of an IP-literal URL host (`http://127.0.0.1/`, `http://[::1]/`); `None` for a
/// name, which goes through the resolver (and its check) instead.
pub fn literal_ip(url: &reqwest::Url) -> Option<IpAddr> {
    // The URL parser has already normalised IPv4 spellings (`0x7f.1`, `2130706433`) to dotted
    // quads and wraps IPv6 literals in brackets.
    let host = url.host_str()?;
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    bare.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blocked(s: &str) -> bool {
        is_blocked(s.parse().expect("an address"))
    }

    #[test]
    fn internal_ipv4_ranges_are_blocked() {
        for a in [
            "127.0.0.1",
            "127.255.255.254",
            "0.0.0.0",
            "0.1.2.3",
            "10.0.0.1",
            "10.77.3.2",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "100.64.0.1",
            "100.127.255.255",
            "169.254.169.254",
            "224.0.0.251",
            "239.255.255.250",
            "240.0.0.1",
            "255.255.255.255",
        ] {
            assert!(blocked(a), "{a} must be blocked");
        }
    }

    #[test]
    fn public_ipv4_is_allowed() {
        for a in [
            "1.1.1.1",
            "8.8.8.8",
            "93.184.216.34",
            "172.15.255.255",
            "172.32.0.1",
            "100.63.255.255",
            "100.128.0.1",
            "192.169.0.1",
            "11.0.0.1",
            "126.255.255.255",
            "128.0.0.1",
            "223.255.255.255",
        ] {
            assert!(!blocked(a), "{a} must be allowed");
        }
    }

    #[test]
    fn internal_ipv6_and_embedded_ipv4_are_blocked() {
        for a in [
            "::1",
            "::",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "febf::1",
            "fec0::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:10.1.2.3",
            "::ffff:169.254.169.254",
            "::127.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "2002:7f00:1::1",
            "2002:c0a8:101::1",
        ] {
            assert!(blocked(a), "{a} must be blocked");
        }
    }

    #[test]
    fn public_ipv6_is_allowed() {
        for a in [
            "2606:4700:4700::1111",
            "2001:4860:4860::8888",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2002:808:808::1",
            "fbff::1",
        ] {
            assert!(!blocked(a), "{a} must be allowed");
        }
    }

    #[test]
    fn literal_hosts_are_recognised_and_names_are_not() {
        let url = |s: &str| reqwest::Url::parse(s).expect("url");
        assert_eq!(
            literal_ip(&url("http://127.0.0.1:8080/a.jpg")),
            Some("127.0.0.1".parse().unwrap())
        );
        // The URL parser normalises the odd IPv4 spellings an attacker might try.
        assert_eq!(
            literal_ip(&url("http://0x7f.1/a.jpg")),
            Some("127.0.0.1".parse().unwrap())
        );
        assert_eq!(
            literal_ip(&url("http://2130706433/a.jpg")),
            Some("127.0.0.1".parse().unwrap())
        );
        assert_eq!(
            literal_ip(&url("http://[::ffff:7f00:1]/")),
            Some("::ffff:127.0.0.1".parse().unwrap())
        );
        assert_eq!(literal_ip(&url("http://example.org/a.jpg")), None);
    }
}
