//! Schema changes on the source while sync streams under a write load: the target follows in
//! stream order and ends identical.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use my2pg::harness;
use my2pg::sync::{self, Exit, SyncOptions};
use rand::Rng;
use tokio::sync::watch;

async fn writes(url: String, mut stop: watch::Receiver<bool>) -> u64 {
    let mut c = my_conn(&url).await;
    let mut next = 10_000i64;
    let mut n = 0;
    while !*stop.borrow() {
        let (k, a) = {
            let mut r = rand::rng();
            (r.random_range(0..4), r.random_range(1..2000))
        };
        let sql = match k {
            0 | 1 => {
                next += 1;
                format!("INSERT INTO t (id, v) VALUES ({next}, 'w{next}')")
            }
            2 => format!("UPDATE t SET v = CONCAT(LEFT(v, 20), '+') WHERE id = {a}"),
            _ => format!("DELETE FROM t WHERE id = {a}"),
        };
        exec(&mut c, &sql).await;
        n += 1;
        let _ = tokio::time::timeout(Duration::from_millis(2), stop.changed()).await;
    }
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schema_changes_under_writes_are_followed_in_stream_order() {
    let db = harness::shared().fresh("ddl_load").await.unwrap();
    let mut c = my_conn(&db.mysql_db_url).await;
    exec(&mut c, "CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(40))").await;
    exec(
        &mut c,
        "INSERT INTO t SELECT seq, CONCAT('r', seq) FROM seq_1_to_2000",
    )
    .await;
    let ctx = sync::context(
        &sync_config(&db),
        my2pg::metrics::Metrics::new().unwrap(),
        my2pg::health::Health::new(),
    )
    .unwrap();
    let (stop_tx, stop_rx) = watch::channel(false);
    let run = tokio::spawn(sync::run(ctx, SyncOptions::default(), stop_rx));
    wait_identical(&db, &["t"], Duration::from_secs(60)).await;
    let (stop_load, load_rx) = watch::channel(false);
    let load = tokio::spawn(writes(db.mysql_db_url.clone(), load_rx));
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Each change lands between writes; rows written after it use the new shape.
    exec(
        &mut c,
        "ALTER TABLE t ADD COLUMN qty INT NOT NULL DEFAULT 7",
    )
    .await;
    exec(&mut c, "UPDATE t SET qty = id % 10 WHERE id % 3 = 0").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    exec(&mut c, "ALTER TABLE t MODIFY v VARCHAR(80)").await;
    exec(&mut c, "UPDATE t SET v = REPEAT('x', 70) WHERE id % 50 = 0").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    exec(
        &mut c,
        "ALTER TABLE t ADD COLUMN note TEXT NULL, ADD INDEX by_qty (qty)",
    )
    .await;
    exec(
        &mut c,
        "CREATE TABLE t2 (k VARCHAR(10) PRIMARY KEY, n BIGINT)",
    )
    .await;
    exec(&mut c, "INSERT INTO t2 VALUES ('a', 1), ('b', 2)").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    exec(&mut c, "ALTER TABLE t DROP COLUMN note").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop_load.send(true).unwrap();
    let n = load.await.unwrap();
    assert!(n > 50, "only {n} writes");
    wait_identical(&db, &["t", "t2"], Duration::from_secs(60)).await;
    assert!(!run.is_finished(), "sync stopped: {:?}", run.await);
    stop_tx.send(true).unwrap();
    assert_eq!(run.await.unwrap().unwrap(), Exit::Stopped);
}
