//! Which customers were active on which day (`customer_activity`, migration 0008): one
//! roaring bitmap of customer numbers per (kind, day, service, chunk of 65,536 numbers),
//! added to in the transaction that stores the events, so that a span's distinct
//! customers are the union of its days' bitmaps however many customers there are.
//!
//! Both backends write through [`mark`], and the store's backfill of older data
//! (`common::activity`) through [`unite`]: a bitmap is read, united with the new numbers
//! and written back. On PostgreSQL several processes may do that at once, so the rows are
//! first created if missing and then locked in key order (`FOR UPDATE`) before they are
//! read: every writer takes its locks in the same order and none loses another's bits.
//! SQLite has one writer at a time.

use crate::db::{Arg, Conn};
use crate::{StoreError, StoreResult};
use roaring::RoaringBitmap;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;
use tally_core::event::Event;
use tally_core::time::MICROS_PER_DAY;

/// Customer numbers per bitmap row (2^16): a chunk's bitmap is at most about 8 KiB.
pub(crate) const CHUNK_BITS: u32 = 16;
/// Customer ids per statement (well under both stores' parameter limits).
const PER_STATEMENT: usize = 4_000;
/// Bitmap keys per statement: their conditions are OR-ed, and SQLite limits the depth of
/// an expression tree to 1,000.
const KEYS_PER_STATEMENT: usize = 200;

/// A row of `customer_activity`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct ActivityKey<'a> {
    pub kind: &'a str,
    pub day: i64,
    /// '' for events without a service.
    pub service: &'a str,
    pub chunk: i64,
}

/// One customer active on one day: `(kind, day, service, customer_id)`, with '' for a
/// missing service.
pub(crate) type Mark<'a> = (&'a str, i64, &'a str, &'a str);

/// The marks of newly stored `events`: those with a customer. The day is the rollups'
/// (`time / 86400000000`, truncating, as in SQL).
pub(crate) fn marks_of<'a>(events: &[&'a Event]) -> Vec<Mark<'a>> {
    events
        .iter()
        .filter_map(|e| {
            Some((
                e.kind.as_str(),
                e.time / MICROS_PER_DAY,
                e.service.as_deref().unwrap_or(""),
                e.customer_id.as_deref()?,
            ))
        })
        .collect()
}

/// The chunk of a customer number.
pub(crate) fn chunk_of(n: u32) -> i64 {
    i64::from(n >> CHUNK_BITS)
}

pub(crate) fn serialize(bits: &RoaringBitmap) -> Vec<u8> {
    let mut out = Vec::with_capacity(bits.serialized_size());
    bits.serialize_into(&mut out)
        .expect("writing to a Vec does not fail");
    out
}

/// The (kind, day, service, customer id) that rows of `customer_activity` (kind, day,
/// service, bits) hold, given each number's customer id: what the stores' tests compare
/// with a scan of the events.
#[cfg(test)]
pub(crate) fn marked(
    names: &HashMap<i64, String>,
    rows: Vec<(String, i64, String, Vec<u8>)>,
) -> BTreeSet<(String, i64, String, String)> {
    let mut out = BTreeSet::new();
    for (kind, day, service, bits) in rows {
        for n in deserialize(&bits).unwrap() {
            out.insert((
                kind.clone(),
                day,
                service.clone(),
                names[&i64::from(n)].clone(),
            ));
        }
    }
    out
}

pub(crate) fn deserialize(bytes: &[u8]) -> StoreResult<RoaringBitmap> {
    RoaringBitmap::deserialize_from(bytes).map_err(|e| {
        StoreError::Database(sqlx::Error::Decode(
            format!("a customer_activity bitmap does not read: {e}").into(),
        ))
    })
}

fn placeholders(from: usize, n: usize) -> String {
    (from..from + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Customer numbers this process has seen committed. A number never changes once
/// committed, so an entry never goes stale; entries are added only after the transaction
/// that read or assigned them has committed (an assignment rolled back is reused). Shared
/// by the event writers (which then skip the lookup of customers they know, most of each
/// group) and `Store::customer_numbers`. About 60 bytes per customer.
#[derive(Debug, Default)]
pub(crate) struct NumberCache(Mutex<HashMap<String, u32>>);

impl NumberCache {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, u32>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The known number of each of `ids`, in order.
    pub(crate) fn known(&self, ids: &[&str]) -> Vec<Option<u32>> {
        let map = self.map();
        ids.iter().map(|id| map.get(*id).copied()).collect()
    }

    /// Adds numbers read or assigned by a committed transaction.
    pub(crate) fn remember(&self, numbers: Vec<(String, u32)>) {
        self.map().extend(numbers);
    }
}

/// The numbers of `ids` (distinct, sorted) that `cache` does not know, giving each id
/// without one the next number. Ids are inserted in sorted order, so two PostgreSQL
/// writers wait on each other's new ids in one order.
async fn numbers(conn: &mut dyn Conn, ids: &[&str]) -> StoreResult<HashMap<String, u32>> {
    let mut found = lookup(conn, ids).await?;
    let missing: Vec<&str> = ids
        .iter()
        .copied()
        .filter(|id| !found.contains_key(*id))
        .collect();
    if missing.is_empty() {
        return Ok(found);
    }
    for chunk in missing.chunks(PER_STATEMENT) {
        let values = (1..=chunk.len())
            .map(|i| format!("(${i})"))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "INSERT INTO customer_numbers (customer_id) VALUES {values} \
             ON CONFLICT (customer_id) DO NOTHING"
        );
        conn.exec(&sql, chunk.iter().map(|&id| Arg::from(id)).collect())
            .await?;
    }
    found.extend(lookup(conn, &missing).await?);
    Ok(found)
}

/// The numbers of those of `ids` that have one.
pub(crate) async fn lookup(conn: &mut dyn Conn, ids: &[&str]) -> StoreResult<HashMap<String, u32>> {
    let mut out = HashMap::with_capacity(ids.len());
    for chunk in ids.chunks(PER_STATEMENT) {
        let sql = format!(
            "SELECT customer_id, n FROM customer_numbers WHERE customer_id IN ({})",
            placeholders(1, chunk.len())
        );
        for row in conn
            .rows(&sql, chunk.iter().map(|&id| Arg::from(id)).collect())
            .await?
        {
            out.insert(row.text(0)?, number(row.int(1)?)?);
        }
    }
    Ok(out)
}

/// Every stored customer number. A plain read sees committed rows only.
pub(crate) async fn all_numbers(conn: &mut dyn Conn) -> StoreResult<Vec<(String, u32)>> {
    conn.rows("SELECT customer_id, n FROM customer_numbers", vec![])
        .await?
        .iter()
        .map(|row| Ok((row.text(0)?, number(row.int(1)?)?)))
        .collect()
}

/// A stored customer number as a bitmap element.
pub(crate) fn number(n: i64) -> StoreResult<u32> {
    u32::try_from(n).map_err(|_| {
        StoreError::Database(sqlx::Error::Decode(
            format!("customer number {n} is out of the bitmaps' range").into(),
        ))
    })
}

/// Adds `marks` to `customer_activity`: numbers customers first seen, then unites each
/// touched bitmap with its new numbers. `lock` takes the rows `FOR UPDATE` (PostgreSQL).
/// Returns the numbers not taken from `cache`, for the caller to remember once committed.
pub(crate) async fn mark(
    conn: &mut dyn Conn,
    lock: bool,
    marks: &[Mark<'_>],
    cache: &NumberCache,
) -> StoreResult<Vec<(String, u32)>> {
    if marks.is_empty() {
        return Ok(vec![]);
    }
    let ids = customers(marks);
    let known = cache.known(&ids);
    let missing: Vec<&str> = ids
        .iter()
        .zip(&known)
        .filter_map(|(id, n)| n.is_none().then_some(*id))
        .collect();
    let fresh = if missing.is_empty() {
        HashMap::new()
    } else {
        self::numbers(conn, &missing).await?
    };
    let mut numbers: HashMap<&str, u32> = ids
        .iter()
        .zip(known)
        .filter_map(|(id, n)| Some((*id, n?)))
        .collect();
    numbers.extend(fresh.iter().map(|(id, n)| (id.as_str(), *n)));
    unite(conn, lock, additions(marks, &numbers)).await?;
    Ok(fresh.into_iter().collect())
}

/// The distinct customer ids of `marks`, sorted.
pub(crate) fn customers<'a>(marks: &[Mark<'a>]) -> Vec<&'a str> {
    marks
        .iter()
        .map(|m| m.3)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

/// What `marks` add to each row of `customer_activity`, given every marked customer's
/// number.
pub(crate) fn additions<'a>(
    marks: &[Mark<'a>],
    numbers: &HashMap<&str, u32>,
) -> BTreeMap<ActivityKey<'a>, RoaringBitmap> {
    let mut add: BTreeMap<ActivityKey<'_>, RoaringBitmap> = BTreeMap::new();
    for &(kind, day, service, customer) in marks {
        let n = numbers[customer];
        add.entry(ActivityKey {
            kind,
            day,
            service,
            chunk: chunk_of(n),
        })
        .or_default()
        .insert(n);
    }
    add
}

/// `INSERT INTO customer_activity ... VALUES` one row per key with its bitmap, then
/// `on_conflict`.
async fn put_rows(
    conn: &mut dyn Conn,
    rows: &[(ActivityKey<'_>, Vec<u8>)],
    on_conflict: &str,
) -> StoreResult<()> {
    let mut values = Vec::with_capacity(rows.len());
    let mut args = Vec::with_capacity(rows.len() * 5);
    for (i, (k, bits)) in rows.iter().enumerate() {
        let p = i * 5;
        values.push(format!(
            "(${}, ${}, ${}, ${}, ${})",
            p + 1,
            p + 2,
            p + 3,
            p + 4,
            p + 5
        ));
        args.extend([
            Arg::from(k.kind),
            Arg::from(k.day),
            Arg::from(k.service),
            Arg::from(k.chunk),
            Arg::Bytes(bits.clone()),
        ]);
    }
    let sql = format!(
        "INSERT INTO customer_activity (kind, day, service, chunk, bits) VALUES {} \
         ON CONFLICT (kind, day, service, chunk) {on_conflict}",
        values.join(", ")
    );
    conn.exec(&sql, args).await?;
    Ok(())
}

/// Unites each row of `add` (created when missing) with its bitmap. With `lock`
/// (PostgreSQL, several writers), the missing rows are created first and then every row
/// is locked, all in key order, before it is read: every writer takes its locks in one
/// order, and none writes back a bitmap another has changed meanwhile. SQLite has one
/// writer at a time.
pub(crate) async fn unite(
    conn: &mut dyn Conn,
    lock: bool,
    add: BTreeMap<ActivityKey<'_>, RoaringBitmap>,
) -> StoreResult<()> {
    let keys: Vec<ActivityKey<'_>> = add.keys().copied().collect();
    // Keyed by owned values as read back.
    let mut stored: HashMap<(String, i64, String, i64), RoaringBitmap> = HashMap::new();
    for chunk in keys.chunks(KEYS_PER_STATEMENT) {
        if lock {
            let empty = serialize(&RoaringBitmap::new());
            let rows: Vec<_> = chunk.iter().map(|k| (*k, empty.clone())).collect();
            put_rows(conn, &rows, "DO NOTHING").await?;
        }
        // One equality per key, OR-ed: both stores seek the primary key once per key (a
        // row-value `IN (VALUES ...)` made SQLite scan the table).
        let mut args = Vec::with_capacity(chunk.len() * 4);
        let any_key = chunk
            .iter()
            .enumerate()
            .map(|(i, k)| {
                let p = i * 4;
                args.extend([
                    Arg::from(k.kind),
                    Arg::from(k.day),
                    Arg::from(k.service),
                    Arg::from(k.chunk),
                ]);
                format!(
                    "(kind = ${} AND day = ${} AND service = ${} AND chunk = ${})",
                    p + 1,
                    p + 2,
                    p + 3,
                    p + 4
                )
            })
            .collect::<Vec<_>>()
            .join(" OR ");
        let sql = format!(
            "SELECT kind, day, service, chunk, bits FROM customer_activity WHERE {any_key} \
             ORDER BY kind, day, service, chunk{}",
            if lock { " FOR UPDATE" } else { "" }
        );
        for row in conn.rows(&sql, args).await? {
            let key = (row.text(0)?, row.int(1)?, row.text(2)?, row.int(3)?);
            stored.insert(key, deserialize(row.bytes(4)?)?);
        }
    }
    let mut rows = Vec::with_capacity(add.len());
    for (key, bits) in add {
        let owned = (
            key.kind.to_owned(),
            key.day,
            key.service.to_owned(),
            key.chunk,
        );
        let mut all = stored.remove(&owned).unwrap_or_default();
        all |= bits;
        rows.push((key, serialize(&all)));
    }
    for chunk in rows.chunks(KEYS_PER_STATEMENT) {
        put_rows(conn, chunk, "DO UPDATE SET bits = excluded.bits").await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_fall_in_chunks_of_65536() {
        assert_eq!(chunk_of(0), 0);
        assert_eq!(chunk_of(65_535), 0);
        assert_eq!(chunk_of(65_536), 1);
        assert_eq!(chunk_of(200_000), 3);
    }

    #[test]
    fn bitmaps_read_back_as_written() {
        let bits: RoaringBitmap = [1, 7, 65_535].into_iter().collect();
        let back = deserialize(&serialize(&bits)).unwrap();
        assert_eq!(back.iter().collect::<Vec<_>>(), [1, 7, 65_535]);
        assert!(deserialize(b"not a bitmap").is_err());
    }
}
