//! An idle source for a minute: the heartbeat keeps the measured lag near the heartbeat
//! interval (not growing with idle time) and the checkpoint moving.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use my2pg::harness;
use my2pg::sync::{self, SyncOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_minute_keeps_lag_near_the_heartbeat_interval() {
    let db = harness::shared().fresh("idle").await.unwrap();
    let mut c = my_conn(&db.mysql_db_url).await;
    exec(&mut c, "CREATE TABLE t (id INT PRIMARY KEY)").await;
    let mut cfg = sync_config(&db);
    cfg.sync.heartbeat_interval_ms = 1000;
    let metrics = my2pg::metrics::Metrics::new().unwrap();
    let ctx = sync::context(&cfg, metrics.clone(), my2pg::health::Health::new()).unwrap();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let run = tokio::spawn(sync::run(ctx, SyncOptions::default(), stop_rx));
    let (pg, conn) = tokio_postgres::connect(&db.pg_url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    let checkpoint = || async {
        pg.query_opt("SELECT position FROM my2pg.checkpoint", &[])
            .await
            .ok()
            .flatten()
            .map(|r| r.get::<_, String>(0))
    };
    // Streaming, and a first heartbeat applied.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while metrics.lag_seconds().is_none() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no heartbeat applied"
        );
        assert!(!run.is_finished());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let first = checkpoint().await;
    let mut worst: f64 = 0.0;
    let mut samples = 0;
    let idle = tokio::time::Instant::now();
    while idle.elapsed() < Duration::from_secs(60) {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let lag = metrics.lag_seconds().unwrap();
        worst = worst.max(lag);
        samples += 1;
    }
    let last = checkpoint().await;
    // The reported lag is the last heartbeat's lag plus the time since it was due: with a 1 s
    // interval it stays around a second however long the source is idle.
    assert!(
        worst < 2.5,
        "lag reached {worst:.2} s over {samples} samples"
    );
    assert_ne!(first, last, "the checkpoint did not move while idle");
    stop_tx.send(true).unwrap();
    run.await.unwrap().unwrap();
}
