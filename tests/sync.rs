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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_value_the_target_cannot_hold_stops_with_the_row_named() {
    let db = harness::shared().fresh("sync_reject").await.unwrap();
    let mut c = my_conn(&db.mysql_db_url).await;
    exec(&mut c, "CREATE TABLE t (id INT PRIMARY KEY, d DATE)").await;
    exec(&mut c, "INSERT INTO t VALUES (1, '2024-01-01')").await;
    let (_stop, run) = start(sync_config(&db)).await;
    wait_identical(&db, &["t"], Duration::from_secs(60)).await;
    exec(&mut c, "SET SESSION sql_mode = ''; INSERT INTO t VALUES (2, '2024-02-02'); INSERT INTO t VALUES (42, '0000-00-00')").await;
    let err = tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .unwrap()
        .unwrap()
        .unwrap_err();
    let msg = my2pg::exit::render(&err);
    assert!(
        msg.contains(&format!("{}.t", db.name)) && msg.contains("42") && msg.contains("0000-00-00"),
        "{msg}"
    );
    assert!(
        my2pg::exit::hint_of(&err).unwrap().contains("zero_date"),
        "{:?}",
        my2pg::exit::hint_of(&err)
    );
    // The checkpoint stays before the failed transaction: row 2 (its own transaction) is in,
    // row 42 is not.
    let pg = pg_client(&db.pg_url).await;
    let ids: Vec<i32> = pg
        .query(
            &format!("SELECT id FROM \"{}\".t ORDER BY id", db.name),
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(ids, vec![1, 2]);
}

/// A COPY that writes another number of rows than it was sent (here a trigger on the target
/// drops some) stops the copy with both numbers named, and nothing of the chunk is kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_that_loses_rows_on_the_target_stops_and_keeps_nothing() {
    let db = harness::shared().fresh("sync_copy_count").await.unwrap();
    let mut c = my_conn(&db.mysql_db_url).await;
    exec(&mut c, "CREATE TABLE t (id INT PRIMARY KEY, v INT)").await;
    exec(&mut c, "INSERT INTO t SELECT seq, seq FROM seq_1_to_100").await;
    let pg = pg_client(&db.pg_url).await;
    pg.batch_execute(&format!(
        "CREATE SCHEMA \"{s}\"; CREATE TABLE \"{s}\".t (id integer PRIMARY KEY, v integer);
         CREATE FUNCTION \"{s}\".drop_even() RETURNS trigger LANGUAGE plpgsql AS
           $$ BEGIN IF NEW.id % 2 = 0 THEN RETURN NULL; END IF; RETURN NEW; END $$;
         CREATE TRIGGER drop_even BEFORE INSERT ON \"{s}\".t
           FOR EACH ROW EXECUTE FUNCTION \"{s}\".drop_even()",
        s = db.name
    ))
    .await
    .unwrap();
    let (_stop, run) = start(sync_config(&db)).await;
    let err = tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .expect("sync did not stop")
        .unwrap()
        .expect_err("the copy must fail");
    let text = format!("{err:#}");
    assert!(text.contains("wrote 50 rows where 100 were sent"), "{text}");
    let n: i64 = pg
        .query_one(&format!("SELECT count(*) FROM \"{}\".t", db.name), &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 0, "the chunk's rows were rolled back");
    let done: i64 = pg
        .query_one(
            "SELECT count(*) FROM my2pg.snapshot_progress WHERE state = 'done'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(done, 0, "no chunk is marked copied");
}

/// The initial copy under the dead-letter policy: rows that cannot be converted are recorded
/// (more of them than a chunk holds before it ends its COPY to record them, so the chunk's COPY
/// is ended and reopened on the way: the rows come in batches of 5,000) and every other row
/// is copied exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_copy_records_rejected_rows_and_copies_the_rest() {
    let db = harness::shared().fresh("sync_dead_copy").await.unwrap();
    let mut c = my_conn(&db.mysql_db_url).await;
    exec(&mut c, "CREATE TABLE t (id INT PRIMARY KEY, d DATE)").await;
    exec(
        &mut c,
        "SET SESSION sql_mode = ''; INSERT INTO t SELECT seq, \
         IF(seq % 3 = 0, '0000-00-00', '2024-01-01' + INTERVAL seq DAY) FROM seq_1_to_12000",
    )
    .await;
    let mut cfg = sync_config(&db);
    cfg.sync.on_error = sink::apply::ErrorPolicy::DeadLetter;
    let (stop, mut run) = start(cfg).await;
    let pg = pg_client(&db.pg_url).await;
    wait_while_running(&mut run, "the end of the copy", || snapshot_done(&pg)).await;
    let (rows, wrong): (i64, i64) = {
        let r = pg
            .query_one(
                &format!(
                    "SELECT count(*), count(*) FILTER (WHERE id % 3 = 0 \
                     OR d <> date '2024-01-01' + id) FROM \"{}\".t",
                    db.name
                ),
                &[],
            )
            .await
            .unwrap();
        (r.get(0), r.get(1))
    };
    assert_eq!((rows, wrong), (8000, 0), "every convertible row, once");
    let (dead, read, keys): (i64, i64, i64) = {
        let r = pg
            .query_one(
                "SELECT count(*), count(*) FILTER (WHERE event->>'op' = 'read'), \
                 count(DISTINCT row_key) FROM my2pg.dead_letter",
                &[],
            )
            .await
            .unwrap();
        (r.get(0), r.get(1), r.get(2))
    };
    assert_eq!((dead, read, keys), (4000, 4000, 4000));
    stop.send(true).unwrap();
    assert_eq!(run.await.unwrap().unwrap(), Exit::Stopped);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dead_letter_policy_records_the_row_and_goes_on() {
    let db = harness::shared().fresh("sync_dead").await.unwrap();
    let mut c = my_conn(&db.mysql_db_url).await;
    exec(&mut c, "CREATE TABLE t (id INT PRIMARY KEY, d DATE)").await;
    let mut cfg = sync_config(&db);
    cfg.sync.on_error = sink::apply::ErrorPolicy::DeadLetter;
    exec(&mut c, "INSERT INTO t VALUES (1, '2024-01-01')").await;
    let (stop, mut run) = start(cfg).await;
    wait_identical(&db, &["t"], Duration::from_secs(60)).await;
    exec(&mut c, "SET SESSION sql_mode = ''; \
                  BEGIN; INSERT INTO t VALUES (7, '0000-00-00'); INSERT INTO t VALUES (8, '2024-08-08'); COMMIT; \
                  INSERT INTO t VALUES (9, '2024-09-09')").await;
    let pg = pg_client(&db.pg_url).await;
    let row_9 = format!("SELECT count(*) FROM \"{}\".t WHERE id = 9", db.name);
    wait_while_running(&mut run, "row 9 arrived", || async {
        pg.query_one(&row_9, &[])
            .await
            .is_ok_and(|r| r.get::<_, i64>(0) == 1)
    })
    .await;
    let ids: Vec<i32> = pg
        .query(
            &format!("SELECT id FROM \"{}\".t ORDER BY id", db.name),
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        ids,
        vec![1, 8, 9],
        "the rejected row is skipped, the rest of its transaction applied"
    );
    let dl = pg
        .query_one(
            "SELECT source_table, row_key, error, event->>'op' FROM my2pg.dead_letter",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(dl.get::<_, String>(0), format!("{}.t", db.name));
    assert!(dl.get::<_, String>(1).contains('7'));
    assert!(dl.get::<_, String>(2).contains("0000-00-00"));
    assert_eq!(dl.get::<_, String>(3), "insert");
    stop.send(true).unwrap();
    assert_eq!(run.await.unwrap().unwrap(), Exit::Stopped);
}

/// A source nobody writes to while the copy runs, with heartbeats off: the copy's end is the
/// position streaming starts from, so the foreign keys deferred past the load are built at
/// once, not after some later write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quiet_source_gets_its_foreign_keys_without_waiting_for_a_write() {
    let db = harness::shared().fresh("sync_quiet_fk").await.unwrap();
    let mut c = my_conn(&db.mysql_db_url).await;
    exec(
        &mut c,
        "CREATE TABLE parent (id INT PRIMARY KEY); \
         CREATE TABLE child (id INT PRIMARY KEY, p INT NOT NULL, \
           CONSTRAINT child_p FOREIGN KEY (p) REFERENCES parent (id)); \
         INSERT INTO parent SELECT seq FROM seq_1_to_100; \
         INSERT INTO child SELECT seq, 1 + seq % 100 FROM seq_1_to_1000",
    )
    .await;
    let mut cfg = sync_config(&db);
    cfg.sync.heartbeat_interval_ms = 0;
    let (stop, mut run) = start(cfg).await;
    let pg = pg_client(&db.pg_url).await;
    wait_while_running(&mut run, "the end of the copy", || snapshot_done(&pg)).await;
    let fks: i64 = pg
        .query_one(
            "SELECT count(*) FROM pg_constraint WHERE contype = 'f' \
             AND conrelid = $1::text::regclass",
            &[&format!("\"{}\".child", db.name)],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(fks, 1, "the foreign key is built once the copy is done");
    stop.send(true).unwrap();
    assert_eq!(run.await.unwrap().unwrap(), Exit::Stopped);
}

/// A new target gets every state migration in one batch, each recorded once; a second start,
/// and two starts at once, change nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_migrations_run_once_each_and_are_recorded() {
    let db = harness::shared().fresh("sync_state").await.unwrap();
    let (a, b) = (pg_client(&db.pg_url).await, pg_client(&db.pg_url).await);
    tokio::join!(ensure_state(&a), ensure_state(&b));
    ensure_state(&a).await;
    let versions: Vec<i32> = a
        .query(
            "SELECT version FROM my2pg.state_version ORDER BY version",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let want: Vec<i32> = sink::state::MIGRATIONS.iter().map(|(v, _)| *v).collect();
    assert_eq!(versions, want);
    // The tables the migrations create are there and usable.
    let n: i64 = a
        .query_one("SELECT count(*) FROM my2pg.deferred_ddl", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 0);
}

async fn ensure_state(c: &tokio_postgres::Client) {
    c.batch_execute("BEGIN").await.unwrap();
    sink::state::ensure_state(c).await.unwrap();
    c.batch_execute("COMMIT").await.unwrap();
}
