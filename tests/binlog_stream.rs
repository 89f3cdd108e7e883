//! The binlog stream against a real MariaDB: transactions, images, positions, resume.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use my2pg::harness;
use schemas::{ChangeOp, Row, SourcePosition, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn insert_update_delete_arrive_as_transactions_with_images() {
    let db = harness::shared().fresh("stream_basic").await.unwrap();
    let mut c = my_conn(&db.mysql_db_url).await;
    exec(
        &mut c,
        "CREATE TABLE t (id INT PRIMARY KEY, name VARCHAR(20), n BIGINT UNSIGNED)",
    )
    .await;
    let from = position(&db.mysql_url).await;
    exec(
        &mut c,
        "INSERT INTO t VALUES (1, 'one', 18446744073709551615), (2, 'two', 0)",
    )
    .await;
    exec(&mut c, "UPDATE t SET name = 'uno' WHERE id = 1").await;
    exec(
        &mut c,
        "BEGIN; DELETE FROM t WHERE id = 2; INSERT INTO t VALUES (3, NULL, 7); COMMIT",
    )
    .await;
    let txs = collect_until(
        reader_for_db(&db.mysql_url, &db.name),
        from,
        Duration::from_secs(20),
        |t| rows(t).len() >= 5,
    )
    .await;
    let r = rows(&txs);
    assert_eq!(r[0].op, ChangeOp::Insert);
    assert_eq!(
        r[0].after,
        Some(Row(vec![
            Value::Int(1),
            Value::Text("one".into()),
            Value::UInt(18_446_744_073_709_551_615)
        ]))
    );
    assert_eq!(r[1].after.as_ref().unwrap().0[2], Value::UInt(0));
    assert_eq!(r[2].op, ChangeOp::Update);
    assert_eq!(
        r[2].before.as_ref().unwrap().0[1],
        Value::Text("one".into())
    );
    assert_eq!(r[2].after.as_ref().unwrap().0[1], Value::Text("uno".into()));
    assert_eq!(r[3].op, ChangeOp::Delete);
    assert_eq!(r[3].before.as_ref().unwrap().0[0], Value::Int(2));
    assert_eq!(r[4].after.as_ref().unwrap().0[1], Value::Null);
    // The last two changes are one source transaction, in order.
    let last = txs.iter().rev().find(|t| !t.changes.is_empty()).unwrap();
    assert_eq!(last.changes.len(), 2);
    assert_eq!(r[3].ordinal, 0);
    assert_eq!(r[4].ordinal, 1);
    assert!(matches!(last.position, SourcePosition::MariaGtid { .. }));
    assert_eq!(r[0].table.id.table, "t");
    assert_eq!(r[0].table.primary_key, vec![0]);
}
