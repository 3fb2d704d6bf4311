//! Go's time formatting for templates. Loki's `__timestamp__`, `now`, `toDate` and
//! `unixToTime` return Go `time.Time` values, which print as `time.Time.String()` and are
//! formatted with Go reference layouts (`"2006-01-02T15:04:05Z07:00"`). A template value
//! has no time type, so a time travels as its `String()` text and is read back by the
//! functions that take a time. Loki's image runs in UTC, so every time here is UTC.

use chrono::{DateTime, Datelike, FixedOffset, NaiveDate, NaiveDateTime, TimeZone, Timelike, Utc};

const MONTHS: [&str; 12] = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December"];
const DAYS: [&str; 7] = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"];

/// Go's `time.Time.String()` of a UTC instant: `2006-01-02 15:04:05.999999999 +0000 UTC`.
pub fn time_string(ns: i64) -> String {
    format(ns, "2006-01-02 15:04:05.999999999 -0700 MST")
}

/// Reads back a [`time_string`] (any offset); `None` for any other text.
pub fn parse_time_string(s: &str) -> Option<i64> {
    let (body, _zone) = s.rsplit_once(' ')?;
    parse("2006-01-02 15:04:05.999999999 -0700", body)
}

/// The zero `time.Time` (what `toDate` gives for text that does not parse).
pub fn zero_time() -> String {
    "0001-01-01 00:00:00 +0000 UTC".into()
}

/// One element of a Go layout.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Chunk {
    Lit(char),
    LongMonth,
    Month,
    NumMonth,
    ZeroMonth,
    LongWeekDay,
    WeekDay,
    Day,
    UnderDay,
    ZeroDay,
    YearDay,
    ZeroYearDay,
    Hour,
    Hour12,
    ZeroHour12,
    Minute,
    ZeroMinute,
    Second,
    ZeroSecond,
    LongYear,
    Year,
    PM,
    Pm,
    TzName,
    /// A numeric zone: `Z` for UTC when `iso`, colons, and whether seconds/minutes show.
    Offset { iso: bool, colon: bool, minutes: bool, seconds: bool },
    /// Fractional seconds: digits, and whether trailing zeros go (`.999`).
    Frac { digits: usize, trim: bool, sep: char },
}

/// Splits a Go layout into chunks, as Go's `nextStdChunk` does.
fn chunks(layout: &str) -> Vec<Chunk> {
    let b = layout.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    let at = |i: usize, p: &str| layout[i..].starts_with(p);
    while i < b.len() {
        let (c, n) = match b[i] {
            b'J' if at(i, "January") => (Chunk::LongMonth, 7),
            b'J' if at(i, "Jan") => (Chunk::Month, 3),
            b'M' if at(i, "Monday") => (Chunk::LongWeekDay, 6),
            b'M' if at(i, "Mon") => (Chunk::WeekDay, 3),
            b'M' if at(i, "MST") => (Chunk::TzName, 3),
            b'0' if at(i, "002") => (Chunk::ZeroYearDay, 3),
            b'0' if at(i, "01") => (Chunk::ZeroMonth, 2),
            b'0' if at(i, "02") => (Chunk::ZeroDay, 2),
            b'0' if at(i, "03") => (Chunk::ZeroHour12, 2),
            b'0' if at(i, "04") => (Chunk::ZeroMinute, 2),
            b'0' if at(i, "05") => (Chunk::ZeroSecond, 2),
            b'0' if at(i, "06") => (Chunk::Year, 2),
            b'1' if at(i, "15") => (Chunk::Hour, 2),
            b'1' => (Chunk::NumMonth, 1),
            b'2' if at(i, "2006") => (Chunk::LongYear, 4),
            b'2' => (Chunk::Day, 1),
            b'_' if at(i, "_2006") => {
                out.push(Chunk::Lit('_'));
                (Chunk::LongYear, 5)
            }
            b'_' if at(i, "__2") => (Chunk::YearDay, 3),
            b'_' if at(i, "_2") => (Chunk::UnderDay, 2),
            b'3' => (Chunk::Hour12, 1),
            b'4' => (Chunk::Minute, 1),
            b'5' => (Chunk::Second, 1),
            b'P' if at(i, "PM") => (Chunk::PM, 2),
            b'p' if at(i, "pm") => (Chunk::Pm, 2),
            b'-' | b'Z' => {
                let iso = b[i] == b'Z';
                let rest = &layout[i + 1..];
                let forms: [(&str, bool, bool, bool); 5] = [
                    ("070000", false, true, true),
                    ("07:00:00", true, true, true),
                    ("0700", false, true, false),
                    ("07:00", true, true, false),
                    ("07", false, false, false),
                ];
                match forms.iter().find(|f| rest.starts_with(f.0)) {
                    Some(&(f, colon, minutes, seconds)) => (Chunk::Offset { iso, colon, minutes, seconds }, 1 + f.len()),
                    None => (Chunk::Lit(b[i] as char), 1),
                }
            }
            sep @ (b'.' | b',') if i + 1 < b.len() && (b[i + 1] == b'0' || b[i + 1] == b'9') => {
                let d = b[i + 1];
                let mut j = i + 1;
                while j < b.len() && b[j] == d {
                    j += 1;
                }
                if j < b.len() && b[j].is_ascii_digit() {
                    (Chunk::Lit(sep as char), 1)
                } else {
                    (Chunk::Frac { digits: j - i - 1, trim: d == b'9', sep: sep as char }, j - i)
                }
            }
            _ => {
                let ch = layout[i..].chars().next().unwrap_or(' ');
                (Chunk::Lit(ch), ch.len_utf8())
            }
        };
        out.push(c);
        i += n;
    }
    out
}

fn utc(ns: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_nanos(ns)
}

/// Formats a UTC instant with a Go layout.
pub fn format(ns: i64, layout: &str) -> String {
    let t = utc(ns);
    let mut out = String::new();
    for c in chunks(layout) {
        match c {
            Chunk::Lit(ch) => out.push(ch),
            Chunk::LongMonth => out.push_str(MONTHS[t.month0() as usize]),
            Chunk::Month => out.push_str(&MONTHS[t.month0() as usize][..3]),
            Chunk::NumMonth => out.push_str(&t.month().to_string()),
            Chunk::ZeroMonth => out.push_str(&format!("{:02}", t.month())),
            Chunk::LongWeekDay => out.push_str(DAYS[t.weekday().num_days_from_sunday() as usize]),
            Chunk::WeekDay => out.push_str(&DAYS[t.weekday().num_days_from_sunday() as usize][..3]),
            Chunk::Day => out.push_str(&t.day().to_string()),
            Chunk::UnderDay => out.push_str(&format!("{:>2}", t.day())),
            Chunk::ZeroDay => out.push_str(&format!("{:02}", t.day())),
            Chunk::YearDay => out.push_str(&format!("{:>3}", t.ordinal())),
            Chunk::ZeroYearDay => out.push_str(&format!("{:03}", t.ordinal())),
            Chunk::Hour => out.push_str(&format!("{:02}", t.hour())),
            Chunk::Hour12 => out.push_str(&t.hour12().1.to_string()),
            Chunk::ZeroHour12 => out.push_str(&format!("{:02}", t.hour12().1)),
            Chunk::Minute => out.push_str(&t.minute().to_string()),
            Chunk::ZeroMinute => out.push_str(&format!("{:02}", t.minute())),
            Chunk::Second => out.push_str(&t.second().to_string()),
            Chunk::ZeroSecond => out.push_str(&format!("{:02}", t.second())),
            Chunk::LongYear => out.push_str(&format!("{:04}", t.year())),
            Chunk::Year => out.push_str(&format!("{:02}", t.year().rem_euclid(100))),
            Chunk::PM => out.push_str(if t.hour() >= 12 { "PM" } else { "AM" }),
            Chunk::Pm => out.push_str(if t.hour() >= 12 { "pm" } else { "am" }),
            Chunk::TzName => out.push_str("UTC"),
            Chunk::Offset { iso, colon, minutes, seconds } => {
                if iso {
                    out.push('Z');
                } else {
                    out.push_str("+00");
                    let sep = if colon { ":" } else { "" };
                    if minutes {
                        out.push_str(sep);
                        out.push_str("00");
                    }
                    if seconds {
                        out.push_str(sep);
                        out.push_str("00");
                    }
                }
            }
            Chunk::Frac { digits, trim, sep } => {
                let frac = format!("{:09}", t.nanosecond() % 1_000_000_000);
                let mut d = &frac[..digits.min(9)];
                if trim {
                    d = d.trim_end_matches('0');
                    if d.is_empty() {
                        continue;
                    }
                }
                out.push(sep);
                out.push_str(d);
            }
        }
    }
    out
}

/// Parses `value` with a Go layout (UTC unless the layout has an offset); `None` when it
/// does not fit, or lies outside what nanoseconds since 1970 can hold (1678–2262).
pub fn parse(layout: &str, value: &str) -> Option<i64> {
    let mut s = value;
    // Go's defaults for what a layout leaves out: January 1 of year 0, midnight, UTC.
    let (mut year, mut month, mut day, mut yday) = (0i32, 1u32, 1u32, None::<u32>);
    let (mut hour, mut min, mut sec, mut nanos) = (0u32, 0u32, 0u32, 0u32);
    let mut pm: Option<bool> = None;
    let mut offset = 0i32;
    let num = |s: &mut &str, min_len: usize, max_len: usize| -> Option<u32> {
        let n = s.bytes().take(max_len).take_while(u8::is_ascii_digit).count();
        if n < min_len {
            return None;
        }
        let v = s[..n].parse().ok()?;
        *s = &s[n..];
        Some(v)
    };
    let name = |s: &mut &str, names: &[&str], short: bool| -> Option<u32> {
        names.iter().position(|n| {
            let n = if short { &n[..3] } else { n };
            s.len() >= n.len() && s.is_char_boundary(n.len()) && s[..n.len()].eq_ignore_ascii_case(n)
        }).map(|i| {
            *s = &s[if short { 3 } else { names[i].len() }..];
            i as u32
        })
    };
    for c in chunks(layout) {
        match c {
            Chunk::Lit(ch) => s = s.strip_prefix(ch)?,
            Chunk::LongMonth => month = name(&mut s, &MONTHS, false)? + 1,
            Chunk::Month => month = name(&mut s, &MONTHS, true)? + 1,
            Chunk::NumMonth => month = num(&mut s, 1, 2)?,
            Chunk::ZeroMonth => month = num(&mut s, 2, 2)?,
            Chunk::LongWeekDay => {
                name(&mut s, &DAYS, false)?;
            }
            Chunk::WeekDay => {
                name(&mut s, &DAYS, true)?;
            }
            Chunk::Day => day = num(&mut s, 1, 2)?,
            Chunk::UnderDay => {
                s = s.strip_prefix(' ').unwrap_or(s);
                day = num(&mut s, 1, 2)?
            }
            Chunk::ZeroDay => day = num(&mut s, 2, 2)?,
            Chunk::YearDay => {
                s = s.trim_start_matches(' ');
                yday = Some(num(&mut s, 1, 3)?)
            }
            Chunk::ZeroYearDay => yday = Some(num(&mut s, 3, 3)?),
            Chunk::Hour => hour = num(&mut s, 2, 2)?,
            Chunk::Hour12 => hour = num(&mut s, 1, 2)?,
            Chunk::ZeroHour12 => hour = num(&mut s, 2, 2)?,
            Chunk::Minute => min = num(&mut s, 1, 2)?,
            Chunk::ZeroMinute => min = num(&mut s, 2, 2)?,
            Chunk::Second | Chunk::ZeroSecond => {
                sec = num(&mut s, if c == Chunk::Second { 1 } else { 2 }, 2)?;
                // Go accepts a fraction after seconds even when the layout has none.
                if let Some(rest) = s.strip_prefix(['.', ',']).filter(|r| r.starts_with(|c: char| c.is_ascii_digit())) {
                    if !layout_has_frac(layout) {
                        s = rest;
                        nanos = frac(&mut s)?;
                    }
                }
            }
            Chunk::LongYear => year = num(&mut s, 4, 4)? as i32,
            Chunk::Year => {
                // Go reads two-digit years 69–99 as 19xx and the rest as 20xx.
                let y = num(&mut s, 2, 2)? as i32;
                year = if y >= 69 { 1900 + y } else { 2000 + y };
            }
            Chunk::PM | Chunk::Pm => {
                let p = s.get(..2)?.to_ascii_uppercase();
                pm = Some(match p.as_str() {
                    "PM" => true,
                    "AM" => false,
                    _ => return None,
                });
                s = &s[2..];
            }
            Chunk::TzName => {
                let n = s.bytes().take_while(u8::is_ascii_uppercase).count();
                if n < 3 {
                    return None;
                }
                s = &s[n..];
            }
            Chunk::Offset { iso, colon, minutes, seconds } => {
                if iso && s.starts_with('Z') {
                    s = &s[1..];
                    continue;
                }
                let sign = match s.as_bytes().first()? {
                    b'+' => 1,
                    b'-' => -1,
                    _ => return None,
                };
                s = &s[1..];
                let h = num(&mut s, 2, 2)? as i32;
                let mut m = 0;
                let mut sec_off = 0;
                if minutes {
                    if colon {
                        s = s.strip_prefix(':')?;
                    }
                    m = num(&mut s, 2, 2)? as i32;
                }
                if seconds {
                    if colon {
                        s = s.strip_prefix(':')?;
                    }
                    sec_off = num(&mut s, 2, 2)? as i32;
                }
                offset = sign * (h * 3600 + m * 60 + sec_off);
            }
            Chunk::Frac { digits, trim, sep } => {
                if trim {
                    // `.999`: optional, any number of digits.
                    if let Some(rest) = s.strip_prefix(sep).filter(|r| r.starts_with(|c: char| c.is_ascii_digit())) {
                        s = rest;
                        nanos = frac(&mut s)?;
                    }
                } else {
                    s = s.strip_prefix(sep)?;
                    let n = s.bytes().take_while(u8::is_ascii_digit).count();
                    if n != digits {
                        return None;
                    }
                    nanos = frac(&mut s)?;
                }
            }
        }
    }
    if !s.is_empty() {
        return None;
    }
    if let Some(pm) = pm {
        if hour > 12 {
            return None;
        }
        hour = match (pm, hour) {
            (true, 12) => 12,
            (true, h) => h + 12,
            (false, 12) => 0,
            (false, h) => h,
        };
    }
    let date = match yday {
        Some(d) => NaiveDate::from_yo_opt(year, d)?,
        None => NaiveDate::from_ymd_opt(year, month, day)?,
    };
    let naive: NaiveDateTime = date.and_hms_nano_opt(hour, min, sec, nanos)?;
    let t = FixedOffset::east_opt(offset)?.from_local_datetime(&naive).single()?;
    t.timestamp_nanos_opt()
}

fn layout_has_frac(layout: &str) -> bool {
    chunks(layout).iter().any(|c| matches!(c, Chunk::Frac { .. }))
}

/// Reads fraction digits (up to nanoseconds; more are ignored) as nanoseconds.
fn frac(s: &mut &str) -> Option<u32> {
    let n = s.bytes().take_while(u8::is_ascii_digit).count();
    if n == 0 {
        return None;
    }
    let digits = &s[..n.min(9)];
    let v: u32 = digits.parse().ok()?;
    *s = &s[n..];
    Some(v * 10u32.pow(9 - digits.len() as u32))
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: i64 = 1_768_525_116_370_346_768; // 2026-01-16 00:58:36.370346768 UTC

    #[test]
    fn time_string_is_gos() {
        assert_eq!(time_string(T), "2026-01-16 00:58:36.370346768 +0000 UTC");
        assert_eq!(time_string(1_768_525_116_000_000_000), "2026-01-16 00:58:36 +0000 UTC");
        assert_eq!(time_string(1_768_525_116_500_000_000), "2026-01-16 00:58:36.5 +0000 UTC");
        assert_eq!(parse_time_string(&time_string(T)), Some(T));
        assert_eq!(parse_time_string("2026-01-16 01:58:36.5 +0100 CET"), Some(1_768_525_116_500_000_000));
        assert_eq!(parse_time_string("postgres-1"), None);
    }

    #[test]
    fn formats_go_layouts() {
        assert_eq!(format(T, "2006-01-02T15:04:05Z07:00"), "2026-01-16T00:58:36Z");
        assert_eq!(format(T, "2006-01-02T15:04:05.000-07:00"), "2026-01-16T00:58:36.370+00:00");
        assert_eq!(format(T, "Mon Jan _2 3:04PM"), "Fri Jan 16 12:58AM");
        assert_eq!(format(T, "January 2, 06 002"), "January 16, 26 016");
        assert_eq!(format(T, "15h"), "00h");
        assert_eq!(format(T, "2006.01"), "2026.01");
    }

    #[test]
    fn parses_go_layouts() {
        assert_eq!(parse("2006-01-02", "2026-01-16"), Some(1_768_521_600_000_000_000));
        assert_eq!(parse("2006-01-02T15:04:05Z07:00", "2026-01-16T01:58:36+01:00"), Some(1_768_525_116_000_000_000));
        assert_eq!(parse("2006-01-02T15:04:05Z07:00", "2026-01-16T00:58:36Z"), Some(1_768_525_116_000_000_000));
        assert_eq!(parse("2006-01-02 15:04:05", "2026-01-16 00:58:36.370346768"), Some(T));
        assert_eq!(parse("02/Jan/2006:15:04:05 -0700", "16/Jan/2026:00:58:36 +0000"), Some(1_768_525_116_000_000_000));
        assert_eq!(parse("2006-01-02 3:04PM", "2026-01-16 12:30AM"), Some(1_768_523_400_000_000_000));
        assert_eq!(parse("2006-01-02 3:04pm", "2026-01-16 12:30pm"), Some(1_768_566_600_000_000_000));
        assert_eq!(parse("02-Jan-06", "16-Jan-99"), Some(916_444_800_000_000_000));
        assert_eq!(parse("2006-01-02", "2026-13-01"), None);
        assert_eq!(parse("2006-01-02", "2026-01-16x"), None);
    }
}
