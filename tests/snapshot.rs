//! The initial copy: large tables under a write load, a kill -9 in the middle of the copy (the
//! finished chunks are not read again), and keys whose order differs between MySQL collations
//! and bytes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Write as _;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use my2pg::harness;
use my2pg::sync::{self, Exit, SyncOptions};
use rand::Rng;
use tokio::sync::watch;

/// Updates, inserts and deletes on `t` until `stop`.
async fn writes(url: String, mut stop: watch::Receiver<bool>, max_id: i64) -> u64 {
    let mut c = my_conn(&url).await;
    let mut next = max_id;
    let mut n = 0;
    while !*stop.borrow() {
        let (k, a) = {
            let mut r = rand::rng();
            (r.random_range(0..10), r.random_range(1..max_id))
        };
        let sql = match k {
            0..=3 => format!("UPDATE t SET v = CONCAT(LEFT(v, 30), '+'), d = d + 1 WHERE id = {a}"),
            4..=6 => {
                next += 1;
                format!("INSERT INTO t VALUES ({next}, 'new {next} 🌻', {next}.5, NOW(6))")
            }
            7..=8 => format!("DELETE FROM t WHERE id = {a}"),
            _ => format!("UPDATE t SET d = d - 1 WHERE id BETWEEN {a} AND {}", a + 50),
        };
        exec(&mut c, &sql).await;
        n += 1;
        let _ = tokio::time::timeout(Duration::from_millis(1), stop.changed()).await;
    }
    n
}

async fn big_table(db: &harness::TestDb, rows: u64) {
    let mut c = my_conn(&db.mysql_db_url).await;
    exec(
        &mut c,
        "CREATE TABLE t (id BIGINT PRIMARY KEY, v VARCHAR(80), d DECIMAL(14,2), at DATETIME(6), KEY (v))",
    )
    .await;
    exec(
        &mut c,
        &format!(
            "INSERT INTO t SELECT seq, CONCAT('row ', seq, IF(seq % 3 = 0, ' 日本', '')), seq / 7, \
             TIMESTAMP '2024-01-01 00:00:00' + INTERVAL seq SECOND FROM seq_1_to_{rows}"
        ),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_thousand_rows_copied_under_writes_then_streamed_exactly() {
    let db = harness::shared().fresh("snap_load").await.unwrap();
    big_table(&db, 200_000).await;
    let (stop_load, load_rx) = watch::channel(false);
    let load = tokio::spawn(writes(db.mysql_db_url.clone(), load_rx, 200_000));
    let mut cfg = sync_config(&db);
    cfg.snapshot.chunk_rows = 20_000;
    cfg.snapshot.workers = 2;
    let ctx = sync::context(
        &cfg,
        my2pg::metrics::Metrics::new().unwrap(),
        my2pg::health::Health::new(),
    )
    .unwrap();
    let health = ctx.health.clone();
    let (stop_tx, stop_rx) = watch::channel(false);
    let run = tokio::spawn(sync::run(ctx, SyncOptions::default(), stop_rx));
    // Writes go on through the whole copy and a little of the streaming.
    while health.phase() != my2pg::health::Phase::Streaming {
        assert!(!run.is_finished(), "sync ended: {:?}", run.await);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop_load.send(true).unwrap();
    let written = load.await.unwrap();
    assert!(written > 100, "only {written} writes ran during the copy");
    wait_identical(&db, &["t"], Duration::from_secs(180)).await;
    stop_tx.send(true).unwrap();
    assert_eq!(run.await.unwrap().unwrap(), Exit::Stopped);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_during_the_copy_does_not_read_finished_chunks_again() {
    let db = harness::shared().fresh("snap_kill").await.unwrap();
    big_table(&db, 200_000).await;
    let mut cfg = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
    write!(
        cfg,
        "[source]\nurl = \"{}\"\n[target]\nurl = \"{}\"\n[tables]\ndatabases = [\"{}\"]\n\
         [sync]\nserver_id = {}\nheartbeat_interval_ms = 0\n\
         [snapshot]\nchunk_rows = 10000\nworkers = 1\nmax_rows_per_second = 40000\n\
         [http]\nlisten = \"127.0.0.1:0\"\n",
        db.mysql_url,
        db.pg_url,
        db.name,
        unique_server_id()
    )
    .unwrap();
    let spawn = || {
        Command::new(env!("CARGO_BIN_EXE_my2pg"))
            .arg("sync")
            .arg("--config")
            .arg(cfg.path())
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    let (pg, conn) = tokio_postgres::connect(&db.pg_url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    let done_chunks = || async {
        pg.query(
            "SELECT chunk, rows_copied, copied_at::text FROM my2pg.snapshot_progress \
             WHERE state = 'done' ORDER BY chunk",
            &[],
        )
        .await
        .map(|rows| {
            rows.iter()
                .map(|r| {
                    (
                        r.get::<_, i32>(0),
                        r.get::<_, i64>(1),
                        r.get::<_, String>(2),
                    )
                })
                .collect::<Vec<_>>()
        })
        .unwrap_or_default()
    };
    let mut child = spawn();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while done_chunks().await.len() < 4 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the copy never got going"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let before = done_chunks().await;
    // About 20 chunks of 10,000 rows: exactly 20 when the key is walked, about 20 when the
    // bounds are computed from the integer key's ends and the server's row estimate.
    let planned: i64 = pg
        .query_one("SELECT count(*) FROM my2pg.snapshot_progress", &[])
        .await
        .unwrap()
        .get(0);
    assert!((10..=40).contains(&planned), "{planned} chunks planned");
    assert!(
        (before.len() as i64) < planned,
        "the copy finished before the kill"
    );
    let mut child = spawn();
    wait_identical(&db, &["t"], Duration::from_secs(120)).await;
    let after = done_chunks().await;
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(
        after.len() as i64,
        planned,
        "every chunk is done: {after:?}"
    );
    // A chunk read again would have a new copied_at: the ones finished before the kill kept
    // theirs.
    for b in &before {
        assert!(after.contains(b), "chunk {} was copied again", b.0);
    }
    let total: i64 = after.iter().map(|c| c.1).sum();
    assert_eq!(total, 200_000, "each row copied exactly once");
    // The table the killed run created got its key and index after the load all the same
    // (they are built after the copy, from records committed with the table).
    let indexes: Vec<(String, bool)> = pg
        .query(
            "SELECT c.relname::text, i.indisprimary FROM pg_index i \
             JOIN pg_class c ON c.oid = i.indexrelid WHERE i.indrelid = to_regclass($1) \
             ORDER BY 1",
            &[&format!("\"{}\".t", db.name)],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(indexes.len(), 2, "{indexes:?}");
    assert_eq!(indexes.iter().filter(|(_, p)| *p).count(), 1, "{indexes:?}");
    let pending: i64 = pg
        .query_one("SELECT count(*) FROM my2pg.deferred_ddl", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(pending, 0, "no index or key left to build");
}

/// Composite keys led by an integer column are cut by ranges of that column, computed from
/// its ends (no walk of the table), with the later key columns at their smallest values; the
/// copy is exact (a signed leading column with negative values, a later string column).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn composite_keys_led_by_an_integer_are_cut_by_its_ranges() {
    let db = harness::shared().fresh("snap_lead").await.unwrap();
    let mut c = my_conn(&db.mysql_db_url).await;
    exec(
        &mut c,
        "CREATE TABLE pairs (a INT, b SMALLINT UNSIGNED, v INT, PRIMARY KEY (a, b));
         CREATE TABLE named (a BIGINT, s VARCHAR(10) COLLATE utf8mb4_general_ci, v INT, \
           PRIMARY KEY (a, s)) CHARACTER SET utf8mb4;
         INSERT INTO pairs SELECT CAST(seq AS SIGNED) DIV 3 - 50, seq % 3, seq FROM seq_0_to_299;
         INSERT INTO named SELECT seq DIV 4, ELT(seq % 4 + 1, 'x', 'Y', 'é', 'Z'), seq \
           FROM seq_0_to_399;
         ANALYZE TABLE pairs, named",
    )
    .await;
    let mut cfg = sync_config(&db);
    cfg.snapshot.chunk_rows = 20;
    let (stop_tx, run) = start(cfg).await;
    wait_identical(&db, &["pairs", "named"], Duration::from_secs(60)).await;
    let (pg, conn) = tokio_postgres::connect(&db.pg_url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    for (table, rest) in [("pairs", "{\"u_int\": 0}"), ("named", "{\"text\": \"\"}")] {
        let rows = pg
            .query(
                "SELECT chunk, upper_key::text FROM my2pg.snapshot_progress \
                 WHERE source_table = $1 ORDER BY chunk",
                &[&format!("{}.{table}", db.name)],
            )
            .await
            .unwrap();
        let uppers: Vec<Option<String>> = rows.iter().map(|r| r.get(1)).collect();
        assert!(uppers.len() >= 10, "{table}: {uppers:?}");
        for u in uppers.iter().flatten() {
            assert!(u.ends_with(&format!(", {rest}]")), "{table}: {u}");
        }
    }
    stop_tx.send(true).unwrap();
    assert_eq!(run.await.unwrap().unwrap(), Exit::Stopped);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_differing_in_case_and_accents_under_a_case_insensitive_collation() {
    let db = harness::shared().fresh("snap_ci").await.unwrap();
    let mut c = my_conn(&db.mysql_db_url).await;
    exec(
        &mut c,
        "CREATE TABLE comp (name VARCHAR(20) COLLATE utf8mb4_general_ci, n INT, v INT, \
           PRIMARY KEY (name, n)) CHARACTER SET utf8mb4;
         CREATE TABLE single (k VARCHAR(40) COLLATE utf8mb4_unicode_ci PRIMARY KEY, v INT) \
           CHARACTER SET utf8mb4",
    )
    .await;
    // The same letters in every case and accent: equal under the collation, different bytes.
    let names = [
        "a", "A", "á", "Á", "à", "b", "B", "e", "é", "É", "ê", "o", "Ö", "z", "Z", "😀",
    ];
    let mut n = 0;
    let mut values = Vec::new();
    for name in names {
        for _ in 0..7 {
            n += 1;
            values.push(format!("('{name}', {n}, {})", n * 3));
        }
    }
    exec(
        &mut c,
        &format!("INSERT INTO comp VALUES {}", values.join(",")),
    )
    .await;
    let singles = [
        "alpha",
        "Bravo",
        "charlie",
        "Délta",
        "echo",
        "Foxtrot",
        "gölf",
        "Hotel",
        "ïndia",
        "Juliett",
        "kilo",
        "Lima",
        "mike",
        "November",
        "öscar",
        "Papa",
        "quebec",
        "Romeo",
        "sierra",
        "Tango",
        "ünifórm",
        "Victor",
        "whiskey",
        "X-ray",
        "yankee",
        "Zulu",
        "ZZ top",
    ];
    let values: Vec<String> = singles
        .iter()
        .enumerate()
        .map(|(i, k)| format!("('{k}', {i})"))
        .collect();
    exec(
        &mut c,
        &format!("INSERT INTO single VALUES {}", values.join(",")),
    )
    .await;
    let mut cfg = sync_config(&db);
    // Tiny chunks: boundaries fall between values the collation calls equal.
    cfg.snapshot.chunk_rows = 5;
    let (stop_tx, run) = start(cfg).await;
    wait_identical(&db, &["comp", "single"], Duration::from_secs(60)).await;
    // And streamed changes find their rows by the exact bytes of the key.
    exec(
        &mut c,
        "UPDATE comp SET v = -1 WHERE name = BINARY 'Á'; DELETE FROM comp WHERE name = BINARY 'é'; \
         UPDATE single SET v = -1 WHERE k = 'öscar'",
    )
    .await;
    wait_identical(&db, &["comp", "single"], Duration::from_secs(60)).await;
    stop_tx.send(true).unwrap();
    assert_eq!(run.await.unwrap().unwrap(), Exit::Stopped);
}
