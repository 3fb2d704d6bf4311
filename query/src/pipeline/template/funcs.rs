//! The template functions Loki offers (`pkg/logql/log/fmt.go`): its own (`ToUpper`,
//! `regexReplaceAll`, `unixToTime`, `alignLeft`...), the sprig functions it picks (`trunc`,
//! `add`, `date`, `default`...) and Go's `html`, `js` and `slice`, which gtmpl lacks.
//!
//! Arguments arrive as template values. Go converts them by type: label values are
//! strings, literals are ints or floats, and sprig's arithmetic reads strings as numbers
//! (`cast.ToInt64`: "12" is 12, "1.5" is 0). Where Go would refuse an argument's type
//! outright, these functions read it as best they can instead.

use std::collections::HashMap;

use base64::Engine;
use gtmpl_value::{Func, FuncError, Value};

use super::gotime;
use super::printf::printf;
use crate::format::float_go;

/// Every function, by the name templates call it.
pub const FUNCS: &[(&str, Func)] = &[
    ("printf", printf),
    ("html", html),
    ("js", js),
    ("slice", slice),
    // Loki's own.
    ("ToLower", to_lower),
    ("ToUpper", to_upper),
    ("Replace", go_replace),
    ("Trim", go_trim),
    ("TrimLeft", go_trim_left),
    ("TrimRight", go_trim_right),
    ("TrimPrefix", go_trim_prefix),
    ("TrimSuffix", go_trim_suffix),
    ("TrimSpace", trim_space),
    ("regexReplaceAll", regex_replace_all),
    ("regexReplaceAllLiteral", regex_replace_all_literal),
    ("count", count),
    ("urldecode", url_decode),
    ("urlencode", url_encode),
    ("bytes", bytes),
    ("duration", duration),
    ("duration_seconds", duration),
    ("unixEpochMillis", unix_epoch_millis),
    ("unixEpochNanos", unix_epoch_nanos),
    ("toDateInZone", to_date_in_zone),
    ("unixToTime", unix_to_time),
    ("alignLeft", align_left),
    ("alignRight", align_right),
    // sprig's.
    ("b64enc", b64enc),
    ("b64dec", b64dec),
    ("lower", to_lower),
    ("upper", to_upper),
    ("title", title),
    ("trunc", trunc),
    ("substr", substr),
    ("contains", contains),
    ("hasPrefix", has_prefix),
    ("hasSuffix", has_suffix),
    ("indent", indent),
    ("nindent", nindent),
    ("replace", replace),
    ("repeat", repeat),
    ("trim", trim_space),
    ("trimAll", trim_all),
    ("trimSuffix", trim_suffix),
    ("trimPrefix", trim_prefix),
    ("int", int),
    ("float64", float64),
    ("add", add),
    ("sub", sub),
    ("mul", mul),
    ("div", div),
    ("mod", modulo),
    ("addf", addf),
    ("subf", subf),
    ("mulf", mulf),
    ("divf", divf),
    ("max", max),
    ("min", min),
    ("maxf", maxf),
    ("minf", minf),
    ("ceil", ceil),
    ("floor", floor),
    ("round", round),
    ("fromJson", from_json),
    ("date", date),
    ("toDate", to_date),
    ("now", now),
    ("unixEpoch", unix_epoch),
    ("default", default),
];

// ---- values as Go sees them ------------------------------------------------------------

/// The Go type name `%T` prints for a value.
pub fn go_type(v: &Value) -> &'static str {
    match v {
        Value::String(_) => "string",
        Value::Number(n) if n.as_f64().is_some() => "float64",
        Value::Number(_) => "int",
        Value::Bool(_) => "bool",
        Value::Map(_) | Value::Object(_) => "map[string]interface {}",
        Value::Array(_) => "[]interface {}",
        Value::Function(_) => "func",
        Value::Nil | Value::NoValue => "<nil>",
    }
}

/// A value as Go's `%v` prints it.
pub fn go_value(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => match n.as_f64() {
            Some(f) => float_go(f),
            None => n.to_string(),
        },
        Value::Bool(b) => b.to_string(),
        Value::Nil | Value::NoValue => "<nil>".into(),
        Value::Array(a) => format!("[{}]", a.iter().map(go_value).collect::<Vec<_>>().join(" ")),
        Value::Map(m) | Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            format!("map[{}]", keys.iter().map(|k| format!("{k}:{}", go_value(&m[*k]))).collect::<Vec<_>>().join(" "))
        }
        Value::Function(_) => "func".into(),
    }
}

fn err(msg: impl Into<String>) -> FuncError {
    FuncError::Generic(msg.into())
}

fn args<'a, const N: usize>(name: &str, a: &'a [Value]) -> Result<&'a [Value; N], FuncError> {
    a.try_into().map_err(|_| FuncError::ExactlyXArgs(name.into(), N))
}

/// A string argument (numbers print as Go would print them).
fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::NoValue | Value::Nil => String::new(),
        other => go_value(other),
    }
}

/// Go's `strconv.ParseInt(s, 0, 64)`: an optional sign, then decimal, `0x`, `0o`, `0b` or
/// a leading-zero octal.
fn parse_go_int(s: &str) -> Option<i64> {
    let (neg, body) = match s.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let lower = body.to_ascii_lowercase();
    let (radix, digits) = if let Some(d) = lower.strip_prefix("0x") {
        (16, d)
    } else if let Some(d) = lower.strip_prefix("0b") {
        (2, d)
    } else if let Some(d) = lower.strip_prefix("0o") {
        (8, d)
    } else if lower.len() > 1 && lower.starts_with('0') {
        (8, &lower[1..])
    } else {
        (10, lower.as_str())
    };
    if digits.is_empty() || digits.starts_with(['+', '-']) {
        return None;
    }
    let v = i64::from_str_radix(digits, radix).ok()?;
    Some(if neg { -v } else { v })
}

/// sprig's `toInt64` (`cast.ToInt64`): 0 for what does not convert.
fn to_int64(v: &Value) -> i64 {
    match v {
        Value::Number(n) => n.as_i64().or_else(|| n.as_u64().map(|u| u as i64)).or_else(|| n.as_f64().map(|f| f as i64)).unwrap_or(0),
        Value::String(s) => {
            // `cast` drops a zero decimal part first ("12.00" is 12).
            let t = match s.split_once('.') {
                Some((int, frac)) if !frac.is_empty() && frac.bytes().all(|b| b == b'0') => int,
                _ => s.as_str(),
            };
            parse_go_int(t).unwrap_or(0)
        }
        Value::Bool(b) => *b as i64,
        _ => 0,
    }
}

/// sprig's `toFloat64` (`cast.ToFloat64`): 0 for what does not convert.
fn to_float64(v: &Value) -> f64 {
    match v {
        Value::Number(n) => n.as_f64().or_else(|| n.as_i64().map(|i| i as f64)).or_else(|| n.as_u64().map(|u| u as f64)).unwrap_or(0.0),
        Value::String(s) => s.parse().unwrap_or(0.0),
        Value::Bool(b) => *b as i64 as f64,
        _ => 0.0,
    }
}

/// An argument Go declares `int`.
fn int_arg(name: &str, v: &Value) -> Result<i64, FuncError> {
    match v {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)).ok_or_else(|| err(format!("{name}: integer out of range"))),
        Value::String(s) => s.trim().parse().map_err(|_| err(format!("wrong type for value; expected int; got string ({name})"))),
        _ => Err(err(format!("wrong type for value; expected int; got {} ({name})", go_type(v)))),
    }
}

/// A time argument: a time value (see [`gotime`]); Go refuses anything else.
fn time_arg(name: &str, v: &Value) -> Result<i64, FuncError> {
    match v {
        Value::String(s) => gotime::parse_time_string(s).ok_or_else(|| err(format!("wrong type for value; expected time.Time; got string ({name})"))),
        _ => Err(err(format!("wrong type for value; expected time.Time; got {} ({name})", go_type(v)))),
    }
}

fn time_value(ns: Option<i64>) -> Value {
    Value::String(ns.map_or_else(gotime::zero_time, gotime::time_string))
}

// ---- strings -----------------------------------------------------------------------------

fn to_upper(a: &[Value]) -> Result<Value, FuncError> {
    let [v] = args::<1>("ToUpper", a)?;
    Ok(Value::String(text(v).to_uppercase()))
}
fn to_lower(a: &[Value]) -> Result<Value, FuncError> {
    let [v] = args::<1>("ToLower", a)?;
    Ok(Value::String(text(v).to_lowercase()))
}
fn trim_space(a: &[Value]) -> Result<Value, FuncError> {
    let [v] = args::<1>("TrimSpace", a)?;
    Ok(Value::String(text(v).trim().to_string()))
}
/// `Replace s old new n` (Go's `strings.Replace`: all when n < 0).
fn go_replace(a: &[Value]) -> Result<Value, FuncError> {
    let [s, old, new, n] = args::<4>("Replace", a)?;
    let (s, old, new, n) = (text(s), text(old), text(new), int_arg("Replace", n)?);
    Ok(Value::String(if n < 0 { s.replace(&old, &new) } else { s.replacen(&old, &new, n as usize) }))
}
fn go_trim(a: &[Value]) -> Result<Value, FuncError> {
    let [s, cut] = args::<2>("Trim", a)?;
    let cut = text(cut);
    Ok(Value::String(text(s).trim_matches(|c| cut.contains(c)).to_string()))
}
fn go_trim_left(a: &[Value]) -> Result<Value, FuncError> {
    let [s, cut] = args::<2>("TrimLeft", a)?;
    let cut = text(cut);
    Ok(Value::String(text(s).trim_start_matches(|c| cut.contains(c)).to_string()))
}
fn go_trim_right(a: &[Value]) -> Result<Value, FuncError> {
    let [s, cut] = args::<2>("TrimRight", a)?;
    let cut = text(cut);
    Ok(Value::String(text(s).trim_end_matches(|c| cut.contains(c)).to_string()))
}
fn go_trim_prefix(a: &[Value]) -> Result<Value, FuncError> {
    let [s, p] = args::<2>("TrimPrefix", a)?;
    let (s, p) = (text(s), text(p));
    Ok(Value::String(s.strip_prefix(p.as_str()).unwrap_or(&s).to_string()))
}
fn go_trim_suffix(a: &[Value]) -> Result<Value, FuncError> {
    let [s, p] = args::<2>("TrimSuffix", a)?;
    let (s, p) = (text(s), text(p));
    Ok(Value::String(s.strip_suffix(p.as_str()).unwrap_or(&s).to_string()))
}
/// sprig's argument order: the cut set (or affix) first, the piped string last.
fn trim_all(a: &[Value]) -> Result<Value, FuncError> {
    let [cut, s] = args::<2>("trimAll", a)?;
    go_trim(&[s.clone(), cut.clone()])
}
fn trim_prefix(a: &[Value]) -> Result<Value, FuncError> {
    let [p, s] = args::<2>("trimPrefix", a)?;
    go_trim_prefix(&[s.clone(), p.clone()])
}
fn trim_suffix(a: &[Value]) -> Result<Value, FuncError> {
    let [p, s] = args::<2>("trimSuffix", a)?;
    go_trim_suffix(&[s.clone(), p.clone()])
}
/// `replace old new s`: every occurrence.
fn replace(a: &[Value]) -> Result<Value, FuncError> {
    let [old, new, s] = args::<3>("replace", a)?;
    Ok(Value::String(text(s).replace(&text(old), &text(new))))
}
fn repeat(a: &[Value]) -> Result<Value, FuncError> {
    let [n, s] = args::<2>("repeat", a)?;
    let n = int_arg("repeat", n)?;
    let s = text(s);
    if n < 0 {
        return Err(err("error calling repeat: strings: negative Repeat count"));
    }
    if (n as u128) * (s.len() as u128) > 1 << 24 {
        return Err(err("error calling repeat: the result would exceed 16 MiB"));
    }
    Ok(Value::String(s.repeat(n as usize)))
}
fn contains(a: &[Value]) -> Result<Value, FuncError> {
    let [sub, s] = args::<2>("contains", a)?;
    Ok(Value::Bool(text(s).contains(&text(sub))))
}
fn has_prefix(a: &[Value]) -> Result<Value, FuncError> {
    let [p, s] = args::<2>("hasPrefix", a)?;
    Ok(Value::Bool(text(s).starts_with(&text(p))))
}
fn has_suffix(a: &[Value]) -> Result<Value, FuncError> {
    let [p, s] = args::<2>("hasSuffix", a)?;
    Ok(Value::Bool(text(s).ends_with(&text(p))))
}
fn indent_by(name: &str, a: &[Value]) -> Result<String, FuncError> {
    let [n, s] = args::<2>(name, a)?;
    let pad = " ".repeat(int_arg(name, n)?.clamp(0, 1 << 12) as usize);
    Ok(format!("{pad}{}", text(s).replace('\n', &format!("\n{pad}"))))
}
fn indent(a: &[Value]) -> Result<Value, FuncError> {
    indent_by("indent", a).map(Value::String)
}
fn nindent(a: &[Value]) -> Result<Value, FuncError> {
    indent_by("nindent", a).map(|s| Value::String(format!("\n{s}")))
}
/// Go's `strings.Title`: the first letter of every word in upper case.
fn title(a: &[Value]) -> Result<Value, FuncError> {
    let [s] = args::<1>("title", a)?;
    let separator = |c: char| if c.is_ascii() { !(c.is_ascii_alphanumeric() || c == '_') } else { c.is_whitespace() };
    let mut prev = ' ';
    let out = text(s)
        .chars()
        .flat_map(|c| {
            let up = separator(prev);
            prev = c;
            if up { c.to_uppercase().collect::<Vec<_>>() } else { vec![c] }
        })
        .collect();
    Ok(Value::String(out))
}
/// `trunc n s`: the first n characters, or the last -n.
fn trunc(a: &[Value]) -> Result<Value, FuncError> {
    let [n, s] = args::<2>("trunc", a)?;
    let n = int_arg("trunc", n)?;
    let s = text(s);
    let chars: Vec<char> = s.chars().collect();
    let l = chars.len() as i64;
    Ok(Value::String(if n < 0 && l + n > 0 {
        chars[(l + n) as usize..].iter().collect()
    } else if n >= 0 && l > n {
        chars[..n as usize].iter().collect()
    } else {
        s
    }))
}
/// `substr start end s`, in characters, as Loki defines it: a negative start means from
/// the beginning, a negative or too large end means to the end.
fn substr(a: &[Value]) -> Result<Value, FuncError> {
    let [start, end, s] = args::<3>("substr", a)?;
    let chars: Vec<char> = text(s).chars().collect();
    let l = chars.len() as i64;
    let (start, end) = (int_arg("substr", start)?.min(l), int_arg("substr", end)?.min(l));
    let out: String = if start < 0 {
        if end < 0 { String::new() } else { chars[..end as usize].iter().collect() }
    } else if end < 0 {
        chars[start as usize..].iter().collect()
    } else if start > end {
        String::new()
    } else {
        chars[start as usize..end as usize].iter().collect()
    };
    Ok(Value::String(out))
}
fn align(name: &str, a: &[Value], left: bool) -> Result<Value, FuncError> {
    let [n, s] = args::<2>(name, a)?;
    let n = int_arg(name, n)?;
    let s = text(s);
    let chars: Vec<char> = s.chars().collect();
    let l = chars.len() as i64;
    if n < 0 || n == l {
        return Ok(Value::String(s));
    }
    let pad = " ".repeat((n - l).clamp(0, 1 << 12) as usize);
    Ok(Value::String(match (n > l, left) {
        (true, true) => format!("{s}{pad}"),
        (true, false) => format!("{pad}{s}"),
        (false, true) => chars[..n as usize].iter().collect(),
        (false, false) => chars[(l - n) as usize..].iter().collect(),
    }))
}
fn align_left(a: &[Value]) -> Result<Value, FuncError> {
    align("alignLeft", a, true)
}
fn align_right(a: &[Value]) -> Result<Value, FuncError> {
    align("alignRight", a, false)
}
fn regex(name: &str, re: &Value) -> Result<regex::Regex, FuncError> {
    regex::Regex::new(&text(re)).map_err(|e| err(format!("error calling {name}: {e}")))
}
/// `regexReplaceAll re s repl` (Go's `ReplaceAllString`: `${1}` expands).
fn regex_replace_all(a: &[Value]) -> Result<Value, FuncError> {
    let [re, s, repl] = args::<3>("regexReplaceAll", a)?;
    Ok(Value::String(regex("regexReplaceAll", re)?.replace_all(&text(s), text(repl).as_str()).into_owned()))
}
fn regex_replace_all_literal(a: &[Value]) -> Result<Value, FuncError> {
    let [re, s, repl] = args::<3>("regexReplaceAllLiteral", a)?;
    Ok(Value::String(regex("regexReplaceAllLiteral", re)?.replace_all(&text(s), regex::NoExpand(&text(repl))).into_owned()))
}
/// `count re s`: how many times `re` matches.
fn count(a: &[Value]) -> Result<Value, FuncError> {
    let [re, s] = args::<2>("count", a)?;
    Ok(Value::from(regex("count", re)?.find_iter(&text(s)).count() as i64))
}

// ---- encodings -----------------------------------------------------------------------------

fn b64enc(a: &[Value]) -> Result<Value, FuncError> {
    let [s] = args::<1>("b64enc", a)?;
    Ok(Value::String(base64::engine::general_purpose::STANDARD.encode(text(s))))
}
/// sprig prints the decoding error as the result instead of failing.
fn b64dec(a: &[Value]) -> Result<Value, FuncError> {
    let [s] = args::<1>("b64dec", a)?;
    Ok(Value::String(match base64::engine::general_purpose::STANDARD.decode(text(s)) {
        Ok(b) => String::from_utf8_lossy(&b).into_owned(),
        Err(e) => e.to_string(),
    }))
}
/// Go's `url.QueryEscape`: letters, digits and `-_.~` stay, a space becomes `+`.
fn url_encode(a: &[Value]) -> Result<Value, FuncError> {
    let [s] = args::<1>("urlencode", a)?;
    let mut out = String::new();
    for b in text(s).bytes() {
        match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(b as char),
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    Ok(Value::String(out))
}
/// Go's `url.QueryUnescape`.
fn url_decode(a: &[Value]) -> Result<Value, FuncError> {
    let [s] = args::<1>("urldecode", a)?;
    let s = text(s);
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = b.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok()).and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(v) if b[i + 1].is_ascii_hexdigit() => out.push(v),
                    _ => {
                        let bad: String = s[i..].chars().take(3).collect();
                        return Err(err(format!("error calling urldecode: invalid URL escape {:?}", bad)));
                    }
                }
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    Ok(Value::String(String::from_utf8_lossy(&out).into_owned()))
}
/// Go's `html/template.HTMLEscapeString`.
fn html(a: &[Value]) -> Result<Value, FuncError> {
    let s: String = a.iter().map(text).collect();
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '\'' => out.push_str("&#39;"),
            '"' => out.push_str("&#34;"),
            '\0' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    Ok(Value::String(out))
}
/// Go's `text/template.JSEscapeString`.
fn js(a: &[Value]) -> Result<Value, FuncError> {
    let s: String = a.iter().map(text).collect();
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '"' => out.push_str("\\\""),
            '<' => out.push_str("\\u003C"),
            '>' => out.push_str("\\u003E"),
            '&' => out.push_str("\\u0026"),
            '=' => out.push_str("\\u003D"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    Ok(Value::String(out))
}
/// Go's `slice s i j` on a string: bytes `i..j`.
fn slice(a: &[Value]) -> Result<Value, FuncError> {
    let (s, idx) = a.split_first().ok_or_else(|| FuncError::AtLeastXArgs("slice".into(), 1))?;
    let s = text(s);
    let i = idx.first().map(|v| int_arg("slice", v)).transpose()?.unwrap_or(0);
    let j = idx.get(1).map(|v| int_arg("slice", v)).transpose()?.unwrap_or(s.len() as i64);
    if idx.len() > 2 || i < 0 || j < i || j as usize > s.len() {
        return Err(err(format!("error calling slice: index out of range: {i}")));
    }
    s.get(i as usize..j as usize).map(|v| Value::String(v.to_string())).ok_or_else(|| err("error calling slice: not at a character boundary"))
}
/// sprig's `fromJson`: the parsed value, or nothing when the text is not JSON.
fn from_json(a: &[Value]) -> Result<Value, FuncError> {
    fn conv(v: serde_json::Value) -> Value {
        match v {
            serde_json::Value::Null => Value::Nil,
            serde_json::Value::Bool(b) => Value::Bool(b),
            serde_json::Value::Number(n) => Value::from(n.as_f64().unwrap_or(0.0)),
            serde_json::Value::String(s) => Value::String(s),
            serde_json::Value::Array(a) => Value::Array(a.into_iter().map(conv).collect()),
            serde_json::Value::Object(o) => Value::Map(o.into_iter().map(|(k, v)| (k, conv(v))).collect::<HashMap<_, _>>()),
        }
    }
    let [s] = args::<1>("fromJson", a)?;
    Ok(serde_json::from_str(&text(s)).map(conv).unwrap_or(Value::Nil))
}

// ---- numbers -------------------------------------------------------------------------------

/// `bytes "1.5KB"`: a humanized size in bytes (`humanize.ParseBytes`).
fn bytes(a: &[Value]) -> Result<Value, FuncError> {
    let [s] = args::<1>("bytes", a)?;
    crate::format::parse_bytes_go(&text(s)).map(|b| Value::from(b as f64)).map_err(|e| err(format!("error calling bytes: {e}")))
}
/// `duration "1m30s"`: a Go duration in seconds.
fn duration(a: &[Value]) -> Result<Value, FuncError> {
    let [s] = args::<1>("duration", a)?;
    let s = text(s);
    crate::duration::parse_go_duration(&s).map(|ns| Value::from(ns as f64 / 1e9)).ok_or_else(|| err(format!("error calling duration: time: invalid duration {s:?}")))
}
fn int(a: &[Value]) -> Result<Value, FuncError> {
    let [v] = args::<1>("int", a)?;
    Ok(Value::from(to_int64(v)))
}
fn float64(a: &[Value]) -> Result<Value, FuncError> {
    let [v] = args::<1>("float64", a)?;
    Ok(Value::from(to_float64(v)))
}
fn add(a: &[Value]) -> Result<Value, FuncError> {
    Ok(Value::from(a.iter().map(to_int64).fold(0i64, i64::wrapping_add)))
}
fn sub(a: &[Value]) -> Result<Value, FuncError> {
    let [x, y] = args::<2>("sub", a)?;
    Ok(Value::from(to_int64(x).wrapping_sub(to_int64(y))))
}
fn mul(a: &[Value]) -> Result<Value, FuncError> {
    let (first, rest) = a.split_first().ok_or_else(|| FuncError::AtLeastXArgs("mul".into(), 1))?;
    Ok(Value::from(rest.iter().map(to_int64).fold(to_int64(first), i64::wrapping_mul)))
}
fn div(a: &[Value]) -> Result<Value, FuncError> {
    let [x, y] = args::<2>("div", a)?;
    to_int64(x).checked_div(to_int64(y)).map(Value::from).ok_or_else(|| err("error calling div: runtime error: integer divide by zero"))
}
fn modulo(a: &[Value]) -> Result<Value, FuncError> {
    let [x, y] = args::<2>("mod", a)?;
    to_int64(x).checked_rem(to_int64(y)).map(Value::from).ok_or_else(|| err("error calling mod: runtime error: integer divide by zero"))
}
fn max(a: &[Value]) -> Result<Value, FuncError> {
    a.iter().map(to_int64).max().map(Value::from).ok_or_else(|| FuncError::AtLeastXArgs("max".into(), 1))
}
fn min(a: &[Value]) -> Result<Value, FuncError> {
    a.iter().map(to_int64).min().map(Value::from).ok_or_else(|| FuncError::AtLeastXArgs("min".into(), 1))
}
fn maxf(a: &[Value]) -> Result<Value, FuncError> {
    a.iter().map(to_float64).reduce(f64::max).map(Value::from).ok_or_else(|| FuncError::AtLeastXArgs("maxf".into(), 1))
}
fn minf(a: &[Value]) -> Result<Value, FuncError> {
    a.iter().map(to_float64).reduce(f64::min).map(Value::from).ok_or_else(|| FuncError::AtLeastXArgs("minf".into(), 1))
}
fn ceil(a: &[Value]) -> Result<Value, FuncError> {
    let [v] = args::<1>("ceil", a)?;
    Ok(Value::from(to_float64(v).ceil()))
}
fn floor(a: &[Value]) -> Result<Value, FuncError> {
    let [v] = args::<1>("floor", a)?;
    Ok(Value::from(to_float64(v).floor()))
}
/// sprig's `round x places [half]`: up from `half` (0.5 unless given) of the last place.
fn round(a: &[Value]) -> Result<Value, FuncError> {
    if !(2..=3).contains(&a.len()) {
        return Err(FuncError::AtLeastXArgs("round".into(), 2));
    }
    let on = a.get(2).map_or(0.5, to_float64);
    let pow = 10f64.powf(int_arg("round", &a[1])? as f64);
    let digit = pow * to_float64(&a[0]);
    let r = if digit.fract() >= on { digit.ceil() } else { digit.floor() };
    Ok(Value::from(r / pow))
}

/// sprig's float arithmetic works in decimals (`0.1 + 0.2` is 0.3): each operand as the
/// shortest decimal that reads back as it, exact sums and products, quotients to 16
/// decimal places. Operands too wide for 128 bits fall back to binary floats.
mod decimal {
    /// `m × 10^-scale`.
    #[derive(Clone, Copy)]
    pub struct Dec {
        m: i128,
        scale: u32,
    }

    impl Dec {
        pub fn from_f64(f: f64) -> Option<Dec> {
            if !f.is_finite() {
                return None;
            }
            let s = format!("{f}");
            let (int, frac) = s.split_once('.').unwrap_or((&s, ""));
            if int.len() + frac.len() > 36 {
                return None;
            }
            Some(Dec { m: format!("{int}{frac}").parse().ok()?, scale: frac.len() as u32 })
        }
        fn widen(self, scale: u32) -> Option<i128> {
            self.m.checked_mul(10i128.checked_pow(scale - self.scale)?)
        }
        fn align(a: Dec, b: Dec) -> Option<(i128, i128, u32)> {
            let s = a.scale.max(b.scale);
            Some((a.widen(s)?, b.widen(s)?, s))
        }
        pub fn add(self, o: Dec) -> Option<Dec> {
            let (a, b, s) = Dec::align(self, o)?;
            Some(Dec { m: a.checked_add(b)?, scale: s })
        }
        pub fn sub(self, o: Dec) -> Option<Dec> {
            let (a, b, s) = Dec::align(self, o)?;
            Some(Dec { m: a.checked_sub(b)?, scale: s })
        }
        pub fn mul(self, o: Dec) -> Option<Dec> {
            Some(Dec { m: self.m.checked_mul(o.m)?, scale: self.scale + o.scale })
        }
        /// The quotient rounded half away from zero to 16 decimal places.
        pub fn div(self, o: Dec) -> Option<Dec> {
            if o.m == 0 {
                return None;
            }
            // a/b = (ma × 10^(sb + 17 - sa)) / mb × 10^-17, then round to 16 places.
            let shift = (o.scale + 17).checked_sub(self.scale)?;
            let n = self.m.checked_mul(10i128.checked_pow(shift)?)?;
            let q = n / o.m;
            let r = q % 10;
            let q = q / 10 + if r >= 5 { 1 } else if r <= -5 { -1 } else { 0 };
            Some(Dec { m: q, scale: 16 })
        }
        pub fn to_f64(self) -> f64 {
            let s = self.m.unsigned_abs().to_string();
            let s = if s.len() <= self.scale as usize { format!("{}{s}", "0".repeat(self.scale as usize - s.len() + 1)) } else { s };
            let (int, frac) = s.split_at(s.len() - self.scale as usize);
            let v: f64 = format!("{int}.{frac}0").parse().unwrap_or(0.0);
            if self.m < 0 { -v } else { v }
        }
    }
}

fn float_op(first: f64, rest: &[Value], dec: fn(decimal::Dec, decimal::Dec) -> Option<decimal::Dec>, bin: fn(f64, f64) -> f64) -> Result<Value, FuncError> {
    let mut acc = first;
    for v in rest {
        let x = to_float64(v);
        acc = match (decimal::Dec::from_f64(acc), decimal::Dec::from_f64(x)) {
            (Some(a), Some(b)) => dec(a, b).map_or_else(|| bin(acc, x), decimal::Dec::to_f64),
            _ => bin(acc, x),
        };
    }
    Ok(Value::from(acc))
}
fn addf(a: &[Value]) -> Result<Value, FuncError> {
    float_op(0.0, a, decimal::Dec::add, |x, y| x + y)
}
fn subf(a: &[Value]) -> Result<Value, FuncError> {
    let (first, rest) = a.split_first().ok_or_else(|| FuncError::AtLeastXArgs("subf".into(), 1))?;
    float_op(to_float64(first), rest, decimal::Dec::sub, |x, y| x - y)
}
fn mulf(a: &[Value]) -> Result<Value, FuncError> {
    let (first, rest) = a.split_first().ok_or_else(|| FuncError::AtLeastXArgs("mulf".into(), 1))?;
    float_op(to_float64(first), rest, decimal::Dec::mul, |x, y| x * y)
}
/// `divf`: decimal division by zero panics in sprig, which the template reports.
fn divf(a: &[Value]) -> Result<Value, FuncError> {
    let (first, rest) = a.split_first().ok_or_else(|| FuncError::AtLeastXArgs("divf".into(), 1))?;
    if rest.iter().any(|v| to_float64(v) == 0.0) {
        return Err(err("error calling divf: decimal division by 0"));
    }
    float_op(to_float64(first), rest, decimal::Dec::div, |x, y| x / y)
}

// ---- time ----------------------------------------------------------------------------------

fn unix_epoch(a: &[Value]) -> Result<Value, FuncError> {
    let [t] = args::<1>("unixEpoch", a)?;
    Ok(Value::String(time_arg("unixEpoch", t)?.div_euclid(1_000_000_000).to_string()))
}
fn unix_epoch_millis(a: &[Value]) -> Result<Value, FuncError> {
    let [t] = args::<1>("unixEpochMillis", a)?;
    Ok(Value::String(time_arg("unixEpochMillis", t)?.div_euclid(1_000_000).to_string()))
}
fn unix_epoch_nanos(a: &[Value]) -> Result<Value, FuncError> {
    let [t] = args::<1>("unixEpochNanos", a)?;
    Ok(Value::String(time_arg("unixEpochNanos", t)?.to_string()))
}
fn now(a: &[Value]) -> Result<Value, FuncError> {
    args::<0>("now", a)?;
    Ok(time_value(chrono::Utc::now().timestamp_nanos_opt()))
}
/// `date layout t`: a time, or Unix seconds; anything else is now (as in sprig).
fn date(a: &[Value]) -> Result<Value, FuncError> {
    let [layout, t] = args::<2>("date", a)?;
    let ns = match t {
        Value::String(s) => gotime::parse_time_string(s),
        Value::Number(n) => n.as_i64().and_then(|s| s.checked_mul(1_000_000_000)),
        _ => None,
    };
    let ns = ns.or_else(|| chrono::Utc::now().timestamp_nanos_opt()).unwrap_or(0);
    Ok(Value::String(gotime::format(ns, &text(layout))))
}
/// `toDate layout text`: the time `text` spells, or Go's zero time.
fn to_date(a: &[Value]) -> Result<Value, FuncError> {
    let [layout, s] = args::<2>("toDate", a)?;
    Ok(time_value(gotime::parse(&text(layout), &text(s))))
}
/// `toDateInZone layout zone text`. Only UTC is known here (Loki's own image runs in UTC
/// and falls back to it for zones it cannot load); other zones are read as UTC too.
fn to_date_in_zone(a: &[Value]) -> Result<Value, FuncError> {
    let [layout, _zone, s] = args::<3>("toDateInZone", a)?;
    Ok(time_value(gotime::parse(&text(layout), &text(s))))
}
/// `unixToTime "1700000000"`: days, seconds, milliseconds, microseconds or nanoseconds
/// since 1970, told apart by the number of digits (5, 10, 13, 16, 19).
fn unix_to_time(a: &[Value]) -> Result<Value, FuncError> {
    let [e] = args::<1>("unixToTime", a)?;
    let e = text(e);
    let i: i64 = e.parse().map_err(|_| err(format!("error calling unixToTime: unable to parse time '{e}'")))?;
    let ns = match e.len() {
        5 => i.checked_mul(86_400_000_000_000),
        10 => i.checked_mul(1_000_000_000),
        13 => i.checked_mul(1_000_000),
        16 => i.checked_mul(1_000),
        19 => Some(i),
        l => return Err(err(format!("error calling unixToTime: unable to parse time '{e}' using length {l}"))),
    };
    Ok(time_value(ns))
}

// ---- other ---------------------------------------------------------------------------------

/// sprig's `default d v`: `v`, unless it is empty (missing, "", 0, false, empty list).
fn default(a: &[Value]) -> Result<Value, FuncError> {
    let (d, given) = a.split_first().ok_or_else(|| FuncError::AtLeastXArgs("default".into(), 1))?;
    let empty = match given.first() {
        None | Some(Value::Nil) | Some(Value::NoValue) => true,
        Some(Value::String(s)) => s.is_empty(),
        Some(Value::Bool(b)) => !b,
        Some(Value::Number(n)) => n.as_f64().map_or_else(|| n.as_i64() == Some(0), |f| f == 0.0),
        Some(Value::Array(v)) => v.is_empty(),
        Some(Value::Map(m)) | Some(Value::Object(m)) => m.is_empty(),
        Some(Value::Function(_)) => false,
    };
    Ok(if empty { d.clone() } else { given[0].clone() })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(name: &str, a: &[Value]) -> Result<String, FuncError> {
        let f = FUNCS.iter().find(|(n, _)| *n == name).unwrap().1;
        f(a).map(|v| go_value(&v))
    }
    fn s(v: &str) -> Value {
        Value::from(v)
    }

    #[test]
    fn string_functions() {
        assert_eq!(call("replace", &[s("-"), s("_"), s("a-b-c")]).unwrap(), "a_b_c");
        assert_eq!(call("Replace", &[s("a-b-c"), s("-"), s("_"), Value::from(1)]).unwrap(), "a_b-c");
        assert_eq!(call("trimAll", &[s("$"), s("$5.00$")]).unwrap(), "5.00");
        assert_eq!(call("Trim", &[s("xxhixx"), s("x")]).unwrap(), "hi");
        assert_eq!(call("TrimPrefix", &[s("/api/x"), s("/api")]).unwrap(), "/x");
        assert_eq!(call("trimSuffix", &[s(".go"), s("main.go")]).unwrap(), "main");
        assert_eq!(call("title", &[s("hello wide-world")]).unwrap(), "Hello Wide-World");
        assert_eq!(call("substr", &[Value::from(1), Value::from(3), s("東京都x")]).unwrap(), "京都");
        assert_eq!(call("substr", &[Value::from(-1), Value::from(2), s("abc")]).unwrap(), "ab");
        assert_eq!(call("trunc", &[Value::from(-2), s("abcd")]).unwrap(), "cd");
        assert_eq!(call("contains", &[s("cat"), s("catch")]).unwrap(), "true");
        assert_eq!(call("hasPrefix", &[s("ca"), s("catch")]).unwrap(), "true");
        assert_eq!(call("nindent", &[Value::from(2), s("a\nb")]).unwrap(), "\n  a\n  b");
        assert_eq!(call("repeat", &[Value::from(3), s("ab")]).unwrap(), "ababab");
        assert!(call("repeat", &[Value::from(-1), s("ab")]).is_err());
        assert_eq!(call("alignLeft", &[Value::from(5), s("ab")]).unwrap(), "ab   ");
        assert_eq!(call("alignRight", &[Value::from(5), s("ab")]).unwrap(), "   ab");
        assert_eq!(call("alignRight", &[Value::from(2), s("abcd")]).unwrap(), "cd");
        assert_eq!(call("count", &[s("a"), s("banana")]).unwrap(), "3");
        assert_eq!(call("regexReplaceAll", &[s("(\\d+)"), s("a12b"), s("<${1}>")]).unwrap(), "a<12>b");
    }

    #[test]
    fn encodings() {
        assert_eq!(call("b64enc", &[s("hi!")]).unwrap(), "aGkh");
        assert_eq!(call("b64dec", &[s("aGkh")]).unwrap(), "hi!");
        assert_eq!(call("urlencode", &[s("a b&c=d/é~*")]).unwrap(), "a+b%26c%3Dd%2F%C3%A9~%2A");
        assert_eq!(call("urldecode", &[s("a+b%26c")]).unwrap(), "a b&c");
        assert!(call("urldecode", &[s("%zz")]).is_err());
        assert_eq!(call("html", &[s("<a href='x'>")]).unwrap(), "&lt;a href=&#39;x&#39;&gt;");
        assert_eq!(call("js", &[s("a'b<")]).unwrap(), "a\\'b\\u003C");
        assert_eq!(call("slice", &[s("abcdef"), Value::from(1), Value::from(3)]).unwrap(), "bc");
    }

    #[test]
    fn arithmetic_as_sprig_does_it() {
        assert_eq!(call("add", &[s("12"), Value::from(3)]).unwrap(), "15");
        assert_eq!(call("add", &[s("1.5"), Value::from(1)]).unwrap(), "1", "cast reads 1.5 as 0");
        assert_eq!(call("add", &[s("12.00"), Value::from(1)]).unwrap(), "13");
        assert_eq!(call("sub", &[Value::from(3), Value::from(5)]).unwrap(), "-2");
        assert_eq!(call("div", &[Value::from(7), Value::from(2)]).unwrap(), "3");
        assert!(call("div", &[Value::from(7), Value::from(0)]).is_err());
        assert_eq!(call("mod", &[Value::from(7), Value::from(4)]).unwrap(), "3");
        assert_eq!(call("max", &[Value::from(1), s("9"), Value::from(3)]).unwrap(), "9");
        assert_eq!(call("addf", &[Value::from(0.1), Value::from(0.2)]).unwrap(), "0.3");
        assert_eq!(call("mulf", &[Value::from(1.1), Value::from(1.1)]).unwrap(), "1.21");
        assert_eq!(call("divf", &[Value::from(1), Value::from(3)]).unwrap(), "0.3333333333333333");
        assert_eq!(call("subf", &[s("80.164"), Value::from(0.064)]).unwrap(), "80.1");
        assert_eq!(call("round", &[Value::from(3.14159), Value::from(2)]).unwrap(), "3.14");
        assert_eq!(call("ceil", &[s("1.2")]).unwrap(), "2");
        assert_eq!(call("int", &[s("0x10")]).unwrap(), "16");
        assert_eq!(call("float64", &[s("2.5")]).unwrap(), "2.5");
        assert_eq!(call("bytes", &[s("1.5 KB")]).unwrap(), "1500");
        assert_eq!(call("duration", &[s("1m30s")]).unwrap(), "90");
        assert_eq!(call("default", &[s("x"), s("")]).unwrap(), "x");
        assert_eq!(call("default", &[s("x"), s("y")]).unwrap(), "y");
    }

    #[test]
    fn times() {
        let t = gotime::time_string(1_768_525_116_370_346_768);
        assert_eq!(call("unixEpoch", &[s(&t)]).unwrap(), "1768525116");
        assert_eq!(call("unixEpochMillis", &[s(&t)]).unwrap(), "1768525116370");
        assert!(call("unixEpoch", &[s("postgres-1")]).is_err());
        assert_eq!(call("date", &[s("2006-01-02 15:04"), s(&t)]).unwrap(), "2026-01-16 00:58");
        assert_eq!(call("date", &[s("2006"), Value::from(0)]).unwrap(), "1970");
        assert_eq!(call("toDate", &[s("2006-01-02"), s("2026-01-16")]).unwrap(), "2026-01-16 00:00:00 +0000 UTC");
        assert_eq!(call("toDate", &[s("2006-01-02"), s("nope")]).unwrap(), "0001-01-01 00:00:00 +0000 UTC");
        assert_eq!(call("unixToTime", &[s("1768525116")]).unwrap(), "2026-01-16 00:58:36 +0000 UTC");
        assert_eq!(call("unixToTime", &[s("20469")]).unwrap(), "2026-01-16 00:00:00 +0000 UTC");
        assert!(call("unixToTime", &[s("123")]).is_err());
    }

    #[test]
    fn from_json_gives_fields() {
        let v = from_json(&[s(r#"{"a":{"b":2}}"#)]).unwrap();
        assert_eq!(go_value(&v), "map[a:map[b:2]]");
        assert_eq!(go_value(&from_json(&[s("nope")]).unwrap()), "<nil>");
    }
}
