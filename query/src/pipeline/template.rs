//! `line_format` and `label_format` templates: Go's text/template (the `gtmpl` crate) with
//! the entry's labels as fields (`{{.level}}`), `__line__` and `__timestamp__` (Unix ns),
//! and Loki's most used template functions.

use std::collections::HashMap;

use gtmpl::{Context, Template};
use gtmpl_value::{FuncError, Value};

pub struct LineTemplate {
    tmpl: Template,
}

/// Loki's `__line__` and `__timestamp__` are functions; gtmpl functions cannot see the
/// entry, so the text refers to them as fields of the data instead.
fn rewrite(text: &str) -> String {
    text.replace(".__line__", "__line__")
        .replace("__line__", ".__line__")
        .replace(".__timestamp__", "__timestamp__")
        .replace("__timestamp__", ".__timestamp__")
}

fn s(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::NoValue | Value::Nil => String::new(),
        other => other.to_string(),
    }
}

fn arg_err(name: &str) -> FuncError {
    FuncError::Generic(format!("wrong arguments for {name}"))
}

fn to_upper(a: &[Value]) -> Result<Value, FuncError> {
    Ok(Value::String(s(a.last().ok_or_else(|| arg_err("ToUpper"))?).to_uppercase()))
}
fn to_lower(a: &[Value]) -> Result<Value, FuncError> {
    Ok(Value::String(s(a.last().ok_or_else(|| arg_err("ToLower"))?).to_lowercase()))
}
fn trim_space(a: &[Value]) -> Result<Value, FuncError> {
    Ok(Value::String(s(a.last().ok_or_else(|| arg_err("TrimSpace"))?).trim().to_string()))
}
/// `default "x" .v`: `.v`, or "x" when it is empty.
fn default(a: &[Value]) -> Result<Value, FuncError> {
    let [d, v] = a else { return Err(arg_err("default")) };
    Ok(if s(v).is_empty() { d.clone() } else { v.clone() })
}
/// `trunc n s`: the first n characters (the last n for negative n).
fn trunc(a: &[Value]) -> Result<Value, FuncError> {
    let [n, v] = a else { return Err(arg_err("trunc")) };
    let n = match n {
        Value::Number(n) => n.as_i64().ok_or_else(|| arg_err("trunc"))?,
        other => s(other).parse().map_err(|_| arg_err("trunc"))?,
    };
    let text = s(v);
    let chars: Vec<char> = text.chars().collect();
    let out: String = if n >= 0 {
        chars.iter().take(n as usize).collect()
    } else {
        chars[chars.len().saturating_sub((-n) as usize)..].iter().collect()
    };
    Ok(Value::String(out))
}
/// `regexReplaceAll re s repl` (Go `ReplaceAllString`: `${1}` expands).
fn regex_replace_all(a: &[Value]) -> Result<Value, FuncError> {
    let [re, text, repl] = a else { return Err(arg_err("regexReplaceAll")) };
    let re = regex::Regex::new(&s(re)).map_err(|e| FuncError::Generic(e.to_string()))?;
    Ok(Value::String(re.replace_all(&s(text), s(repl).as_str()).into_owned()))
}
fn regex_replace_all_literal(a: &[Value]) -> Result<Value, FuncError> {
    let [re, text, repl] = a else { return Err(arg_err("regexReplaceAllLiteral")) };
    let re = regex::Regex::new(&s(re)).map_err(|e| FuncError::Generic(e.to_string()))?;
    Ok(Value::String(re.replace_all(&s(text), regex::NoExpand(&s(repl))).into_owned()))
}
/// `Replace s old new n`.
fn replace(a: &[Value]) -> Result<Value, FuncError> {
    let [text, old, new, n] = a else { return Err(arg_err("Replace")) };
    let n = match n {
        Value::Number(n) => n.as_i64().unwrap_or(-1),
        _ => -1,
    };
    let (text, old, new) = (s(text), s(old), s(new));
    Ok(Value::String(if n < 0 { text.replace(&old, &new) } else { text.replacen(&old, &new, n as usize) }))
}
fn ns_of(v: &Value) -> Result<i64, FuncError> {
    match v {
        Value::Number(n) => n.as_i64().ok_or_else(|| arg_err("time")),
        other => s(other).parse().map_err(|_| arg_err("time")),
    }
}
fn unix_epoch(a: &[Value]) -> Result<Value, FuncError> {
    Ok(Value::from(ns_of(a.last().ok_or_else(|| arg_err("unixEpoch"))?)? / 1_000_000_000))
}
fn unix_epoch_millis(a: &[Value]) -> Result<Value, FuncError> {
    Ok(Value::from(ns_of(a.last().ok_or_else(|| arg_err("unixEpochMillis"))?)? / 1_000_000))
}
fn unix_epoch_nanos(a: &[Value]) -> Result<Value, FuncError> {
    Ok(Value::from(ns_of(a.last().ok_or_else(|| arg_err("unixEpochNanos"))?)?))
}
fn count_rune(a: &[Value]) -> Result<Value, FuncError> {
    Ok(Value::from(s(a.last().ok_or_else(|| arg_err("countRune"))?).chars().count() as i64))
}

/// Go's `fmt.Sprintf` for the verbs templates use: `%s %v %d %f %q %x %%`, with the
/// flags `-` and `0`, a width and a precision.
fn printf(a: &[Value]) -> Result<Value, FuncError> {
    let (fmt, args) = a.split_first().ok_or_else(|| arg_err("printf"))?;
    let fmt = s(fmt);
    let mut out = String::new();
    let mut args = args.iter();
    let mut chars = fmt.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let (mut left, mut zero) = (false, false);
        while let Some(&f) = chars.peek() {
            match f {
                '-' => left = true,
                '0' => zero = true,
                '+' | ' ' | '#' => {}
                _ => break,
            }
            chars.next();
        }
        let mut width = String::new();
        while let Some(&d) = chars.peek().filter(|d| d.is_ascii_digit()) {
            width.push(d);
            chars.next();
        }
        let mut precision: Option<usize> = None;
        if chars.peek() == Some(&'.') {
            chars.next();
            let mut p = String::new();
            while let Some(&d) = chars.peek().filter(|d| d.is_ascii_digit()) {
                p.push(d);
                chars.next();
            }
            precision = Some(p.parse().unwrap_or(0));
        }
        let Some(verb) = chars.next() else { break };
        if verb == '%' {
            out.push('%');
            continue;
        }
        let Some(arg) = args.next() else {
            out.push_str(&format!("%!{verb}(MISSING)"));
            continue;
        };
        let num = || match arg {
            Value::Number(n) => n.as_f64(),
            other => s(other).parse::<f64>().ok(),
        };
        let body = match verb {
            'd' => num().map_or_else(|| format!("%!d({})", s(arg)), |n| format!("{}", n as i64)),
            'f' | 'F' => num().map_or_else(|| format!("%!f({})", s(arg)), |n| format!("{:.*}", precision.unwrap_or(6), n)),
            'q' => format!("{:?}", s(arg)),
            'x' => s(arg).bytes().map(|b| format!("{b:02x}")).collect(),
            _ => {
                let v = s(arg);
                match precision {
                    Some(p) => v.chars().take(p).collect(),
                    None => v,
                }
            }
        };
        let w: usize = width.parse().unwrap_or(0);
        let len = body.chars().count();
        if len >= w {
            out.push_str(&body);
        } else if left {
            out.push_str(&body);
            out.push_str(&" ".repeat(w - len));
        } else {
            out.push_str(&(if zero { "0" } else { " " }).repeat(w - len));
            out.push_str(&body);
        }
    }
    Ok(Value::String(out))
}

const FUNCS: &[(&str, gtmpl_value::Func)] = &[
    ("printf", printf),
    ("ToUpper", to_upper),
    ("upper", to_upper),
    ("ToLower", to_lower),
    ("lower", to_lower),
    ("TrimSpace", trim_space),
    ("trim", trim_space),
    ("default", default),
    ("trunc", trunc),
    ("regexReplaceAll", regex_replace_all),
    ("regexReplaceAllLiteral", regex_replace_all_literal),
    ("Replace", replace),
    ("unixEpoch", unix_epoch),
    ("unixEpochMillis", unix_epoch_millis),
    ("unixEpochNanos", unix_epoch_nanos),
    ("countRune", count_rune),
];

impl LineTemplate {
    pub fn compile(text: &str) -> Result<LineTemplate, String> {
        let mut tmpl = Template::default();
        tmpl.add_funcs(FUNCS);
        tmpl.parse(rewrite(text)).map_err(|e| format!("invalid line template: {e}"))?;
        Ok(LineTemplate { tmpl })
    }

    /// Renders with the entry's labels, line and timestamp.
    pub fn render<'a>(&self, labels: impl Iterator<Item = (&'a str, &'a str)>, line: &str, ts: i64) -> Result<String, String> {
        let mut m: HashMap<String, Value> = labels.map(|(k, v)| (k.to_string(), Value::String(v.to_string()))).collect();
        m.insert("__line__".into(), Value::String(line.to_string()));
        m.insert("__timestamp__".into(), Value::from(ts));
        self.tmpl.render(&Context::from(Value::Map(m))).map_err(|e| e.to_string())
    }
}
