use super::*;
use crate::parser::parse;

fn run(q: &str, line: &str, stream: &[(&str, &str)], meta: &[(&str, &str)]) -> Option<(String, Vec<(String, String)>)> {
    let crate::ast::Expr::Log(l) = parse(q).unwrap() else { panic!("log query expected") };
    let p = Pipeline::compile(&l.pipeline).unwrap();
    p.process(line, EntryLabels::new(stream.iter().copied(), meta.iter().copied()), 1_700_000_000_123_000_000).map(|(l, ls)| (l.into_owned(), ls.into_pairs()))
}

fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = p.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect();
    v.sort();
    v
}

#[test]
fn json_then_label_filters() {
    let line = r#"{"level":"error","status_code":503,"duration_ms":12.5,"client":{"name":"ios"},"tags":["a"]}"#;
    let (_, labels) = run(r#"{a="b"} | json | status_code >= 500 and duration_ms > 10"#, line, &[("a", "b")], &[]).unwrap();
    assert_eq!(labels, pairs(&[("a", "b"), ("level", "error"), ("status_code", "503"), ("duration_ms", "12.5"), ("client_name", "ios")]));
    assert!(run(r#"{a="b"} | json | status_code < 500"#, line, &[("a", "b")], &[]).is_none());
}

#[test]
fn clashes_are_renamed_extracted() {
    let (_, labels) = run(r#"{a="b"} | json"#, r#"{"a":"x","trace_id":"t2"}"#, &[("a", "b")], &[("trace_id", "t1")]).unwrap();
    assert_eq!(labels, pairs(&[("a", "b"), ("a_extracted", "x"), ("trace_id", "t1"), ("trace_id_extracted", "t2")]));
    // Structured metadata named like a stream label is renamed too.
    let (_, labels) = run(r#"{a="b"}"#, "x", &[("a", "b")], &[("a", "m")]).unwrap();
    assert_eq!(labels, pairs(&[("a", "b"), ("a_extracted", "m")]));
}

#[test]
fn parse_errors_keep_the_line() {
    let (_, labels) = run(r#"{a="b"} | json"#, "level=info not json", &[("a", "b")], &[]).unwrap();
    assert!(labels.iter().any(|(k, v)| k == ERROR_LABEL && v == "JSONParserErr"), "{labels:?}");
    assert!(run(r#"{a="b"} | json | __error__="""#, "not json", &[("a", "b")], &[]).is_none());
    // A missing label drops the entry; one that does not convert keeps it, marked.
    assert!(run(r#"{a="b"} | logfmt | dur > 5s"#, "msg=x", &[("a", "b")], &[]).is_none());
    let (_, labels) = run(r#"{a="b"} | logfmt | dur > 5s"#, "dur=soon", &[("a", "b")], &[]).unwrap();
    assert!(labels.iter().any(|(k, v)| k == ERROR_LABEL && v == "LabelFilterErr"), "{labels:?}");
}

#[test]
fn logfmt_keep_empty_and_params() {
    let (_, l) = run(r#"{a="b"} | logfmt"#, "level=info empty= msg=\"a b\"", &[("a", "b")], &[]).unwrap();
    assert_eq!(l, pairs(&[("a", "b"), ("level", "info"), ("msg", "a b")]));
    let (_, l) = run(r#"{a="b"} | logfmt lvl="level""#, "level=warn x=1", &[("a", "b")], &[]).unwrap();
    assert_eq!(l, pairs(&[("a", "b"), ("lvl", "warn")]));
}

#[test]
fn line_filters_hoist_past_decolorize() {
    let line = "\x1b[36mINFO\x1b[0m queue=payments";
    // Hoisted ahead of decolorize: matched against the coloured line.
    assert!(run(r#"{a="b"} | decolorize |= "INFO queue""#, line, &[("a", "b")], &[]).is_none());
    let (out, _) = run(r#"{a="b"} |= "queue" | decolorize"#, line, &[("a", "b")], &[]).unwrap();
    assert_eq!(out, "INFO queue=payments");
}

#[test]
fn regexp_pattern_unpack_drop_keep() {
    let (_, l) = run(r#"{a="b"} | regexp "(?P<method>\\w+) (?P<path>\\S+)""#, "GET /x 200", &[("a", "b")], &[]).unwrap();
    assert_eq!(l, pairs(&[("a", "b"), ("method", "GET"), ("path", "/x")]));
    let (_, l) = run(r#"{a="b"} | pattern "<ip> - - <_> \"<method> <path> <_>\"""#, r#"1.2.3.4 - - [x] "GET /y HTTP/1.1""#, &[("a", "b")], &[]).unwrap();
    assert_eq!(l, pairs(&[("a", "b"), ("ip", "1.2.3.4"), ("method", "GET"), ("path", "/y")]));
    let (line, l) = run(r#"{a="b"} | unpack"#, r#"{"_entry":"original","pod":"p1","n":1}"#, &[("a", "b")], &[]).unwrap();
    assert_eq!((line.as_str(), l), ("original", pairs(&[("a", "b"), ("pod", "p1")])));
    let (line, l) = run(r#"{a="b"} | unpack"#, r#"{"pod":"p1"}"#, &[("a", "b")], &[]).unwrap();
    assert_eq!((line.as_str(), l), (r#"{"pod":"p1"}"#, pairs(&[("a", "b")])), "not packed: unchanged");
    let (_, l) = run(r#"{a="b", c="d"} | drop c"#, "x", &[("a", "b"), ("c", "d")], &[]).unwrap();
    assert_eq!(l, pairs(&[("a", "b")]));
    let (_, l) = run(r#"{a="b", c="d"} | keep c"#, "x", &[("a", "b"), ("c", "d")], &[]).unwrap();
    assert_eq!(l, pairs(&[("c", "d")]));
    let (_, l) = run(r#"{a="b"} | json x="missing", y="n" | keep x, y"#, r#"{"n":null}"#, &[("a", "b")], &[]).unwrap();
    assert_eq!(l, pairs(&[("x", ""), ("y", "")]));
}

#[test]
fn ip_filters() {
    assert!(run(r#"{a="b"} |= ip("10.0.0.0/8")"#, "from 10.1.2.3", &[("a", "b")], &[]).is_some());
    assert!(run(r#"{a="b"} != ip("10.0.0.0/8")"#, "from 10.1.2.3", &[("a", "b")], &[]).is_none());
    assert!(run(r#"{a="b"} | logfmt | addr = ip("10.0.0.0/8")"#, "addr=10.9.9.9", &[("a", "b")], &[]).is_some());
    assert!(run(r#"{a="b"} | logfmt | addr = ip("10.0.0.0/8")"#, "addr=11.9.9.9", &[("a", "b")], &[]).is_none());
    // The value is scanned, and an entry with an error passes.
    assert!(run(r#"{a="b"} | logfmt | addr = ip("10.0.0.0/8")"#, r#"addr="from 10.9.9.9""#, &[("a", "b")], &[]).is_some());
    assert!(run(r#"{a="b"} | json | addr = ip("10.0.0.0/8")"#, "not json", &[("a", "b")], &[]).is_some());
}

#[test]
fn line_and_label_format() {
    let (line, _) = run(r#"{a="b"} | logfmt | line_format "{{.level | ToUpper}} {{.msg}} {{ __line__ | trunc 5 }} {{ __timestamp__ | unixEpochMillis }}""#, "level=info msg=hi", &[("a", "b")], &[]).unwrap();
    assert_eq!(line, "INFO hi level 1700000000123");
    let (line, _) = run(r#"{a="b"} | logfmt | line_format "{{ printf \"%-6s|%5s|%s|%03d\" .m .s .p .n }}""#, "m=GET s=304 p=/x n=7", &[("a", "b")], &[]).unwrap();
    // Label values are strings, so `%d` refuses them as Go does; `int` converts.
    assert_eq!(line, "GET   |  304|/x|%!d(string=7)");
    let (line, _) = run(r#"{a="b"} | logfmt | line_format "{{ printf \"%03d\" (int .n) }}""#, "n=7", &[("a", "b")], &[]).unwrap();
    assert_eq!(line, "007");
    let (line, _) = run(r#"{a="b"} | logfmt | line_format "{{ .missing | default \"none\" }}""#, "x=1", &[("a", "b")], &[]).unwrap();
    assert_eq!(line, "none");
    let (_, l) = run(r#"{a="b"} | logfmt | label_format lvl=level, who="{{.user}}@{{.a}}""#, "level=warn user=bob", &[("a", "b")], &[]).unwrap();
    assert_eq!(l, pairs(&[("a", "b"), ("lvl", "warn"), ("user", "bob"), ("who", "bob@b")]));
    // Loki's quirks: renaming a label to itself removes it, and a stage's templates all
    // see the labels from before the stage.
    let (_, l) = run(r#"{a="b"} | logfmt | label_format user=user"#, "user=bob", &[("a", "b")], &[]).unwrap();
    assert_eq!(l, pairs(&[("a", "b")]));
    let (_, l) = run(r#"{a="b"} | label_format foo="{{.a}}-x", bar="{{.foo}}""#, "x", &[("a", "b")], &[]).unwrap();
    assert_eq!(l, pairs(&[("a", "b"), ("bar", ""), ("foo", "b-x")]));
    // line_format is a barrier: a later line filter sees the new line.
    assert!(run(r#"{a="b"} | logfmt | line_format "{{.q}}" |= "payments""#, "q=payments", &[("a", "b")], &[]).is_some());
}

#[test]
fn projection_passes_keys_that_may_become_wanted_names() {
    let n = Needed::new(["_1abc", "a_b", "x_extracted"]);
    for k in ["_1abc", "1abc", "a-b", "a_b", "a.b", "x", "x_extracted", "__error__", "é_b"] {
        assert!(n.may_want(k), "{k}");
    }
    for k in ["zz", "abcd-efgh-ij", "a_c", "1abcdef", "status"] {
        assert!(!n.may_want(k), "{k}");
    }
}

#[test]
fn label_format_refuses_what_loki_refuses() {
    let compile = |q: &str| {
        let crate::ast::Expr::Log(l) = parse(q).unwrap() else { panic!("log query expected") };
        Pipeline::compile(&l.pipeline).err().map(|e| e.to_string())
    };
    assert!(compile(r#"{a="b"} | label_format a="1", a="2""#).unwrap().contains("multiple label name 'a' not allowed in a single format operation"));
    assert!(compile(r#"{a="b"} | label_format __error__="x""#).unwrap().contains("__error__ cannot be formatted"));
    assert_eq!(compile(r#"{a="b"} | label_format a="1", b=a"#), None);
}

#[test]
fn numeric_filters_read_values_as_go_does() {
    // No trimming: " 5" is not a number to Go, so the filter keeps the entry with an error.
    let (_, l) = run(r#"{a="b"} | logfmt | x < 1"#, r#"x=" 5""#, &[("a", "b")], &[]).unwrap();
    assert!(l.contains(&("__error__".into(), "LabelFilterErr".into())), "{l:?}");
    assert!(l.contains(&("__error_details__".into(), "strconv.ParseFloat: parsing \" 5\": invalid syntax".into())), "{l:?}");
    assert!(run(r#"{a="b"} | logfmt | size > 1KB"#, r#"size="2 KB""#, &[("a", "b")], &[]).is_some(), "humanize allows a space before the unit");
}
