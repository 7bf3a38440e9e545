//! The 21 analytics endpoints of api.md, computed from stored data by the rules of
//! metrics.md. `revenue` holds the subscription side (MRR and everything built on it,
//! plus the composite summaries and alert rules); `usage` holds the event side (LLM,
//! services, metering).

pub mod params;
pub mod revenue;
pub mod usage;

use crate::state::AppState;
use utoipa_axum::router::OpenApiRouter;

/// Routes of the analytics endpoints, with their OpenAPI descriptions.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(revenue::routes())
        .merge(usage::routes())
}
