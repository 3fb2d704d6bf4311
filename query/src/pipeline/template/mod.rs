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
}

/// What [`rewrite`] learnt of a template's text.
struct Rewritten {
    text: String,
    fields: Vec<String>,
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Rewrites the calls of `__line__` and `__timestamp__` inside actions (not in literal
/// text, strings, or as `.__line__`, which is a label) into field reads, and collects the
/// names of the fields the actions read.
fn rewrite(text: &str) -> Rewritten {
    let mut out = String::with_capacity(text.len() + 16);
    let mut fields: Vec<String> = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find("{{") {
        out.push_str(&rest[..open]);
        rest = &rest[open..];
        // The action runs to the first `}}` outside a quoted string.
        let chars: Vec<(usize, char)> = rest.char_indices().collect();
        let mut i = 2;
        let mut end = rest.len();
        let mut action = String::from("{{");
        let mut prev = '{';
        while i < chars.len() {
            let (at, c) = chars[i];
            if c == '}' && chars.get(i + 1).is_some_and(|&(_, n)| n == '}') {
                end = at + 2;
                action.push_str("}}");
                break;
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
                    let stop = chars.get(j + 1).map_or(rest.len(), |&(p, _)| p);
                    action.push_str(&rest[at..stop.min(rest.len())]);
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
                    match (prev, word) {
                        ('.', w) => {
                            if !fields.iter().any(|f| f == w) {
                                fields.push(w.to_string());
                            }
                            action.push_str(w);
                        }
                        ('$', w) => action.push_str(w),
                        (_, "__line__") => {
                            action.push('.');
                            action.push_str(LINE_FIELD);
                        }
                        (_, "__timestamp__") => {
                            action.push('.');
                            action.push_str(TS_FIELD);
                        }
                        (_, w) => action.push_str(w),
                    }
                    prev = chars[j - 1].1;
                    i = j;
                    continue;
                }
                c => action.push(c),
            }
            prev = c;
            i += 1;
        }
        out.push_str(&action);
        rest = &rest[end.min(rest.len())..];
    }
    out.push_str(rest);
    Rewritten { text: out, fields }
}

impl LineTemplate {
    pub fn compile(text: &str) -> Result<LineTemplate, String> {
        let Rewritten { text, fields } = rewrite(text);
        let mut tmpl = Template::default();
        tmpl.add_funcs(funcs::FUNCS);
        tmpl.parse(text).map_err(|e| format!("invalid line template: {e}"))?;
        Ok(LineTemplate { tmpl, fields })
    }

    /// Renders with the entry's labels, line and timestamp.
    pub fn render<'a>(&self, labels: impl Iterator<Item = (&'a str, &'a str)>, line: &str, ts: i64) -> Result<String, String> {
        let mut m: HashMap<String, Value> = labels.map(|(k, v)| (k.to_string(), Value::String(v.to_string()))).collect();
        for f in &self.fields {
            if !m.contains_key(f) {
                m.insert(f.clone(), Value::String(String::new()));
            }
        }
        m.insert(LINE_FIELD.into(), Value::String(line.to_string()));
        m.insert(TS_FIELD.into(), Value::String(gotime::time_string(ts)));
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
}
