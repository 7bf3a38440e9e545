//! The demo dataset: a made-up SaaS business with two and a half years of customers,
//! subscriptions, invoices, costs and marketing spend, and 90 days of metered usage,
//! health checks and gauges, written through the [`Store`] like real data.
//!
//! Generation is deterministic: the same seed and end date give the same data, ids
//! included, so a second run over the same store changes nothing (every write is an
//! upsert, every event id is deduplicated). It runs in two phases: [`plan`] builds the
//! entities in memory (pure, and what the tests inspect), and [`generate`] writes them and
//! streams the events, producing each batch while the previous one is being stored.

mod billing;
mod catalog;
mod events;
mod finance;
mod names;
mod random;
#[cfg(test)]
mod tests;

pub use billing::Billing;
pub use events::{EventCounts, EventStream};

use anyhow::Context;
use chrono::NaiveDate;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use std::time::{Duration, Instant};
use tally_core::event::Event;
use tally_core::model::*;
use tally_core::pricing::PriceTable;
use tally_core::time::{day_start, Micros, Month, MICROS_PER_DAY};
use tally_store::{Counts, EntityWrite, Store};

#[derive(Debug, Clone)]
pub struct DemoOptions {
    pub seed: u64,
    /// The dataset's "today": nothing happens after the end of this UTC day.
    pub end: NaiveDate,
    /// Customers who sign up over the history.
    pub customers: usize,
    /// Usage events over the last `event_days` days (health checks and gauges come on top).
    pub events: usize,
    /// Calendar months of history, the month of `end` included.
    pub months: u32,
    pub event_days: u32,
    /// Events per `insert_events` call.
    pub batch_size: usize,
    /// Prices LLM calls as ingestion would: pass the installation's table so stored costs
    /// match what its own ingestion computes.
    pub prices: PriceTable,
    /// How the business behaves over its history (growth, churn, team subscriptions).
    pub shape: Shape,
}

/// How the business behaves over its history, apart from its size. The customers' lives
/// follow the same rules under every shape (trials, conversions, plan and seat changes,
/// dunning, win-backs); a shape scales the rates that set how many subscriptions and
/// invoices a customer accumulates.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Shape {
    /// Signups of a month relative to the month before, seasonality aside.
    pub signup_growth: f64,
    /// Multiplies the odds of cancelling at each renewal.
    pub churn: f64,
    /// Odds, for each month a customer pays for its first subscription, that another of
    /// its teams takes a subscription of its own alongside (0: one subscription at a time).
    pub teams: f64,
}

impl Shape {
    /// `tally demo`'s business: young (30 months with [`DemoOptions::default`]) and
    /// growing fast, one subscription at a time per customer: about 0.96 subscriptions
    /// and 3.8 invoices per customer.
    pub const YOUNG: Shape = Shape {
        signup_growth: 1.075,
        churn: 1.0,
        teams: 0.0,
    };
    /// The benchmark's business (with [`DemoOptions::established`]): five years old,
    /// growing more slowly, retaining better, and selling to several teams of a customer:
    /// 1.5 subscriptions and 12 invoices per customer, the proportions of the benchmark's
    /// scales (L: 100,000 customers, 150,000 subscriptions, 1,200,000 invoices).
    pub const ESTABLISHED: Shape = Shape {
        signup_growth: 1.022,
        churn: 0.65,
        teams: 0.066,
    };
}

/// History of [`Shape::ESTABLISHED`]: five years.
pub const ESTABLISHED_MONTHS: u32 = 60;

impl Default for DemoOptions {
    fn default() -> Self {
        DemoOptions {
            seed: 42,
            end: chrono::Utc::now().date_naive(),
            customers: 2_400,
            events: 1_200_000,
            months: 30,
            event_days: 90,
            batch_size: 10_000,
            prices: PriceTable::builtin(1000.into()),
            shape: Shape::YOUNG,
        }
    }
}

impl DemoOptions {
    /// The same options for the benchmark's established business: five years of history
    /// and [`Shape::ESTABLISHED`].
    pub fn established(self) -> DemoOptions {
        DemoOptions {
            months: ESTABLISHED_MONTHS,
            shape: Shape::ESTABLISHED,
            ..self
        }
    }
}

/// The time frame of a dataset, derived from the options.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    pub first_month: Month,
    pub months: usize,
    /// Last instant of the end day.
    pub end: Micros,
    /// First instant of the first day with events.
    pub events_from: Micros,
    pub event_days: usize,
}

impl Window {
    pub fn new(opts: &DemoOptions) -> Window {
        let end_day = day_start(opts.end);
        let months = opts.months.max(1) as usize;
        Window {
            first_month: Month::of(end_day).add(1 - months as i32),
            months,
            end: end_day + MICROS_PER_DAY - 1,
            events_from: end_day - (opts.event_days as i64 - 1) * MICROS_PER_DAY,
            event_days: opts.event_days as usize,
        }
    }
}

/// Every entity of the dataset, before anything is written.
#[derive(Debug, Clone, PartialEq)]
pub struct DemoPlan {
    pub window_end: Micros,
    pub plans: Vec<Plan>,
    pub services: Vec<Service>,
    pub billing: Billing,
    pub costs: Vec<CostRecord>,
    pub spend: Vec<MarketingSpend>,
}

pub fn plan(opts: &DemoOptions) -> DemoPlan {
    let window = Window::new(opts);
    let billing = billing::generate(opts.seed, opts.customers, &opts.shape, &window);
    let (costs, spend) = finance::costs(opts.seed, &billing, &window);
    DemoPlan {
        window_end: window.end,
        plans: catalog::plans(),
        services: catalog::services(),
        billing,
        costs,
        spend,
    }
}

impl DemoPlan {
    /// The events that go with this plan, a day at a time.
    pub fn event_stream(&self, opts: &DemoOptions) -> EventStream {
        EventStream::new(opts, &self.billing, &Window::new(opts))
    }

    /// Rows the store holds after the plan and `events` are written.
    pub fn counts(&self, events: &EventCounts) -> Counts {
        Counts {
            plans: self.plans.len() as i64,
            customers: self.billing.customers.len() as i64,
            subscriptions: self.billing.subscriptions.len() as i64,
            subscription_changes: self.billing.changes.len() as i64,
            invoices: self.billing.invoices.len() as i64,
            costs: self.costs.len() as i64,
            marketing_spend: self.spend.len() as i64,
            services: self.services.len() as i64,
            events: events.total() as i64,
        }
    }

    fn entity_writes(&self) -> usize {
        let b = &self.billing;
        self.plans.len()
            + self.services.len()
            + b.customers.len()
            + b.subscriptions.len()
            + b.changes.len()
            + b.cancellations().count()
            + b.invoices.len()
            + 2
    }
}

#[derive(Debug, Clone)]
pub struct DemoSummary {
    /// What the dataset holds, in the store's terms.
    pub counts: Counts,
    pub cancellations: usize,
    pub events: EventCounts,
    /// Entity writes that created or changed a row (0 when the store already held the demo).
    pub entities_written: usize,
    /// Events stored now rather than found already stored.
    pub events_inserted: usize,
    /// Time spent on the entities, and in all.
    pub entities_elapsed: Duration,
    pub elapsed: Duration,
}

impl DemoSummary {
    /// True when the run found everything already in place.
    pub fn already_present(&self) -> bool {
        self.entities_written == 0 && self.events_inserted == 0
    }
}

/// Writes the demo dataset into `store`, with progress bars under `progress` (draw them to
/// a hidden target to run quietly).
pub async fn generate(
    store: &dyn Store,
    opts: &DemoOptions,
    progress: &MultiProgress,
) -> anyhow::Result<DemoSummary> {
    let started = Instant::now();
    anyhow::ensure!(opts.batch_size > 0, "batch size must be at least 1");
    let plan = plan(opts);
    let stream = plan.event_stream(opts);
    let event_counts = stream.counts();

    let bar = progress.add(ProgressBar::new(plan.entity_writes() as u64));
    bar.set_style(style());
    bar.set_prefix("entities");
    let entities_written = write_entities(store, &plan, &bar).await?;
    bar.finish();
    let entities_elapsed = started.elapsed();

    let bar = progress.add(ProgressBar::new(event_counts.total() as u64));
    bar.set_style(style());
    bar.set_prefix("events");
    let events_inserted = write_events(store, stream, opts.batch_size, &bar).await?;
    bar.finish();
    // A bulk load: give the query planner statistics before anything reads the data.
    store
        .analyze()
        .await
        .context("refreshing the planner statistics")?;

    Ok(DemoSummary {
        counts: plan.counts(&event_counts),
        cancellations: plan.billing.cancellations().count(),
        events: event_counts,
        entities_written,
        events_inserted,
        entities_elapsed,
        elapsed: started.elapsed(),
    })
}

fn style() -> ProgressStyle {
    ProgressStyle::with_template(
        "{prefix:>9} [{elapsed_precise}] {wide_bar} {human_pos}/{human_len} ({per_sec}, {eta})",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar())
}

/// Entity writes per transaction. One commit per entity made a bulk load wait for a
/// disk flush per entity (L's 1.6 M writes took 26 minutes on either store); a thousand
/// keep each transaction short for the writers it holds up.
const ENTITY_BATCH: usize = 1000;

/// Writes entities in dependency order: plans and customers before the subscriptions that
/// name them, subscriptions before their changes and cancellations; batches of
/// [`ENTITY_BATCH`] in one transaction each, in that order.
async fn write_entities(
    store: &dyn Store,
    plan: &DemoPlan,
    bar: &ProgressBar,
) -> anyhow::Result<usize> {
    let b = &plan.billing;
    let writes: Vec<EntityWrite> = plan
        .services
        .iter()
        .map(EntityWrite::Service)
        .chain(plan.plans.iter().map(EntityWrite::Plan))
        .chain(b.customers.iter().map(EntityWrite::Customer))
        .chain(b.subscriptions.iter().map(EntityWrite::Subscription))
        .chain(b.changes.iter().map(EntityWrite::Change))
        .chain(
            b.cancellations()
                .map(|(subscription_id, effective_at)| EntityWrite::Cancel {
                    subscription_id,
                    effective_at,
                }),
        )
        .chain(b.invoices.iter().map(EntityWrite::Invoice))
        .collect();
    let mut written = 0;
    for (n, chunk) in writes.chunks(ENTITY_BATCH).enumerate() {
        let outcomes = store.write_entities(chunk).await.with_context(|| {
            let first = n * ENTITY_BATCH;
            let name = |w: Option<&EntityWrite>| w.map(|w| w.to_string()).unwrap_or_default();
            format!(
                "writing entities {first}..{} ({} to {})",
                first + chunk.len(),
                name(chunk.first()),
                name(chunk.last())
            )
        })?;
        written += outcomes
            .iter()
            .filter(|o| **o != WriteOutcome::Unchanged)
            .count();
        bar.inc(chunk.len() as u64);
    }
    let mut count = |outcome: WriteOutcome| {
        bar.inc(1);
        if outcome != WriteOutcome::Unchanged {
            written += 1;
        }
    };
    let costs = store
        .put_costs(&plan.costs)
        .await
        .context("writing costs")?;
    count(if costs.iter().all(|o| *o == WriteOutcome::Unchanged) {
        WriteOutcome::Unchanged
    } else {
        WriteOutcome::Updated
    });
    let spend = store
        .put_spend(&plan.spend)
        .await
        .context("writing marketing spend")?;
    count(if spend.iter().all(|o| *o == WriteOutcome::Unchanged) {
        WriteOutcome::Unchanged
    } else {
        WriteOutcome::Updated
    });
    Ok(written)
}

/// Stores the stream in batches; the next batch is generated on a blocking thread while
/// the store works on the current one.
async fn write_events(
    store: &dyn Store,
    mut stream: EventStream,
    batch_size: usize,
    bar: &ProgressBar,
) -> anyhow::Result<usize> {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<Event>>(2);
    let producer = tokio::task::spawn_blocking(move || {
        let mut batch = Vec::with_capacity(batch_size);
        while let Some(day) = stream.next_day() {
            for e in day {
                batch.push(e);
                if batch.len() == batch_size {
                    let full = std::mem::replace(&mut batch, Vec::with_capacity(batch_size));
                    if tx.blocking_send(full).is_err() {
                        return;
                    }
                }
            }
        }
        if !batch.is_empty() {
            let _ = tx.blocking_send(batch);
        }
    });
    let mut inserted = 0;
    while let Some(batch) = rx.recv().await {
        let stored = store
            .insert_events(&batch)
            .await
            .context("storing demo events")?;
        inserted += stored.iter().filter(|&&new| new).count();
        bar.inc(batch.len() as u64);
    }
    producer.await.context("event generator panicked")?;
    Ok(inserted)
}
