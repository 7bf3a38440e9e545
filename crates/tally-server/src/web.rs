//! The dashboard: static files embedded in the binary, served at `/` (in progress).

use crate::state::AppState;
use axum::Router;

/// Routes of the dashboard's pages and assets (public; the data comes from the API with
/// the key the user signs in with).
pub fn routes() -> Router<AppState> {
    Router::new()
}
