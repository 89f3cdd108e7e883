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

/// Updates, inserts and deletes on `t` until `stop`: how many, and the longest one took.
async fn writes(url: String, mut stop: watch::Receiver<bool>, max_id: i64) -> (u64, Duration) {
    let mut c = my_conn(&url).await;
    let mut next = max_id;
    let mut n = 0;
    let mut longest = Duration::ZERO;
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
        let took = std::time::Instant::now();
        exec(&mut c, &sql).await;
        longest = longest.max(took.elapsed());
        n += 1;
        let _ = tokio::time::timeout(Duration::from_millis(1), stop.changed()).await;
    }
    (n, longest)
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

/// `t` with `rows` rows ([`big_table`]) and a 100-row table `small`; a connection to the
/// source database.
async fn big_and_small(db: &harness::TestDb, rows: u64, small: &str) -> mysql_async::Conn {
    big_table(db, rows).await;
    let mut c = my_conn(&db.mysql_db_url).await;
    exec(
        &mut c,
        &format!(
            "CREATE TABLE {small} (id INT PRIMARY KEY, v INT); \
             INSERT INTO {small} SELECT seq, seq FROM seq_1_to_100"
        ),
    )
    .await;
    c
}

/// A database `name` with `t` (20,000 rows) and `other` (100 rows) synced, sync stopped: the
/// database, a source connection, and the config (1,000-row chunks) to sync it again.
async fn synced_t_and_other(
    name: &str,
) -> (harness::TestDb, mysql_async::Conn, my2pg::config::Config) {
    let db = harness::shared().fresh(name).await.unwrap();
    let c = big_and_small(&db, 20_000, "other").await;
    let mut cfg = sync_config(&db);
    cfg.snapshot.chunk_rows = 1000;
    let (stop, run) = start(cfg.clone()).await;
    wait_identical(&db, &["t", "other"], Duration::from_secs(60)).await;
    stop.send(true).unwrap();
    assert_eq!(run.await.unwrap().unwrap(), Exit::Stopped);
    (db, c, cfg)
}

/// A config file for `my2pg sync` on the test's databases, with `tables` added to
/// `[tables]` and `snapshot` as `[snapshot]`.
fn config_file(db: &harness::TestDb, tables: &str, snapshot: &str) -> tempfile::NamedTempFile {
    let mut cfg = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
    write!(
        cfg,
        "[source]\nurl = \"{}\"\n[target]\nurl = \"{}\"\n[tables]\ndatabases = [\"{}\"]\n{tables}\n\
         [sync]\nserver_id = {}\nheartbeat_interval_ms = 0\n\
         [snapshot]\n{snapshot}\n\
         [http]\nlisten = \"127.0.0.1:0\"\n",
        db.mysql_url,
        db.pg_url,
        db.name,
        unique_server_id()
    )
    .unwrap();
    cfg
}

/// `my2pg sync --config cfg args…` as a child process, its log (info) to `stderr`.
fn spawn_sync(cfg: &std::path::Path, args: &[&str], stderr: Stdio) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_my2pg"))
        .arg("sync")
        .arg("--config")
        .arg(cfg)
        .args(args)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .unwrap()
}

/// The finished chunks of `table`: number, rows and when it was copied (a chunk copied again
/// gets a new time).
async fn done_chunks(
    pg: &tokio_postgres::Client,
    db: &harness::TestDb,
    table: &str,
) -> Vec<(i32, i64, String)> {
    pg.query(
        "SELECT chunk, rows_copied, copied_at::text FROM my2pg.snapshot_progress \
         WHERE state = 'done' AND source_table = $1 ORDER BY chunk",
        &[&format!("{}.{table}", db.name)],
    )
    .await
    .map(|rows| {
        rows.iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect::<Vec<_>>()
    })
    .unwrap_or_default()
}

/// Chunks planned for `table` (0 before its copy started).
async fn planned_chunks(pg: &tokio_postgres::Client, db: &harness::TestDb, table: &str) -> i64 {
    pg.query_one(
        "SELECT count(*) FROM my2pg.snapshot_progress WHERE source_table = $1",
        &[&format!("{}.{table}", db.name)],
    )
    .await
    .map(|r| r.get(0))
    .unwrap_or(0)
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
    let (written, longest) = load.await.unwrap();
    assert!(written > 100, "only {written} writes ran during the copy");
    // The copy takes no lock the application waits on: each chunk reads a consistent
    // snapshot, and InnoDB's shared metadata lock it holds meanwhile blocks only DDL.
    assert!(
        longest < Duration::from_secs(1),
        "a write waited {longest:?} during the copy"
    );
    wait_identical(&db, &["t"], Duration::from_secs(180)).await;
    stop_tx.send(true).unwrap();
    assert_eq!(run.await.unwrap().unwrap(), Exit::Stopped);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_during_the_copy_does_not_read_finished_chunks_again() {
    let db = harness::shared().fresh("snap_kill").await.unwrap();
    big_table(&db, 200_000).await;
    let cfg = config_file(
        &db,
        "",
        "chunk_rows = 10000\nworkers = 1\nmax_rows_per_second = 40000",
    );
    let spawn = || spawn_sync(cfg.path(), &[], Stdio::null());
    let pg = pg_client(&db.pg_url).await;
    let done_chunks = || done_chunks(&pg, &db, "t");
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
    let planned = planned_chunks(&pg, &db, "t").await;
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

/// `--snapshot-only` copies, stops, and prints the position the next `sync` streams from;
/// that `sync` copies nothing again and applies what was written in between.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_only_stops_after_the_copy_and_names_where_streaming_resumes() {
    let db = harness::shared().fresh("snap_only").await.unwrap();
    big_table(&db, 5000).await;
    let cfg = config_file(&db, "", "chunk_rows = 1000");
    let out = Command::new(env!("CARGO_BIN_EXE_my2pg"))
        .args(["sync", "--snapshot-only", "--config"])
        .arg(cfg.path())
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pg = pg_client(&db.pg_url).await;
    let checkpoint: String = pg
        .query_one("SELECT position FROM my2pg.checkpoint", &[])
        .await
        .unwrap()
        .get(0);
    assert!(
        stdout.contains(&format!("will stream from {checkpoint}")),
        "{stdout:?} does not name the checkpoint {checkpoint}"
    );
    // Copied, and nothing streamed yet.
    assert_eq!(
        table_digests(&db, "t").await.map(|(s, d)| s == d),
        Some(true)
    );
    let copied = done_chunks(&pg, &db, "t").await;
    // About 5 chunks of 1,000 (bounds from the key's ends and the server's row estimate).
    assert!((4..=8).contains(&copied.len()), "{copied:?}");
    assert_eq!(copied.iter().map(|c| c.1).sum::<i64>(), 5000);
    let mut c = my_conn(&db.mysql_db_url).await;
    exec(
        &mut c,
        "UPDATE t SET v = 'changed while nothing ran' WHERE id < 100; DELETE FROM t WHERE id > 4900; \
         INSERT INTO t VALUES (9000, 'new', 1.5, NOW(6))",
    )
    .await;
    let mut cfg = sync_config(&db);
    cfg.snapshot.chunk_rows = 1000;
    let (stop, run) = start(cfg).await;
    wait_identical(&db, &["t"], Duration::from_secs(60)).await;
    assert_eq!(
        done_chunks(&pg, &db, "t").await,
        copied,
        "nothing copied again"
    );
    stop.send(true).unwrap();
    assert_eq!(run.await.unwrap().unwrap(), Exit::Stopped);
}

/// `--resnapshot db.t` copies `t` again from scratch while the applier keeps streaming every
/// table (a row written to another table arrives before the copy ends), under a write load
/// on `t` itself and at the configured rows/s cap; the result is exact, the other table is
/// not copied again, and `t`'s index is rebuilt after the copy. Progress shows in metrics.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resnapshot_copies_one_table_again_while_streaming_goes_on() {
    let (db, mut c, mut cfg) = synced_t_and_other("snap_again").await;
    // The target's `t` goes wrong behind my2pg's back: only a new copy mends it.
    let pg = pg_client(&db.pg_url).await;
    let rel = format!("\"{}\".t", db.name);
    pg.batch_execute(&format!(
        "DELETE FROM {rel} WHERE id % 3 = 0; UPDATE {rel} SET v = 'wrong' WHERE id % 3 = 1"
    ))
    .await
    .unwrap();
    let other_copied = done_chunks(&pg, &db, "other").await;
    let t_copied = done_chunks(&pg, &db, "t").await;

    let cap = 4000u64;
    cfg.snapshot.max_rows_per_second = Some(cap);
    cfg.snapshot.workers = 2;
    let metrics = my2pg::metrics::Metrics::new().unwrap();
    let opts = SyncOptions {
        resnapshot: vec![schemas::TableId::new(&db.name, "t")],
        ..SyncOptions::default()
    };
    let (stop_load, load_rx) = watch::channel(false);
    let load = tokio::spawn(writes(db.mysql_db_url.clone(), load_rx, 20_000));
    let started = std::time::Instant::now();
    let (stop, mut run) = start_with(&cfg, opts, metrics.clone());
    // The copy is under way…
    wait_while_running(&mut run, "the new copy of t starts", || async {
        done_chunks(&pg, &db, "t")
            .await
            .iter()
            .any(|c| !t_copied.contains(c))
    })
    .await;
    // …and a row written elsewhere meanwhile is streamed before it ends.
    exec(&mut c, "INSERT INTO other VALUES (1000, 1)").await;
    let other_rel = format!("\"{}\".other", db.name);
    wait_while_running(&mut run, "the row in other arrives", || async {
        pg.query_opt(&format!("SELECT 1 FROM {other_rel} WHERE id = 1000"), &[])
            .await
            .unwrap()
            .is_some()
    })
    .await;
    let (done, planned) = (
        done_chunks(&pg, &db, "t").await.len() as i64,
        planned_chunks(&pg, &db, "t").await,
    );
    assert!(
        done < planned,
        "the row arrived only after the copy ({done} of {planned} chunks)"
    );
    wait_while_running(&mut run, "the copy of t ends", || async {
        done_chunks(&pg, &db, "t").await.len() as i64 == planned
    })
    .await;
    let took = started.elapsed();
    stop_load.send(true).unwrap();
    let (written, _) = load.await.unwrap();
    assert!(written > 50, "only {written} writes during the copy");
    wait_identical(&db, &["t", "other"], Duration::from_secs(120)).await;
    // 20,000 rows at most `cap` per second.
    assert!(
        took >= Duration::from_secs_f64(0.9 * 20_000.0 / cap as f64),
        "copied in {took:?}, above the cap"
    );
    assert_eq!(
        done_chunks(&pg, &db, "other").await,
        other_copied,
        "other was not copied again"
    );
    // The secondary index dropped for the copy is back once streaming passed its end.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let pending: i64 = pg
            .query_one("SELECT count(*) FROM my2pg.deferred_ddl", &[])
            .await
            .unwrap()
            .get(0);
        let indexes: i64 = pg
            .query_one(
                "SELECT count(*) FROM pg_index WHERE indrelid = to_regclass($1)",
                &[&rel],
            )
            .await
            .unwrap()
            .get(0);
        if pending == 0 && indexes == 2 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{pending} deferred statements left, {indexes} indexes on t"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let text = metrics.encode().unwrap();
    let sample = |name: &str| -> f64 {
        let prefix = format!("{name}{{table=\"{}.t\"}} ", db.name);
        text.lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .unwrap_or_else(|| panic!("{prefix} missing:\n{text}"))
            .parse()
            .unwrap()
    };
    assert!(sample("my2pg_snapshot_rows_total") >= 20_000.0);
    assert!(sample("my2pg_snapshot_rows_estimated") > 0.0);
    let rate = sample("my2pg_snapshot_rows_per_second");
    assert!(
        rate > 0.0 && rate <= 1.2 * cap as f64,
        "{rate} rows/s against a cap of {cap}"
    );
    assert_eq!(sample("my2pg_snapshot_eta_seconds"), 0.0);
    stop.send(true).unwrap();
    assert_eq!(run.await.unwrap().unwrap(), Exit::Stopped);
}

/// A table added to the selection later is copied on the next start while streaming goes on;
/// a kill -9 in the middle of that copy keeps its finished chunks, and the next start copies
/// only the rest (before this, a copy interrupted after the first one was never finished).
/// Without a terminal, progress is logged per table at `progress_log_secs`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_added_later_is_copied_on_the_next_start_and_resumed_after_a_kill() {
    let db = harness::shared().fresh("snap_added").await.unwrap();
    let mut c = big_and_small(&db, 30_000, "first").await;
    let pg = pg_client(&db.pg_url).await;
    let snapshot =
        "chunk_rows = 1000\nworkers = 1\nmax_rows_per_second = 5000\nprogress_log_secs = 1";
    let without_t = config_file(&db, &format!("exclude = [\"{}.t\"]", db.name), snapshot);
    let mut child = spawn_sync(without_t.path(), &[], Stdio::null());
    wait_identical(&db, &["first"], Duration::from_secs(60)).await;
    assert_eq!(planned_chunks(&pg, &db, "t").await, 0);
    child.kill().unwrap();
    child.wait().unwrap();

    let with_t = config_file(&db, "", snapshot);
    let (stop_load, load_rx) = watch::channel(false);
    let load = tokio::spawn(writes(db.mysql_db_url.clone(), load_rx, 30_000));
    let log = tempfile::NamedTempFile::new().unwrap();
    let mut child = spawn_sync(with_t.path(), &[], Stdio::from(log.reopen().unwrap()));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while done_chunks(&pg, &db, "t").await.len() < 8 {
        assert!(tokio::time::Instant::now() < deadline, "t is not copied");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Streaming goes on meanwhile.
    exec(&mut c, "INSERT INTO first VALUES (1000, 1)").await;
    let first_rel = format!("\"{}\".first", db.name);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while pg
        .query_opt(&format!("SELECT 1 FROM {first_rel} WHERE id = 1000"), &[])
        .await
        .unwrap()
        .is_none()
    {
        assert!(tokio::time::Instant::now() < deadline, "streaming stopped");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let before = done_chunks(&pg, &db, "t").await;
    let planned = planned_chunks(&pg, &db, "t").await;
    assert!(
        (before.len() as i64) < planned,
        "the copy ended before the kill"
    );
    let text = std::fs::read_to_string(log.path()).unwrap();
    let progress: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("copying") && l.contains(&format!("{}.t", db.name)))
        .collect();
    assert!(
        progress
            .iter()
            .any(|l| l.contains("rows_per_second=") && l.contains("eta_seconds=")),
        "no progress line for t in:\n{text}"
    );

    // `--snapshot-only` finishes it (without streaming: rows the applier wrote into its
    // unfinished chunks are upserted over), then `sync` streams.
    let status = spawn_sync(with_t.path(), &["--snapshot-only"], Stdio::null())
        .wait()
        .unwrap();
    assert!(status.success(), "{status}");
    assert_eq!(done_chunks(&pg, &db, "t").await.len() as i64, planned);
    let mut child = spawn_sync(with_t.path(), &[], Stdio::null());
    stop_load.send(true).unwrap();
    load.await.unwrap();
    wait_identical(&db, &["t", "first"], Duration::from_secs(120)).await;
    child.kill().unwrap();
    child.wait().unwrap();
    let after = done_chunks(&pg, &db, "t").await;
    for b in &before {
        assert!(after.contains(b), "chunk {} was copied again", b.0);
    }
}

/// Keys the server orders differently from their bytes or text: VARBINARY (bytes, with
/// zero bytes and high bytes), DATETIME(6) (with fractions), and a composite key led by a
/// string; cut into many chunks, copied exactly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn varbinary_datetime_and_composite_string_keys_are_cut_by_the_server() {
    let db = harness::shared().fresh("snap_keys").await.unwrap();
    let mut c = my_conn(&db.mysql_db_url).await;
    exec(
        &mut c,
        "CREATE TABLE bin (k VARBINARY(16) PRIMARY KEY, v INT);
         INSERT INTO bin SELECT UNHEX(LPAD(HEX(seq * 7919 % 65536), 4, '0')), seq FROM seq_1_to_300;
         INSERT INTO bin VALUES (0x00, -1), (0x0000, -2), (0xFF, -3), (0xFFFF00, -4);
         CREATE TABLE times (at DATETIME(6) PRIMARY KEY, v INT);
         INSERT INTO times SELECT TIMESTAMP '2024-02-28 23:59:59.999999' + INTERVAL seq * 37 SECOND \
           - INTERVAL seq MICROSECOND, seq FROM seq_1_to_300;
         CREATE TABLE pairs (s VARCHAR(8) COLLATE utf8mb4_unicode_ci, n INT, v INT, \
           PRIMARY KEY (s, n)) CHARACTER SET utf8mb4;
         INSERT INTO pairs SELECT ELT(seq % 5 + 1, 'b', 'Á', 'a', 'ß', 'ss0'), seq, seq \
           FROM seq_1_to_300",
    )
    .await;
    let mut cfg = sync_config(&db);
    cfg.snapshot.chunk_rows = 17;
    cfg.snapshot.workers = 3;
    let (stop, run) = start(cfg).await;
    wait_identical(&db, &["bin", "times", "pairs"], Duration::from_secs(60)).await;
    let pg = pg_client(&db.pg_url).await;
    for t in ["bin", "times", "pairs"] {
        let n = planned_chunks(&pg, &db, t).await;
        assert!(n >= 10, "{t}: {n} chunks");
    }
    stop.send(true).unwrap();
    assert_eq!(run.await.unwrap().unwrap(), Exit::Stopped);
}

/// On a terminal the copy draws a bar per table (rows, rows/s, time left) and a total.
/// `script` (util-linux) gives the process a pseudo-terminal; skipped where it is missing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_terminal_shows_a_progress_bar_per_table_and_a_total() {
    if Command::new("script").arg("--version").output().is_err() {
        eprintln!("skipped: script(1) is not installed");
        return;
    }
    let db = harness::shared().fresh("snap_bars").await.unwrap();
    let _c = big_and_small(&db, 20_000, "small").await;
    let cfg = config_file(
        &db,
        "",
        "chunk_rows = 1000\nworkers = 1\nmax_rows_per_second = 10000",
    );
    let command = format!(
        "{} sync --snapshot-only --config {}",
        env!("CARGO_BIN_EXE_my2pg"),
        cfg.path().display()
    );
    let out = Command::new("script")
        .args(["-qefc", &command, "/dev/null"])
        .env("TERM", "xterm")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let screen = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{screen}");
    for name in [
        format!("{}.t", db.name),
        format!("{}.small", db.name),
        "total".into(),
    ] {
        assert!(
            screen
                .lines()
                .any(|l| l.contains(&name) && l.contains("rows/s") && l.contains("eta")),
            "no bar for {name} in:\n{screen}"
        );
    }
    // The bars end at the rows copied (the source's estimate is only about right).
    assert!(screen.contains("20000/20000"), "{screen}");
    assert!(screen.contains("20100/20100"), "{screen}");
}

/// Runs `change` on the source while `t` is copied again beside streaming, then waits for the
/// target to equal the source.
async fn change_during_a_copy_beside_streaming(name: &str, change: &str) {
    let (db, mut c, mut cfg) = synced_t_and_other(name).await;
    let pg = pg_client(&db.pg_url).await;
    let t_copied = done_chunks(&pg, &db, "t").await;
    cfg.snapshot.max_rows_per_second = Some(4000);
    cfg.snapshot.workers = 2;
    let opts = SyncOptions {
        resnapshot: vec![schemas::TableId::new(&db.name, "t")],
        ..SyncOptions::default()
    };
    let (stop, mut run) = start_with(&cfg, opts, my2pg::metrics::Metrics::new().unwrap());
    wait_while_running(&mut run, "the new copy of t starts", || async {
        done_chunks(&pg, &db, "t")
            .await
            .iter()
            .any(|c| !t_copied.contains(c))
    })
    .await;
    exec(&mut c, change).await;
    let (done, planned) = (
        done_chunks(&pg, &db, "t").await.len() as i64,
        planned_chunks(&pg, &db, "t").await,
    );
    assert!(done < planned, "the copy ended before the change");
    wait_identical(&db, &["t", "other"], Duration::from_secs(120)).await;
    stop.send(true).unwrap();
    assert_eq!(run.await.unwrap().unwrap(), Exit::Stopped);
}

/// A column added while the table is copied beside streaming: the chunks keep their column
/// list, the applier adds the column and replays the changes to it; the copy ends exact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_column_added_during_a_copy_beside_streaming_converges() {
    change_during_a_copy_beside_streaming(
        "snap_add",
        "ALTER TABLE t ADD COLUMN extra INT NOT NULL DEFAULT 7; \
         UPDATE t SET extra = id WHERE id % 50 = 0; \
         INSERT INTO t VALUES (50000, 'after the change', 1.5, NOW(6), 9)",
    )
    .await;
}

/// A column dropped while the table is copied beside streaming: the next chunk's read fails,
/// sync retries, and the copy resumes with the new definition; the copy ends exact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_column_dropped_during_a_copy_beside_streaming_converges() {
    change_during_a_copy_beside_streaming(
        "snap_drop",
        "ALTER TABLE t DROP COLUMN at; \
         UPDATE t SET v = 'dropped' WHERE id % 50 = 0; \
         INSERT INTO t VALUES (50000, 'after the change', 1.5)",
    )
    .await;
}
