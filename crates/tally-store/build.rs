//! `sqlx::migrate!` embeds the migration files at compile time, and stable Rust cannot
//! tell cargo which files a macro read: without this, a new migration file would not
//! rebuild the crate.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
