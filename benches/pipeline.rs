//! Pipeline benchmarks on this machine's throwaway servers (the test harness), each measured
//! against a reference in the same run because the machine is shared and noisy:
//!
//! - **apply**: N row events on an 8-column table (≈50 % inserts, 40 % updates, 10 % deletes,
//!   transactions of 1–100 rows) written while sync is stopped, then streamed and applied by
//!   `my2pg sync`; events/s. Reference: PostgreSQL writing the same number of rows itself
//!   (`INSERT … SELECT generate_series`), the target's ceiling.
//! - **lag**: a steady 5,000 events/s while sync streams; heartbeat lag p50/p99.
//! - **large transaction**: one source transaction of N rows; peak RSS of my2pg.
//! - **snapshot**: `my2pg sync --snapshot-only` of an N-row table, against
//!   `mariadb --quick --batch | psql \copy` of the same table.
//! - **decode**: `my2pg inspect-binlog` of the apply run's binlog, against
//!   `mariadb-binlog --verbose` of the same file.
//! - **pg_chameleon** (full size only, when installed): the same workload generator, with
//!   `min(N, 100,000)` events, replicated by pg_chameleon 2 (`copy_mode: direct`,
//!   `binlog_row_metadata=FULL`, a non-root MySQL user, run as the `nobody` OS user because it
//!   refuses root); events/s next to my2pg's apply rate of this run. Install:
//!   `/usr/bin/python3 -m venv /tmp/chameleon-venv && /tmp/chameleon-venv/bin/pip install
//!   pg_chameleon` (a venv of Debian's python, which `nobody` can run), or point
//!   `MY2PG_CHAMELEON` at the `chameleon` script.
//!
//! `MY2PG_BENCH_SCALE=ci` runs everything small (CI runs it through `cargo test --bench
//! pipeline`); the default is the full size (1,000,000 events / rows):
//! `cargo bench --bench pipeline`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

mod common;

use common::{peak_rss_mib, pg_connect, report};

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable as _;
use rand::Rng as _;

use my2pg::harness::{MariaDbOptions, PostgresOptions, Servers, TestDb};
use schemas::SourcePosition;

struct Scale {
    events: u64,
    lag_seconds: u64,
    large_tx_rows: u64,
    snapshot_rows: u64,
}

fn scale() -> Scale {
    if std::env::var("MY2PG_BENCH_SCALE").as_deref() == Ok("ci") {
        Scale {
            events: 20_000,
            lag_seconds: 3,
            large_tx_rows: 20_000,
            snapshot_rows: 20_000,
        }
    } else {
        Scale {
            events: 1_000_000,
            lag_seconds: 20,
            large_tx_rows: 1_000_000,
            snapshot_rows: 1_000_000,
        }
    }
}

const TABLE: &str = "CREATE TABLE t (id BIGINT PRIMARY KEY, a INT NOT NULL, b BIGINT, \
    c VARCHAR(64), d DECIMAL(12,2), e DATETIME(6), f DOUBLE, g TINYINT)";

fn row(id: u64) -> String {
    let mut r = rand::rng();
    format!(
        "({id}, {}, {}, 'name-{id}-{}', {}.{:02}, '2024-05-{:02} 10:{:02}:{:02}.{:06}', {}, {})",
        r.random_range(0..1_000_000),
        r.random_range(0..i64::MAX / 2),
        r.random_range(0..1000),
        r.random_range(0..100_000),
        r.random_range(0..100),
        r.random_range(1..29),
        r.random_range(0..60),
        r.random_range(0..60),
        r.random_range(0..1_000_000),
        r.random::<f64>(),
        r.random_range(-128..128),
    )
}

/// The write workload: returns the events written. `pace` spreads transactions evenly at
/// that many events per second.
async fn workload(
    url: &str,
    events: u64,
    next_id: &mut u64,
    live: &mut Vec<u64>,
    pace: Option<u64>,
) -> u64 {
    let mut c = mysql_async::Conn::from_url(url).await.unwrap();
    let started = Instant::now();
    let mut written = 0u64;
    while written < events {
        let size = rand::rng().random_range(1..=100u64).min(events - written);
        let mut ins = Vec::new();
        let mut upd = Vec::new();
        let mut del = Vec::new();
        for _ in 0..size {
            let kind = rand::rng().random_range(0..10);
            if live.len() < 100 || kind < 5 {
                *next_id += 1;
                ins.push(*next_id);
            } else if kind < 9 {
                let i = rand::rng().random_range(0..live.len());
                upd.push(live[i]);
            } else {
                let i = rand::rng().random_range(0..live.len());
                del.push(live.swap_remove(i));
            }
        }
        // Updates and deletes of ids that the same transaction deletes would not be events.
        upd.retain(|u| !del.contains(u));
        upd.sort_unstable();
        upd.dedup();
        let mut sql = String::from("BEGIN;");
        if !ins.is_empty() {
            sql.push_str("INSERT INTO t VALUES ");
            sql.push_str(&ins.iter().map(|&i| row(i)).collect::<Vec<_>>().join(","));
            sql.push(';');
        }
        let list = |v: &[u64]| v.iter().map(u64::to_string).collect::<Vec<_>>().join(",");
        if !upd.is_empty() {
            sql.push_str(&format!(
                "UPDATE t SET a = a + 1, c = CONCAT('u', id, '-', a), d = d + 0.01 WHERE id IN ({});",
                list(&upd)
            ));
        }
        if !del.is_empty() {
            sql.push_str(&format!("DELETE FROM t WHERE id IN ({});", list(&del)));
        }
        sql.push_str("COMMIT");
        c.query_drop(&sql).await.unwrap();
        live.extend(&ins);
        written += (ins.len() + upd.len() + del.len()) as u64;
        if let Some(rate) = pace {
            let due = Duration::from_secs_f64(written as f64 / rate as f64);
            if let Some(wait) = due.checked_sub(started.elapsed()) {
                tokio::time::sleep(wait).await;
            }
        }
    }
    let _ = c.disconnect().await;
    written
}

fn spawn_sync(db: &TestDb, listen: &str, extra: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_my2pg"))
        .args(["sync", "--source", &db.mysql_url, "--target", &db.pg_url])
        .args(["--databases", &db.name, "--listen", listen])
        .args(extra)
        .env("MY2PG_SYNC__HEARTBEAT_INTERVAL_MS", "100")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap()
}

fn stop(child: &mut Child) {
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    let _ = child.wait();
}

async fn source_position(db: &TestDb) -> SourcePosition {
    let mut c = mysql_async::Conn::from_url(db.mysql_url.as_str())
        .await
        .unwrap();
    let p = cdc_reader::binlog::stream::current_position(&mut c)
        .await
        .unwrap();
    let _ = c.disconnect().await;
    p
}

/// Waits until the checkpoint is at or after `target`; returns when that happened.
async fn wait_applied(
    pg: &tokio_postgres::Client,
    target: &SourcePosition,
    timeout: Duration,
) -> Instant {
    let started = Instant::now();
    loop {
        if let Ok(Some(cp)) = sink::checkpoint::read(pg, "default").await
            && cp.position.is_at_or_after(target) == Some(true)
        {
            return Instant::now();
        }
        assert!(
            started.elapsed() < timeout,
            "not applied within {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn free_addr() -> String {
    format!("127.0.0.1:{}", my2pg::harness::free_port().unwrap())
}

async fn scrape(addr: &str, metric: &str) -> Option<f64> {
    let body = reqwest::get(format!("http://{addr}/metrics"))
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    body.lines()
        .find(|l| l.starts_with(metric) && !l.starts_with('#'))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

fn percentile(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(((v.len().saturating_sub(1)) as f64 * p).round() as usize)
        .copied()
        .unwrap_or(f64::NAN)
}

fn time_cmd(cmd: &str) -> Duration {
    let started = Instant::now();
    let out = Command::new("sh").arg("-c").arg(cmd).output().unwrap();
    assert!(
        out.status.success(),
        "{cmd}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    started.elapsed()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let s = scale();
    let servers = Servers::start(MariaDbOptions::default(), PostgresOptions::default()).unwrap();
    let db = servers.database("bench").await.unwrap();
    let mut my = mysql_async::Conn::from_url(db.mysql_db_url.as_str())
        .await
        .unwrap();
    my.query_drop(TABLE).await.unwrap();
    my.query_drop("CREATE TABLE big (id BIGINT PRIMARY KEY, v VARCHAR(40), n INT)")
        .await
        .unwrap();
    let pg = pg_connect(&db.pg_url).await;
    report(&format!("pipeline benchmark ({} events)", s.events));

    // --- apply ---------------------------------------------------------------------------
    // Copy the empty tables, so streaming starts from here; then write the events.
    let listen = free_addr();
    let mut child = spawn_sync(&db, &listen, &["--snapshot-only"]);
    assert!(child.wait().unwrap().success(), "snapshot-only failed");
    let (mut next_id, mut live) = (0u64, Vec::new());
    let gen_started = Instant::now();
    let events = workload(&db.mysql_db_url, s.events, &mut next_id, &mut live, None).await;
    let gen_took = gen_started.elapsed();
    let end = source_position(&db).await;
    let started = Instant::now();
    let mut child = spawn_sync(&db, &listen, &[]);
    let done = wait_applied(&pg, &end, Duration::from_secs(1800)).await;
    let apply_took = done - started;
    let apply_rate = events as f64 / apply_took.as_secs_f64();
    // Reference: PostgreSQL writing as many rows itself.
    pg.batch_execute("CREATE TABLE ceiling (id bigint PRIMARY KEY, a int, b bigint, c varchar(64), d numeric(12,2), e timestamp(6), f double precision, g smallint)").await.unwrap();
    let ref_started = Instant::now();
    pg.batch_execute(&format!(
        "INSERT INTO ceiling SELECT g, g % 1000000, g * 7, 'name-' || g, g % 100000 + 0.25, now(), random(), (g % 256) - 128 FROM generate_series(1, {events}) g"
    ))
    .await
    .unwrap();
    let ref_rate = events as f64 / ref_started.elapsed().as_secs_f64();
    let my2pg_apply_rate = apply_rate;
    report(&format!(
        "apply      {events} events in {:.2} s = {apply_rate:.0} events/s (target ≥ 50,000); \
         reference: PostgreSQL inserting {events} rows itself {ref_rate:.0} rows/s; ratio {:.2} \
         (writing the events into MariaDB took {:.1} s)",
        apply_took.as_secs_f64(),
        apply_rate / ref_rate,
        gen_took.as_secs_f64()
    ));

    // --- lag at a steady 5,000 events/s ------------------------------------------------------
    let url = db.mysql_db_url.clone();
    let lag_events = 5_000 * s.lag_seconds;
    let writer = tokio::spawn(async move {
        let written = workload(&url, lag_events, &mut next_id, &mut live, Some(5_000)).await;
        (written, next_id)
    });
    let mut lags = Vec::new();
    while !writer.is_finished() {
        if let Some(l) = scrape(&listen, "my2pg_heartbeat_lag_seconds").await
            && l.is_finite()
        {
            lags.push(l);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (written, _) = writer.await.unwrap();
    let (p50, p99) = (percentile(&mut lags, 0.5), percentile(&mut lags, 0.99));
    report(&format!(
        "lag        {written} events at 5,000/s: p50 {:.0} ms, p99 {:.0} ms ({} samples; target p99 < 1 s)",
        p50 * 1000.0,
        p99 * 1000.0,
        lags.len()
    ));
    let rss_streaming = peak_rss_mib(child.id());

    // --- one large transaction ----------------------------------------------------------------
    let started = Instant::now();
    my.query_drop(format!(
        "INSERT INTO big SELECT seq, CONCAT('large transaction row ', seq), seq % 1000 FROM seq_1_to_{}",
        s.large_tx_rows
    ))
    .await
    .unwrap();
    let end = source_position(&db).await;
    wait_applied(&pg, &end, Duration::from_secs(1800)).await;
    let rss_large = peak_rss_mib(child.id());
    report(&format!(
        "large tx   one transaction of {} rows applied in {:.1} s; peak RSS of my2pg {rss_large:.0} MiB \
         (before it: {rss_streaming:.0} MiB; target < 200 MiB)",
        s.large_tx_rows,
        started.elapsed().as_secs_f64()
    ));
    stop(&mut child);

    // --- decode: my2pg inspect-binlog against mariadb-binlog --verbose -------------------------
    if let Some(m) = &servers.mariadb {
        let file = m.data_dir().join("binlog.000001");
        let mine = time_cmd(&format!(
            "{} inspect-binlog {} --format json > /dev/null",
            env!("CARGO_BIN_EXE_my2pg"),
            file.display()
        ));
        let theirs = time_cmd(&format!(
            "mariadb-binlog --verbose {} > /dev/null",
            file.display()
        ));
        let size = std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0) as f64 / 1048576.0;
        report(&format!(
            "decode     {size:.0} MiB binlog: my2pg inspect-binlog {:.2} s, mariadb-binlog --verbose {:.2} s; ratio {:.2} (>1: my2pg faster)",
            mine.as_secs_f64(),
            theirs.as_secs_f64(),
            theirs.as_secs_f64() / mine.as_secs_f64()
        ));
    }

    // --- snapshot -----------------------------------------------------------------------------
    let snap = servers.database("snap").await.unwrap();
    let mut sm = mysql_async::Conn::from_url(snap.mysql_db_url.as_str())
        .await
        .unwrap();
    sm.query_drop(TABLE).await.unwrap();
    sm.query_drop(format!(
        "INSERT INTO t SELECT seq, seq % 1000000, seq * 7, CONCAT('name-', seq), (seq % 100000) + 0.25, \
         TIMESTAMP '2024-01-01 00:00:00' + INTERVAL seq SECOND, seq / 3, CAST(seq AS SIGNED) % 256 - 128 FROM seq_1_to_{}",
        s.snapshot_rows
    ))
    .await
    .unwrap();
    let started = Instant::now();
    let mut child = spawn_sync(&snap, &free_addr(), &["--snapshot-only"]);
    let pid = child.id();
    let rss = std::thread::spawn(move || {
        let mut peak: f64 = 0.0;
        while Path::new(&format!("/proc/{pid}")).exists() {
            peak = peak.max(peak_rss_mib(pid));
            std::thread::sleep(Duration::from_millis(50));
        }
        peak
    });
    assert!(child.wait().unwrap().success());
    let mine = started.elapsed();
    let snap_rss = rss.join().unwrap();
    // Reference: the classic pipe into an identical, empty table.
    let spg = pg_connect(&snap.pg_url).await;
    spg.batch_execute("CREATE TABLE public.t_ref (LIKE snap.t INCLUDING ALL)")
        .await
        .unwrap();
    let port = servers.mariadb.as_ref().map(|m| m.port()).unwrap_or(3306);
    let theirs = time_cmd(&format!(
        "mariadb --host 127.0.0.1 --port {port} --user root --quick --batch --skip-column-names snap \
         -e 'SELECT * FROM t' | psql '{}' -q -c \"\\copy public.t_ref from stdin with (null 'NULL')\"",
        snap.pg_url
    ));
    let rows = s.snapshot_rows as f64;
    report(&format!(
        "snapshot   {} rows: my2pg {:.2} s = {:.0} rows/s (peak RSS {snap_rss:.0} MiB); \
         mariadb --quick | psql \\copy {:.2} s = {:.0} rows/s; ratio {:.2} (>1: my2pg faster)",
        s.snapshot_rows,
        mine.as_secs_f64(),
        rows / mine.as_secs_f64(),
        theirs.as_secs_f64(),
        rows / theirs.as_secs_f64(),
        theirs.as_secs_f64() / mine.as_secs_f64()
    ));

    // Full size, or any size when MY2PG_CHAMELEON_EVENTS says how many events to give it.
    let cham_events = std::env::var("MY2PG_CHAMELEON_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .or((std::env::var("MY2PG_BENCH_SCALE").as_deref() != Ok("ci"))
            .then(|| s.events.min(100_000)));
    if let Some(n) = cham_events {
        chameleon(&servers, n, my2pg_apply_rate).await;
    }
}

/// The `chameleon` script, if installed.
fn chameleon_bin() -> Option<std::path::PathBuf> {
    if let Some(p) = std::env::var_os("MY2PG_CHAMELEON") {
        return Some(p.into());
    }
    let venv = std::path::PathBuf::from("/tmp/chameleon-venv/bin/chameleon");
    venv.exists().then_some(venv)
}

/// Runs `chameleon <args>` as the `nobody` user (pg_chameleon refuses to run as root).
fn chameleon_cmd(bin: &Path, home: &Path, args: &[&str]) -> Command {
    let mut c = Command::new("setpriv");
    c.args(["--reuid=nobody", "--regid=nogroup", "--clear-groups"])
        .arg(bin)
        .args(args)
        .env("HOME", home)
        .current_dir(home);
    c
}

fn chameleon_run(bin: &Path, home: &Path, args: &[&str]) {
    let out = chameleon_cmd(bin, home, args).output().unwrap();
    assert!(
        out.status.success(),
        "chameleon {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// pg_chameleon replicating `events` events of the apply workload; prints its rate next to
/// my2pg's.
async fn chameleon(servers: &Servers, events: u64, my2pg_rate: f64) {
    use std::os::unix::process::CommandExt as _;
    let Some(bin) = chameleon_bin() else {
        report(
            "chameleon  skipped: pg_chameleon is not installed (see the header of benches/pipeline.rs)",
        );
        return;
    };
    let db = servers.database("cham").await.unwrap();
    let my_port = servers.mariadb.as_ref().map(|m| m.port()).unwrap_or(3306);
    let pg = url::Url::parse(&db.pg_url).unwrap();
    let mut root = mysql_async::Conn::from_url(db.mysql_url.as_str())
        .await
        .unwrap();
    root.query_drop(
        "SET GLOBAL binlog_row_metadata = 'FULL';
         CREATE USER IF NOT EXISTS 'chameleon'@'127.0.0.1' IDENTIFIED BY 'chameleon';
         GRANT ALL ON *.* TO 'chameleon'@'127.0.0.1';",
    )
    .await
    .unwrap();
    let mut my = mysql_async::Conn::from_url(db.mysql_db_url.as_str())
        .await
        .unwrap();
    my.query_drop(TABLE).await.unwrap();
    let home = tempfile::tempdir().unwrap();
    let conf_dir = home.path().join(".pg_chameleon/configuration");
    for dir in ["configuration", "logs", "pid"] {
        std::fs::create_dir_all(home.path().join(".pg_chameleon").join(dir)).unwrap();
    }
    let config = format!(
        "---
pid_dir: '~/.pg_chameleon/pid/'
log_dir: '~/.pg_chameleon/logs/'
log_dest: file
log_level: info
log_days_keep: 1
rollbar_key: ''
rollbar_env: ''
type_override: {{}}
pg_conn:
  host: \"127.0.0.1\"
  port: \"{pg_port}\"
  user: \"postgres\"
  password: \"trust-auth-ignores-it\"
  database: \"{pg_db}\"
  charset: \"utf8\"
sources:
  mysql:
    db_conn:
      host: \"127.0.0.1\"
      port: \"{my_port}\"
      user: \"chameleon\"
      password: \"chameleon\"
      charset: 'utf8'
      connect_timeout: 10
    schema_mappings:
      cham: cham_pg
    limit_tables: []
    skip_tables: []
    grant_select_to: []
    lock_timeout: \"120s\"
    my_server_id: 4242
    replica_batch_size: 10000
    replay_max_rows: 10000
    batch_retention: '1 day'
    copy_max_memory: \"300M\"
    copy_mode: 'direct'
    out_dir: /tmp
    sleep_loop: 1
    on_error_replay: exit
    on_error_read: exit
    auto_maintenance: \"disabled\"
    gtid_enable: false
    type: mysql
    skip_events:
      insert: []
      delete: []
      update: []
    keep_existing_schema: No
    net_read_timeout: 600
",
        pg_port = pg.port().unwrap_or(5432),
        pg_db = pg.path().trim_start_matches('/'),
    );
    std::fs::write(conf_dir.join("bench.yml"), config).unwrap();
    // pg_chameleon insists on owning its directory.
    Command::new("chown")
        .args(["-R", "nobody:nogroup"])
        .arg(home.path())
        .status()
        .unwrap();
    let h = home.path();
    chameleon_run(&bin, h, &["create_replica_schema", "--config", "bench"]);
    chameleon_run(
        &bin,
        h,
        &["add_source", "--config", "bench", "--source", "mysql"],
    );
    chameleon_run(
        &bin,
        h,
        &[
            "init_replica",
            "--config",
            "bench",
            "--source",
            "mysql",
            "--debug",
        ],
    );
    let (mut next_id, mut live) = (0u64, Vec::new());
    let written = workload(&db.mysql_db_url, events, &mut next_id, &mut live, None).await;
    let want: (i64, String) = my
        .query_first("SELECT COUNT(*), CAST(COALESCE(SUM(a), 0) AS CHAR) FROM t")
        .await
        .unwrap()
        .unwrap();
    let target = pg_connect(&db.pg_url).await;
    let started = Instant::now();
    let mut child = chameleon_cmd(
        &bin,
        h,
        &[
            "start_replica",
            "--config",
            "bench",
            "--source",
            "mysql",
            "--debug",
        ],
    )
    .stdout(std::fs::File::create(h.join(".pg_chameleon/logs/start_replica.out")).unwrap())
    .stderr(std::fs::File::create(h.join(".pg_chameleon/logs/start_replica.err")).unwrap())
    .process_group(0)
    .spawn()
    .unwrap();
    let timeout = Duration::from_secs(120 + events / 500);
    let mut done = None;
    while started.elapsed() < timeout {
        if let Ok(r) = target
            .query_one(
                "SELECT count(*), coalesce(sum(a), 0)::text FROM cham_pg.t",
                &[],
            )
            .await
            && (r.get::<_, i64>(0), r.get::<_, String>(1)) == want
        {
            done = Some(started.elapsed());
            break;
        }
        if let Ok(Some(status)) = child.try_wait() {
            report(&format!("chameleon  start_replica exited early: {status}"));
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let _ = nix::sys::signal::killpg(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGKILL,
    );
    let _ = child.wait();
    match done {
        Some(took) => {
            let rate = written as f64 / took.as_secs_f64();
            report(&format!(
                "chameleon  pg_chameleon applied {written} events in {:.1} s = {rate:.0} events/s; \
                 my2pg {my2pg_rate:.0} events/s in this run; ratio {:.1} (>1: my2pg faster)",
                took.as_secs_f64(),
                my2pg_rate / rate
            ));
        }
        None => {
            let _ = Command::new("cp")
                .args(["-a"])
                .arg(h.join(".pg_chameleon/logs"))
                .arg("/tmp/my2pg-chameleon-logs")
                .status();
            let mut logs = String::from(" (copied to /tmp/my2pg-chameleon-logs)");
            for e in std::fs::read_dir(h.join(".pg_chameleon/logs"))
                .into_iter()
                .flatten()
                .flatten()
            {
                let text = std::fs::read_to_string(e.path()).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(15).collect();
                logs.push_str(&format!("\n  {}:\n    ", e.path().display()));
                logs.push_str(&tail.into_iter().rev().collect::<Vec<_>>().join("\n    "));
            }
            report(&format!(
                "chameleon  pg_chameleon did not reach the source state ({written} events) within {} s; its logs:{logs}",
                timeout.as_secs()
            ))
        }
    }
}
