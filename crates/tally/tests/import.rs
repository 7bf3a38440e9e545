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

both_stores!(csv_and_ndjson_imports);
