use super::*;

fn ok(q: &str) -> String {
    parse(q).unwrap_or_else(|e| panic!("{q}: {e}")).to_string()
}

fn err(q: &str) -> String {
    parse(q).expect_err(q).to_string()
}

/// Input -> Loki's canonical form (from Loki's own tests and String() methods).
const CANONICAL: &[(&str, &str)] = &[
    (r#"{service="db",cluster="eu-west-1"}"#, r#"{service="db", cluster="eu-west-1"}"#),
    (r#"{foo="bar", bar!="baz"} != "bip" !~ ".+bop""#, r#"{foo="bar", bar!="baz"} != "bip" !~ ".+bop""#),
    (r#"{foo="bar"} |= "baz" |~ "blip" |> "qux" !> "waldo" != "flip" !~ "flap""#, r#"{foo="bar"} |= "baz" |~ "blip" |> "qux" !> "waldo" != "flip" !~ "flap""#),
    (r#"{foo="bar", bar!="baz"} |= "" |= ip("::1")"#, r#"{foo="bar", bar!="baz"} |= "" |= ip("::1")"#),
    (r#"{foo="bar"} |= "baz" | logfmt --keep-empty --strict"#, r#"{foo="bar"} |= "baz" | logfmt --strict --keep-empty"#),
    (r#"{foo="bar"} | unpack | foo>5"#, r#"{foo="bar"} | unpack | foo>5"#),
    (r#"{foo="bar"} | pattern "<foo> bar <buzz>" | foo>5"#, r#"{foo="bar"} | pattern "<foo> bar <buzz>" | foo>5"#),
    (r#"{foo="bar"} | logfmt | b>=10GB"#, r#"{foo="bar"} | logfmt | b>=10GB"#),
    (
        r#"{foo="bar"} | logfmt --strict --keep-empty b="foo" | b=ip("127.0.0.1") | level="error""#,
        r#"{foo="bar"} | logfmt --strict --keep-empty b="foo" | b=ip("127.0.0.1") | level="error""#,
    ),
    (
        r#"{foo="bar"} | regexp "(?P<foo>foo|bar)" | ( ( foo<5.01 , bar>20ms ) or foo="bar" ) | line_format "blip{{.boop}}bap" | label_format foo=bar,bar="blip{{.blop}}""#,
        r#"{foo="bar"} | regexp "(?P<foo>foo|bar)" | ( ( foo<5.01 , bar>20ms ) or foo="bar" ) | line_format "blip{{.boop}}bap" | label_format foo=bar,bar="blip{{.blop}}""#,
    ),
    (
        r#"{foo="bar"} | logfmt | counter>-1 | counter>=-1 | counter<-1 | counter<=-1 | counter!=-1 | counter==-1"#,
        r#"{foo="bar"} | logfmt | counter>-1 | counter>=-1 | counter<-1 | counter<=-1 | counter!=-1 | counter==-1"#,
    ),
    ("1 > 1 > 1", "0"),
    ("1.6", "1.6"),
    ("1 + 2 * 3 - 4 / 2", "5"),
    (r#"1 > bool 1 > count_over_time({foo="bar"}[1m])"#, r#"(0 > count_over_time({foo="bar"}[1m]))"#),
    (r#"{app="foo"} |= "foo" or "bar" or "baz" |= "car" |= "a" or "b" or "c""#, r#"{app="foo"} |= "foo" or "bar" or "baz" |= "car" |= "a" or "b" or "c""#),
    (r#"{app="foo"} != "foo" or "bar""#, r#"{app="foo"} != "foo" != "bar""#),
    (r#"{app="foo"} != ip("127.0.0.1") or "foo""#, r#"{app="foo"} != ip("127.0.0.1") != "foo""#),
    (r#"{app="foo"} |= "foo" or ip("127.0.0.1")"#, r#"{app="foo"} |= "foo" or ip("127.0.0.1")"#),
    (r#"{container_name="app"} | foo=~".*""#, r#"{container_name="app"} | foo=~".*""#),
    (
        r#"sum by(cluster)(rate({job="foo"} |= "bar" | logfmt | bazz="buzz"[5m]))"#,
        r#"sum by (cluster)(rate({job="foo"} |= "bar" | logfmt | bazz="buzz"[5m]))"#,
    ),
    (r#"count_over_time({foo="bar"}[12h] |= "error")"#, r#"count_over_time({foo="bar"} |= "error"[12h])"#),
    (r#"{ foo = "bar" }|logfmt|length>5d"#, r#"{foo="bar"} | logfmt | length>120h0m0s"#),
    (
        r#"sum_over_time({a="b"} | json | unwrap bytes(x) | __error__="" [5m] offset 5m)"#,
        r#"sum_over_time({a="b"} | json | unwrap bytes(x) | __error__=""[5m] offset 5m0s)"#,
    ),
    (r#"topk(10, rate({a="b"}[5m])) by (x)"#, r#"topk by (x)(10,rate({a="b"}[5m]))"#),
    (r#"avg(rate({a="b"}[5m])) by ()"#, r#"avg(rate({a="b"}[5m]))"#),
    (r#"quantile_over_time(.99, {a="b"} | unwrap x [5m]) by (ns)"#, r#"quantile_over_time(0.99,{a="b"} | unwrap x[5m]) by (ns)"#),
    (r#"sum(count_over_time({foo="bar"}[5m])) or vector(1)"#, r#"(sum(count_over_time({foo="bar"}[5m])) or vector(1.000000))"#),
    (r#"label_replace(vector(0), "foo", "bar", "", "")"#, r#"label_replace(vector(0.000000),"foo","bar","","")"#),
    (
        r#"rate({a="b"}[1m]) > bool on () group_right (app) rate({c="d"}[1m])"#,
        r#"(rate({a="b"}[1m]) > bool on () group_right (app) rate({c="d"}[1m]))"#,
    ),
    (
        r#"rate({a="b"}[1m]) + ignoring (bar) group_left (foo) rate({c="d"}[1m])"#,
        r#"(rate({a="b"}[1m]) + ignoring (bar) group_left (foo) rate({c="d"}[1m]))"#,
    ),
    (r#"{a="b"} | json x, y="a.b""#, r#"{a="b"} | json x="x",y="a.b""#),
    (r#"{a="b"} | s=200 d=5s, z=1kB or w="q""#, r#"{a="b"} | ( s==200 , ( d==5s , ( z==1.0kB or w="q" ) ) )"#),
    // Loki would print `1.0kB` (1000) here; we keep the exact value.
    (r#"{a="b"} | z>1KiB"#, r#"{a="b"} | z>1024B"#),
    (r#"rate({a="b"}[90m] offset 1d)"#, r#"rate({a="b"}[1h30m] offset 24h0m0s)"#),
    (
        r#"{foo="bar"} |= "baz" |~ "blip" | json | latency >= 250ms or ( status_code < 500 and status_code > 200)"#,
        r#"{foo="bar"} |= "baz" |~ "blip" | json | ( latency>=250ms or ( status_code<500 , status_code>200 ) )"#,
    ),
    (r#"{a="b"} | decolorize | drop a, b="x", c=~"y" | keep d"#, r#"{a="b"} | decolorize | drop a,b="x",c=~"y" | keep d"#),
    (r#"2 ^ 3 ^ 2"#, "512"),
    (r#"sum(rate({a="b"}[1m])) / sum(rate({a="b"}[1m])) * 100"#, r#"((sum(rate({a="b"}[1m])) / sum(rate({a="b"}[1m]))) * 100)"#),
    (r#"count_over_time(({a="b"} |= "x")[5m])"#, r#"count_over_time({a="b"} |= "x"[5m])"#),
    (r#"SUM BY (a) (COUNT_OVER_TIME({a="b"}[1m]))"#, r#"sum by (a)(count_over_time({a="b"}[1m]))"#),
    (r#"{a="b"} | rate > 5"#, r#"{a="b"} | rate>5"#),
    ("-1", "-1"),
    ("1e6", "1e+06"),
];

#[test]
fn canonical_printing_matches_loki() {
    for (q, want) in CANONICAL {
        assert_eq!(&ok(q), want, "input: {q}");
    }
}

#[test]
fn canonical_form_reparses_to_the_same_tree() {
    for (q, _) in CANONICAL {
        let e = parse(q).unwrap();
        let printed = e.to_string();
        assert_eq!(parse(&printed).unwrap_or_else(|x| panic!("{printed}: {x}")), e, "{q}");
    }
}

#[test]
fn loki_syntax_errors() {
    for (q, want) in [
        (r#"{service="api""#, "parse error at line 1, col 15: syntax error: unexpected $end, expecting } or ,"),
        (r#"{foo="bar"} "foo""#, "parse error at line 1, col 13: syntax error: unexpected STRING"),
        (r#"{foo="bar"} foo"#, "parse error at line 1, col 13: syntax error: unexpected IDENTIFIER"),
        (r#"unk({ foo = "bar" }[5m])"#, "parse error at line 1, col 1: syntax error: unexpected IDENTIFIER"),
        (r#"min({ foo = "bar" }[5m])"#, "parse error at line 0, col 20: syntax error: unexpected RANGE"),
        (r#"stddev({ foo = "bar" })"#, "parse error at line 1, col 23: syntax error: unexpected )"),
        (r#"bottomk(he,count_over_time({ foo = "bar" }[5h]))"#, "parse error at line 1, col 9: syntax error: unexpected IDENTIFIER"),
        (r#"{foo="bar}"#, "parse error at line 1, col 6: literal not terminated"),
        (r#"rate({ foo = "bar" }[5)"#, "parse error at line 0, col 21: missing closing ']' in duration"),
        (r#"{foo="bar"} |~"#, "parse error at line 1, col 15: syntax error: unexpected $end, expecting STRING or ip"),
        ("{a=\"b\"}\n  foo", "parse error at line 2, col 3: syntax error: unexpected IDENTIFIER"),
    ] {
        assert_eq!(err(q), want, "input: {q}");
    }
    assert!(err(r#"rate({ foo = "bar" }[5minutes])"#).contains("unknown unit \"minutes\" in duration \"5minutes\""));
    assert!(err(r#"{a="b"} |~ "(unclosed""#).starts_with("parse error at line 1, col 12: error parsing regexp:"));
    assert!(err(r#"{a=~"(x"}"#).contains("error parsing regexp"));
    assert!(err("count_over_time({a=\"b\"}[5x])").contains("in duration"));
    assert!(err("foo_over_time({a=\"b\"}[5m])").contains("unexpected IDENTIFIER"));
    assert!(err("rate({a=\"b\"})").contains("syntax error: unexpected )"));
}

#[test]
fn loki_validation_errors() {
    let e = |q| err(q).trim_start_matches("parse error : ").to_string();
    assert_eq!(e("{}"), EMPTY_COMPATIBLE);
    assert_eq!(e(r#"{service=~".*"}"#), EMPTY_COMPATIBLE);
    assert_eq!(e(r#"rate({a!="x"}[5m])"#), EMPTY_COMPATIBLE);
    assert_eq!(e(r#"count_over_time({a="b"}[5m]) by (x)"#), "grouping not allowed for count_over_time aggregation");
    assert_eq!(e(r#"count_over_time({a="b"} | unwrap x [5m])"#), "invalid aggregation count_over_time with unwrap");
    assert_eq!(e(r#"sum_over_time({a="b"}[5m])"#), "invalid aggregation sum_over_time without unwrap");
    assert_eq!(e(r#"rate(2, {a="b"}[5m])"#), "parameter 2 not supported for operation rate");
    assert_eq!(e(r#"quantile_over_time({a="b"} | unwrap x [5m])"#), "parameter required for operation quantile_over_time");
    assert_eq!(e(r#"topk(sum(rate({a="b"}[5m])))"#), "parameter required for operation topk");
    assert_eq!(e(r#"topk(1.2, sum(rate({a="b"}[5m])))"#), "invalid parameter topk(1.2,");
    assert_eq!(e(r#"topk(0, sum(rate({a="b"}[5m])))"#), "invalid parameter (must be greater than 0) topk(0");
    assert_eq!(e(r#"sum(2, rate({a="b"}[5m]))"#), "unsupported parameter for operation sum(2,");
    assert_eq!(e(r#"approx_topk(2, rate({a="b"}[5m])) by (x)"#), "grouping not allowed for approx_topk aggregation");
    assert_eq!(e(r#"sort(rate({a="b"}[5m])) by (x)"#), "sort and sort_desc doesn't allow grouping by ");
    assert_eq!(e(r#"{a="b"} + 1"#), "unexpected type for left leg of binary operation (+): *syntax.MatchersExpr");
    assert_eq!(e(r#"1 + {a="b"} |= "x""#), "unexpected type for right leg of binary operation (+): *syntax.PipelineExpr");
    assert_eq!(e(r#"1 or rate({a="b"}[5m])"#), "unexpected literal for left leg of logical/set binary operation (or): 1.000000");
    assert!(e(r#"label_replace(vector(1), "a", "b", "c", "(")"#).starts_with("invalid regex in label_replace: error parsing regexp"));
    assert!(e(r#"{a="b"} | regexp "(no_named)""#).contains("at least one named capture must be supplied"));
    assert!(e(r#"{a="b"} | pattern "no captures""#).contains("at least one capture is required"));
    assert!(err(&format!("{{a=\"{}\"}}", "x".repeat(MAX_QUERY_BYTES))).contains("input size too long"));
}

#[test]
fn deep_nesting_is_refused_not_a_stack_overflow() {
    let deep = |n: usize| format!("{}1{}", "(".repeat(n), ")".repeat(n));
    assert_eq!(ok(&deep(MAX_NESTING)), "1");
    assert!(err(&deep(MAX_NESTING + 1)).contains("query nesting too deep"));
    // The largest query Loki accepts, all nesting: refused quickly.
    assert!(err(&"(".repeat(MAX_QUERY_BYTES - 1)).contains("query nesting too deep"));
    // Brackets inside strings do not count.
    assert!(parse(&format!("{{a=\"{}\"}}", "(".repeat(1000))).is_ok());
    // Long flat chains do not recurse.
    assert_eq!(ok(&vec!["2"; 20_000].join(" ^ ")), "+Inf");
    for sep in [" ", ", ", " or ", " and "] {
        let chain = format!("{{a=\"b\"}} | {}", vec!["x=1"; 10_000].join(sep));
        if let Err(e) = parse(&chain) {
            panic!("{sep:?}: {e}");
        }
    }
    // Label filter parentheses nest through their own recursion.
    let lf = format!("{{a=\"b\"}} | {}x=1{}", "(".repeat(MAX_NESTING - 1), ")".repeat(MAX_NESTING - 1));
    assert!(parse(&lf).is_ok(), "{lf}");
}

#[test]
fn accepted_forms() {
    for q in [
        r#"{a!=""}"#,
        r#"{a=~".+"}"#,
        r#"count_over_time({a="b"}[5m] offset -5m)"#,
        r#"sum by (a) (count_over_time({a="b"}[5m]))"#,
        r#"sum(count_over_time({a="b"}[5m])) without (a)"#,
        r#"rate({a="b"} | json | unwrap duration_seconds(d) | __error__="" [1m])"#,
        r#"rate({a="b"}[1m] | json | unwrap d)"#,
        r#"sort_desc(sum by (a) (rate({a="b"}[1m])))"#,
        r#"vector(1) + vector(1)"#,
        r#"1 # a trailing comment"#,
        r#"{a="b"} /* block */ |= "x" // line"#,
        r#"{a="b"} | json | status >= 4e2 and status < 0x1F4"#,
        r#"{a="b"} | addr = ip("10.0.0.0/8")"#,
        r#"rate({a="b"}[5m]) / on (a) group_left rate({c="d"}[5m])"#,
    ] {
        parse(q).unwrap_or_else(|e| panic!("{q}: {e}"));
    }
    assert!(parse(r#"{a=""}"#).is_err());
    assert!(parse(r#"{a!="x"}"#).is_err());
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]
        /// Any input: an answer or an error, never a panic or a hang.
        #[test]
        fn never_panics_on_bytes(s in "\\PC{0,80}", raw in proptest::collection::vec(any::<u8>(), 0..80)) {
            let _ = parse(&s);
            let _ = parse(&String::from_utf8_lossy(&raw));
        }

        /// Inputs made of LogQL's own pieces reach deep into the grammar.
        #[test]
        fn never_panics_on_logql_fragments(parts in proptest::collection::vec(prop_oneof![
            Just("{"), Just("}"), Just("a"), Just("="), Just("\"x\""), Just("|="), Just("|"), Just("json"),
            Just("rate("), Just("sum by (a)("), Just(")"), Just("[5m]"), Just("1"), Just("+"), Just("or"),
            Just(","), Just("unwrap"), Just(" "), Just("offset 1m"), Just(">"), Just("bool"), Just("on (a)"),
        ], 0..30)) {
            let q: String = parts.concat();
            if let Ok(e) = parse(&q) {
                let printed = e.to_string();
                prop_assert_eq!(parse(&printed).map(|x| x.to_string()), Ok(printed.clone()), "{} -> {}", q, printed);
            }
        }
    }
}
