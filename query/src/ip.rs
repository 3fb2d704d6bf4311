//! `ip("...")` matching as Loki does it (`pkg/logql/log/ip.go`): a single address, a
//! range `a-b`, or a CIDR prefix `a/n`, for IPv4 and IPv6, parsed strictly (no spaces,
//! both ends of a range of one family and in order). A line filter and a label filter
//! both look for an address anywhere in the text, the way Loki scans for one: from a
//! digit followed by a `.` within three bytes (IPv4) or a hex run ending in `:` (IPv6),
//! the longest run of address characters is read as one address.

use std::net::IpAddr;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum IpPattern {
    Single(IpAddr),
    Range(IpAddr, IpAddr),
    Cidr(IpAddr, u8),
}

/// An address as a family and a number. An IPv4-mapped IPv6 address stays IPv6, as in
/// Go's `netip`: it is not in an IPv4 prefix.
fn as_u128(ip: IpAddr) -> (bool, u128) {
    match ip {
        IpAddr::V4(v) => (true, u128::from(u32::from(v))),
        IpAddr::V6(v) => (false, u128::from(v)),
    }
}

const V4_CHARS: &[u8] = b"0123456789.";
const V6_CHARS: &[u8] = b"0123456789abcdefABCDEF:.";

impl IpPattern {
    pub fn parse(s: &str) -> Result<IpPattern, String> {
        let bad = || format!("ip: invalid pattern: {s:?}");
        if let Ok(a) = s.parse::<IpAddr>() {
            return Ok(IpPattern::Single(a));
        }
        if let Some((a, n)) = s.split_once('/') {
            let a: IpAddr = a.parse().map_err(|_| bad())?;
            let max = if as_u128(a).0 { 32 } else { 128 };
            // Decimal bits without a leading zero, at most the family's width.
            let canonical = !n.is_empty() && n.bytes().all(|c| c.is_ascii_digit()) && (n == "0" || !n.starts_with('0'));
            let n: u8 = n.parse().ok().filter(|n| canonical && *n <= max).ok_or_else(bad)?;
            return Ok(IpPattern::Cidr(a, n));
        }
        if let Some((a, b)) = s.split_once('-') {
            let (a, b): (IpAddr, IpAddr) = (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?);
            let ((fa, lo), (fb, hi)) = (as_u128(a), as_u128(b));
            if fa != fb || hi < lo {
                return Err(bad());
            }
            return Ok(IpPattern::Range(a, b));
        }
        Err(bad())
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let (v4, x) = as_u128(ip);
        match self {
            IpPattern::Single(a) => as_u128(*a) == (v4, x),
            IpPattern::Range(a, b) => {
                let (fa, lo) = as_u128(*a);
                let (_, hi) = as_u128(*b);
                fa == v4 && lo <= x && x <= hi
            }
            IpPattern::Cidr(a, n) => {
                let (fa, base) = as_u128(*a);
                if fa != v4 {
                    return false;
                }
                let bits = if v4 { 32 } else { 128 };
                let shift = bits - u32::from(*n);
                if shift >= 128 {
                    return true;
                }
                (base >> shift) == (x >> shift)
            }
        }
    }

    /// Whether `text` holds an address in the pattern, found as Loki's scan finds one.
    pub fn matches_line(&self, text: &str) -> bool {
        let b = text.as_bytes();
        let n = b.len();
        let hex = |c: u8| c.is_ascii_hexdigit();
        let mut i = 0;
        while i < n {
            let charset = if i + 3 < n && b[i].is_ascii_digit() && (b[i + 1] == b'.' || b[i + 2] == b'.' || b[i + 3] == b'.') {
                Some(V4_CHARS)
            } else if i + 4 < n
                && ((b[i] == b':' && b[i + 1] == b':' && hex(b[i + 2]))
                    || (hex(b[i]) && b[i + 1] == b':')
                    || (hex(b[i]) && hex(b[i + 1]) && b[i + 2] == b':')
                    || (hex(b[i]) && hex(b[i + 1]) && hex(b[i + 2]) && b[i + 3] == b':')
                    || (hex(b[i]) && hex(b[i + 1]) && hex(b[i + 2]) && hex(b[i + 3]) && b[i + 4] == b':'))
            {
                Some(V6_CHARS)
            } else {
                None
            };
            if let Some(cs) = charset {
                let len = b[i..].iter().take_while(|c| cs.contains(c)).count();
                // The run is ASCII, so it is a valid &str.
                if text[i..i + len].parse::<IpAddr>().is_ok_and(|ip| self.contains(ip)) {
                    return true;
                }
                i += len;
            }
            i += 1;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_range_cidr_v4_v6() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(IpPattern::parse("192.168.4.5").unwrap().contains(ip("192.168.4.5")));
        let r = IpPattern::parse("192.168.4.5-192.168.4.20").unwrap();
        assert!(r.contains(ip("192.168.4.10")) && !r.contains(ip("192.168.4.21")));
        let c = IpPattern::parse("10.0.0.0/8").unwrap();
        assert!(c.contains(ip("10.200.1.1")) && !c.contains(ip("11.0.0.1")));
        let c6 = IpPattern::parse("2001:db8::/32").unwrap();
        assert!(c6.contains(ip("2001:db8:b043::1")) && !c6.contains(ip("2001:db9::1")));
        assert!(IpPattern::parse("0.0.0.0/0").unwrap().contains(ip("8.8.8.8")));
        assert!(IpPattern::parse("nope").is_err());
        // Strict, as Go's netip: no spaces, ranges in order and of one family.
        for bad in [" 10.0.0.1", "10.0.0.9-10.0.0.1", "10.0.0.1 - 10.0.0.9", "10.0.0.1-::1", "10.0.0.0/33", "10.0.0.0/08"] {
            assert!(IpPattern::parse(bad).is_err(), "{bad}");
        }
        assert!(!IpPattern::parse("10.0.0.0/8").unwrap().contains(ip("::ffff:10.0.0.1")), "a v4-mapped address is IPv6");
    }

    #[test]
    fn finds_addresses_in_lines() {
        let p = IpPattern::parse("203.0.113.0/24").unwrap();
        assert!(p.matches_line(r#"{"ip_address":"203.0.113.122","x":1}"#));
        assert!(p.matches_line("client 203.0.113.7:443 connected"));
        assert!(!p.matches_line("client 198.51.100.7 connected"));
        let v6 = IpPattern::parse("2001:db8::/32").unwrap();
        assert!(v6.matches_line("from 2001:db8:b043:579b::eb37 - -"));
        // Loki's scan: an address glued to letters is still found; a trailing dot joins
        // the run and spoils it; a v4-mapped address is read as IPv6.
        let p = IpPattern::parse("198.51.100.0/24").unwrap();
        assert!(p.matches_line("ab198.51.100.250"));
        assert!(!p.matches_line("x 198.51.100.250. y"));
        assert!(!p.matches_line("::ffff:198.51.100.250"));
        assert!(p.matches_line("from 198.51.100.250"));
    }
}
