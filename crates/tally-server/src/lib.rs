//! tally's HTTP layer: [`app`] builds the router from a state (testable without a socket);
//! [`run`] serves it on a listener until a shutdown future resolves.

pub mod analytics;
pub mod auth;
pub mod error;
pub mod extract;
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

/// The whole application: routes, auth on every route, limits, CORS and tracing.
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
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::authorize,
        ))
        .layer(DefaultBodyLimit::max(cfg.max_body_bytes))
        .layer(TimeoutLayer::with_status_code(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            cfg.request_timeout,
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

/// Serves `app(state)` on `listener` until `shutdown` resolves, then drains requests in
/// flight.
pub async fn run(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = app(state).into_make_service_with_connect_info::<std::net::SocketAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}
