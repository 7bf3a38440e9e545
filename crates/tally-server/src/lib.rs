//! tally's HTTP layer: [`app`] builds the router from a state (testable without a socket);
//! [`run`] serves it on a listener until a shutdown future resolves.

pub mod analytics;
pub mod audit;
pub mod auth;
pub mod cache;
pub mod error;
pub mod extract;
pub mod limits;
pub mod routes;
pub mod state;
pub mod views;
pub mod web;

pub use state::{AppState, Clock, ServerConfig};

use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderValue, Method};
use axum::routing::get;
use axum::Router;
use error::ApiError;
use routes::*;
use std::future::Future;
use std::sync::OnceLock;
use tokio::net::TcpListener;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

#[derive(OpenApi)]
#[openapi(
    info(title = "tally", description = "Usage metering and SaaS revenue analytics.", license(name = "Apache-2.0")),
    modifiers(&SecurityAddon),
    security(("bearer" = []), ("api_key" = [])),
    tags(
        (name = "analytics", description = "The 21 analytics endpoints"),
        (name = "entities", description = "Plans, customers, subscriptions, invoices, costs, spend, services"),
        (name = "events", description = "Usage events, health checks, gauges"),
        (name = "meta", description = "Health and readiness"),
        (name = "admin", description = "The audit log (admin keys only)"),
    )
)]
struct ApiDoc;

struct SecurityAddon;

impl utoipa::Modify for SecurityAddon {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{
            ApiKey, ApiKeyValue, Http, HttpAuthScheme, SecurityScheme,
        };
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
        components.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-API-Key"))),
        );
    }
}

/// Every documented route with its handler.
fn api_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(meta::healthz))
        .routes(routes!(meta::readyz))
        .routes(routes!(billing::list_plans))
        .routes(routes!(billing::put_plan, billing::get_plan))
        .routes(routes!(billing::list_subscriptions))
        .routes(routes!(
            billing::put_subscription,
            billing::get_subscription
        ))
        .routes(routes!(billing::post_change))
        .routes(routes!(billing::cancel_subscription))
        .routes(routes!(customers::list_customers))
        .routes(routes!(customers::put_customer, customers::get_customer))
        .routes(routes!(customers::list_invoices))
        .routes(routes!(customers::put_invoice, customers::get_invoice))
        .routes(routes!(services::list_services))
        .routes(routes!(services::put_service, services::get_service))
        .routes(routes!(monthly::post_costs))
        .routes(routes!(monthly::post_spend))
        .routes(routes!(events::post_events))
        .routes(routes!(audit::list_audit))
        .merge(analytics::routes())
}

/// The OpenAPI document, as served at `/openapi.json`.
pub fn openapi() -> utoipa::openapi::OpenApi {
    api_router().split_for_parts().1
}

/// The OpenAPI document rendered once.
pub fn openapi_json() -> &'static str {
    static JSON: OnceLock<String> = OnceLock::new();
    JSON.get_or_init(|| {
        openapi()
            .to_pretty_json()
            .expect("the OpenAPI document serializes")
    })
}

/// The whole application: routes, auth on every route, limits, the analytics cache, CORS
/// and tracing.
pub fn app(state: AppState) -> Router {
    let (router, _) = api_router().split_for_parts();
    let cfg = &state.config;
    let mut router = router
        .route("/openapi.json", get(meta::openapi_json))
        .route("/docs", get(meta::docs_page))
        .merge(web::routes())
        .fallback(|| async { ApiError::NotFound("no such route; see /docs".into()) })
        .method_not_allowed_fallback(|| async {
            ApiError::NotFound("this route does not take that method; see /docs".into())
        })
        // Inside the authorization: a cached answer is checked and counted like any other.
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            cache::serve,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::authorize,
        ))
        .layer(DefaultBodyLimit::max(cfg.max_body_bytes))
        .layer(TimeoutLayer::with_status_code(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            cfg.request_timeout,
        ))
        // Outside the timeout, so a write that timed out is recorded with its 503.
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            audit::record,
        ));
    if !cfg.cors_origins.is_empty() {
        let origins: Vec<HeaderValue> = cfg
            .cors_origins
            .iter()
            .filter_map(|o| o.parse().ok())
            .collect();
        router = router.layer(
            CorsLayer::new()
                .allow_origin(AllowOrigin::list(origins))
                .allow_methods([Method::GET, Method::PUT, Method::POST, Method::DELETE])
                .allow_headers([
                    axum::http::header::AUTHORIZATION,
                    axum::http::header::CONTENT_TYPE,
                    "x-api-key".parse().expect("header name"),
                ]),
        );
    }
    router.layer(TraceLayer::new_for_http()).with_state(state)
}

/// Most headers in one HTTP/1 request (431 beyond).
pub const MAX_HEADERS: usize = 64;
/// Largest HTTP/1 request head (request line and headers) in bytes (431 beyond).
pub const MAX_HEADER_BYTES: usize = 64 * 1024;
/// Most concurrent HTTP/2 streams on one connection.
pub const MAX_H2_STREAMS: u32 = 64;

/// Serves `app(state)` on `listener` until `shutdown` resolves, then drains requests in
/// flight.
///
/// Each connection takes one of `max_connections` permits (the next is accepted only
/// when one is free, so excess clients wait in the kernel's backlog instead of costing
/// memory); a connection that does not deliver a whole request head within
/// `header_read_timeout` (a slow client, or an idle keep-alive) is closed; request heads
/// are limited to [`MAX_HEADERS`] headers and [`MAX_HEADER_BYTES`] bytes.
pub async fn run(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use axum::extract::ConnectInfo;
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
    use hyper_util::server::conn::auto::Builder;
    use hyper_util::server::graceful::GracefulShutdown;
    use hyper_util::service::TowerToHyperService;
    use tower::ServiceExt;

    let cfg = state.config.clone();
    let app = app(state);
    let permits = std::sync::Arc::new(tokio::sync::Semaphore::new(cfg.max_connections.max(1)));
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(cfg.header_read_timeout)
        .max_headers(MAX_HEADERS)
        // The read buffer bounds a request head; bodies stream through it.
        .max_buf_size(MAX_HEADER_BYTES);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(MAX_H2_STREAMS)
        .max_header_list_size(MAX_HEADER_BYTES as u32)
        .keep_alive_interval(Some(std::time::Duration::from_secs(30)))
        .keep_alive_timeout(std::time::Duration::from_secs(20));
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            _ = &mut shutdown => break,
            p = permits.clone().acquire_owned() => p.expect("the semaphore is never closed"),
        };
        let (stream, addr) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors or a connection reset before accept: wait a
                    // moment rather than spin, and keep serving.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        // Dead peers are found by the kernel instead of holding a permit forever.
        let _ = socket2::SockRef::from(&stream).set_tcp_keepalive(
            &socket2::TcpKeepalive::new()
                .with_time(std::time::Duration::from_secs(60))
                .with_interval(std::time::Duration::from_secs(10)),
        );
        let svc =
            app.clone()
                .map_request(move |mut req: axum::http::Request<hyper::body::Incoming>| {
                    req.extensions_mut().insert(ConnectInfo(addr));
                    req.map(axum::body::Body::new)
                });
        let conn = builder
            .serve_connection(TokioIo::new(stream), TowerToHyperService::new(svc))
            .into_owned();
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, client = %addr, "connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    // Requests in flight finish (each is bounded by the request timeout); idle
    // connections close at once.
    let grace = cfg.request_timeout + cfg.header_read_timeout;
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("connections still open after {grace:?}; stopping anyway");
    }
    Ok(())
}
