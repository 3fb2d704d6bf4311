//! Loki's `logfmt` parser (go-logfmt): `key=value`, `key="quoted \"value\""`, bare `key`.
//! Empty values are dropped unless `--keep-empty`; with `--strict` the first malformed pair
//! is an error, otherwise malformed input is skipped.

/// Calls `emit(key, value)` for each pair (a bare key has an empty value). A malformed
/// pair is skipped up to the next whitespace; in strict mode it ends parsing with an error
/// worded like go-logfmt's (`logfmt syntax error at pos N : unexpected '='`).
pub fn parse(line: &str, strict: bool, emit: &mut dyn FnMut(&str, &str)) -> Result<(), String> {
    parse_until(line, strict, &mut |k, v| {
        emit(k, v);
        true
    })
}

/// [`parse`], stopping (with `Ok`) as soon as `emit` returns false: for callers that look
/// for one field, such as level detection at ingest.
pub fn parse_until(line: &str, strict: bool, emit: &mut dyn FnMut(&str, &str) -> bool) -> Result<(), String> {
    let b = line.as_bytes();
    let n = b.len();
    let mut i = 0;
    let fail = |pos: usize, msg: &str| format!("logfmt syntax error at pos {} : {msg}", pos + 1);
    while i < n {
        while i < n && b[i] <= b' ' {
            i += 1;
        }
        if i >= n {
            break;
        }
        // Key: up to '=', whitespace or the end.
        let ks = i;
        let mut err: Option<(usize, &str)> = None;
        while i < n && b[i] > b' ' && b[i] != b'=' {
            if b[i] == b'"' && err.is_none() {
                err = Some((i, "unexpected '\"'"));
            }
            i += 1;
        }
        if err.is_none() && i < n && b[i] == b'=' && i == ks {
            err = Some((i, "unexpected '='"));
        }
        if let Some((pos, msg)) = err {
            if strict {
                return Err(fail(pos, msg));
            }
            while i < n && b[i] > b' ' {
                i += 1;
            }
            continue;
        }
        let key = &line[ks..i];
        if i >= n || b[i] != b'=' {
            if !emit(key, "") {
                return Ok(());
            }
            continue;
        }
        i += 1; // '='
        if i >= n || b[i] <= b' ' {
            if !emit(key, "") {
                return Ok(());
            }
            continue;
        }
        if b[i] == b'"' {
            i += 1;
            let start = i;
            let mut escaped = false;
            let mut closed = false;
            while i < n {
                match b[i] {
                    b'\\' => {
                        escaped = true;
                        i += 2;
                    }
                    b'"' => {
                        closed = true;
                        break;
                    }
                    _ => i += 1,
                }
            }
            if !closed {
                if strict {
                    return Err(fail(n, "unterminated quoted value"));
                }
                break;
            }
            let raw = &line[start..i.min(n)];
            i += 1; // closing quote
            if escaped {
                match serde_json::from_str::<String>(&format!("\"{raw}\"")) {
                    Ok(v) => {
                        if !emit(key, &v) {
                            return Ok(());
                        }
                    }
                    Err(_) if strict => return Err(fail(start, "invalid quoted value")),
                    Err(_) => {}
                }
            } else if !emit(key, raw) {
                return Ok(());
            }
            continue;
        }
        let vs = i;
        let mut bad = None;
        while i < n && b[i] > b' ' {
            if (b[i] == b'"' || b[i] == b'=') && bad.is_none() {
                bad = Some((i, if b[i] == b'"' { "unexpected '\"'" } else { "unexpected '='" }));
            }
            i += 1;
        }
        match bad {
            Some((pos, msg)) if strict => return Err(fail(pos, msg)),
            Some(_) => {}
            None => {
                if !emit(key, &line[vs..i]) {
                    return Ok(());
                }
            }
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
    fn parse_until_stops_where_told() {
        let line = r#"a=1 b="x \"y\"" c d=4"#;
        for stop_at in 0..4 {
            let mut seen = Vec::new();
            parse_until(line, true, &mut |k, _| {
                seen.push(k.to_string());
                seen.len() <= stop_at
            })
            .unwrap();
            assert_eq!(seen, ["a", "b", "c", "d"][..=stop_at]);
        }
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
        assert_eq!(all(r#"a=1 =x"#, true).unwrap_err(), "logfmt syntax error at pos 5 : unexpected '='");
        // A malformed token is skipped whole: `"/x.py",` yields nothing.
        assert_eq!(all(r#"File "/x.py", line 5"#, false).unwrap(), vec![("File".into(), "".into()), ("line".into(), "".into()), ("5".into(), "".into())]);
        let lenient = all(r#"a=1 =x b=2"#, false).unwrap();
        assert!(lenient.contains(&("a".into(), "1".into())) && lenient.contains(&("b".into(), "2".into())));
    }
}
