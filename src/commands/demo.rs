//! `my2pg demo`: the whole job on throwaway servers, in about a minute.
//!
//! Starts a MariaDB and a PostgreSQL through the test harness (the same code the tests use),
//! creates a sample shop with varied column types, starts a live write load, runs `sync`
//! (copy, then streaming) with a live view, stops the writes, waits for the applier to catch
//! up, runs `verify`, prints a summary and stops the servers (`--keep`: leaves everything
//! running until Ctrl-C and prints what to try).

use std::io::{IsTerminal as _, Write as _};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow};
use mysql_async::prelude::Queryable as _;
use rand::Rng as _;
use tokio::sync::watch;

use crate::config::{Config, Overrides};
use crate::harness::{MariaDbOptions, PostgresOptions, Servers, TestDb};
use crate::health::Health;
use crate::metrics::Metrics;
use crate::sync::{self, Exit, SyncOptions};

/// How much data the sample shop holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Size {
    /// About 45,000 rows; live writes at ~100 transactions/s for 15 s.
    Small,
    /// About 450,000 rows; ~300 transactions/s for 30 s.
    Medium,
    /// About 4.5 million rows; ~1,000 transactions/s for 60 s.
    Large,
}

impl Size {
    /// Rows of `customers`; the other tables scale with it.
    fn customers(self) -> u64 {
        match self {
            Size::Small => 2_000,
            Size::Medium => 20_000,
            Size::Large => 200_000,
        }
    }

    fn tx_per_second(self) -> u64 {
        match self {
            Size::Small => 100,
            Size::Medium => 300,
            Size::Large => 1_000,
        }
    }

    fn live_seconds(self) -> u64 {
        match self {
            Size::Small => 15,
            Size::Medium => 30,
            Size::Large => 60,
        }
    }
}

/// The sample shop: customers, products, orders, order items and carts, with the types a
/// real shop has (unsigned keys, DECIMAL money, DATETIME(6) and TIMESTAMP(3), JSON, ENUM, SET,
/// TINYINT(1) flags, BIT, BINARY(16) session ids, BLOB thumbnails, utf8mb4 names with emoji).
pub const SHOP_DDL: &str = r"
CREATE TABLE customers (
  id INT UNSIGNED AUTO_INCREMENT PRIMARY KEY,
  email VARCHAR(190) NOT NULL,
  name VARCHAR(100) NOT NULL,
  country CHAR(2) NOT NULL,
  is_vip TINYINT(1) NOT NULL DEFAULT 0,
  birthday DATE NULL,
  created_at DATETIME(6) NOT NULL,
  prefs JSON NULL,
  UNIQUE KEY email (email)
) CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
CREATE TABLE products (
  id INT UNSIGNED AUTO_INCREMENT PRIMARY KEY,
  sku VARCHAR(32) NOT NULL,
  title VARCHAR(200) NOT NULL,
  price DECIMAL(10,2) NOT NULL,
  weight_kg FLOAT NULL,
  tags SET('new','sale','eco','gift') NOT NULL DEFAULT '',
  thumbnail BLOB NULL,
  updated_at TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3),
  UNIQUE KEY sku (sku)
) CHARACTER SET utf8mb4;
CREATE TABLE orders (
  id BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY,
  customer_id INT UNSIGNED NOT NULL,
  status ENUM('cart','paid','shipped','delivered','cancelled') NOT NULL,
  total DECIMAL(12,2) NOT NULL,
  placed_at DATETIME NOT NULL,
  note TEXT NULL,
  KEY customer (customer_id),
  CONSTRAINT orders_customer FOREIGN KEY (customer_id) REFERENCES customers (id)
) CHARACTER SET utf8mb4;
CREATE TABLE order_items (
  order_id BIGINT UNSIGNED NOT NULL,
  line SMALLINT UNSIGNED NOT NULL,
  product_id INT UNSIGNED NOT NULL,
  qty INT NOT NULL,
  unit_price DECIMAL(10,2) NOT NULL,
  PRIMARY KEY (order_id, line),
  KEY product (product_id)
) CHARACTER SET utf8mb4;
CREATE TABLE carts (
  session_id BINARY(16) PRIMARY KEY,
  customer_id INT UNSIGNED NULL,
  items JSON NOT NULL,
  expires_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
  flags BIT(8) NOT NULL DEFAULT b'0'
) CHARACTER SET utf8mb4;
";

/// The shop's tables, in the order the summary lists them.
pub const TABLES: [&str; 5] = ["customers", "products", "orders", "order_items", "carts"];

/// Fills the shop with `n` customers and proportional other rows, set-based through
/// MariaDB's SEQUENCE engine (`seq_1_to_N`), so seeding takes seconds.
pub fn seed_sql(n: u64) -> Vec<String> {
    let products = (n / 4).max(50);
    let orders = n * 5;
    let carts = n / 2;
    vec![
        format!(
            "INSERT INTO customers (id, email, name, country, is_vip, birthday, created_at, prefs) \
             SELECT seq, CONCAT('user', seq, '@example.com'), \
               CONCAT(ELT(1 + seq % 6, 'Ann', 'Björn', 'Chloé', 'Dmitri', '美咲', 'Zoë 🌻'), ' #', seq), \
               ELT(1 + seq % 5, 'US', 'DE', 'FR', 'JP', 'BR'), seq % 10 = 0, \
               IF(seq % 7 = 0, NULL, DATE '1950-01-01' + INTERVAL (seq * 37 % 20000) DAY), \
               TIMESTAMP '2024-01-01 00:00:00' + INTERVAL (seq * 7919) SECOND + INTERVAL (seq % 1000000) MICROSECOND, \
               IF(seq % 3 = 0, NULL, JSON_OBJECT('newsletter', seq % 2 = 0, 'lang', ELT(1 + seq % 3, 'en', 'de', 'ja'), 'score', seq / 7)) \
             FROM seq_1_to_{n}"
        ),
        format!(
            "INSERT INTO products (id, sku, title, price, weight_kg, tags, thumbnail, updated_at) \
             SELECT seq, CONCAT('SKU-', LPAD(seq, 6, '0')), CONCAT('Product ', seq, ' — ', ELT(1 + seq % 4, 'mug', 'lamp', 'chair', 'tea')), \
               ROUND(0.99 + (seq * 13 % 50000) / 100, 2), IF(seq % 5 = 0, NULL, (seq % 900) / 100), \
               ELT(1 + seq % 5, '', 'new', 'sale,eco', 'gift', 'new,sale,eco,gift'), \
               IF(seq % 4 = 0, NULL, UNHEX(SHA2(seq, 256))), \
               TIMESTAMP '2024-06-01 12:00:00.000' + INTERVAL (seq * 61) SECOND \
             FROM seq_1_to_{products}"
        ),
        format!(
            "INSERT INTO orders (id, customer_id, status, total, placed_at, note) \
             SELECT seq, 1 + seq % {n}, ELT(1 + seq % 5, 'cart', 'paid', 'shipped', 'delivered', 'cancelled'), \
               ROUND((seq * 7 % 100000) / 100, 2), TIMESTAMP '2024-01-01 00:00:00' + INTERVAL (seq * 613) SECOND, \
               IF(seq % 9 = 0, CONCAT('leave at the door ', REPEAT('.', seq % 20)), NULL) \
             FROM seq_1_to_{orders}"
        ),
        format!(
            "INSERT INTO order_items (order_id, line, product_id, qty, unit_price) \
             SELECT o.seq, l.seq, 1 + (o.seq * l.seq) % {products}, 1 + (o.seq + l.seq) % 4, \
               ROUND(0.99 + ((o.seq * l.seq) % 5000) / 100, 2) \
             FROM seq_1_to_{orders} o JOIN seq_1_to_3 l"
        ),
        format!(
            "INSERT INTO carts (session_id, customer_id, items, expires_at, flags) \
             SELECT UNHEX(MD5(seq)), IF(seq % 3 = 0, NULL, 1 + seq % {n}), \
               JSON_ARRAY(JSON_OBJECT('product', 1 + seq % {products}, 'qty', 1 + seq % 3)), \
               TIMESTAMP '2025-01-01 00:00:00' + INTERVAL seq MINUTE, seq % 256 \
             FROM seq_1_to_{carts}"
        ),
    ]
}

/// One live-write transaction, like a shop's traffic: orders placed with their lines, orders
/// moving through their states, prices changing, carts coming and going.
fn live_transaction(customers: u64, products: u64, next_order: u64) -> String {
    let mut rng = rand::rng();
    let c = rng.random_range(1..=customers);
    let p = rng.random_range(1..=products);
    let o = rng.random_range(1..next_order.max(2));
    match rng.random_range(0..10) {
        0..=3 => {
            let lines = rng.random_range(1..=3u64);
            let mut sql = format!(
                "BEGIN; INSERT INTO orders (id, customer_id, status, total, placed_at, note) \
                 VALUES ({next_order}, {c}, 'paid', {}.{:02}, NOW(), NULL);",
                rng.random_range(1..500),
                rng.random_range(0..100)
            );
            for l in 1..=lines {
                sql.push_str(&format!(
                    " INSERT INTO order_items VALUES ({next_order}, {l}, {}, {}, {}.99);",
                    rng.random_range(1..=products),
                    rng.random_range(1..5),
                    rng.random_range(1..90)
                ));
            }
            sql.push_str(" COMMIT");
            sql
        }
        4..=5 => format!(
            "UPDATE orders SET status = ELT(1 + FLOOR(RAND() * 5), 'cart', 'paid', 'shipped', 'delivered', 'cancelled'), \
             note = CONCAT(COALESCE(note, ''), '✓') WHERE id = {o}"
        ),
        6 => format!(
            "UPDATE products SET price = ROUND(price * 1.01 + 0.01, 2), tags = 'sale' WHERE id = {p}"
        ),
        7 => format!(
            "INSERT INTO carts (session_id, customer_id, items, expires_at) \
             VALUES (UNHEX(MD5(RAND())), {c}, JSON_ARRAY(JSON_OBJECT('product', {p}, 'qty', 1)), NOW() + INTERVAL 1 DAY)"
        ),
        8 => format!(
            "BEGIN; DELETE FROM order_items WHERE order_id = {o}; DELETE FROM orders WHERE id = {o}; COMMIT"
        ),
        _ => format!(
            "UPDATE customers SET prefs = JSON_SET(COALESCE(prefs, '{{}}'), '$.seen', NOW(6)), is_vip = NOT is_vip WHERE id = {c}"
        ),
    }
}

/// Lag and rate samples taken while streaming.
#[derive(Default)]
struct Samples {
    lag: Vec<f64>,
}

fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(i.min(sorted.len() - 1)).copied()
}

/// Runs the demo; returns the exit code (0 when verify found the target identical).
pub async fn run(size: Size, keep: bool, seconds: Option<u64>) -> Result<u8> {
    let started = Instant::now();
    let say = crate::exit::emit;
    say("my2pg demo: a sample shop moves from MariaDB to PostgreSQL while it takes orders.");
    say("");
    say("[1/6] starting a throwaway MariaDB (binlog in ROW format, GTIDs) and PostgreSQL …");
    let servers = tokio::task::spawn_blocking(|| {
        Servers::start(MariaDbOptions::default(), PostgresOptions::default())
    })
    .await
    .context("starting the servers")?
    .context(
        "starting the servers (MariaDB and PostgreSQL must be installed: run scripts/setup)",
    )?;
    let db = servers.database("shop").await?;
    say(&format!("      source {}", db.mysql_db_url));
    say(&format!("      target {}", db.pg_url));

    let n = size.customers();
    say(&format!(
        "[2/6] creating the sample shop ({} customers, {} products, {} orders, {} order lines, {} carts) …",
        n,
        (n / 4).max(50),
        n * 5,
        n * 15,
        n / 2
    ));
    let mut my = mysql_async::Conn::from_url(db.mysql_db_url.as_str()).await?;
    my.query_drop(SHOP_DDL).await.context("creating the shop")?;
    for sql in seed_sql(n) {
        my.query_drop(&sql).await.context("seeding the shop")?;
    }

    say("[3/6] starting live writes (orders, status changes, price changes, carts) …");
    let writing = Arc::new(AtomicBool::new(true));
    let written = Arc::new(AtomicU64::new(0));
    let writer = tokio::spawn(live_writes(
        db.mysql_db_url.clone(),
        size,
        writing.clone(),
        written.clone(),
    ));

    say("[4/6] my2pg sync: copying the tables, then streaming every change …");
    let cfg = demo_config(&db)?;
    let metrics = Metrics::new()?;
    let health = Health::new();
    let ctx = sync::context(&cfg, metrics.clone(), health.clone())?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let sync_task = tokio::spawn(sync::run(ctx, SyncOptions::default(), stop_rx));
    let copy_started = Instant::now();
    // The copy: sync draws its own progress bars; wait until it streams.
    while health.phase() != crate::health::Phase::Streaming {
        if sync_task.is_finished() {
            return finish_sync(sync_task).await;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let copy_took = copy_started.elapsed();
    say(&format!(
        "      copied {} rows in {:.1} s; streaming",
        metrics.snapshot_rows_total(),
        copy_took.as_secs_f64()
    ));

    // Streaming with live writes: one status line per second.
    let live = Duration::from_secs(seconds.unwrap_or_else(|| size.live_seconds()));
    let mut samples = Samples::default();
    let stream_started = Instant::now();
    let events_at_start = metrics.row_events_applied_total();
    let tty = std::io::stdout().is_terminal();
    let mut last_events = events_at_start;
    let mut last_tick = Instant::now();
    while stream_started.elapsed() < live {
        tokio::time::sleep(Duration::from_millis(250)).await;
        if let Some(l) = metrics.lag_seconds() {
            samples.lag.push(l);
        }
        if sync_task.is_finished() {
            writing.store(false, Ordering::Relaxed);
            return finish_sync(sync_task).await;
        }
        if last_tick.elapsed() >= Duration::from_secs(1) {
            let events = metrics.row_events_applied_total();
            let rate = (events - last_events) as f64 / last_tick.elapsed().as_secs_f64();
            let line = format!(
                "      streaming  {:>4.0} s  {:>7.0} events/s  lag {:>6}  applied {:>8}  source writes {:>7}",
                stream_started.elapsed().as_secs_f64(),
                rate,
                metrics
                    .lag_seconds()
                    .map_or("-".to_owned(), |l| format!("{l:.2} s")),
                events - events_at_start,
                written.load(Ordering::Relaxed)
            );
            if tty {
                let mut out = std::io::stdout().lock();
                let _ = write!(out, "\r{line}");
                let _ = out.flush();
            } else {
                say(&line);
            }
            last_events = events;
            last_tick = Instant::now();
        }
    }
    if tty {
        say("");
    }
    writing.store(false, Ordering::Relaxed);
    let writes = writer.await.context("the write load")??;

    say("[5/6] writes stopped; waiting for the applier to catch up …");
    let caught_up = catch_up(&db, &cfg.sync.pipeline, Duration::from_secs(120)).await?;
    let stream_secs = stream_started.elapsed().as_secs_f64();
    let events = metrics.row_events_applied_total() - events_at_start;
    say(&format!(
        "      caught up in {:.1} s",
        caught_up.as_secs_f64()
    ));

    say("[6/6] my2pg verify: comparing every row of source and target …");
    let verify_started = Instant::now();
    let report = verify_shop(&cfg).await?;
    let verify_took = verify_started.elapsed();

    samples.lag.sort_by(f64::total_cmp);
    let fmt_lag = |p| {
        percentile(&samples.lag, p).map_or("n/a".to_owned(), |l| format!("{:.0} ms", l * 1000.0))
    };
    say("");
    say("summary");
    let (pg, conn) = tokio_postgres::connect(&db.pg_url, tokio_postgres::NoTls).await?;
    let conn_task = tokio::spawn(conn);
    for t in TABLES {
        let n: i64 = pg
            .query_one(&format!("SELECT count(*) FROM shop.{t}"), &[])
            .await?
            .get(0);
        say(&format!("  {t:<12} {n:>9} rows on the target"));
    }
    drop(pg);
    let _ = conn_task.await;
    say(&format!(
        "  copy         {:.1} s for {} rows",
        copy_took.as_secs_f64(),
        metrics.snapshot_rows_total()
    ));
    say(&format!(
        "  streaming    {events} row events from {writes} source transactions in {stream_secs:.1} s \
         ({:.0} events/s, the rate the shop wrote at)",
        events as f64 / stream_secs.max(0.001)
    ));
    say(&format!(
        "  lag          p50 {}  p99 {}  (heartbeat: source commit to target commit)",
        fmt_lag(0.5),
        fmt_lag(0.99)
    ));
    say(&format!(
        "  verify       {} in {:.1} s",
        report.summary,
        verify_took.as_secs_f64()
    ));
    say(&format!(
        "  total        {:.1} s",
        started.elapsed().as_secs_f64()
    ));

    if keep {
        let server = crate::http::serve(&cfg.http, metrics.clone(), health.clone()).await?;
        say("");
        say("--keep: the servers and sync keep running until Ctrl-C. Try, in another terminal:");
        say(&format!(
            "  mariadb --host 127.0.0.1 --port {} --user root shop -e \"UPDATE products SET price = 1 WHERE id = 1\"",
            servers.mariadb.as_ref().map_or(0, |m| m.port())
        ));
        say(&format!(
            "  psql '{}' -c 'SELECT id, price FROM shop.products WHERE id = 1'",
            db.pg_url
        ));
        say(&format!(
            "  my2pg verify --source {} --target {} --databases shop",
            db.mysql_url, db.pg_url
        ));
        say(&format!(
            "  curl -s http://{}/metrics | grep my2pg_",
            server.local_addr()
        ));
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            r = async {
                loop {
                    if sync_task.is_finished() { break; }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            } => { let () = r; }
        }
        let _ = server.shutdown().await;
    }
    let _ = stop_tx.send(true);
    let exit = sync_task.await.context("sync task")??;
    debug_assert_eq!(exit, Exit::Stopped);
    drop(servers);
    say(if report.identical {
        "\nthe target equals the source, row for row."
    } else {
        "\nverify found differences (listed above): this is a bug; please report it."
    });
    Ok(if report.identical {
        crate::exit::OK
    } else {
        crate::exit::DIFFERENT
    })
}

async fn finish_sync(task: tokio::task::JoinHandle<Result<Exit>>) -> Result<u8> {
    match task.await.context("sync task")? {
        Ok(_) => Err(anyhow!("sync stopped before the demo ended")),
        Err(e) => Err(e.context("sync failed during the demo")),
    }
}

fn demo_config(db: &TestDb) -> Result<Config> {
    let overrides = Overrides {
        source: Some(db.mysql_url.clone()),
        target: Some(db.pg_url.clone()),
        databases: vec![db.name.clone()],
        include: vec![],
        exclude: vec![],
    };
    let mut cfg = Config::load_with_env(None, &overrides, &|_| None)?;
    cfg.http.listen = "127.0.0.1:0"
        .parse()
        .map_err(|e| anyhow!("listen address: {e}"))?;
    cfg.sync.heartbeat_interval_ms = 200;
    Ok(cfg)
}

/// The write load: about `tx_per_second` transactions per second until `writing` clears.
/// Returns the number of transactions written.
async fn live_writes(
    url: String,
    size: Size,
    writing: Arc<AtomicBool>,
    written: Arc<AtomicU64>,
) -> Result<u64> {
    let mut c = mysql_async::Conn::from_url(url.as_str()).await?;
    let customers = size.customers();
    let products = (customers / 4).max(50);
    let mut next_order = customers * 5 + 1;
    let period = Duration::from_micros(1_000_000 / size.tx_per_second());
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while writing.load(Ordering::Relaxed) {
        tick.tick().await;
        let sql = live_transaction(customers, products, next_order);
        if sql.contains("INSERT INTO orders") {
            next_order += 1;
        }
        c.query_drop(&sql).await.context("live write")?;
        written.fetch_add(1, Ordering::Relaxed);
    }
    let _ = c.disconnect().await;
    Ok(written.load(Ordering::Relaxed))
}

/// Waits until the target's checkpoint is at or after the source's current position.
async fn catch_up(db: &TestDb, pipeline: &str, timeout: Duration) -> Result<Duration> {
    let started = Instant::now();
    let mut my = mysql_async::Conn::from_url(db.mysql_url.as_str()).await?;
    let target = cdc_reader::binlog::stream::current_position(&mut my).await?;
    let _ = my.disconnect().await;
    let (pg, conn) = tokio_postgres::connect(&db.pg_url, tokio_postgres::NoTls).await?;
    let conn_task = tokio::spawn(conn);
    loop {
        if let Some(cp) = sink::checkpoint::read(&pg, pipeline).await?
            && cp.position.is_at_or_after(&target) == Some(true)
        {
            break;
        }
        if started.elapsed() > timeout {
            return Err(anyhow!(
                "the applier did not reach the source position {target} within {timeout:?}"
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(pg);
    let _ = conn_task.await;
    Ok(started.elapsed())
}

/// What the demo reports of verify.
struct VerifyOutcome {
    identical: bool,
    summary: String,
}

/// `my2pg verify` over the shop: every row of the source, through the same mapping as sync,
/// against the target. The report is printed when it finds anything.
async fn verify_shop(cfg: &Config) -> Result<VerifyOutcome> {
    let (tables, missing) = crate::commands::verify::source_tables(cfg, &[]).await?;
    let prepared = crate::commands::verify::prepare(cfg, &tables, &missing)?;
    let opts = verifier::VerifyOptions {
        parallel: 2,
        max_diffs: 10,
        pipeline: cfg.sync.pipeline.clone(),
        rechecks: 1,
        catch_up_timeout: Duration::from_secs(30),
        max_rows_per_second: None,
        record: true,
        pushdown: true,
    };
    let report = verifier::verify(
        &cfg.source_options()?,
        &cfg.target_options()?,
        prepared,
        &opts,
    )
    .await?;
    let identical = report.exit_code == crate::exit::OK;
    if !identical {
        crate::exit::emit(&report.render_text());
    }
    let t = &report.totals;
    Ok(VerifyOutcome {
        identical,
        summary: if identical {
            format!(
                "identical: {} rows compared in {} tables",
                t.rows_compared,
                report.tables.len()
            )
        } else {
            format!(
                "DIFFERENT: {} missing, {} extra, {} differing of {} rows",
                t.missing_in_target, t.extra_in_target, t.differing, t.rows_compared
            )
        },
    })
}
