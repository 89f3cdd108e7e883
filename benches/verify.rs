//! `my2pg verify` throughput against reladiff on the same identical tables, in the same run.
//!
//! Starts throwaway MariaDB and PostgreSQL servers (the test harness), loads
//! `MY2PG_BENCH_ROWS` rows (default 1,000,000) spread over 5 tables, copies them with
//! `sync --snapshot-only`, then times:
//!
//! 1. `my2pg verify` (in-process, the command's code path, 5 tables in parallel) — must say
//!    identical, each table by chunk checksums in the databases (`pushdown`);
//! 2. the same with pushdown off (every row streamed and merged in my2pg), for reference;
//! 3. my2pg verify after injecting one difference per table — must find exactly those;
//! 4. reladiff (`pip install 'reladiff[mysql,postgresql]'`; found on `PATH`, in
//!    `$MY2PG_RELADIFF`, or in `/tmp/reladiff-venv/bin`) on each table with the same columns —
//!    skipped with a message when it is not installed. Its own difference count on the
//!    identical tables is printed (a peer: reported, not asserted).
//!
//! Prints rows/s of each and the ratio my2pg/reladiff of the same run. Speed is reported,
//! never asserted; the correctness checks (identical, then exactly the injected rows) are
//! asserted.
//!
//! Run: `cargo bench --bench verify`; small: `MY2PG_BENCH_ROWS=5000 cargo bench --bench verify`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use my2pg::harness;
use my2pg::sync::{self, Exit, SyncOptions};
use mysql_async::prelude::Queryable;
use verifier::VerifyOptions;

const TABLES: usize = 5;

fn reladiff() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("MY2PG_RELADIFF") {
        return Some(PathBuf::from(p));
    }
    let venv = PathBuf::from("/tmp/reladiff-venv/bin/reladiff");
    if venv.exists() {
        return Some(venv);
    }
    Command::new("reladiff")
        .arg("--version")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|_| PathBuf::from("reladiff"))
}

async fn run_verify(cfg: &my2pg::config::Config, pushdown: bool) -> (verifier::Report, Duration) {
    let started = Instant::now();
    let (tables, missing) = my2pg::commands::verify::source_tables(cfg, &[])
        .await
        .unwrap();
    let prepared = my2pg::commands::verify::prepare(cfg, &tables, &missing).unwrap();
    let opts = VerifyOptions {
        parallel: TABLES,
        rechecks: 0,
        record: false,
        pushdown,
        ..VerifyOptions::default()
    };
    let r = verifier::verify(
        &cfg.source_options().unwrap(),
        &cfg.target_options().unwrap(),
        prepared,
        &opts,
    )
    .await
    .unwrap();
    (r, started.elapsed())
}

fn main() {
    let rows: u64 = std::env::var("MY2PG_BENCH_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(bench(rows));
}

async fn bench(rows: u64) {
    let db = harness::shared().fresh("bench_verify").await.unwrap();
    let per = rows / TABLES as u64;
    let mut c = mysql_async::Conn::from_url(db.mysql_db_url.as_str())
        .await
        .unwrap();
    let load = Instant::now();
    for t in 0..TABLES {
        c.query_drop(format!(
            "CREATE TABLE t{t} (id BIGINT PRIMARY KEY, name VARCHAR(64), amount DECIMAL(12,2), \
             created DATETIME(6), qty INT)"
        ))
        .await
        .unwrap();
        c.query_drop(format!(
            "INSERT INTO t{t} SELECT seq, CONCAT('customer ', seq), seq / 7, \
             TIMESTAMP '2024-01-01 00:00:00' + INTERVAL seq SECOND, seq % 1000 \
             FROM seq_1_to_{per}"
        ))
        .await
        .unwrap();
    }
    let mut cfg = my2pg::config::Config::load_with_env(
        None,
        &my2pg::config::Overrides {
            source: Some(db.mysql_url.clone()),
            target: Some(db.pg_url.clone()),
            databases: vec![db.name.clone()],
            include: vec![],
            exclude: vec![],
        },
        &|_| None,
    )
    .unwrap();
    cfg.sync.heartbeat_interval_ms = 0;
    cfg.sync.server_id = 4_242_000 + std::process::id() % 1000;
    let ctx = sync::context(
        &cfg,
        my2pg::metrics::Metrics::new().unwrap(),
        my2pg::health::Health::new(),
    )
    .unwrap();
    let (_stop, stop_rx) = tokio::sync::watch::channel(false);
    let exit = sync::run(
        ctx,
        SyncOptions {
            snapshot_only: true,
            ..SyncOptions::default()
        },
        stop_rx,
    )
    .await
    .unwrap();
    assert!(matches!(exit, Exit::SnapshotOnly(_)));
    println!(
        "setup: {} rows in {TABLES} tables loaded and copied in {:.1}s",
        per * TABLES as u64,
        load.elapsed().as_secs_f64()
    );

    // 1. Identical tables.
    let (r, took) = run_verify(&cfg, true).await;
    assert_eq!(r.result, "identical", "{}", r.render_text());
    assert!(
        r.tables
            .iter()
            .all(|t| t.path == verifier::ComparePath::Pushdown),
        "{}",
        r.render_text()
    );
    let compared = r.totals.rows_compared;
    let my_rate = compared as f64 / took.as_secs_f64();
    println!(
        "my2pg verify: {compared} rows in {:.2}s = {my_rate:.0} rows/s (identical, pushdown, {} chunks)",
        took.as_secs_f64(),
        r.tables.iter().map(|t| t.chunks).sum::<u64>()
    );

    // 2. The streaming path alone, for reference.
    let (r, took_s) = run_verify(&cfg, false).await;
    assert_eq!(r.result, "identical", "{}", r.render_text());
    println!(
        "my2pg verify, streaming only: {:.2}s = {:.0} rows/s",
        took_s.as_secs_f64(),
        r.totals.rows_compared as f64 / took_s.as_secs_f64()
    );

    // 3. One injected difference per table, all found.
    let (pg, conn) = tokio_postgres::connect(&db.pg_url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    for t in 0..TABLES {
        pg.batch_execute(&format!(
            "UPDATE {s}.t{t} SET amount = amount + 0.01 WHERE id = {id}",
            s = db.name,
            id = per / 2 + t as u64
        ))
        .await
        .unwrap();
    }
    let (r, took2) = run_verify(&cfg, true).await;
    assert_eq!(r.totals.differing, TABLES as u64, "{}", r.render_text());
    assert_eq!(r.totals.missing_in_target + r.totals.extra_in_target, 0);
    println!(
        "my2pg verify with {TABLES} injected differences: {:.2}s = {:.0} rows/s, all {TABLES} found \
         ({} chunks streamed row by row)",
        took2.as_secs_f64(),
        r.totals.rows_compared as f64 / took2.as_secs_f64(),
        r.tables.iter().map(|t| t.chunks_restreamed).sum::<u64>()
    );
    // Undo, so reladiff compares identical tables.
    for t in 0..TABLES {
        pg.batch_execute(&format!(
            "UPDATE {s}.t{t} SET amount = amount - 0.01 WHERE id = {id}",
            s = db.name,
            id = per / 2 + t as u64
        ))
        .await
        .unwrap();
    }

    // 4. reladiff on the same tables.
    let Some(bin) = reladiff() else {
        println!("reladiff: not installed (pip install 'reladiff[mysql,postgresql]'); skipped");
        return;
    };
    let my_url = format!("{}/{}", db.mysql_url.trim_end_matches('/'), db.name);
    let pg_url = db.pg_url.replacen("postgres://", "postgresql://", 1);
    let started = Instant::now();
    let mut failed = Vec::new();
    let mut reladiff_diffs = 0u64;
    for t in 0..TABLES {
        let out = Command::new(&bin)
            .args([
                my_url.as_str(),
                &format!("t{t}"),
                pg_url.as_str(),
                &format!("{}.t{t}", db.name),
                "-k",
                "id",
                "-c",
                "name",
                "-c",
                "amount",
                "-c",
                "created",
                "-c",
                "qty",
                "--stats",
                "--json",
            ])
            .output()
            .unwrap();
        if !out.status.success() {
            failed.push(format!(
                "t{t}: exit {:?}: {}",
                out.status.code(),
                String::from_utf8_lossy(&out.stderr)
                    .lines()
                    .last()
                    .unwrap_or("")
            ));
        }
        // The JSON stats object (the console may wrap it over several lines).
        let stdout = String::from_utf8_lossy(&out.stdout).replace('\n', "");
        let stats = stdout
            .find('{')
            .zip(stdout.rfind('}'))
            .and_then(|(a, b)| serde_json::from_str::<serde_json::Value>(&stdout[a..=b]).ok());
        match stats {
            Some(j) => {
                let n = |k: &str| j[k].as_u64().unwrap_or(0);
                let d = n("exclusive_A") + n("exclusive_B") + n("updated");
                reladiff_diffs += d;
                println!(
                    "  reladiff t{t}: {} / {} rows, {d} differences",
                    n("rows_A"),
                    n("rows_B")
                );
            }
            None => println!("  reladiff t{t}: no stats in its output: {stdout}"),
        }
    }
    let took = started.elapsed();
    let rate = compared as f64 / took.as_secs_f64();
    if failed.is_empty() {
        println!(
            "reladiff: {compared} rows in {:.2}s = {rate:.0} rows/s, {reladiff_diffs} differences \
             reported on the identical tables",
            took.as_secs_f64()
        );
        println!(
            "ratio my2pg/reladiff (same run): {:.1}x (my2pg {my_rate:.0} rows/s, reladiff {rate:.0} rows/s)",
            my_rate / rate
        );
    } else {
        println!("reladiff failed: {}", failed.join("; "));
    }
}
