//! Who is asking, for which tenant, and may they do it.
//!
//! Like Loki: with `auth_enabled = false` (silt's default, as in Loki's single-binary
//! examples) the tenant is `X-Scope-OrgID` or `fake`; with `auth_enabled = true` a request
//! without `X-Scope-OrgID` is refused with 401 `no org id`. `a|b` names several tenants,
//! which reads accept when `multi_tenant_queries_enabled` is on.
//!
//! Beyond Loki: bearer tokens (or HTTP basic auth with the token as password, which
//! Grafana can send) from `[[auth.tokens]]`, each bound to a tenant and a role. When any
//! token is configured every API request needs one; the tenant comes from the token and a
//! different `X-Scope-OrgID` is refused. Tokens are compared in constant time and never
//! logged or printed.

use std::path::PathBuf;

use axum::http::{HeaderMap, StatusCode};
use serde::Deserialize;
use silt_storage::TenantId;

use crate::error::ApiError;

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Everything, including administrative endpoints (`/flush`, `/config`).
    Admin,
    /// Push only.
    Writer,
    /// Queries and metadata only.
    Reader,
}

/// What a request does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
    Admin,
}

impl Role {
    fn allows(self, a: Access) -> bool {
        matches!((self, a), (Role::Admin, _) | (Role::Writer, Access::Write) | (Role::Reader, Access::Read))
    }
}

/// `[[auth.tokens]]` in the config file: the secret (inline, from a file, or from an
/// environment variable), its tenant and role.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    pub token: Option<String>,
    pub token_file: Option<PathBuf>,
    pub token_env: Option<String>,
    pub tenant: String,
    pub role: Role,
}

impl std::fmt::Debug for TokenConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secret itself.
        f.debug_struct("TokenConfig").field("tenant", &self.tenant).field("role", &self.role).finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSection {
    #[serde(default)]
    pub tokens: Vec<TokenConfig>,
}

struct Token {
    secret: Vec<u8>,
    tenant: TenantId,
    role: Role,
}

/// The resolved authentication settings.
pub struct Auth {
    enabled: bool,
    multi_tenant: bool,
    tokens: Vec<Token>,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth").field("enabled", &self.enabled).field("multi_tenant", &self.multi_tenant).field("tokens", &self.tokens.len()).finish()
    }
}

impl Default for Auth {
    fn default() -> Self {
        Auth { enabled: false, multi_tenant: false, tokens: Vec::new() }
    }
}

impl Auth {
    /// Reads every token's secret (files, environment); errors name the token by index.
    pub fn new(enabled: bool, multi_tenant: bool, section: &AuthSection) -> anyhow::Result<Auth> {
        let mut tokens = Vec::new();
        for (i, t) in section.tokens.iter().enumerate() {
            let what = format!("[[auth.tokens]] #{}", i + 1);
            let secret = match (&t.token, &t.token_file, &t.token_env) {
                (Some(s), None, None) => s.clone(),
                (None, Some(p), None) => std::fs::read_to_string(p).map_err(|e| anyhow::anyhow!("{what}: cannot read token_file {}: {e}", p.display()))?.trim().to_string(),
                (None, None, Some(v)) => std::env::var(v).map_err(|_| anyhow::anyhow!("{what}: environment variable {v} is not set"))?,
                _ => anyhow::bail!("{what}: give exactly one of token, token_file, token_env"),
            };
            if secret.len() < 8 {
                anyhow::bail!("{what}: the token is shorter than 8 characters");
            }
            let tenant = t.tenant.parse().map_err(|e| anyhow::anyhow!("{what}: tenant: {e}"))?;
            tokens.push(Token { secret: secret.into_bytes(), tenant, role: t.role });
        }
        Ok(Auth { enabled, multi_tenant, tokens })
    }

    pub fn enabled(&self) -> bool {
        self.enabled
    }

    pub fn multi_tenant(&self) -> bool {
        self.multi_tenant
    }

    /// How many tokens are configured (never which).
    pub fn token_count(&self) -> usize {
        self.tokens.len()
    }

    /// The one tenant a request acts for.
    pub fn tenant(&self, headers: &HeaderMap, access: Access) -> Result<TenantId, ApiError> {
        let mut all = self.resolve(headers, access)?;
        if all.len() > 1 {
            // Loki's single-tenant paths fail this way (a 500 there too).
            return Err(ApiError::internal("multiple org IDs present"));
        }
        Ok(all.remove(0))
    }

    /// The tenants a read covers (`a|b`), when multi-tenant queries are enabled.
    pub fn tenants(&self, headers: &HeaderMap) -> Result<Vec<TenantId>, ApiError> {
        let all = self.resolve(headers, Access::Read)?;
        if all.len() > 1 && !self.multi_tenant {
            return Err(ApiError::internal("multiple org IDs present"));
        }
        Ok(all)
    }

    fn resolve(&self, headers: &HeaderMap, access: Access) -> Result<Vec<TenantId>, ApiError> {
        let header = match headers.get("x-scope-orgid") {
            None => None,
            Some(v) => Some(v.to_str().map_err(|_| ApiError::bad_request("invalid X-Scope-OrgID header"))?.trim()).filter(|s| !s.is_empty()),
        };
        if !self.tokens.is_empty() {
            let token = self.token(headers)?;
            if !token.role.allows(access) {
                let what = match access {
                    Access::Read => "read",
                    Access::Write => "push",
                    Access::Admin => "use administrative endpoints",
                };
                return Err(ApiError::new(StatusCode::FORBIDDEN, format!("this token may not {what}")).http_error());
            }
            if let Some(h) = header {
                if h != token.tenant.as_str() {
                    return Err(ApiError::new(StatusCode::FORBIDDEN, "X-Scope-OrgID does not match the token's tenant").http_error());
                }
            }
            return Ok(vec![token.tenant.clone()]);
        }
        let Some(h) = header else {
            if self.enabled {
                return Err(ApiError::new(StatusCode::UNAUTHORIZED, "no org id").http_error());
            }
            return Ok(vec![TenantId::default_tenant()]);
        };
        parse_tenants(h)
    }

    /// The token of the request (`Authorization: Bearer <t>`, or basic auth with the token
    /// as the password), compared with every configured token in constant time.
    fn token(&self, headers: &HeaderMap) -> Result<&Token, ApiError> {
        let unauthorized = || ApiError::new(StatusCode::UNAUTHORIZED, "missing or invalid token").http_error();
        let value = headers.get("authorization").and_then(|v| v.to_str().ok()).ok_or_else(unauthorized)?;
        let presented: Vec<u8> = if let Some(t) = strip_prefix_ignore_case(value, "bearer ") {
            t.trim().as_bytes().to_vec()
        } else if let Some(b) = strip_prefix_ignore_case(value, "basic ") {
            use base64::Engine as _;
            let decoded = base64::engine::general_purpose::STANDARD.decode(b.trim()).map_err(|_| unauthorized())?;
            match decoded.iter().position(|&c| c == b':') {
                Some(i) => decoded[i + 1..].to_vec(),
                None => return Err(unauthorized()),
            }
        } else {
            return Err(unauthorized());
        };
        let mut found = None;
        for t in &self.tokens {
            // Every token is compared, whatever matched before.
            if constant_time_eq(&t.secret, &presented) && found.is_none() {
                found = Some(t);
            }
        }
        found.ok_or_else(unauthorized)
    }
}

/// `a|b|a` → `[a, b]`: each part validated, sorted and de-duplicated, as Loki does.
pub fn parse_tenants(h: &str) -> Result<Vec<TenantId>, ApiError> {
    let mut out = Vec::new();
    for part in h.split('|') {
        let t: TenantId = part.trim().parse().map_err(|e: silt_storage::StoreError| ApiError::bad_request(e.to_string()))?;
        out.push(t);
    }
    out.sort();
    out.dedup();
    Ok(out)
}

fn strip_prefix_ignore_case<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    (s.len() >= prefix.len() && s.is_char_boundary(prefix.len()) && s[..prefix.len()].eq_ignore_ascii_case(prefix)).then(|| &s[prefix.len()..])
}

/// Equal contents, in time that depends only on the lengths.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = u8::from(a.len() != b.len());
    for i in 0..a.len() {
        diff |= a[i] ^ b.get(i).copied().unwrap_or(0);
    }
    diff == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    fn with_tokens() -> Auth {
        let section: AuthSection = toml::from_str(
            "[[tokens]]\ntoken = \"reader-secret\"\ntenant = \"acme\"\nrole = \"reader\"\n[[tokens]]\ntoken = \"writer-secret\"\ntenant = \"acme\"\nrole = \"writer\"\n",
        )
        .unwrap();
        Auth::new(false, false, &section).unwrap()
    }

    #[test]
    fn loki_tenancy() {
        let off = Auth::default();
        assert_eq!(off.tenant(&headers(&[]), Access::Read).unwrap().as_str(), "fake");
        assert_eq!(off.tenant(&headers(&[("x-scope-orgid", "acme")]), Access::Write).unwrap().as_str(), "acme");
        let on = Auth::new(true, false, &AuthSection::default()).unwrap();
        let e = on.tenant(&headers(&[]), Access::Read).unwrap_err();
        assert_eq!((e.status.as_u16(), e.message.as_str()), (401, "no org id"));
        let e = on.tenants(&headers(&[("x-scope-orgid", "a|b")])).unwrap_err();
        assert_eq!(e.message, "multiple org IDs present");
        let multi = Auth::new(true, true, &AuthSection::default()).unwrap();
        let t = multi.tenants(&headers(&[("x-scope-orgid", "b|a|b")])).unwrap();
        assert_eq!(t.iter().map(|t| t.as_str()).collect::<Vec<_>>(), ["a", "b"]);
        let e = multi.tenants(&headers(&[("x-scope-orgid", "a|b/c")])).unwrap_err();
        assert_eq!(e.message, "tenant ID 'b/c' contains unsupported character '/'");
    }

    #[test]
    fn tokens_bind_tenant_and_role() {
        let a = with_tokens();
        let e = a.tenant(&headers(&[("x-scope-orgid", "acme")]), Access::Read).unwrap_err();
        assert_eq!(e.status.as_u16(), 401, "a token is required");
        let t = a.tenant(&headers(&[("authorization", "Bearer reader-secret")]), Access::Read).unwrap();
        assert_eq!(t.as_str(), "acme");
        let e = a.tenant(&headers(&[("authorization", "Bearer reader-secret")]), Access::Write).unwrap_err();
        assert_eq!((e.status.as_u16(), e.message.as_str()), (403, "this token may not push"));
        let e = a.tenant(&headers(&[("authorization", "Bearer writer-secret"), ("x-scope-orgid", "globex")]), Access::Write).unwrap_err();
        assert_eq!(e.status.as_u16(), 403);
        // Grafana's basic auth: any user, the token as password ("u:reader-secret").
        let t = a.tenant(&headers(&[("authorization", "Basic dTpyZWFkZXItc2VjcmV0")]), Access::Read).unwrap();
        assert_eq!(t.as_str(), "acme");
        assert!(a.tenant(&headers(&[("authorization", "Bearer reader-secreT")]), Access::Read).is_err());
        assert!(!format!("{:?}", with_tokens()).contains("secret"));
    }

    #[test]
    fn helpers() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
        assert!(!constant_time_eq(b"", b"a"));
    }
}
