//! Shared by the integration tests that compare metric query answers.

use silt_query::{ast::Expr, parse, Engine, MetricResult};
use silt_storage::TenantId;

/// 2026-01-15T23:00:00Z: the start of every test's hour.
pub const T0: i64 = 1_768_518_000_000_000_000;
pub const MIN: i64 = 60_000_000_000;

/// A metric query over the hour from [`T0`], one step a minute: the answer printed, or
/// the error's text, for comparing two ways of answering.
pub async fn run(e: &Engine, t: &TenantId, q: &str) -> Result<String, String> {
    let Expr::Metric(m) = parse(q).unwrap() else { panic!("{q}") };
    match e.metric_query(std::slice::from_ref(t), &m, T0, T0 + 60 * MIN, MIN).await {
        Ok(MetricResult::Matrix(series)) => Ok(format!("{series:?}")),
        Ok(other) => Ok(format!("{other:?}")),
        Err(err) => Err(err.to_string()),
    }
}
