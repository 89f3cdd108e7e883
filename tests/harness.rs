//! The harness itself: real servers start, serve, and disappear afterwards — also when the test
//! that started them panics.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;
use std::time::{Duration, Instant};

use my2pg::harness::{self, MariaDb, MariaDbOptions, Postgres, PostgresOptions};
use mysql_async::prelude::Queryable;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smoke_rows_in_mariadb_binlog_position_and_a_postgres_table() {
    let servers = harness::shared();
    let db = servers.fresh("smoke").await.unwrap();

    let mut my = mysql_async::Conn::from_url(db.mysql_db_url.as_str())
        .await
        .unwrap();
    let before: (String, u64) = my
        .query_first("SHOW MASTER STATUS")
        .await
        .unwrap()
        .map(|r: mysql_async::Row| {
            let r: (String, u64, String, String) = mysql_async::from_row(r);
            (r.0, r.1)
        })
        .unwrap();
    my.query_drop("CREATE TABLE t (id INT PRIMARY KEY, name VARCHAR(20))")
        .await
        .unwrap();
    my.query_drop("INSERT INTO t VALUES (1, 'one'), (2, 'two')")
        .await
        .unwrap();
    let after: (String, u64) = my
        .query_first("SHOW MASTER STATUS")
        .await
        .unwrap()
        .map(|r: mysql_async::Row| {
            let r: (String, u64, String, String) = mysql_async::from_row(r);
            (r.0, r.1)
        })
        .unwrap();
    assert!(
        after.0 > before.0 || after.1 > before.1,
        "binlog position did not move: {before:?} → {after:?}"
    );
    let gtid: String = my
        .query_first("SELECT @@gtid_binlog_pos")
        .await
        .unwrap()
        .unwrap();
    assert!(!gtid.is_empty(), "MariaDB should log GTIDs");
    let (format, image, metadata): (String, String, String) = my
        .query_first("SELECT @@binlog_format, @@binlog_row_image, @@binlog_row_metadata")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (format.as_str(), image.as_str(), metadata.as_str()),
        ("ROW", "FULL", "FULL")
    );
    let n: i64 = my
        .query_first("SELECT COUNT(*) FROM t")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(n, 2);

    let (pg, conn) = tokio_postgres::connect(&db.pg_url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    pg.batch_execute(
        "CREATE TABLE t (id int PRIMARY KEY, name text); INSERT INTO t VALUES (1, 'one')",
    )
    .await
    .unwrap();
    let row = pg
        .query_one("SELECT name FROM t WHERE id = 1", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "one");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fresh_databases_are_isolated() {
    let servers = harness::shared();
    let a = servers.fresh("iso").await.unwrap();
    let b = servers.fresh("iso").await.unwrap();
    assert_ne!(a.name, b.name);
    let mut my = mysql_async::Conn::from_url(a.mysql_db_url.as_str())
        .await
        .unwrap();
    my.query_drop("CREATE TABLE only_in_a (id INT PRIMARY KEY)")
        .await
        .unwrap();
    let mut my_b = mysql_async::Conn::from_url(b.mysql_db_url.as_str())
        .await
        .unwrap();
    let n: i64 = my_b
        .exec_first(
            "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = 'only_in_a'",
            (b.name.as_str(),),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(n, 0);
}

#[test]
fn private_servers_restart_on_the_same_port_and_keep_data() {
    let m = MariaDb::start(MariaDbOptions::default()).unwrap();
    let p = Postgres::start(PostgresOptions::default()).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut c = mysql_async::Conn::from_url(m.url().as_str()).await.unwrap();
        c.query_drop("CREATE DATABASE keep; CREATE TABLE keep.t (id INT PRIMARY KEY); INSERT INTO keep.t VALUES (7)")
            .await
            .unwrap();
        c.disconnect().await.unwrap();
    });
    let (old_m, old_p) = (m.pid().unwrap(), p.pid().unwrap());
    m.restart().unwrap();
    p.restart().unwrap();
    assert_ne!(m.pid().unwrap(), old_m);
    assert_ne!(p.pid().unwrap(), old_p);
    rt.block_on(async {
        let mut c = mysql_async::Conn::from_url(m.url().as_str()).await.unwrap();
        let v: i32 = c
            .query_first("SELECT id FROM keep.t")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(v, 7);
        let (pg, conn) = tokio_postgres::connect(&p.url("postgres"), tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        pg.simple_query("SELECT 1").await.unwrap();
    });
    let (dir_m, dir_p) = (m.dir().to_owned(), p.dir().to_owned());
    let (pid_m, pid_p) = (m.pid().unwrap(), p.pid().unwrap());
    drop(m);
    drop(p);
    assert!(
        !dir_m.exists() && !dir_p.exists(),
        "dropped servers leave their directories"
    );
    assert!(
        !alive(pid_m) && !alive(pid_p),
        "dropped servers keep running"
    );
}

fn alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .unwrap_or_default()
            .contains(") Z ")
}

/// Child half of `servers_of_a_panicking_test_are_gone`: started as a separate test process,
/// it starts a pair, prints their pids and directories, and panics.
#[test]
#[ignore = "run only as the child of servers_of_a_panicking_test_are_gone"]
fn child_starts_servers_then_panics() {
    if std::env::var("MY2PG_HARNESS_CHILD").is_err() {
        return;
    }
    let servers = harness::shared();
    let m = servers.mariadb.as_ref().unwrap();
    let p = servers.postgres.as_ref().unwrap();
    println!(
        "SERVERS {} {} {} {}",
        m.pid().unwrap(),
        p.pid().unwrap(),
        m.dir().display(),
        p.dir().display()
    );
    panic!("deliberate panic with servers running");
}

#[test]
fn servers_of_a_panicking_test_are_gone() {
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_starts_servers_then_panics",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("MY2PG_HARNESS_CHILD", "1")
        .env_remove(harness::ENV_TEST_MYSQL_URL)
        .env_remove(harness::ENV_TEST_PG_URL)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        !out.status.success(),
        "the child test should have panicked:\n{stdout}"
    );
    let line = stdout
        .lines()
        .find_map(|l| l.split_once("SERVERS ").map(|(_, rest)| rest))
        .unwrap_or_else(|| {
            panic!(
                "child did not report its servers:\n{stdout}\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    let f: Vec<&str> = std::iter::once("SERVERS")
        .chain(line.split_whitespace())
        .collect();
    let (pid_m, pid_p): (u32, u32) = (f[1].parse().unwrap(), f[2].parse().unwrap());
    let (dir_m, dir_p) = (
        std::path::PathBuf::from(f[3]),
        std::path::PathBuf::from(f[4]),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while (alive(pid_m) || alive(pid_p) || dir_m.exists() || dir_p.exists())
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        !alive(pid_m),
        "mariadbd {pid_m} survived its panicking test"
    );
    assert!(
        !alive(pid_p),
        "postgres {pid_p} survived its panicking test"
    );
    assert!(!dir_m.exists(), "{} was not removed", dir_m.display());
    assert!(!dir_p.exists(), "{} was not removed", dir_p.display());
}
