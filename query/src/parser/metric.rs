//! Metric queries: range and vector aggregations, `vector()`, `label_replace()`, number
//! literals, and binary operators with Loki's precedence (`or` < `and`/`unless` <
//! comparisons < `+ -` < `* / %` < `^`, all left-associative but `^`). Operations on two
//! literals are folded at parse time, as Loki does.

use super::lex::{function_at, ident, is_kw, kw, number_token, skip_ws, string, sym, word, NumTok};
use super::log::{log_expr, partial_range, regex_message};
use super::{check_selector, cut, PErr, Res};
use crate::ast::{
    BinOp, GroupModifier, Grouping, LogExpr, LogRange, MetricExpr, RangeOp, VectorMatching, VectorOp, RANGE_OPS, VECTOR_OPS,
};

/// Either side of a binary operator may syntactically be a log query (Loki then rejects it).
#[derive(Debug)]
pub(crate) enum Node {
    Log(LogExpr),
    Metric(MetricExpr),
}

pub(super) fn expr(i: &str) -> Res<'_, Node> {
    binary(i)
}

fn peek_binop(i: &str) -> Option<(BinOp, &str)> {
    let j = skip_ws(i);
    for (s, op) in [
        ("==", BinOp::Eq),
        ("!=", BinOp::Neq),
        (">=", BinOp::Gte),
        ("<=", BinOp::Lte),
        (">", BinOp::Gt),
        ("<", BinOp::Lt),
        ("+", BinOp::Add),
        ("-", BinOp::Sub),
        ("*", BinOp::Mul),
        ("/", BinOp::Div),
        ("%", BinOp::Mod),
        ("^", BinOp::Pow),
    ] {
        if let Some(r) = j.strip_prefix(s) {
            return Some((op, r));
        }
    }
    let (w, r) = word(j)?;
    match w.to_ascii_lowercase().as_str() {
        "or" => Some((BinOp::Or, r)),
        "and" => Some((BinOp::And, r)),
        "unless" => Some((BinOp::Unless, r)),
        _ => None,
    }
}

fn label_list(i: &str) -> Res<'_, Vec<String>> {
    let (mut i, _) = sym("(")(i)?;
    let mut out = Vec::new();
    if let Ok((r, _)) = sym(")")(i) {
        return Ok((r, out));
    }
    loop {
        let (r, l) = ident(i)?;
        out.push(l.to_string());
        match sym(",")(r) {
            Ok((r, _)) => i = r,
            Err(_) => {
                let (r, _) = sym(")")(r).map_err(|e| match e {
                    nom::Err::Error(mut p) => {
                        p.expected.push(",");
                        nom::Err::Error(p)
                    }
                    other => other,
                })?;
                return Ok((r, out));
            }
        }
    }
}

/// `[bool] [on|ignoring (labels) [group_left|group_right [(labels)]]]`
fn bin_modifiers(i: &str) -> Res<'_, (bool, Option<VectorMatching>)> {
    let (i, return_bool) = match kw("bool")(i) {
        Ok((r, _)) => (r, true),
        Err(_) => (i, false),
    };
    let on = is_kw(i, "on");
    if !on && !is_kw(i, "ignoring") {
        return Ok((i, (return_bool, None)));
    }
    let (i, _) = kw(if on { "on" } else { "ignoring" })(i)?;
    let (mut i, labels) = cut(label_list(i))?;
    let mut group = None;
    for (w, left) in [("group_left", true), ("group_right", false)] {
        if is_kw(i, w) {
            let (r, _) = kw(w)(i)?;
            // `group_left (` starts the include list, unless what follows is not one: Loki's
            // grammar then fails, while `x * on (a) group_left (sum(y))` has one meaning.
            let (r, include) = match label_list(r) {
                Ok(ok) => ok,
                Err(nom::Err::Error(_)) => (r, Vec::new()),
                Err(e) => return Err(e),
            };
            group = Some(GroupModifier { left, include });
            i = r;
            break;
        }
    }
    Ok((i, (return_bool, Some(VectorMatching { on, labels, group }))))
}

/// Binary operators by precedence climbing with explicit stacks (no recursion per
/// operator, so `1 ^ 1 ^ ... ^ 1` cannot exhaust the stack).
fn binary(i: &str) -> Res<'_, Node> {
    struct Pending<'a> {
        op: BinOp,
        return_bool: bool,
        matching: Option<VectorMatching>,
        at: &'a str,
    }
    fn reduce<'a>(operands: &mut Vec<Node>, p: Pending<'a>) -> Result<(), nom::Err<PErr<'a>>> {
        let rhs = operands.pop().expect("two operands");
        let lhs = operands.pop().expect("two operands");
        operands.push(Node::Metric(combine(p.at, p.op, lhs, rhs, p.return_bool, p.matching)?));
        Ok(())
    }
    let (mut i, first) = primary(i)?;
    let mut operands = vec![first];
    let mut ops: Vec<Pending<'_>> = Vec::new();
    while let Some((op, after_op)) = peek_binop(i) {
        let (r, (return_bool, matching)) = bin_modifiers(after_op)?;
        // Reduce what binds more tightly, and equal precedence for left-associative ops.
        while let Some(top) = ops.last() {
            let tighter = top.op.precedence() > op.precedence() || (top.op.precedence() == op.precedence() && op != BinOp::Pow);
            if !tighter {
                break;
            }
            let top = ops.pop().expect("checked");
            reduce(&mut operands, top)?;
        }
        ops.push(Pending { op, return_bool, matching, at: i });
        let (r, rhs) = cut(primary(r))?;
        operands.push(rhs);
        i = r;
    }
    while let Some(top) = ops.pop() {
        reduce(&mut operands, top)?;
    }
    Ok((i, operands.pop().expect("one result")))
}

/// Builds a binary expression, applying Loki's checks and its folding of literals.
fn combine<'a>(at: &'a str, op: BinOp, lhs: Node, rhs: Node, return_bool: bool, matching: Option<VectorMatching>) -> Result<MetricExpr, nom::Err<PErr<'a>>> {
    let side = |n: Node, leg: &str| match n {
        Node::Metric(m) => Ok(m),
        Node::Log(l) => {
            let ty = if l.pipeline.is_empty() { "*syntax.MatchersExpr" } else { "*syntax.PipelineExpr" };
            Err(PErr::invalid(at, format!("unexpected type for {leg} leg of binary operation ({}): {ty}", op.as_str())))
        }
    };
    let lhs = side(lhs, "left")?;
    let rhs = side(rhs, "right")?;
    if op.is_set_op() {
        for (m, leg) in [(&lhs, "left"), (&rhs, "right")] {
            if let MetricExpr::Literal(v) = m {
                return Err(PErr::invalid(
                    at,
                    format!("unexpected literal for {leg} leg of logical/set binary operation ({}): {v:.6}", op.as_str()),
                ));
            }
        }
    }
    if let (MetricExpr::Literal(a), MetricExpr::Literal(b)) = (&lhs, &rhs) {
        return Ok(MetricExpr::Literal(fold(op, *a, *b)));
    }
    Ok(MetricExpr::Binary { op, lhs: Box::new(lhs), rhs: Box::new(rhs), return_bool, matching })
}

/// Scalar arithmetic and comparisons (1 or 0) between two literals.
pub fn fold(op: BinOp, a: f64, b: f64) -> f64 {
    let t = |c: bool| if c { 1.0 } else { 0.0 };
    match op {
        BinOp::Add => a + b,
        BinOp::Sub => a - b,
        BinOp::Mul => a * b,
        BinOp::Div => {
            if b == 0.0 {
                f64::NAN
            } else {
                a / b
            }
        }
        BinOp::Mod => {
            if b == 0.0 {
                f64::NAN
            } else {
                a % b
            }
        }
        BinOp::Pow => a.powf(b),
        BinOp::Eq => t(a == b),
        BinOp::Neq => t(a != b),
        BinOp::Gt => t(a > b),
        BinOp::Gte => t(a >= b),
        BinOp::Lt => t(a < b),
        BinOp::Lte => t(a <= b),
        BinOp::Or | BinOp::And | BinOp::Unless => f64::NAN,
    }
}

fn primary(i: &str) -> Res<'_, Node> {
    let j = skip_ws(i);
    if let Some(r) = j.strip_prefix('(') {
        let (r, inner) = cut(expr(r))?;
        let (r, _) = cut(sym(")")(r))?;
        return Ok((r, inner));
    }
    if j.starts_with('{') {
        let (r, l) = log_expr(j)?;
        return Ok((r, Node::Log(l)));
    }
    // Number literals, with an optional sign directly on the number.
    let (sign, k) = match j.as_bytes().first() {
        Some(b'-') => (-1.0, &j[1..]),
        Some(b'+') => (1.0, &j[1..]),
        _ => (1.0, j),
    };
    if let Ok((r, (tok, _))) = number_token(k) {
        return match tok {
            NumTok::Number(v) => Ok((r, Node::Metric(MetricExpr::Literal(sign * v)))),
            _ => Err(nom::Err::Error(PErr::at(k))),
        };
    }
    if let Some((name, rest)) = function_at(j) {
        if let Some((_, op)) = RANGE_OPS.iter().find(|(n, _)| *n == name) {
            return range_agg(rest, *op).map(|(r, m)| (r, Node::Metric(m)));
        }
        if let Some((_, op)) = VECTOR_OPS.iter().find(|(n, _)| *n == name) {
            return vector_agg(rest, *op).map(|(r, m)| (r, Node::Metric(m)));
        }
        if name == "vector" {
            let (r, _) = sym("(")(rest)?;
            let (r, (tok, _)) = cut(number_token(r))?;
            let NumTok::Number(v) = tok else { return Err(nom::Err::Failure(PErr::expecting(skip_ws(r), "NUMBER"))) };
            let (r, _) = cut(sym(")")(r))?;
            return Ok((r, Node::Metric(MetricExpr::Vector(v))));
        }
        if name == "label_replace" {
            return label_replace(rest).map(|(r, m)| (r, Node::Metric(m)));
        }
    }
    // Loki lists no expected tokens here: there are too many.
    Err(nom::Err::Error(PErr::at(j)))
}

fn grouping(i: &str) -> Res<'_, Option<Grouping>> {
    for (w, without) in [("by", false), ("without", true)] {
        if is_kw(i, w) {
            let (r, _) = kw(w)(i)?;
            let (r, labels) = cut(label_list(r))?;
            return Ok((r, Some(Grouping { without, labels })));
        }
    }
    Ok((i, None))
}

/// A leading `NUMBER ,` parameter, if present. Returns its value and text.
fn param(i: &str) -> Res<'_, Option<(f64, &str)>> {
    let j = skip_ws(i);
    if let Ok((r, (NumTok::Number(v), text))) = number_token(j) {
        if let Ok((r, _)) = sym(",")(r) {
            return Ok((r, Some((v, text))));
        }
    }
    Ok((i, None))
}

fn range_agg(i: &str, op: RangeOp) -> Res<'_, MetricExpr> {
    let (i, _) = sym("(")(i)?;
    let (i, p) = param(i)?;
    let (i, (log, unwrap, ro)) = cut(partial_range(i))?;
    let Some((range, offset)) = ro else {
        let mut e = PErr::at(skip_ws(i));
        e.expected.push("RANGE");
        return Err(nom::Err::Failure(e));
    };
    let (i, _) = cut(sym(")")(i))?;
    let (i, grouping) = grouping(i)?;
    let at = i;
    let name = op.as_str();
    use RangeOp::*;
    match (op, p) {
        (QuantileOverTime, None) => return Err(PErr::invalid(at, "parameter required for operation quantile_over_time".into())),
        (QuantileOverTime, Some(_)) => {}
        (_, Some((_, text))) => return Err(PErr::invalid(at, format!("parameter {text} not supported for operation {name}"))),
        (_, None) => {}
    }
    let needs_unwrap = matches!(
        op,
        AvgOverTime | SumOverTime | MinOverTime | MaxOverTime | StdvarOverTime | StddevOverTime | QuantileOverTime | FirstOverTime | LastOverTime | RateCounter
    );
    let forbids_unwrap = matches!(op, CountOverTime | BytesOverTime | BytesRate);
    if unwrap.is_some() && forbids_unwrap {
        return Err(PErr::invalid(at, format!("invalid aggregation {name} with unwrap")));
    }
    if unwrap.is_none() && needs_unwrap {
        return Err(PErr::invalid(at, format!("invalid aggregation {name} without unwrap")));
    }
    let allows_grouping =
        matches!(op, AvgOverTime | StddevOverTime | StdvarOverTime | QuantileOverTime | MaxOverTime | MinOverTime | FirstOverTime | LastOverTime);
    if grouping.is_some() && !allows_grouping {
        return Err(PErr::invalid(at, format!("grouping not allowed for {name} aggregation")));
    }
    check_selector(&log).map_err(|e| PErr::invalid(at, e.message))?;
    let range = LogRange { log, unwrap, range, offset };
    Ok((i, MetricExpr::RangeAgg { op, param: p.map(|x| x.0), range: Box::new(range), grouping }))
}

fn vector_agg(i: &str, op: VectorOp) -> Res<'_, MetricExpr> {
    let (i, before) = grouping(i)?;
    let (i, _) = cut(sym("(")(i))?;
    let (i, p) = param(i)?;
    let (i, inner) = cut(expr(i))?;
    let inner = match inner {
        Node::Metric(m) => m,
        Node::Log(_) => return Err(nom::Err::Failure(PErr::at(skip_ws(i)))),
    };
    let (i, _) = cut(sym(")")(i))?;
    let (i, grouping) = match before {
        Some(g) => (i, Some(g)),
        None => grouping(i)?,
    };
    // `by ()` groups nothing away: the same as no grouping (and printed that way).
    let grouping = grouping.filter(|g| g.without || !g.labels.is_empty());
    let at = i;
    let name = op.as_str();
    let param = match (op, p) {
        (VectorOp::Topk | VectorOp::Bottomk | VectorOp::ApproxTopk, None) => {
            return Err(PErr::invalid(at, format!("parameter required for operation {name}")));
        }
        (VectorOp::Topk | VectorOp::Bottomk | VectorOp::ApproxTopk, Some((_, text))) => {
            let n: i64 = text.parse().map_err(|_| PErr::invalid(at, format!("invalid parameter {name}({text},")))?;
            if n <= 0 {
                return Err(PErr::invalid(at, format!("invalid parameter (must be greater than 0) {name}({text}")));
            }
            Some(n)
        }
        (_, Some((_, text))) => return Err(PErr::invalid(at, format!("unsupported parameter for operation {name}({text},"))),
        (_, None) => None,
    };
    if op == VectorOp::ApproxTopk && grouping.is_some() {
        return Err(PErr::invalid(at, "grouping not allowed for approx_topk aggregation".into()));
    }
    if matches!(op, VectorOp::Sort | VectorOp::SortDesc) && grouping.as_ref().is_some_and(|g| !g.labels.is_empty()) {
        return Err(PErr::invalid(at, "sort and sort_desc doesn't allow grouping by ".into()));
    }
    Ok((i, MetricExpr::VectorAgg { op, param, inner: Box::new(inner), grouping }))
}

fn label_replace(i: &str) -> Res<'_, MetricExpr> {
    let (i, _) = sym("(")(i)?;
    let (i, inner) = cut(expr(i))?;
    let inner = match inner {
        Node::Metric(m) => m,
        Node::Log(_) => return Err(nom::Err::Failure(PErr::at(skip_ws(i)))),
    };
    let mut args = Vec::new();
    let mut i = i;
    for _ in 0..4 {
        let (r, _) = cut(sym(",")(i))?;
        let (r, (s, at)) = cut(string(r))?;
        args.push((s, at));
        i = r;
    }
    let (i, _) = cut(sym(")")(i))?;
    let mut it = args.into_iter();
    let (dst, _) = it.next().expect("four arguments");
    let (replacement, _) = it.next().expect("four arguments");
    let (src, _) = it.next().expect("four arguments");
    let (regex, at) = it.next().expect("four arguments");
    if let Err(e) = regex::Regex::new(&format!("^(?s:{regex})$")) {
        return Err(PErr::invalid(at, format!("invalid regex in label_replace: {}", regex_message(&e.to_string()))));
    }
    Ok((i, MetricExpr::LabelReplace { inner: Box::new(inner), dst, replacement, src, regex }))
}
