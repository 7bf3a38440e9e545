//! The `tally` command: CLI parsing and the jobs behind each subcommand. `main.rs` only
//! calls [`cli::main`].

pub mod bench;
pub mod cli;
pub mod config;
pub mod demo;
pub mod import;
pub mod keys;
pub mod serve;
