//! Go's and Prometheus' ways of printing numbers, durations and byte sizes, which Loki's
//! canonical query form uses (`strconv.FormatFloat`, `fmt.Sprint(float64)`,
//! `time.Duration.String()`, Prometheus `model.Duration`, `humanize.Bytes`).

/// `strconv.FormatFloat(v, 'f', -1, 64)`: shortest digits, never an exponent.
pub fn float_plain(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "+Inf".into() } else { "-Inf".into() };
    }
    // Rust's `Display` for f64 is the shortest round-trip form without an exponent.
    let s = format!("{v}");
    if s == "-0" {
        return "-0".into();
    }
    s
}

/// `fmt.Sprint(float64)` (Go's `%v`): shortest digits, with an exponent when the decimal
/// exponent is < -4 or >= 21 ... as Go decides it: `%e` form when exp < -4 || exp >= eprec,
/// where eprec is 6 unless the digits are an integer with more digits.
pub fn float_go(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "+Inf".into() } else { "-Inf".into() };
    }
    if v == 0.0 {
        return if v.is_sign_negative() { "-0".into() } else { "0".into() };
    }
    // Shortest digits and decimal exponent from Rust's `{:e}` ("1.2345e6").
    let e = format!("{:e}", v.abs());
    let (mant, exp) = e.split_once('e').expect("{:e} has an exponent");
    let exp: i32 = exp.parse().expect("integer exponent");
    let digits: String = mant.chars().filter(|c| c.is_ascii_digit()).collect();
    let nd = digits.len() as i32;
    let dp = exp + 1; // position of the decimal point relative to the digits
    let mut eprec = 6;
    if eprec > nd && nd >= dp {
        eprec = nd;
    }
    let sign = if v < 0.0 { "-" } else { "" };
    if exp < -4 || exp >= eprec {
        let mut m = digits[..1].to_string();
        if nd > 1 {
            m.push('.');
            m.push_str(&digits[1..]);
        }
        let (es, ev) = if exp < 0 { ('-', -exp) } else { ('+', exp) };
        return format!("{sign}{m}e{es}{ev:02}");
    }
    format!("{sign}{}", float_plain(v.abs()))
}

/// Prometheus `model.Duration.String()`: `1h30m`, `1w`, `10d`, `250ms`; years and weeks
/// only when exact. Sub-millisecond parts are dropped, as Prometheus does.
pub fn prom_duration(ns: i64) -> String {
    let mut ms = ns / 1_000_000;
    if ms == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    if ms < 0 {
        out.push('-');
        ms = -ms;
    }
    let units: [(&str, i64, bool); 7] = [
        ("y", 365 * 86_400_000, true),
        ("w", 7 * 86_400_000, true),
        ("d", 86_400_000, false),
        ("h", 3_600_000, false),
        ("m", 60_000, false),
        ("s", 1_000, false),
        ("ms", 1, false),
    ];
    for (unit, mult, exact) in units {
        if exact && ms % mult != 0 {
            continue;
        }
        let v = ms / mult;
        if v > 0 {
            out.push_str(&format!("{v}{unit}"));
            ms -= v * mult;
        }
    }
    out
}

/// Go `time.Duration.String()`: `5m0s`, `1h0m0s`, `250ms`, `1.5s`, `1µs`, `0s`.
pub fn go_duration(ns: i64) -> String {
    if ns == 0 {
        return "0s".into();
    }
    let neg = ns < 0;
    let u = ns.unsigned_abs();
    let mut out = String::new();
    if u < 1_000_000_000 {
        // Below one second: a single unit with a fraction.
        let (unit, div) = if u < 1_000 {
            ("ns", 1)
        } else if u < 1_000_000 {
            ("µs", 1_000)
        } else {
            ("ms", 1_000_000)
        };
        out.push_str(&frac(u, div));
        out.push_str(unit);
    } else {
        let h = u / 3_600_000_000_000;
        let m = (u / 60_000_000_000) % 60;
        let s_ns = u % 60_000_000_000;
        if h > 0 {
            out.push_str(&format!("{h}h"));
        }
        if h > 0 || m > 0 {
            out.push_str(&format!("{m}m"));
        }
        out.push_str(&frac(s_ns, 1_000_000_000));
        out.push('s');
    }
    if neg {
        format!("-{out}")
    } else {
        out
    }
}

/// `v / div` with the fraction's trailing zeros trimmed.
fn frac(v: u64, div: u64) -> String {
    let whole = v / div;
    let rest = v % div;
    if rest == 0 {
        return whole.to_string();
    }
    let width = div.to_string().len() - 1;
    let f = format!("{rest:0width$}");
    format!("{whole}.{}", f.trim_end_matches('0'))
}

/// `humanize.Bytes` without the space (`10GB`, `5MB`, `5B`), as Loki prints byte sizes in
/// label filters. Loki's form rounds (`2.5KiB` prints as `2.6kB`); where it would, we print
/// the exact count (`2560B`) instead, so that a printed query always means what was parsed.
pub fn human_bytes(b: u64) -> String {
    let h = humanize_bytes(b);
    if parse_bytes(&h) == Some(b) {
        h
    } else {
        format!("{b}B")
    }
}

fn humanize_bytes(b: u64) -> String {
    if b < 10 {
        return format!("{b}B");
    }
    const SIZES: [&str; 7] = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    let e = ((b as f64).ln() / 1000f64.ln()).floor();
    let suffix = SIZES[e as usize];
    let val = ((b as f64) / 1000f64.powf(e) * 10.0 + 0.5).floor() / 10.0;
    if val < 10.0 {
        format!("{val:.1}{suffix}")
    } else {
        format!("{val:.0}{suffix}")
    }
}

/// Go's `strconv.ParseFloat(s, 64)` for what label values hold: decimal forms (no
/// surrounding spaces), `Inf`/`Infinity`/`NaN` in any case, with Go's error text.
pub fn parse_float_go(s: &str) -> Result<f64, String> {
    let body = s.strip_prefix(['+', '-']).unwrap_or(s);
    let special = ["inf", "infinity", "nan"].iter().any(|w| body.eq_ignore_ascii_case(w));
    let plain = !body.is_empty() && body.bytes().all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-'));
    match (special || plain).then(|| s.parse::<f64>().ok()).flatten() {
        Some(v) if v.is_infinite() && !special => Err(format!("strconv.ParseFloat: parsing {s:?}: value out of range")),
        Some(v) => Ok(v),
        None => Err(format!("strconv.ParseFloat: parsing {s:?}: invalid syntax")),
    }
}

/// `humanize.ParseBytes`: `5MB`, `1.5KiB`, `10gb`, `5k`, `42`; case-insensitive; `k`/`kb`
/// are 1000 and `kib` 1024.
pub fn parse_bytes(s: &str) -> Option<u64> {
    parse_bytes_go(s).ok()
}

/// go-humanize's `ParseBytes`, errors included: the leading digits (with `.` and `,`),
/// then a unit after optional spaces (`kb`, `KiB`, `M`..., any case).
pub fn parse_bytes_go(s: &str) -> Result<u64, String> {
    let split = s.find(|c: char| !(c.is_ascii_digit() || c == '.' || c == ',')).unwrap_or(s.len());
    let num = s[..split].replace(',', "");
    let n: f64 = num.parse().map_err(|_| format!("strconv.ParseFloat: parsing {num:?}: invalid syntax"))?;
    let unit = s[split..].trim().to_ascii_lowercase();
    let mult: f64 = match unit.as_str() {
        "" | "b" => 1.0,
        "k" | "kb" => 1e3,
        "m" | "mb" => 1e6,
        "g" | "gb" => 1e9,
        "t" | "tb" => 1e12,
        "p" | "pb" => 1e15,
        "e" | "eb" => 1e18,
        "ki" | "kib" => 1024.0,
        "mi" | "mib" => 1024f64.powi(2),
        "gi" | "gib" => 1024f64.powi(3),
        "ti" | "tib" => 1024f64.powi(4),
        "pi" | "pib" => 1024f64.powi(5),
        "ei" | "eib" => 1024f64.powi(6),
        _ => return Err(format!("unhandled size name: {unit}")),
    };
    let v = n * mult;
    if v >= u64::MAX as f64 {
        return Err(format!("too large: {s}"));
    }
    Ok(v as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_floats() {
        for (v, s) in [
            (100.0, "100"),
            (123456.0, "123456"),
            (0.5, "0.5"),
            (1e6, "1e+06"),
            (1234567.0, "1.234567e+06"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (-1.0, "-1"),
            (f64::NAN, "NaN"),
            (f64::INFINITY, "+Inf"),
            (1.6, "1.6"),
        ] {
            assert_eq!(float_go(v), s, "{v}");
        }
        assert_eq!(float_plain(0.99), "0.99");
        assert_eq!(parse_float_go("4e2"), Ok(400.0));
        assert_eq!(parse_float_go("-Inf"), Ok(f64::NEG_INFINITY));
        assert_eq!(parse_float_go(" 5"), Err("strconv.ParseFloat: parsing \" 5\": invalid syntax".into()));
        assert!(parse_float_go("1e999").unwrap_err().ends_with("value out of range"));
        assert!(parse_float_go("").is_err() && parse_float_go("0x10").is_err());
        assert_eq!(float_plain(1e21), "1000000000000000000000");
    }

    #[test]
    fn durations() {
        assert_eq!(prom_duration(90 * 60_000_000_000), "1h30m");
        assert_eq!(prom_duration(7 * 86_400_000_000_000), "1w");
        assert_eq!(prom_duration(10 * 86_400_000_000_000), "10d");
        assert_eq!(prom_duration(365 * 86_400_000_000_000), "1y");
        assert_eq!(prom_duration(250_000_000), "250ms");
        assert_eq!(go_duration(300_000_000_000), "5m0s");
        assert_eq!(go_duration(3_600_000_000_000), "1h0m0s");
        assert_eq!(go_duration(5 * 86_400_000_000_000), "120h0m0s");
        assert_eq!(go_duration(250_000_000), "250ms");
        assert_eq!(go_duration(1_500_000_000), "1.5s");
        assert_eq!(go_duration(-300_000_000_000), "-5m0s");
        assert_eq!(go_duration(1_000), "1µs");
        assert_eq!(go_duration(0), "0s");
    }

    #[test]
    fn bytes() {
        assert_eq!(human_bytes(10_000_000_000), "10GB");
        assert_eq!(humanize_bytes(2560), "2.6kB");
        assert_eq!(human_bytes(2560), "2560B");
        assert_eq!(human_bytes(1500), "1.5kB");
        assert_eq!(human_bytes(5), "5B");
        assert_eq!(parse_bytes("1.5KiB"), Some(1536));
        assert_eq!(parse_bytes("5MB"), Some(5_000_000));
        assert_eq!(parse_bytes("10gb"), Some(10_000_000_000));
        assert_eq!(parse_bytes("5x"), None);
    }
}
