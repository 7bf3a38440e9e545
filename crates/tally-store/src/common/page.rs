//! Keyset pagination: pages in key order, the cursor being the last key of a page.

use crate::db::{Arg, Conn, Row};
use crate::{decode_cursor, encode_cursor, Page, PageRequest, StoreError, StoreResult};

pub(crate) const DEFAULT_LIMIT: u32 = 100;
pub(crate) const MAX_LIMIT: u32 = 1000;

pub(crate) fn limit(page: &PageRequest) -> u32 {
    match page.limit {
        0 => DEFAULT_LIMIT,
        n => n.min(MAX_LIMIT),
    }
}

/// The key the page starts after, if any.
pub(crate) fn after(page: &PageRequest) -> StoreResult<Option<String>> {
    page.cursor
        .as_deref()
        .map(|c| decode_cursor(c).ok_or(StoreError::BadCursor))
        .transpose()
}

/// One page of `SELECT {cols} FROM {table}` in `key` order. Reads one row more than the
/// page holds to know whether another page follows.
pub(crate) async fn fetch<T>(
    conn: &mut dyn Conn,
    table: &str,
    cols: &str,
    key: &str,
    page: &PageRequest,
    decode: impl Fn(&Row) -> StoreResult<T>,
    key_of: impl Fn(&T) -> &str,
) -> StoreResult<Page<T>> {
    let limit = limit(page);
    let fetch = i64::from(limit) + 1;
    let rows = match after(page)? {
        None => {
            conn.rows(
                &format!("SELECT {cols} FROM {table} ORDER BY {key} LIMIT $1"),
                vec![Arg::from(fetch)],
            )
            .await?
        }
        Some(after) => {
            let sql =
                format!("SELECT {cols} FROM {table} WHERE {key} > $1 ORDER BY {key} LIMIT $2");
            conn.rows(&sql, vec![Arg::from(after), Arg::from(fetch)])
                .await?
        }
    };
    let mut items = rows.iter().map(decode).collect::<StoreResult<Vec<T>>>()?;
    let next_cursor = finish(&mut items, limit, |t| encode_cursor(key_of(t)));
    Ok(Page { items, next_cursor })
}

/// Trims the extra row and returns the next cursor when there was one.
pub(crate) fn finish<T>(
    items: &mut Vec<T>,
    limit: u32,
    cursor_of: impl Fn(&T) -> String,
) -> Option<String> {
    if items.len() <= limit as usize {
        return None;
    }
    items.truncate(limit as usize);
    items.last().map(cursor_of)
}
