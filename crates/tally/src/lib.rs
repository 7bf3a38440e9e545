//! The `tally` command: CLI parsing and the jobs behind each subcommand. `main.rs` only
//! calls [`cli::main`].

pub mod demo;
