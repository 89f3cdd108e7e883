//! Configuration and command-line behaviour: every bad input gives one clear line naming the key
//! or the host and what to do, exit code 2, no panic, no secret printed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write as _;
use std::process::{Command, Output};

use my2pg::harness;
use mysql_async::prelude::Queryable;

const SECRET: &str = "hunter2secret";

fn my2pg(args: &[&str], envs: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_my2pg"));
    cmd.args(args)
        .env_remove("MY2PG_SOURCE_URL")
        .env_remove("MY2PG_TARGET_URL")
        .env_remove("RUST_LOG");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.current_dir(std::env::temp_dir());
    cmd.output().unwrap()
}

/// Asserts exit code 2, a single `error:` line (plus an optional `fix:` line) containing every
/// `needle`, no panic and no secret.
fn assert_clean_error(out: &Output, needles: &[&str]) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(
        out.status.code(),
        Some(2),
        "exit code\nstderr: {stderr}\nstdout: {stdout}"
    );
    assert!(!stderr.contains("panicked"), "panic: {stderr}");
    assert!(
        !stderr.contains(SECRET) && !stdout.contains(SECRET),
        "secret printed: {stderr}{stdout}"
    );
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(
        lines.len() <= 2,
        "more than an error line and a fix line:\n{stderr}"
    );
    assert!(lines[0].starts_with("error: "), "{stderr}");
    for n in needles {
        assert!(stderr.contains(n), "{n:?} missing from:\n{stderr}");
    }
    stderr
}

fn write_config(text: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
    f.write_all(text.as_bytes()).unwrap();
    f
}

#[test]
fn malformed_toml_names_the_file_and_line() {
    let f = write_config("[source]\nurl = \"mysql://u:hunter2secret@h\"\n[target\nurl = 1\n");
    let out = my2pg(&["check", "--config", f.path().to_str().unwrap()], &[]);
    assert_clean_error(&out, &["line 3", "not valid TOML"]);
}

#[test]
fn unknown_key_is_rejected_with_the_known_keys() {
    let f = write_config("[source]\nurll = \"mysql://h\"\n");
    let out = my2pg(&["check", "--config", f.path().to_str().unwrap()], &[]);
    assert_clean_error(&out, &["source.urll", "unknown key", "`url`"]);
}

#[test]
fn wrong_url_scheme_names_the_key() {
    let out = my2pg(
        &[
            "check",
            "--source",
            &format!("postgres://u:{SECRET}@h:5432/x"),
            "--target",
            "postgres://u@h/x",
        ],
        &[],
    );
    assert_clean_error(&out, &["source.url", "scheme must be mysql://"]);
    let out = my2pg(
        &[
            "check",
            "--source",
            "mysql://u@h",
            "--target",
            &format!("http://u:{SECRET}@h/x"),
        ],
        &[],
    );
    assert_clean_error(&out, &["target.url", "scheme must be postgres://"]);
}

#[test]
fn resnapshot_through_kafka_is_refused_with_the_alternatives() {
    let out = my2pg(
        &[
            "sync",
            "--source",
            "mysql://u@127.0.0.1:1",
            "--target",
            "postgres://u@127.0.0.1:1/db",
            "--via",
            "kafka",
            "--resnapshot",
            "shop.orders",
        ],
        &[],
    );
    assert_clean_error(&out, &["--resnapshot", "--via kafka", "pipeline"]);
}

#[test]
fn missing_source_says_how_to_give_one() {
    let out = my2pg(&["check"], &[]);
    assert_clean_error(&out, &["source.url", "--source"]);
}

#[test]
fn missing_environment_variable_in_config_names_key_and_variable() {
    let f =
        write_config("[source]\nurl = \"mysql://u@h\"\npassword = \"${MY2PG_TEST_UNSET_PW}\"\n");
    let out = my2pg(&["check", "--config", f.path().to_str().unwrap()], &[]);
    assert_clean_error(&out, &["source.password", "MY2PG_TEST_UNSET_PW"]);
}

#[test]
fn unreachable_host_names_the_host() {
    let out = my2pg(
        &[
            "check",
            "--source",
            &format!("mysql://u:{SECRET}@127.0.0.1:1"),
            "--target",
            "postgres://u@127.0.0.1:1/x",
        ],
        &[],
    );
    assert_clean_error(&out, &["127.0.0.1:1", "MySQL"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_credentials_name_the_user_and_host() {
    let servers = harness::shared();
    let db = servers.fresh("creds").await.unwrap();
    let mysql = url::Url::parse(&db.mysql_url).unwrap();
    let host = format!("{}:{}", mysql.host_str().unwrap(), mysql.port().unwrap());
    let out = my2pg(
        &[
            "check",
            "--source",
            &format!("mysql://root:{SECRET}@{host}"),
            "--target",
            &db.pg_url,
        ],
        &[],
    );
    assert_clean_error(&out, &["refused user \"root\"", &host]);

    // A password-checked PostgreSQL user with the wrong password.
    let (pg, conn) = tokio_postgres::connect(&db.pg_url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    pg.batch_execute("CREATE ROLE creds_user LOGIN PASSWORD 'right'")
        .await
        .ok();
    let pg_url = url::Url::parse(&db.pg_url).unwrap();
    let pg_host = format!("{}:{}", pg_url.host_str().unwrap(), pg_url.port().unwrap());
    let out = my2pg(
        &[
            "check",
            "--source",
            &db.mysql_url,
            "--target",
            &format!("postgres://creds_user:{SECRET}@{pg_host}{}", pg_url.path()),
        ],
        &[],
    );
    assert_clean_error(&out, &["refused user \"creds_user\"", &pg_host]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_passes_on_the_harness_servers_via_environment() {
    let servers = harness::shared();
    let db = servers.fresh("checkok").await.unwrap();
    let out = my2pg(
        &["check", "--format", "json"],
        &[
            ("MY2PG_SOURCE_URL", &db.mysql_url),
            ("MY2PG_TARGET_URL", &db.pg_url),
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["ok"], true);
    assert_eq!(report["source"]["server"]["flavor"], "mariadb");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_fails_on_statement_format_and_missing_privileges() {
    let m = harness::MariaDb::start(harness::MariaDbOptions {
        binlog_format: "STATEMENT".into(),
        ..Default::default()
    })
    .unwrap();
    let servers = harness::shared();
    let db = servers.fresh("checkfail").await.unwrap();
    let mut c = mysql_async::Conn::from_url(m.url().as_str()).await.unwrap();
    c.query_drop("CREATE USER weak@'%' IDENTIFIED BY 'pw'; GRANT SELECT ON mysql.* TO weak@'%'")
        .await
        .unwrap();
    let weak = format!("mysql://weak:pw@127.0.0.1:{}", m.port());
    let out = my2pg(&["check", "--source", &weak, "--target", &db.pg_url], &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("[FAIL] binlog_format") && stdout.contains("STATEMENT"),
        "{stdout}"
    );
    assert!(
        stdout.contains("SET GLOBAL binlog_format = 'ROW'"),
        "{stdout}"
    );
    assert!(
        stdout.contains("[FAIL] privilege REPLICATION SLAVE"),
        "{stdout}"
    );
    assert!(stdout.contains("GRANT REPLICATION SLAVE"), "{stdout}");
}
