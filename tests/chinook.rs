//! Chinook (`../shared/fixtures/sample_dbs/chinook`, or `$MY2PG_FIXTURES/sample_dbs/chinook`;
//! skipped, saying why, when absent): the author's MySQL script loaded into MariaDB and synced
//! by my2pg gives the same data as the author's own PostgreSQL script.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::*;
use my2pg::harness;
use my2pg::sync::{self, SyncOptions};
use tokio::sync::watch;

fn chinook_dir() -> Option<PathBuf> {
    let base = std::env::var_os("MY2PG_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures"));
    let dir = base.join("sample_dbs/chinook");
    dir.join("Chinook_MySql.sql").exists().then_some(dir)
}

/// my2pg's table name (the MySQL name folded to lower case) and the PostgreSQL script's.
const TABLES: [(&str, &str); 11] = [
    ("album", "album"),
    ("artist", "artist"),
    ("customer", "customer"),
    ("employee", "employee"),
    ("genre", "genre"),
    ("invoice", "invoice"),
    ("invoiceline", "invoice_line"),
    ("mediatype", "media_type"),
    ("playlist", "playlist"),
    ("playlisttrack", "playlist_track"),
    ("track", "track"),
];

/// The rows of `schema.table` as text, ordered. Strings are compared without trailing
/// spaces: the author's PostgreSQL script writes them as `N'…'` literals, which PostgreSQL
/// reads as `character(n)` and so drops trailing spaces ('Edinburgh ' becomes 'Edinburgh'),
/// while MySQL's VARCHAR keeps them, and so does my2pg (checked on its own below). Backslashes
/// go too: MySQL reads `'Rusticana \ Act'` as an escape and stores no backslash, PostgreSQL
/// keeps it.
async fn rows(url: &str, schema: &str, table: &str) -> Vec<String> {
    let (c, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    let cols: Vec<String> = c
        .query(
            "SELECT CASE WHEN data_type IN ('character varying', 'text') \
               THEN format('replace(rtrim(%I), E''\\\\'', '''')', column_name) \
               ELSE quote_ident(column_name) END \
             FROM information_schema.columns WHERE table_schema = $1 AND table_name = $2 \
             ORDER BY ordinal_position",
            &[&schema, &table],
        )
        .await
        .map(|r| r.iter().map(|r| r.get(0)).collect())
        .unwrap_or_default();
    if cols.is_empty() {
        return Vec::new();
    }
    c.query(
        &format!(
            "SELECT ROW({})::text FROM {schema}.{table} ORDER BY 1",
            cols.join(", ")
        ),
        &[],
    )
    .await
    .map(|r| r.iter().map(|r| r.get(0)).collect())
    .unwrap_or_default()
}

fn with_db(url: &str, db: &str) -> String {
    let mut u = url::Url::parse(url).unwrap();
    u.set_path(&format!("/{db}"));
    u.to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chinook_synced_equals_the_authors_postgresql_version() {
    let Some(dir) = chinook_dir() else {
        eprintln!("skipped: no Chinook fixture under ../shared/fixtures/sample_dbs/chinook");
        return;
    };
    let servers = harness::shared();
    // The MySQL script names its database `Chinook`; a server pair of its own keeps reruns and
    // other tests apart.
    let mut my = my_conn(servers.mysql_url()).await;
    let script = std::fs::read_to_string(dir.join("Chinook_MySql.sql")).unwrap();
    exec(&mut my, &script).await;
    // The reference: the PostgreSQL script into its own database (it creates `chinook`).
    let psql = harness::find_postgres_bin("psql").unwrap();
    let out = std::process::Command::new(psql)
        .arg(servers.pg_admin_url())
        .args(["-q", "-v", "ON_ERROR_STOP=1", "-f"])
        .arg(dir.join("Chinook_PostgreSql.sql"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (admin, conn) = tokio_postgres::connect(servers.pg_admin_url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    admin
        .batch_execute("CREATE DATABASE chinook_sync")
        .await
        .unwrap();
    let target = with_db(servers.pg_admin_url(), "chinook_sync");
    let reference = with_db(servers.pg_admin_url(), "chinook");

    let overrides = my2pg::config::Overrides {
        source: Some(servers.mysql_url().to_owned()),
        target: Some(target.clone()),
        databases: vec!["Chinook".into()],
        include: vec![],
        exclude: vec![],
    };
    let mut cfg = my2pg::config::Config::load_with_env(None, &overrides, &|_| None).unwrap();
    cfg.sync.server_id = unique_server_id();
    cfg.sync.heartbeat_table = "my2pg_hb_chinook.heartbeat".into();
    cfg.http.listen = "127.0.0.1:0".parse().unwrap();
    let ctx = sync::context(
        &cfg,
        my2pg::metrics::Metrics::new().unwrap(),
        my2pg::health::Health::new(),
    )
    .unwrap();
    let (stop_tx, stop_rx) = watch::channel(false);
    let run = tokio::spawn(sync::run(ctx, SyncOptions::default(), stop_rx));
    for (mine, theirs) in TABLES {
        let want = rows(&reference, "public", theirs).await;
        assert!(!want.is_empty(), "reference table {theirs} is empty");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
        loop {
            let got = rows(&target, "chinook", mine).await;
            if got == want {
                break;
            }
            assert!(!run.is_finished(), "sync ended: {:?}", run.await);
            if tokio::time::Instant::now() > deadline {
                let first = got.iter().zip(&want).find(|(g, w)| g != w);
                panic!(
                    "{mine}: {} rows, reference {} rows; first difference: {first:?}",
                    got.len(),
                    want.len()
                );
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
    // The trailing space MySQL kept is kept.
    let (c, conn) = tokio_postgres::connect(&target, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    let city: String = c
        .query_one(
            "SELECT city FROM chinook.customer WHERE customerid = 54",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(city, "Edinburgh ");
    stop_tx.send(true).unwrap();
    run.await.unwrap().unwrap();
}
