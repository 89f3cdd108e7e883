//! Exactly-once under crashes: `my2pg sync` is killed with SIGKILL at random moments (during
//! the copy and while streaming) under a random write load, restarted each time; at the end
//! the target equals the source row for row and the checkpoint equals the source position.
//! Also: the servers restarting or disappearing for a while under the pipeline.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Write as _;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;
use my2pg::harness::{MariaDbOptions, PostgresOptions, Servers, TestDb};
use rand::Rng;
use tokio::sync::watch;

fn config_file(db: &TestDb) -> tempfile::NamedTempFile {
    let mut f = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
    write!(
        f,
        "[source]\nurl = \"{}\"\n[target]\nurl = \"{}\"\n[tables]\ndatabases = [\"{}\"]\n\
         [sync]\nserver_id = {}\nheartbeat_interval_ms = 0\nretry_max_backoff_secs = 2\n\
         [snapshot]\nchunk_rows = 400\nworkers = 2\n[http]\nlisten = \"127.0.0.1:0\"\n",
        db.mysql_url,
        db.pg_url,
        db.name,
        unique_server_id()
    )
    .unwrap();
    f
}

fn start_sync(cfg: &std::path::Path, log: &std::path::Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_my2pg"))
        .arg("sync")
        .arg("--config")
        .arg(cfg)
        .env("RUST_LOG", "warn,my2pg=info,sink=info,cdc_reader=info")
        .stdout(Stdio::null())
        .stderr(
            std::fs::File::options()
                .create(true)
                .append(true)
                .open(log)
                .unwrap(),
        )
        .spawn()
        .unwrap()
}

/// Random writes until `stop`: inserts, updates, deletes, key changes, multi-table
/// transactions, and now and then a large transaction.
async fn write_load(url: String, first_id: i64, mut stop: watch::Receiver<bool>) -> u64 {
    let mut c = my_conn(&url).await;
    let mut next = first_id;
    let mut n = 0u64;
    while !*stop.borrow() {
        let (kind, a, b) = {
            let mut rng = rand::rng();
            (
                rng.random_range(0..20),
                rng.random_range(1..5000),
                rng.random_range(1..5000),
            )
        };
        let sql = match kind {
            0..=6 => {
                next += 1;
                format!("INSERT INTO t1 VALUES ({next}, 'n{next}', {next}.5)")
            }
            7..=11 => {
                format!("UPDATE t1 SET v = CONCAT(LEFT(v, 20), 'u'), d = d + 1 WHERE id = {a}")
            }
            12..=13 => format!("DELETE FROM t1 WHERE id = {a}"),
            14 => {
                next += 1;
                format!("UPDATE t1 SET id = {next} WHERE id = {a}")
            }
            15..=17 => format!(
                "BEGIN; INSERT INTO t2 VALUES ({a}, {b}, 'x') ON DUPLICATE KEY UPDATE note = CONCAT(LEFT(note, 20), 'y'); \
                 UPDATE t1 SET d = d - 1 WHERE id = {b}; COMMIT"
            ),
            18 => format!("DELETE FROM t2 WHERE a = {a}"),
            _ => format!(
                "UPDATE t1 SET d = d + 0.01 WHERE id BETWEEN {a} AND {}",
                a + 300
            ),
        };
        exec(&mut c, &sql).await;
        n += 1;
        let _ = tokio::time::timeout(Duration::from_millis(2), stop.changed()).await;
    }
    n
}

async fn setup(servers: &Servers, name: &str) -> TestDb {
    let db = servers.fresh(name).await.unwrap();
    let mut c = my_conn(&db.mysql_db_url).await;
    exec(
        &mut c,
        "CREATE TABLE t1 (id BIGINT PRIMARY KEY, v VARCHAR(60), d DECIMAL(14,2), KEY (v))",
    )
    .await;
    exec(
        &mut c,
        "CREATE TABLE t2 (a INT, b INT, note VARCHAR(80), PRIMARY KEY (a, b))",
    )
    .await;
    exec(
        &mut c,
        "INSERT INTO t1 SELECT seq, CONCAT('v', seq), seq / 7 FROM seq_1_to_20000",
    )
    .await;
    exec(
        &mut c,
        "INSERT INTO t2 SELECT seq % 100, seq, 'n' FROM seq_1_to_3000",
    )
    .await;
    db
}

/// Waits until the stored checkpoint is the source's current position.
async fn wait_checkpoint_at_source(db: &TestDb, timeout: Duration) {
    let deadline = tokio::time::Instant::now() + timeout;
    let (pg, conn) = tokio_postgres::connect(&db.pg_url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    loop {
        let src = position(&db.mysql_url).await;
        let cp: Option<String> = pg
            .query_opt(
                "SELECT position FROM my2pg.checkpoint WHERE pipeline = 'default'",
                &[],
            )
            .await
            .unwrap()
            .map(|r| r.get(0));
        let cp: Option<schemas::SourcePosition> = cp.map(|c| c.parse().unwrap());
        let same = match (&cp, &src) {
            (
                Some(schemas::SourcePosition::MariaGtid { pos: a, .. }),
                schemas::SourcePosition::MariaGtid { pos: b, .. },
            ) => a == b,
            _ => false,
        };
        if same {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "checkpoint {cp:?} never reached the source position {src}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_kill_nines_under_load_lose_and_repeat_nothing() {
    let servers = Servers::start(MariaDbOptions::default(), PostgresOptions::default()).unwrap();
    let db = setup(&servers, "crash").await;
    let cfg = config_file(&db);
    let log = cfg.path().with_extension("log");
    let (stop_tx, stop_rx) = watch::channel(false);
    let load = tokio::spawn(write_load(db.mysql_db_url.clone(), 1_000_000, stop_rx));
    let kills: usize = std::env::var("MY2PG_CRASH_KILLS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    for i in 0..kills {
        let mut child = start_sync(cfg.path(), &log);
        let wait = rand::rng().random_range(300..2500);
        tokio::time::sleep(Duration::from_millis(wait)).await;
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "sync exited by itself ({status}) before kill {i}:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
    }
    stop_tx.send(true).unwrap();
    let writes = load.await.unwrap();
    assert!(writes > 100, "the load wrote only {writes} statements");
    let mut child = start_sync(cfg.path(), &log);
    wait_identical(&db, &["t1", "t2"], Duration::from_secs(120)).await;
    wait_checkpoint_at_source(&db, Duration::from_secs(60)).await;
    child.kill().unwrap();
    child.wait().unwrap();
    // Indexes deferred by the copy were built once the stream passed its end.
    let (pg, conn) = tokio_postgres::connect(&db.pg_url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    let idx: i64 = pg
        .query_one("SELECT count(*) FROM pg_indexes WHERE schemaname = $1 AND tablename = 't1' AND indexname NOT LIKE '%pkey'", &[&db.name])
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        idx, 1,
        "the secondary index of t1 should exist after the catch-up"
    );
}

async fn restart_case(name: &str, outage: Duration, kill_target: bool) {
    let servers = Servers::start(MariaDbOptions::default(), PostgresOptions::default()).unwrap();
    let db = setup(&servers, name).await;
    let cfg = config_file(&db);
    let log = cfg.path().with_extension("log");
    let mut child = start_sync(cfg.path(), &log);
    wait_or_show_log(&db, &log, Duration::from_secs(90)).await;
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut load = Some(tokio::spawn(write_load(
        db.mysql_db_url.clone(),
        1_000_000,
        stop_rx.clone(),
    )));
    tokio::time::sleep(Duration::from_millis(800)).await;
    if kill_target {
        let pg = servers.postgres.as_ref().unwrap();
        pg.stop();
        tokio::time::sleep(outage).await;
        pg.start_again().unwrap();
    } else {
        // The load stops with the source; it resumes against the restarted server.
        stop_tx.send(true).unwrap();
        if let Some(l) = load.take() {
            l.await.unwrap();
        }
        let m = servers.mariadb.as_ref().unwrap();
        m.stop();
        tokio::time::sleep(outage).await;
        m.start_again().unwrap();
    }
    let (stop_tx2, stop_rx2) = watch::channel(false);
    let load2 = tokio::spawn(write_load(db.mysql_db_url.clone(), 2_000_000, stop_rx2));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop_tx2.send(true).unwrap();
    load2.await.unwrap();
    if let Some(l) = load.take() {
        stop_tx.send(true).unwrap();
        l.await.unwrap();
    }
    if let Ok(Some(status)) = child.try_wait() {
        panic!(
            "sync gave up ({status}):\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }
    wait_or_show_log(&db, &log, Duration::from_secs(120)).await;
    child.kill().unwrap();
    child.wait().unwrap();
}

/// [`wait_identical`], printing the sync log when it times out.
async fn wait_or_show_log(db: &TestDb, log: &std::path::Path, timeout: Duration) {
    let res = tokio::spawn({
        let db = db.clone();
        async move { wait_identical(&db, &["t1", "t2"], timeout).await }
    })
    .await;
    if res.is_err() {
        panic!(
            "target never matched; sync log:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_gone_for_a_while_is_survived() {
    let secs = std::env::var("MY2PG_OUTAGE_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30);
    restart_case("outage_pg", Duration::from_secs(secs), true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_restarted_mid_stream_is_survived() {
    restart_case("restart_my", Duration::from_secs(3), false).await;
}
