//! `my2pg check` with the data scan: it finds every kind of blocking value or table it names,
//! with counts and sample keys, follows the configured policies (per column too), and passes
//! on a clean database.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::io::Write as _;
use std::process::{Command, Output};

use serde_json::Value;
use support::{exec, mysql};

fn my2pg(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_my2pg"))
        .args(args)
        .env_remove("MY2PG_SOURCE_URL")
        .env_remove("MY2PG_TARGET_URL")
        .env_remove("RUST_LOG")
        .current_dir(std::env::temp_dir())
        .output()
        .unwrap()
}

fn describe(o: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The findings about `table` (and `column`) of kind `kind`.
fn finding<'a>(report: &'a Value, kind: &str, table: &str, column: Option<&str>) -> &'a Value {
    report["scan"]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| {
            f["kind"] == kind
                && f["table"]["table"] == table
                && column.is_none_or(|c| f["column"] == c)
        })
        .unwrap_or_else(|| {
            panic!(
                "no {kind} finding for {table}.{column:?} in\n{}",
                serde_json::to_string_pretty(&report["scan"]).unwrap()
            )
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_passes_on_a_clean_database() {
    let db = my2pg::harness::shared().fresh("clean").await.unwrap();
    let mut my = mysql(&db.mysql_db_url).await;
    exec(
        &mut my,
        "CREATE TABLE t (id INT PRIMARY KEY, d DATE, s VARCHAR(10), b TINYINT(1), j JSON, \
         code VARCHAR(10) COLLATE utf8mb4_bin UNIQUE)",
    )
    .await;
    exec(
        &mut my,
        "INSERT INTO t VALUES (1, '2020-01-01', 'ok', 1, '{\"a\": 1}', 'A'), (2, NULL, NULL, 0, NULL, 'a')",
    )
    .await;
    let out = my2pg(&[
        "check",
        "--source",
        &db.mysql_url,
        "--target",
        &db.pg_url,
        "--databases",
        &db.name,
        "--format",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["ok"], true);
    assert_eq!(report["scan"]["tables"], 1);
    assert_eq!(
        report["scan"]["findings"],
        serde_json::json!([]),
        "{}",
        describe(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_finds_every_blocking_kind_with_counts_and_keys() {
    let db = my2pg::harness::shared().fresh("dirty").await.unwrap();
    let mut my = mysql(&db.mysql_db_url).await;
    let long = "t".repeat(64);
    for sql in [
        "SET SESSION sql_mode = ''",
        "CREATE TABLE zd (id INT PRIMARY KEY, d DATE, dt DATETIME, ts TIMESTAMP NULL)",
        "INSERT INTO zd VALUES (1, '2020-01-01', '2020-01-01 00:00:00', '2020-01-01 00:00:00'), \
         (2, '0000-00-00', '0000-00-00 00:00:00', '0000-00-00 00:00:00'), (3, '2015-00-21', NULL, NULL)",
        "CREATE TABLE txt (id INT PRIMARY KEY, s VARCHAR(10))",
        "INSERT INTO txt VALUES (1, X'610062'), (2, 'fine')",
        "CREATE TABLE asc_text (id INT PRIMARY KEY, a VARCHAR(10) CHARACTER SET ascii)",
        "SET NAMES binary",
        "INSERT INTO asc_text VALUES (7, X'61C362')",
        "SET NAMES utf8mb4",
        "CREATE TABLE ub (id INT PRIMARY KEY, u BIGINT UNSIGNED)",
        "INSERT INTO ub VALUES (1, 9223372036854775807), (2, 18446744073709551615)",
        "CREATE TABLE tb (id INT PRIMARY KEY, b TINYINT(1))",
        "INSERT INTO tb VALUES (1, 1), (2, 5), (3, -1)",
        "CREATE TABLE js (id INT PRIMARY KEY, j JSON)",
        "INSERT INTO js VALUES (1, '\"\\\\u0000\"')",
        "CREATE TABLE en (id INT PRIMARY KEY, e ENUM('a','b'))",
        "INSERT INTO en VALUES (1, 'a'), (2, 'zzz')",
        "CREATE TABLE nokey (a INT)",
        "CREATE TABLE ci (id INT PRIMARY KEY, email VARCHAR(50) COLLATE utf8mb4_general_ci, UNIQUE KEY email (email))",
        "INSERT INTO ci VALUES (1, 'A@x'), (2, 'b@x')",
        "CREATE TABLE `Users` (id INT PRIMARY KEY)",
        "CREATE TABLE users (id INT PRIMARY KEY)",
        &format!("CREATE TABLE {long} (id INT PRIMARY KEY)"),
    ] {
        exec(&mut my, sql).await;
    }
    // unsigned_bigint_as = "bigint" makes the BIGINT UNSIGNED value block; the column
    // overrides make dt's zero dates convert (a warning) and en.e a PostgreSQL enum.
    let s = &db.name;
    let mut config = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
    write!(
        config,
        "[mapping]\nunsigned_bigint_as = \"bigint\"\n\
         [mapping.columns.\"{s}.zd.dt\"]\nzero_date = \"-infinity\"\n\
         [mapping.columns.\"{s}.en.e\"]\nenum_as = \"pg_enum\"\n"
    )
    .unwrap();
    let args = [
        "check",
        "--config",
        config.path().to_str().unwrap(),
        "--source",
        &db.mysql_url,
        "--target",
        &db.pg_url,
        "--databases",
        s,
    ];
    let out = my2pg(&[&args[..], &["--format", "json"]].concat());
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["ok"], false);

    let f = finding(&r, "zero_date", "zd", Some("d"));
    assert_eq!(
        (f["status"].as_str(), f["count"].as_u64()),
        (Some("fail"), Some(2))
    );
    assert_eq!(f["samples"], serde_json::json!(["id=2", "id=3"]));
    let f = finding(&r, "zero_date", "zd", Some("dt"));
    assert_eq!(
        (f["status"].as_str(), f["count"].as_u64()),
        (Some("warn"), Some(1)),
        "{f}"
    );
    assert!(f["detail"].as_str().unwrap().contains("-infinity"), "{f}");
    let f = finding(&r, "zero_date", "zd", Some("ts"));
    assert_eq!(
        (f["status"].as_str(), f["count"].as_u64()),
        (Some("fail"), Some(1))
    );
    let f = finding(&r, "nul_in_text", "txt", Some("s"));
    assert_eq!(
        (f["count"].as_u64(), &f["samples"]),
        (Some(1), &serde_json::json!(["id=1"]))
    );
    let f = finding(&r, "invalid_text", "asc_text", Some("a"));
    assert_eq!(
        (f["count"].as_u64(), &f["samples"]),
        (Some(1), &serde_json::json!(["id=7"]))
    );
    let f = finding(&r, "unsigned_beyond_bigint", "ub", Some("u"));
    assert_eq!(
        (f["count"].as_u64(), &f["samples"]),
        (Some(1), &serde_json::json!(["id=2"]))
    );
    let f = finding(&r, "not_boolean", "tb", Some("b"));
    assert_eq!(
        (f["count"].as_u64(), &f["samples"]),
        (Some(2), &serde_json::json!(["id=2", "id=3"]))
    );
    let f = finding(&r, "nul_in_json", "js", Some("j"));
    assert_eq!(f["count"].as_u64(), Some(1));
    let f = finding(&r, "enum_error_value", "en", Some("e"));
    assert_eq!(
        (f["count"].as_u64(), &f["samples"]),
        (Some(1), &serde_json::json!(["id=2"]))
    );
    let f = finding(&r, "no_key", "nokey", None);
    assert_eq!(f["status"], "fail");
    let f = finding(&r, "case_insensitive_unique", "ci", Some("email"));
    assert_eq!(
        (f["status"].as_str(), f["count"].as_u64()),
        (Some("warn"), Some(0))
    );
    assert!(f["fix"].as_str().unwrap().contains("lower(email)"), "{f}");
    let f = finding(&r, "name_clash", "Users", None);
    assert!(f["detail"].as_str().unwrap().contains(".users"), "{f}");
    finding(&r, "name_clash", "users", None);
    let f = finding(&r, "name_too_long", &long, None);
    assert!(
        f["fix"].as_str().unwrap().contains("[mapping.tables."),
        "{f}"
    );

    // The same as a table for people.
    let out = my2pg(&args);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(text.contains(&format!("[FAIL] {s}.zd.d")), "{text}");
    assert!(text.contains("2 rows: zero or invalid dates"), "{text}");
    assert!(text.contains("e.g. id=2; id=3"), "{text}");
    assert!(text.contains("[warn]"), "{text}");
    assert!(text.contains("not ready"), "{text}");
}
