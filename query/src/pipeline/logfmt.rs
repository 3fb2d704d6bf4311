//! Loki's `logfmt` parser (go-logfmt): `key=value`, `key="quoted \"value\""`, bare `key`.
//! Empty values are dropped unless `--keep-empty`; with `--strict` the first malformed pair
//! is an error, otherwise malformed input is skipped.

/// Calls `emit(key, value)` for each pair. Returns an error only in strict mode.
pub fn parse(line: &str, strict: bool, emit: &mut dyn FnMut(&str, &str)) -> Result<(), String> {
    let b = line.as_bytes();
    let mut i = 0;
    let n = b.len();
    while i < n {
        // Skip garbage up to a key.
        while i < n && (b[i] <= b' ' || b[i] == b'=' || b[i] == b'"') {
            if strict && (b[i] == b'=' || b[i] == b'"') {
                return Err(format!("logfmt syntax error at pos {}: unexpected '{}'", i + 1, b[i] as char));
            }
            i += 1;
        }
        if i >= n {
            break;
        }
        let ks = i;
        while i < n && b[i] > b' ' && b[i] != b'=' && b[i] != b'"' {
            i += 1;
        }
        let key = &line[ks..i];
        if i >= n || b[i] != b'=' {
            if i < n && b[i] == b'"' {
                if strict {
                    return Err(format!("logfmt syntax error at pos {}: unexpected '\"'", i + 1));
                }
                continue;
            }
            emit(key, "");
            continue;
        }
        i += 1; // '='
        if i < n && b[i] == b'"' {
            i += 1;
            let mut v = String::new();
            let mut closed = false;
            let mut seg = i;
            while i < n {
                match b[i] {
                    b'"' => {
                        v.push_str(&line[seg..i]);
                        i += 1;
                        closed = true;
                        break;
                    }
                    b'\\' if i + 1 < n => {
                        v.push_str(&line[seg..i]);
                        match b[i + 1] {
                            b'n' => v.push('\n'),
                            b't' => v.push('\t'),
                            b'r' => v.push('\r'),
                            b'"' => v.push('"'),
                            b'\\' => v.push('\\'),
                            other => {
                                v.push('\\');
                                v.push(other as char);
                            }
                        }
                        i += 2;
                        seg = i;
                    }
                    _ => i += 1,
                }
            }
            if !closed {
                if strict {
                    return Err(format!("logfmt syntax error at pos {}: unterminated quoted value", n + 1));
                }
                break;
            }
            emit(key, &v);
        } else {
            let vs = i;
            while i < n && b[i] > b' ' {
                if b[i] == b'"' || b[i] == b'=' {
                    if strict {
                        return Err(format!("logfmt syntax error at pos {}: unexpected '{}'", i + 1, b[i] as char));
                    }
                }
                i += 1;
            }
            emit(key, &line[vs..i]);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(s: &str, strict: bool) -> Result<Vec<(String, String)>, String> {
        let mut out = Vec::new();
        parse(s, strict, &mut |k, v| out.push((k.to_string(), v.to_string())))?;
        Ok(out)
    }

    #[test]
    fn pairs_quotes_and_bare_keys() {
        let got = all(r#"level=info msg="job \"x\" done" duration=1.2s empty= bare size=12kB"#, false).unwrap();
        let want = [("level", "info"), ("msg", "job \"x\" done"), ("duration", "1.2s"), ("empty", ""), ("bare", ""), ("size", "12kB")];
        assert_eq!(got, want.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect::<Vec<_>>());
    }

    #[test]
    fn strict_mode_reports_errors() {
        assert!(all(r#"a=1 b="unterminated"#, true).is_err());
        assert!(all(r#"a=1 =x"#, true).is_err());
        let lenient = all(r#"a=1 =x b=2"#, false).unwrap();
        assert!(lenient.contains(&("a".into(), "1".into())) && lenient.contains(&("b".into(), "2".into())));
    }
}
