//! How the reader treats transactions, schema changes, interruptions and bad input, against
//! real MariaDB servers.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use my2pg::harness::{self, MariaDb, MariaDbOptions};
use mysql_async::prelude::Queryable;
use rand::Rng;
use schemas::{Change, ChangeOp, SourcePosition, Value};

fn seqs(txs: &[schemas::SourceTx]) -> Vec<i64> {
    rows(txs)
        .iter()
        .filter(|r| r.op == ChangeOp::Insert)
        .map(|r| match &r.after.as_ref().unwrap().0[0] {
            Value::Int(i) => *i,
            other => panic!("unexpected id {other:?}"),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_transaction_arrives_in_fragments_that_only_commit_at_the_end() {
    let db = harness::shared().fresh("fragments").await.unwrap();
    let mut c = my_conn(&db.mysql_db_url).await;
    exec(
        &mut c,
        "CREATE TABLE t (id INT PRIMARY KEY, pad VARCHAR(100))",
    )
    .await;
    let from = position(&db.mysql_url).await;
    exec(
        &mut c,
        "INSERT INTO t SELECT seq, REPEAT('x', 50) FROM seq_1_to_1000",
    )
    .await;
    let reader = reader_with(&db.mysql_url, &db.name, |cfg| cfg.fragment_rows = 100);
    let txs = collect_until(reader, from.clone(), Duration::from_secs(30), |t| {
        t.iter()
            .any(|x| x.fragment.last && (x.row_count() > 0 || x.fragment.index > 0))
    })
    .await;
    let frags: Vec<_> = txs
        .iter()
        .filter(|t| t.gtid == txs.last().unwrap().gtid)
        .collect();
    // Fragments close at row-event boundaries (the server packs ~8 KiB of rows per event), so
    // 1000 rows with a 100-row limit give at least 1000 / 200 pieces.
    assert!(frags.len() >= 5, "{:?}", summary(&txs));
    assert!(
        frags.iter().all(|f| f.changes.len() <= 300),
        "{:?}",
        summary(&txs)
    );
    // Other tests share the server: the position before the big transaction is that of the
    // transaction delivered just before its first fragment (or the start).
    let first = txs.iter().position(|t| t.gtid == frags[0].gtid).unwrap();
    let before = if first == 0 {
        from.clone()
    } else {
        txs[first - 1].position.clone()
    };
    for (i, f) in frags.iter().enumerate() {
        assert_eq!(f.fragment.index as usize, i);
        assert_eq!(f.fragment.last, i == frags.len() - 1);
        if !f.fragment.last {
            assert_eq!(
                f.position, before,
                "an unfinished fragment must carry the position before the transaction"
            );
        }
    }
    assert_ne!(frags.last().unwrap().position, before);
    let ords: Vec<u64> = rows(&txs).iter().map(|r| r.ordinal).collect();
    assert_eq!(ords, (0..1000).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn savepoints_xa_and_empty_transactions() {
    // A server of its own: an XA transaction prepared here and committed later would stop any
    // other test's stream that starts in between (rightly: it cannot know the XA's rows).
    let servers = harness::Servers::start(
        MariaDbOptions::default(),
        harness::PostgresOptions::default(),
    )
    .unwrap();
    let db = servers.fresh("txkinds").await.unwrap();
    let other = servers.fresh("txkinds_other").await.unwrap();
    let mut c = my_conn(&db.mysql_db_url).await;
    exec(&mut c, "CREATE TABLE t (id INT PRIMARY KEY)").await;
    let mut o = my_conn(&other.mysql_db_url).await;
    exec(&mut o, "CREATE TABLE u (id INT PRIMARY KEY)").await;
    let from = position(&db.mysql_url).await;
    exec(&mut c, "BEGIN; INSERT INTO t VALUES (1); SAVEPOINT s; INSERT INTO t VALUES (2); ROLLBACK TO SAVEPOINT s; INSERT INTO t VALUES (3); COMMIT").await;
    // A transaction on a table that is not selected: an empty transaction.
    exec(&mut o, "INSERT INTO u VALUES (1)").await;
    // XA: prepared, then another transaction commits, then the XA commits.
    exec(
        &mut c,
        "XA START 'x1'; INSERT INTO t VALUES (10); XA END 'x1'; XA PREPARE 'x1'",
    )
    .await;
    exec(&mut o, "INSERT INTO u VALUES (2)").await;
    let mut c2 = my_conn(&db.mysql_db_url).await;
    exec(&mut c2, "INSERT INTO t VALUES (11)").await;
    exec(&mut c, "XA COMMIT 'x1'").await;
    exec(
        &mut c,
        "XA START 'x2'; INSERT INTO t VALUES (20); XA END 'x2'; XA PREPARE 'x2'; XA ROLLBACK 'x2'",
    )
    .await;
    exec(&mut c, "INSERT INTO t VALUES (99)").await;
    let txs = collect_until(
        reader_for_db(&db.mysql_url, &db.name),
        from,
        Duration::from_secs(30),
        |t| seqs(t).contains(&99),
    )
    .await;
    assert_eq!(seqs(&txs), vec![1, 3, 11, 10, 99], "{:#?}", summary(&txs));
    let empty = txs.iter().filter(|t| t.changes.is_empty()).count();
    assert!(
        empty >= 2,
        "transactions on unselected tables must arrive empty: {:#?}",
        summary(&txs)
    );
    // Positions only move forward.
    for w in txs.windows(2) {
        assert_eq!(w[1].position.is_at_or_after(&w[0].position), Some(true));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schema_changes_arrive_in_stream_order_with_the_new_schema() {
    let db = harness::shared().fresh("ddl").await.unwrap();
    let mut c = my_conn(&db.mysql_db_url).await;
    exec(&mut c, "CREATE TABLE t (id INT PRIMARY KEY)").await;
    let from = position(&db.mysql_url).await;
    exec(&mut c, "INSERT INTO t VALUES (1)").await;
    exec(
        &mut c,
        "ALTER TABLE t ADD COLUMN note VARCHAR(10) DEFAULT 'x'",
    )
    .await;
    exec(&mut c, "INSERT INTO t VALUES (2, 'two')").await;
    exec(
        &mut c,
        "GRANT SELECT ON *.* TO 'nobody_here'@'%' IDENTIFIED BY 'x'",
    )
    .await;
    exec(&mut c, "RENAME TABLE t TO t2").await;
    exec(&mut c, "INSERT INTO t2 VALUES (3, 'three')").await;
    let txs = collect_until(
        reader_for_db(&db.mysql_url, &db.name),
        from,
        Duration::from_secs(30),
        |t| seqs(t).contains(&3),
    )
    .await;
    let mut events = Vec::new();
    for t in &txs {
        for ch in &t.changes {
            match ch {
                Change::Row(r) => events.push(format!(
                    "{} {} cols={}",
                    r.table.id.table,
                    r.op.as_str(),
                    r.after.as_ref().unwrap().len()
                )),
                Change::Ddl(d) => events.push(format!(
                    "ddl {} -> {}",
                    d.statement
                        .split_whitespace()
                        .take(2)
                        .collect::<Vec<_>>()
                        .join(" "),
                    d.tables
                        .iter()
                        .map(|(id, s)| format!(
                            "{}:{}",
                            id.table,
                            s.as_ref().map_or(0, |s| s.columns.len())
                        ))
                        .collect::<Vec<_>>()
                        .join(",")
                )),
            }
        }
    }
    assert_eq!(
        events,
        vec![
            "t insert cols=1",
            "ddl ALTER TABLE -> t:2",
            "t insert cols=2",
            "ddl RENAME TABLE -> t:0,t2:2",
            "t2 insert cols=2",
        ]
    );
}

/// Writes `n` single-row transactions with ids `start..start+n`, some with an update of an
/// earlier row in the same transaction.
async fn write_load(url: String, start: i64, n: i64) {
    let mut c = my_conn(&url).await;
    for i in start..start + n {
        if i % 3 == 0 && i > start {
            exec(&mut c, &format!("BEGIN; INSERT INTO t VALUES ({i}, 0); UPDATE t SET v = v + 1 WHERE id = {}; COMMIT", i - 1)).await;
        } else {
            exec(&mut c, &format!("INSERT INTO t VALUES ({i}, 0)")).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_from_any_delivered_position_loses_and_repeats_nothing() {
    let db = harness::shared().fresh("resume").await.unwrap();
    let mut c = my_conn(&db.mysql_db_url).await;
    exec(&mut c, "CREATE TABLE t (id INT PRIMARY KEY, v INT)").await;
    let mut from = position(&db.mysql_url).await;
    let total = 400;
    let load = tokio::spawn(write_load(db.mysql_db_url.clone(), 0, total));
    let mut seen: Vec<i64> = Vec::new();
    let mut rng = rand::rng();
    // Stop at three random points under load, then resume from the last delivered position.
    for _ in 0..3 {
        let stop_after = rng.random_range(20..80);
        let got = collect_until(
            reader_for_db(&db.mysql_url, &db.name),
            from.clone(),
            Duration::from_secs(60),
            |t| t.iter().filter(|x| x.row_count() > 0).count() >= stop_after,
        )
        .await;
        // Keep only what was delivered whole; the resume position is the last whole one.
        let whole: Vec<_> = got.into_iter().take_while(|_| true).collect();
        from = whole.last().unwrap().position.clone();
        seen.extend(seqs(&whole));
    }
    load.await.unwrap();
    let rest = collect_until(
        reader_for_db(&db.mysql_url, &db.name),
        from,
        Duration::from_secs(60),
        |t| seqs(t).contains(&(total - 1)),
    )
    .await;
    seen.extend(seqs(&rest));
    assert_eq!(
        seen,
        (0..total).collect::<Vec<_>>(),
        "every transaction exactly once, in order"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_stream_reconnects_and_resumes_exactly() {
    let db = harness::shared().fresh("reconnect").await.unwrap();
    let mut c = my_conn(&db.mysql_db_url).await;
    exec(&mut c, "CREATE TABLE t (id INT PRIMARY KEY, v INT)").await;
    let from = position(&db.mysql_url).await;
    let total = 300;
    let load = tokio::spawn(write_load(db.mysql_db_url.clone(), 0, total));
    let killer_url = db.mysql_url.clone();
    let killer = tokio::spawn(async move {
        let mut k = my_conn(&killer_url).await;
        for _ in 0..3 {
            tokio::time::sleep(Duration::from_millis(400)).await;
            let ids: Vec<u64> = k
                .query("SELECT ID FROM information_schema.PROCESSLIST WHERE COMMAND LIKE 'Binlog Dump%'")
                .await
                .unwrap();
            for id in ids {
                let _ = k.query_drop(format!("KILL CONNECTION {id}")).await;
            }
        }
    });
    let txs = collect_until(
        reader_for_db(&db.mysql_url, &db.name),
        from,
        Duration::from_secs(90),
        |t| seqs(t).contains(&(total - 1)),
    )
    .await;
    load.await.unwrap();
    killer.await.unwrap();
    assert_eq!(seqs(&txs), (0..total).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statement_format_is_refused_loudly() {
    let m = MariaDb::start(MariaDbOptions {
        binlog_format: "STATEMENT".into(),
        ..Default::default()
    })
    .unwrap();
    let mut c = my_conn(&m.url()).await;
    exec(
        &mut c,
        "CREATE DATABASE s; CREATE TABLE s.t (id INT PRIMARY KEY)",
    )
    .await;
    let from = position(&m.url()).await;
    exec(&mut c, "INSERT INTO s.t VALUES (1)").await;
    let (tx, mut rx) = tokio::sync::mpsc::channel(8);
    let err = reader_for_db(&m.url(), "s")
        .run_resilient(from, &tx, Duration::from_secs(1))
        .await
        .unwrap_err();
    assert!(!err.is_transient());
    let msg = err.to_string();
    assert!(
        msg.contains("STATEMENT") && msg.contains("binlog_format = 'ROW'"),
        "{msg}"
    );
    assert!(
        rx.try_recv().is_err(),
        "no transaction may be delivered from a statement-based binlog"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_purged_position_is_a_definite_error_saying_what_to_do() {
    let m = MariaDb::start(MariaDbOptions::default()).unwrap();
    let mut c = my_conn(&m.url()).await;
    exec(
        &mut c,
        "CREATE DATABASE p; CREATE TABLE p.t (id INT PRIMARY KEY); INSERT INTO p.t VALUES (1)",
    )
    .await;
    let old = position(&m.url()).await;
    for i in 2..6 {
        exec(
            &mut c,
            &format!("INSERT INTO p.t VALUES ({i}); FLUSH BINARY LOGS"),
        )
        .await;
    }
    let status: mysql_async::Row = c.query_first("SHOW MASTER STATUS").await.unwrap().unwrap();
    let file: String = status.get(0).unwrap();
    // PURGE silently keeps files the binlog checkpoint still needs; retry until it took effect.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        exec(&mut c, &format!("PURGE BINARY LOGS TO '{file}'")).await;
        let first: mysql_async::Row = c.query_first("SHOW BINARY LOGS").await.unwrap().unwrap();
        if first.get::<String, _>(0).unwrap() == file {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the server never purged its old binlogs"
        );
        exec(&mut c, "FLUSH BINARY LOGS").await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (tx, _rx) = tokio::sync::mpsc::channel(8);
    let reader = reader_for_db(&m.url(), "p");
    let err = tokio::time::timeout(
        Duration::from_secs(60),
        reader.run_resilient(old.clone(), &tx, Duration::from_secs(1)),
    )
    .await
    .expect("the stream should have been refused")
    .unwrap_err();
    assert!(
        matches!(err, cdc_reader::ReaderError::PositionPurged { .. }),
        "{err:?}"
    );
    assert!(
        err.hint().unwrap().contains("--resnapshot"),
        "{:?}",
        err.hint()
    );
    assert!(err.to_string().contains(&old.to_string()), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_compressed_events_and_columns_decode() {
    let m = MariaDb::start(MariaDbOptions {
        extra_args: vec![
            "--log-bin-compress=ON".into(),
            "--log-bin-compress-min-len=10".into(),
        ],
        ..Default::default()
    })
    .unwrap();
    let mut c = my_conn(&m.url()).await;
    exec(&mut c, "CREATE DATABASE z; CREATE TABLE z.t (id INT PRIMARY KEY, a TEXT, b VARCHAR(300) COMPRESSED, d BLOB COMPRESSED)").await;
    let from = position(&m.url()).await;
    let long = "compressible ".repeat(40);
    exec(
        &mut c,
        &format!(
            "INSERT INTO z.t VALUES (1, '{long}', '{}', REPEAT('q', 500))",
            &long[..290]
        ),
    )
    .await;
    exec(
        &mut c,
        "UPDATE z.t SET a = 'short', b = 'tiny' WHERE id = 1",
    )
    .await;
    exec(&mut c, "ALTER TABLE z.t ADD COLUMN e INT DEFAULT 7").await;
    exec(&mut c, "DELETE FROM z.t WHERE id = 1").await;
    let txs = collect_until(
        reader_for_db(&m.url(), "z"),
        from,
        Duration::from_secs(30),
        |t| rows(t).iter().any(|r| r.op == ChangeOp::Delete),
    )
    .await;
    let r = rows(&txs);
    assert_eq!(r[0].after.as_ref().unwrap().0[1], Value::Text(long.clone()));
    assert_eq!(
        r[0].after.as_ref().unwrap().0[2],
        Value::Text(long[..290].to_owned())
    );
    assert_eq!(
        r[0].after.as_ref().unwrap().0[3],
        Value::Bytes(vec![b'q'; 500])
    );
    assert_eq!(
        r[1].after.as_ref().unwrap().0[1],
        Value::Text("short".into())
    );
    assert_eq!(
        r[1].after.as_ref().unwrap().0[2],
        Value::Text("tiny".into())
    );
    assert_eq!(r[2].op, ChangeOp::Delete);
    assert_eq!(r[2].before.as_ref().unwrap().0[4], Value::Int(7));
    assert!(
        txs.iter()
            .any(|t| t.changes.iter().any(|c| matches!(c, Change::Ddl(_)))),
        "the compressed ALTER must arrive"
    );
}

/// The harness MariaDB's current binlog file, copied aside after `work` ran.
async fn captured_binlog(work: &[&str]) -> (std::path::PathBuf, tempfile::TempDir) {
    let m = MariaDb::start(MariaDbOptions::default()).unwrap();
    let mut c = my_conn(&m.url()).await;
    for sql in work {
        exec(&mut c, sql).await;
    }
    let status: mysql_async::Row = c.query_first("SHOW MASTER STATUS").await.unwrap().unwrap();
    let file: String = status.get(0).unwrap();
    exec(&mut c, "FLUSH BINARY LOGS").await;
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join(&file);
    std::fs::copy(m.data_dir().join(&file), &dest).unwrap();
    (dest, dir)
}

fn inspect(path: &std::path::Path) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_my2pg"))
        .args(["inspect-binlog", "--format", "json"])
        .arg(path)
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inspect_binlog_decodes_a_captured_file_and_rejects_corruption_and_truncation() {
    let (path, _dir) = captured_binlog(&[
        "CREATE DATABASE f; CREATE TABLE f.t (id INT PRIMARY KEY, s VARCHAR(20), d DECIMAL(10,2), ts TIMESTAMP(3) NULL)",
        "SET time_zone = '+00:00'; INSERT INTO f.t VALUES (1, 'héllo', 12.50, '2024-01-02 03:04:05.678'), (2, NULL, -1, NULL)",
        "UPDATE f.t SET s = 'bye' WHERE id = 1",
    ])
    .await;
    let out = inspect(&path);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let row_lines: Vec<&serde_json::Value> =
        lines.iter().filter(|l| l.get("row").is_some()).collect();
    assert_eq!(row_lines.len(), 3);
    assert_eq!(
        row_lines[0]["after"]["s"],
        serde_json::json!({"type": "text", "value": "héllo"})
    );
    assert_eq!(
        row_lines[0]["after"]["d"],
        serde_json::json!({"type": "decimal", "value": "12.50"})
    );
    assert_eq!(
        row_lines[0]["after"]["ts"],
        serde_json::json!({"type": "timestamp", "value": "2024-01-02T03:04:05.678000Z"})
    );
    assert_eq!(row_lines[2]["op"], "update");
    let rows_event = lines
        .iter()
        .find(|l| l["type"] == "WRITE_ROWS_V1" || l["type"] == "WRITE_ROWS")
        .unwrap();
    let offset = rows_event["offset"].as_u64().unwrap();

    // A flipped byte in the middle of that event is caught by its CRC32.
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[offset as usize + 30] ^= 0x40;
    let corrupt = path.with_extension("corrupt");
    std::fs::write(&corrupt, &bytes).unwrap();
    let out = inspect(&corrupt);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("CRC32") && err.contains(&format!("offset {offset}")),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");

    // A file cut in the middle of that event names the offset too.
    let bytes = std::fs::read(&path).unwrap();
    let cut = path.with_extension("cut");
    std::fs::write(&cut, &bytes[..offset as usize + 25]).unwrap();
    let out = inspect(&cut);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("truncated") && err.contains(&format!("offset {offset}")),
        "{err}"
    );
}

#[test]
fn positions_of_different_kinds_without_coordinates_are_incomparable() {
    let a: SourcePosition = "mariadb-gtid:0-1-5".parse().unwrap();
    let b: SourcePosition = "file:binlog.000001:4".parse().unwrap();
    assert_eq!(a.is_at_or_after(&b), None);
}
