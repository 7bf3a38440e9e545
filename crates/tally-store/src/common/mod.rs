//! The [`Store`] written once over the [`Backend`] seam: every query here runs unchanged
//! on SQLite and PostgreSQL.

mod access;
mod activity;
mod analytics;
mod entities;
mod page;
mod rollup;

#[cfg(test)]
pub(crate) use rollup::rollup_upserts;
mod upsert;
mod version;

pub(crate) use version::BUMP_EVENTS;
use version::{Changed, Counter};

use crate::db::Backend;
use crate::sqlite::ingest::activity as ingest_activity;
use crate::*;
use async_trait::async_trait;
use std::collections::HashSet;
use std::sync::Arc;
use tally_core::event::{Event, EventKind};

/// Runs one write function in a write transaction and commits. The second argument names
/// the data version counter the write covers (`Some(Counter::...)`) or `None` for data no
/// figure is computed from; the counter is raised, last, only when the write changed
/// something, and a failed write rolls back with its bump.
macro_rules! in_tx {
    ($self:ident, $counter:expr, $f:path, $($arg:expr),*) => {{
        let mut tx = $self.backend.write().await?;
        let out = $f(&mut *tx, $($arg),*).await?;
        let counter: Option<Counter> = $counter;
        if let Some(counter) = counter.filter(|_| Changed::changed(&out)) {
            version::bump(&mut *tx, counter).await?;
        }
        tx.commit().await?;
        Ok(out)
    }};
}

/// A store over one backend (see `SqliteStore` and `PgStore`).
pub struct SqlStore<B> {
    pub(crate) backend: B,
    /// Customer numbers known to be committed, shared with the event writers.
    pub(crate) numbers: Arc<ingest_activity::NumberCache>,
}

/// Positions of the events to store: the first occurrence of each id in the slice.
fn first_occurrences(events: &[Event]) -> Vec<usize> {
    let mut seen = HashSet::with_capacity(events.len());
    (0..events.len())
        .filter(|&i| seen.insert(events[i].id.as_str()))
        .collect()
}

#[async_trait]
impl<B: Backend> Store for SqlStore<B> {
    fn backend(&self) -> &'static str {
        B::NAME
    }

    async fn migrate(&self) -> StoreResult<()> {
        self.backend.migrate().await?;
        let mut tx = self.backend.write().await?;
        activity::backfill(&mut *tx, B::NAME == "postgres").await?;
        tx.commit().await
    }

    async fn analyze(&self) -> StoreResult<()> {
        self.backend.analyze().await
    }

    async fn ping(&self) -> StoreResult<()> {
        self.backend
            .read()
            .await?
            .rows("SELECT 1", vec![])
            .await
            .map(drop)
    }

    async fn data_version(&self) -> StoreResult<DataVersion> {
        self.backend.settle().await?;
        version::read(&mut *self.backend.read().await?).await
    }

    async fn put_plan(&self, plan: &Plan) -> StoreResult<WriteOutcome> {
        in_tx!(self, Some(Counter::Entities), entities::put_plan, plan)
    }

    async fn put_customer(&self, customer: &Customer) -> StoreResult<WriteOutcome> {
        in_tx!(
            self,
            Some(Counter::Entities),
            entities::put_customer,
            customer
        )
    }

    async fn put_subscription(&self, sub: &Subscription) -> StoreResult<WriteOutcome> {
        in_tx!(
            self,
            Some(Counter::Entities),
            entities::put_subscription,
            sub
        )
    }

    async fn put_change(&self, change: &SubscriptionChange) -> StoreResult<WriteOutcome> {
        in_tx!(self, Some(Counter::Entities), entities::put_change, change)
    }

    async fn cancel_subscription(
        &self,
        id: &str,
        effective_at: Micros,
    ) -> StoreResult<WriteOutcome> {
        in_tx!(
            self,
            Some(Counter::Entities),
            entities::cancel_subscription,
            id,
            effective_at
        )
    }

    async fn put_invoice(&self, invoice: &Invoice) -> StoreResult<WriteOutcome> {
        in_tx!(
            self,
            Some(Counter::Entities),
            entities::put_invoice,
            invoice
        )
    }

    async fn put_costs(&self, costs: &[CostRecord]) -> StoreResult<Vec<WriteOutcome>> {
        in_tx!(self, Some(Counter::Entities), entities::put_costs, costs)
    }

    async fn put_spend(&self, spend: &[MarketingSpend]) -> StoreResult<Vec<WriteOutcome>> {
        in_tx!(self, Some(Counter::Entities), entities::put_spend, spend)
    }

    async fn put_service(&self, service: &Service) -> StoreResult<WriteOutcome> {
        in_tx!(
            self,
            Some(Counter::Entities),
            entities::put_service,
            service
        )
    }

    async fn write_entities(&self, writes: &[EntityWrite<'_>]) -> StoreResult<Vec<WriteOutcome>> {
        let mut tx = self.backend.write().await?;
        let mut out = Vec::with_capacity(writes.len());
        for w in writes {
            let conn = &mut *tx;
            out.push(match *w {
                EntityWrite::Plan(p) => entities::put_plan(conn, p).await?,
                EntityWrite::Customer(c) => entities::put_customer(conn, c).await?,
                EntityWrite::Subscription(s) => entities::put_subscription(conn, s).await?,
                EntityWrite::Change(c) => entities::put_change(conn, c).await?,
                EntityWrite::Cancel {
                    subscription_id,
                    effective_at,
                } => entities::cancel_subscription(conn, subscription_id, effective_at).await?,
                EntityWrite::Invoice(i) => entities::put_invoice(conn, i).await?,
                EntityWrite::Service(s) => entities::put_service(conn, s).await?,
            });
        }
        // Every entity write is covered by the entities counter (see the single calls).
        if out.changed() {
            version::bump(&mut *tx, Counter::Entities).await?;
        }
        tx.commit().await?;
        Ok(out)
    }

    async fn insert_events(&self, events: &[Event]) -> StoreResult<Vec<bool>> {
        let firsts = first_occurrences(events);
        if firsts.is_empty() {
            return Ok(Vec::new());
        }
        let distinct: Vec<&Event> = firsts.iter().map(|&i| &events[i]).collect();
        let new_ids = self.backend.insert_new_events(&distinct).await?;
        let mut stored = vec![false; events.len()];
        for i in firsts {
            stored[i] = new_ids.contains(&events[i].id);
        }
        Ok(stored)
    }

    async fn insert_owned_events(&self, events: Vec<Event>) -> StoreResult<Vec<bool>> {
        // An id twice in one batch is rare: the borrowed path sorts that out.
        if events.is_empty() || first_occurrences(&events).len() < events.len() {
            return self.insert_events(&events).await;
        }
        self.backend.insert_owned_new_events(events).await
    }

    async fn get_plan(&self, id: &str) -> StoreResult<Option<Plan>> {
        entities::get_plan(&mut *self.backend.read().await?, id).await
    }

    async fn get_customer(&self, id: &str) -> StoreResult<Option<Customer>> {
        entities::get_customer(&mut *self.backend.read().await?, id).await
    }

    async fn get_subscription(&self, id: &str) -> StoreResult<Option<SubscriptionRecord>> {
        entities::get_subscription(&mut *self.backend.snapshot().await?, id).await
    }

    async fn get_invoice(&self, id: &str) -> StoreResult<Option<Invoice>> {
        entities::get_invoice(&mut *self.backend.read().await?, id).await
    }

    async fn get_service(&self, name: &str) -> StoreResult<Option<Service>> {
        self.backend.settle().await?;
        entities::get_service(&mut *self.backend.read().await?, name).await
    }

    async fn list_plans(&self, page: &PageRequest) -> StoreResult<Page<Plan>> {
        entities::list_plans(&mut *self.backend.read().await?, page).await
    }

    async fn list_customers(&self, page: &PageRequest) -> StoreResult<Page<Customer>> {
        entities::list_customers(&mut *self.backend.read().await?, page).await
    }

    async fn list_subscriptions(
        &self,
        page: &PageRequest,
    ) -> StoreResult<Page<SubscriptionRecord>> {
        entities::list_subscriptions(&mut *self.backend.snapshot().await?, page).await
    }

    async fn list_invoices(&self, page: &PageRequest) -> StoreResult<Page<Invoice>> {
        entities::list_invoices(&mut *self.backend.read().await?, page).await
    }

    async fn list_services(&self, page: &PageRequest) -> StoreResult<Page<Service>> {
        self.backend.settle().await?;
        entities::list_services(&mut *self.backend.read().await?, page).await
    }

    async fn counts(&self) -> StoreResult<Counts> {
        self.backend.settle().await?;
        analytics::counts(&mut *self.backend.read().await?).await
    }

    async fn billing_data(&self) -> StoreResult<BillingData> {
        self.backend.settle().await?;
        analytics::billing_data(&mut *self.backend.snapshot().await?).await
    }

    async fn cost_data(&self) -> StoreResult<CostData> {
        self.backend.settle().await?;
        analytics::cost_data(&mut *self.backend.snapshot().await?).await
    }

    async fn invoice_stats(&self, paid_span: Span, issued_span: Span) -> StoreResult<InvoiceStats> {
        analytics::invoice_stats(&mut *self.backend.read().await?, paid_span, issued_span).await
    }

    async fn usage(&self, query: &UsageQuery) -> StoreResult<Vec<UsageRow>> {
        self.backend.settle().await?;
        rollup::usage(&mut *self.backend.read().await?, query).await
    }

    async fn usage_pieces(
        &self,
        query: &UsageQuery,
        pieces: &[(String, Span)],
    ) -> StoreResult<Vec<UsageRow>> {
        self.backend.settle().await?;
        let lookup = rollup::PieceLookup::for_backend(B::NAME);
        rollup::usage_pieces(&mut *self.backend.snapshot().await?, lookup, query, pieces).await
    }

    async fn active_customers(
        &self,
        kind: EventKind,
        span: Span,
        by_service: bool,
    ) -> StoreResult<ActiveCustomers> {
        self.backend.settle().await?;
        activity::active_customers(&mut *self.backend.read().await?, kind, span, by_service).await
    }

    async fn day_holds_only(&self, kind: EventKind, edge: Span) -> StoreResult<bool> {
        self.backend.settle().await?;
        rollup::day_holds_only(&mut *self.backend.read().await?, kind, edge).await
    }

    async fn preload(&self) -> StoreResult<()> {
        self.backend.settle().await?;
        let all = ingest_activity::all_numbers(&mut *self.backend.read().await?).await?;
        self.numbers.remember(all);
        Ok(())
    }

    async fn customer_numbers(&self, ids: &[&str]) -> StoreResult<Vec<Option<u32>>> {
        self.backend.settle().await?;
        let mut out = self.numbers.known(ids);
        let missing: Vec<&str> = ids
            .iter()
            .zip(&out)
            .filter_map(|(id, n)| n.is_none().then_some(*id))
            .collect();
        if !missing.is_empty() {
            // A plain read sees committed rows only: safe to remember.
            let found = ingest_activity::lookup(&mut *self.backend.read().await?, &missing).await?;
            for (id, n) in ids.iter().zip(out.iter_mut()) {
                if n.is_none() {
                    *n = found.get(*id).copied();
                }
            }
            self.numbers.remember(found.into_iter().collect());
        }
        Ok(out)
    }

    async fn latest_gauge(&self, name: &str, at: Micros) -> StoreResult<Option<f64>> {
        self.backend.settle().await?;
        analytics::latest_gauge(&mut *self.backend.read().await?, name, at).await
    }

    async fn put_api_key(&self, key: &ApiKey) -> StoreResult<()> {
        in_tx!(self, None, access::put_api_key, key)
    }

    async fn find_api_key(&self, secret_hash: &str) -> StoreResult<Option<ApiKey>> {
        access::find_api_key(&mut *self.backend.read().await?, secret_hash).await
    }

    async fn list_api_keys(&self) -> StoreResult<Vec<ApiKey>> {
        access::list_api_keys(&mut *self.backend.read().await?).await
    }

    async fn revoke_api_key(&self, id: &str, at: Micros) -> StoreResult<()> {
        in_tx!(self, None, access::revoke_api_key, id, at)
    }

    async fn list_alert_rules(&self) -> StoreResult<Vec<AlertRule>> {
        access::list_alert_rules(&mut *self.backend.read().await?).await
    }

    async fn put_alert_rule(&self, rule: &AlertRule) -> StoreResult<WriteOutcome> {
        in_tx!(self, Some(Counter::Entities), access::put_alert_rule, rule)
    }

    async fn delete_alert_rule(&self, metric: &str) -> StoreResult<()> {
        in_tx!(
            self,
            Some(Counter::Entities),
            access::delete_alert_rule,
            metric
        )
    }

    async fn append_audit(&self, entry: &AuditEntry) -> StoreResult<()> {
        if self.backend.append_audit_to_log(entry).await? {
            return Ok(());
        }
        in_tx!(self, None, access::append_audit, entry)
    }

    async fn list_audit(&self, page: &PageRequest) -> StoreResult<Page<AuditEntry>> {
        self.backend.settle().await?;
        access::list_audit(&mut *self.backend.read().await?, page).await
    }
}

#[cfg(test)]
mod tests {
    use crate::{SqliteStore, Store};
    use tally_core::event::{Event, EventKind};

    /// An owned batch is answered per event as a borrowed one is: an id twice in the
    /// batch is new the first time only, and an id stored before is not new.
    #[tokio::test]
    async fn owned_batches_are_answered_as_borrowed_ones() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("tally.db"))
            .await
            .unwrap();
        store.migrate().await.unwrap();
        let e = |id: &str| Event::blank(id, EventKind::Usage, 0);
        let batch = vec![e("a"), e("b"), e("a")];
        assert_eq!(
            store.insert_owned_events(batch).await.unwrap(),
            [true, true, false]
        );
        let batch = vec![e("c"), e("b")];
        assert_eq!(
            store.insert_owned_events(batch).await.unwrap(),
            [true, false]
        );
        assert!(store.insert_owned_events(vec![]).await.unwrap().is_empty());
        assert_eq!(store.counts().await.unwrap().events, 3);
    }

    /// A second process on the same database knows no numbers until it preloads them;
    /// then it knows exactly the numbers the first one assigned.
    #[tokio::test]
    async fn preload_reads_every_committed_number() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tally.db");
        let first = SqliteStore::open(&path).await.unwrap();
        first.migrate().await.unwrap();
        let ids = ["c-1", "c-2", "c-3"];
        let events: Vec<Event> = ids
            .iter()
            .enumerate()
            .map(|(i, c)| Event {
                customer_id: Some((*c).into()),
                service: Some("api".into()),
                ..Event::blank(format!("e{i}"), EventKind::Usage, 1_000_000 * i as i64)
            })
            .collect();
        first.insert_events(&events).await.unwrap();
        let assigned = first.customer_numbers(&ids).await.unwrap();
        assert!(assigned.iter().all(Option::is_some));

        let second = SqliteStore::open(&path).await.unwrap();
        assert_eq!(second.numbers.known(&ids), vec![None; 3]);
        second.preload().await.unwrap();
        assert_eq!(second.numbers.known(&ids), assigned);
        assert_eq!(second.numbers.known(&["never-seen"]), vec![None]);
    }
}
