//! The data version (migration 0003): counters raised in the same transaction as the
//! writes they cover, read by the caches of the server.

use crate::db::Conn;
use crate::{DataVersion, StoreError, StoreResult, WriteOutcome};

/// A counter of `data_version`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Counter {
    Entities,
    Events,
}

impl Counter {
    /// The statement raising the counter: a literal with no parameters, so that each
    /// backend's ingestion can run it on its own transaction type too.
    const fn bump_sql(self) -> &'static str {
        match self {
            Counter::Entities => {
                "UPDATE data_version SET version = version + 1 WHERE name = 'entities'"
            }
            Counter::Events => {
                "UPDATE data_version SET version = version + 1 WHERE name = 'events'"
            }
        }
    }
}

/// Raises the events counter; ingestion runs it as the last statement before its commit,
/// so on PostgreSQL the row lock it takes is held only for the commit.
pub(crate) const BUMP_EVENTS: &str = Counter::Events.bump_sql();

/// Raises `counter` by one. Run it inside the write transaction it covers, last (see
/// [`BUMP_EVENTS`]).
pub(crate) async fn bump(conn: &mut dyn Conn, counter: Counter) -> StoreResult<()> {
    match conn.exec(counter.bump_sql(), vec![]).await? {
        1 => Ok(()),
        // The row is inserted by the migration and never deleted.
        _ => Err(StoreError::Database(sqlx::Error::RowNotFound)),
    }
}

/// Both counters, in one statement (so from one snapshot).
pub(crate) async fn read(conn: &mut dyn Conn) -> StoreResult<DataVersion> {
    let sql = "SELECT \
        (SELECT version FROM data_version WHERE name = 'entities'), \
        (SELECT version FROM data_version WHERE name = 'events')";
    let row = conn
        .row(sql, vec![])
        .await?
        .ok_or(StoreError::Database(sqlx::Error::RowNotFound))?;
    Ok(DataVersion {
        entities: row.int(0)?,
        events: row.int(1)?,
    })
}

/// Whether a write's result says it changed stored data: only then is its counter raised,
/// so an idempotent retry does not empty the caches.
pub(crate) trait Changed {
    fn changed(&self) -> bool;
}

impl Changed for WriteOutcome {
    fn changed(&self) -> bool {
        *self != WriteOutcome::Unchanged
    }
}

impl Changed for Vec<WriteOutcome> {
    fn changed(&self) -> bool {
        self.iter().any(Changed::changed)
    }
}

/// Writes that answer `()` either changed something or failed (a delete of a missing row
/// is `NotFound`, which rolls back).
impl Changed for () {
    fn changed(&self) -> bool {
        true
    }
}
