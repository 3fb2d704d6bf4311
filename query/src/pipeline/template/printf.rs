//! Go's `fmt.Sprintf` for templates' `printf`, including its way of reporting a verb
//! that does not fit its argument (`%!d(string=abc)`), a missing argument
//! (`%!d(MISSING)`) and extra ones (`%!(EXTRA int=1)`). Label values are strings in Loki,
//! so `printf "%d" .status` prints `%!d(string=200)` there too.

use gtmpl_value::{FuncError, Value};

use super::funcs::{go_type, go_value};
use crate::format::float_go;

#[derive(Default)]
struct Spec {
    minus: bool,
    plus: bool,
    space: bool,
    sharp: bool,
    zero: bool,
    width: Option<usize>,
    prec: Option<usize>,
}

pub fn printf(a: &[Value]) -> Result<Value, FuncError> {
    let (fmt, args) = a.split_first().ok_or_else(|| FuncError::AtLeastXArgs("printf".into(), 1))?;
    let fmt = match fmt {
        Value::String(s) => s.as_str(),
        _ => return Err(FuncError::Generic("wrong type for value; expected string".into())),
    };
    Ok(Value::String(sprintf(fmt, args)))
}

pub fn sprintf(fmt: &str, args: &[Value]) -> String {
    let mut out = String::new();
    let mut next = 0;
    let mut chars = fmt.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut spec = Spec::default();
        while let Some(&f) = chars.peek() {
            match f {
                '-' => spec.minus = true,
                '+' => spec.plus = true,
                ' ' => spec.space = true,
                '#' => spec.sharp = true,
                '0' => spec.zero = true,
                _ => break,
            }
            chars.next();
        }
        // Go gives up on a width or precision over a million: the rest of the format is
        // consumed and the verb reported missing.
        let Ok(width) = digits(&mut chars) else {
            out.push_str("%!(NOVERB)");
            break;
        };
        spec.width = width;
        if chars.peek() == Some(&'.') {
            chars.next();
            let Ok(prec) = digits(&mut chars) else {
                out.push_str("%!(NOVERB)");
                break;
            };
            spec.prec = Some(prec.unwrap_or(0));
        }
        let Some(verb) = chars.next() else {
            out.push_str("%!(NOVERB)");
            break;
        };
        if verb == '%' {
            out.push('%');
            continue;
        }
        let Some(arg) = args.get(next) else {
            out.push_str(&format!("%!{verb}(MISSING)"));
            continue;
        };
        next += 1;
        let body = match one(verb, arg, &spec) {
            Some(b) => b,
            None => {
                out.push_str(&bad_verb(verb, arg));
                continue;
            }
        };
        pad(&mut out, &body, &spec, verb);
    }
    if next < args.len() {
        out.push_str("%!(EXTRA ");
        let extra: Vec<String> = args[next..].iter().map(|a| format!("{}={}", go_type(a), go_value(a))).collect();
        out.push_str(&extra.join(", "));
        out.push(')');
    }
    out
}

/// A decimal number; `Err` when it passes Go's limit of 1e6.
fn digits(chars: &mut std::iter::Peekable<std::str::Chars>) -> Result<Option<usize>, ()> {
    let mut n: Option<usize> = None;
    while let Some(d) = chars.peek().and_then(|c| c.to_digit(10)) {
        if n.unwrap_or(0) > 1_000_000 {
            return Err(());
        }
        n = Some(n.unwrap_or(0) * 10 + d as usize);
        chars.next();
    }
    Ok(n)
}

fn bad_verb(verb: char, arg: &Value) -> String {
    match arg {
        Value::Nil | Value::NoValue => format!("%!{verb}(<nil>)"),
        _ => format!("%!{verb}({}={})", go_type(arg), go_value(arg)),
    }
}

enum Num {
    Int(i128),
    Float(f64),
}

fn number(v: &Value) -> Option<Num> {
    match v {
        Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => Some(Num::Int(i as i128)),
            (_, Some(u), _) => Some(Num::Int(u as i128)),
            (_, _, Some(f)) => Some(Num::Float(f)),
            _ => None,
        },
        _ => None,
    }
}

fn signed(s: String, negative: bool, spec: &Spec) -> String {
    if negative {
        format!("-{s}")
    } else if spec.plus {
        format!("+{s}")
    } else if spec.space {
        format!(" {s}")
    } else {
        s
    }
}

/// Go's `%e` exponent: a sign and at least two digits.
fn go_exp(s: String, upper: bool) -> String {
    let Some((m, e)) = s.split_once('e') else { return s };
    let (sign, digits) = match e.strip_prefix('-') {
        Some(d) => ('-', d),
        None => ('+', e),
    };
    let e = if upper { 'E' } else { 'e' };
    format!("{m}{e}{sign}{digits:0>2}")
}

fn float_verb(verb: char, x: f64, spec: &Spec) -> String {
    if x.is_nan() {
        return "NaN".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "+Inf".into() } else { "-Inf".into() };
    }
    let neg = x.is_sign_negative() && x != 0.0;
    let a = x.abs();
    // Rust formats at most 65535 digits; a binary float's decimal digits end long before,
    // so the rest of a longer precision is zeros.
    let prec = spec.prec.unwrap_or(6);
    let (prec, zeros) = (prec.min(u16::MAX as usize), "0".repeat(prec.saturating_sub(u16::MAX as usize)));
    let body = match verb {
        'f' | 'F' => format!("{:.*}{zeros}", prec, a),
        'e' | 'E' => {
            let e = format!("{:.*e}", prec, a);
            let (m, x) = e.split_once('e').unwrap_or((&e, "0"));
            go_exp(format!("{m}{zeros}e{x}"), verb == 'E')
        }
        // %g and %v: shortest digits, or `prec` significant ones.
        _ => match spec.prec {
            None => float_go(a),
            Some(p) => {
                let p = p.clamp(1, u16::MAX as usize);
                let e = format!("{:.*e}", p - 1, a);
                let exp: i32 = e.split_once('e').and_then(|(_, x)| x.parse().ok()).unwrap_or(0);
                if exp < -4 || exp >= p as i32 {
                    let (m, x) = e.split_once('e').unwrap_or((&e, "0"));
                    let m = if m.contains('.') { m.trim_end_matches('0').trim_end_matches('.') } else { m };
                    go_exp(format!("{m}e{x}"), verb == 'G')
                } else {
                    let f = format!("{:.*}", (p as i32 - 1 - exp).max(0) as usize, a);
                    if f.contains('.') { f.trim_end_matches('0').trim_end_matches('.').to_string() } else { f }
                }
            }
        },
    };
    signed(body, neg, spec)
}

/// One verb applied to one argument; `None` when Go reports the pair as bad.
fn one(verb: char, arg: &Value, spec: &Spec) -> Option<String> {
    match verb {
        'T' => Some(go_type(arg).to_string()),
        'v' => Some(match number(arg) {
            Some(Num::Int(i)) => signed(i.unsigned_abs().to_string(), i < 0, spec),
            Some(Num::Float(f)) => float_verb('g', f, spec),
            None => match arg {
                Value::String(s) if spec.sharp => format!("{s:?}"),
                _ => truncate(go_value(arg), spec.prec),
            },
        }),
        's' => match arg {
            Value::String(s) => Some(truncate(s.clone(), spec.prec)),
            _ => None,
        },
        'q' => match (arg, number(arg)) {
            (Value::String(s), _) => Some(go_quote(s)),
            (_, Some(Num::Int(i))) => char::from_u32(i as u32).map(|c| format!("'{c}'")),
            _ => None,
        },
        't' => match arg {
            Value::Bool(b) => Some(b.to_string()),
            _ => None,
        },
        'd' => match number(arg) {
            Some(Num::Int(i)) => Some(signed(i.unsigned_abs().to_string(), i < 0, spec)),
            _ => None,
        },
        'b' | 'o' | 'x' | 'X' | 'c' | 'U' => match (number(arg), arg) {
            (Some(Num::Int(i)), _) => {
                let u = i.unsigned_abs();
                let body = match verb {
                    'b' => format!("{u:b}"),
                    'o' => format!("{}{u:o}", if spec.sharp { "0" } else { "" }),
                    'x' => format!("{}{u:x}", if spec.sharp { "0x" } else { "" }),
                    'X' => format!("{}{u:X}", if spec.sharp { "0X" } else { "" }),
                    'c' => return char::from_u32(i as u32).map(String::from),
                    _ => format!("U+{u:04X}"),
                };
                Some(signed(body, i < 0, spec))
            }
            (_, Value::String(s)) if verb == 'x' => Some(s.bytes().map(|b| format!("{b:02x}")).collect()),
            (_, Value::String(s)) if verb == 'X' => Some(s.bytes().map(|b| format!("{b:02X}")).collect()),
            _ => None,
        },
        // gtmpl stores a float without a fraction as an integer (2.0 is 2), so integers are
        // taken here too: `printf "%.1f" (float64 "2")` must print 2.0 as Go does.
        'e' | 'E' | 'f' | 'F' | 'g' | 'G' => match number(arg) {
            Some(Num::Float(f)) => Some(float_verb(verb, f, spec)),
            Some(Num::Int(i)) => Some(float_verb(verb, i as f64, spec)),
            None => None,
        },
        _ => None,
    }
}

fn truncate(s: String, prec: Option<usize>) -> String {
    match prec {
        Some(p) => s.chars().take(p).collect(),
        None => s,
    }
}

/// Go's `strconv.Quote`: double quotes, `\"` and `\\`, and `\n`-style escapes for control
/// characters; printable Unicode stays as it is.
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\x07' => out.push_str("\\a"),
            '\x08' => out.push_str("\\b"),
            '\x0c' => out.push_str("\\f"),
            '\x0b' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c == '\x7f' => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Width: spaces on the left (or the right with `-`); zeros after the sign with `0` for
/// numbers (Go pads strings with zeros too).
fn pad(out: &mut String, body: &str, spec: &Spec, verb: char) {
    let w = spec.width.unwrap_or(0);
    let len = body.chars().count();
    if len >= w {
        out.push_str(body);
        return;
    }
    let fill = w - len;
    if spec.minus {
        out.push_str(body);
        out.extend(std::iter::repeat_n(' ', fill));
    } else if spec.zero && verb != 'T' {
        let (sign, digits) = match body.chars().next() {
            Some(c @ ('-' | '+' | ' ')) if verb != 's' && verb != 'q' => (Some(c), &body[1..]),
            _ => (None, body),
        };
        if let Some(c) = sign {
            out.push(c);
        }
        out.extend(std::iter::repeat_n('0', fill));
        out.push_str(digits);
    } else {
        out.extend(std::iter::repeat_n(' ', fill));
        out.push_str(body);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(fmt: &str, args: &[Value]) -> String {
        sprintf(fmt, args)
    }

    #[test]
    fn verbs_and_types_as_go_prints_them() {
        let s = Value::from("postgres-1");
        assert_eq!(p("%d|%d|%.1f|%T", &[Value::from(42), s.clone(), s.clone(), s.clone()]), "42|%!d(string=postgres-1)|%!f(string=postgres-1)|string");
        assert_eq!(p("%s|%v|%q", &[s.clone(), Value::from(1.5), s.clone()]), "postgres-1|1.5|\"postgres-1\"");
        assert_eq!(p("%s", &[Value::from(42)]), "%!s(int=42)");
        assert_eq!(p("%5.2f|%-6d|%06d|%+d", &[Value::from(3.14159), Value::from(7), Value::from(-42), Value::from(5)]), " 3.14|7     |-00042|+5");
        assert_eq!(p("%e|%g|%v|%.1f", &[Value::from(1234.5), Value::from(1e6), Value::from(1e-5), Value::from(2.0)]), "1.234500e+03|1e+06|1e-05|2.0");
        assert_eq!(p("%x|%X|%o|%b|%c", &[Value::from(255), Value::from("hi"), Value::from(8), Value::from(5), Value::from(65)]), "ff|6869|10|101|A");
        assert_eq!(p("%.3s|%5s|%-5s|", &[s.clone(), Value::from("ab"), Value::from("ab")]), "pos|   ab|ab   |");
        assert_eq!(p("%t|%d%%", &[Value::Bool(true), Value::from(50)]), "true|50%");
    }

    #[test]
    fn missing_and_extra_arguments() {
        assert_eq!(p("%d %s", &[Value::from(1)]), "1 %!s(MISSING)");
        assert_eq!(p("x", &[Value::from(1), Value::from("a")]), "x%!(EXTRA int=1, string=a)");
        assert_eq!(p("%", &[]), "%!(NOVERB)");
        // Go's limit on width and precision: a million.
        assert_eq!(p("%999999999d|", &[Value::from(1)]), "%!(NOVERB)%!(EXTRA int=1)");
        assert_eq!(p("%.99999999f", &[Value::from(1.5)]), "%!(NOVERB)%!(EXTRA float64=1.5)");
        assert_eq!(p("%.70000f", &[Value::from(1.5)]).len(), 70002);
    }
}
