//! The extended type suite: Debezium's MySQL/MariaDB type scripts
//! (`../shared/fixtures/type_cases/debezium/*.sql`, or `$MY2PG_FIXTURES/type_cases/debezium`),
//! skipped with a message when absent.
//!
//! Each script is loaded into a fresh harness MariaDB database (statements MariaDB 10.11
//! rejects — MySQL-only `CAST(… AS JSON)`, `VECTOR` — are skipped by the client's `--force`,
//! as the fixture README describes). Every table is then read back exactly, mapped and
//! converted:
//!
//! - under the default policies, a value the target cannot hold must fail with a policy
//!   decision (zero date, not a boolean, …) — never a type mismatch, which would mean a value
//!   was misread — and the decisions named below must be among them;
//! - under permissive policies every row converts, the table is created with the sink's DDL,
//!   written with binary COPY and read back in binary, and must come back equal (canonically
//!   equal for `jsonb`): nothing changes silently on the way;
//! - the scripts that carry their own expected values (JSON text, UUID text, point coordinates
//!   and SRID) are checked against them.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

mod support;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use schemas::PgValue;
use schemas::canonical::{canonical_bytes, row_digest};
use schemas::mapping::{InvalidText, MappingOptions, NulInText, ZeroDate, map_table};
use schemas::pgtext::input_text;
use support::{create_target, mysql, opts, pg, read_source};

fn fixtures_dir() -> Option<PathBuf> {
    let base = std::env::var_os("MY2PG_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures"));
    let dir = base.join("type_cases/debezium");
    dir.is_dir().then_some(dir)
}

/// Options under which every value MariaDB can hold converts.
fn permissive() -> MappingOptions {
    opts(|o| {
        o.zero_date = ZeroDate::NegInfinity;
        o.tinyint1_as_boolean = false;
        o.nul_in_text = NulInText::Strip;
        o.invalid_text = InvalidText::Replace;
    })
}

/// (file, table, column, problem kind) of every conversion decision.
type Decision = (String, String, String, String);

fn problem_kind(p: &schemas::pgvalue::ConvertProblem) -> String {
    serde_json::to_value(p).unwrap()["kind"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn debezium_type_scripts_map_without_silent_change() {
    let Some(dir) = fixtures_dir() else {
        eprintln!(
            "skipping: no fixtures at ../shared/fixtures/type_cases/debezium (set MY2PG_FIXTURES)"
        );
        return;
    };
    let client = ["mariadb", "mysql"]
        .into_iter()
        .find(|c| Command::new(c).arg("--version").output().is_ok());
    let Some(client) = client else {
        eprintln!("skipping: no mariadb/mysql command-line client to load the scripts with");
        return;
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "sql"))
        .collect();
    files.sort();
    let servers = my2pg::harness::shared();
    let mut decisions: BTreeSet<Decision> = BTreeSet::new();
    let mut tables_checked = 0;
    for file in &files {
        let stem = file.file_stem().unwrap().to_string_lossy().into_owned();
        let db = servers.fresh(&stem).await.unwrap();
        let url = url::Url::parse(&db.mysql_url).unwrap();
        let out = Command::new(client)
            .args([
                "--force",
                "--protocol=TCP",
                "-h",
                url.host_str().unwrap(),
                "-P",
                &url.port().unwrap().to_string(),
                "-u",
                url.username(),
                &db.name,
            ])
            .stdin(std::fs::File::open(file).unwrap())
            .stdout(Stdio::null())
            .output()
            .unwrap();
        let skipped = String::from_utf8_lossy(&out.stderr).lines().count();
        let mut my = mysql(&db.mysql_db_url).await;
        let tables: Vec<String> = cdc_reader::schema::list_tables(&mut my, &db.name)
            .await
            .unwrap();
        if skipped > 0 {
            eprintln!(
                "{stem}: MariaDB rejected some statements ({skipped} error lines), as the fixture README lists"
            );
        }
        let pg = pg(&db.pg_url).await;
        for table in tables {
            let (schema, rows) = read_source(&mut my, &db.name, &table).await;
            let where_ = format!("{stem}: {table}");
            // Default policies: decisions, never a misread value.
            for zero_date in [ZeroDate::Error, ZeroDate::Null] {
                let o = opts(|o| o.zero_date = zero_date);
                let m = match map_table(schema.clone(), "x", &o) {
                    Ok(m) => m,
                    Err(e) => {
                        decisions.insert((
                            stem.clone(),
                            table.clone(),
                            String::new(),
                            format!("{e}"),
                        ));
                        continue;
                    }
                };
                for (ri, row) in rows.iter().enumerate() {
                    for (ci, v) in row.0.iter().enumerate() {
                        if let Err(e) = m.convert_value(ci, v, Some(row)) {
                            let kind = problem_kind(&e.problem);
                            assert_ne!(kind, "type_mismatch", "{where_} row {ri}: {e}");
                            decisions.insert((
                                stem.clone(),
                                table.clone(),
                                m.columns[ci].source_name.clone(),
                                kind,
                            ));
                        }
                    }
                }
            }
            // Permissive policies: everything converts and survives the round trip.
            let o = permissive();
            let Ok(m) = map_table(schema.clone(), &stem, &o) else {
                continue;
            };
            let converted: Vec<Vec<PgValue>> = rows
                .iter()
                .map(|r| m.convert_row(r).unwrap_or_else(|e| panic!("{where_}: {e}")))
                .collect();
            create_target(&pg, &m, &o).await;
            sink::binary::copy_rows(&pg, &m, &converted)
                .await
                .unwrap_or_else(|e| panic!("{where_}: COPY: {e:?}"));
            let key: Vec<&str> = m.key.iter().map(|&k| m.columns[k].name.as_str()).collect();
            let mut back = sink::binary::read_rows(&pg, &m, &key).await.unwrap();
            let mut expected = converted.clone();
            if key.is_empty() {
                back.sort_by_key(|r| row_digest(r));
                expected.sort_by_key(|r| row_digest(r));
            } else {
                // The source's key order and the target's may differ (collations): match by key.
                let key_of = |r: &Vec<PgValue>| -> Vec<Vec<u8>> {
                    m.key.iter().map(|&k| canonical_bytes(&r[k])).collect()
                };
                back.sort_by_key(key_of);
                expected.sort_by_key(key_of);
            }
            assert_eq!(back.len(), expected.len(), "{where_}");
            for (b, e) in back.iter().zip(&expected) {
                assert_eq!(row_digest(b), row_digest(e), "{where_}: {b:?} != {e:?}");
                if !e.iter().any(|v| matches!(v, PgValue::Jsonb(_))) {
                    assert_eq!(b, e, "{where_}");
                }
            }
            self_checks(&stem, &table, &m, &converted);
            tables_checked += 1;
        }
        let _ = my.disconnect().await;
    }
    assert!(tables_checked > 30, "only {tables_checked} tables loaded");
    for (file, table, column, kind) in [
        ("tinyint_test", "DBZ1773", "ti1", "not_boolean"),
        (
            "zero_date_fallback_converter",
            "dt_full",
            "d_no_default",
            "zero_date",
        ),
        (
            "zero_date_fallback_converter",
            "dt_full",
            "ts_no_default",
            "zero_date",
        ),
        (
            "datetime_key_test",
            "dbz_1194_datetime_key_test",
            "dval",
            "zero_date_in_key",
        ),
        (
            "regression_test",
            "dbz_1318_zerovaluetest",
            "c1",
            "zero_date",
        ),
    ] {
        assert!(
            decisions.contains(&(file.into(), table.into(), column.into(), kind.into())),
            "expected decision {kind} for {file}: {table}.{column}; decisions: {decisions:#?}"
        );
    }
    // Unsigned limits, YEAR, DECIMAL and TIME ±838 h convert under the defaults.
    for file in [
        "unsigned_integer_test",
        "year_test",
        "decimal_test",
        "decimal_column_test",
    ] {
        assert!(
            !decisions.iter().any(|d| d.0 == file),
            "{file} should convert without policy decisions: {decisions:#?}"
        );
    }
}

/// Checks against the expected values some scripts carry in their own columns.
fn self_checks(stem: &str, table: &str, m: &schemas::TableMapping, rows: &[Vec<PgValue>]) {
    let col = |name: &str| m.columns.iter().position(|c| c.source_name == name);
    match (stem, table) {
        ("json_test", "dbz_126_jsontable") => {
            let (j, e) = (col("json").unwrap(), col("expectedJdbcStr").unwrap());
            for r in rows {
                if let (v @ PgValue::Jsonb(_), PgValue::Text(expected)) = (&r[j], &r[e]) {
                    assert_eq!(
                        canonical_bytes(v),
                        canonical_bytes(&PgValue::Json(expected.clone())),
                        "json {v:?} vs expected {expected}"
                    );
                }
            }
        }
        ("mariadb_uuid_column_test", "test_uuid") => {
            let (u, e) = (col("id").unwrap(), col("expected").unwrap());
            for r in rows {
                assert_eq!(input_text(&r[u]), input_text(&r[e]), "uuid");
            }
        }
        ("geometry_test_8", "dbz_222_point") => {
            let p = col("point").unwrap();
            let (x, y, s) = (
                col("expected_x").unwrap(),
                col("expected_y").unwrap(),
                col("expected_srid").unwrap(),
            );
            for r in rows {
                let PgValue::Bytea(wkb) = &r[p] else { continue };
                let le = wkb[0] == 1;
                let word = |b: &[u8]| {
                    let a = [b[0], b[1], b[2], b[3]];
                    if le {
                        u32::from_le_bytes(a)
                    } else {
                        u32::from_be_bytes(a)
                    }
                };
                let ty = word(&wkb[1..5]);
                let (srid, coords) = if ty & 0x2000_0000 != 0 {
                    (word(&wkb[5..9]), &wkb[9..])
                } else {
                    (0, &wkb[5..])
                };
                let f = |b: &[u8]| {
                    let a: [u8; 8] = b[..8].try_into().unwrap();
                    if le {
                        f64::from_le_bytes(a)
                    } else {
                        f64::from_be_bytes(a)
                    }
                };
                assert_eq!(PgValue::Float8(f(coords)), r[x], "x");
                assert_eq!(PgValue::Float8(f(&coords[8..])), r[y], "y");
                match &r[s] {
                    PgValue::Int4(want) => assert_eq!(i64::from(srid), i64::from(*want), "srid"),
                    _ => assert_eq!(srid, 0, "srid"),
                }
            }
        }
        _ => {}
    }
}
