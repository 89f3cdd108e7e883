//! `my2pg sync` end to end against real servers: copy, stream, exactly-once.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use my2pg::harness;
use my2pg::sync::{self, Exit, SyncOptions};
use rand::Rng;

/// Random inserts, updates (some changing the key), deletes and multi-table transactions.
async fn random_writes(url: String, rounds: usize, seed_max: i64) {
    let mut c = my_conn(&url).await;
    let mut next = seed_max + 1;
    for _ in 0..rounds {
        let (kind, a, b) = {
            let mut rng = rand::rng();
            (
                rng.random_range(0..10),
                rng.random_range(1..next),
                rng.random_range(1..next),
            )
        };
        let sql = match kind {
            0..=3 => {
                next += 1;
                format!("INSERT INTO t1 VALUES ({next}, 'n{next}', {next}.25, NOW(6))")
            }
            4..=6 => format!("UPDATE t1 SET v = CONCAT(v, 'u'), d = d + 1 WHERE id = {a}"),
            7 => format!("DELETE FROM t1 WHERE id = {a}"),
            8 => {
                next += 1;
                format!("UPDATE t1 SET id = {next} WHERE id = {a}")
            }
            _ => format!(
                "BEGIN; INSERT INTO t2 VALUES ('K{a}', {b}, 'x') ON DUPLICATE KEY UPDATE note = CONCAT(note, 'y'); \
                 DELETE FROM t1 WHERE id = {b}; COMMIT"
            ),
        };
        exec(&mut c, &sql).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copies_existing_rows_then_streams_changes_exactly() {
    let db = harness::shared().fresh("sync_basic").await.unwrap();
    let mut c = my_conn(&db.mysql_db_url).await;
    exec(&mut c, "CREATE TABLE t1 (id INT PRIMARY KEY, v VARCHAR(40), d DECIMAL(12,2), ts DATETIME(6), KEY (v))").await;
    exec(
        &mut c,
        "CREATE TABLE t2 (a VARCHAR(20), b INT, note TEXT, PRIMARY KEY (a, b))",
    )
    .await;
    exec(
        &mut c,
        "INSERT INTO t1 SELECT seq, CONCAT('v', seq), seq / 3, NOW(6) FROM seq_1_to_3000",
    )
    .await;
    exec(
        &mut c,
        "INSERT INTO t2 SELECT CONCAT('K', seq % 50), seq, 'n' FROM seq_1_to_800",
    )
    .await;
    let cfg = sync_config(&db);
    let ctx = sync::context(
        &cfg,
        my2pg::metrics::Metrics::new().unwrap(),
        my2pg::health::Health::new(),
    )
    .unwrap();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let run = tokio::spawn(sync::run(ctx, SyncOptions::default(), stop_rx));
    // Writes while the copy runs and after.
    random_writes(db.mysql_db_url.clone(), 600, 3000).await;
    wait_identical(&db, &["t1", "t2"], Duration::from_secs(60)).await;
    random_writes(db.mysql_db_url.clone(), 300, 100_000).await;
    wait_identical(&db, &["t1", "t2"], Duration::from_secs(60)).await;
    stop_tx.send(true).unwrap();
    let exit = run.await.unwrap().unwrap();
    assert_eq!(exit, Exit::Stopped);
}
