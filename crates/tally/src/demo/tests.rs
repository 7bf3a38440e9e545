use super::catalog::{Tier, PLANS};
use super::*;
use std::collections::{BTreeSet, HashMap, HashSet};
use tally_core::event::{CostSource, EventInput, EventKind};
use tally_core::pricing::PriceTable;
use tally_core::time::{format_micros, Month};

fn small() -> DemoOptions {
    DemoOptions {
        seed: 7,
        end: NaiveDate::from_ymd_opt(2025, 11, 20).unwrap(),
        customers: 2_000,
        events: 40_000,
        months: 30,
        event_days: 30,
        batch_size: 5_000,
        ..DemoOptions::default()
    }
}

fn all_events(plan: &DemoPlan, opts: &DemoOptions) -> Vec<Event> {
    let mut stream = plan.event_stream(opts);
    let mut out = Vec::new();
    while let Some(day) = stream.next_day() {
        out.extend(day);
    }
    out
}

#[test]
fn same_seed_same_data() {
    let opts = DemoOptions {
        customers: 300,
        events: 3_000,
        ..small()
    };
    let a = plan(&opts);
    let b = plan(&opts);
    assert_eq!(a, b);
    assert_eq!(all_events(&a, &opts), all_events(&b, &opts));
    let other = plan(&DemoOptions {
        seed: 8,
        ..opts.clone()
    });
    assert_ne!(a.billing.customers, other.billing.customers);
}

#[test]
fn dataset_has_what_a_saas_operator_expects() {
    let opts = small();
    let p = plan(&opts);
    let b = &p.billing;
    let end = p.window_end;

    // Customers: the count asked for, ids unique, over two years and more, growing.
    assert_eq!(b.customers.len(), opts.customers);
    let ids: HashSet<_> = b.customers.iter().map(|c| &c.id).collect();
    assert_eq!(ids.len(), b.customers.len());
    let first = b.customers.iter().map(|c| c.created_at).min().unwrap();
    let last = b.customers.iter().map(|c| c.created_at).max().unwrap();
    assert!(last <= end);
    assert!(Month::of(last).index() - Month::of(first).index() >= 24);
    let mut per_month: HashMap<Month, usize> = HashMap::new();
    for c in &b.customers {
        *per_month.entry(Month::of(c.created_at)).or_default() += 1;
    }
    let m0 = Month::of(first);
    let early: usize = (0..6)
        .map(|i| per_month.get(&m0.add(i)).copied().unwrap_or(0))
        .sum();
    let late: usize = (18..24)
        .map(|i| per_month.get(&m0.add(i)).copied().unwrap_or(0))
        .sum();
    assert!(
        late > 2 * early,
        "signups grow: {early} early, {late} later"
    );
    let channels: HashSet<_> = b
        .customers
        .iter()
        .filter_map(|c| c.channel.as_deref())
        .collect();
    assert!(channels.len() >= 6, "{channels:?}");
    assert!(b
        .customers
        .iter()
        .all(|c| c.name.is_some() && c.email.as_deref().is_some_and(|e| e.contains('@'))));

    // Plans: three tiers, monthly and annual at ten months.
    let tiers: HashSet<_> = p.plans.iter().map(|p| p.tier.as_str()).collect();
    assert_eq!(
        tiers,
        HashSet::from(["starter", "professional", "enterprise"])
    );
    for t in Tier::ALL {
        let m = PLANS
            .iter()
            .find(|p| p.tier == t && p.interval == Interval::Month)
            .unwrap();
        let y = PLANS
            .iter()
            .find(|p| p.tier == t && p.interval == Interval::Year)
            .unwrap();
        assert_eq!(y.amount, 10 * m.amount);
    }

    // Subscriptions: on every plan tier and interval, trials, conversions and lapses.
    let used_plans: HashSet<_> = b.subscriptions.iter().map(|s| s.plan_id.as_str()).collect();
    for plan in &p.plans {
        assert!(
            used_plans.contains(plan.id.as_str()),
            "no subscription on {}",
            plan.id
        );
    }
    let trials: Vec<_> = b
        .subscriptions
        .iter()
        .filter(|s| s.trial_ends_at.is_some())
        .collect();
    assert!(trials.len() > b.subscriptions.len() / 2);
    assert!(trials
        .iter()
        .all(|s| s.trial_ends_at == Some(s.started_at + 14 * MICROS_PER_DAY)));
    let lapsed = trials
        .iter()
        .filter(|s| s.canceled_at.is_some_and(|c| c <= s.trial_ends_at.unwrap()))
        .count();
    assert!(
        lapsed > trials.len() / 5 && lapsed < trials.len() * 3 / 5,
        "{lapsed} of {} trials lapsed",
        trials.len()
    );
    assert!(b
        .subscriptions
        .iter()
        .all(|s| s.started_at <= end && s.canceled_at.is_none_or(|c| c <= end)));

    // Changes: upgrades, downgrades, seats, discounts.
    let tier_of = |id: &str| {
        PLANS
            .iter()
            .position(|p| p.id == id)
            .map(|i| PLANS[i].tier)
            .unwrap()
    };
    let subs: HashMap<_, _> = b.subscriptions.iter().map(|s| (s.id.as_str(), s)).collect();
    let (mut up, mut down, mut seats, mut discounts) = (0, 0, 0, 0);
    let mut plan_now: HashMap<&str, &str> = HashMap::new();
    for ch in &b.changes {
        let sub = subs[ch.subscription_id.as_str()];
        assert!(ch.effective_at > sub.started_at && ch.effective_at <= end);
        let before = *plan_now
            .get(sub.id.as_str())
            .unwrap_or(&sub.plan_id.as_str());
        if let Some(after) = &ch.plan_id {
            match tier_of(after).cmp(&tier_of(before)) {
                std::cmp::Ordering::Greater => up += 1,
                std::cmp::Ordering::Less => down += 1,
                std::cmp::Ordering::Equal => {}
            }
            plan_now.insert(sub.id.as_str(), after.as_str());
        }
        seats += ch.quantity.is_some() as usize;
        discounts += ch.discount_percent.is_some() as usize;
    }
    assert!(
        up > 10 && down > 3 && seats > 10 && discounts > 0,
        "up {up} down {down} seats {seats} discounts {discounts}"
    );

    // Cancellations and win-backs.
    let cancelled = b.cancellations().count();
    assert!(cancelled > b.subscriptions.len() / 4);
    let mut per_customer: HashMap<&str, usize> = HashMap::new();
    for s in &b.subscriptions {
        *per_customer.entry(s.customer_id.as_str()).or_default() += 1;
    }
    let reactivated = per_customer.values().filter(|&&n| n > 1).count();
    assert!(reactivated > 10, "{reactivated} reactivations");

    // Invoices: mostly paid, a few failed, some open at the end, every one in the past.
    let status = |s: InvoiceStatus| b.invoices.iter().filter(|i| i.status == s).count();
    let n = b.invoices.len() as f64;
    assert!(status(InvoiceStatus::Paid) as f64 > 0.9 * n);
    let failed = status(InvoiceStatus::Failed) as f64 / n;
    assert!((0.025..0.06).contains(&failed), "failed share {failed}");
    assert!(status(InvoiceStatus::Open) > 0 && status(InvoiceStatus::Void) > 0);
    let invoice_ids: HashSet<_> = b.invoices.iter().map(|i| &i.id).collect();
    assert_eq!(invoice_ids.len(), b.invoices.len());
    for i in &b.invoices {
        assert!(i.issued_at <= end && i.amount > 0);
        assert_eq!(
            i.paid_at.is_some(),
            i.status == InvoiceStatus::Paid,
            "{i:?}"
        );
        assert!(i.paid_at.is_none_or(|p| p >= i.issued_at && p <= end));
    }

    // Costs and spend: every month, every service, channels of the customers.
    let months: BTreeSet<_> = p.costs.iter().map(|c| c.month).collect();
    assert_eq!(months.len(), opts.months as usize);
    assert_eq!(p.costs.len(), months.len() * (p.services.len() + 1));
    let spend_channels: HashSet<_> = p.spend.iter().map(|s| s.channel.as_str()).collect();
    assert!(spend_channels.len() >= 5 && spend_channels.iter().all(|c| channels.contains(c)));
    assert!(p.services.len() >= 5);
}

/// The benchmark's business: the proportions of the benchmark's scales (L: 100,000
/// customers, 150,000 subscriptions, 1,200,000 invoices), reached by a longer history,
/// better retention and other teams' subscriptions, not by different rules.
#[test]
fn established_business_has_the_benchmarks_proportions() {
    let opts = DemoOptions {
        customers: 4_000,
        events: 0,
        ..small()
    }
    .established();
    let p = plan(&opts);
    let b = &p.billing;
    let n = b.customers.len() as f64;
    // The shape is set for 1.5 and 12 per customer. A customer's count of subscriptions
    // varies little (one, plus a few teams and win-backs), its count of invoices a lot
    // (from none to one a month for five years per subscription): at 1,000 customers the
    // mean moved by about 1.5 % and 5 % between seeds, so at 4,000 by about half that.
    // Bounds: the benchmark's ±5 %, plus two of those deviations.
    let subs = b.subscriptions.len() as f64 / n;
    let invoices = b.invoices.len() as f64 / n;
    assert!(
        (1.40..=1.60).contains(&subs),
        "{subs} subscriptions per customer"
    );
    assert!(
        (10.8..=13.2).contains(&invoices),
        "{invoices} invoices per customer"
    );

    // Five years of signups; every plan in use; churn and win-backs as before.
    let first = b.customers.iter().map(|c| c.created_at).min().unwrap();
    let last = b.customers.iter().map(|c| c.created_at).max().unwrap();
    assert!(Month::of(last).index() - Month::of(first).index() >= 57);
    let used: HashSet<_> = b.subscriptions.iter().map(|s| s.plan_id.as_str()).collect();
    assert_eq!(used.len(), p.plans.len());
    let cancelled = b.cancellations().count();
    assert!(
        cancelled > b.subscriptions.len() / 5,
        "{cancelled} cancelled"
    );
    assert!(b.subscriptions.iter().any(|s| s.id.ends_with("_2")));

    // Other teams: no trial, while the customer's first subscription is paid for.
    let by_id: HashMap<_, _> = b.subscriptions.iter().map(|s| (s.id.as_str(), s)).collect();
    let mut per_customer: HashMap<&str, usize> = HashMap::new();
    let mut teams = 0;
    for s in &b.subscriptions {
        *per_customer.entry(s.customer_id.as_str()).or_default() += 1;
        let Some((base, _)) = s.id.split_once("_t") else {
            continue;
        };
        teams += 1;
        assert_eq!(s.trial_ends_at, None, "{}", s.id);
        let first = by_id[format!("{base}_1").as_str()];
        assert_eq!(first.customer_id, s.customer_id);
        assert!(first.trial_ends_at.unwrap_or(first.started_at) <= s.started_at);
        assert!(
            first.canceled_at.is_none_or(|c| s.started_at < c),
            "{}",
            s.id
        );
    }
    assert!(teams as f64 > 0.3 * n, "{teams} teams' subscriptions");
    assert!(per_customer.values().all(|&k| k <= 6));
    // Customers with more than one subscription running at the end.
    let running: HashMap<&str, usize> = b
        .subscriptions
        .iter()
        .filter(|s| s.canceled_at.is_none())
        .fold(HashMap::new(), |mut m, s| {
            *m.entry(s.customer_id.as_str()).or_default() += 1;
            m
        });
    assert!(running.values().filter(|&&k| k > 1).count() as f64 > 0.1 * n);

    // `tally demo`'s business, the same customers: one subscription at a time, few
    // win-backs, 30 months of a fast-growing business; under one of each per customer
    // and a few invoices.
    let young = plan(&DemoOptions {
        customers: 4_000,
        events: 0,
        ..small()
    });
    let yb = &young.billing;
    assert!((yb.subscriptions.len() as f64) < n);
    assert!((yb.invoices.len() as f64) < 5.0 * n);
}

#[test]
fn events_come_from_active_customers_and_look_real() {
    let opts = small();
    let p = plan(&opts);
    let events = all_events(&p, &opts);
    let counts = p.event_stream(&opts).counts();
    assert_eq!(events.len(), counts.total());
    assert_eq!(counts.usage, opts.events);
    let ids: HashSet<_> = events.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids.len(), events.len(), "event ids are unique");

    let window_start = p.window_end + 1 - opts.event_days as i64 * MICROS_PER_DAY;
    let usage: Vec<_> = events
        .iter()
        .filter(|e| e.kind == EventKind::Usage)
        .collect();
    let timelines = &p.billing.timelines;
    for e in &usage {
        assert!(e.time >= window_start && e.time <= p.window_end);
        let c: usize = e.customer_id.as_deref().unwrap()[4..]
            .parse::<usize>()
            .unwrap()
            - 1;
        assert!(
            timelines.iter().any(|t| t.customer == c
                && t.start <= e.time
                && t.end.is_none_or(|end| e.time < end)),
            "{} used {} at {} without an active subscription",
            e.customer_id.as_deref().unwrap(),
            e.service.as_deref().unwrap(),
            format_micros(e.time)
        );
    }

    let services: HashSet<_> = usage.iter().filter_map(|e| e.service.as_deref()).collect();
    assert_eq!(services.len(), 5);
    let llm: Vec<_> = usage.iter().filter(|e| e.model.is_some()).collect();
    let models: HashSet<_> = llm.iter().filter_map(|e| e.model.as_deref()).collect();
    let providers: HashSet<_> = llm.iter().filter_map(|e| e.provider.as_deref()).collect();
    assert!(
        models.len() >= 6 && providers.len() >= 4,
        "{models:?} {providers:?}"
    );
    let hits = llm.iter().filter(|e| e.cache_hit == Some(true)).count() as f64 / llm.len() as f64;
    assert!((0.18..0.32).contains(&hits), "cache hit rate {hits}");
    let with_status: Vec<_> = usage.iter().filter_map(|e| e.status_code).collect();
    let errors =
        with_status.iter().filter(|&&s| s >= 500).count() as f64 / with_status.len() as f64;
    assert!((0.004..0.025).contains(&errors), "5xx rate {errors}");
    assert!(with_status.iter().any(|&s| (400..500).contains(&s)));
    let priced = llm
        .iter()
        .filter(|e| e.cost_source == CostSource::Priced)
        .count() as f64
        / llm.len() as f64;
    assert!(
        priced > 0.6,
        "most LLM calls are priced by tally ({priced})"
    );
    assert!(llm
        .iter()
        .any(|e| e.cost_source == CostSource::Given && e.cost > 0));
    // Cache hits answer fast.
    let mean = |hit: bool| {
        let l: Vec<f64> = llm
            .iter()
            .filter(|e| e.cache_hit == Some(hit))
            .filter_map(|e| e.latency_ms)
            .collect();
        l.iter().sum::<f64>() / l.len() as f64
    };
    assert!(mean(true) * 10.0 < mean(false));
    // Larger tiers use more.
    let tier_at = |c: usize, t: i64| {
        timelines
            .iter()
            .find(|tl| tl.customer == c && tl.start <= t && tl.end.is_none_or(|e| t < e))
            .map(|tl| {
                if tl.in_trial(t) {
                    None
                } else {
                    Some(PLANS[tl.segment_at(t).plan].tier)
                }
            })
            .unwrap()
    };
    let mut per_tier: HashMap<Option<Tier>, usize> = HashMap::new();
    for e in &usage {
        let c = e.customer_id.as_deref().unwrap()[4..]
            .parse::<usize>()
            .unwrap()
            - 1;
        *per_tier.entry(tier_at(c, e.time)).or_default() += 1;
    }
    assert!(
        per_tier.len() == 4,
        "trial and all tiers use the product: {per_tier:?}"
    );

    let checks: Vec<_> = events
        .iter()
        .filter(|e| e.kind == EventKind::HealthCheck)
        .collect();
    assert_eq!(checks.len(), opts.event_days as usize * 288 * 5);
    let down = checks.iter().filter(|e| e.up == Some(false)).count();
    assert!(
        down > 0 && down < checks.len() / 100,
        "{down} failed checks"
    );
    assert!(events
        .iter()
        .any(|e| e.kind == EventKind::Gauge
            && e.gauge_name.as_deref() == Some("llm_cache_size_bytes")));
}

/// The generator builds events directly; the ingestion path must agree with it.
#[test]
fn events_match_what_ingestion_would_store() {
    let opts = DemoOptions {
        customers: 200,
        events: 4_000,
        event_days: 7,
        // An installation's own rate, to show the generator prices as it would.
        prices: PriceTable::builtin(250.into()),
        ..small()
    };
    let p = plan(&opts);
    let prices = &opts.prices;
    for e in all_events(&p, &opts).into_iter().step_by(7) {
        let input = EventInput {
            id: e.id.clone(),
            time: format_micros(e.time),
            kind: Some(e.kind.as_str().to_string()),
            customer_id: e.customer_id.clone(),
            service: e.service.clone(),
            quantity: Some(tally_core::money::from_micros(e.quantity as i128)),
            unit: e.unit.clone(),
            model: e.model.clone(),
            provider: e.provider.clone(),
            input_tokens: Some(e.input_tokens),
            cache_read_tokens: Some(e.cache_read_tokens),
            cache_write_tokens: Some(e.cache_write_tokens),
            output_tokens: Some(e.output_tokens),
            cache_hit: e.cache_hit,
            latency_ms: e.latency_ms,
            status_code: e.status_code.map(i64::from),
            cost_credits: (e.cost_source == CostSource::Given)
                .then(|| tally_core::money::from_micros(e.cost as i128)),
            up: e.up,
            name: e.gauge_name.clone(),
            value: e.gauge_value,
        };
        assert_eq!(input.validate(prices).unwrap(), e);
    }
}

/// The whole path through a real store: what the plan promises is what the store holds,
/// and a second run changes nothing.
async fn generates_idempotently_into(store: &dyn Store) {
    let opts = DemoOptions {
        customers: 80,
        events: 6_000,
        months: 24,
        event_days: 5,
        batch_size: 2_500,
        ..small()
    };
    let quiet = MultiProgress::with_draw_target(indicatif::ProgressDrawTarget::hidden());

    let first = generate(store, &opts, &quiet).await.unwrap();
    assert_eq!(store.counts().await.unwrap(), first.counts);
    assert_eq!(first.events_inserted as i64, first.counts.events);
    assert!(!first.already_present());

    let p = plan(&opts);
    let stored = store.billing_data().await.unwrap();
    let by_id = |mut v: Vec<Subscription>| {
        v.sort_by(|a, b| a.id.cmp(&b.id));
        v
    };
    assert_eq!(
        by_id(stored.subscriptions),
        by_id(p.billing.subscriptions.clone())
    );
    assert_eq!(stored.changes.len(), p.billing.changes.len());

    let second = generate(store, &opts, &quiet).await.unwrap();
    assert!(second.already_present(), "{second:?}");
    assert_eq!(store.counts().await.unwrap(), first.counts);
}

#[tokio::test]
async fn generates_into_sqlite_idempotently() {
    let ts = tally_testkit::TestStore::sqlite().await;
    generates_idempotently_into(ts.store.as_ref()).await;
}

#[tokio::test]
async fn generates_into_postgres_idempotently() {
    let Some(ts) = tally_testkit::TestStore::postgres().await else {
        eprintln!("{} unset: skipped", tally_testkit::PG_ENV);
        return;
    };
    generates_idempotently_into(ts.store.as_ref()).await;
}

/// The default dataset into SQLite, timed: `cargo test --release -p tally --lib
/// demo::tests::default_dataset_into_sqlite -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "takes a release build and a minute"]
async fn default_dataset_into_sqlite() {
    let opts = DemoOptions {
        end: NaiveDate::from_ymd_opt(2025, 11, 20).unwrap(),
        ..DemoOptions::default()
    };
    let ts = tally_testkit::TestStore::sqlite().await;
    let summary = generate(ts.store.as_ref(), &opts, &MultiProgress::new())
        .await
        .unwrap();
    eprintln!("{summary:#?}");
    assert_eq!(ts.store.counts().await.unwrap(), summary.counts);
    let again = generate(ts.store.as_ref(), &opts, &MultiProgress::new())
        .await
        .unwrap();
    eprintln!(
        "second run: {:?}, already present: {}",
        again.elapsed,
        again.already_present()
    );
}

/// The benchmark's entities written through a store, timed (the bench's first step):
/// `TALLY_DEMO_CUSTOMERS=10000 cargo test --release -p tally --lib
/// demo::tests::benchmark_entities_into_sqlite -- --ignored --nocapture` (1,000 customers
/// by default; `..._into_postgres` with `TALLY_TEST_DATABASE_URL` set).
async fn benchmark_entities_timed(store: &dyn Store) {
    let customers = std::env::var("TALLY_DEMO_CUSTOMERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000);
    let opts = DemoOptions {
        seed: 42,
        end: NaiveDate::from_ymd_opt(2025, 11, 27).unwrap(),
        customers,
        events: 0,
        ..DemoOptions::default()
    }
    .established();
    let writes = plan(&opts).entity_writes();
    let quiet = MultiProgress::with_draw_target(indicatif::ProgressDrawTarget::hidden());
    let summary = generate(store, &opts, &quiet).await.unwrap();
    let health = summary.counts.events as f64;
    eprintln!(
        "{customers} customers: {writes} entity writes and {health} health checks and gauges in {:.1} s ({:.3} ms per entity write, events included); {:#?}",
        summary.entities_elapsed.as_secs_f64(),
        summary.entities_elapsed.as_secs_f64() * 1e3 / writes as f64,
        summary.counts
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement; takes a release build"]
async fn benchmark_entities_into_sqlite() {
    let ts = tally_testkit::TestStore::sqlite().await;
    benchmark_entities_timed(ts.store.as_ref()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement; takes a release build"]
async fn benchmark_entities_into_postgres() {
    let Some(ts) = tally_testkit::TestStore::postgres().await else {
        eprintln!("{} unset: skipped", tally_testkit::PG_ENV);
        return;
    };
    benchmark_entities_timed(ts.store.as_ref()).await;
}
