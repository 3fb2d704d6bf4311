//! Tenant ids, checked once at the edge (`X-Scope-OrgID`) and trusted everywhere after.
//! They name directories on disk, so the rules are Loki's and path-safe by construction.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use crate::error::StoreError;

/// Loki's limit on a tenant id's length.
pub const MAX_TENANT_ID_LEN: usize = 150;

/// The tenant Loki uses when auth is disabled and no `X-Scope-OrgID` is sent.
pub const DEFAULT_TENANT: &str = "fake";

#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TenantId(Arc<str>);

impl TenantId {
    pub fn as_str(&self) -> &str {
        &self.0
    }
    pub fn default_tenant() -> Self {
        TenantId(DEFAULT_TENANT.into())
    }
}

impl FromStr for TenantId {
    type Err = StoreError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        check_tenant(s)?;
        Ok(TenantId(s.into()))
    }
}

/// Loki (dskit) accepts `[a-zA-Z0-9!\-_.*'()]`, at most 150 bytes, and never `.` or `..`,
/// checked in that order.
fn check_tenant(s: &str) -> Result<(), StoreError> {
    if s.is_empty() {
        return Err(StoreError::InvalidInput("no org id".into()));
    }
    if let Some(c) = s.chars().find(|c| !(c.is_ascii_alphanumeric() || "!-_.*'()".contains(*c))) {
        return Err(StoreError::InvalidInput(format!("tenant ID '{s}' contains unsupported character '{c}'")));
    }
    if s.len() > MAX_TENANT_ID_LEN {
        return Err(StoreError::InvalidInput(format!("tenant ID is too long: max {MAX_TENANT_ID_LEN} characters")));
    }
    if s == "." || s == ".." {
        return Err(StoreError::InvalidInput("tenant ID is '.' or '..'".into()));
    }
    Ok(())
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TenantId({})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_loki_charset() {
        for ok in ["fake", "acme", "a-b_c.d*e'f(g)!", "1"] {
            assert!(ok.parse::<TenantId>().is_ok(), "{ok}");
        }
    }

    #[test]
    fn rejects_path_tricks_and_junk() {
        for bad in ["", ".", "..", "a/b", "a b", "tenant|other", &"x".repeat(151)] {
            assert!(bad.parse::<TenantId>().is_err(), "{bad}");
        }
    }
}
