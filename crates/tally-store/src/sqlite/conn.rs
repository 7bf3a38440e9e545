//! [`Conn`] on SQLite.

use crate::db::{Arg, Conn, Row, Val};
use crate::{StoreError, StoreResult};
use async_trait::async_trait;
use sqlx::pool::PoolConnection;
use sqlx::sqlite::{SqliteArguments, SqliteConnection, SqliteRow};
use sqlx::{Row as _, Sqlite, Transaction, TypeInfo as _, ValueRef as _};
use tokio::sync::OwnedMutexGuard;

pub(super) enum SqliteConn {
    Plain(PoolConnection<Sqlite>),
    Tx(Transaction<'static, Sqlite>),
    /// A write transaction, holding the process's write lock (`events::WriteLock`) until
    /// it ends. Dropped without a commit, sqlx rolls back on its worker thread after the
    /// lock is released; a writer that starts meanwhile waits in SQLite's busy handler
    /// for that moment (only after a failed write).
    Write(Transaction<'static, Sqlite>, OwnedMutexGuard<()>),
}

impl SqliteConn {
    pub(super) fn conn(&mut self) -> &mut SqliteConnection {
        match self {
            SqliteConn::Plain(c) => c,
            SqliteConn::Tx(t) | SqliteConn::Write(t, _) => t,
        }
    }
}

/// The shared SQL numbers its parameters `$1, $2, …` (PostgreSQL's form). SQLite reads
/// `$1` as a *named* parameter, and both its parser (which looks each new name up in a
/// list) and sqlx's binding (which asks each parameter's name, another list walk) are
/// quadratic in their number: a tier-attribution statement with 12,500 parameters spent
/// ~0.5 s there, against 40 ms for the same statement with anonymous `?`. So each `$N`
/// outside literals, quoted names and comments becomes `?`, and the arguments are laid
/// out in the order the placeholders appear (a `$N` used twice is bound twice).
fn positional(sql: &str, args: Vec<Arg>) -> (String, Vec<Arg>) {
    if !sql.contains('$') {
        return (sql.to_owned(), args);
    }
    let b = sql.as_bytes();
    let mut out = String::with_capacity(sql.len());
    let mut ordered = Vec::with_capacity(args.len());
    // Start of the text not yet copied to `out`.
    let mut copied = 0;
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            q @ (b'\'' | b'"') => {
                // A doubled quote inside closes and reopens: same result.
                i += 1;
                while i < b.len() && b[i] != q {
                    i += 1;
                }
                i += 1;
            }
            b'-' if b.get(i + 1) == Some(&b'-') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i + 1 < b.len() && !(b[i] == b'*' && b[i + 1] == b'/') {
                    i += 1;
                }
                i += 2;
            }
            b'$' if b.get(i + 1).is_some_and(u8::is_ascii_digit) => {
                let start = i;
                i += 1;
                while i < b.len() && b[i].is_ascii_digit() {
                    i += 1;
                }
                let n: usize = sql[start + 1..i].parse().unwrap_or(0);
                match n.checked_sub(1).and_then(|k| args.get(k)) {
                    Some(a) => {
                        out.push_str(&sql[copied..start]);
                        out.push('?');
                        ordered.push(a.clone());
                        copied = i;
                    }
                    // Not ours to rewrite: SQLite reports the unbound parameter.
                    None => continue,
                }
            }
            _ => i += 1,
        }
    }
    out.push_str(&sql[copied.min(sql.len())..]);
    (out, ordered)
}

fn query<'q>(sql: &'q str, args: Vec<Arg>) -> sqlx::query::Query<'q, Sqlite, SqliteArguments<'q>> {
    args.into_iter().fold(sqlx::query(sql), |q, a| match a {
        Arg::Text(v) => q.bind(v),
        Arg::Int(v) => q.bind(v),
        Arg::Bool(v) => q.bind(v),
        Arg::Bytes(v) => q.bind(v),
    })
}

/// Reads each value by its storage class (SQLite types values, not columns).
fn decode(row: &SqliteRow) -> StoreResult<Row> {
    let mut vals = Vec::with_capacity(row.len());
    for i in 0..row.len() {
        let raw = row.try_get_raw(i)?;
        let val = if raw.is_null() {
            Val::Null
        } else {
            match raw.type_info().name() {
                "INTEGER" => Val::Int(row.try_get_unchecked(i)?),
                "REAL" => Val::Float(row.try_get_unchecked(i)?),
                "TEXT" => Val::Text(row.try_get_unchecked(i)?),
                "BLOB" => Val::Bytes(row.try_get_unchecked(i)?),
                other => {
                    return Err(StoreError::Database(sqlx::Error::Decode(
                        format!("column {i}: unexpected SQLite type {other}").into(),
                    )))
                }
            }
        };
        vals.push(val);
    }
    Ok(Row(vals))
}

#[async_trait]
impl Conn for SqliteConn {
    async fn rows(&mut self, sql: &str, args: Vec<Arg>) -> StoreResult<Vec<Row>> {
        let (sql, args) = positional(sql, args);
        query(&sql, args)
            .fetch_all(self.conn())
            .await?
            .iter()
            .map(decode)
            .collect()
    }

    async fn exec(&mut self, sql: &str, args: Vec<Arg>) -> StoreResult<u64> {
        let (sql, args) = positional(sql, args);
        Ok(query(&sql, args)
            .execute(self.conn())
            .await?
            .rows_affected())
    }

    async fn commit(self: Box<Self>) -> StoreResult<()> {
        match *self {
            SqliteConn::Plain(_) => Ok(()),
            SqliteConn::Tx(t) => Ok(t.commit().await?),
            SqliteConn::Write(t, turn) => {
                t.commit().await?;
                drop(turn);
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(args: &[Arg]) -> Vec<String> {
        args.iter()
            .map(|a| match a {
                Arg::Text(v) => v.clone().unwrap_or_default(),
                Arg::Int(v) => v.map_or_else(String::new, |v| v.to_string()),
                Arg::Bool(v) => v.map_or_else(String::new, |v| v.to_string()),
                Arg::Bytes(v) => format!("{v:?}"),
            })
            .collect()
    }

    #[test]
    fn numbered_parameters_become_positional_in_order_of_appearance() {
        let args = vec![Arg::from("a"), Arg::Int(Some(2)), Arg::from("c")];
        let (sql, out) = positional("SELECT $3, $1 WHERE x = $2 OR y = $1", args);
        assert_eq!(sql, "SELECT ?, ? WHERE x = ? OR y = ?");
        assert_eq!(texts(&out), ["c", "a", "2", "a"]);
    }

    #[test]
    fn dollars_in_literals_names_and_comments_are_left_alone() {
        let args = vec![Arg::from("a"), Arg::from("b")];
        let (sql, out) = positional(
            "SELECT '$1', 'it''s $2', \"col$1\" -- $2\n, $2 /* $1 */, $10, $1",
            args,
        );
        assert_eq!(
            sql,
            "SELECT '$1', 'it''s $2', \"col$1\" -- $2\n, ? /* $1 */, $10, ?"
        );
        assert_eq!(texts(&out), ["b", "a"]);
    }

    #[test]
    fn text_without_placeholders_is_unchanged() {
        let (sql, out) = positional("SELECT 1", vec![]);
        assert_eq!(sql, "SELECT 1");
        assert!(out.is_empty());
    }
}
