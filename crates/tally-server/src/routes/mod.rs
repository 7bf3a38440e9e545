//! Handlers, one module per resource.

pub mod billing;
pub mod customers;
pub mod events;
pub mod meta;
pub mod monthly;
pub mod services;

use axum::http::StatusCode;
use tally_core::model::WriteOutcome;

/// 201 for a record that did not exist, 200 for an update or a repeat.
pub fn write_status(outcome: WriteOutcome) -> StatusCode {
    match outcome {
        WriteOutcome::Created => StatusCode::CREATED,
        WriteOutcome::Updated | WriteOutcome::Unchanged => StatusCode::OK,
    }
}
