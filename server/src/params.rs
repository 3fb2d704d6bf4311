//! Query-string parameters as Loki reads them (`pkg/loghttp/params.go`): timestamps as
//! Unix nanoseconds, Unix seconds (10 digits or fewer), float seconds or RFC3339; `since`
//! as a duration; `limit`; `direction`.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::http::{HeaderMap, Method};
use silt_query::duration::parse_duration;
use silt_query::Direction;

use crate::error::ApiError;

/// Parameters from the URL query and, for form-encoded POSTs, the body (body wins).
pub struct Params(HashMap<String, Vec<String>>);

/// What a Loki read endpoint needs from a request: its parameters (GET query or form
/// POST) and its headers (tenant, auth, encoding flags). An axum extractor, so handlers
/// take one argument instead of four.
pub struct ApiRequest {
    pub params: Params,
    pub headers: HeaderMap,
}

impl<S: Send + Sync> axum::extract::FromRequest<S> for ApiRequest {
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, ApiError> {
        let method = req.method().clone();
        let query = req.uri().query().map(str::to_string);
        let headers = req.headers().clone();
        let body = Bytes::from_request(req, state).await.map_err(|e| ApiError::new(e.status(), e.body_text()))?;
        let params = Params::from_request(&method, query.as_deref(), &headers, &body)?;
        Ok(ApiRequest { params, headers })
    }
}

impl Params {
    pub fn from_request(method: &Method, uri_query: Option<&str>, headers: &HeaderMap, body: &Bytes) -> Result<Params, ApiError> {
        let mut map: HashMap<String, Vec<String>> = HashMap::new();
        let mut add = |raw: &[u8]| -> Result<(), ApiError> {
            let pairs: Vec<(String, String)> =
                serde_urlencoded::from_bytes(raw).map_err(|e| ApiError::bad_request(format!("invalid parameters: {e}")))?;
            for (k, v) in pairs {
                map.entry(k).or_default().push(v);
            }
            Ok(())
        };
        if let Some(q) = uri_query {
            add(q.as_bytes())?;
        }
        let is_form = headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
        if method == Method::POST && is_form {
            add(body)?;
        }
        Ok(Params(map))
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).and_then(|v| v.last()).map(String::as_str).filter(|s| !s.is_empty())
    }

    pub fn all(&self, name: &str) -> &[String] {
        self.0.get(name).map(Vec::as_slice).unwrap_or(&[])
    }

    /// `limit`, which must be positive when given (Loki: `limit must be a positive value`).
    pub fn limit(&self, default: usize) -> Result<usize, ApiError> {
        match self.get("limit") {
            None => Ok(default),
            Some(v) => match v.parse::<i64>() {
                Ok(n) if n > 0 => Ok(usize::try_from(n).unwrap_or(usize::MAX)),
                Ok(_) => Err(ApiError::bad_request("limit must be a positive value")),
                Err(_) => Err(ApiError::bad_request(format!("invalid limit: cannot parse \"{v}\" as an integer"))),
            },
        }
    }

    pub fn direction(&self) -> Result<Direction, ApiError> {
        match self.get("direction").map(str::to_ascii_lowercase).as_deref() {
            None | Some("backward") => Ok(Direction::Backward),
            Some("forward") => Ok(Direction::Forward),
            Some(_) => Err(ApiError::bad_request("invalid direction")),
        }
    }

    /// `[start, end)` in ns from `start`, `end` and `since` (default `default_since`), as
    /// Loki computes it: `end` defaults to now, `start` to `end - since`.
    pub fn range(&self, default_since_ns: i64) -> Result<(i64, i64), ApiError> {
        let now = now_ns();
        let end = match self.get("end") {
            Some(v) => parse_time(v).ok_or_else(|| bad_time("end", v))?,
            None => now,
        };
        let since = match self.get("since") {
            Some(v) => parse_duration(v).ok_or_else(|| ApiError::bad_request(format!("invalid since: cannot parse \"{v}\" as a duration")))?,
            None => default_since_ns,
        };
        let start = match self.get("start") {
            Some(v) => parse_time(v).ok_or_else(|| bad_time("start", v))?,
            None => end.saturating_sub(since),
        };
        if end < start {
            return Err(ApiError::bad_request("end timestamp must not be before or equal to start time"));
        }
        Ok((start, end))
    }
}

fn bad_time(what: &str, v: &str) -> ApiError {
    ApiError::bad_request(format!("invalid {what}: cannot parse \"{v}\" to a valid timestamp"))
}

pub fn now_ns() -> i64 {
    chrono::Utc::now().timestamp_nanos_opt().unwrap_or(i64::MAX)
}

/// Loki's `parseTimestamp`: float seconds (rounded to the millisecond), integer seconds
/// (10 digits or fewer) or nanoseconds, else RFC3339 with optional fraction.
pub fn parse_time(v: &str) -> Option<i64> {
    if v.contains('.') {
        if let Ok(f) = v.parse::<f64>() {
            if !f.is_finite() {
                return None;
            }
            let secs = f.trunc();
            let frac = ((f - secs) * 1000.0).round() / 1000.0;
            return (secs as i64).checked_mul(1_000_000_000)?.checked_add((frac * 1e9).round() as i64);
        }
    }
    if let Ok(n) = v.parse::<i64>() {
        return if v.trim_start_matches('-').len() <= 10 { n.checked_mul(1_000_000_000) } else { Some(n) };
    }
    chrono::DateTime::parse_from_rfc3339(v).ok()?.timestamp_nanos_opt()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loki_timestamp_forms() {
        assert_eq!(parse_time("1768520277464726572"), Some(1768520277464726572));
        assert_eq!(parse_time("1768520277"), Some(1_768_520_277_000_000_000));
        assert_eq!(parse_time("1768520277.5"), Some(1_768_520_277_500_000_000));
        assert_eq!(parse_time("2026-01-15T23:58:37.603096586Z"), Some(1768521517603096586));
        assert_eq!(parse_time("2026-01-16T00:00:00+01:00"), Some(1_768_518_000_000_000_000));
        assert_eq!(parse_time("yesterday"), None);
    }
}
