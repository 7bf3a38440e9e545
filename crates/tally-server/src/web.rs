//! The dashboard: static files under `web/` at the repository root, embedded in the binary
//! with `include_str!` and served at `/` (the page) and `/assets/{file}` (scripts, styles,
//! icon). The page is a hash-routed single-page app (`/#/revenue`), so every page is the
//! one `index.html`; it reads the analytics API with the key the user signs in with.
//!
//! No build step: the files are served exactly as they are in the repository.

use crate::state::AppState;
use axum::extract::Path;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

const INDEX_HTML: &str = include_str!("../../../web/index.html");

/// The dashboard's assets: name, content type, body.
const ASSETS: &[(&str, &str, &str)] = &[
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_str!("../../../web/app.js"),
    ),
    (
        "api.js",
        "text/javascript; charset=utf-8",
        include_str!("../../../web/api.js"),
    ),
    (
        "charts.js",
        "text/javascript; charset=utf-8",
        include_str!("../../../web/charts.js"),
    ),
    (
        "format.js",
        "text/javascript; charset=utf-8",
        include_str!("../../../web/format.js"),
    ),
    (
        "pages.js",
        "text/javascript; charset=utf-8",
        include_str!("../../../web/pages.js"),
    ),
    (
        "style.css",
        "text/css; charset=utf-8",
        include_str!("../../../web/style.css"),
    ),
    (
        "favicon.svg",
        "image/svg+xml",
        include_str!("../../../web/favicon.svg"),
    ),
];

/// Everything the page loads comes from this origin; no inline script or style.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
    img-src 'self' data:; connect-src 'self'; font-src 'self'; object-src 'none'; \
    base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// Routes of the dashboard's pages and assets (public; the data comes from the API with
/// the key the user signs in with).
pub fn routes() -> Router<AppState> {
    router()
}

fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(index))
        .route("/index.html", get(index))
        .route("/assets/{file}", get(asset))
        .route(
            "/favicon.ico",
            get(|| async { asset(Path("favicon.svg".to_string())).await }),
        )
}

/// The asset called `name`: its content type and body.
fn lookup(name: &str) -> Option<(&'static str, &'static str)> {
    ASSETS
        .iter()
        .find(|(n, _, _)| *n == name)
        .map(|(_, ctype, body)| (*ctype, *body))
}

fn respond(ctype: &'static str, body: &'static str) -> Response {
    let mut res = body.into_response();
    let headers = res.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
    // Assets change with the binary; `no-cache` revalidates so an upgrade shows at once.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    res
}

async fn index() -> Response {
    let mut res = respond("text/html; charset=utf-8", INDEX_HTML);
    let headers = res.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    res
}

async fn asset(Path(name): Path<String>) -> Response {
    match lookup(&name) {
        Some((ctype, body)) => respond(ctype, body),
        None => (
            StatusCode::NOT_FOUND,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            "no such dashboard asset",
        )
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    async fn get(path: &str) -> (StatusCode, Option<String>, String) {
        let res = router::<()>()
            .oneshot(Request::get(path).body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = res.status();
        let ctype = res
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap().to_string());
        let body = res.into_body().collect().await.unwrap().to_bytes();
        (status, ctype, String::from_utf8(body.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn index_and_assets_with_their_types() {
        let (status, ctype, body) = get("/").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(ctype.as_deref(), Some("text/html; charset=utf-8"));
        assert!(body.contains("/assets/app.js"));
        let (status, ctype, _) = get("/assets/app.js").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(ctype.as_deref(), Some("text/javascript; charset=utf-8"));
        let (_, ctype, _) = get("/assets/style.css").await;
        assert_eq!(ctype.as_deref(), Some("text/css; charset=utf-8"));
        let (status, _, _) = get("/assets/nope.js").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }

    #[test]
    fn every_module_the_page_imports_is_served() {
        // Each `from "./x.js"` in an embedded script names an embedded asset.
        for (name, _, body) in ASSETS {
            for part in body.split("from \"./").skip(1) {
                let file = &part[..part.find('"').unwrap()];
                assert!(lookup(file).is_some(), "{name} imports {file}, not served");
            }
        }
        for part in INDEX_HTML.split("/assets/").skip(1) {
            let file = &part[..part.find('"').unwrap()];
            assert!(
                lookup(file).is_some(),
                "index.html loads {file}, not served"
            );
        }
    }
}
