//! Event ingestion shared by both backends: group commit (one transaction and one
//! durable commit for the batches that arrive together) and the rollup deltas (what a
//! group of new events adds to the daily rollups, added up in Rust), and the customer
//! activity bitmaps.
//!
//! Declared from `sqlite/mod.rs` (`#[path]`) until `lib.rs` declares it at the crate root.

pub(crate) mod activity;
pub(crate) mod group_commit;
pub(crate) mod rollup_delta;
