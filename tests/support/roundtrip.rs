//! The round trip of `tests/type_mapping.rs`: a column type with literal values created in
//! MariaDB, read by the reader, converted, written by binary COPY and by binary parameters,
//! read back as text and in binary, and compared with hand-written expectations.

use schemas::PgValue;
use schemas::canonical::row_digest;
use schemas::mapping::MappingOptions;
use schemas::pgvalue::ConvertProblem;

use super::{column_type, create_target, exec, insert_bound, map, mysql, pg, read_source, texts};

/// What a source value must become.
#[derive(Debug, Clone)]
pub enum Expect {
    /// This PostgreSQL text (`value::text` with TimeZone UTC).
    T(String),
    /// NULL.
    Null,
    /// A conversion error with this problem.
    Fails(ConvertProblem),
}

pub fn t(s: &str) -> Expect {
    Expect::T(s.to_owned())
}

/// Creates `t (id INT PRIMARY KEY, c <ty>)` on MariaDB, inserts `rows` (SQL literals) with ids
/// 1, 2, …, maps with `options`, checks the target column type, writes and compares.
pub async fn run(
    name: &str,
    options: &MappingOptions,
    ty: &str,
    pg_type: &str,
    rows: &[(&str, Expect)],
) {
    run_in(name, options, ty, pg_type, rows, "").await;
}

/// [`run`] with statements run on the MariaDB session before the inserts.
pub async fn run_in(
    name: &str,
    options: &MappingOptions,
    ty: &str,
    pg_type: &str,
    rows: &[(&str, Expect)],
    session: &str,
) {
    let db = my2pg::harness::shared().fresh(name).await.unwrap();
    let mut my = mysql(&db.mysql_db_url).await;
    exec(&mut my, "SET SESSION sql_mode = 'ALLOW_INVALID_DATES'").await;
    if !session.is_empty() {
        exec(&mut my, session).await;
    }
    exec(
        &mut my,
        &format!("CREATE TABLE t (id INT PRIMARY KEY, c {ty})"),
    )
    .await;
    for (i, (literal, _)) in rows.iter().enumerate() {
        exec(
            &mut my,
            &format!("INSERT INTO t VALUES ({}, {literal})", i + 1),
        )
        .await;
    }
    let (schema, source_rows) = read_source(&mut my, &db.name, "t").await;
    assert_eq!(source_rows.len(), rows.len());
    let by_copy = map(&schema, "copy", options);
    let by_bind = map(&schema, "bind", options);
    let mut converted = Vec::new();
    let mut expected = Vec::new();
    for (i, (row, (literal, want))) in source_rows.iter().zip(rows).enumerate() {
        let got = by_copy.convert_row(row);
        match (got, want) {
            (Ok(values), Expect::T(text)) => {
                converted.push(values);
                expected.push(Some(text.clone()));
            }
            (Ok(values), Expect::Null) => {
                converted.push(values);
                expected.push(None);
            }
            (Err(e), Expect::Fails(problem)) => {
                assert_eq!(&e.problem, problem, "{ty} {literal}: {e}");
                assert_eq!(e.column, format!("{}.t.c", db.name), "{e}");
                assert_eq!(e.key, format!("id={}", i + 1), "{e}");
                assert!(!e.hint().is_empty());
            }
            (got, want) => panic!("{ty} {literal}: expected {want:?}, converted to {got:?}"),
        }
    }
    let pg = pg(&db.pg_url).await;
    create_target(&pg, &by_copy, options).await;
    create_target(&pg, &by_bind, options).await;
    assert_eq!(column_type(&pg, &by_copy, "c").await, pg_type, "{ty}");
    let n = sink::binary::copy_rows(&pg, &by_copy, &converted)
        .await
        .unwrap_or_else(|e| panic!("COPY {ty}: {e:?}"));
    assert_eq!(n as usize, converted.len());
    insert_bound(&pg, &by_bind, &converted).await;
    for m in [&by_copy, &by_bind] {
        assert_eq!(
            texts(&pg, m, "c").await,
            expected,
            "{ty} written to {}",
            m.target
        );
    }
    // Read back in binary: equal values, except that jsonb re-spells its text (key order,
    // whitespace, escapes), which the canonical digest must see through.
    let back = sink::binary::read_rows(&pg, &by_copy, &["id"])
        .await
        .unwrap();
    assert_eq!(back.len(), converted.len());
    for (a, b) in back.iter().zip(&converted) {
        if !b.iter().any(|v| matches!(v, PgValue::Jsonb(_))) {
            assert_eq!(a, b, "{ty}: binary read-back differs");
        }
        assert_eq!(
            row_digest(a),
            row_digest(b),
            "{ty}: digests of {a:?} and {b:?}"
        );
    }
}
