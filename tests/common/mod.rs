//! Helpers shared by integration tests (each test binary includes this module): streaming
//! from the harness servers, and driving the alert evaluator through explicit instants.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use cdc_reader::SourceOptions;
use cdc_reader::binlog::stream::{BinlogReader, StreamConfig};
use my2pg::alerts::{Action, AlertEvent, Evaluator, Rule, RuleKind, Severity, Signals};
use mysql_async::prelude::Queryable;
use schemas::{Change, SourcePosition, SourceTx, TableId};
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// A connection to the test's MySQL database.
pub async fn my_conn(url: &str) -> mysql_async::Conn {
    mysql_async::Conn::from_url(url)
        .await
        .unwrap_or_else(|e| panic!("connecting to {url}: {e}"))
}

/// A connection to the test's PostgreSQL database, its connection task spawned.
pub async fn pg_client(url: &str) -> tokio_postgres::Client {
    let (pg, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("connecting to {url}: {e}"));
    tokio::spawn(conn);
    pg
}

/// A replica server id no other stream of this test process uses (the server refuses two
/// replicas with one id).
pub fn unique_server_id() -> u32 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    1_000_000 + (std::process::id() % 10_000) * 1000 + NEXT.fetch_add(1, Ordering::Relaxed)
}

/// Runs statements, panicking with the statement on error.
pub async fn exec(conn: &mut mysql_async::Conn, sql: &str) {
    conn.query_drop(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// The source's current position.
pub async fn position(url: &str) -> SourcePosition {
    let mut c = my_conn(url).await;
    cdc_reader::binlog::stream::current_position(&mut c)
        .await
        .unwrap()
}

/// A reader for tables of database `db` only.
pub fn reader_for_db(url: &str, db: &str) -> BinlogReader {
    reader_with(url, db, |_| {})
}

/// A reader for tables of database `db` only, with settings adjusted by `adjust`.
pub fn reader_with(url: &str, db: &str, adjust: impl FnOnce(&mut StreamConfig)) -> BinlogReader {
    let db = db.to_owned();
    let selection: cdc_reader::binlog::decoder::Selection =
        Arc::new(move |t: &TableId| t.database == db);
    let mut config = StreamConfig::new(selection);
    config.server_id = unique_server_id();
    adjust(&mut config);
    BinlogReader::new(SourceOptions::from_url(url).unwrap(), config)
}

/// Streams from `from` until `done` says the collected transactions are enough, or panics
/// after `timeout`.
pub async fn collect_until(
    reader: BinlogReader,
    from: SourcePosition,
    timeout: Duration,
    done: impl Fn(&[SourceTx]) -> bool,
) -> Vec<SourceTx> {
    let (tx, mut rx) = mpsc::channel(64);
    let task = tokio::spawn(async move {
        reader
            .run_resilient(from, &tx, Duration::from_secs(2))
            .await
    });
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + timeout;
    while !done(&got) {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(t)) => got.push(t),
            Ok(None) => panic!("stream ended: {:?}", task.await),
            Err(_) => panic!(
                "timed out after {} transactions: {:#?}",
                got.len(),
                summary(&got)
            ),
        }
    }
    drop(rx);
    let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
    got
}

/// Row changes across transactions, flattened.
pub fn rows(txs: &[SourceTx]) -> Vec<&schemas::RowChange> {
    txs.iter()
        .flat_map(|t| t.changes.iter())
        .filter_map(|c| match c {
            Change::Row(r) => Some(r),
            Change::Ddl(_) => None,
        })
        .collect()
}

/// A compact description of transactions for failure messages.
pub fn summary(txs: &[SourceTx]) -> Vec<String> {
    txs.iter()
        .map(|t| {
            format!(
                "{} {} changes={} frag={:?}",
                t.gtid.as_ref().map(ToString::to_string).unwrap_or_default(),
                t.position,
                t.changes.len(),
                t.fragment
            )
        })
        .collect()
}

// ---- alert helpers ----

pub fn lag_rule(repeat: Option<Duration>) -> Rule {
    Rule {
        name: "replica-behind".into(),
        kind: RuleKind::Lag,
        threshold: 30.0,
        clear: 24.0,
        for_: Duration::from_secs(60),
        clear_for: Duration::from_secs(60),
        repeat,
        severity: Severity::Critical,
        receivers: Vec::new(),
    }
}

pub fn lag(v: f64) -> Signals {
    Signals {
        lag_seconds: Some(v),
        ..Signals::default()
    }
}

/// Drives `ev` from second `from` to `to` (inclusive) every `step` seconds with the signals
/// `f(t)`; returns the events with the second they were made.
pub struct Drive {
    base: Instant,
    wall: SystemTime,
}

impl Drive {
    pub fn new() -> Drive {
        Drive {
            base: Instant::now(),
            wall: UNIX_EPOCH + Duration::from_secs(1_760_000_000),
        }
    }

    pub fn run(
        &self,
        ev: &mut Evaluator,
        (from, to, step): (u64, u64, u64),
        f: impl Fn(u64) -> Signals,
    ) -> Vec<(u64, AlertEvent)> {
        let mut out = Vec::new();
        let mut t = from;
        while t <= to {
            let at = Duration::from_secs(t);
            for e in ev.evaluate(&f(t), self.base + at, self.wall + at) {
                out.push((t, e));
            }
            t += step;
        }
        out
    }
}

pub fn alert_summary(events: &[(u64, AlertEvent)]) -> Vec<(u64, Action, u32)> {
    events
        .iter()
        .map(|(t, e)| (*t, e.action, e.notification))
        .collect()
}

/// A trigger and its resolve, made by the evaluator.
pub fn lag_episode(pipeline: &str) -> (AlertEvent, AlertEvent) {
    let d = Drive::new();
    let rule = Rule {
        for_: Duration::ZERO,
        ..lag_rule(None)
    };
    let mut ev = Evaluator::new(pipeline, &format!("my2pg:{pipeline}"), vec![rule]);
    let mut t = d.run(&mut ev, (0, 0, 1), |_| lag(42.5));
    let mut r = d.run(&mut ev, (300, 400, 5), |_| lag(1.0));
    (t.remove(0).1, r.remove(0).1)
}

// ---- sync helpers ----

/// A config for the test's databases (source database = the test's name, same-named schema).
pub fn sync_config(db: &my2pg::harness::TestDb) -> my2pg::config::Config {
    let overrides = my2pg::config::Overrides {
        source: Some(db.mysql_url.clone()),
        target: Some(db.pg_url.clone()),
        databases: vec![db.name.clone()],
        include: vec![],
        exclude: vec![],
    };
    let mut cfg = my2pg::config::Config::load_with_env(None, &overrides, &|_| None).unwrap();
    cfg.sync.server_id = unique_server_id();
    cfg.sync.heartbeat_table = format!("my2pg_hb_{}.heartbeat", db.name);
    cfg.http.listen = "127.0.0.1:0".parse().unwrap();
    cfg.snapshot.chunk_rows = 500;
    cfg
}

/// Canonical digests of every row of a table on both sides, sorted: equal vectors mean equal
/// tables (the same mapping converts the source rows).
pub async fn table_digests(
    db: &my2pg::harness::TestDb,
    table: &str,
) -> Option<(Vec<[u8; 32]>, Vec<[u8; 32]>)> {
    use schemas::mapping::{MappingOptions, map_table};
    let mut my = my_conn(&db.mysql_db_url).await;
    let schema = Arc::new(
        cdc_reader::schema::read_table(&mut my, &TableId::new(&db.name, table))
            .await
            .unwrap(),
    );
    let m = map_table(schema.clone(), &db.name, &MappingOptions::default()).unwrap();
    let mut src: Vec<[u8; 32]> = cdc_reader::rows::read_all(&mut my, &schema)
        .await
        .unwrap()
        .iter()
        .map(|r| schemas::canonical::row_digest(&m.convert_row(r).unwrap()))
        .collect();
    let (pg, conn) = tokio_postgres::connect(&db.pg_url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    // The target table may not exist yet while the copy starts.
    let mut dst: Vec<[u8; 32]> = sink::binary::read_rows(&pg, &m, &[])
        .await
        .ok()?
        .iter()
        .map(|r| schemas::canonical::row_digest(r))
        .collect();
    src.sort();
    dst.sort();
    Some((src, dst))
}

/// Waits until `table` is identical on both sides (or panics after `timeout` with counts).
pub async fn wait_identical(db: &my2pg::harness::TestDb, tables: &[&str], timeout: Duration) {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let mut all = true;
        let mut detail = Vec::new();
        for t in tables {
            let Some((s, d)) = table_digests(db, t).await else {
                all = false;
                detail.push(format!("{t}: not on the target yet"));
                continue;
            };
            if s != d {
                all = false;
                let missing = s.iter().filter(|x| d.binary_search(x).is_err()).count();
                let extra = d.iter().filter(|x| s.binary_search(x).is_err()).count();
                detail.push(format!(
                    "{t}: source {} rows, target {} rows, {missing} missing/changed, {extra} extra",
                    s.len(),
                    d.len()
                ));
            }
        }
        if all {
            return;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("target never matched the source: {}", detail.join("; "));
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// `sync` with `cfg`, `opts` and `metrics` in a task: the stop sender and the task.
pub fn start_with(
    cfg: &my2pg::config::Config,
    opts: my2pg::sync::SyncOptions,
    metrics: my2pg::metrics::Metrics,
) -> (
    tokio::sync::watch::Sender<bool>,
    tokio::task::JoinHandle<anyhow::Result<my2pg::sync::Exit>>,
) {
    let ctx = my2pg::sync::context(cfg, metrics, my2pg::health::Health::new()).unwrap();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    (stop_tx, tokio::spawn(my2pg::sync::run(ctx, opts, stop_rx)))
}

/// `sync` with `cfg` in a task: the stop sender and the task.
pub async fn start(
    cfg: my2pg::config::Config,
) -> (
    tokio::sync::watch::Sender<bool>,
    tokio::task::JoinHandle<anyhow::Result<my2pg::sync::Exit>>,
) {
    start_with(
        &cfg,
        my2pg::sync::SyncOptions::default(),
        my2pg::metrics::Metrics::new().unwrap(),
    )
}

/// Polls `done` every 100 ms while `run` (a started `sync`) runs: panics with sync's result if
/// it ends first, or naming `what` after 60 s.
pub async fn wait_while_running<T, F, Fut>(
    run: &mut tokio::task::JoinHandle<T>,
    what: &str,
    mut done: F,
) where
    T: std::fmt::Debug,
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done().await {
        if run.is_finished() {
            panic!("sync ended before {what}: {:?}", run.await);
        }
        assert!(Instant::now() < deadline, "{what}: timed out");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Whether the initial copy of the default pipeline is done.
pub async fn snapshot_done(pg: &tokio_postgres::Client) -> bool {
    pg.query_opt(
        "SELECT state FROM my2pg.snapshot WHERE pipeline = 'default'",
        &[],
    )
    .await
    .ok()
    .flatten()
    .is_some_and(|r| r.get::<_, String>(0) == "done")
}
