//! The binlog runway, the binlog distance and the lag estimate without heartbeats, against a
//! real source whose binlog is rotated and whose expiry setting changes while sync runs.
//! Heartbeats are off here: with them on, the checkpoint would follow every rotation.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::future::Future;
use std::time::{Duration, Instant};

use common::*;
use my2pg::harness;
use my2pg::metrics::Metrics;
use my2pg::sync::{self, SyncOptions};

const DAY: f64 = 86_400.0;

/// Waits until `ok` holds for the metrics (or panics with `what` and the last values).
async fn until<F, Fut>(m: &Metrics, what: &str, ok: F)
where
    F: Fn(Metrics) -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(30);
    while !ok(m.clone()).await {
        assert!(
            Instant::now() < deadline,
            "{what}: runway {:?}, lag {:?}, metrics:\n{}",
            m.binlog_runway_seconds(),
            m.lag_seconds(),
            m.encode()
                .unwrap()
                .lines()
                .filter(|l| l.starts_with("my2pg_binlog"))
                .collect::<Vec<_>>()
                .join("\n")
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn distance(m: &Metrics) -> f64 {
    let text = m.encode().unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("my2pg_binlog_distance_bytes "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(f64::NAN)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runway_follows_rotation_expiry_and_the_checkpoint() {
    let db = harness::shared().fresh("runway").await.unwrap();
    let mut c = my_conn(&db.mysql_db_url).await;
    exec(&mut c, "CREATE TABLE t (id INT PRIMARY KEY, v INT)").await;
    exec(&mut c, "INSERT INTO t VALUES (1, 1)").await;
    exec(&mut c, "SET GLOBAL binlog_expire_logs_seconds = 86400").await;

    let mut cfg = sync_config(&db);
    cfg.sync.heartbeat_interval_ms = 0;
    let metrics = Metrics::new().unwrap();
    let ctx = sync::context(&cfg, metrics.clone(), my2pg::health::Health::new()).unwrap();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let run = tokio::spawn(sync::run(ctx, SyncOptions::default(), stop_rx));
    wait_identical(&db, &["t"], Duration::from_secs(60)).await;

    // The checkpoint is in the active file: a full day of runway (less at most one poll).
    until(&metrics, "runway of the active file", |m| async move {
        m.binlog_runway_seconds()
            .is_some_and(|r| r > DAY - 7.0 && r <= DAY)
    })
    .await;
    // Caught up and idle: no lag, no distance.
    until(&metrics, "estimated lag 0 when idle", |m| async move {
        m.lag_seconds() == Some(0.0) && distance(&m) == 0.0
    })
    .await;

    // Rotate with nothing to apply after it: the checkpoint stays in the closed file, whose
    // age now counts from the rotation.
    exec(&mut c, "FLUSH BINARY LOGS").await;
    let rotated = Instant::now();
    until(&metrics, "distance after rotation", |m| async move {
        distance(&m) > 0.0
    })
    .await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    let r = metrics.binlog_runway_seconds().unwrap();
    let expected = DAY - rotated.elapsed().as_secs_f64();
    assert!(
        (r - expected).abs() < 2.5,
        "runway {r} after rotation, expected about {expected}"
    );
    assert!(!run.is_finished());

    // A shorter expiry shortens the runway at the next poll; 0 means never purged.
    exec(&mut c, "SET GLOBAL binlog_expire_logs_seconds = 3600").await;
    until(&metrics, "runway under a 1 h expiry", |m| async move {
        m.binlog_runway_seconds()
            .is_some_and(|r| r < 3600.0 && r > 3500.0)
    })
    .await;
    exec(&mut c, "SET GLOBAL binlog_expire_logs_seconds = 0").await;
    until(&metrics, "never purged", |m| async move {
        m.binlog_runway_seconds() == Some(f64::INFINITY)
    })
    .await;
    exec(&mut c, "SET GLOBAL binlog_expire_logs_seconds = 86400").await;

    // A write moves the checkpoint into the active file: the full runway again.
    exec(&mut c, "UPDATE t SET v = 2 WHERE id = 1").await;
    until(
        &metrics,
        "runway back after the checkpoint moved",
        |m| async move { m.binlog_runway_seconds().is_some_and(|r| r > DAY - 7.0) },
    )
    .await;
    until(&metrics, "caught up again", |m| async move {
        m.lag_seconds() == Some(0.0) && distance(&m) == 0.0
    })
    .await;

    stop_tx.send(true).unwrap();
    run.await.unwrap().unwrap();
}
