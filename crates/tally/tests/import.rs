//! `tally import` reads CSV and NDJSON through the same validation and store code as the
//! API: valid records are stored, invalid ones reported by line, repeats change nothing.

use indicatif::ProgressBar;
use std::io::Write;
use tally::config::{resolve, GlobalArgs, ServeArgs};
use tally::import::{import, Kind};
use tally_testkit::{both_stores, TestStore};

fn write(dir: &std::path::Path, name: &str, text: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::File::create(&path)
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    path
}

async fn csv_and_ndjson_imports(store: TestStore) {
    let cfg = resolve(&GlobalArgs::default(), &ServeArgs::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let s = store.store.as_ref();
    let bar = ProgressBar::hidden();

    let customers = write(
        dir.path(),
        "customers.csv",
        "id,name,created_at,channel\ncus_1,Acme,2025-01-01T00:00:00Z,organic\ncus_2,,not-a-time,\n",
    );
    let r = import(s, &cfg, Kind::Customers, &customers, None, &bar)
        .await
        .unwrap();
    assert_eq!(r.stored, 1);
    // Line 3 of the file (header is line 1) has the bad time.
    assert_eq!(r.rejected.len(), 1);
    assert_eq!(r.rejected[0].0, 3);
    assert!(
        r.rejected[0].1.contains("created_at"),
        "{}",
        r.rejected[0].1
    );

    let events = write(
        dir.path(),
        "events.csv",
        "id,time,customer_id,service,model,input_tokens,output_tokens,cache_hit,cost_credits\n\
         e1,2025-11-20T10:00:00Z,cus_1,llm_inference,gpt-4o,1200,300,false,8.5\n\
         e2,2025-11-20T10:01:00Z,cus_1,llm_inference,gpt-4o,-1,300,false,\n\
         e3,2025-11-20T10:02:00Z,cus_1,search,,,,,\n",
    );
    let r = import(s, &cfg, Kind::Events, &events, None, &bar)
        .await
        .unwrap();
    assert_eq!((r.stored, r.duplicates, r.rejected.len()), (2, 0, 1));
    assert!(r.rejected[0].1.contains("input_tokens"));

    let ndjson = write(
        dir.path(),
        "events.ndjson",
        "{\"id\":\"e1\",\"time\":\"2025-11-20T10:00:00Z\",\"service\":\"llm_inference\"}\n\n{\"id\":\"e4\",\"time\":\"2025-11-21T00:00:00Z\",\"service\":\"search\",\"quantity\":\"2.5\"}\n{oops\n",
    );
    let r = import(s, &cfg, Kind::Events, &ndjson, None, &bar)
        .await
        .unwrap();
    assert_eq!((r.stored, r.duplicates, r.rejected.len()), (1, 1, 1));
    assert_eq!(r.rejected[0].0, 4, "the broken line is the 4th of the file");

    let counts = s.counts().await.unwrap();
    assert_eq!((counts.customers, counts.events), (1, 3));
    // Importing the same files again stores nothing new.
    import(s, &cfg, Kind::Customers, &customers, None, &bar)
        .await
        .unwrap();
    let r = import(s, &cfg, Kind::Events, &events, None, &bar)
        .await
        .unwrap();
    assert_eq!((r.stored, r.duplicates), (0, 2));
    assert_eq!(s.counts().await.unwrap(), counts);
}

/// Entity records are written a batch per transaction. A record the store refuses (here a
/// subscription of a customer that does not exist) fails its batch, which is then written
/// one record at a time: only that record is lost, and every refusal keeps its own line,
/// in line order with the records that failed validation.
async fn a_refused_record_costs_only_itself(store: TestStore) {
    let cfg = resolve(&GlobalArgs::default(), &ServeArgs::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let s = store.store.as_ref();
    let bar = ProgressBar::hidden();
    let setup = [
        (
            Kind::Plans,
            "plans.csv",
            "id,name,tier,interval,amount,currency\nbasic,Basic,basic,month,10.00,USD\n",
        ),
        (
            Kind::Customers,
            "customers.csv",
            "id,created_at\ncus_1,2025-01-01T00:00:00Z\n",
        ),
    ];
    for (kind, name, text) in setup {
        let r = import(s, &cfg, kind, &write(dir.path(), name, text), None, &bar)
            .await
            .unwrap();
        assert_eq!(
            (r.stored, r.rejected.len()),
            (1, 0),
            "{name}: {:?}",
            r.rejected
        );
    }
    let subs = write(
        dir.path(),
        "subscriptions.csv",
        "id,customer_id,plan_id,started_at,canceled_at\n\
         sub_1,cus_1,basic,2025-02-01T00:00:00Z,\n\
         sub_2,cus_nobody,basic,2025-02-01T00:00:00Z,\n\
         sub_3,cus_1,basic,not-a-time,\n\
         sub_4,cus_1,basic,2025-03-01T00:00:00Z,2025-06-01T00:00:00Z\n",
    );
    let r = import(s, &cfg, Kind::Subscriptions, &subs, None, &bar)
        .await
        .unwrap();
    assert_eq!(r.stored, 2);
    let lines: Vec<u64> = r.rejected.iter().map(|(line, _)| *line).collect();
    assert_eq!(lines, [3, 4], "{:?}", r.rejected);
    assert!(r.rejected[0].1.contains("cus_nobody"), "{:?}", r.rejected);
    assert!(r.rejected[1].1.contains("started_at"), "{:?}", r.rejected);
    assert_eq!(s.counts().await.unwrap().subscriptions, 2);
    let canceled = |id: &'static str| async move {
        s.get_subscription(id)
            .await
            .unwrap()
            .map(|r| r.subscription.canceled_at)
    };
    assert_eq!(canceled("sub_1").await, Some(None));
    assert_eq!(
        canceled("sub_4").await,
        Some(Some(
            tally_core::time::parse_instant("t", "2025-06-01T00:00:00Z").unwrap()
        ))
    );
    assert_eq!(canceled("sub_2").await, None);
}

both_stores!(csv_and_ndjson_imports, a_refused_record_costs_only_itself);
