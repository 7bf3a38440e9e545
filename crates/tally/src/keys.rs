//! `tally keys`: create, list and revoke API keys.

use crate::cli::KeysCommand;
use anyhow::{bail, Result};
use tally_core::time::{format_micros, to_micros};
use tally_server::auth::generate_key;
use tally_store::{Role, Store};

fn now() -> i64 {
    to_micros(chrono::Utc::now())
}

/// Creates a key and returns its secret (to be shown once).
pub async fn create(store: &dyn Store, role: Role, name: &str) -> Result<(String, String)> {
    let (key, secret) = generate_key(name, role, now());
    store.put_api_key(&key).await?;
    Ok((key.id, secret))
}

/// An installation that starts with no key gets one admin key, printed once.
pub async fn ensure_first_key(store: &dyn Store) -> Result<()> {
    if store
        .list_api_keys()
        .await?
        .iter()
        .any(|k| k.revoked_at.is_none())
    {
        return Ok(());
    }
    let (id, secret) = create(store, Role::Admin, "first admin key").await?;
    eprintln!("\nNo API key existed, so tally created an admin key ({id}). It is shown only this once:\n\n    {secret}\n");
    Ok(())
}

pub async fn run(store: &dyn Store, command: KeysCommand) -> Result<()> {
    match command {
        KeysCommand::Create { role, name } => {
            let Some(role) = Role::parse(&role) else {
                bail!("role `{role}` is not one of {}", Role::ACCEPTED)
            };
            if name.trim().is_empty() {
                bail!("--name must not be empty");
            }
            let (id, secret) = create(store, role, &name).await?;
            println!(
                "created {} key {id} ({name}); its secret is shown only this once:\n\n    {secret}",
                role.as_str()
            );
        }
        KeysCommand::List => {
            println!(
                "{:<18} {:<8} {:<24} {:<26} name",
                "id", "role", "created", "revoked"
            );
            for k in store.list_api_keys().await? {
                println!(
                    "{:<18} {:<8} {:<24} {:<26} {}",
                    k.id,
                    k.role.as_str(),
                    format_micros(k.created_at),
                    k.revoked_at
                        .map(format_micros)
                        .unwrap_or_else(|| "-".into()),
                    k.name
                );
            }
        }
        KeysCommand::Revoke { id } => {
            store.revoke_api_key(&id, now()).await?;
            println!("revoked {id}");
        }
    }
    Ok(())
}
