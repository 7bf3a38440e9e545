//! API keys and who may call what (api.md "Access").
//!
//! Every request passes [`authorize`]: the access a route needs is decided in one place,
//! [`required_access`], from the method and path, so a route added later falls under a
//! rule by construction instead of by remembering to add a guard.

use crate::audit::AuditKey;
use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::{Request, State};
use axum::http::{header, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tally_store::{ApiKey, Role};

/// What a route demands of the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Health, readiness, the API description and its docs page, the dashboard's files.
    Public,
    /// Reading analytics and entities: analyst or admin.
    Read,
    /// Writing events and entities: ingest or admin.
    Write,
    /// Managing keys, alert rules and reading the audit log: admin.
    Admin,
}

/// The access `method path` needs.
pub fn required_access(method: &Method, path: &str) -> Access {
    if !path.starts_with("/api/") {
        return Access::Public;
    }
    if path.starts_with("/api/v1/admin/") {
        return Access::Admin;
    }
    let reading = method == Method::GET || method == Method::HEAD;
    if path.starts_with("/api/v1/alert-rules") && !reading {
        return Access::Admin;
    }
    if reading {
        Access::Read
    } else {
        Access::Write
    }
}

fn allows(role: Role, access: Access) -> bool {
    match access {
        Access::Public => true,
        Access::Read => matches!(role, Role::Admin | Role::Analyst),
        Access::Write => matches!(role, Role::Admin | Role::Ingest),
        Access::Admin => role == Role::Admin,
    }
}

/// The caller, once authenticated; handlers and the audit log read it from extensions.
#[derive(Debug, Clone)]
pub struct Caller {
    pub key_id: String,
    pub role: Role,
}

/// SHA-256 of a secret, hex: what the store keeps.
pub fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// A new key's id and secret. The secret is 160 random bits; it is shown once.
pub fn generate_key(name: &str, role: Role, now: tally_core::time::Micros) -> (ApiKey, String) {
    let mut rng = rand::rngs::OsRng;
    let mut secret = [0u8; 20];
    rng.fill_bytes(&mut secret);
    let mut id = [0u8; 6];
    rng.fill_bytes(&mut id);
    let secret = format!("tally_{}", hex::encode(secret));
    let key = ApiKey {
        id: format!("key_{}", hex::encode(id)),
        name: name.to_string(),
        role,
        secret_hash: hash_secret(&secret),
        created_at: now,
        revoked_at: None,
    };
    (key, secret)
}

fn presented_secret(headers: &axum::http::HeaderMap) -> Option<&str> {
    if let Some(v) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        let (scheme, rest) = v.split_once(' ')?;
        return scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim());
    }
    headers
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}

/// Looks the presented secret up; `Unauthorized` when missing, unknown or revoked.
pub async fn authenticate(
    state: &AppState,
    headers: &axum::http::HeaderMap,
) -> Result<Caller, ApiError> {
    let secret = presented_secret(headers).ok_or_else(|| {
        ApiError::Unauthorized(
            "missing API key; send `Authorization: Bearer <key>` or `X-API-Key: <key>`".into(),
        )
    })?;
    let hash = hash_secret(secret);
    let key = state.store.find_api_key(&hash).await?;
    // The lookup is by hash, so its timing says nothing about the secret; the compare
    // below stays constant-time anyway in case a store ever matches loosely.
    match key {
        Some(k)
            if bool::from(k.secret_hash.as_bytes().ct_eq(hash.as_bytes()))
                && k.revoked_at.is_none() =>
        {
            Ok(Caller {
                key_id: k.id,
                role: k.role,
            })
        }
        _ => Err(ApiError::Unauthorized("unknown or revoked API key".into())),
    }
}

/// Middleware: enforces [`required_access`] and the rate limits on every request.
///
/// A request without a valid key costs its client address one failure token (429 once
/// they run out); a request with a valid key costs that key one token of its own bucket,
/// whether or not its role then lets it in. The key id goes into the response's
/// extensions for the audit log.
pub async fn authorize(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let access = required_access(req.method(), req.uri().path());
    if access == Access::Public {
        return next.run(req).await;
    }
    let caller = match authenticate(&state, req.headers()).await {
        Ok(c) => c,
        Err(e @ ApiError::Unauthorized(_)) => {
            if let Err(limited) = state.limits.check_failure(crate::audit::client_ip(&req)) {
                return limited.into_response();
            }
            return e.into_response();
        }
        Err(e) => return e.into_response(),
    };
    let key = AuditKey(caller.key_id.clone());
    let mut resp = if let Err(limited) = state.limits.check_key(&caller.key_id) {
        limited.into_response()
    } else if !allows(caller.role, access) {
        ApiError::Forbidden(format!(
            "this key has role `{}`, which may not {} `{}`",
            caller.role.as_str(),
            match access {
                Access::Read => "read",
                Access::Write => "write to",
                _ => "use",
            },
            req.uri().path()
        ))
        .into_response()
    } else {
        req.extensions_mut().insert(caller);
        next.run(req).await
    };
    resp.extensions_mut().insert(key);
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_by_method_and_path() {
        assert_eq!(required_access(&Method::GET, "/healthz"), Access::Public);
        assert_eq!(
            required_access(&Method::GET, "/api/v1/analytics/revenue/mrr"),
            Access::Read
        );
        assert_eq!(
            required_access(&Method::PUT, "/api/v1/plans/p1"),
            Access::Write
        );
        assert_eq!(
            required_access(&Method::POST, "/api/v1/events"),
            Access::Write
        );
        assert_eq!(
            required_access(&Method::PUT, "/api/v1/alert-rules/churn_rate"),
            Access::Admin
        );
        assert_eq!(
            required_access(&Method::GET, "/api/v1/alert-rules"),
            Access::Read
        );
        assert_eq!(
            required_access(&Method::GET, "/api/v1/admin/audit"),
            Access::Admin
        );
    }

    #[test]
    fn roles() {
        assert!(allows(Role::Ingest, Access::Write) && !allows(Role::Ingest, Access::Read));
        assert!(allows(Role::Analyst, Access::Read) && !allows(Role::Analyst, Access::Write));
        assert!(allows(Role::Admin, Access::Admin) && !allows(Role::Analyst, Access::Admin));
    }

    #[test]
    fn secrets_hash_and_differ() {
        let (k1, s1) = generate_key("a", Role::Admin, 0);
        let (k2, s2) = generate_key("a", Role::Admin, 0);
        assert_ne!(s1, s2);
        assert_ne!(k1.id, k2.id);
        assert_eq!(k1.secret_hash, hash_secret(&s1));
        assert_eq!(k1.secret_hash.len(), 64);
        assert!(!k1.secret_hash.contains(&s1));
    }
}
