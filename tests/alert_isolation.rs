//! A receiver that cannot be reached does not slow replication: the same write burst applies
//! as fast with alerts firing into a black hole as without alerting.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use my2pg::harness;
use my2pg::sync::{self, SyncOptions};

/// Applies `n` single-row source transactions with sync running; returns how long from the
/// first write until the checkpoint reached the source's position.
async fn burst(db: &harness::TestDb, cfg: &my2pg::config::Config, alerts: bool) -> Duration {
    let mut c = my_conn(&db.mysql_db_url).await;
    exec(&mut c, "CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(20))").await;
    exec(
        &mut c,
        "CREATE PROCEDURE burst(n INT) BEGIN DECLARE i INT DEFAULT 0; \
         WHILE i < n DO INSERT INTO t VALUES (i, CONCAT('v', i)); SET i = i + 1; END WHILE; END",
    )
    .await;
    let metrics = my2pg::metrics::Metrics::new().unwrap();
    let health = my2pg::health::Health::new();
    let alerting = if alerts {
        my2pg::alerts::Alerting::start(&cfg.alerts, &metrics, &health).unwrap()
    } else {
        None
    };
    assert_eq!(alerting.is_some(), alerts);
    let ctx = sync::context(cfg, metrics.clone(), health.clone()).unwrap();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let run = tokio::spawn(sync::run(ctx, SyncOptions::default(), stop_rx));
    while health.phase() != my2pg::health::Phase::Streaming {
        assert!(!run.is_finished(), "{:?}", run.await);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let started = Instant::now();
    exec(&mut c, "CALL burst(3000)").await;
    wait_identical(db, &["t"], Duration::from_secs(120)).await;
    let took = started.elapsed();
    stop_tx.send(true).unwrap();
    run.await.unwrap().unwrap();
    if let Some(a) = alerting {
        a.shutdown(Duration::from_millis(100)).await;
    }
    took
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_receiver_does_not_slow_replication() {
    let quiet = harness::shared().fresh("alerts_off").await.unwrap();
    let loud = harness::shared().fresh("alerts_on").await.unwrap();
    let without = burst(&quiet, &sync_config(&quiet), false).await;
    let mut cfg = sync_config(&loud);
    // A rule that fires at once and repeats every second, into receivers that never answer
    // (a non-routable address: connections hang until they time out) or refuse.
    cfg.alerts = toml::from_str(
        r#"
        evaluate_every_secs = 1
        [[rules]]
        name = "always"
        kind = "lag"
        threshold = -1
        for_secs = 0
        repeat_secs = 1
        [[receivers]]
        name = "black-hole"
        kind = "webhook"
        url = "http://10.255.255.1:9/hook"
        [[receivers]]
        name = "refused"
        kind = "webhook"
        url = "http://127.0.0.1:1/hook"
        "#,
    )
    .unwrap();
    let with = burst(&loud, &cfg, true).await;
    eprintln!(
        "3000 transactions: {without:?} without alerting, {with:?} with unreachable receivers"
    );
    assert!(
        with.as_secs_f64() < without.as_secs_f64() * 1.5 + 1.0,
        "alerting slowed replication: {with:?} against {without:?}"
    );
}
