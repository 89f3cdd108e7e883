//! Initial-copy benchmark: the demo's shop (five tables with varied types: signed and unsigned
//! integers, DECIMAL, utf8mb4 text with emoji, TEXT, DATETIME(6), TIMESTAMP, ENUM, SET, JSON,
//! BLOB, BIT, NULLs), about one million rows, copied MariaDB → PostgreSQL in one run by:
//!
//! - `my2pg sync` until its copy is finished (rows copied and the secondary indexes and
//!   foreign keys built);
//! - the reference pipeline, per table `mariadb --quick -N -B -e 'SELECT *' | psql -c '\copy'`
//!   into tables of `text` columns (cheaper for PostgreSQL than the real types, so the
//!   reference is favoured), then the same keys and indexes built;
//! - pgloader (when installed) on the same database.
//!
//! Also the peak RSS of my2pg, and again on a shop five times larger, to show memory does not
//! grow with table size. `MY2PG_BENCH_SCALE=ci` runs a tiny version (CI:
//! `cargo test --bench snapshot`); `cargo bench --bench snapshot` the full one.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

mod common;

use common::{peak_rss_mib, pg_connect, report};

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable as _;

use my2pg::commands::demo::{SHOP_DDL, TABLES, seed_sql};
use my2pg::harness::{MariaDbOptions, PostgresOptions, Servers, TestDb};

async fn shop(servers: &Servers, name: &str, customers: u64) -> (TestDb, u64) {
    let db = servers.database(name).await.unwrap();
    let mut my = mysql_async::Conn::from_url(db.mysql_db_url.as_str())
        .await
        .unwrap();
    my.query_drop(SHOP_DDL).await.unwrap();
    for sql in seed_sql(customers) {
        my.query_drop(sql).await.unwrap();
    }
    let mut rows = 0u64;
    for t in TABLES {
        let n: Option<u64> = my
            .query_first(format!("SELECT COUNT(*) FROM {t}"))
            .await
            .unwrap();
        rows += n.unwrap_or(0);
    }
    let _ = my.disconnect().await;
    (db, rows)
}

/// Runs `my2pg sync` until its copy is done (indexes built); returns the time and peak RSS.
async fn my2pg_copy(db: &TestDb) -> (Duration, f64) {
    let listen = format!("127.0.0.1:{}", my2pg::harness::free_port().unwrap());
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_my2pg"))
        .args(["sync", "--source", &db.mysql_url, "--target", &db.pg_url])
        .args(["--databases", &db.name, "--listen", &listen])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let pg = pg_connect(&db.pg_url).await;
    let mut peak: f64 = 0.0;
    loop {
        peak = peak.max(peak_rss_mib(child.id()));
        let state: Option<String> = pg
            .query_opt(
                "SELECT state FROM my2pg.snapshot WHERE pipeline = 'default'",
                &[],
            )
            .await
            .ok()
            .flatten()
            .map(|r| r.get(0));
        if state.as_deref() == Some("done") {
            break;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "my2pg sync exited during the copy"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let took = started.elapsed();
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    let _ = child.wait();
    (took, peak)
}

/// The reference: per table a `mariadb | psql \copy` pipe into text columns, then the keys.
async fn reference_copy(servers: &Servers, db: &TestDb) -> Duration {
    let pg = pg_connect(&db.pg_url).await;
    let mut my = mysql_async::Conn::from_url(db.mysql_db_url.as_str())
        .await
        .unwrap();
    pg.batch_execute("CREATE SCHEMA reference").await.unwrap();
    let mut indexes = Vec::new();
    let mut selects = Vec::new();
    for t in TABLES {
        let cols: Vec<(String, String)> = my
            .query(format!(
                "SELECT COLUMN_NAME, DATA_TYPE FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = '{}' \
                 AND TABLE_NAME = '{t}' ORDER BY ORDINAL_POSITION",
                db.name
            ))
            .await
            .unwrap();
        let binary = |ty: &str| ty.contains("blob") || ty.contains("binary") || ty == "bit";
        let defs: Vec<String> = cols
            .iter()
            .map(|(c, ty)| format!("\"{c}\" {}", if binary(ty) { "bytea" } else { "text" }))
            .collect();
        // Binary columns go as hex (what a person writing this pipe does: raw bytes are not
        // text); everything else as MariaDB prints it.
        let select: Vec<String> = cols
            .iter()
            .map(|(c, ty)| {
                if binary(ty) {
                    format!("CONCAT('\\\\\\\\x', HEX(`{c}`))")
                } else {
                    format!("`{c}`")
                }
            })
            .collect();
        selects.push(select.join(", "));
        pg.batch_execute(&format!("CREATE TABLE reference.{t} ({})", defs.join(", ")))
            .await
            .unwrap();
        let keys: Vec<(String, i64, String)> = my
            .query(format!(
                "SELECT INDEX_NAME, NON_UNIQUE, GROUP_CONCAT(CONCAT('\"', COLUMN_NAME, '\"') ORDER BY SEQ_IN_INDEX) \
                 FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = '{}' AND TABLE_NAME = '{t}' \
                 GROUP BY INDEX_NAME, NON_UNIQUE",
                db.name
            ))
            .await
            .unwrap();
        for (name, non_unique, cols) in keys {
            indexes.push(if name == "PRIMARY" {
                format!("ALTER TABLE reference.{t} ADD PRIMARY KEY ({cols})")
            } else if non_unique == 0 {
                format!("CREATE UNIQUE INDEX ON reference.{t} ({cols})")
            } else {
                format!("CREATE INDEX ON reference.{t} ({cols})")
            });
        }
    }
    let port = servers.mariadb.as_ref().map_or(3306, |m| m.port());
    let started = Instant::now();
    for (t, select) in TABLES.iter().zip(&selects) {
        // Two processes and a pipe, no shell: nothing in the SQL is re-read by `sh`.
        let mut reader = Command::new("mariadb")
            .args([
                "--host",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--user",
                "root",
            ])
            .args(["--quick", "-N", "-B", &db.name, "-e"])
            .arg(format!("SELECT {select} FROM {t}"))
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let out = Command::new("psql")
            .arg(&db.pg_url)
            .args(["-q", "-v", "ON_ERROR_STOP=1", "-c"])
            .arg(format!(
                "\\copy reference.{t} FROM STDIN WITH (NULL 'NULL')"
            ))
            .stdin(reader.stdout.take().unwrap())
            .output()
            .unwrap();
        assert!(reader.wait().unwrap().success(), "mariadb failed on {t}");
        assert!(
            out.status.success(),
            "psql \\copy {t}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    for i in &indexes {
        pg.batch_execute(i).await.unwrap();
    }
    let took = started.elapsed();
    // The reference counts only if it copied everything.
    for t in TABLES {
        let (n,): (i64,) = {
            let r = pg
                .query_one(&format!("SELECT count(*) FROM reference.{t}"), &[])
                .await
                .unwrap();
            (r.get(0),)
        };
        let want: Option<u64> = my
            .query_first(format!("SELECT COUNT(*) FROM {t}"))
            .await
            .unwrap();
        assert_eq!(
            Some(n as u64),
            want,
            "the reference copied a wrong count of {t}"
        );
    }
    took
}

fn pgloader(servers: &Servers, db: &TestDb, pg_db: &str) -> Option<(Duration, String)> {
    if Command::new("pgloader").arg("--version").output().is_err() {
        return None;
    }
    let port = servers.mariadb.as_ref().map_or(3306, |m| m.port());
    let pg_url = db
        .pg_url
        .replace(&format!("/{}", db.name), &format!("/{pg_db}"));
    // pgloader 3.6 copies MariaDB's `DEFAULT current_timestamp(3)` as a string literal and then
    // fails to create the table; a CAST rule that drops temporal defaults lets it load (the
    // rows are the same; only that default is lost, which favours pgloader slightly).
    let dir = tempfile::tempdir().unwrap();
    let load = dir.path().join("shop.load");
    std::fs::write(
        &load,
        format!(
            "LOAD DATABASE\n  FROM mysql://root@127.0.0.1:{port}/{}\n  INTO {pg_url}\n\
             CAST type timestamp to timestamptz drop default using zero-dates-to-null,\n     \
             type datetime to timestamptz drop default using zero-dates-to-null;\n",
            db.name
        ),
    )
    .unwrap();
    let started = Instant::now();
    let out = Command::new("pgloader").arg(&load).output().unwrap();
    let took = started.elapsed();
    if !out.status.success() {
        report(&format!(
            "pgloader failed: {}",
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .rev()
                .take(5)
                .collect::<Vec<_>>()
                .join(" | ")
        ));
        return None;
    }
    Some((took, String::from_utf8_lossy(&out.stdout).into_owned()))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let ci = std::env::var("MY2PG_BENCH_SCALE").as_deref() == Ok("ci");
    // 46,000 customers give about one million rows in the five tables.
    let customers = if ci { 700 } else { 46_000 };
    let servers = Servers::start(MariaDbOptions::default(), PostgresOptions::default()).unwrap();
    let (db, rows) = shop(&servers, "shop", customers).await;
    report(&format!(
        "snapshot benchmark: shop of {rows} rows in 5 tables"
    ));

    let (mine, rss) = my2pg_copy(&db).await;
    let r = rows as f64;
    report(&format!(
        "my2pg      {:.2} s = {:.0} rows/s (copy + indexes + foreign keys), peak RSS {rss:.0} MiB",
        mine.as_secs_f64(),
        r / mine.as_secs_f64()
    ));
    let reference = reference_copy(&servers, &db).await;
    report(&format!(
        "reference  {:.2} s = {:.0} rows/s (mariadb --quick | psql \\copy per table, then the same keys); my2pg/reference {:.2} (target ≥ 0.9)",
        reference.as_secs_f64(),
        r / reference.as_secs_f64(),
        reference.as_secs_f64() / mine.as_secs_f64()
    ));
    {
        let pg = pg_connect(
            &servers
                .postgres
                .as_ref()
                .map(|p| p.url("postgres"))
                .unwrap(),
        )
        .await;
        pg.batch_execute("CREATE DATABASE pgl").await.unwrap();
    }
    match pgloader(&servers, &db, "pgl") {
        Some((t, output)) => {
            // pgloader exits 0 after skipping tables it cannot load: count what it wrote.
            let url = db.pg_url.replace(&format!("/{}", db.name), "/pgl");
            let pg = pg_connect(&url).await;
            let mut copied = 0i64;
            for row in pg
                .query(
                    "SELECT format('%I.%I', table_schema, table_name) FROM information_schema.tables \
                     WHERE table_type = 'BASE TABLE' AND table_schema NOT IN ('pg_catalog', 'information_schema')",
                    &[],
                )
                .await
                .unwrap()
            {
                let name: String = row.get(0);
                let n: i64 = pg
                    .query_one(&format!("SELECT count(*) FROM {name}"), &[])
                    .await
                    .unwrap()
                    .get(0);
                copied += n;
            }
            report(&format!(
                "pgloader   {:.2} s = {:.0} rows/s, {copied} of {rows} rows copied; my2pg/pgloader {:.2} (target ≥ 2.5)",
                t.as_secs_f64(),
                r / t.as_secs_f64(),
                t.as_secs_f64() / mine.as_secs_f64()
            ));
            if copied != rows as i64 {
                let tail: Vec<&str> = output.lines().rev().take(25).collect();
                report(&format!(
                    "pgloader   its summary:\n{}",
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                ));
            }
        }
        None => report("pgloader   not run (not installed or failed; apt install pgloader)"),
    }

    // Memory does not grow with the table: the same copy of a shop five times larger.
    let (big, big_rows) = shop(&servers, "shop5", customers * 5).await;
    let (t5, rss5) = my2pg_copy(&big).await;
    report(&format!(
        "5× shop    {big_rows} rows in {:.2} s = {:.0} rows/s, peak RSS {rss5:.0} MiB (1×: {rss:.0} MiB; target < 300 MiB)",
        t5.as_secs_f64(),
        big_rows as f64 / t5.as_secs_f64()
    ));
}
