//! Event batches that arrive together are written in groups (one transaction for several
//! callers). Seen from each caller, nothing changes: every id is stored once, the first
//! payload wins, each caller is told exactly which of its events it stored, the rollups
//! equal a scan of the stored events, and a batch the database refuses fails alone.
//! SQLite always; PostgreSQL when `TALLY_TEST_DATABASE_URL` is set.

use std::collections::HashMap;
use std::sync::Arc;
use tally_core::event::{Event, EventKind};
use tally_core::time::MICROS_PER_DAY;
use tally_store::{Span, Store, UsageDim, UsageQuery};

const PG_ENV: &str = "TALLY_TEST_DATABASE_URL";

/// A migrated SQLite store in a temporary directory.
async fn sqlite() -> (Arc<dyn Store>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = tally_store::open(dir.path().join("tally.db").to_str().unwrap())
        .await
        .unwrap();
    store.migrate().await.unwrap();
    (store, dir)
}

/// A migrated store in a database of its own, dropped when the test body returns.
async fn with_postgres<F, Fut>(body: F)
where
    F: FnOnce(Arc<dyn Store>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    use sqlx::{Connection, Executor};
    let Ok(admin) = std::env::var(PG_ENV) else {
        eprintln!("skipped: {PG_ENV} is not set");
        return;
    };
    let name = format!(
        "tally_gc_{}_{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos()
    );
    let mut conn = sqlx::PgConnection::connect(&admin).await.unwrap();
    conn.execute(format!("CREATE DATABASE {name}").as_str())
        .await
        .unwrap();
    let mut url = url::Url::parse(&admin).unwrap();
    url.set_path(&name);
    let store = tally_store::open(url.as_str()).await.unwrap();
    store.migrate().await.unwrap();
    let result = tokio::spawn(body(store)).await;
    conn.execute(format!("DROP DATABASE {name} WITH (FORCE)").as_str())
        .await
        .unwrap();
    result.unwrap();
}

const DAY0: i64 = 20_400 * MICROS_PER_DAY;
const CALLERS: usize = 12;
const PER_CALLER: usize = 400;

/// Caller `c`'s events: the even callers give theirs up (`insert_owned_events`), the odd
/// ones lend them (`insert_events`).
async fn send(store: &dyn Store, c: usize, b: &[Event]) -> Vec<bool> {
    if c % 2 == 0 {
        store.insert_owned_events(b.to_vec()).await.unwrap()
    } else {
        store.insert_events(b).await.unwrap()
    }
}

/// Caller `c`'s batch: ids `e{n}` for n in [c·200, c·200 + 400), so each id is in two
/// neighbouring batches; the payload (quantity, customer, day) tells the callers apart.
fn batch(c: usize) -> Vec<Event> {
    (c * PER_CALLER / 2..c * PER_CALLER / 2 + PER_CALLER)
        .map(|n| Event {
            customer_id: Some(format!("cus_{}", n % 7)),
            service: Some(["search", "llm"][c % 2].to_owned()),
            quantity: (c as i64 + 1) * 1_000_000,
            ..Event::blank(
                format!("e{n}"),
                EventKind::Usage,
                DAY0 + (c as i64 % 3) * MICROS_PER_DAY + n as i64 * 1_000_000,
            )
        })
        .collect()
}

async fn overlapping_batches_count_each_id_once(store: Arc<dyn Store>) {
    let before = store.data_version().await.unwrap();
    let mut tasks = Vec::new();
    for c in 0..CALLERS {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let b = batch(c);
            let stored = send(store.as_ref(), c, &b).await;
            (c, b, stored)
        }));
    }
    // For each id, the caller told it stored it, and that caller's event.
    let mut winner: HashMap<String, (usize, Event)> = HashMap::new();
    let mut callers_that_stored = 0;
    for t in tasks {
        let (c, b, stored) = t.await.unwrap();
        assert_eq!(stored.len(), b.len());
        callers_that_stored += stored.iter().any(|&s| s) as i64;
        for (e, s) in b.into_iter().zip(stored) {
            if s {
                let prev = winner.insert(e.id.clone(), (c, e));
                assert!(prev.is_none(), "two callers were told they stored one id");
            }
        }
    }
    let distinct = CALLERS * PER_CALLER / 2 + PER_CALLER / 2;
    assert_eq!(
        winner.len(),
        distinct,
        "every id stored by exactly one caller"
    );
    assert_eq!(store.counts().await.unwrap().events, distinct as i64);
    // The events' version rose once per caller that stored something.
    let after = store.data_version().await.unwrap();
    assert_eq!(after.events - before.events, callers_that_stored);

    // The stored payload is the one of the caller told it stored it: the usage by day
    // and service (whole days, from the rollups) and by customer over a partial span
    // (from the raw events) equal the winners' events summed here.
    let span = Span::new(DAY0, DAY0 + 4 * MICROS_PER_DAY);
    let mut q = UsageQuery::new(EventKind::Usage, span);
    q.group_by = vec![UsageDim::Day, UsageDim::Service];
    let rows = store.usage(&q).await.unwrap();
    let mut expect: HashMap<(i64, String), (i64, i64)> = HashMap::new();
    for (_, e) in winner.values() {
        let k = (e.time / MICROS_PER_DAY, e.service.clone().unwrap());
        let v = expect.entry(k).or_default();
        v.0 += 1;
        v.1 += e.quantity;
    }
    let got: HashMap<(i64, String), (i64, i64)> = rows
        .iter()
        .map(|r| {
            (
                (r.day.unwrap(), r.service.clone().unwrap()),
                (r.events, r.quantity),
            )
        })
        .collect();
    assert_eq!(got, expect);
    let partial = Span::new(DAY0 + MICROS_PER_DAY / 3, DAY0 + 2 * MICROS_PER_DAY + 7);
    let mut q = UsageQuery::new(EventKind::Usage, partial);
    q.group_by = vec![UsageDim::Customer];
    let rows = store.usage(&q).await.unwrap();
    let mut expect: HashMap<String, i64> = HashMap::new();
    for (_, e) in winner.values() {
        if partial.start <= e.time && e.time < partial.end {
            *expect.entry(e.customer_id.clone().unwrap()).or_default() += e.quantity;
        }
    }
    let got: HashMap<String, i64> = rows
        .iter()
        .map(|r| (r.customer_id.clone().unwrap(), r.quantity))
        .collect();
    assert_eq!(got, expect);

    // Sending everything again, concurrently, stores nothing and raises no version.
    let mut tasks = Vec::new();
    for c in 0..CALLERS {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            send(store.as_ref(), c, &batch(c)).await
        }));
    }
    for t in tasks {
        assert!(t.await.unwrap().iter().all(|&s| !s));
    }
    assert_eq!(store.counts().await.unwrap().events, distinct as i64);
    assert_eq!(store.data_version().await.unwrap(), after);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_overlapping_batches_count_each_id_once() {
    let (store, _dir) = sqlite().await;
    overlapping_batches_count_each_id_once(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_overlapping_batches_count_each_id_once() {
    with_postgres(overlapping_batches_count_each_id_once).await;
}

/// PostgreSQL refuses a NUL character in text; the model name is the one text field
/// validation lets through with one. The batch holding it fails; the batches sent with
/// it, which may share its group, are stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_a_refused_batch_fails_alone() {
    with_postgres(|store| async move {
        let mut tasks = Vec::new();
        for c in 0..8usize {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                let mut b = batch(c * 3);
                if c == 3 {
                    b[5].model = Some("bad\0model".into());
                }
                (c, store.insert_events(&b).await)
            }));
        }
        let mut stored = 0;
        for t in tasks {
            let (c, result) = t.await.unwrap();
            if c == 3 {
                assert!(result.is_err());
            } else {
                stored += result.unwrap().iter().filter(|&&s| s).count();
            }
        }
        assert_eq!(stored, 7 * PER_CALLER);
        assert_eq!(store.counts().await.unwrap().events, stored as i64);
    })
    .await;
}
