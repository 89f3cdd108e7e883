//! The Kafka path's throughput next to direct sync, on the same workload in the same run:
//! N row events (≈55 % inserts, 35 % updates, 10 % deletes, transactions of 1–100 rows) written
//! to MariaDB while nothing streams, then streamed into PostgreSQL by
//!
//! - `my2pg sync` (direct), and
//! - `my2pg sync --via kafka` into librdkafka's mock cluster (in this process) with 1, 2 and 4
//!   `my2pg apply` workers (8 partitions), and
//! - the same in `[kafka] mode = "transactional"` (one partition, one applying worker, whole
//!   source transactions),
//!
//! timed from the start of the pipeline until every event is applied; events/s and the ratio
//! to direct sync. The mock cluster is not a real broker (it keeps everything in memory in
//! one process), so the figures show my2pg's overhead and scaling, not a Kafka cluster's.
//!
//! `MY2PG_BENCH_SCALE=ci` runs it tiny (CI: `cargo test --bench kafka`); the default writes
//! 200,000 events: `cargo bench --bench kafka`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

mod common;

use common::{peak_rss_mib, pg_connect, report};

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable as _;
use rand::Rng as _;

use my2pg::harness::{MariaDbOptions, PostgresOptions, Servers, TestDb};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;

const TABLE: &str = "CREATE TABLE t (id BIGINT PRIMARY KEY, a INT NOT NULL, c VARCHAR(64), \
    d DECIMAL(12,2), e DATETIME(6), f DOUBLE)";

/// Writes `events` row events; returns how many, and in how many transactions.
async fn workload(url: &str, events: u64) -> (u64, u64) {
    let mut c = mysql_async::Conn::from_url(url).await.unwrap();
    let (mut next, mut live, mut written) = (0u64, Vec::<u64>::new(), 0u64);
    let mut transactions = 0;
    while written < events {
        let size = rand::rng().random_range(1..=100u64).min(events - written);
        let (mut ins, mut upd, mut del) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..size {
            let kind = rand::rng().random_range(0..20);
            if live.len() < 100 || kind < 11 {
                next += 1;
                ins.push(next);
            } else if kind < 18 {
                upd.push(live[rand::rng().random_range(0..live.len())]);
            } else {
                let i = rand::rng().random_range(0..live.len());
                del.push(live.swap_remove(i));
            }
        }
        upd.retain(|u| !del.contains(u));
        upd.sort_unstable();
        upd.dedup();
        let list = |v: &[u64]| v.iter().map(u64::to_string).collect::<Vec<_>>().join(",");
        let mut sql = String::from("BEGIN;");
        if !ins.is_empty() {
            let rows: Vec<String> = ins
                .iter()
                .map(|i| {
                    format!(
                        "({i}, {}, 'name-{i}', {}.25, '2024-05-01 10:00:00.{:06}', {})",
                        i % 1000,
                        i % 100_000,
                        i % 1_000_000,
                        *i as f64 / 7.0
                    )
                })
                .collect();
            sql.push_str(&format!("INSERT INTO t VALUES {};", rows.join(",")));
        }
        if !upd.is_empty() {
            sql.push_str(&format!(
                "UPDATE t SET a = a + 1, c = CONCAT('u', id, '-', a) WHERE id IN ({});",
                list(&upd)
            ));
        }
        if !del.is_empty() {
            sql.push_str(&format!("DELETE FROM t WHERE id IN ({});", list(&del)));
        }
        sql.push_str("COMMIT");
        c.query_drop(&sql).await.unwrap();
        live.extend(&ins);
        written += (ins.len() + upd.len() + del.len()) as u64;
        transactions += 1;
    }
    let _ = c.disconnect().await;
    (written, transactions)
}

fn my2pg(db: &TestDb, args: &[&str], env: &[(&str, String)]) -> Child {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_my2pg"));
    cmd.args(args)
        .args(["--source", &db.mysql_url, "--target", &db.pg_url])
        .args(["--databases", &db.name, "--listen", "127.0.0.1:0"])
        .env("MY2PG_SYNC__HEARTBEAT_INTERVAL_MS", "0")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.spawn().unwrap()
}

fn stop(mut child: Child) {
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    let _ = child.wait();
}

async fn prepare(servers: &Servers, name: &str) -> TestDb {
    let db = servers.database(name).await.unwrap();
    let mut my = mysql_async::Conn::from_url(db.mysql_db_url.as_str())
        .await
        .unwrap();
    my.query_drop(TABLE).await.unwrap();
    let _ = my.disconnect().await;
    db
}

/// Direct sync: copy the empty table, write, then stream; seconds until applied.
async fn direct(servers: &Servers, events: u64) -> (u64, f64) {
    let db = prepare(servers, "direct").await;
    assert!(
        my2pg(&db, &["sync", "--snapshot-only"], &[])
            .wait()
            .unwrap()
            .success()
    );
    let (written, _) = workload(&db.mysql_db_url, events).await;
    let end = {
        let mut c = mysql_async::Conn::from_url(db.mysql_url.as_str())
            .await
            .unwrap();
        cdc_reader::binlog::stream::current_position(&mut c)
            .await
            .unwrap()
    };
    let pg = pg_connect(&db.pg_url).await;
    let started = Instant::now();
    let child = my2pg(&db, &["sync"], &[]);
    loop {
        if let Ok(Some(cp)) = sink::checkpoint::read(&pg, "default").await
            && cp.position.is_at_or_after(&end) == Some(true)
        {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(1800),
            "direct sync did not finish"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let took = started.elapsed().as_secs_f64();
    stop(child);
    (written, took)
}

/// Through Kafka with `workers` apply workers in `mode` (`per_table` or `transactional`);
/// seconds until every event is applied.
async fn via_kafka(
    servers: &Servers,
    mock: &MockCluster<'static, DefaultProducerContext>,
    events: u64,
    workers: usize,
    mode: &str,
) -> (u64, f64) {
    let brokers = mock.bootstrap_servers();
    let name = format!("kafka{workers}{}", &mode[..3]);
    let db = prepare(servers, &name).await;
    let transactional = mode == "transactional";
    // The mock cluster does not answer CreateTopics; the publisher leaves existing topics.
    if transactional {
        mock.create_topic(&format!("b{}.my2pg-transactions", db.name), 1, 1)
            .unwrap();
    } else {
        mock.create_topic(&format!("b{}.{}.t", db.name, db.name), 8, 1)
            .unwrap();
    }
    mock.create_topic(&format!("b{}-my2pg-positions", db.name), 1, 1)
        .unwrap();
    let env = vec![
        ("MY2PG_KAFKA__BROKERS", brokers.clone()),
        ("MY2PG_KAFKA__TOPIC_PREFIX", format!("b{}", db.name)),
        ("MY2PG_KAFKA__PARTITIONS", "8".to_owned()),
        ("MY2PG_KAFKA__GROUP", format!("g{}", db.name)),
        ("MY2PG_KAFKA__MODE", mode.to_owned()),
    ];
    assert!(
        my2pg(&db, &["sync", "--via", "kafka", "--snapshot-only"], &env)
            .wait()
            .unwrap()
            .success()
    );
    let (written, transactions) = workload(&db.mysql_db_url, events).await;
    // The transactional mode's applied messages include one end marker per transaction.
    let messages = written + if transactional { transactions } else { 0 };
    let pg = pg_connect(&db.pg_url).await;
    // The workers join first and the group settles (the mock's rebalances are slow): the
    // figure is the steady-state rate, not the group's start-up.
    let appliers: Vec<Child> = (0..workers)
        .map(|_| my2pg(&db, &["apply", "--from", "kafka"], &env))
        .collect();
    tokio::time::sleep(Duration::from_secs(3 + 3 * workers as u64)).await;
    let started = Instant::now();
    let publisher = my2pg(&db, &["sync", "--via", "kafka"], &env);
    loop {
        let applied: i64 = pg
            .query_one(
                "SELECT COALESCE(sum(applied_events), 0)::bigint FROM my2pg.kafka_offsets",
                &[],
            )
            .await
            .map(|r| r.get(0))
            .unwrap_or(0);
        if applied >= messages as i64 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(1800),
            "kafka path did not finish ({applied} of {messages} messages)"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let took = started.elapsed().as_secs_f64();
    let rss = appliers
        .iter()
        .map(|w| peak_rss_mib(w.id()))
        .fold(0.0, f64::max);
    report(&format!("           (peak RSS of a worker {rss:.0} MiB)"));
    for w in appliers {
        stop(w);
    }
    stop(publisher);
    (written, took)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let events = match std::env::var("MY2PG_BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        Some(n) => n,
        None if std::env::var("MY2PG_BENCH_SCALE").as_deref() == Ok("ci") => 3_000,
        None => 200_000,
    };
    let servers = Servers::start(MariaDbOptions::default(), PostgresOptions::default()).unwrap();
    let mock = MockCluster::new(3).unwrap();
    report(&format!(
        "kafka benchmark ({events} events; mock cluster, 8 partitions)"
    ));
    let (n, t) = direct(&servers, events).await;
    let direct_rate = n as f64 / t;
    report(&format!(
        "direct     {n} events in {t:.2} s = {direct_rate:.0} events/s"
    ));
    for (workers, mode) in [
        (1, "per_table"),
        (2, "per_table"),
        (4, "per_table"),
        (1, "transactional"),
    ] {
        let (n, t) = via_kafka(&servers, &mock, events, workers, mode).await;
        let rate = n as f64 / t;
        let label = match mode {
            "transactional" => "kafka txn ".to_owned(),
            _ => format!("kafka x{workers}   "),
        };
        report(&format!(
            "{label}{n} events in {t:.2} s = {rate:.0} events/s; ratio to direct {:.2}",
            rate / direct_rate
        ));
    }
}
