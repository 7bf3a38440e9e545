//! [`Conn`] on PostgreSQL.

use crate::db::{Arg, Conn, Row, Val};
use crate::{StoreError, StoreResult};
use async_trait::async_trait;
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgArguments, PgConnection, PgRow};
use sqlx::{Postgres, Row as _, Transaction, TypeInfo as _, ValueRef as _};

pub(super) enum PgConn {
    Plain(PoolConnection<Postgres>),
    Tx(Transaction<'static, Postgres>),
}

impl PgConn {
    pub(super) fn conn(&mut self) -> &mut PgConnection {
        match self {
            PgConn::Plain(c) => c,
            PgConn::Tx(t) => t,
        }
    }
}

fn query<'q>(sql: &'q str, args: Vec<Arg>) -> sqlx::query::Query<'q, Postgres, PgArguments> {
    args.into_iter().fold(sqlx::query(sql), |q, a| match a {
        Arg::Text(v) => q.bind(v),
        Arg::Int(v) => q.bind(v),
        Arg::Bool(v) => q.bind(v),
        Arg::Bytes(v) => q.bind(v),
    })
}

/// Reads each value by its column's type. Integers of every width come back as `Int`.
fn decode(row: &PgRow) -> StoreResult<Row> {
    let mut vals = Vec::with_capacity(row.len());
    for i in 0..row.len() {
        let raw = row.try_get_raw(i)?;
        let val = if raw.is_null() {
            Val::Null
        } else {
            match raw.type_info().name() {
                "INT8" => Val::Int(row.try_get_unchecked(i)?),
                "INT4" => Val::Int(row.try_get_unchecked::<i32, _>(i)?.into()),
                "INT2" => Val::Int(row.try_get_unchecked::<i16, _>(i)?.into()),
                "FLOAT8" => Val::Float(row.try_get_unchecked(i)?),
                "TEXT" | "VARCHAR" => Val::Text(row.try_get_unchecked(i)?),
                "BYTEA" => Val::Bytes(row.try_get_unchecked(i)?),
                "BOOL" => Val::Bool(row.try_get_unchecked(i)?),
                other => {
                    return Err(StoreError::Database(sqlx::Error::Decode(
                        format!("column {i}: unexpected PostgreSQL type {other}").into(),
                    )))
                }
            }
        };
        vals.push(val);
    }
    Ok(Row(vals))
}

#[async_trait]
impl Conn for PgConn {
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
            PgConn::Plain(_) => Ok(()),
            PgConn::Tx(t) => Ok(t.commit().await?),
        }
    }
}
