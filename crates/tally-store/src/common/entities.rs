//! Plans, customers, subscriptions and their changes, invoices, costs, marketing spend and
//! services: their rows, writes and reads.

use super::page;
use super::upsert::upsert;
use crate::db::{args, decimal_text, Conn, Row};
use crate::*;
use tally_core::time::Month;

// ---- rows ------------------------------------------------------------------------------

pub(crate) const PLAN_COLS: &str = "id, name, tier, interval, amount, currency";

pub(crate) fn plan(r: &Row) -> StoreResult<Plan> {
    Ok(Plan {
        id: r.text(0)?,
        name: r.text(1)?,
        tier: r.text(2)?,
        interval: r.parsed(3, Interval::parse)?,
        amount: r.int(4)?,
        currency: r.text(5)?,
    })
}

pub(crate) const CUSTOMER_COLS: &str = "id, name, email, created_at, channel";

pub(crate) fn customer(r: &Row) -> StoreResult<Customer> {
    Ok(Customer {
        id: r.text(0)?,
        name: r.opt_text(1)?,
        email: r.opt_text(2)?,
        created_at: r.int(3)?,
        channel: r.opt_text(4)?,
    })
}

pub(crate) const SUBSCRIPTION_COLS: &str =
    "id, customer_id, plan_id, quantity, discount_percent, started_at, trial_ends_at, canceled_at";

pub(crate) fn subscription(r: &Row) -> StoreResult<Subscription> {
    Ok(Subscription {
        id: r.text(0)?,
        customer_id: r.text(1)?,
        plan_id: r.text(2)?,
        quantity: r.int(3)?,
        discount_percent: r.decimal(4)?,
        started_at: r.int(5)?,
        trial_ends_at: r.opt_int(6)?,
        canceled_at: r.opt_int(7)?,
    })
}

pub(crate) const CHANGE_COLS: &str =
    "subscription_id, effective_at, plan_id, quantity, discount_percent";

pub(crate) fn change(r: &Row) -> StoreResult<SubscriptionChange> {
    Ok(SubscriptionChange {
        subscription_id: r.text(0)?,
        effective_at: r.int(1)?,
        plan_id: r.opt_text(2)?,
        quantity: r.opt_int(3)?,
        discount_percent: r.opt_decimal(4)?,
    })
}

pub(crate) const INVOICE_COLS: &str =
    "id, customer_id, amount, currency, status, issued_at, paid_at";

pub(crate) fn invoice(r: &Row) -> StoreResult<Invoice> {
    Ok(Invoice {
        id: r.text(0)?,
        customer_id: r.text(1)?,
        amount: r.int(2)?,
        currency: r.text(3)?,
        status: r.parsed(4, InvoiceStatus::parse)?,
        issued_at: r.int(5)?,
        paid_at: r.opt_int(6)?,
    })
}

fn month(r: &Row, i: usize) -> StoreResult<Month> {
    r.parsed(i, |s| Month::parse("month", s).ok())
}

pub(crate) const COST_COLS: &str = "month, category, service, amount";

pub(crate) fn cost(r: &Row) -> StoreResult<CostRecord> {
    Ok(CostRecord {
        month: month(r, 0)?,
        category: r.parsed(1, CostCategory::parse)?,
        service: r.text(2)?,
        amount: r.int(3)?,
    })
}

pub(crate) const SPEND_COLS: &str = "month, channel, amount";

pub(crate) fn spend(r: &Row) -> StoreResult<MarketingSpend> {
    Ok(MarketingSpend {
        month: month(r, 0)?,
        channel: r.text(1)?,
        amount: r.int(2)?,
    })
}

pub(crate) const SERVICE_COLS: &str = "name, display_name, unit_type, health_url";

pub(crate) fn service(r: &Row) -> StoreResult<Service> {
    Ok(Service {
        name: r.text(0)?,
        display_name: r.opt_text(1)?,
        unit_type: r.opt_text(2)?,
        health_url: r.opt_text(3)?,
    })
}

// ---- writes ----------------------------------------------------------------------------

async fn require(
    conn: &mut dyn Conn,
    table: &str,
    id: &str,
    field: &'static str,
    kind: &'static str,
) -> StoreResult<()> {
    if conn
        .exists(&format!("SELECT 1 FROM {table} WHERE id = $1"), args![id])
        .await?
    {
        Ok(())
    } else {
        Err(StoreError::UnknownReference {
            field,
            kind,
            id: id.to_owned(),
        })
    }
}

pub(crate) async fn put_plan(conn: &mut dyn Conn, p: &Plan) -> StoreResult<WriteOutcome> {
    let cols = ["name", "tier", "interval", "amount", "currency"];
    let args = args![
        &p.id,
        &p.name,
        &p.tier,
        p.interval.as_str(),
        p.amount,
        &p.currency
    ];
    upsert(conn, "plans", &["id"], &cols, args).await
}

pub(crate) async fn put_customer(conn: &mut dyn Conn, c: &Customer) -> StoreResult<WriteOutcome> {
    let cols = ["name", "email", "created_at", "channel"];
    let args = args![&c.id, &c.name, &c.email, c.created_at, &c.channel];
    upsert(conn, "customers", &["id"], &cols, args).await
}

pub(crate) async fn put_subscription(
    conn: &mut dyn Conn,
    s: &Subscription,
) -> StoreResult<WriteOutcome> {
    require(conn, "customers", &s.customer_id, "customer_id", "customer").await?;
    require(conn, "plans", &s.plan_id, "plan_id", "plan").await?;
    let insert = format!(
        "INSERT INTO subscriptions ({SUBSCRIPTION_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, NULL) \
         ON CONFLICT (id) DO NOTHING"
    );
    let args = args![
        &s.id,
        &s.customer_id,
        &s.plan_id,
        s.quantity,
        decimal_text(&s.discount_percent),
        s.started_at,
        s.trial_ends_at
    ];
    if conn.exec(&insert, args).await? == 1 {
        return Ok(WriteOutcome::Created);
    }
    let stored = get_subscription_row(conn, &s.id).await?.ok_or_else(|| {
        // Subscriptions are never deleted, so the conflicting row is still there.
        StoreError::Database(sqlx::Error::RowNotFound)
    })?;
    let same = Subscription {
        canceled_at: stored.canceled_at,
        ..s.clone()
    } == stored;
    if same {
        Ok(WriteOutcome::Unchanged)
    } else {
        Err(StoreError::Conflict(format!(
            "subscription `{}` already exists with different content; use /changes or /cancel",
            s.id
        )))
    }
}

pub(crate) async fn put_change(
    conn: &mut dyn Conn,
    c: &SubscriptionChange,
) -> StoreResult<WriteOutcome> {
    if !conn
        .exists(
            "SELECT 1 FROM subscriptions WHERE id = $1",
            args![&c.subscription_id],
        )
        .await?
    {
        return Err(StoreError::NotFound {
            kind: "subscription",
            id: c.subscription_id.clone(),
        });
    }
    if let Some(plan_id) = &c.plan_id {
        require(conn, "plans", plan_id, "plan_id", "plan").await?;
    }
    let args = args![
        &c.subscription_id,
        c.effective_at,
        &c.plan_id,
        c.quantity,
        c.discount_percent.as_ref().map(decimal_text)
    ];
    let cols = ["plan_id", "quantity", "discount_percent"];
    upsert(
        conn,
        "subscription_changes",
        &["subscription_id", "effective_at"],
        &cols,
        args,
    )
    .await
}

/// A first or moved cancellation is `Updated`: the subscription itself already existed.
pub(crate) async fn cancel_subscription(
    conn: &mut dyn Conn,
    id: &str,
    at: Micros,
) -> StoreResult<WriteOutcome> {
    let started = conn
        .row(
            "SELECT started_at FROM subscriptions WHERE id = $1",
            args![id],
        )
        .await?;
    let Some(started) = started else {
        return Err(StoreError::NotFound {
            kind: "subscription",
            id: id.to_owned(),
        });
    };
    if at < started.int(0)? {
        return Err(StoreError::Conflict(format!(
            "subscription `{id}` cannot be canceled before it started"
        )));
    }
    let sql = "UPDATE subscriptions SET canceled_at = $2 WHERE id = $1 AND canceled_at IS DISTINCT FROM $2";
    Ok(if conn.exec(sql, args![id, at]).await? == 0 {
        WriteOutcome::Unchanged
    } else {
        WriteOutcome::Updated
    })
}

pub(crate) async fn put_invoice(conn: &mut dyn Conn, i: &Invoice) -> StoreResult<WriteOutcome> {
    require(conn, "customers", &i.customer_id, "customer_id", "customer").await?;
    let cols = [
        "customer_id",
        "amount",
        "currency",
        "status",
        "issued_at",
        "paid_at",
    ];
    let args = args![
        &i.id,
        &i.customer_id,
        i.amount,
        &i.currency,
        i.status.as_str(),
        i.issued_at,
        i.paid_at
    ];
    upsert(conn, "invoices", &["id"], &cols, args).await
}

pub(crate) async fn put_costs(
    conn: &mut dyn Conn,
    costs: &[CostRecord],
) -> StoreResult<Vec<WriteOutcome>> {
    let mut out = Vec::with_capacity(costs.len());
    for c in costs {
        let args = args![
            c.month.to_string(),
            c.category.as_str(),
            &c.service,
            c.amount
        ];
        out.push(
            upsert(
                conn,
                "costs",
                &["month", "category", "service"],
                &["amount"],
                args,
            )
            .await?,
        );
    }
    Ok(out)
}

pub(crate) async fn put_spend(
    conn: &mut dyn Conn,
    spend: &[MarketingSpend],
) -> StoreResult<Vec<WriteOutcome>> {
    let mut out = Vec::with_capacity(spend.len());
    for s in spend {
        let args = args![s.month.to_string(), &s.channel, s.amount];
        out.push(
            upsert(
                conn,
                "marketing_spend",
                &["month", "channel"],
                &["amount"],
                args,
            )
            .await?,
        );
    }
    Ok(out)
}

pub(crate) async fn put_service(conn: &mut dyn Conn, s: &Service) -> StoreResult<WriteOutcome> {
    let args = args![&s.name, &s.display_name, &s.unit_type, &s.health_url];
    upsert(
        conn,
        "services",
        &["name"],
        &["display_name", "unit_type", "health_url"],
        args,
    )
    .await
}

// ---- reads -----------------------------------------------------------------------------

async fn get<T>(
    conn: &mut dyn Conn,
    cols: &str,
    table: &str,
    key: &str,
    id: &str,
    decode: impl Fn(&Row) -> StoreResult<T>,
) -> StoreResult<Option<T>> {
    let sql = format!("SELECT {cols} FROM {table} WHERE {key} = $1");
    conn.row(&sql, args![id])
        .await?
        .as_ref()
        .map(decode)
        .transpose()
}

pub(crate) async fn get_plan(conn: &mut dyn Conn, id: &str) -> StoreResult<Option<Plan>> {
    get(conn, PLAN_COLS, "plans", "id", id, plan).await
}

pub(crate) async fn get_customer(conn: &mut dyn Conn, id: &str) -> StoreResult<Option<Customer>> {
    get(conn, CUSTOMER_COLS, "customers", "id", id, customer).await
}

async fn get_subscription_row(conn: &mut dyn Conn, id: &str) -> StoreResult<Option<Subscription>> {
    get(
        conn,
        SUBSCRIPTION_COLS,
        "subscriptions",
        "id",
        id,
        subscription,
    )
    .await
}

pub(crate) async fn get_subscription(
    conn: &mut dyn Conn,
    id: &str,
) -> StoreResult<Option<SubscriptionRecord>> {
    let Some(subscription) = get_subscription_row(conn, id).await? else {
        return Ok(None);
    };
    let sql = format!("SELECT {CHANGE_COLS} FROM subscription_changes WHERE subscription_id = $1 ORDER BY effective_at");
    let changes = conn
        .rows(&sql, args![id])
        .await?
        .iter()
        .map(change)
        .collect::<StoreResult<_>>()?;
    Ok(Some(SubscriptionRecord {
        subscription,
        changes,
    }))
}

pub(crate) async fn get_invoice(conn: &mut dyn Conn, id: &str) -> StoreResult<Option<Invoice>> {
    get(conn, INVOICE_COLS, "invoices", "id", id, invoice).await
}

pub(crate) async fn get_service(conn: &mut dyn Conn, name: &str) -> StoreResult<Option<Service>> {
    get(conn, SERVICE_COLS, "services", "name", name, service).await
}

pub(crate) async fn list_plans(conn: &mut dyn Conn, p: &PageRequest) -> StoreResult<Page<Plan>> {
    page::fetch(conn, "plans", PLAN_COLS, "id", p, plan, |x| &x.id).await
}

pub(crate) async fn list_customers(
    conn: &mut dyn Conn,
    p: &PageRequest,
) -> StoreResult<Page<Customer>> {
    page::fetch(conn, "customers", CUSTOMER_COLS, "id", p, customer, |x| {
        &x.id
    })
    .await
}

pub(crate) async fn list_invoices(
    conn: &mut dyn Conn,
    p: &PageRequest,
) -> StoreResult<Page<Invoice>> {
    page::fetch(conn, "invoices", INVOICE_COLS, "id", p, invoice, |x| &x.id).await
}

pub(crate) async fn list_services(
    conn: &mut dyn Conn,
    p: &PageRequest,
) -> StoreResult<Page<Service>> {
    page::fetch(conn, "services", SERVICE_COLS, "name", p, service, |x| {
        &x.name
    })
    .await
}

/// Expects a snapshot: the page and its changes are read by two statements.
pub(crate) async fn list_subscriptions(
    conn: &mut dyn Conn,
    p: &PageRequest,
) -> StoreResult<Page<SubscriptionRecord>> {
    let subs = page::fetch(
        conn,
        "subscriptions",
        SUBSCRIPTION_COLS,
        "id",
        p,
        subscription,
        |x| &x.id,
    )
    .await?;
    let (Some(first), Some(last)) = (subs.items.first(), subs.items.last()) else {
        return Ok(Page {
            items: Vec::new(),
            next_cursor: subs.next_cursor,
        });
    };
    // The page is a contiguous id range, so its changes are the range's.
    let sql = format!(
        "SELECT {CHANGE_COLS} FROM subscription_changes WHERE subscription_id >= $1 AND subscription_id <= $2 \
         ORDER BY subscription_id, effective_at"
    );
    let changes: Vec<SubscriptionChange> = conn
        .rows(&sql, args![&first.id, &last.id])
        .await?
        .iter()
        .map(change)
        .collect::<StoreResult<_>>()?;
    let mut changes = changes.into_iter().peekable();
    let items = subs
        .items
        .into_iter()
        .map(|subscription| {
            let mut own = Vec::new();
            while let Some(c) = changes.next_if(|c| c.subscription_id == subscription.id) {
                own.push(c);
            }
            SubscriptionRecord {
                subscription,
                changes: own,
            }
        })
        .collect();
    Ok(Page {
        items,
        next_cursor: subs.next_cursor,
    })
}
