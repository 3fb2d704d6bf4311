//! Durations as LogQL and Loki's HTTP API write them: Go's `time.ParseDuration` units
//! (`ns us µs ms s m h`) plus Prometheus' `d`, `w`, `y`, in sequences like `1h30m` or
//! `1.5s`. Returned as nanoseconds.

const UNITS: &[(&str, f64)] = &[
    ("ns", 1.0),
    ("us", 1e3),
    ("µs", 1e3),
    ("μs", 1e3),
    ("ms", 1e6),
    ("s", 1e9),
    ("m", 60e9),
    ("h", 3600e9),
    ("d", 86400e9),
    ("w", 7.0 * 86400e9),
    ("y", 365.0 * 86400e9),
];

/// Parses a duration; `None` when it is not one. Negative durations are allowed (`-5m`).
pub fn parse_duration(s: &str) -> Option<i64> {
    let (neg, mut rest) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    if rest.is_empty() {
        return None;
    }
    if rest == "0" {
        return Some(0);
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let num_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        if num_len == 0 {
            return None;
        }
        let n: f64 = rest[..num_len].parse().ok()?;
        rest = &rest[num_len..];
        // Longest unit first so `ms` is not read as `m` + `s`.
        let (unit, mult) = UNITS
            .iter()
            .filter(|(u, _)| rest.starts_with(u))
            .max_by_key(|(u, _)| u.len())?;
        rest = &rest[unit.len()..];
        total += n * mult;
    }
    if !total.is_finite() || total > i64::MAX as f64 {
        return None;
    }
    let ns = total.round() as i64;
    Some(if neg { -ns } else { ns })
}

/// Go's `time.ParseDuration`: like [`parse_duration`] but without `d`, `w` and `y`, which
/// Go does not know (Loki converts label values with it).
pub fn parse_go_duration(s: &str) -> Option<i64> {
    if s.contains(['d', 'w', 'y']) {
        return None;
    }
    parse_duration(s)
}

/// Prints nanoseconds the way Prometheus' `model.Duration` does (`1h30m`, `250ms`, `0s`).
pub fn format_duration(ns: i64) -> String {
    if ns == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    let mut rest = ns.unsigned_abs();
    if ns < 0 {
        out.push('-');
    }
    const MS: u64 = 1_000_000;
    if !rest.is_multiple_of(MS) {
        // Below a millisecond Prometheus has no unit; fall back to Go's style.
        let units: [(&str, u64); 3] = [("ms", MS), ("us", 1_000), ("ns", 1)];
        for (u, m) in units {
            if rest >= m && rest.is_multiple_of(m) {
                return format!("{out}{}{u}", rest / m);
            }
        }
        return format!("{out}{rest}ns");
    }
    let units: [(&str, u64); 7] = [
        ("y", 365 * 86_400_000 * MS),
        ("w", 7 * 86_400_000 * MS),
        ("d", 86_400_000 * MS),
        ("h", 3_600_000 * MS),
        ("m", 60_000 * MS),
        ("s", 1_000 * MS),
        ("ms", MS),
    ];
    for (u, m) in units {
        if rest >= m {
            out.push_str(&format!("{}{u}", rest / m));
            rest %= m;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_go_and_prometheus_forms() {
        assert_eq!(parse_duration("250ms"), Some(250_000_000));
        assert_eq!(parse_duration("1h30m"), Some(5_400_000_000_000));
        assert_eq!(parse_duration("1.5s"), Some(1_500_000_000));
        assert_eq!(parse_duration("2d"), Some(172_800_000_000_000));
        assert_eq!(parse_duration("-5m"), Some(-300_000_000_000));
        assert_eq!(parse_duration("10us"), Some(10_000));
        for bad in ["", "5", "5x", "m", "1h-5m", "1..5s"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }

    #[test]
    fn formats_like_prometheus() {
        assert_eq!(format_duration(5_400_000_000_000), "1h30m");
        assert_eq!(format_duration(300_000_000_000), "5m");
        assert_eq!(format_duration(1_500_000_000), "1s500ms");
        assert_eq!(format_duration(86_400_000_000_000), "1d");
        assert_eq!(format_duration(0), "0s");
    }
}
