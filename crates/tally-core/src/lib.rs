//! tally's domain: the entities it stores, the rules that validate them, exact money and
//! UTC time helpers, and the metric computations. Nothing here does I/O, so every rule can
//! be tested with plain values.

pub mod billing;
pub mod decimal;
pub mod error;
pub mod event;
pub mod forecast;
pub mod input;
pub mod model;
pub mod money;
pub mod pricing;
pub mod time;

pub use error::{FieldError, InputError};
