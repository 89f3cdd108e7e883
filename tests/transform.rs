//! Every built-in transform stage through `sync` against real servers: the copy and the
//! stream give the target the transformed rows, and nothing else.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use my2pg::harness;
use my2pg::sync::{self, Exit, SyncOptions};
use serde::Deserialize;
use sha2::{Digest, Sha256};

const SALT: &str = "pepper-for-tests-0123456789";

#[derive(Deserialize)]
struct Stages {
    transform: Vec<transform::TransformConfig>,
}

fn stages() -> Vec<transform::TransformConfig> {
    let text = format!(
        r#"
        [[transform]]
        kind = "exclude_tables"
        tables = ["*.audit_*"]

        [[transform]]
        kind = "exclude_columns"
        table = "*.customers"
        columns = ["ssn"]

        [[transform]]
        kind = "rename_column"
        table = "*.customers"
        column = "name"
        to = "full_name"

        [[transform]]
        kind = "mask"
        table = "*.customers"
        columns = ["email"]
        with = "sha256"
        salt = "{SALT}"

        [[transform]]
        kind = "mask"
        table = "*.customers"
        columns = ["phone"]
        with = "null"

        [[transform]]
        kind = "mask"
        table = "*.customers"
        columns = ["notes"]
        with = "constant"
        value = "redacted"

        [[transform]]
        kind = "filter"
        table = "*.orders"
        where = "status <> 'test' AND total >= 1.00"

        [[transform]]
        kind = "cast"
        table = "*.orders"
        column = "created_epoch"
        to = "timestamp"

        [[transform]]
        kind = "cast"
        table = "*.orders"
        column = "meta"
        to = "json"
        "#
    );
    toml::from_str::<Stages>(&text).unwrap().transform
}

fn masked(email: &str) -> String {
    let mut h = Sha256::new();
    h.update(SALT.as_bytes());
    h.update(email.as_bytes());
    hex::encode(h.finalize())
}

async fn pg(db: &harness::TestDb) -> tokio_postgres::Client {
    let (c, conn) = tokio_postgres::connect(&db.pg_url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    c
}

/// Polls `sql` (one text column per row, rows joined by `|`) until it equals `want`.
async fn wait_rows(
    c: &tokio_postgres::Client,
    run: &mut tokio::task::JoinHandle<anyhow::Result<Exit>>,
    sql: &str,
    want: &str,
) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut last = String::new();
    while tokio::time::Instant::now() < deadline {
        if let Ok(rows) = c.query(sql, &[]).await {
            last = rows
                .iter()
                .map(|r| r.get::<_, Option<String>>(0).unwrap_or_else(|| "∅".into()))
                .collect::<Vec<_>>()
                .join("|");
            if last == want {
                return;
            }
        }
        if run.is_finished() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    if run.is_finished() {
        let r = run.await;
        panic!("sync ended: {r:?}\n  want {want}\n  got  {last}");
    }
    panic!("{sql}\n  want {want}\n  got  {last}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_stage_shapes_the_copy_and_the_stream() {
    let db = harness::shared().fresh("transform").await.unwrap();
    let mut c = my_conn(&db.mysql_db_url).await;
    exec(
        &mut c,
        "CREATE TABLE customers (id INT PRIMARY KEY, name VARCHAR(50), email VARCHAR(100), \
           phone VARCHAR(20), ssn CHAR(11) NOT NULL, notes TEXT);
         CREATE TABLE orders (id INT PRIMARY KEY, customer_id INT, status VARCHAR(20), \
           total DECIMAL(10,2), created_epoch INT, meta TEXT);
         CREATE TABLE audit_log (id INT PRIMARY KEY, msg TEXT);
         INSERT INTO customers VALUES
           (1, 'Ann', 'ann@example.com', '555-0101', '123-45-6789', 'likes tea'),
           (2, 'Bob', 'bob@example.com', NULL, '987-65-4321', NULL);
         INSERT INTO orders VALUES
           (10, 1, 'paid', 12.50, 1700000000, '{\"b\": 1, \"a\": [true, null]}'),
           (11, 1, 'test', 99.00, 1700000001, '{}'),
           (12, 2, 'paid', 0.50, 1700000002, '[]');
         INSERT INTO audit_log VALUES (1, 'hello');",
    )
    .await;
    let mut cfg = sync_config(&db);
    cfg.transforms = stages();
    let ctx = sync::context(
        &cfg,
        my2pg::metrics::Metrics::new().unwrap(),
        my2pg::health::Health::new(),
    )
    .unwrap();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut run = tokio::spawn(sync::run(ctx, SyncOptions::default(), stop_rx));
    let p = pg(&db).await;
    let s = &db.name;
    let customers = format!(
        "SELECT concat_ws(',', id, full_name, email, coalesce(phone, '∅'), coalesce(notes, '∅')) \
         FROM \"{s}\".customers ORDER BY id"
    );
    let orders = format!(
        "SELECT concat_ws(',', id, status, total, \
           to_char(created_epoch, 'YYYY-MM-DD HH24:MI:SS'), meta::text, \
           pg_typeof(meta)::text) FROM \"{s}\".orders ORDER BY id"
    );
    // The copy.
    wait_rows(
        &p,
        &mut run,
        &customers,
        &format!(
            "1,Ann,{},∅,redacted|2,Bob,{},∅,∅",
            masked("ann@example.com"),
            masked("bob@example.com")
        ),
    )
    .await;
    wait_rows(
        &p,
        &mut run,
        &orders,
        "10,paid,12.50,2023-11-14 22:13:20,{\"a\": [true, null], \"b\": 1},jsonb",
    )
    .await;
    // The excluded column and table do not exist on the target.
    let cols: Vec<String> = p
        .query(
            "SELECT column_name::text FROM information_schema.columns \
             WHERE table_schema = $1 AND table_name = 'customers' ORDER BY ordinal_position",
            &[s],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(cols, ["id", "full_name", "email", "phone", "notes"]);
    let audit: i64 = p
        .query_one(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = $1 AND table_name = 'audit_log'",
            &[s],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(audit, 0, "an excluded table is not created");

    // The stream: inserts, updates (one leaving the filter, one entering it), a delete.
    exec(
        &mut c,
        "INSERT INTO customers VALUES (3, 'Cy', 'cy@example.com', '555-0303', '000-00-0000', 'x');
         UPDATE customers SET email = 'ann@new.example', name = 'Ann B' WHERE id = 1;
         DELETE FROM customers WHERE id = 2;
         INSERT INTO orders VALUES (13, 3, 'paid', 5.00, 0, '{\"z\": 0}');
         UPDATE orders SET status = 'test' WHERE id = 10;
         UPDATE orders SET status = 'paid' WHERE id = 11;
         UPDATE orders SET total = 2.00 WHERE id = 12;
         INSERT INTO audit_log VALUES (2, 'ignored');",
    )
    .await;
    wait_rows(
        &p,
        &mut run,
        &customers,
        &format!(
            "1,Ann B,{},∅,redacted|3,Cy,{},∅,redacted",
            masked("ann@new.example"),
            masked("cy@example.com")
        ),
    )
    .await;
    wait_rows(
        &p,
        &mut run,
        &orders,
        "11,paid,99.00,2023-11-14 22:13:21,{},jsonb|\
         12,paid,2.00,2023-11-14 22:13:22,[],jsonb|\
         13,paid,5.00,1970-01-01 00:00:00,{\"z\": 0},jsonb",
    )
    .await;

    // Verify reads the source through the same stages: the transformed target is identical,
    // and the coverage names the column the stages drop.
    let r = verify_transformed(&cfg).await;
    let status = |name: &str| {
        r.tables
            .iter()
            .find(|t| t.source_table.ends_with(name))
            .map(|t| (t.status, t.differences()))
    };
    assert_eq!(
        status(".customers"),
        Some((verifier::TableStatus::Identical, 0))
    );
    assert_eq!(
        status(".orders"),
        Some((verifier::TableStatus::Identical, 0))
    );
    // The table a stage drops is reported as skipped, not compared.
    assert_eq!(
        status(".audit_log"),
        Some((verifier::TableStatus::Skipped, 0))
    );
    assert!(
        r.coverage
            .columns_excluded
            .iter()
            .any(|c| c.table.ends_with(".customers") && c.column == "ssn"),
        "{:?}",
        r.coverage.columns_excluded
    );
    assert_eq!(r.exit_code, 0);

    // Changed behind my2pg's back: a masked value, and a row the filter keeps out.
    p.batch_execute(&format!(
        "UPDATE \"{s}\".customers SET email = 'plain@example.com' WHERE id = 3;
         INSERT INTO \"{s}\".orders (id, customer_id, status, total, created_epoch, meta)
           VALUES (10, 1, 'test', 12.50, '2023-11-14 22:13:20', '{{}}');"
    ))
    .await
    .unwrap();
    let r = verify_transformed(&cfg).await;
    let customers = r
        .tables
        .iter()
        .find(|t| t.source_table.ends_with(".customers"))
        .unwrap();
    assert_eq!(
        (
            customers.differing,
            customers.missing_in_target,
            customers.extra_in_target
        ),
        (1, 0, 0)
    );
    let cols: Vec<&str> = customers.diffs[0]
        .columns
        .iter()
        .map(|c| c.column.as_str())
        .collect();
    assert_eq!(cols, ["email"]);
    assert_eq!(
        customers.diffs[0].columns[0].source.as_deref(),
        Some(masked("cy@example.com").as_str())
    );
    let orders = r
        .tables
        .iter()
        .find(|t| t.source_table.ends_with(".orders"))
        .unwrap();
    assert_eq!(
        (
            orders.differing,
            orders.missing_in_target,
            orders.extra_in_target
        ),
        (0, 0, 1)
    );
    assert_eq!(r.exit_code, 1);
    stop_tx.send(true).unwrap();
    assert_eq!(run.await.unwrap().unwrap(), Exit::Stopped);
}

/// `my2pg verify` in-process, with the configuration's transform stages.
async fn verify_transformed(cfg: &my2pg::config::Config) -> verifier::Report {
    let (tables, missing) = my2pg::commands::verify::source_tables(cfg, &[])
        .await
        .unwrap();
    let prepared = my2pg::commands::verify::prepare(cfg, &tables, &missing).unwrap();
    let opts = verifier::VerifyOptions {
        max_diffs: 100,
        catch_up_timeout: Duration::from_secs(30),
        pipeline: cfg.sync.pipeline.clone(),
        ..verifier::VerifyOptions::default()
    };
    verifier::verify(
        &cfg.source_options().unwrap(),
        &cfg.target_options().unwrap(),
        prepared,
        &opts,
    )
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stage_that_cannot_apply_names_the_table_and_the_fix() {
    let db = harness::shared().fresh("transform_bad").await.unwrap();
    let mut c = my_conn(&db.mysql_db_url).await;
    exec(&mut c, "CREATE TABLE t (id INT PRIMARY KEY, v INT)").await;
    for (toml_text, needle) in [
        (
            r#"[[transform]]
               kind = "exclude_columns"
               table = "*.t"
               columns = ["id"]"#,
            "identifies rows",
        ),
        (
            r#"[[transform]]
               kind = "filter"
               table = "*.t"
               where = "nope = 1""#,
            "has no column \"nope\"",
        ),
        (
            r#"[[transform]]
               kind = "mask"
               table = "*.t"
               columns = ["id"]
               with = "null""#,
            "would merge rows",
        ),
    ] {
        let mut cfg = sync_config(&db);
        cfg.transforms = toml::from_str::<Stages>(toml_text).unwrap().transform;
        let ctx = sync::context(
            &cfg,
            my2pg::metrics::Metrics::new().unwrap(),
            my2pg::health::Health::new(),
        )
        .unwrap();
        let (_stop, stop_rx) = tokio::sync::watch::channel(false);
        let err = tokio::time::timeout(
            Duration::from_secs(60),
            sync::run(ctx, SyncOptions::default(), stop_rx),
        )
        .await
        .unwrap()
        .unwrap_err();
        let msg = my2pg::exit::render(&err);
        assert!(msg.contains(needle) && msg.contains(".t"), "{msg}");
    }
    // A predicate the filter language does not have is refused when the configuration loads.
    let mut cfg = sync_config(&db);
    cfg.transforms = toml::from_str::<Stages>(
        r#"[[transform]]
           kind = "filter"
           table = "*.t"
           where = "v + 1 > (SELECT 1)""#,
    )
    .unwrap()
    .transform;
    let e = cfg.validate().unwrap_err();
    assert_eq!(e.key, "transform");
    assert!(e.problem.contains("not supported"), "{}", e.problem);
}
