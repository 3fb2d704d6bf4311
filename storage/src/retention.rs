//! Retention: how long a tenant's entries live, as Loki's `retention_period` and
//! `retention_stream` limits define it.
//!
//! A stream's period is the one of the matching `retention_stream` rule with the highest
//! priority (on a tie, the shortest period), else the tenant's `retention_period`; a period
//! of 0 keeps data forever. An entry is expired once it is older than `now - period`.
//!
//! Expired entries are hidden from every read at once (the scan cuts them, see
//! [`crate::visibility`]); the maintenance pass ([`crate::Store::maintain`]) then drops
//! whole expired chunks and rewrites partly expired ones, which is when disk space returns.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::labels::Labels;
use crate::matcher::{MatchOp, Matcher};
use crate::tenant::TenantId;

/// One `retention_stream` rule.
#[derive(Debug, Clone)]
pub struct StreamRule {
    /// The selector as written, for reports.
    pub selector: String,
    pub matchers: Vec<Matcher>,
    pub priority: i64,
    /// Nanoseconds; 0 keeps the stream's data forever.
    pub period: i64,
}

/// One tenant's retention.
#[derive(Debug, Clone, Default)]
pub struct RetentionPolicy {
    /// Nanoseconds; 0 keeps data forever.
    pub period: i64,
    pub streams: Vec<StreamRule>,
}

impl RetentionPolicy {
    /// Whether no data of this tenant ever expires.
    pub fn is_forever(&self) -> bool {
        self.period == 0 && self.streams.iter().all(|r| r.period == 0)
    }

    /// The rule that decides `labels`' period: `Some(i)` for `streams[i]`, `None` for the
    /// tenant default.
    pub fn rule_for(&self, labels: &Labels) -> Option<usize> {
        let mut best: Option<usize> = None;
        for (i, r) in self.streams.iter().enumerate() {
            if !r.matchers.iter().all(|m| m.matches(labels.get(&m.name).unwrap_or(""))) {
                continue;
            }
            best = match best {
                Some(b) => {
                    let cur = &self.streams[b];
                    if r.priority > cur.priority || (r.priority == cur.priority && r.period < cur.period) {
                        Some(i)
                    } else {
                        Some(b)
                    }
                }
                None => Some(i),
            };
        }
        best
    }

    /// The retention period of a stream, in nanoseconds (0: forever).
    pub fn period_for(&self, labels: &Labels) -> i64 {
        self.rule_for(labels).map_or(self.period, |i| self.streams[i].period)
    }

    /// The oldest timestamp still live for a stream at `now`; `i64::MIN` when nothing expires.
    pub fn cutoff(&self, labels: &Labels, now: i64) -> i64 {
        match self.period_for(labels) {
            0 => i64::MIN,
            p => now.saturating_sub(p),
        }
    }
}

/// Every tenant's retention: a default and per-tenant overrides.
#[derive(Debug, Clone, Default)]
pub struct RetentionConfig {
    pub default: RetentionPolicy,
    pub tenants: HashMap<TenantId, RetentionPolicy>,
}

impl RetentionConfig {
    pub fn for_tenant(&self, t: &TenantId) -> &RetentionPolicy {
        self.tenants.get(t).unwrap_or(&self.default)
    }

    /// Whether nothing expires for any tenant.
    pub fn is_forever(&self) -> bool {
        self.default.is_forever() && self.tenants.values().all(RetentionPolicy::is_forever)
    }

    /// The form written to `<data_dir>/retention.json`, so that tools reading the data
    /// directory without the server's configuration (`silt query`) hide what it hides.
    pub(crate) fn to_file(&self) -> RetentionFile {
        RetentionFile {
            default: PolicyFile::from(&self.default),
            tenants: self.tenants.iter().map(|(t, p)| (t.as_str().to_string(), PolicyFile::from(p))).collect(),
        }
    }

    pub(crate) fn from_file(f: RetentionFile) -> Option<RetentionConfig> {
        let mut tenants = HashMap::new();
        for (t, p) in f.tenants {
            tenants.insert(t.parse().ok()?, p.into_policy()?);
        }
        Some(RetentionConfig { default: f.default.into_policy()?, tenants })
    }
}

#[derive(Serialize, Deserialize)]
pub(crate) struct RetentionFile {
    default: PolicyFile,
    tenants: HashMap<String, PolicyFile>,
}

#[derive(Serialize, Deserialize)]
struct PolicyFile {
    period_ns: i64,
    streams: Vec<RuleFile>,
}

#[derive(Serialize, Deserialize)]
struct RuleFile {
    selector: String,
    matchers: Vec<(String, String, String)>,
    priority: i64,
    period_ns: i64,
}

impl From<&RetentionPolicy> for PolicyFile {
    fn from(p: &RetentionPolicy) -> Self {
        PolicyFile {
            period_ns: p.period,
            streams: p
                .streams
                .iter()
                .map(|r| RuleFile {
                    selector: r.selector.clone(),
                    matchers: r.matchers.iter().map(|m| (m.name.clone(), m.op.as_str().to_string(), m.value.clone())).collect(),
                    priority: r.priority,
                    period_ns: r.period,
                })
                .collect(),
        }
    }
}

impl PolicyFile {
    fn into_policy(self) -> Option<RetentionPolicy> {
        let mut streams = Vec::new();
        for r in self.streams {
            let mut matchers = Vec::new();
            for (n, op, v) in r.matchers {
                let op = match op.as_str() {
                    "=" => MatchOp::Eq,
                    "!=" => MatchOp::Neq,
                    "=~" => MatchOp::Re,
                    "!~" => MatchOp::NotRe,
                    _ => return None,
                };
                matchers.push(Matcher::new(n, op, v).ok()?);
            }
            streams.push(StreamRule { selector: r.selector, matchers, priority: r.priority, period: r.period_ns });
        }
        Some(RetentionPolicy { period: self.period_ns, streams })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = 3_600_000_000_000;

    fn rule(name: &str, value: &str, priority: i64, hours: i64) -> StreamRule {
        StreamRule { selector: format!("{{{name}=\"{value}\"}}"), matchers: vec![Matcher::new(name, MatchOp::Eq, value).unwrap()], priority, period: hours * H }
    }

    #[test]
    fn highest_priority_wins_then_shortest_period() {
        let p = RetentionPolicy { period: 744 * H, streams: vec![rule("env", "staging", 1, 720), rule("app", "x", 2, 48), rule("env", "staging", 1, 24)] };
        let staging = Labels::parse(r#"{env="staging"}"#).unwrap();
        let both = Labels::parse(r#"{app="x", env="staging"}"#).unwrap();
        let prod = Labels::parse(r#"{env="prod"}"#).unwrap();
        assert_eq!(p.period_for(&staging), 24 * H);
        assert_eq!(p.period_for(&both), 48 * H);
        assert_eq!(p.period_for(&prod), 744 * H);
        assert_eq!(p.cutoff(&prod, 1000 * H), 256 * H);
        let forever = RetentionPolicy::default();
        assert!(forever.is_forever());
        assert_eq!(forever.cutoff(&prod, 1000 * H), i64::MIN);
    }

    #[test]
    fn file_form_round_trips() {
        let mut c = RetentionConfig { default: RetentionPolicy { period: 5, streams: vec![rule("a", "b", 3, 1)] }, tenants: HashMap::new() };
        c.tenants.insert("acme".parse().unwrap(), RetentionPolicy { period: 7, streams: vec![] });
        let back = RetentionConfig::from_file(serde_json::from_slice(&serde_json::to_vec(&c.to_file()).unwrap()).unwrap()).unwrap();
        assert_eq!(back.default.period, 5);
        assert_eq!(back.default.streams[0].matchers[0].value, "b");
        assert_eq!(back.for_tenant(&"acme".parse().unwrap()).period, 7);
    }
}
