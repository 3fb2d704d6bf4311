//! `ip("...")` matching as Loki does it: a single address, a range `a-b`, or a CIDR block
//! `a/n`, for IPv4 and IPv6. As a label filter it tests the label's value; as a line
//! filter it looks for any address in the line that matches.

use std::net::IpAddr;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum IpPattern {
    Single(IpAddr),
    Range(IpAddr, IpAddr),
    Cidr(IpAddr, u8),
}

fn as_u128(ip: IpAddr) -> (bool, u128) {
    match ip {
        IpAddr::V4(v) => (true, u128::from(u32::from(v))),
        IpAddr::V6(v) => match v.to_ipv4_mapped() {
            Some(v4) => (true, u128::from(u32::from(v4))),
            None => (false, u128::from(v)),
        },
    }
}

impl IpPattern {
    pub fn parse(s: &str) -> Result<IpPattern, String> {
        let bad = || format!("invalid ip pattern {s:?}: expected an address, a range a-b or a CIDR block a/n");
        let s = s.trim();
        if let Some((a, b)) = s.split_once('-') {
            let (a, b): (IpAddr, IpAddr) = (a.trim().parse().map_err(|_| bad())?, b.trim().parse().map_err(|_| bad())?);
            if as_u128(a).0 != as_u128(b).0 {
                return Err(bad());
            }
            return Ok(IpPattern::Range(a, b));
        }
        if let Some((a, n)) = s.split_once('/') {
            let a: IpAddr = a.parse().map_err(|_| bad())?;
            let n: u8 = n.parse().map_err(|_| bad())?;
            let max = if as_u128(a).0 { 32 } else { 128 };
            if n > max {
                return Err(bad());
            }
            return Ok(IpPattern::Cidr(a, n));
        }
        s.parse().map(IpPattern::Single).map_err(|_| bad())
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

    /// Whether any address-looking token of `line` is in the pattern.
    pub fn matches_line(&self, line: &str) -> bool {
        line.split(|c: char| !(c.is_ascii_hexdigit() || c == ':' || c == '.'))
            .filter(|t| t.len() >= 2)
            .any(|t| {
                let t = t.trim_matches('.');
                if let Ok(ip) = t.parse::<IpAddr>() {
                    return self.contains(ip);
                }
                // `10.0.0.1:8080`: an IPv4 address with a port.
                t.rsplit_once(':').and_then(|(a, _)| a.parse::<IpAddr>().ok()).is_some_and(|ip| self.contains(ip))
            })
    }
}

/// A label filter `name = ip("...")`: whether the value is an address in the pattern.
pub fn matches_value(pattern: &str, value: &str) -> Result<bool, String> {
    let p = IpPattern::parse(pattern)?;
    Ok(value.trim().parse::<IpAddr>().is_ok_and(|ip| p.contains(ip)))
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
    }

    #[test]
    fn finds_addresses_in_lines() {
        let p = IpPattern::parse("203.0.113.0/24").unwrap();
        assert!(p.matches_line(r#"{"ip_address":"203.0.113.122","x":1}"#));
        assert!(p.matches_line("client 203.0.113.7:443 connected"));
        assert!(!p.matches_line("client 198.51.100.7 connected"));
        let v6 = IpPattern::parse("2001:db8::/32").unwrap();
        assert!(v6.matches_line("from 2001:db8:b043:579b::eb37 - -"));
    }
}
