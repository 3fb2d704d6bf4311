//! `line_format` and `label_format` templates: Go's text/template (the `gtmpl` crate) with
//! the entry's labels as fields (`{{.level}}`) and Loki's functions ([`funcs`]), including
//! `__line__` and `__timestamp__` (a Go time, see [`gotime`]).
//!
//! Loki runs templates with `missingkey=zero` over a map of strings, so a label the entry
//! lacks prints as "" (gtmpl would print `<no value>`): every field a template names is
//! given "" when the entry has no such label.

mod funcs;
mod gotime;
mod printf;

use std::collections::HashMap;

use gtmpl::{Context, Template};
use gtmpl_value::Value;

/// Where the entry's line and time sit in the template's data. gtmpl functions cannot see
/// the entry, so Loki's functions `__line__` and `__timestamp__` become these fields.
const LINE_FIELD: &str = "__silt_line__";
const TS_FIELD: &str = "__silt_timestamp__";

pub struct LineTemplate {
    tmpl: Template,
    /// The fields the template names, to be "" when the entry has no such label.
    fields: Vec<String>,
    /// Whether it calls `__line__` / `__timestamp__`: only then are they put in the data
    /// (formatting the time is not free, and templates run once per line).
    uses_line: bool,
    uses_ts: bool,
}

/// What [`rewrite`] learnt of a template's text.
struct Rewritten {
    text: String,
    fields: Vec<String>,
    uses_line: bool,
    uses_ts: bool,
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// How deep `if`/`range`/`with` blocks and parentheses may nest. gtmpl executes templates
/// recursively, so unbounded nesting would overflow the stack of the query's thread.
const MAX_NESTING: usize = 100;

/// Checks the escapes of a quoted literal (`"..."` or `'...'`, quotes excluded) as Go's
/// `strconv.Unquote` would: gtmpl's lexer never returns on some bad escapes (`"\u00"`).
fn check_escapes(lit: &str) -> Result<(), String> {
    let mut it = lit.chars();
    while let Some(c) = it.next() {
        if c != '\\' {
            continue;
        }
        let hex = |it: &mut std::str::Chars, n: usize| (0..n).all(|_| it.next().is_some_and(|c| c.is_ascii_hexdigit()));
        let ok = match it.next() {
            Some('a' | 'b' | 'f' | 'n' | 'r' | 't' | 'v' | '\\' | '"' | '\'') => true,
            Some('x') => hex(&mut it, 2),
            Some('u') => hex(&mut it, 4),
            Some('U') => hex(&mut it, 8),
            Some('0'..='7') => (0..2).all(|_| it.next().is_some_and(|c| ('0'..='7').contains(&c))),
            _ => false,
        };
        if !ok {
            return Err(format!("invalid syntax in quoted string {lit:?}"));
        }
    }
    Ok(())
}

/// Rewrites the calls of `__line__` and `__timestamp__` inside actions (not in literal
/// text, strings, or as `.__line__`, which is a label) into field reads, collects the
/// names of the fields the actions read, and refuses what gtmpl cannot run safely:
/// unclosed actions and bad escapes (its lexer would spin forever), `define`, `block`
/// and `template` (recursion), and nesting past [`MAX_NESTING`].
fn rewrite(text: &str) -> Result<Rewritten, String> {
    let mut out = String::with_capacity(text.len() + 16);
    let mut fields: Vec<String> = Vec::new();
    let (mut uses_line, mut uses_ts) = (false, false);
    let mut blocks = 0usize;
    let mut rest = text;
    while let Some(open) = rest.find("{{") {
        out.push_str(&rest[..open]);
        rest = &rest[open..];
        // The action runs to the first `}}` outside a quoted string.
        let chars: Vec<(usize, char)> = rest.char_indices().collect();
        let mut i = 2;
        let mut end = None;
        let mut action = String::from("{{");
        let mut prev = '{';
        let mut parens = 0usize;
        let mut first_word: Option<String> = None;
        let is_comment = rest[2..].trim_start_matches('-').trim_start().starts_with("/*");
        while i < chars.len() {
            let (at, c) = chars[i];
            if c == '}' && chars.get(i + 1).is_some_and(|&(_, n)| n == '}') {
                end = Some(at + 2);
                action.push_str("}}");
                break;
            }
            if is_comment {
                action.push(c);
                i += 1;
                continue;
            }
            match c {
                '"' | '`' | '\'' => {
                    // A literal: copied as it is.
                    let mut j = i + 1;
                    while j < chars.len() && chars[j].1 != c {
                        if c != '`' && chars[j].1 == '\\' {
                            j += 1;
                        }
                        j += 1;
                    }
                    if j >= chars.len() {
                        return Err(format!("template: unterminated quoted string in {:?}", &rest[at..]));
                    }
                    let stop = chars.get(j + 1).map_or(rest.len(), |&(p, _)| p);
                    let lit = &rest[at..stop];
                    if c != '`' {
                        check_escapes(&lit[1..lit.len() - 1])?;
                    }
                    action.push_str(lit);
                    i = j + 1;
                    prev = c;
                    continue;
                }
                c if is_ident(c) && !is_ident(prev) => {
                    let mut j = i;
                    while j < chars.len() && is_ident(chars[j].1) {
                        j += 1;
                    }
                    let stop = chars.get(j).map_or(rest.len(), |&(p, _)| p);
                    let word = &rest[at..stop];
                    if first_word.is_none() {
                        first_word = Some(word.to_string());
                    }
                    match (prev, word) {
                        ('.', w) => {
                            if !fields.iter().any(|f| f == w) {
                                fields.push(w.to_string());
                            }
                            action.push_str(w);
                        }
                        ('$', w) => action.push_str(w),
                        (_, "__line__") => {
                            uses_line = true;
                            action.push('.');
                            action.push_str(LINE_FIELD);
                        }
                        (_, "__timestamp__") => {
                            uses_ts = true;
                            action.push('.');
                            action.push_str(TS_FIELD);
                        }
                        (_, w) => action.push_str(w),
                    }
                    prev = chars[j - 1].1;
                    i = j;
                    continue;
                }
                '(' => {
                    parens += 1;
                    if parens > MAX_NESTING {
                        return Err(format!("template: parentheses nested deeper than {MAX_NESTING}"));
                    }
                    action.push(c);
                }
                c => action.push(c),
            }
            if !c.is_whitespace() && c != '-' && first_word.is_none() {
                first_word = Some(String::new());
            }
            prev = c;
            i += 1;
        }
        let Some(end) = end else { return Err("template: unclosed action".into()) };
        match first_word.as_deref() {
            Some(w @ ("define" | "block" | "template")) => return Err(format!("template: {{{{{w}}}}} is not supported")),
            Some("if" | "range" | "with") => {
                blocks += 1;
                if blocks > MAX_NESTING {
                    return Err(format!("template: blocks nested deeper than {MAX_NESTING}"));
                }
            }
            Some("end") => blocks = blocks.saturating_sub(1),
            _ => {}
        }
        out.push_str(&action);
        rest = &rest[end..];
    }
    out.push_str(rest);
    Ok(Rewritten { text: out, fields, uses_line, uses_ts })
}

impl LineTemplate {
    pub fn compile(text: &str) -> Result<LineTemplate, String> {
        let Rewritten { text, fields, uses_line, uses_ts } = rewrite(text).map_err(|e| format!("invalid line template: {e}"))?;
        let mut tmpl = Template::default();
        tmpl.add_funcs(funcs::FUNCS);
        tmpl.parse(text).map_err(|e| format!("invalid line template: {e}"))?;
        Ok(LineTemplate { tmpl, fields, uses_line, uses_ts })
    }

    /// Renders with the entry's labels, line and timestamp.
    pub fn render<'a>(&self, labels: impl Iterator<Item = (&'a str, &'a str)>, line: &str, ts: i64) -> Result<String, String> {
        let mut m: HashMap<String, Value> = labels.map(|(k, v)| (k.to_string(), Value::String(v.to_string()))).collect();
        for f in &self.fields {
            if !m.contains_key(f) {
                m.insert(f.clone(), Value::String(String::new()));
            }
        }
        if self.uses_line {
            m.insert(LINE_FIELD.into(), Value::String(line.to_string()));
        }
        if self.uses_ts {
            m.insert(TS_FIELD.into(), Value::String(gotime::time_string(ts)));
        }
        self.tmpl.render(&Context::from(Value::Map(m))).map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TS: i64 = 1_768_525_116_370_346_768;

    fn render(t: &str, labels: &[(&str, &str)]) -> Result<String, String> {
        LineTemplate::compile(t)?.render(labels.iter().copied(), "the line", TS)
    }

    #[test]
    fn missing_labels_print_empty() {
        assert_eq!(render("a{{.nope}}b", &[]).unwrap(), "ab");
        assert_eq!(render("{{ if .nope }}x{{ else }}y{{ end }}", &[]).unwrap(), "y");
        assert_eq!(render("{{ .pod | default \"none\" }}", &[]).unwrap(), "none");
    }

    #[test]
    fn line_and_timestamp_are_functions() {
        assert_eq!(render("{{ __line__ }}|x __line__ y", &[]).unwrap(), "the line|x __line__ y");
        assert_eq!(render("{{ __timestamp__ }}", &[]).unwrap(), "2026-01-16 00:58:36.370346768 +0000 UTC");
        assert_eq!(render("{{ .__line__ }}", &[]).unwrap(), "");
        assert_eq!(render("{{ \"__line__\" }}", &[]).unwrap(), "__line__");
        assert_eq!(render("{{ __timestamp__ | date \"15:04\" }}", &[]).unwrap(), "00:58");
        assert_eq!(render("{{ __timestamp__ | unixEpoch }}", &[]).unwrap(), "1768525116");
        assert_eq!(render("{{ __line__ | upper }}", &[]).unwrap(), "THE LINE");
    }

    #[test]
    fn labels_and_functions_together() {
        let l = [("pod", "postgres-1"), ("duration_ms", "80.164")];
        assert_eq!(render("{{ .pod | replace \"-\" \"_\" }}", &l).unwrap(), "postgres_1");
        assert_eq!(render("{{ printf \"%d|%s\" 42 .pod }}", &l).unwrap(), "42|postgres-1");
        assert_eq!(render("{{ printf \"%.2f\" .duration_ms }}", &l).unwrap(), "%!f(string=80.164)");
        assert_eq!(render("{{ .duration_ms | float64 | printf \"%.1f\" }}", &l).unwrap(), "80.2");
        assert_eq!(render("{{ div 7 2 }} {{ addf .duration_ms 1 }}", &l).unwrap(), "3 81.164");
        assert!(render("{{ div 1 0 }}", &l).is_err());
        assert!(LineTemplate::compile("{{ countRune .pod }}").is_err(), "not a Loki function");
    }

    #[test]
    fn refuses_what_would_hang_or_overflow() {
        // gtmpl's lexer spins forever on these, and recursion or deep nesting would
        // overflow the stack: each must be a clean error.
        for t in [
            "{{ .a ",
            "{{.a}}{{.",
            "{{ $x := ",
            "{{-",
            r#"{{ "\u00" }}"#,
            r#"{{ "\x4" }}"#,
            r#"{{ "abc }}"#,
            r#"{{ define "x" }}{{ template "x" }}{{ end }}{{ template "x" }}"#,
            r#"{{ block "a" . }}{{ template "a" . }}{{ end }}"#,
        ] {
            assert!(LineTemplate::compile(t).is_err(), "{t}");
        }
        let deep_ifs = format!("{}x{}", "{{ if 1 }}".repeat(1000), "{{ end }}".repeat(1000));
        assert!(LineTemplate::compile(&deep_ifs).err().unwrap().contains("nested deeper"));
        let deep_parens = format!("{{{{ {}1{} }}}}", "(".repeat(1000), ")".repeat(1000));
        assert!(LineTemplate::compile(&deep_parens).err().unwrap().contains("nested deeper"));
        // Still fine: comments, escapes, a few levels.
        assert_eq!(render(r#"{{/* note }} */}}{{ "a\tb\u00e9" }}{{ if 1 }}{{ if 1 }}y{{ end }}{{ end }}"#, &[]).unwrap(), "a\tbéy");
    }
}
