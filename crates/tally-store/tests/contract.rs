//! The store contract: one suite, run unchanged against SQLite (always) and PostgreSQL
//! (when `TALLY_TEST_DATABASE_URL` names a server; each test gets a fresh database).
//!
//! Every expected value below is worked out by hand from the data the test writes.

use rust_decimal::Decimal;
use std::collections::BTreeSet;
use std::str::FromStr;
use std::sync::atomic::{AtomicU32, Ordering};
use tally_core::event::{CostSource, Event, EventKind};
use tally_core::model::*;
use tally_core::time::{parse_instant, Micros, Month, MICROS_PER_DAY};
use tally_store::*;

// ---- harness ---------------------------------------------------------------------------

/// A database for one test: a file in a temporary directory, or a PostgreSQL database
/// created for the test and dropped after it.
struct TestDb {
    url: String,
    /// (admin URL, database name) on PostgreSQL.
    pg: Option<(String, String)>,
    _dir: Option<tempfile::TempDir>,
}

const PG_ENV: &str = "TALLY_TEST_DATABASE_URL";

impl TestDb {
    fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().unwrap();
        // A directory that does not exist yet: opening must create it.
        let path = dir.path().join("data").join("tally.db");
        TestDb {
            url: format!("sqlite://{}", path.display()),
            pg: None,
            _dir: Some(dir),
        }
    }

    async fn postgres() -> Option<TestDb> {
        let Ok(admin) = std::env::var(PG_ENV) else {
            eprintln!("skipped: set {PG_ENV} (e.g. postgres://postgres@127.0.0.1:5432/postgres) to run on PostgreSQL");
            return None;
        };
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let name = format!(
            "tally_test_{}_{}_{}",
            std::process::id(),
            nanos,
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        admin_exec(&admin, &format!("CREATE DATABASE {name}")).await;
        let mut url = url::Url::parse(&admin).expect("TALLY_TEST_DATABASE_URL is a URL");
        url.set_path(&name);
        Some(TestDb {
            url: url.to_string(),
            pg: Some((admin, name)),
            _dir: None,
        })
    }

    async fn drop_database(self) {
        if let Some((admin, name)) = &self.pg {
            admin_exec(
                admin,
                &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
            )
            .await;
        }
    }
}

async fn admin_exec(admin_url: &str, sql: &str) {
    use sqlx::{Connection, Executor};
    let mut conn = sqlx::PgConnection::connect(admin_url)
        .await
        .expect("connect to the admin database");
    conn.execute(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    conn.close().await.ok();
}

/// Runs `test` against `db`, then drops the database whether the test passed or not.
async fn run<F, Fut>(db: TestDb, test: F)
where
    F: FnOnce(String) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let result = tokio::spawn(test(db.url.clone())).await;
    db.drop_database().await;
    if let Err(e) = result {
        std::panic::resume_unwind(e.into_panic());
    }
}

async fn open_migrated(url: &str) -> std::sync::Arc<dyn Store> {
    let store = tally_store::open(url).await.unwrap();
    store.migrate().await.unwrap();
    store
}

/// Generates `sqlite::<name>` and `postgres::<name>` for each contract test: `store` tests
/// get a migrated store, `url` tests the URL of an empty, unmigrated database.
macro_rules! contract_tests {
    (store: [$($s:ident),* $(,)?], url: [$($u:ident),* $(,)?]) => {
        contract_tests!(@backend sqlite, Some(crate::TestDb::sqlite()), [$($s),*], [$($u),*]);
        contract_tests!(@backend postgres, crate::TestDb::postgres().await, [$($s),*], [$($u),*]);
    };
    (@backend $backend:ident, $db:expr, [$($s:ident),*], [$($u:ident),*]) => {
        mod $backend {
            $(
                #[tokio::test]
                async fn $s() {
                    let Some(db) = $db else { return };
                    crate::run(db, |url| async move {
                        let store = crate::open_migrated(&url).await;
                        crate::$s(&*store).await;
                    })
                    .await;
                }
            )*
            $(
                #[tokio::test]
                async fn $u() {
                    let Some(db) = $db else { return };
                    crate::run(db, |url| async move { crate::$u(&url).await }).await;
                }
            )*
        }
    };
}

contract_tests! {
    store: [
        fresh_store_is_empty_with_default_alert_rules,
        plans_upsert,
        customers_upsert,
        subscriptions_are_created_once,
        changes_upsert_by_effective_time,
        cancellations,
        invoices_upsert,
        costs_and_spend_upsert,
        services_upsert,
        events_are_stored_once,
        services_are_registered_by_events,
        usage_aggregates,
        usage_computes_only_the_measures_asked_for,
        usage_filters_and_empty_results,
        usage_equals_a_scan_of_the_events,
        one_customer_across_midnight,
        a_day_holds_only_a_span_without_events_of_its_kind_around_it,
        active_customers_equal_a_scan_of_the_events,
        invoice_stats_by_paid_and_issued_time,
        latest_gauge,
        pagination,
        subscriptions_pages_carry_their_changes,
        billing_and_cost_data,
        api_keys,
        alert_rules,
        audit_log,
        data_version_counts_entity_writes,
        data_version_counts_event_inserts,
        billing_data_carries_its_version,
        entity_writes_in_one_transaction,
    ],
    url: [
        data_survives_reopening,
        concurrent_migrations,
        data_version_is_shared_by_processes,
        concurrent_writes_each_raise_the_version,
        analyze_gathers_statistics_and_changes_no_data,
        activity_of_far_numbers_and_of_older_data,
    ]
}

// ---- fixtures --------------------------------------------------------------------------

const HOUR: Micros = 3_600_000_000;
const DAY: Micros = MICROS_PER_DAY;

/// 2025-11-20T00:00:00Z.
fn t0() -> Micros {
    parse_instant("t", "2025-11-20T00:00:00Z").unwrap()
}

/// Days from 1970-01-01 to 2025-11-20: 55 years with 14 leap days (1972..2024) to
/// 2025-01-01, then 304 days of January to October, then 19.
const DAY0: i64 = 55 * 365 + 14 + 304 + 19;

fn dec(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap()
}

fn plan(id: &str, tier: &str, amount: i64) -> Plan {
    Plan {
        id: id.into(),
        name: format!("{tier} plan"),
        tier: tier.into(),
        interval: Interval::Month,
        amount,
        currency: "USD".into(),
    }
}

fn customer(id: &str) -> Customer {
    Customer {
        id: id.into(),
        name: None,
        email: None,
        created_at: t0(),
        channel: None,
    }
}

fn subscription(id: &str, customer_id: &str, plan_id: &str) -> Subscription {
    Subscription {
        id: id.into(),
        customer_id: customer_id.into(),
        plan_id: plan_id.into(),
        quantity: 1,
        discount_percent: Decimal::ZERO,
        started_at: t0(),
        trial_ends_at: None,
        canceled_at: None,
    }
}

fn invoice(
    id: &str,
    status: InvoiceStatus,
    amount: i64,
    issued_at: Micros,
    paid_at: Option<Micros>,
) -> Invoice {
    Invoice {
        id: id.into(),
        customer_id: "c1".into(),
        amount,
        currency: "USD".into(),
        status,
        issued_at,
        paid_at,
    }
}

fn usage(id: &str, service: &str, time: Micros) -> Event {
    Event {
        service: Some(service.into()),
        ..Event::blank(id, EventKind::Usage, time)
    }
}

fn llm(id: &str, customer: &str, model: &str, provider: &str, time: Micros) -> Event {
    Event {
        customer_id: Some(customer.into()),
        model: Some(model.into()),
        provider: Some(provider.into()),
        ..usage(id, "llm", time)
    }
}

fn gauge(id: &str, name: &str, value: f64, time: Micros) -> Event {
    Event {
        kind: EventKind::Gauge,
        service: None,
        gauge_name: Some(name.into()),
        gauge_value: Some(value),
        ..usage(id, "unused", time)
    }
}

fn health(id: &str, up: bool, latency: Option<f64>, time: Micros) -> Event {
    Event {
        kind: EventKind::HealthCheck,
        up: Some(up),
        latency_ms: latency,
        ..usage(id, "llm", time)
    }
}

fn page(limit: u32, cursor: Option<&str>) -> PageRequest {
    PageRequest {
        limit,
        cursor: cursor.map(str::to_owned),
    }
}

use WriteOutcome::{Created, Unchanged, Updated};

// ---- entities --------------------------------------------------------------------------

async fn fresh_store_is_empty_with_default_alert_rules(s: &dyn Store) {
    s.ping().await.unwrap();
    assert_eq!(s.counts().await.unwrap(), Counts::default());
    assert_eq!(s.list_alert_rules().await.unwrap().len(), 6);
    // Migrating again changes nothing.
    s.migrate().await.unwrap();
    assert_eq!(s.list_alert_rules().await.unwrap().len(), 6);
}

async fn plans_upsert(s: &dyn Store) {
    let p = plan("pro", "pro", 4900);
    assert_eq!(s.put_plan(&p).await.unwrap(), Created);
    assert_eq!(s.put_plan(&p).await.unwrap(), Unchanged);
    let yearly = Plan {
        interval: Interval::Year,
        amount: 49_000,
        ..p.clone()
    };
    assert_eq!(s.put_plan(&yearly).await.unwrap(), Updated);
    assert_eq!(s.put_plan(&yearly).await.unwrap(), Unchanged);
    assert_eq!(s.get_plan("pro").await.unwrap(), Some(yearly));
    assert_eq!(s.get_plan("nope").await.unwrap(), None);
    assert_eq!(s.counts().await.unwrap().plans, 1);
}

async fn customers_upsert(s: &dyn Store) {
    let c = customer("c1");
    assert_eq!(s.put_customer(&c).await.unwrap(), Created);
    let named = Customer {
        name: Some("Ada".into()),
        email: Some("ada@example.com".into()),
        ..c.clone()
    };
    assert_eq!(s.put_customer(&named).await.unwrap(), Updated);
    assert_eq!(s.put_customer(&named).await.unwrap(), Unchanged);
    assert_eq!(s.get_customer("c1").await.unwrap(), Some(named));
    // Clearing an optional field is a change too.
    assert_eq!(s.put_customer(&c).await.unwrap(), Updated);
    assert_eq!(s.get_customer("c1").await.unwrap(), Some(c));
}

async fn subscriptions_are_created_once(s: &dyn Store) {
    let sub = Subscription {
        discount_percent: dec("12.50"),
        ..subscription("s1", "c1", "pro")
    };
    match s.put_subscription(&sub).await {
        Err(StoreError::UnknownReference {
            field: "customer_id",
            kind: "customer",
            id,
        }) => assert_eq!(id, "c1"),
        other => panic!("expected an unknown customer, got {other:?}"),
    }
    s.put_customer(&customer("c1")).await.unwrap();
    match s.put_subscription(&sub).await {
        Err(StoreError::UnknownReference {
            field: "plan_id",
            kind: "plan",
            id,
        }) => assert_eq!(id, "pro"),
        other => panic!("expected an unknown plan, got {other:?}"),
    }
    s.put_plan(&plan("pro", "pro", 4900)).await.unwrap();
    assert_eq!(s.put_subscription(&sub).await.unwrap(), Created);
    assert_eq!(s.put_subscription(&sub).await.unwrap(), Unchanged);
    // The same number written differently is the same content.
    let same = Subscription {
        discount_percent: dec("12.5"),
        ..sub.clone()
    };
    assert_eq!(s.put_subscription(&same).await.unwrap(), Unchanged);
    // `canceled_at` of the argument is ignored.
    let canceled = Subscription {
        canceled_at: Some(t0() + DAY),
        ..sub.clone()
    };
    assert_eq!(s.put_subscription(&canceled).await.unwrap(), Unchanged);

    let more = Subscription {
        quantity: 3,
        ..sub.clone()
    };
    match s.put_subscription(&more).await {
        Err(StoreError::Conflict(message)) => assert_eq!(
            message,
            "subscription `s1` already exists with different content; use /changes or /cancel"
        ),
        other => panic!("expected a conflict, got {other:?}"),
    }
    let record = s.get_subscription("s1").await.unwrap().unwrap();
    assert_eq!(
        record,
        SubscriptionRecord {
            subscription: sub,
            changes: vec![]
        }
    );
    assert_eq!(record.subscription.discount_percent.to_string(), "12.5");
    assert_eq!(s.get_subscription("s2").await.unwrap(), None);
}

async fn changes_upsert_by_effective_time(s: &dyn Store) {
    s.put_customer(&customer("c1")).await.unwrap();
    s.put_plan(&plan("pro", "pro", 4900)).await.unwrap();
    s.put_plan(&plan("team", "team", 9900)).await.unwrap();
    let later = SubscriptionChange {
        subscription_id: "s1".into(),
        effective_at: t0() + 20 * DAY,
        plan_id: Some("team".into()),
        quantity: None,
        discount_percent: None,
    };
    match s.put_change(&later).await {
        Err(StoreError::NotFound {
            kind: "subscription",
            id,
        }) => assert_eq!(id, "s1"),
        other => panic!("expected an unknown subscription, got {other:?}"),
    }
    s.put_subscription(&subscription("s1", "c1", "pro"))
        .await
        .unwrap();
    let bad_plan = SubscriptionChange {
        plan_id: Some("gold".into()),
        ..later.clone()
    };
    match s.put_change(&bad_plan).await {
        Err(StoreError::UnknownReference {
            field: "plan_id",
            kind: "plan",
            id,
        }) => assert_eq!(id, "gold"),
        other => panic!("expected an unknown plan, got {other:?}"),
    }
    assert_eq!(s.put_change(&later).await.unwrap(), Created);
    assert_eq!(s.put_change(&later).await.unwrap(), Unchanged);
    let later_with_seats = SubscriptionChange {
        quantity: Some(5),
        discount_percent: Some(dec("10")),
        ..later.clone()
    };
    assert_eq!(s.put_change(&later_with_seats).await.unwrap(), Updated);
    // Written after, effective before: listed first.
    let earlier = SubscriptionChange {
        subscription_id: "s1".into(),
        effective_at: t0() + 10 * DAY,
        plan_id: None,
        quantity: Some(2),
        discount_percent: None,
    };
    assert_eq!(s.put_change(&earlier).await.unwrap(), Created);
    let record = s.get_subscription("s1").await.unwrap().unwrap();
    assert_eq!(record.changes, vec![earlier, later_with_seats]);
    assert_eq!(s.counts().await.unwrap().subscription_changes, 2);
}

async fn cancellations(s: &dyn Store) {
    match s.cancel_subscription("s1", t0()).await {
        Err(StoreError::NotFound {
            kind: "subscription",
            id,
        }) => assert_eq!(id, "s1"),
        other => panic!("expected an unknown subscription, got {other:?}"),
    }
    s.put_customer(&customer("c1")).await.unwrap();
    s.put_plan(&plan("pro", "pro", 4900)).await.unwrap();
    let sub = subscription("s1", "c1", "pro");
    s.put_subscription(&sub).await.unwrap();
    assert!(matches!(
        s.cancel_subscription("s1", t0() - 1).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(
        s.cancel_subscription("s1", t0() + 30 * DAY).await.unwrap(),
        Updated
    );
    assert_eq!(
        s.cancel_subscription("s1", t0() + 30 * DAY).await.unwrap(),
        Unchanged
    );
    assert_eq!(
        s.cancel_subscription("s1", t0() + 40 * DAY).await.unwrap(),
        Updated
    );
    let stored = s
        .get_subscription("s1")
        .await
        .unwrap()
        .unwrap()
        .subscription;
    assert_eq!(stored.canceled_at, Some(t0() + 40 * DAY));
    // Re-sending the original creation neither conflicts nor undoes the cancellation.
    assert_eq!(s.put_subscription(&sub).await.unwrap(), Unchanged);
    // Canceling at the very start is allowed.
    assert_eq!(s.cancel_subscription("s1", t0()).await.unwrap(), Updated);
}

async fn invoices_upsert(s: &dyn Store) {
    let open = invoice("in1", InvoiceStatus::Open, 4900, t0(), None);
    match s.put_invoice(&open).await {
        Err(StoreError::UnknownReference {
            field: "customer_id",
            kind: "customer",
            id,
        }) => assert_eq!(id, "c1"),
        other => panic!("expected an unknown customer, got {other:?}"),
    }
    s.put_customer(&customer("c1")).await.unwrap();
    assert_eq!(s.put_invoice(&open).await.unwrap(), Created);
    assert_eq!(s.put_invoice(&open).await.unwrap(), Unchanged);
    let paid = Invoice {
        status: InvoiceStatus::Paid,
        paid_at: Some(t0() + HOUR),
        ..open.clone()
    };
    assert_eq!(s.put_invoice(&paid).await.unwrap(), Updated);
    assert_eq!(s.get_invoice("in1").await.unwrap(), Some(paid));
    assert_eq!(s.get_invoice("in2").await.unwrap(), None);
}

async fn costs_and_spend_upsert(s: &dyn Store) {
    let nov = Month::new(2025, 11).unwrap();
    let infra = CostRecord {
        month: nov,
        category: CostCategory::Infrastructure,
        service: "llm".into(),
        amount: 10_000,
    };
    let other = CostRecord {
        month: nov,
        category: CostCategory::Other,
        service: String::new(),
        amount: 5_000,
    };
    assert_eq!(
        s.put_costs(&[infra.clone(), other.clone()]).await.unwrap(),
        vec![Created, Created]
    );
    let infra2 = CostRecord {
        amount: 12_000,
        ..infra.clone()
    };
    assert_eq!(
        s.put_costs(&[other.clone(), infra2.clone()]).await.unwrap(),
        vec![Unchanged, Updated]
    );
    // Another service is another record.
    let search = CostRecord {
        service: "search".into(),
        ..infra.clone()
    };
    assert_eq!(
        s.put_costs(std::slice::from_ref(&search)).await.unwrap(),
        vec![Created]
    );
    assert_eq!(s.put_costs(&[]).await.unwrap(), vec![]);

    let ads = MarketingSpend {
        month: nov,
        channel: "ads".into(),
        amount: 30_000,
    };
    let oct_ads = MarketingSpend {
        month: nov.prev(),
        ..ads.clone()
    };
    assert_eq!(
        s.put_spend(&[ads.clone(), oct_ads.clone()]).await.unwrap(),
        vec![Created, Created]
    );
    let more_ads = MarketingSpend {
        amount: 35_000,
        ..ads.clone()
    };
    assert_eq!(
        s.put_spend(&[more_ads.clone(), oct_ads.clone()])
            .await
            .unwrap(),
        vec![Updated, Unchanged]
    );

    let data = s.cost_data().await.unwrap();
    // Ordered by month, category, service.
    assert_eq!(data.costs, vec![infra2, search, other]);
    assert_eq!(data.spend, vec![oct_ads, more_ads]);
    let counts = s.counts().await.unwrap();
    assert_eq!((counts.costs, counts.marketing_spend), (3, 2));
}

async fn services_upsert(s: &dyn Store) {
    let svc = Service {
        name: "llm".into(),
        display_name: Some("LLM".into()),
        unit_type: None,
        health_url: None,
    };
    assert_eq!(s.put_service(&svc).await.unwrap(), Created);
    assert_eq!(s.put_service(&svc).await.unwrap(), Unchanged);
    let tokens = Service {
        unit_type: Some("tokens".into()),
        ..svc.clone()
    };
    assert_eq!(s.put_service(&tokens).await.unwrap(), Updated);
    assert_eq!(s.get_service("llm").await.unwrap(), Some(tokens));
    assert_eq!(s.get_service("search").await.unwrap(), None);
}

// ---- events ----------------------------------------------------------------------------

async fn events_are_stored_once(s: &dyn Store) {
    assert_eq!(s.insert_events(&[]).await.unwrap(), Vec::<bool>::new());
    let a = usage("a", "llm", t0());
    let b = Event {
        quantity: 2_000_000,
        ..usage("b", "llm", t0())
    };
    let a_again = Event {
        quantity: 9_000_000,
        ..a.clone()
    };
    assert_eq!(
        s.insert_events(&[a.clone(), b.clone(), a_again])
            .await
            .unwrap(),
        vec![true, true, false]
    );
    // Re-sent with another payload: the first one stays.
    let b_again = Event {
        quantity: 7_000_000,
        ..b.clone()
    };
    let c = usage("c", "llm", t0());
    assert_eq!(
        s.insert_events(&[b_again, c.clone(), c.clone()])
            .await
            .unwrap(),
        vec![false, true, false]
    );
    assert_eq!(
        s.insert_events(&[a, b, c]).await.unwrap(),
        vec![false, false, false]
    );
    assert_eq!(s.counts().await.unwrap().events, 3);
    let total = s
        .usage(&UsageQuery::new(
            EventKind::Usage,
            Span::new(t0(), t0() + 1),
        ))
        .await
        .unwrap();
    // a 1 + b 2 + c 1 units, as first sent.
    assert_eq!((total[0].events, total[0].quantity), (3, 4_000_000));

    // A batch larger than one SQLite statement holds, with duplicates spread across it.
    let many: Vec<Event> = (0..5000)
        .map(|i| usage(&format!("m{}", i % 4000), "bulk", t0() + i))
        .collect();
    let stored = s.insert_events(&many).await.unwrap();
    assert_eq!(stored.iter().filter(|&&new| new).count(), 4000);
    assert!(stored[..4000].iter().all(|&new| new) && stored[4000..].iter().all(|&new| !new));
    assert_eq!(s.counts().await.unwrap().events, 4003);
}

async fn services_are_registered_by_events(s: &dyn Store) {
    s.put_service(&Service {
        name: "search".into(),
        display_name: Some("Search".into()),
        unit_type: None,
        health_url: None,
    })
    .await
    .unwrap();
    let events = [
        usage("e1", "llm", t0()),
        usage("e2", "search", t0()),
        gauge("g1", "cache", 1.0, t0()),
    ];
    s.insert_events(&events).await.unwrap();
    assert_eq!(s.counts().await.unwrap().services, 2);
    assert_eq!(
        s.get_service("llm").await.unwrap(),
        Some(Service {
            name: "llm".into(),
            display_name: None,
            unit_type: None,
            health_url: None
        })
    );
    // A service described before its first event keeps its description.
    assert_eq!(
        s.get_service("search")
            .await
            .unwrap()
            .unwrap()
            .display_name
            .as_deref(),
        Some("Search")
    );
    // Describing an auto-registered service updates it.
    let described = Service {
        name: "llm".into(),
        display_name: Some("LLM".into()),
        unit_type: None,
        health_url: None,
    };
    assert_eq!(s.put_service(&described).await.unwrap(), Updated);
}

/// The events behind the usage tests. Span of interest: [t0, t0 + 2 days).
fn usage_events() -> Vec<Event> {
    let t = t0();
    vec![
        Event {
            input_tokens: 1000,
            output_tokens: 200,
            cache_read_tokens: 100,
            cost: 5_000_000,
            cost_source: CostSource::Given,
            latency_ms: Some(100.0),
            status_code: Some(200),
            cache_hit: Some(false),
            ..llm("e1", "c1", "gpt-4o", "openai", t + HOUR)
        },
        Event {
            input_tokens: 2000,
            output_tokens: 300,
            cache_read_tokens: 500,
            cache_write_tokens: 50,
            cost: 7_000_000,
            cost_source: CostSource::Priced,
            latency_ms: Some(300.0),
            status_code: Some(500),
            cache_hit: Some(true),
            ..llm("e2", "c2", "gpt-4o", "openai", t + 2 * HOUR)
        },
        // The next day; a model without a price.
        Event {
            input_tokens: 400,
            output_tokens: 100,
            latency_ms: Some(50.5),
            status_code: Some(200),
            ..llm("e3", "c1", "claude", "anthropic", t + DAY + HOUR)
        },
        // No model: unpriced but not an unpriced LLM call.
        Event {
            customer_id: Some("c1".into()),
            quantity: 3_000_000,
            status_code: Some(404),
            ..usage("e4", "search", t + 3 * HOUR)
        },
        health("h1", true, Some(20.0), t + 4 * HOUR),
        health("h2", false, None, t + 5 * HOUR),
        // Just outside the span on either side.
        Event {
            input_tokens: 999,
            ..llm("x1", "c1", "gpt-4o", "openai", t - 1)
        },
        Event {
            input_tokens: 999,
            ..llm("x2", "c1", "gpt-4o", "openai", t + 2 * DAY)
        },
        gauge("g1", "cache_size", 1.0, t + HOUR),
    ]
}

fn usage_query() -> UsageQuery {
    UsageQuery::new(EventKind::Usage, Span::new(t0(), t0() + 2 * DAY))
}

/// `UsageQuery::only`: the counters asked for, the others 0, whether a span's days come
/// from a rollup, its edges from the events, or both in one statement; pieces too.
async fn usage_computes_only_the_measures_asked_for(s: &dyn Store) {
    s.insert_events(&usage_events()).await.unwrap();
    let by_customer = |span: Span, measures: &[Measure]| {
        UsageQuery::new(EventKind::Usage, span)
            .group(&[UsageDim::Customer])
            .only(measures)
    };
    let row = |customer: &str, events, input_tokens, latency_sum, latency_count| UsageRow {
        customer_id: Some(customer.to_owned()),
        events,
        input_tokens,
        latency_sum,
        latency_count,
        ..UsageRow::default()
    };

    // Whole days only (the rollup): e1 + e2 + e3 + e4.
    let q = usage_query().only(&[Measure::Events, Measure::Cost]);
    assert_eq!(
        s.usage(&q).await.unwrap(),
        vec![UsageRow {
            events: 4,
            cost: 12_000_000,
            ..UsageRow::default()
        }]
    );

    // Edges only, [t0 + 1h30, t0 + 1d 2h): e2 (c2), e4 and e3 (c1).
    let latency = [Measure::Events, Measure::InputTokens, Measure::Latency];
    let q = by_customer(
        Span::new(t0() + 90 * 60_000_000, t0() + DAY + 2 * HOUR),
        &latency,
    );
    assert_eq!(
        s.usage(&q).await.unwrap(),
        vec![row("c1", 2, 400, 50.5, 1), row("c2", 1, 2000, 300.0, 1),]
    );

    // The first day from the rollup and [t0 + 1d, t0 + 1d 2h) from the events, in one
    // statement: e1, e4, e3 (c1) and e2 (c2).
    let q = by_customer(Span::new(t0(), t0() + DAY + 2 * HOUR), &latency);
    assert_eq!(
        s.usage(&q).await.unwrap(),
        vec![row("c1", 3, 1400, 150.5, 2), row("c2", 1, 2000, 300.0, 1),]
    );

    // Pieces: c1 over a day and two hours (e1, e4, e3), c2 from just after 1h (e2).
    let q = usage_query().only(&[Measure::Events, Measure::Cost]);
    let pieces = [
        ("c1".to_owned(), Span::new(t0(), t0() + DAY + 2 * HOUR)),
        ("c2".to_owned(), Span::new(t0() + HOUR + 1, t0() + DAY)),
    ];
    let totals = |events, cost| UsageRow {
        events,
        cost,
        ..UsageRow::default()
    };
    assert_eq!(
        s.usage_pieces(&q, &pieces).await.unwrap(),
        vec![totals(3, 5_000_000), totals(1, 7_000_000)]
    );
}

/// `write_entities`: each write with the outcome of its single call, one step of the
/// entities version for the batch, nothing for a batch that changes nothing, and all or
/// nothing when a write fails.
async fn entity_writes_in_one_transaction(s: &dyn Store) {
    let v0 = s.data_version().await.unwrap();
    let p = plan("basic", "basic", 1000);
    let c1 = customer("c1");
    let sub = subscription("s1", "c1", "basic");
    let batch = [
        EntityWrite::Plan(&p),
        EntityWrite::Customer(&c1),
        EntityWrite::Subscription(&sub),
        EntityWrite::Cancel {
            subscription_id: "s1",
            effective_at: t0() + DAY,
        },
    ];
    use WriteOutcome::*;
    assert_eq!(
        s.write_entities(&batch).await.unwrap(),
        [Created, Created, Created, Updated]
    );
    let v1 = s.data_version().await.unwrap();
    assert_eq!(v1.entities, v0.entities + 1);
    let stored = s.get_subscription("s1").await.unwrap().unwrap();
    assert_eq!(stored.subscription.canceled_at, Some(t0() + DAY));

    assert_eq!(
        s.write_entities(&batch).await.unwrap(),
        [Unchanged, Unchanged, Unchanged, Unchanged]
    );
    assert_eq!(s.data_version().await.unwrap(), v1);

    // The second write names a customer that does not exist: the first is rolled back.
    let c2 = customer("c2");
    let orphan = subscription("s2", "nobody", "basic");
    let err = s
        .write_entities(&[
            EntityWrite::Customer(&c2),
            EntityWrite::Subscription(&orphan),
        ])
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::UnknownReference { ref id, .. } if id == "nobody"),
        "{err:?}"
    );
    assert_eq!(s.get_customer("c2").await.unwrap(), None);
    assert_eq!(s.data_version().await.unwrap(), v1);
}

async fn usage_aggregates(s: &dyn Store) {
    s.insert_events(&usage_events()).await.unwrap();

    // e1 + e2 + e3 + e4.
    let all = s.usage(&usage_query()).await.unwrap();
    assert_eq!(
        all,
        vec![UsageRow {
            events: 4,
            quantity: 6_000_000,
            input_tokens: 3400,
            output_tokens: 600,
            cache_read_tokens: 600,
            cache_write_tokens: 50,
            cost: 12_000_000,
            unpriced: 1,
            latency_sum: 450.5,
            latency_count: 3,
            status_count: 4,
            error_count: 1,
            up_count: 0,
            ..UsageRow::default()
        }]
    );

    let by_service = s
        .usage(&usage_query().group(&[UsageDim::Service]))
        .await
        .unwrap();
    assert_eq!(
        by_service,
        vec![
            UsageRow {
                service: Some("llm".into()),
                events: 3,
                quantity: 3_000_000,
                input_tokens: 3400,
                output_tokens: 600,
                cache_read_tokens: 600,
                cache_write_tokens: 50,
                cost: 12_000_000,
                unpriced: 1,
                latency_sum: 450.5,
                latency_count: 3,
                status_count: 3,
                error_count: 1,
                ..UsageRow::default()
            },
            UsageRow {
                service: Some("search".into()),
                events: 1,
                quantity: 3_000_000,
                status_count: 1,
                ..UsageRow::default()
            },
        ]
    );

    let mut llm_only = usage_query().group(&[UsageDim::Model, UsageDim::Provider]);
    llm_only.llm_only = true;
    let by_model = s.usage(&llm_only).await.unwrap();
    let summary: Vec<_> = by_model
        .iter()
        .map(|r| {
            (
                r.model.as_deref().unwrap(),
                r.provider.as_deref().unwrap(),
                r.events,
                r.input_tokens,
                r.cost,
                r.unpriced,
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            ("claude", "anthropic", 1, 400, 0, 1),
            ("gpt-4o", "openai", 2, 3000, 12_000_000, 0)
        ]
    );
    assert!(by_model
        .iter()
        .all(|r| r.service.is_none() && r.day.is_none() && r.customer_id.is_none()));

    let by_day = s
        .usage(&usage_query().group(&[UsageDim::Day]))
        .await
        .unwrap();
    let summary: Vec<_> = by_day
        .iter()
        .map(|r| (r.day.unwrap(), r.events, r.quantity, r.cost))
        .collect();
    assert_eq!(
        summary,
        vec![
            (DAY0, 3, 5_000_000, 12_000_000),
            (DAY0 + 1, 1, 1_000_000, 0)
        ]
    );
    assert_eq!(
        tally_core::time::date_of(DAY0 * DAY).to_string(),
        "2025-11-20"
    );

    let by_service_day = s
        .usage(&usage_query().group(&[UsageDim::Day, UsageDim::Service]))
        .await
        .unwrap();
    let summary: Vec<_> = by_service_day
        .iter()
        .map(|r| (r.service.as_deref().unwrap(), r.day.unwrap(), r.events))
        .collect();
    assert_eq!(
        summary,
        vec![("llm", DAY0, 2), ("llm", DAY0 + 1, 1), ("search", DAY0, 1)]
    );

    let mut by_cache = usage_query().group(&[UsageDim::CacheHit]);
    by_cache.llm_only = true;
    let rows = s.usage(&by_cache).await.unwrap();
    let summary: Vec<_> = rows
        .iter()
        .map(|r| (r.cache_hit, r.events, r.latency_sum))
        .collect();
    assert_eq!(
        summary,
        vec![
            (Some(false), 1, 100.0),
            (Some(true), 1, 300.0),
            (None, 1, 50.5)
        ]
    );

    let health = s
        .usage(
            &UsageQuery::new(EventKind::HealthCheck, usage_query().span)
                .group(&[UsageDim::Service]),
        )
        .await
        .unwrap();
    assert_eq!(
        health,
        vec![UsageRow {
            service: Some("llm".into()),
            events: 2,
            quantity: 2_000_000,
            latency_sum: 20.0,
            latency_count: 1,
            up_count: 1,
            ..UsageRow::default()
        }]
    );
}

async fn usage_filters_and_empty_results(s: &dyn Store) {
    s.insert_events(&usage_events()).await.unwrap();

    let mut llm_customers = usage_query().group(&[UsageDim::Customer]);
    llm_customers.service = Some("llm".into());
    let rows = s.usage(&llm_customers).await.unwrap();
    let summary: Vec<_> = rows
        .iter()
        .map(|r| {
            (
                r.customer_id.as_deref().unwrap(),
                r.events,
                r.input_tokens,
                r.cost,
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![("c1", 2, 1400, 5_000_000), ("c2", 1, 2000, 7_000_000)]
    );

    let mut c1 = usage_query();
    c1.customer = Some("c1".into());
    let rows = s.usage(&c1).await.unwrap();
    // e1, e3, e4.
    assert_eq!(
        (rows.len(), rows[0].events, rows[0].quantity),
        (1, 3, 5_000_000)
    );

    let mut c1_search = c1.clone();
    c1_search.service = Some("search".into());
    assert_eq!(s.usage(&c1_search).await.unwrap()[0].events, 1);

    // Nothing matches: one row of zeros when ungrouped, no rows when grouped.
    let later = UsageQuery::new(
        EventKind::Usage,
        Span::new(t0() + 10 * DAY, t0() + 11 * DAY),
    );
    assert_eq!(s.usage(&later).await.unwrap(), vec![UsageRow::default()]);
    assert_eq!(
        s.usage(&later.clone().group(&[UsageDim::Service]))
            .await
            .unwrap(),
        vec![]
    );
    let mut unknown = usage_query();
    unknown.service = Some("nope".into());
    assert_eq!(s.usage(&unknown).await.unwrap(), vec![UsageRow::default()]);
}

/// A small deterministic generator (xorshift64): `rnd(n)` is in `0..n`.
fn xorshift(mut x: u64) -> impl FnMut(u64) -> u64 {
    move |n| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % n
    }
}

/// Random-looking events over five days (several batches, with duplicates whose later
/// payloads must not count), then many queries over spans with partial days: every answer
/// of `usage` and `usage_pieces` equals an aggregation of the stored events done here.
/// Latencies are multiples of 1/4, so their sums are exact in any order.
async fn usage_equals_a_scan_of_the_events(s: &dyn Store) {
    let mut rnd = xorshift(0x2545_F491_4F6C_DD1D);
    let pick = |i: u64, options: &[Option<&str>]| options[i as usize].map(str::to_owned);
    let base = t0() - DAY;
    let mut sent: Vec<Event> = Vec::new();
    for i in 0..1500 {
        let kind = if rnd(5) == 0 {
            EventKind::HealthCheck
        } else {
            EventKind::Usage
        };
        let model = pick(rnd(3), &[None, Some("m1"), Some("m2")]);
        // Some ids again (another payload): the first stored one wins.
        let id = if i > 100 && rnd(10) == 0 {
            format!("r{}", rnd(i))
        } else {
            format!("r{i}")
        };
        sent.push(Event {
            id,
            kind,
            time: base + rnd(5 * DAY as u64) as i64,
            customer_id: pick(rnd(4), &[None, Some("c1"), Some("c2"), Some("c3")]),
            service: pick(rnd(3), &[None, Some("svc_a"), Some("svc_b")]),
            quantity: rnd(5_000_000) as i64,
            unit: None,
            provider: model
                .as_ref()
                .and_then(|_| pick(rnd(3), &[None, Some("p1"), Some("p2")])),
            model,
            input_tokens: rnd(1000) as i64,
            cache_read_tokens: rnd(100) as i64,
            cache_write_tokens: rnd(50) as i64,
            output_tokens: rnd(500) as i64,
            cache_hit: [None, Some(true), Some(false)][rnd(3) as usize],
            latency_ms: [None, Some(rnd(4000) as f64 / 4.0)][rnd(2) as usize],
            status_code: [None, Some(200), Some(404), Some(503)][rnd(4) as usize],
            cost: rnd(3_000_000) as i64,
            cost_source: [CostSource::Given, CostSource::Priced, CostSource::Unpriced]
                [rnd(3) as usize],
            up: (kind == EventKind::HealthCheck).then(|| rnd(4) != 0),
            gauge_name: None,
            gauge_value: None,
        });
    }
    for batch in sent.chunks(300) {
        s.insert_events(batch).await.unwrap();
    }
    let mut seen = std::collections::HashSet::new();
    let stored: Vec<&Event> = sent.iter().filter(|e| seen.insert(e.id.clone())).collect();

    fn row_of(events: &[&Event]) -> UsageRow {
        let mut r = UsageRow::default();
        for e in events {
            r.events += 1;
            r.quantity += e.quantity;
            r.input_tokens += e.input_tokens;
            r.output_tokens += e.output_tokens;
            r.cache_read_tokens += e.cache_read_tokens;
            r.cache_write_tokens += e.cache_write_tokens;
            r.cost += e.cost;
            r.unpriced += i64::from(e.model.is_some() && e.cost_source == CostSource::Unpriced);
            r.latency_sum += e.latency_ms.unwrap_or(0.0);
            r.latency_count += i64::from(e.latency_ms.is_some());
            r.status_count += i64::from(e.status_code.is_some());
            r.error_count += i64::from(e.status_code.is_some_and(|c| c >= 500));
            r.up_count += i64::from(e.up == Some(true));
        }
        r
    }
    let scan = |q: &UsageQuery| -> Vec<UsageRow> {
        let matching: Vec<&Event> = stored
            .iter()
            .copied()
            .filter(|e| {
                e.kind == q.kind
                    && q.span.contains(e.time)
                    && q.service
                        .as_ref()
                        .is_none_or(|v| e.service.as_ref() == Some(v))
                    && q.customer
                        .as_ref()
                        .is_none_or(|v| e.customer_id.as_ref() == Some(v))
                    && (!q.llm_only || e.model.is_some())
            })
            .collect();
        if q.group_by.is_empty() {
            return vec![row_of(&matching)];
        }
        let g = |d: UsageDim| q.group_by.contains(&d);
        let last = |v: Option<String>| (v.is_none(), v);
        let mut groups: std::collections::BTreeMap<_, Vec<&Event>> = Default::default();
        for e in matching {
            let dims = UsageRow {
                service: e.service.clone().filter(|_| g(UsageDim::Service)),
                model: e.model.clone().filter(|_| g(UsageDim::Model)),
                provider: e.provider.clone().filter(|_| g(UsageDim::Provider)),
                customer_id: e.customer_id.clone().filter(|_| g(UsageDim::Customer)),
                day: g(UsageDim::Day).then(|| e.time.div_euclid(DAY)),
                cache_hit: e.cache_hit.filter(|_| g(UsageDim::CacheHit)),
                ..UsageRow::default()
            };
            let key = (
                last(dims.service.clone()),
                last(dims.model.clone()),
                last(dims.provider.clone()),
                last(dims.customer_id.clone()),
                (dims.day.is_none(), dims.day),
                (dims.cache_hit.is_none(), dims.cache_hit),
            );
            groups.entry(key).or_default().push(e);
        }
        groups
            .into_values()
            .map(|events| {
                let e = events[0];
                UsageRow {
                    service: e.service.clone().filter(|_| g(UsageDim::Service)),
                    model: e.model.clone().filter(|_| g(UsageDim::Model)),
                    provider: e.provider.clone().filter(|_| g(UsageDim::Provider)),
                    customer_id: e.customer_id.clone().filter(|_| g(UsageDim::Customer)),
                    day: g(UsageDim::Day).then(|| e.time.div_euclid(DAY)),
                    cache_hit: e.cache_hit.filter(|_| g(UsageDim::CacheHit)),
                    ..row_of(&events)
                }
            })
            .collect()
    };

    // Spans from the first or to the last event: their partial days have no event
    // outside the span and are read from the rollups (`edge_parts`); the others from
    // `events`.
    let first = stored.iter().map(|e| e.time).min().unwrap();
    let last = stored.iter().map(|e| e.time).max().unwrap();
    let spans = [
        Span::through(t0() + HOUR, last),
        Span::new(first, t0() + 2 * DAY + 3),
        Span::through(first, last),
        Span::new(last - HOUR, last + HOUR),
        Span::new(t0(), t0() + 2 * DAY),
        Span::new(t0() - DAY, t0() + 4 * DAY),
        Span::new(t0() + 5 * HOUR + 17, t0() + 3 * DAY + 2 * HOUR),
        Span::new(t0() - 3, t0() + DAY + 1),
        Span::new(t0() + HOUR, t0() + 20 * HOUR),
        Span::new(t0() + 20 * HOUR, t0() + 28 * HOUR),
        Span::new(t0() - 10 * DAY, t0() + 10 * DAY),
        Span::through(t0() + DAY + 123_456, t0() + 3 * DAY + 654_321),
        Span::new(t0(), t0()),
    ];
    use UsageDim::*;
    let groupings: [&[UsageDim]; 9] = [
        &[],
        &[Service],
        &[Customer],
        &[Service, Customer],
        &[Day],
        &[Customer, Day],
        &[Model, Provider],
        &[Model, CacheHit],
        &[Service, Model, Provider, Customer, Day, CacheHit],
    ];
    let mut checked = 0;
    for span in spans {
        for kind in [EventKind::Usage, EventKind::HealthCheck] {
            for group in groupings {
                for (service, customer, llm_only) in [
                    (None, None, false),
                    (None, None, true),
                    (Some("svc_a"), None, false),
                    (None, Some("c2"), true),
                    (Some("svc_b"), Some("c1"), false),
                ] {
                    let q = UsageQuery {
                        service: service.map(str::to_owned),
                        customer: customer.map(str::to_owned),
                        llm_only,
                        ..UsageQuery::new(kind, span).group(group)
                    };
                    assert_eq!(s.usage(&q).await.unwrap(), scan(&q), "{q:?}");
                    checked += 1;
                }
            }
        }
    }
    assert_eq!(checked, 13 * 2 * 9 * 5);

    // Pieces: each customer's spans cut at arbitrary instants.
    let cuts = [
        t0() - DAY - 1,
        t0() + 7,
        t0() + DAY,
        t0() + 30 * HOUR,
        t0() + 3 * DAY + 5,
    ];
    let mut pieces = Vec::new();
    for c in ["c1", "c2", "c3", "nobody"] {
        for w in cuts.windows(2) {
            pieces.push((c.to_owned(), Span::new(w[0], w[1])));
        }
    }
    for (service, llm_only) in [(None, false), (None, true), (Some("svc_a"), false)] {
        let q = UsageQuery {
            service: service.map(str::to_owned),
            llm_only,
            ..usage_query()
        };
        let expected: Vec<UsageRow> = pieces
            .iter()
            .map(|(c, span)| {
                scan(&UsageQuery {
                    customer: Some(c.clone()),
                    span: *span,
                    ..q.clone()
                })
                .remove(0)
            })
            .collect();
        assert_eq!(s.usage_pieces(&q, &pieces).await.unwrap(), expected);
    }
    assert_eq!(s.usage_pieces(&usage_query(), &[]).await.unwrap(), vec![]);
}

/// One customer's events around midnight: pieces and customer-filtered queries whose
/// partial days cross midnight, read through the indexes led by the day (migration 0007).
async fn one_customer_across_midnight(s: &dyn Store) {
    let t = t0();
    let at = |id: &str, customer: &str, time: Micros, cost: i64| Event {
        cost,
        ..llm(id, customer, "gpt-4o", "openai", time)
    };
    s.insert_events(&[
        at("p1", "c1", t - 3 * HOUR, 1),
        at("p2", "c1", t - 1, 2),
        at("p3", "c1", t, 4),
        at("p4", "c1", t + 2 * HOUR, 8),
        at("p5", "c2", t - HOUR, 16),
        at("p6", "c2", t + HOUR, 32),
        at("p7", "c1", t + DAY + 5 * HOUR, 64),
        at("p8", "c1", t - DAY - HOUR, 128),
        Event {
            cost: 256,
            ..usage("p9", "llm", t - HOUR)
        },
        // c1's, but no model and another service.
        Event {
            customer_id: Some("c1".into()),
            cost: 512,
            ..usage("p10", "search", t + 3 * HOUR)
        },
    ])
    .await
    .unwrap();
    let pieces: Vec<(String, Span)> = [
        // Shorter than a day across midnight: p2, p3, p4 (p1 before, p10 at the end).
        ("c1", t - 2 * HOUR, t + 3 * HOUR),
        // The same span, another customer: p5, p6.
        ("c2", t - 2 * HOUR, t + 3 * HOUR),
        // An edge, a whole day, an edge: p1, p2 | p3, p4, p10 | p7.
        ("c1", t - 3 * HOUR, t + DAY + 6 * HOUR),
        // Two microseconds around midnight: p2, p3.
        ("c1", t - 1, t + 1),
        // Exactly a day long, not aligned: p8, p1.
        ("c1", t - DAY - 2 * HOUR, t - 2 * HOUR),
        ("nobody", t - 2 * HOUR, t + 3 * HOUR),
    ]
    .iter()
    .map(|&(c, a, b)| (c.to_owned(), Span::new(a, b)))
    .collect();
    let summary = |rows: Vec<UsageRow>| -> Vec<(i64, i64)> {
        rows.iter().map(|r| (r.events, r.cost)).collect()
    };
    let all = usage_query();
    assert_eq!(
        summary(s.usage_pieces(&all, &pieces).await.unwrap()),
        vec![(3, 14), (2, 48), (6, 591), (2, 6), (2, 129), (0, 0)]
    );
    // Without p10 (no model, service "search").
    let llm_only = UsageQuery {
        llm_only: true,
        ..usage_query()
    };
    let llm_service = UsageQuery {
        service: Some("llm".into()),
        ..usage_query()
    };
    for q in [llm_only, llm_service] {
        assert_eq!(
            summary(s.usage_pieces(&q, &pieces).await.unwrap()),
            vec![(3, 14), (2, 48), (5, 79), (2, 6), (2, 129), (0, 0)]
        );
    }

    // `usage` for one customer: a partial span across midnight, then an edge, a whole day
    // and an edge by day.
    let c1 = |a: Micros, b: Micros| UsageQuery {
        customer: Some("c1".into()),
        ..UsageQuery::new(EventKind::Usage, Span::new(a, b))
    };
    assert_eq!(
        summary(s.usage(&c1(t - 2 * HOUR, t + 3 * HOUR)).await.unwrap()),
        vec![(3, 14)]
    );
    let by_day = s
        .usage(&c1(t - 3 * HOUR, t + DAY + 6 * HOUR).group(&[UsageDim::Day]))
        .await
        .unwrap();
    let by_day: Vec<_> = by_day
        .iter()
        .map(|r| (r.day.unwrap(), r.events, r.cost))
        .collect();
    assert_eq!(
        by_day,
        vec![(DAY0 - 1, 2, 3), (DAY0, 3, 524), (DAY0 + 1, 1, 64)]
    );
}

/// Events over 80 days, in batches with duplicates whose later payloads must not count:
/// the active (service, customer) pairs of spans with partial days equal a scan of the
/// stored events.
async fn active_customers_equal_a_scan_of_the_events(s: &dyn Store) {
    let mut rnd = xorshift(0x9E37_79B9_7F4A_7C15);
    let pick = |i: u64, options: &[Option<&str>]| options[i as usize].map(str::to_owned);
    let base = 20_440 * DAY;
    let mut sent = Vec::new();
    for i in 0..1200 {
        let id = if i > 100 && rnd(8) == 0 {
            format!("a{}", rnd(i))
        } else {
            format!("a{i}")
        };
        let mut e = Event::blank(
            &id,
            [EventKind::Usage, EventKind::HealthCheck][rnd(4).min(1) as usize],
            base + rnd(80 * DAY as u64) as i64,
        );
        e.customer_id = pick(
            rnd(9),
            &[
                None,
                Some("c1"),
                Some("c2"),
                Some("c3"),
                Some("c4"),
                Some("c5"),
                Some("c6"),
                Some("c7"),
                Some("c8"),
            ],
        );
        e.service = pick(rnd(3), &[None, Some("svc_a"), Some("svc_b")]);
        sent.push(e);
    }
    for batch in sent.chunks(250) {
        s.insert_events(batch).await.unwrap();
    }
    let mut seen = std::collections::HashSet::new();
    let stored: Vec<&Event> = sent.iter().filter(|e| seen.insert(e.id.clone())).collect();
    let ids = ["c1", "c2", "c3", "c4", "c5", "c6", "c7", "c8", "nobody"];
    let numbers = s.customer_numbers(&ids).await.unwrap();
    // Every customer with an event has a number, each its own; one without has none.
    assert_eq!(numbers[8], None);
    let distinct: std::collections::HashSet<u32> = numbers.iter().flatten().copied().collect();
    assert_eq!(distinct.len(), 8, "{numbers:?}");
    let numbers: Vec<(&str, u32)> = ids
        .iter()
        .zip(&numbers)
        .filter_map(|(id, n)| Some((*id, (*n)?)))
        .collect();

    let d = |day: i64| day * DAY;
    // From or to the first or last event: partial days read from the bitmaps
    // (`rollup::outside_edge`); the others from the events.
    let first = stored.iter().map(|e| e.time).min().unwrap();
    let last = stored.iter().map(|e| e.time).max().unwrap();
    let spans = [
        Span::through(d(20_450) + 5, last),
        Span::through(first, last),
        Span::new(first, d(20_460) + HOUR),
        Span::new(last - HOUR, last + HOUR),
        Span::new(d(20_440), d(20_520)),
        Span::new(d(20_447), d(20_449)),
        Span::new(d(20_448), d(20_480)),
        Span::new(d(20_450) + 5, d(20_451) - 5),
        Span::new(d(20_445) + HOUR, d(20_490) + 3 * HOUR),
        Span::through(d(20_479) + 17, d(20_481) + 123_456),
        Span::new(d(20_400), d(20_441)),
        Span::new(d(20_500), d(20_500)),
        Span::new(d(20_600), d(20_700)),
    ];
    let mut nonempty = 0;
    for span in spans {
        for kind in [EventKind::Usage, EventKind::HealthCheck] {
            for by_service in [false, true] {
                let expected: std::collections::BTreeSet<(Option<String>, String)> = stored
                    .iter()
                    .filter(|e| e.kind == kind && span.contains(e.time))
                    .filter_map(|e| {
                        let service = e.service.clone().filter(|_| by_service);
                        e.customer_id.clone().map(|c| (service, c))
                    })
                    .collect();
                let got = s.active_customers(kind, span, by_service).await.unwrap();
                // Back from numbers to ids, through the store's own numbering.
                let got: std::collections::BTreeSet<(Option<String>, String)> = got
                    .by_service
                    .iter()
                    .flat_map(|(service, set)| {
                        set.iter().map(|n| {
                            let id = numbers.iter().find(|(_, m)| *m == n).unwrap().0;
                            (service.clone(), id.to_owned())
                        })
                    })
                    .collect();
                assert_eq!(got, expected, "{kind:?} {span:?} by_service={by_service}");
                nonempty += usize::from(!expected.is_empty());
            }
        }
    }
    // The scan is not trivially empty: most spans hold events of both kinds.
    assert!(nonempty >= 40, "{nonempty}");
}

/// `day_holds_only`: a span inside one day holds all of the day's events of a kind when
/// none lies before or after it that day.
async fn a_day_holds_only_a_span_without_events_of_its_kind_around_it(s: &dyn Store) {
    let d = t0();
    s.insert_events(&[
        usage("h1", "svc", d + 10 * HOUR),
        usage("h2", "svc", d + 12 * HOUR),
        health("h3", true, None, d + 15 * HOUR),
        usage("h4", "svc", d - 1),
    ])
    .await
    .unwrap();
    let (u, h) = (EventKind::Usage, EventKind::HealthCheck);
    for (kind, span, holds) in [
        (u, Span::new(d, d + 11 * HOUR), false),     // h2 after
        (u, Span::through(d, d + 12 * HOUR), true),  // h3 is a health check; h4 the day before
        (u, Span::new(d, d + 12 * HOUR), false),     // h2 at the end, outside
        (h, Span::through(d, d + 12 * HOUR), false), // h3 after
        (h, Span::through(d + 15 * HOUR, d + DAY - 1), true),
        (u, Span::new(d + 11 * HOUR, d + 13 * HOUR), false), // h1 before
        (u, Span::new(d + 9 * HOUR, d + 13 * HOUR), true),
        (u, Span::new(d, d + DAY), true), // the whole day
        (u, Span::new(d + 5 * DAY, d + 5 * DAY + HOUR), true), // a day without events
        (u, Span::new(d - HOUR, d + HOUR), false), // across midnight
        (u, Span::new(d + HOUR, d + HOUR), false), // empty
        (u, Span::new(-DAY + 5, -DAY + 9), false), // before 1970
    ] {
        assert_eq!(
            s.day_holds_only(kind, span).await.unwrap(),
            holds,
            "{kind:?} {span:?}"
        );
    }
}

async fn latest_gauge(s: &dyn Store) {
    let t = t0();
    s.insert_events(&[
        gauge("g1", "cache_size", 1024.0, t + HOUR),
        gauge("g2", "cache_size", 2048.0, t + 3 * HOUR),
        gauge("g3", "other", 5.0, t + 2 * HOUR),
        // Same time: the larger id wins, whatever the order of arrival.
        gauge("g5", "tie", 2.0, t + 6 * HOUR),
        gauge("g4", "tie", 1.0, t + 6 * HOUR),
        // Not a gauge, despite its name.
        Event {
            gauge_name: Some("cache_size".into()),
            ..usage("u1", "llm", t + 4 * HOUR)
        },
    ])
    .await
    .unwrap();
    assert_eq!(s.latest_gauge("cache_size", t).await.unwrap(), None);
    assert_eq!(
        s.latest_gauge("cache_size", t + HOUR).await.unwrap(),
        Some(1024.0)
    );
    assert_eq!(
        s.latest_gauge("cache_size", t + 3 * HOUR - 1)
            .await
            .unwrap(),
        Some(1024.0)
    );
    assert_eq!(
        s.latest_gauge("cache_size", t + 3 * HOUR).await.unwrap(),
        Some(2048.0)
    );
    assert_eq!(
        s.latest_gauge("cache_size", t + 10 * DAY).await.unwrap(),
        Some(2048.0)
    );
    assert_eq!(
        s.latest_gauge("other", t + 10 * DAY).await.unwrap(),
        Some(5.0)
    );
    assert_eq!(
        s.latest_gauge("tie", t + 10 * DAY).await.unwrap(),
        Some(2.0)
    );
    assert_eq!(s.latest_gauge("missing", t + 10 * DAY).await.unwrap(), None);
}

async fn invoice_stats_by_paid_and_issued_time(s: &dyn Store) {
    use InvoiceStatus::*;
    let t = t0();
    s.put_customer(&customer("c1")).await.unwrap();
    for inv in [
        // Issued before the span, paid in it: revenue only.
        invoice("i1", Paid, 1000, t - 10 * DAY, Some(t + HOUR)),
        invoice("i2", Paid, 2500, t + HOUR, Some(t + 2 * HOUR)),
        invoice("i3", Failed, 700, t + 2 * HOUR, None),
        // Open with a paid_at: not revenue.
        invoice("i4", Open, 300, t + 3 * HOUR, Some(t + 5 * HOUR)),
        // Issued at the span's end: outside.
        invoice("i5", Void, 100, t + DAY, None),
        // Paid at the span's end: issued in it, not revenue of it, and still open at
        // the end of the issued span (statuses are counted as they stood then).
        invoice("i6", Paid, 4000, t + 4 * HOUR, Some(t + DAY)),
    ] {
        s.put_invoice(&inv).await.unwrap();
    }
    let day = Span::new(t, t + DAY);
    assert_eq!(
        s.invoice_stats(day, day).await.unwrap(),
        InvoiceStats {
            paid_revenue: 3500,
            issued: 4,
            issued_paid: 1,
            issued_failed: 1,
            issued_open: 2,
            issued_void: 0
        }
    );
    // The two spans are independent.
    let next_day = Span::new(t + DAY, t + 2 * DAY);
    assert_eq!(
        s.invoice_stats(next_day, day).await.unwrap(),
        InvoiceStats {
            paid_revenue: 4000,
            issued: 4,
            issued_paid: 1,
            issued_failed: 1,
            issued_open: 2,
            issued_void: 0
        }
    );
    assert_eq!(
        s.invoice_stats(day, next_day).await.unwrap(),
        InvoiceStats {
            paid_revenue: 3500,
            issued: 1,
            issued_void: 1,
            ..InvoiceStats::default()
        }
    );
    let empty = Span::new(t + 100 * DAY, t + 101 * DAY);
    assert_eq!(
        s.invoice_stats(empty, empty).await.unwrap(),
        InvoiceStats::default()
    );
}

// ---- lists -----------------------------------------------------------------------------

async fn pagination(s: &dyn Store) {
    for i in 1..=7 {
        s.put_customer(&customer(&format!("cus_{i}")))
            .await
            .unwrap();
    }
    let ids = |p: &Page<Customer>| p.items.iter().map(|c| c.id.clone()).collect::<Vec<_>>();
    let p1 = s.list_customers(&page(3, None)).await.unwrap();
    assert_eq!(ids(&p1), ["cus_1", "cus_2", "cus_3"]);
    assert_eq!(
        p1.next_cursor.as_deref(),
        Some(encode_cursor("cus_3").as_str())
    );
    let p2 = s
        .list_customers(&page(3, p1.next_cursor.as_deref()))
        .await
        .unwrap();
    assert_eq!(ids(&p2), ["cus_4", "cus_5", "cus_6"]);
    let p3 = s
        .list_customers(&page(3, p2.next_cursor.as_deref()))
        .await
        .unwrap();
    assert_eq!(ids(&p3), ["cus_7"]);
    assert_eq!(p3.next_cursor, None);
    // Limit 0 is the default of 100; limits are clamped to 1000.
    assert_eq!(
        s.list_customers(&page(0, None)).await.unwrap().items.len(),
        7
    );
    assert_eq!(
        s.list_customers(&page(5000, None))
            .await
            .unwrap()
            .items
            .len(),
        7
    );
    assert!(matches!(
        s.list_customers(&page(3, Some("zz"))).await,
        Err(StoreError::BadCursor)
    ));
    assert!(matches!(
        s.list_customers(&page(3, Some("abc"))).await,
        Err(StoreError::BadCursor)
    ));

    // Byte order, whatever the database's collation: 'A' < 'B' < '_' < 'b'.
    for id in ["ab", "a_b", "Ab", "aB"] {
        s.put_plan(&plan(id, "pro", 100)).await.unwrap();
    }
    let p1 = s.list_plans(&page(2, None)).await.unwrap();
    assert_eq!(
        p1.items.iter().map(|p| p.id.as_str()).collect::<Vec<_>>(),
        ["Ab", "aB"]
    );
    let p2 = s
        .list_plans(&page(2, p1.next_cursor.as_deref()))
        .await
        .unwrap();
    assert_eq!(
        p2.items.iter().map(|p| p.id.as_str()).collect::<Vec<_>>(),
        ["a_b", "ab"]
    );
    // A full last page has no next page.
    assert_eq!(p2.next_cursor, None);

    s.put_invoice(&invoice("in2", InvoiceStatus::Open, 1, t0(), None))
        .await
        .unwrap_err();
    s.put_customer(&customer("c1")).await.unwrap();
    for id in ["in2", "in1"] {
        s.put_invoice(&invoice(id, InvoiceStatus::Open, 1, t0(), None))
            .await
            .unwrap();
    }
    let invoices = s.list_invoices(&page(1, None)).await.unwrap();
    assert_eq!(
        (
            invoices.items[0].id.as_str(),
            invoices.next_cursor.is_some()
        ),
        ("in1", true)
    );
    let invoices = s
        .list_invoices(&page(1, invoices.next_cursor.as_deref()))
        .await
        .unwrap();
    assert_eq!(
        (
            invoices.items[0].id.as_str(),
            invoices.next_cursor.is_some()
        ),
        ("in2", false)
    );

    s.insert_events(&[usage("e1", "zeta", t0()), usage("e2", "alpha", t0())])
        .await
        .unwrap();
    let services = s.list_services(&page(10, None)).await.unwrap();
    assert_eq!(
        services
            .items
            .iter()
            .map(|s| s.name.as_str())
            .collect::<Vec<_>>(),
        ["alpha", "zeta"]
    );
    let after_alpha = s
        .list_services(&page(10, Some(&encode_cursor("alpha"))))
        .await
        .unwrap();
    assert_eq!(after_alpha.items.len(), 1);
}

async fn subscriptions_pages_carry_their_changes(s: &dyn Store) {
    s.put_customer(&customer("c1")).await.unwrap();
    s.put_plan(&plan("pro", "pro", 4900)).await.unwrap();
    for id in ["s1", "s2", "s3"] {
        s.put_subscription(&subscription(id, "c1", "pro"))
            .await
            .unwrap();
    }
    let change = |sub: &str, days: i64, quantity: i64| SubscriptionChange {
        subscription_id: sub.into(),
        effective_at: t0() + days * DAY,
        plan_id: None,
        quantity: Some(quantity),
        discount_percent: None,
    };
    for c in [
        change("s3", 2, 4),
        change("s1", 5, 2),
        change("s3", 1, 3),
        change("s2", 1, 9),
    ] {
        s.put_change(&c).await.unwrap();
    }
    let p1 = s.list_subscriptions(&page(2, None)).await.unwrap();
    assert_eq!(p1.items.len(), 2);
    assert_eq!(p1.items[0].changes, vec![change("s1", 5, 2)]);
    assert_eq!(p1.items[1].changes, vec![change("s2", 1, 9)]);
    let p2 = s
        .list_subscriptions(&page(2, p1.next_cursor.as_deref()))
        .await
        .unwrap();
    assert_eq!(p2.items.len(), 1);
    assert_eq!(p2.items[0].subscription.id, "s3");
    assert_eq!(
        p2.items[0].changes,
        vec![change("s3", 1, 3), change("s3", 2, 4)]
    );
    assert_eq!(p2.next_cursor, None);
}

async fn billing_and_cost_data(s: &dyn Store) {
    let empty = s.billing_data().await.unwrap();
    assert!(empty.plans.is_empty() && empty.customers.is_empty() && empty.subscriptions.is_empty());
    s.put_customer(&customer("c2")).await.unwrap();
    s.put_customer(&customer("c1")).await.unwrap();
    s.put_plan(&plan("pro", "pro", 4900)).await.unwrap();
    let s1 = subscription("s1", "c1", "pro");
    let s2 = Subscription {
        trial_ends_at: Some(t0() + 14 * DAY),
        ..subscription("s2", "c2", "pro")
    };
    s.put_subscription(&s1).await.unwrap();
    s.put_subscription(&s2).await.unwrap();
    s.cancel_subscription("s1", t0() + 3 * DAY).await.unwrap();
    let change = SubscriptionChange {
        subscription_id: "s2".into(),
        effective_at: t0() + DAY,
        plan_id: Some("pro".into()),
        quantity: None,
        discount_percent: Some(dec("33.333")),
    };
    s.put_change(&change).await.unwrap();

    let data = s.billing_data().await.unwrap();
    assert_eq!(data.plans, vec![plan("pro", "pro", 4900)]);
    assert_eq!(data.customers, vec![customer("c1"), customer("c2")]);
    assert_eq!(
        data.subscriptions,
        vec![
            Subscription {
                canceled_at: Some(t0() + 3 * DAY),
                ..s1
            },
            s2
        ]
    );
    assert_eq!(data.changes, vec![change]);
    assert_eq!(
        s.counts().await.unwrap(),
        Counts {
            plans: 1,
            customers: 2,
            subscriptions: 2,
            subscription_changes: 1,
            ..Counts::default()
        }
    );
}

// ---- access ----------------------------------------------------------------------------

async fn api_keys(s: &dyn Store) {
    let admin = ApiKey {
        id: "key_admin".into(),
        name: "ops".into(),
        role: Role::Admin,
        secret_hash: "aa".repeat(32),
        created_at: t0(),
        revoked_at: None,
    };
    let ingest = ApiKey {
        id: "key_ingest".into(),
        role: Role::Ingest,
        secret_hash: "bb".repeat(32),
        ..admin.clone()
    };
    s.put_api_key(&admin).await.unwrap();
    s.put_api_key(&ingest).await.unwrap();
    // The same key again is fine; another key reusing an id or a secret is not.
    s.put_api_key(&admin).await.unwrap();
    let same_id = ApiKey {
        secret_hash: "cc".repeat(32),
        ..admin.clone()
    };
    assert!(matches!(
        s.put_api_key(&same_id).await,
        Err(StoreError::Conflict(_))
    ));
    let same_secret = ApiKey {
        id: "key_other".into(),
        ..admin.clone()
    };
    assert!(matches!(
        s.put_api_key(&same_secret).await,
        Err(StoreError::Conflict(_))
    ));

    assert_eq!(
        s.find_api_key(&"bb".repeat(32)).await.unwrap(),
        Some(ingest.clone())
    );
    assert_eq!(s.find_api_key(&"cc".repeat(32)).await.unwrap(), None);
    assert_eq!(
        s.list_api_keys().await.unwrap(),
        vec![admin.clone(), ingest.clone()]
    );

    s.revoke_api_key("key_ingest", t0() + DAY).await.unwrap();
    // Revoking again keeps the first time.
    s.revoke_api_key("key_ingest", t0() + 2 * DAY)
        .await
        .unwrap();
    let revoked = s.find_api_key(&"bb".repeat(32)).await.unwrap().unwrap();
    assert_eq!(revoked.revoked_at, Some(t0() + DAY));
    match s.revoke_api_key("key_nope", t0()).await {
        Err(StoreError::NotFound { id, .. }) => assert_eq!(id, "key_nope"),
        other => panic!("expected an unknown key, got {other:?}"),
    }
}

async fn alert_rules(s: &dyn Store) {
    let rule = |metric: &str, direction: Direction, warning: &str, critical: &str| AlertRule {
        metric: metric.into(),
        direction,
        critical: dec(critical),
        warning: dec(warning),
        info: None,
        enabled: true,
    };
    use Direction::{Above, Below};
    // The defaults of metrics.md, in metric order.
    assert_eq!(
        s.list_alert_rules().await.unwrap(),
        vec![
            rule("churn_rate", Above, "4", "5"),
            rule("error_rate", Above, "1", "5"),
            rule("gross_margin", Below, "60", "40"),
            rule("mrr_growth", Below, "0", "-5"),
            rule("payment_success_rate", Below, "97", "90"),
            rule("uptime", Below, "99.9", "99"),
        ]
    );
    let latency = AlertRule {
        info: Some(dec("250.50")),
        ..rule("latency_ms", Above, "500", "1000")
    };
    assert_eq!(s.put_alert_rule(&latency).await.unwrap(), Created);
    assert_eq!(s.put_alert_rule(&latency).await.unwrap(), Unchanged);
    let disabled = AlertRule {
        enabled: false,
        ..latency.clone()
    };
    assert_eq!(s.put_alert_rule(&disabled).await.unwrap(), Updated);
    let stricter_churn = rule("churn_rate", Above, "3", "4.5");
    assert_eq!(s.put_alert_rule(&stricter_churn).await.unwrap(), Updated);

    let rules = s.list_alert_rules().await.unwrap();
    assert_eq!(rules.len(), 7);
    assert_eq!(rules[0], stricter_churn);
    let stored = rules.iter().find(|r| r.metric == "latency_ms").unwrap();
    assert_eq!(stored, &disabled);
    assert_eq!(stored.info.unwrap().to_string(), "250.5");

    s.delete_alert_rule("uptime").await.unwrap();
    assert!(matches!(
        s.delete_alert_rule("uptime").await,
        Err(StoreError::NotFound { .. })
    ));
    assert_eq!(s.list_alert_rules().await.unwrap().len(), 6);
}

async fn audit_log(s: &dyn Store) {
    let entry = |i: u16| AuditEntry {
        id: 0,
        at: t0() + i64::from(i),
        key_id: (i % 2 == 0).then(|| format!("key_{i}")),
        method: "PUT".into(),
        route: "/api/v1/plans/{id}".into(),
        status: 200 + i,
        client: Some("127.0.0.1".into()),
    };
    assert!(s
        .list_audit(&page(10, None))
        .await
        .unwrap()
        .items
        .is_empty());
    for i in 1..=5 {
        s.append_audit(&entry(i)).await.unwrap();
    }
    let p1 = s.list_audit(&page(2, None)).await.unwrap();
    assert_eq!(
        p1.items.iter().map(|e| e.status).collect::<Vec<_>>(),
        [205, 204]
    );
    assert!(p1.items[0].id > p1.items[1].id);
    assert_eq!(
        p1.items[1],
        AuditEntry {
            id: p1.items[1].id,
            ..entry(4)
        }
    );
    let p2 = s
        .list_audit(&page(2, p1.next_cursor.as_deref()))
        .await
        .unwrap();
    assert_eq!(
        p2.items.iter().map(|e| e.status).collect::<Vec<_>>(),
        [203, 202]
    );
    let p3 = s
        .list_audit(&page(2, p2.next_cursor.as_deref()))
        .await
        .unwrap();
    assert_eq!(p3.items.iter().map(|e| e.status).collect::<Vec<_>>(), [201]);
    assert_eq!((p3.next_cursor, p3.items[0].key_id.clone()), (None, None));
    assert!(matches!(
        s.list_audit(&page(2, Some(&encode_cursor("x")))).await,
        Err(StoreError::BadCursor)
    ));
}

// ---- data version ----------------------------------------------------------------------

/// Asserts how far each counter moved since `last`, then moves `last` on. Every write that
/// changed data raises its counter by exactly one (one transaction, however many rows);
/// one that changed nothing, or failed and rolled back, leaves both as they were.
async fn moved(s: &dyn Store, last: &mut DataVersion, entities: i64, events: i64, what: &str) {
    let now = s.data_version().await.unwrap();
    assert_eq!(
        (now.entities - last.entities, now.events - last.events),
        (entities, events),
        "{what}: from {last:?} to {now:?}"
    );
    *last = now;
}

async fn data_version_counts_entity_writes(s: &dyn Store) {
    let mut v = s.data_version().await.unwrap();
    assert_eq!(v, DataVersion::default(), "a fresh store starts at zero");

    s.put_plan(&plan("pro", "pro", 4900)).await.unwrap();
    moved(s, &mut v, 1, 0, "plan created").await;
    s.put_plan(&plan("pro", "pro", 4900)).await.unwrap();
    moved(s, &mut v, 0, 0, "plan unchanged").await;
    s.put_plan(&plan("pro", "pro", 5900)).await.unwrap();
    moved(s, &mut v, 1, 0, "plan updated").await;

    s.put_customer(&customer("c1")).await.unwrap();
    moved(s, &mut v, 1, 0, "customer created").await;
    s.put_customer(&customer("c1")).await.unwrap();
    moved(s, &mut v, 0, 0, "customer unchanged").await;

    let sub = subscription("s1", "c1", "pro");
    s.put_subscription(&sub).await.unwrap();
    moved(s, &mut v, 1, 0, "subscription created").await;
    s.put_subscription(&sub).await.unwrap();
    moved(s, &mut v, 0, 0, "subscription unchanged").await;
    let other = Subscription {
        quantity: 2,
        ..sub.clone()
    };
    assert!(s.put_subscription(&other).await.is_err());
    moved(s, &mut v, 0, 0, "subscription conflict").await;
    assert!(s
        .put_subscription(&subscription("s2", "nobody", "pro"))
        .await
        .is_err());
    moved(s, &mut v, 0, 0, "subscription of an unknown customer").await;

    let change = SubscriptionChange {
        subscription_id: "s1".into(),
        effective_at: t0() + DAY,
        plan_id: None,
        quantity: Some(3),
        discount_percent: None,
    };
    s.put_change(&change).await.unwrap();
    moved(s, &mut v, 1, 0, "change created").await;
    s.put_change(&change).await.unwrap();
    moved(s, &mut v, 0, 0, "change unchanged").await;
    let orphan = SubscriptionChange {
        subscription_id: "nope".into(),
        ..change.clone()
    };
    assert!(s.put_change(&orphan).await.is_err());
    moved(s, &mut v, 0, 0, "change of an unknown subscription").await;

    s.cancel_subscription("s1", t0() + 10 * DAY).await.unwrap();
    moved(s, &mut v, 1, 0, "cancellation").await;
    s.cancel_subscription("s1", t0() + 10 * DAY).await.unwrap();
    moved(s, &mut v, 0, 0, "the same cancellation").await;
    assert!(s.cancel_subscription("s1", t0() - DAY).await.is_err());
    moved(s, &mut v, 0, 0, "cancellation before the start").await;

    let inv = invoice("i1", InvoiceStatus::Paid, 4900, t0(), Some(t0()));
    s.put_invoice(&inv).await.unwrap();
    moved(s, &mut v, 1, 0, "invoice created").await;
    s.put_invoice(&inv).await.unwrap();
    moved(s, &mut v, 0, 0, "invoice unchanged").await;

    let nov = Month::new(2025, 11).unwrap();
    let cost = |service: &str, amount| CostRecord {
        month: nov,
        category: CostCategory::Infrastructure,
        service: service.into(),
        amount,
    };
    s.put_costs(&[cost("a", 1), cost("b", 2)]).await.unwrap();
    moved(s, &mut v, 1, 0, "two costs in one transaction").await;
    s.put_costs(&[cost("a", 1), cost("b", 2)]).await.unwrap();
    moved(s, &mut v, 0, 0, "costs unchanged").await;
    s.put_costs(&[cost("a", 1), cost("b", 3)]).await.unwrap();
    moved(s, &mut v, 1, 0, "one cost of two updated").await;
    s.put_costs(&[]).await.unwrap();
    moved(s, &mut v, 0, 0, "no costs").await;

    let spend = MarketingSpend {
        month: nov,
        channel: "ads".into(),
        amount: 100,
    };
    s.put_spend(std::slice::from_ref(&spend)).await.unwrap();
    moved(s, &mut v, 1, 0, "spend created").await;
    s.put_spend(std::slice::from_ref(&spend)).await.unwrap();
    moved(s, &mut v, 0, 0, "spend unchanged").await;

    let svc = Service {
        name: "llm".into(),
        display_name: Some("LLM".into()),
        unit_type: None,
        health_url: None,
    };
    s.put_service(&svc).await.unwrap();
    moved(s, &mut v, 1, 0, "service created").await;
    s.put_service(&svc).await.unwrap();
    moved(s, &mut v, 0, 0, "service unchanged").await;

    let mut churn = s.list_alert_rules().await.unwrap().remove(0);
    churn.warning = dec("3");
    s.put_alert_rule(&churn).await.unwrap();
    moved(s, &mut v, 1, 0, "alert rule updated").await;
    s.put_alert_rule(&churn).await.unwrap();
    moved(s, &mut v, 0, 0, "alert rule unchanged").await;
    s.delete_alert_rule("uptime").await.unwrap();
    moved(s, &mut v, 1, 0, "alert rule deleted").await;
    assert!(s.delete_alert_rule("uptime").await.is_err());
    moved(s, &mut v, 0, 0, "missing alert rule").await;

    // Keys and the audit log feed no figure.
    let key = ApiKey {
        id: "key_1".into(),
        name: "ops".into(),
        role: Role::Admin,
        secret_hash: "aa".repeat(32),
        created_at: t0(),
        revoked_at: None,
    };
    s.put_api_key(&key).await.unwrap();
    s.revoke_api_key("key_1", t0()).await.unwrap();
    s.append_audit(&AuditEntry {
        id: 0,
        at: t0(),
        key_id: None,
        method: "PUT".into(),
        route: "/api/v1/plans/{id}".into(),
        status: 200,
        client: None,
    })
    .await
    .unwrap();
    moved(s, &mut v, 0, 0, "keys and audit").await;
}

async fn data_version_counts_event_inserts(s: &dyn Store) {
    let mut v = s.data_version().await.unwrap();
    s.insert_events(&[]).await.unwrap();
    moved(s, &mut v, 0, 0, "no events").await;
    // A batch is one transaction: one step, however many events (and a new service
    // registered by them counts under events too).
    s.insert_events(&[usage("a", "llm", t0()), usage("b", "search", t0())])
        .await
        .unwrap();
    moved(s, &mut v, 0, 1, "two new events").await;
    s.insert_events(&[usage("a", "llm", t0()), usage("a", "llm", t0())])
        .await
        .unwrap();
    moved(s, &mut v, 0, 0, "duplicates only").await;
    s.insert_events(&[usage("b", "llm", t0()), health("h", true, None, t0())])
        .await
        .unwrap();
    moved(s, &mut v, 0, 1, "a duplicate and a new health check").await;
    s.insert_events(&[gauge("g", "llm_cache_size_bytes", 1.0, t0())])
        .await
        .unwrap();
    moved(s, &mut v, 0, 1, "a gauge").await;
}

async fn billing_data_carries_its_version(s: &dyn Store) {
    assert_eq!(
        s.billing_data().await.unwrap().version,
        DataVersion::default()
    );
    s.put_plan(&plan("pro", "pro", 4900)).await.unwrap();
    s.insert_events(&[usage("a", "llm", t0())]).await.unwrap();
    let data = s.billing_data().await.unwrap();
    assert_eq!(
        data.version,
        DataVersion {
            entities: 1,
            events: 1
        }
    );
    assert_eq!(data.version, s.data_version().await.unwrap());
    assert_eq!(data.plans.len(), 1);
}

/// Two stores on one database stand for two processes: each sees the other's writes in
/// its next read of the version, which is what keeps their caches apart.
async fn data_version_is_shared_by_processes(url: &str) {
    let a = open_migrated(url).await;
    let b = open_migrated(url).await;
    let start = b.data_version().await.unwrap();
    a.put_plan(&plan("pro", "pro", 4900)).await.unwrap();
    let after_plan = b.data_version().await.unwrap();
    assert_eq!(after_plan.entities, start.entities + 1);
    assert_eq!(b.billing_data().await.unwrap().plans.len(), 1);
    a.insert_events(&[usage("e1", "llm", t0())]).await.unwrap();
    // On SQLite the events reach the database when `a`'s ingest log folds them, which a
    // read of `a` waits for; another process sees them from then on.
    a.data_version().await.unwrap();
    let after_event = b.data_version().await.unwrap();
    assert_eq!(
        after_event,
        DataVersion {
            events: after_plan.events + 1,
            ..after_plan
        }
    );
}

/// Concurrent writers, from two pools, never lose a step: each committed write that
/// changed data is one step of its counter.
async fn concurrent_writes_each_raise_the_version(url: &str) {
    let stores = [open_migrated(url).await, open_migrated(url).await];
    let start = stores[0].data_version().await.unwrap();
    const EACH: usize = 8;
    let mut tasks = Vec::new();
    for (n, store) in stores.iter().enumerate() {
        for i in 0..EACH {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                let id = format!("{n}-{i}");
                store
                    .insert_events(&[usage(&format!("e{id}"), "llm", t0())])
                    .await
                    .unwrap();
                store
                    .put_plan(&plan(&format!("p{id}"), "pro", 100))
                    .await
                    .unwrap();
            }));
        }
    }
    for t in tasks {
        t.await.unwrap();
    }
    // A read of the first waits for its ingest log's fold (SQLite), which the second
    // cannot see pending.
    stores[0].data_version().await.unwrap();
    let end = stores[1].data_version().await.unwrap();
    let writes = (2 * EACH) as i64;
    assert_eq!(
        (end.entities - start.entities, end.events - start.events),
        (writes, writes)
    );
}

// ---- opening ---------------------------------------------------------------------------

async fn data_survives_reopening(url: &str) {
    let store = open_migrated(url).await;
    store.put_plan(&plan("pro", "pro", 4900)).await.unwrap();
    store
        .insert_events(&[usage("e1", "llm", t0()), usage("e2", "llm", t0())])
        .await
        .unwrap();
    drop(store);

    let store = open_migrated(url).await;
    assert_eq!(
        store.get_plan("pro").await.unwrap(),
        Some(plan("pro", "pro", 4900))
    );
    let counts = store.counts().await.unwrap();
    assert_eq!((counts.plans, counts.events, counts.services), (1, 2, 1));
    assert_eq!(
        store
            .insert_events(&[usage("e2", "llm", t0())])
            .await
            .unwrap(),
        vec![false]
    );
    assert_eq!(store.list_alert_rules().await.unwrap().len(), 6);
}

async fn concurrent_migrations(url: &str) {
    let stores = [
        tally_store::open(url).await.unwrap(),
        tally_store::open(url).await.unwrap(),
        tally_store::open(url).await.unwrap(),
    ];
    let results = futures_join_all(stores.iter().map(|s| s.migrate())).await;
    for r in results {
        r.unwrap();
    }
    // The seed ran once.
    assert_eq!(stores[0].list_alert_rules().await.unwrap().len(), 6);
    assert_eq!(
        stores[2].put_plan(&plan("pro", "pro", 1)).await.unwrap(),
        Created
    );
    assert_eq!(
        stores[1].put_plan(&plan("pro", "pro", 1)).await.unwrap(),
        Unchanged
    );
}

/// `Store::analyze` on an empty store and after a load: the planner's statistics
/// of the loaded tables exist afterwards (`pg_stats`, `sqlite_stat1`), on PostgreSQL the
/// loaded pages are marked all-visible (so that covering indexes answer alone), and the
/// data, the answers and the data version are as before.
async fn analyze_gathers_statistics_and_changes_no_data(url: &str) {
    let s = open_migrated(url).await;
    s.analyze().await.unwrap();
    s.put_plan(&plan("pro", "pro", 4900)).await.unwrap();
    s.put_customer(&customer("c1")).await.unwrap();
    s.put_subscription(&subscription("s1", "c1", "pro"))
        .await
        .unwrap();
    for i in 0..50 {
        let at = t0() + i * DAY;
        let paid = invoice(&format!("i{i}"), InvoiceStatus::Paid, 4900, at, Some(at));
        s.put_invoice(&paid).await.unwrap();
    }
    s.insert_events(&usage_events()).await.unwrap();
    let version = s.data_version().await.unwrap();
    let counts = s.counts().await.unwrap();
    let usage = s.usage(&usage_query()).await.unwrap();

    s.analyze().await.unwrap();
    s.analyze().await.unwrap();
    assert_eq!(s.data_version().await.unwrap(), version);
    assert_eq!(s.counts().await.unwrap(), counts);
    assert_eq!(s.usage(&usage_query()).await.unwrap(), usage);

    let analyzed: Vec<String> = if url.starts_with("postgres") {
        use sqlx::Connection;
        let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
        // Only a VACUUM sets the visibility map (autovacuum is off on the CI machine, and
        // would not have come round within the test elsewhere); `relallvisible` counts
        // the pages it marked, of `relpages`.
        let (visible, pages): (i32, i32) = sqlx::query_as(
            "SELECT relallvisible, relpages FROM pg_class WHERE oid = 'invoices'::regclass",
        )
        .fetch_one(&mut conn)
        .await
        .unwrap();
        assert!(pages >= 1, "{pages} invoice pages");
        assert_eq!(visible, pages, "invoice pages marked all-visible");
        sqlx::query_scalar("SELECT DISTINCT tablename::text FROM pg_stats ORDER BY 1")
            .fetch_all(&mut conn)
            .await
            .unwrap()
    } else {
        use sqlx::Connection;
        let path = url.strip_prefix("sqlite://").unwrap();
        let options = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(path)
            .read_only(true);
        let mut conn = sqlx::SqliteConnection::connect_with(&options)
            .await
            .unwrap();
        sqlx::query_scalar("SELECT DISTINCT tbl FROM sqlite_stat1 ORDER BY 1")
            .fetch_all(&mut conn)
            .await
            .unwrap()
    };
    for table in ["customers", "events", "invoices", "subscriptions"] {
        assert!(
            analyzed.iter().any(|t| t == table),
            "no statistics of {table}: {analyzed:?}"
        );
    }
}

/// Runs futures concurrently on this task (no `futures` dependency needed).
async fn futures_join_all<F: std::future::Future>(
    futures: impl IntoIterator<Item = F>,
) -> Vec<F::Output> {
    let mut set = Vec::new();
    for f in futures {
        set.push(Box::pin(f));
    }
    let mut outputs: Vec<Option<F::Output>> = set.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (f, out) in set.iter_mut().zip(outputs.iter_mut()) {
            if out.is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => *out = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    outputs
        .into_iter()
        .map(|o| o.expect("every future finished"))
        .collect()
}

// ---- SQLite only -----------------------------------------------------------------------

#[tokio::test]
async fn sqlite_urls_and_paths_open_the_same_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a").join("b").join("tally.db");
    let store = tally_store::open(path.to_str().unwrap()).await.unwrap();
    assert_eq!(store.backend(), "sqlite");
    store.migrate().await.unwrap();
    store.put_plan(&plan("pro", "pro", 4900)).await.unwrap();
    drop(store);
    for url in [
        format!("sqlite://{}", path.display()),
        format!("sqlite:{}", path.display()),
    ] {
        let store = tally_store::open(&url).await.unwrap();
        assert_eq!(
            store.get_plan("pro").await.unwrap().map(|p| p.amount),
            Some(4900),
            "{url}"
        );
    }
    assert!(matches!(
        tally_store::open("sqlite::memory:").await,
        Err(StoreError::UnsupportedUrl(_))
    ));
    assert!(matches!(
        tally_store::open("mysql://localhost/x").await,
        Err(StoreError::UnsupportedUrl(_))
    ));
}

/// Runs `sql` (statements separated by `;`) on the database at `url`, outside the store.
async fn raw_exec(url: &str, sql: &str) {
    use sqlx::{Connection, Executor};
    if url.starts_with("postgres") {
        let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
        conn.execute(sql).await.unwrap();
    } else {
        let path = url.strip_prefix("sqlite://").unwrap();
        let options = sqlx::sqlite::SqliteConnectOptions::new().filename(path);
        let mut conn = sqlx::SqliteConnection::connect_with(&options)
            .await
            .unwrap();
        conn.execute(sql).await.unwrap();
    }
}

/// The active `(service, customer)` pairs of `span`, by id, through the store's numbers.
async fn active_pairs(
    s: &dyn Store,
    span: Span,
    ids: &[&str],
) -> BTreeSet<(Option<String>, String)> {
    let numbers = s.customer_numbers(ids).await.unwrap();
    let numbers: Vec<(&str, u32)> = ids
        .iter()
        .zip(&numbers)
        .filter_map(|(id, n)| Some((*id, (*n)?)))
        .collect();
    let active = s
        .active_customers(EventKind::Usage, span, true)
        .await
        .unwrap();
    let mut out = BTreeSet::new();
    for (service, set) in active.by_service {
        for n in set {
            let id = numbers.iter().find(|(_, m)| *m == n);
            let id = id
                .unwrap_or_else(|| panic!("number {n} is not one of {ids:?}"))
                .0;
            out.insert((service.clone(), (*id).to_owned()));
        }
    }
    out
}

/// A customer numbered beyond the first bitmap chunk (65,536 numbers) is counted like any
/// other; and a store whose bitmaps are missing (data stored before migration 0008, here
/// emulated by emptying them and setting the backfill flag again) rebuilds them when it
/// migrates, to the same answers.
async fn activity_of_far_numbers_and_of_older_data(url: &str) {
    let s = open_migrated(url).await;
    // The store numbers customers from the largest number up (SQLite) or from its sequence
    // (PostgreSQL): either way `far` keeps 200,000, in chunk 3.
    raw_exec(
        url,
        "INSERT INTO customer_numbers (n, customer_id) VALUES (200000, 'far')",
    )
    .await;
    let t = t0();
    let mut events = Vec::new();
    for (i, (customer, service, at)) in [
        ("far", "llm", t),
        ("near", "llm", t + HOUR),
        ("near", "search", t + DAY + HOUR),
        ("far", "search", t + 2 * DAY + 5),
        ("other", "llm", t + 2 * DAY + HOUR),
    ]
    .into_iter()
    .enumerate()
    {
        let mut e = usage(&format!("e{i}"), service, at);
        e.customer_id = Some(customer.into());
        events.push(e);
    }
    s.insert_events(&events).await.unwrap();
    let ids = ["far", "near", "other"];
    assert_eq!(s.customer_numbers(&["far"]).await.unwrap(), [Some(200_000)]);
    let pair = |service: &str, c: &str| (Some(service.to_owned()), c.to_owned());
    // Whole days (t0 is a midnight), then a span with partial days at both ends.
    let whole = Span::new(t, t + 3 * DAY);
    let partial = Span::new(t + 30 * 60_000_000, t + 2 * DAY + 10);
    let expected_whole: BTreeSet<_> = [
        pair("llm", "far"),
        pair("llm", "near"),
        pair("llm", "other"),
        pair("search", "far"),
        pair("search", "near"),
    ]
    .into();
    let expected_partial: BTreeSet<_> = [
        pair("llm", "near"),
        pair("search", "far"),
        pair("search", "near"),
    ]
    .into();
    assert_eq!(active_pairs(&*s, whole, &ids).await, expected_whole);
    assert_eq!(active_pairs(&*s, partial, &ids).await, expected_partial);
    let all = s
        .active_customers(EventKind::Usage, whole, false)
        .await
        .unwrap();
    assert_eq!(all.count(None), 3);
    assert!(all.all().contains(200_000));
    drop(s);

    raw_exec(
        url,
        "DELETE FROM customer_activity; DELETE FROM customer_numbers; \
         INSERT INTO customer_activity_backfill (pending) VALUES (1)",
    )
    .await;
    let s = open_migrated(url).await;
    assert_eq!(active_pairs(&*s, whole, &ids).await, expected_whole);
    assert_eq!(active_pairs(&*s, partial, &ids).await, expected_partial);
    // The flag is gone: migrating again builds nothing twice (the answers stay).
    s.migrate().await.unwrap();
    assert_eq!(active_pairs(&*s, whole, &ids).await, expected_whole);
}
