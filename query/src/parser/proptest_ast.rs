//! `parse(print(ast)) == ast` for generated syntax trees: every tree the parser can
//! produce prints to text that parses back to the same tree.

use proptest::prelude::*;
use silt_storage::{MatchOp, Matcher};

use super::lex::RESERVED;
use crate::ast::*;

fn name() -> impl Strategy<Value = String> {
    "[a-z_][a-z0-9_]{0,6}".prop_filter("not a keyword", |s| !RESERVED.contains(&s.as_str()))
}

fn text() -> impl Strategy<Value = String> {
    // Printable text with quotes, backslashes, unicode and control characters.
    "(\\PC|[\"\\\\\\n\\t\u{1}`]){0,12}"
}

fn matcher(non_empty: bool) -> impl Strategy<Value = Matcher> {
    (name(), 0..4u8, "[a-z0-9]{1,6}").prop_map(move |(n, op, v)| {
        let op = if non_empty {
            [MatchOp::Eq, MatchOp::Re][(op % 2) as usize]
        } else {
            [MatchOp::Eq, MatchOp::Neq, MatchOp::Re, MatchOp::NotRe][op as usize]
        };
        Matcher::new(n, op, v).unwrap()
    })
}

fn selector() -> impl Strategy<Value = Vec<Matcher>> {
    (matcher(true), proptest::collection::vec(matcher(false), 0..3)).prop_map(|(m, mut rest)| {
        rest.insert(0, m);
        rest
    })
}

fn line_filter() -> impl Strategy<Value = LineFilter> {
    let value = prop_oneof![text().prop_map(LineFilterValue::Str), "[0-9./:a-f-]{1,12}".prop_map(LineFilterValue::Ip)];
    (0..6u8, proptest::collection::vec(value, 1..3)).prop_map(|(op, mut values)| {
        let op = [
            LineFilterOp::Contains,
            LineFilterOp::NotContains,
            LineFilterOp::Regex,
            LineFilterOp::NotRegex,
            LineFilterOp::Pattern,
            LineFilterOp::NotPattern,
        ][op as usize];
        if op.is_negated() {
            values.truncate(1);
        }
        // Regex and pattern values must be valid; keep them simple.
        if matches!(op, LineFilterOp::Regex | LineFilterOp::NotRegex | LineFilterOp::Pattern | LineFilterOp::NotPattern) {
            for v in &mut values {
                if let LineFilterValue::Str(s) = v {
                    *s = format!("a{}", s.chars().filter(|c| c.is_alphanumeric()).collect::<String>());
                }
            }
        }
        LineFilter { op, values }
    })
}

fn cmp() -> impl Strategy<Value = CmpOp> {
    prop_oneof![Just(CmpOp::Eq), Just(CmpOp::Neq), Just(CmpOp::Gt), Just(CmpOp::Gte), Just(CmpOp::Lt), Just(CmpOp::Lte)]
}

fn label_filter() -> impl Strategy<Value = LabelFilter> {
    let leaf = prop_oneof![
        matcher(false).prop_map(LabelFilter::Str),
        (name(), any::<bool>(), "[0-9./a-f:]{1,10}").prop_map(|(name, negated, pattern)| LabelFilter::Ip { name, negated, pattern }),
        (name(), cmp(), -1e9..1e9f64).prop_map(|(name, op, value)| LabelFilter::Number { name, op, value }),
        (name(), cmp(), -100_000_000i64..100_000_000).prop_map(|(name, op, ms)| LabelFilter::Duration { name, op, value: ms * 1_000_000 }),
        (name(), cmp(), 0u64..10_000_000_000).prop_map(|(name, op, value)| LabelFilter::Bytes { name, op, value }),
    ];
    leaf.prop_recursive(3, 12, 2, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(a, b)| LabelFilter::And(Box::new(a), Box::new(b))),
            (inner.clone(), inner).prop_map(|(a, b)| LabelFilter::Or(Box::new(a), Box::new(b))),
        ]
    })
}

fn extraction() -> impl Strategy<Value = Extraction> {
    (name(), text()).prop_map(|(name, expr)| Extraction { name, expr })
}

fn stage() -> impl Strategy<Value = Stage> {
    prop_oneof![
        line_filter().prop_map(Stage::LineFilter),
        proptest::collection::vec(extraction(), 0..3).prop_map(Stage::Json),
        (any::<bool>(), any::<bool>(), proptest::collection::vec(extraction(), 0..3))
            .prop_map(|(strict, keep_empty, params)| Stage::Logfmt { strict, keep_empty, params }),
        name().prop_filter("label name", |n| n != "_").prop_map(|n| Stage::Regexp(format!("(?P<{n}>\\w+) x"))),
        name().prop_filter("named capture", |n| n != "_").prop_map(|n| Stage::Pattern(format!("<{n}> - <_>"))),
        Just(Stage::Unpack),
        label_filter().prop_map(Stage::LabelFilter),
        text().prop_map(Stage::LineFormat),
        proptest::collection::vec(
            prop_oneof![
                (name(), name()).prop_map(|(dst, src)| LabelFmt::Rename { dst, src }),
                (name(), text()).prop_map(|(dst, template)| LabelFmt::Template { dst, template }),
            ],
            1..3
        )
        .prop_map(Stage::LabelFormat),
        proptest::collection::vec(prop_oneof![name().prop_map(NamedMatcher::Name), matcher(false).prop_map(NamedMatcher::Matcher)], 1..3)
            .prop_map(Stage::Drop),
        proptest::collection::vec(name().prop_map(NamedMatcher::Name), 1..3).prop_map(Stage::Keep),
        Just(Stage::Decolorize),
    ]
}

/// `| drop a != "x"` reads as dropping the matcher `a!="x"` (in Loki's grammar too), so a
/// tree with a bare name followed by a `!=`/`!~` line filter has no text of its own.
fn ambiguous(pipeline: &[Stage]) -> bool {
    pipeline.windows(2).any(|w| {
        let ends_with_name = matches!(&w[0], Stage::Drop(n) | Stage::Keep(n) if matches!(n.last(), Some(NamedMatcher::Name(_))));
        let negated = matches!(&w[1], Stage::LineFilter(f) if matches!(f.op, LineFilterOp::NotContains | LineFilterOp::NotRegex));
        ends_with_name && negated
    })
}

fn log_expr() -> impl Strategy<Value = LogExpr> {
    (selector(), proptest::collection::vec(stage(), 0..4))
        .prop_filter("no text", |(_, p)| !ambiguous(p))
        .prop_map(|(selector, pipeline)| LogExpr { selector, pipeline })
}

fn labels() -> impl Strategy<Value = Vec<String>> {
    proptest::collection::vec(name(), 0..3)
}

fn range_agg() -> impl Strategy<Value = MetricExpr> {
    let conv = prop_oneof![Just(UnwrapConv::None), Just(UnwrapConv::Bytes), Just(UnwrapConv::Duration), Just(UnwrapConv::DurationSeconds)];
    let unwrap = (conv, name(), proptest::collection::vec(label_filter(), 0..2)).prop_map(|(conv, label, post_filters)| Unwrap { conv, label, post_filters });
    (
        0..RANGE_OPS.len(),
        log_expr(),
        unwrap,
        1i64..10_000_000,
        -100_000i64..100_000,
        proptest::option::of((any::<bool>(), labels())),
        0.0..1.0f64,
    )
        .prop_map(|(i, log, unwrap, range_ms, offset_s, grouping, q)| {
            use RangeOp::*;
            let op = RANGE_OPS[i].1;
            let unwrap = match op {
                CountOverTime | BytesOverTime | BytesRate => None,
                Rate | AbsentOverTime if offset_s % 2 == 0 => None,
                _ => Some(unwrap),
            };
            let allows_grouping =
                matches!(op, AvgOverTime | StddevOverTime | StdvarOverTime | QuantileOverTime | MaxOverTime | MinOverTime | FirstOverTime | LastOverTime);
            let grouping = grouping.filter(|_| allows_grouping).map(|(without, labels)| Grouping { without, labels });
            let param = (op == QuantileOverTime).then_some(q);
            let range = LogRange { log, unwrap, range: range_ms * 1_000_000, offset: offset_s * 1_000_000_000 };
            MetricExpr::RangeAgg { op, param, range: Box::new(range), grouping }
        })
}

fn metric_expr() -> impl Strategy<Value = MetricExpr> {
    let leaf = prop_oneof![
        4 => range_agg(),
        1 => (-1e6..1e6f64).prop_map(MetricExpr::Literal),
        1 => (0i32..1000).prop_map(|v| MetricExpr::Vector(f64::from(v))), // vector() takes no sign
    ];
    leaf.prop_recursive(3, 16, 2, |inner| {
        let binop = prop_oneof![
            Just(BinOp::Or), Just(BinOp::And), Just(BinOp::Unless), Just(BinOp::Eq), Just(BinOp::Neq), Just(BinOp::Gt),
            Just(BinOp::Gte), Just(BinOp::Lt), Just(BinOp::Lte), Just(BinOp::Add), Just(BinOp::Sub), Just(BinOp::Mul),
            Just(BinOp::Div), Just(BinOp::Mod), Just(BinOp::Pow),
        ];
        let matching = proptest::option::of((any::<bool>(), labels(), proptest::option::of((any::<bool>(), labels())))).prop_map(|m| {
            m.map(|(on, mut labels, group)| {
                if !on && labels.is_empty() {
                    labels.push("x".into()); // `ignoring ()` is not printed by Loki
                }
                VectorMatching { on, labels, group: group.map(|(left, include)| GroupModifier { left, include }) }
            })
        });
        prop_oneof![
            (0..VECTOR_OPS.len(), inner.clone(), proptest::option::of((any::<bool>(), labels())), 1i64..100).prop_map(|(i, inner, g, k)| {
                let op = VECTOR_OPS[i].1;
                let mut grouping = g.map(|(without, labels)| Grouping { without, labels }).filter(|g| g.without || !g.labels.is_empty());
                if op == VectorOp::ApproxTopk || (matches!(op, VectorOp::Sort | VectorOp::SortDesc) && grouping.as_ref().is_some_and(|g| !g.labels.is_empty())) {
                    grouping = None;
                }
                let param = matches!(op, VectorOp::Topk | VectorOp::Bottomk | VectorOp::ApproxTopk).then_some(k);
                MetricExpr::VectorAgg { op, param, inner: Box::new(inner), grouping }
            }),
            (binop, inner.clone(), inner.clone(), any::<bool>(), matching).prop_filter_map("literals fold or are invalid", |(op, lhs, rhs, return_bool, matching)| {
                let lit = |e: &MetricExpr| matches!(e, MetricExpr::Literal(_));
                if (lit(&lhs) && lit(&rhs)) || (op.is_set_op() && (lit(&lhs) || lit(&rhs))) {
                    return None;
                }
                Some(MetricExpr::Binary { op, lhs: Box::new(lhs), rhs: Box::new(rhs), return_bool, matching })
            }),
            (inner, name(), text(), name(), "[a-z(). *+]{0,8}").prop_filter_map("valid regex", |(inner, dst, replacement, src, regex)| {
                regex::Regex::new(&regex).ok()?;
                Some(MetricExpr::LabelReplace { inner: Box::new(inner), dst, replacement, src, regex })
            }),
        ]
    })
}

fn expr() -> impl Strategy<Value = Expr> {
    prop_oneof![log_expr().prop_map(Expr::Log), metric_expr().prop_map(Expr::Metric)]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1500, ..ProptestConfig::default() })]
    #[test]
    fn printed_trees_parse_back_to_themselves(e in expr()) {
        let printed = e.to_string();
        let back = super::parse(&printed).map_err(|err| TestCaseError::fail(format!("{printed}\n{err}")))?;
        prop_assert_eq!(back, e, "{}", printed);
    }
}
