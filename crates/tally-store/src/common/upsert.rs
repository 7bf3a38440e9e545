//! Race-free upserts that report what they did.

use crate::db::{Arg, Conn};
use crate::{StoreResult, WriteOutcome};

/// Inserts a row, or updates it when its content differs. `args` holds the key columns'
/// values, then the other columns', in the order of `keys` and `cols`.
///
/// Insert-or-nothing first, then an update guarded by `IS DISTINCT FROM`: each statement
/// is atomic against concurrent writers (PostgreSQL waits on the conflicting row), so two
/// processes writing the same row never fail and exactly one of them sees `Created`.
pub(crate) async fn upsert(
    conn: &mut dyn Conn,
    table: &str,
    keys: &[&str],
    cols: &[&str],
    args: Vec<Arg>,
) -> StoreResult<WriteOutcome> {
    debug_assert_eq!(args.len(), keys.len() + cols.len());
    let all: Vec<&str> = keys.iter().chain(cols).copied().collect();
    let placeholders: Vec<String> = (1..=all.len()).map(|i| format!("${i}")).collect();
    let insert = format!(
        "INSERT INTO {table} ({}) VALUES ({}) ON CONFLICT ({}) DO NOTHING",
        all.join(", "),
        placeholders.join(", "),
        keys.join(", ")
    );
    if conn.exec(&insert, args.clone()).await? == 1 {
        return Ok(WriteOutcome::Created);
    }
    let n = keys.len();
    let set: Vec<String> = cols
        .iter()
        .enumerate()
        .map(|(i, c)| format!("{c} = ${}", n + i + 1))
        .collect();
    let key_match: Vec<String> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| format!("{k} = ${}", i + 1))
        .collect();
    let differs: Vec<String> = cols
        .iter()
        .enumerate()
        .map(|(i, c)| format!("{c} IS DISTINCT FROM ${}", n + i + 1))
        .collect();
    let update = format!(
        "UPDATE {table} SET {} WHERE {} AND ({})",
        set.join(", "),
        key_match.join(" AND "),
        differs.join(" OR ")
    );
    Ok(if conn.exec(&update, args).await? == 0 {
        WriteOutcome::Unchanged
    } else {
        WriteOutcome::Updated
    })
}
