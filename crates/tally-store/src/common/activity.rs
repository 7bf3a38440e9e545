//! Distinct customers from the activity bitmaps (`customer_activity`, migration 0008;
//! written at ingestion by `ingest::activity`): a span's whole days are the union of their
//! bitmaps, its partial days come from `events`, so the answer is exact at any `as_of`.

use super::rollup::{only_when, outside_edge, split, sql_day_parts, Params};
use crate::db::Conn;
use crate::sqlite::ingest::activity::{self as bits, ActivityKey};
use crate::*;
use roaring::RoaringBitmap;
use std::collections::BTreeMap;
use tally_core::event::EventKind;

/// The customers with an event of `kind` in `span`, per service (see
/// `Store::active_customers`).
pub(crate) async fn active_customers(
    conn: &mut dyn Conn,
    kind: EventKind,
    span: Span,
    by_service: bool,
) -> StoreResult<ActiveCustomers> {
    let mut out: BTreeMap<Option<String>, RoaringBitmap> = BTreeMap::new();
    let service_of = |s: Option<String>| s.filter(|s| by_service && !s.is_empty());
    let (days, edges) = split(span);
    if let Some((d0, d1)) = days {
        let rows = conn
            .rows(
                "SELECT service, bits FROM customer_activity \
                 WHERE kind = $1 AND day >= $2 AND day < $3",
                crate::db::args![kind.as_str(), d0, d1],
            )
            .await?;
        for row in rows {
            *out.entry(service_of(row.opt_text(0)?)).or_default() |=
                bits::deserialize(row.bytes(1)?)?;
        }
    }
    // A partial day: its bitmaps when the day has no event outside the edge (the day of
    // an `as_of` of now), else its events (see `rollup::outside_edge`).
    for edge in edges.into_iter().flat_map(sql_day_parts) {
        let mut p = Params::default();
        let guard = outside_edge(kind, edge, &mut p);
        let events = format!(
            // NULL outside the DISTINCT: under it PostgreSQL would type it as text, which
            // does not match the bitmaps' bytea in the UNION below.
            "SELECT service, NULL, n FROM (SELECT DISTINCT e.service, c.n FROM events e \
             JOIN customer_numbers c ON c.customer_id = e.customer_id \
             WHERE e.kind = {} AND e.time >= {} AND e.time < {}) AS edge",
            p.push(kind.as_str()),
            p.push(edge.start),
            only_when(
                guard.as_ref().map(|(_, outside)| outside.as_str()),
                p.push(edge.end)
            ),
        );
        let sql = match &guard {
            Some((day, outside)) => format!(
                "SELECT service, bits, NULL FROM customer_activity \
                 WHERE kind = {} AND day = {} UNION ALL {events}",
                p.push(kind.as_str()),
                only_when(Some(&format!("NOT ({outside})")), p.push(*day)),
            ),
            None => events,
        };
        for row in conn.rows(&sql, p.0).await? {
            let set = out.entry(service_of(row.opt_text(0)?)).or_default();
            match row.opt_int(2)? {
                Some(n) => {
                    set.insert(bits::number(n)?);
                }
                None => *set |= bits::deserialize(row.bytes(1)?)?,
            }
        }
    }
    out.retain(|_, set| !set.is_empty());
    Ok(ActiveCustomers { by_service: out })
}

/// Builds the bitmaps of the data stored before migration 0008 from
/// `usage_daily_customer` (a customer is active on a day exactly when it has a row there),
/// once: the migration leaves a row in `customer_activity_backfill`, and the transaction
/// that deletes it does the work, so a second process starting at the same time waits for
/// it and then finds nothing to do. One kind and day at a time, to bound memory.
pub(crate) async fn backfill(conn: &mut dyn Conn, lock: bool) -> StoreResult<()> {
    if conn
        .exec("DELETE FROM customer_activity_backfill", vec![])
        .await?
        == 0
    {
        return Ok(());
    }
    // Numbers in id order, for a stable layout.
    conn.exec(
        "INSERT INTO customer_numbers (customer_id) \
         SELECT DISTINCT customer_id FROM usage_daily_customer WHERE customer_id <> '' \
         ORDER BY customer_id ON CONFLICT (customer_id) DO NOTHING",
        vec![],
    )
    .await?;
    let ranges = conn
        .rows(
            "SELECT kind, MIN(day), MAX(day) FROM usage_daily_customer \
             WHERE customer_id <> '' GROUP BY kind ORDER BY kind",
            vec![],
        )
        .await?;
    for range in ranges {
        let kind = range.text(0)?;
        for day in range.int(1)?..=range.int(2)? {
            let rows = conn
                .rows(
                    "SELECT DISTINCT u.service, c.n FROM usage_daily_customer u \
                     JOIN customer_numbers c ON c.customer_id = u.customer_id \
                     WHERE u.kind = $1 AND u.day = $2",
                    crate::db::args![kind.as_str(), day],
                )
                .await?;
            let mut by_service: BTreeMap<String, Vec<u32>> = BTreeMap::new();
            for row in rows {
                by_service
                    .entry(row.text(0)?)
                    .or_default()
                    .push(bits::number(row.int(1)?)?);
            }
            let mut add = BTreeMap::new();
            for (service, numbers) in &by_service {
                for n in numbers {
                    add.entry(ActivityKey {
                        kind: kind.as_str(),
                        day,
                        service: service.as_str(),
                        chunk: bits::chunk_of(*n),
                    })
                    .or_insert_with(RoaringBitmap::new)
                    .insert(*n);
                }
            }
            bits::unite(conn, lock, add).await?;
        }
    }
    Ok(())
}
