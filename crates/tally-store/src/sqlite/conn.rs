//! [`Conn`] on SQLite.

use crate::db::{Arg, Conn, Row, Val};
use crate::{StoreError, StoreResult};
use async_trait::async_trait;
use sqlx::pool::PoolConnection;
use sqlx::sqlite::{SqliteArguments, SqliteConnection, SqliteRow};
use sqlx::{Row as _, Sqlite, Transaction, TypeInfo as _, ValueRef as _};

pub(super) enum SqliteConn {
    Plain(PoolConnection<Sqlite>),
    Tx(Transaction<'static, Sqlite>),
}

impl SqliteConn {
    fn conn(&mut self) -> &mut SqliteConnection {
        match self {
            SqliteConn::Plain(c) => c,
            SqliteConn::Tx(t) => t,
        }
    }
}

fn query<'q>(sql: &'q str, args: Vec<Arg>) -> sqlx::query::Query<'q, Sqlite, SqliteArguments<'q>> {
    args.into_iter().fold(sqlx::query(sql), |q, a| match a {
        Arg::Text(v) => q.bind(v),
        Arg::Int(v) => q.bind(v),
        Arg::Bool(v) => q.bind(v),
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
        query(sql, args)
            .fetch_all(self.conn())
            .await?
            .iter()
            .map(decode)
            .collect()
    }

    async fn exec(&mut self, sql: &str, args: Vec<Arg>) -> StoreResult<u64> {
        Ok(query(sql, args).execute(self.conn()).await?.rows_affected())
    }

    async fn commit(self: Box<Self>) -> StoreResult<()> {
        match *self {
            SqliteConn::Plain(_) => Ok(()),
            SqliteConn::Tx(t) => Ok(t.commit().await?),
        }
    }
}
