//! The reads behind the analytics: event aggregates, invoice totals, gauges, and the
//! billing and cost records the metrics are computed from.

use super::entities::{self, *};
use crate::db::{args, Conn, Row};
use crate::*;

/// The aggregates of a usage query over `events`, in the order of `UsageRow`'s counters.
/// Sums come back as the backend's widest type (NUMERIC on PostgreSQL), so each is cast
/// back to the column's type; COALESCE makes the sum of nothing 0.
pub(crate) const AGGREGATES: [&str; 13] = [
    "COUNT(*)",
    "CAST(COALESCE(SUM(quantity), 0) AS BIGINT)",
    "CAST(COALESCE(SUM(input_tokens), 0) AS BIGINT)",
    "CAST(COALESCE(SUM(output_tokens), 0) AS BIGINT)",
    "CAST(COALESCE(SUM(cache_read_tokens), 0) AS BIGINT)",
    "CAST(COALESCE(SUM(cache_write_tokens), 0) AS BIGINT)",
    "CAST(COALESCE(SUM(cost), 0) AS BIGINT)",
    "CAST(COALESCE(SUM(CASE WHEN model IS NOT NULL AND cost_source = 'unpriced' THEN 1 ELSE 0 END), 0) AS BIGINT)",
    "CAST(COALESCE(SUM(latency_ms), 0) AS DOUBLE PRECISION)",
    "COUNT(latency_ms)",
    "COUNT(status_code)",
    "CAST(COALESCE(SUM(CASE WHEN status_code >= 500 THEN 1 ELSE 0 END), 0) AS BIGINT)",
    "CAST(COALESCE(SUM(CASE WHEN up THEN 1 ELSE 0 END), 0) AS BIGINT)",
];

pub(crate) fn usage_row(r: &Row) -> StoreResult<UsageRow> {
    Ok(UsageRow {
        service: r.opt_text(0)?,
        model: r.opt_text(1)?,
        provider: r.opt_text(2)?,
        customer_id: r.opt_text(3)?,
        day: r.opt_int(4)?,
        cache_hit: r.opt_bool(5)?,
        events: r.int(6)?,
        quantity: r.int(7)?,
        input_tokens: r.int(8)?,
        output_tokens: r.int(9)?,
        cache_read_tokens: r.int(10)?,
        cache_write_tokens: r.int(11)?,
        cost: r.int(12)?,
        unpriced: r.int(13)?,
        latency_sum: r.float(14)?,
        latency_count: r.int(15)?,
        status_count: r.int(16)?,
        error_count: r.int(17)?,
        up_count: r.int(18)?,
    })
}

pub(crate) async fn invoice_stats(
    conn: &mut dyn Conn,
    paid: Span,
    issued: Span,
) -> StoreResult<InvoiceStats> {
    let count = |condition: &str| {
        format!("CAST(COALESCE(SUM(CASE WHEN {condition} THEN 1 ELSE 0 END), 0) AS BIGINT)")
    };
    // Statuses as they stood at the end of the issued span: an invoice paid at or after
    // it was still open then. (Failed and void carry no time: their latest status counts.)
    let sql = format!(
        "SELECT (SELECT CAST(COALESCE(SUM(amount), 0) AS BIGINT) FROM invoices \
                 WHERE status = 'paid' AND paid_at >= $1 AND paid_at < $2), \
                COUNT(*), {}, {}, {}, {} \
         FROM invoices WHERE issued_at >= $3 AND issued_at < $4",
        count("status = 'paid' AND paid_at < $4"),
        count("status = 'failed'"),
        count("status = 'open' OR (status = 'paid' AND paid_at >= $4)"),
        count("status = 'void'")
    );
    let rows = conn
        .rows(&sql, args![paid.start, paid.end, issued.start, issued.end])
        .await?;
    let r = rows
        .first()
        .ok_or(StoreError::Database(sqlx::Error::RowNotFound))?;
    Ok(InvoiceStats {
        paid_revenue: r.int(0)?,
        issued: r.int(1)?,
        issued_paid: r.int(2)?,
        issued_failed: r.int(3)?,
        issued_open: r.int(4)?,
        issued_void: r.int(5)?,
    })
}

pub(crate) async fn latest_gauge(
    conn: &mut dyn Conn,
    name: &str,
    at: Micros,
) -> StoreResult<Option<f64>> {
    let sql =
        "SELECT gauge_value FROM events WHERE kind = 'gauge' AND gauge_name = $1 AND time <= $2 \
               ORDER BY time DESC, id DESC LIMIT 1";
    conn.row(sql, args![name, at])
        .await?
        .map(|r| r.float(0))
        .transpose()
}

async fn all<T>(
    conn: &mut dyn Conn,
    sql: &str,
    decode: impl Fn(&Row) -> StoreResult<T>,
) -> StoreResult<Vec<T>> {
    conn.rows(sql, vec![]).await?.iter().map(decode).collect()
}

/// Expects a snapshot, so that every change's subscription is in the same read and the
/// version is exactly that of the data.
pub(crate) async fn billing_data(conn: &mut dyn Conn) -> StoreResult<BillingData> {
    Ok(BillingData {
        version: super::version::read(conn).await?,
        plans: all(conn, &format!("SELECT {PLAN_COLS} FROM plans ORDER BY id"), entities::plan).await?,
        customers: all(conn, &format!("SELECT {CUSTOMER_COLS} FROM customers ORDER BY id"), customer).await?,
        subscriptions: all(conn, &format!("SELECT {SUBSCRIPTION_COLS} FROM subscriptions ORDER BY id"), subscription)
            .await?,
        changes: all(
            conn,
            &format!("SELECT {CHANGE_COLS} FROM subscription_changes ORDER BY subscription_id, effective_at"),
            change,
        )
        .await?,
    })
}

pub(crate) async fn cost_data(conn: &mut dyn Conn) -> StoreResult<CostData> {
    Ok(CostData {
        costs: all(
            conn,
            &format!("SELECT {COST_COLS} FROM costs ORDER BY month, category, service"),
            cost,
        )
        .await?,
        spend: all(
            conn,
            &format!("SELECT {SPEND_COLS} FROM marketing_spend ORDER BY month, channel"),
            spend,
        )
        .await?,
    })
}

const COUNTED: [&str; 9] = [
    "plans",
    "customers",
    "subscriptions",
    "subscription_changes",
    "invoices",
    "costs",
    "marketing_spend",
    "services",
    "events",
];

pub(crate) async fn counts(conn: &mut dyn Conn) -> StoreResult<Counts> {
    let selects: Vec<String> = COUNTED
        .iter()
        .map(|t| format!("(SELECT COUNT(*) FROM {t})"))
        .collect();
    let rows = conn
        .rows(&format!("SELECT {}", selects.join(", ")), vec![])
        .await?;
    let r = rows
        .first()
        .ok_or(StoreError::Database(sqlx::Error::RowNotFound))?;
    Ok(Counts {
        plans: r.int(0)?,
        customers: r.int(1)?,
        subscriptions: r.int(2)?,
        subscription_changes: r.int(3)?,
        invoices: r.int(4)?,
        costs: r.int(5)?,
        marketing_spend: r.int(6)?,
        services: r.int(7)?,
        events: r.int(8)?,
    })
}
