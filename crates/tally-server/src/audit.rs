//! The audit log: every write and every denied request (401, 403, 429) is recorded with
//! the key that made it (when known), the method, the route template, the status, the
//! time and the client address; admins read it at `GET /api/v1/admin/audit`.
//!
//! Entries never hold a secret, a body or a query string: only the route template (or,
//! for an unknown route, the path, cut to [`MAX_PATH`] bytes).

use crate::error::{ApiResult, ErrorBody};
use crate::extract::Query;
use crate::state::AppState;
use crate::views::{ListPage, ListParams};
use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use axum::Json;
use serde::Serialize;
use std::net::{IpAddr, SocketAddr};
use tally_store::AuditEntry;
use utoipa::ToSchema;

/// Put into a response's extensions by `auth::authorize`: the id of the key the request
/// presented, once it is known to exist.
#[derive(Debug, Clone)]
pub struct AuditKey(pub String);

/// Longest raw path recorded for a request that matched no route.
pub const MAX_PATH: usize = 200;

/// The client's address, when the server was started with connection info (tests that
/// call the router directly have none).
pub fn client_ip(req: &Request) -> Option<IpAddr> {
    req.extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
}

fn is_write(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

fn is_denied(status: StatusCode) -> bool {
    matches!(
        status,
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN | StatusCode::TOO_MANY_REQUESTS
    )
}

/// Middleware: appends one entry for each write and each denied request, after the
/// response's status is known and before it is sent.
pub async fn record(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let route = match req.extensions().get::<MatchedPath>() {
        Some(m) => m.as_str().to_string(),
        None => {
            let mut p = req.uri().path().to_string();
            if p.len() > MAX_PATH {
                let mut cut = MAX_PATH;
                while !p.is_char_boundary(cut) {
                    cut -= 1;
                }
                p.truncate(cut);
            }
            p
        }
    };
    let client = client_ip(&req).map(|ip| ip.to_string());
    let resp = next.run(req).await;
    let status = resp.status();
    if is_write(&method) || is_denied(status) {
        let entry = AuditEntry {
            id: 0,
            at: state.clock.now(),
            key_id: resp.extensions().get::<AuditKey>().map(|k| k.0.clone()),
            method: method.to_string(),
            route,
            status: status.as_u16(),
            client,
        };
        if let Err(e) = state.store.append_audit(&entry).await {
            // The request itself is done; losing its audit line is logged, not answered.
            tracing::error!(error = %e, route = %entry.route, "could not append to the audit log");
        }
    }
    resp
}

/// One audit log entry.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditView {
    /// Increasing with time.
    pub id: i64,
    /// When the request was answered (RFC 3339, UTC).
    pub at: String,
    /// The key presented, when it exists (absent for a missing or unknown key).
    pub key_id: Option<String>,
    pub method: String,
    /// The route template, such as `/api/v1/plans/{id}`, or the path of an unknown route.
    pub route: String,
    pub status: u16,
    /// The client's IP address.
    pub client: Option<String>,
}

impl From<AuditEntry> for AuditView {
    fn from(e: AuditEntry) -> Self {
        AuditView {
            id: e.id,
            at: tally_core::time::format_micros(e.at),
            key_id: e.key_id,
            method: e.method,
            route: e.route,
            status: e.status,
            client: e.client,
        }
    }
}

/// The audit log, newest first (admin only).
#[utoipa::path(get, path = "/api/v1/admin/audit", tag = "admin", params(ListParams),
    responses((status = 200, body = ListPage<AuditView>), (status = 422, body = ErrorBody)))]
pub async fn list_audit(
    State(s): State<AppState>,
    Query(q): Query<ListParams>,
) -> ApiResult<Json<ListPage<AuditView>>> {
    let page = s.store.list_audit(&q.page()?).await?;
    Ok(Json(ListPage::map(page, AuditView::from)))
}
