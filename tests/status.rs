//! `my2pg status` reads the pipeline's state from the target: while streaming, and after a
//! definite error stopped it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;
use my2pg::harness;
use my2pg::sync::{self, SyncOptions};

fn status(db: &harness::TestDb) -> (i32, serde_json::Value) {
    let out = Command::new(env!("CARGO_BIN_EXE_my2pg"))
        .args(["status", "--target", &db.pg_url, "--format", "json"])
        .output()
        .unwrap();
    let json = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap(), json)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_shows_streaming_then_the_error_that_stopped_sync() {
    let db = harness::shared().fresh("status").await.unwrap();
    let mut c = my_conn(&db.mysql_db_url).await;
    exec(&mut c, "CREATE TABLE t (id INT PRIMARY KEY, d DATE)").await;
    exec(
        &mut c,
        "INSERT INTO t SELECT seq, '2024-01-01' FROM seq_1_to_1000",
    )
    .await;
    let mut cfg = sync_config(&db);
    cfg.sync.heartbeat_interval_ms = 200;
    let ctx = sync::context(
        &cfg,
        my2pg::metrics::Metrics::new().unwrap(),
        my2pg::health::Health::new(),
    )
    .unwrap();
    let (_stop, stop_rx) = tokio::sync::watch::channel(false);
    let run = tokio::spawn(sync::run(ctx, SyncOptions::default(), stop_rx));
    wait_identical(&db, &["t"], Duration::from_secs(60)).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    let (code, s) = status(&db);
    assert_eq!(code, 0, "{s:#}");
    assert_eq!(s["phase"], "streaming", "{s:#}");
    assert!(
        s["position"].as_str().unwrap().starts_with("mariadb-gtid:"),
        "{s:#}"
    );
    assert!(s["heartbeat_lag_seconds"].as_f64().unwrap() < 5.0, "{s:#}");
    let t = &s["tables"][0];
    assert_eq!(t["table"], format!("{}.t", db.name));
    assert_eq!(t["state"], "streaming");
    assert_eq!(t["copied_percent"], 100.0);
    assert_eq!(t["rows_copied"], 1000);

    exec(
        &mut c,
        "SET SESSION sql_mode = ''; INSERT INTO t VALUES (5000, '0000-00-00')",
    )
    .await;
    tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .unwrap()
        .unwrap()
        .unwrap_err();
    let (code, s) = status(&db);
    assert_eq!(code, 1, "{s:#}");
    assert_eq!(s["phase"], "stopped");
    assert!(s["error"].as_str().unwrap().contains("id=5000"), "{s:#}");
    assert_eq!(s["tables"][0]["state"], "stopped");
}
