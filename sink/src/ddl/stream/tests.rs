//! Each DDL kind, exact and inexact, against hand-written expected PostgreSQL statements.

use schemas::ColumnType;
use schemas::mapping::{DdlAction, MappingOptions, ZeroDate};
use schemas::table::{Column, Index, IndexColumn};

use super::*;

fn col(name: &str, ty: &str, nullable: bool) -> Column {
    let mut c = Column::new(name, ColumnType::parse(ty).unwrap());
    c.nullable = nullable;
    c
}

fn table(name: &str, columns: Vec<Column>) -> TableSchema {
    TableSchema {
        id: TableId::new("shop", name),
        columns,
        primary_key: vec![0],
        unique_keys: vec![],
        indexes: vec![],
        foreign_keys: vec![],
        comment: String::new(),
        auto_increment: None,
    }
}

fn base() -> TableSchema {
    table(
        "t",
        vec![col("id", "int", false), col("name", "varchar(10)", true)],
    )
}

fn run(stmt: &str, before: &TableSchema, after: Option<&TableSchema>) -> DdlTranslation {
    run_with(stmt, before, after, &MappingOptions::default())
}

fn run_with(
    stmt: &str,
    before: &TableSchema,
    after: Option<&TableSchema>,
    opts: &MappingOptions,
) -> DdlTranslation {
    let naming = Naming {
        options: opts,
        target_schema: &|db: &str| db.to_owned(),
        migrated: &|_: &TableId| true,
    };
    translate_table_ddl(stmt, "shop", Some(before), after, &naming)
}

fn applied(t: &DdlTranslation) -> Vec<&str> {
    assert_eq!(t.decision, DdlDecision::Apply, "{t:#?}");
    t.statements.iter().map(String::as_str).collect()
}

fn stop_reason(t: &DdlTranslation) -> &str {
    match &t.decision {
        DdlDecision::Stop { reason, .. } => reason,
        other => panic!("expected stop, got {other:?}: {t:#?}"),
    }
}

#[test]
fn add_nullable_column() {
    let mut a = base();
    a.columns.push(col("note", "text", true));
    let t = run("ALTER TABLE t ADD COLUMN note TEXT", &base(), Some(&a));
    assert_eq!(
        applied(&t),
        vec![r#"ALTER TABLE "shop"."t" ADD COLUMN "note" text"#]
    );
    assert_eq!(t.steps[0].kind, DdlKind::AddColumn);
}

#[test]
fn add_not_null_column_fills_mysql_implicit_default() {
    let mut a = base();
    a.columns.push(col("qty", "int", false));
    let t = run(
        "ALTER TABLE t ADD COLUMN qty INT NOT NULL",
        &base(),
        Some(&a),
    );
    assert_eq!(
        applied(&t),
        vec![
            r#"ALTER TABLE "shop"."t" ADD COLUMN "qty" integer DEFAULT 0 NOT NULL"#,
            r#"ALTER TABLE "shop"."t" ALTER COLUMN "qty" DROP DEFAULT"#,
        ]
    );
    let mut a = base();
    a.columns.push(col("kind", "enum('x','y')", false));
    let t = run(
        "ALTER TABLE t ADD kind ENUM('x','y') NOT NULL",
        &base(),
        Some(&a),
    );
    assert!(
        t.statements[0].contains(
            r#"DEFAULT 'x' NOT NULL CONSTRAINT "t_kind_check" CHECK ("kind" IN ('x', 'y', ''))"#
        ),
        "{t:#?}"
    );
}

#[test]
fn add_not_null_date_follows_zero_date_policy() {
    let mut a = base();
    a.columns.push(col("d", "date", false));
    let t = run("ALTER TABLE t ADD d DATE NOT NULL", &base(), Some(&a));
    assert!(stop_reason(&t).contains("0000-00-00"), "{t:#?}");
    let o = MappingOptions {
        zero_date: ZeroDate::NegInfinity,
        ..Default::default()
    };
    let t = run_with("ALTER TABLE t ADD d DATE NOT NULL", &base(), Some(&a), &o);
    assert_eq!(
        applied(&t)[0],
        r#"ALTER TABLE "shop"."t" ADD COLUMN "d" date DEFAULT '-infinity'::date NOT NULL"#
    );
}

#[test]
fn add_column_defaulting_to_now_is_inexact_unless_forced() {
    let mut a = base();
    let mut c = col("at", "timestamp", false);
    c.default = Some("current_timestamp()".into());
    a.columns.push(c);
    let stmt = "ALTER TABLE t ADD at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP";
    let t = run(stmt, &base(), Some(&a));
    assert!(stop_reason(&t).contains("time of the ALTER"), "{t:#?}");
    let mut o = MappingOptions::default();
    o.ddl.add_column = DdlAction::Apply;
    let t = run_with(stmt, &base(), Some(&a), &o);
    assert_eq!(
        applied(&t),
        vec![
            r#"ALTER TABLE "shop"."t" ADD COLUMN "at" timestamp(0) with time zone DEFAULT CURRENT_TIMESTAMP(0) NOT NULL"#
        ]
    );
}

#[test]
fn drop_column() {
    let mut a = base();
    a.columns.pop();
    let t = run("ALTER TABLE t DROP COLUMN name", &base(), Some(&a));
    assert_eq!(
        applied(&t),
        vec![r#"ALTER TABLE "shop"."t" DROP COLUMN IF EXISTS "name""#]
    );
}

#[test]
fn rename_column_is_not_a_drop_and_add() {
    let mut a = base();
    a.columns[1].name = "title".into();
    let t = run(
        "ALTER TABLE t RENAME COLUMN name TO title",
        &base(),
        Some(&a),
    );
    assert_eq!(
        applied(&t),
        vec![r#"ALTER TABLE "shop"."t" RENAME COLUMN "name" TO "title""#]
    );
    // CHANGE renames and widens in one statement.
    let mut a = base();
    a.columns[0] = col("ident", "bigint", false);
    let t = run(
        "ALTER TABLE t CHANGE id ident BIGINT NOT NULL",
        &base(),
        Some(&a),
    );
    assert_eq!(
        applied(&t),
        vec![
            r#"ALTER TABLE "shop"."t" RENAME COLUMN "id" TO "ident""#,
            r#"ALTER TABLE "shop"."t" ALTER COLUMN "ident" TYPE bigint"#,
        ]
    );
}

#[test]
fn unparseable_drop_plus_add_stops() {
    let mut a = base();
    a.columns[1].name = "title".into();
    let t = run("ALTER TABLE t this is not sql", &base(), Some(&a));
    assert!(
        stop_reason(&t).contains("cannot be told from a rename"),
        "{t:#?}"
    );
}

#[test]
fn modify_column_exact_and_inexact() {
    let mut a = base();
    a.columns[1] = col("name", "varchar(40)", true);
    let t = run("ALTER TABLE t MODIFY name VARCHAR(40)", &base(), Some(&a));
    assert_eq!(
        applied(&t),
        vec![r#"ALTER TABLE "shop"."t" ALTER COLUMN "name" TYPE character varying(40)"#]
    );
    let mut a = base();
    a.columns[1] = col("name", "int", true);
    let t = run("ALTER TABLE t MODIFY name INT", &base(), Some(&a));
    assert!(stop_reason(&t).contains("its own casts"), "{t:#?}");
    // Nullability and default.
    let mut a = base();
    a.columns[1].nullable = false;
    a.columns[1].default = Some("'x'".into());
    let t = run(
        "ALTER TABLE t MODIFY name VARCHAR(10) NOT NULL DEFAULT 'x'",
        &base(),
        Some(&a),
    );
    assert_eq!(
        applied(&t),
        vec![
            r#"ALTER TABLE "shop"."t" ALTER COLUMN "name" SET NOT NULL"#,
            r#"ALTER TABLE "shop"."t" ALTER COLUMN "name" SET DEFAULT 'x'"#,
        ]
    );
}

#[test]
fn binary_widening_pads_like_mysql_and_enum_labels_swap_the_check() {
    let b = table(
        "t",
        vec![col("id", "int", false), col("h", "binary(4)", true)],
    );
    let mut a = b.clone();
    a.columns[1] = col("h", "binary(8)", true);
    let t = run("ALTER TABLE t MODIFY h BINARY(8)", &b, Some(&a));
    assert_eq!(
        applied(&t),
        vec![
            r#"ALTER TABLE "shop"."t" ALTER COLUMN "h" TYPE bytea USING CASE WHEN length("h") < 8 THEN "h" || decode(repeat('00', 8 - length("h")), 'hex') ELSE "h" END"#
        ]
    );
    let b = table(
        "t",
        vec![col("id", "int", false), col("e", "enum('a','b')", true)],
    );
    let mut a = b.clone();
    a.columns[1] = col("e", "enum('a','b','c,d')", true);
    let t = run("ALTER TABLE t MODIFY e ENUM('a','b','c,d')", &b, Some(&a));
    assert_eq!(
        applied(&t),
        vec![
            r#"ALTER TABLE "shop"."t" DROP CONSTRAINT IF EXISTS "t_e_check""#,
            r#"ALTER TABLE "shop"."t" ADD CONSTRAINT "t_e_check" CHECK ("e" IN ('a', 'b', 'c,d', ''))"#,
        ]
    );
}

#[test]
fn indexes_add_and_drop() {
    let mut a = base();
    a.indexes.push(Index {
        name: "by_name".into(),
        columns: vec![IndexColumn {
            column: 1,
            prefix_len: None,
            descending: false,
        }],
        unique: false,
        kind: "BTREE".into(),
    });
    let t = run("CREATE INDEX by_name ON t (name)", &base(), Some(&a));
    assert_eq!(
        applied(&t),
        vec![r#"CREATE INDEX "t_by_name" ON "shop"."t" ("name")"#]
    );
    assert_eq!(t.steps[0].kind, DdlKind::AddIndex);
    let t = run("DROP INDEX by_name ON t", &a, Some(&base()));
    assert_eq!(
        applied(&t),
        vec![r#"DROP INDEX IF EXISTS "shop"."t_by_name""#]
    );
}

#[test]
fn create_drop_rename_truncate_tables() {
    let naming_opts = MappingOptions::default();
    let naming = Naming {
        options: &naming_opts,
        target_schema: &|db: &str| db.to_owned(),
        migrated: &|_: &TableId| true,
    };
    let t = translate_table_ddl(
        "CREATE TABLE t (id INT PRIMARY KEY, name VARCHAR(10))",
        "shop",
        None,
        Some(&base()),
        &naming,
    );
    assert_eq!(
        applied(&t),
        vec![
            r#"CREATE SCHEMA IF NOT EXISTS "shop""#,
            "CREATE TABLE \"shop\".\"t\" (\n    \"id\" integer NOT NULL,\n    \"name\" character varying(10),\n    CONSTRAINT \"t_pkey\" PRIMARY KEY (\"id\")\n)",
        ]
    );
    let t = run("DROP TABLE t", &base(), None);
    assert_eq!(
        applied(&t),
        vec![
            r#"DROP TABLE IF EXISTS "shop"."t""#,
            r#"DROP FUNCTION IF EXISTS "shop"."t_on_update"()"#,
        ]
    );
    let mut renamed = base();
    renamed.id = TableId::new("shop", "u");
    let t = run("RENAME TABLE t TO u", &base(), Some(&renamed));
    assert_eq!(
        applied(&t),
        vec![
            r#"ALTER TABLE "shop"."t" RENAME TO "u""#,
            r#"ALTER TABLE "shop"."u" RENAME CONSTRAINT "t_pkey" TO "u_pkey""#,
        ]
    );
    let t = run("TRUNCATE TABLE t", &base(), Some(&base()));
    assert_eq!(
        applied(&t),
        vec![r#"TRUNCATE TABLE "shop"."t" RESTART IDENTITY"#]
    );
    let t = run(
        "CREATE OR REPLACE TABLE t (id INT PRIMARY KEY, name VARCHAR(10))",
        &base(),
        Some(&base()),
    );
    assert_eq!(t.steps[0].kind, DdlKind::DropTable);
    assert_eq!(t.steps[1].kind, DdlKind::CreateTable);
}

#[test]
fn rename_across_databases_and_swaps() {
    let opts = MappingOptions::default();
    let naming = Naming {
        options: &opts,
        target_schema: &|db: &str| format!("pg_{db}"),
        migrated: &|_: &TableId| true,
    };
    let a = base();
    let mut b = base();
    b.id = TableId::new("shop", "b");
    b.columns.push(col("extra", "int", true));
    // RENAME TABLE t TO tmp, b TO t, tmp TO b: the two tables swap names.
    let mut new_t = b.clone();
    new_t.id = TableId::new("shop", "t");
    let mut new_b = a.clone();
    new_b.id = TableId::new("shop", "b");
    let change = DdlChange {
        database: "shop".into(),
        statement: "RENAME TABLE t TO tmp, b TO t, tmp TO b".into(),
        tables: vec![
            (TableId::new("shop", "t"), Some(Arc::new(new_t))),
            (TableId::new("shop", "b"), Some(Arc::new(new_b))),
        ],
    };
    let (ta, tb) = (Arc::new(a), Arc::new(b));
    let before = |id: &TableId| match id.table.as_str() {
        "t" => Some(ta.clone()),
        "b" => Some(tb.clone()),
        _ => None,
    };
    let t = translate_ddl(&change, &before, &naming);
    let st = applied(&t);
    assert_eq!(st[0], r#"ALTER TABLE "pg_shop"."t" RENAME TO "tmp""#);
    assert!(
        st.contains(&r#"ALTER TABLE "pg_shop"."b" RENAME TO "t""#),
        "{st:#?}"
    );
    assert!(
        st.contains(&r#"ALTER TABLE "pg_shop"."tmp" RENAME TO "b""#),
        "{st:#?}"
    );
    assert!(
        !st.iter()
            .any(|s| s.contains("ADD COLUMN") || s.contains("DROP COLUMN")),
        "a swap changes no columns: {st:#?}"
    );
    // Across databases.
    let mut moved = base();
    moved.id = TableId::new("archive", "t");
    let change = DdlChange {
        database: "shop".into(),
        statement: "RENAME TABLE shop.t TO archive.t".into(),
        tables: vec![
            (TableId::new("shop", "t"), None),
            (TableId::new("archive", "t"), Some(Arc::new(moved))),
        ],
    };
    let t = translate_ddl(
        &change,
        &|id| (id.table == "t" && id.database == "shop").then(|| ta.clone()),
        &naming,
    );
    assert_eq!(
        applied(&t),
        vec![r#"ALTER TABLE "pg_shop"."t" SET SCHEMA "pg_archive""#]
    );
}

#[test]
fn policies_ignore_and_stop() {
    let mut a = base();
    a.columns.pop();
    let mut o = MappingOptions::default();
    o.ddl.drop_column = DdlAction::Ignore;
    let t = run_with("ALTER TABLE t DROP COLUMN name", &base(), Some(&a), &o);
    assert_eq!(t.decision, DdlDecision::Ignore);
    assert!(t.statements.is_empty());
    o.ddl.drop_column = DdlAction::Stop;
    let t = run_with("ALTER TABLE t DROP COLUMN name", &base(), Some(&a), &o);
    assert!(stop_reason(&t).contains("drop_column"), "{t:#?}");
    // A statement that changes nothing in the target applies nothing.
    let t = run("ALTER TABLE t ENGINE=InnoDB", &base(), Some(&base()));
    assert_eq!(t.decision, DdlDecision::Apply);
    assert!(t.statements.is_empty());
}

#[test]
fn one_stopping_step_stops_the_whole_statement() {
    let mut a = base();
    a.columns.push(col("ok", "int", true));
    a.columns[1] = col("name", "int", true);
    let t = run(
        "ALTER TABLE t ADD ok INT, MODIFY name INT",
        &base(),
        Some(&a),
    );
    assert!(matches!(t.decision, DdlDecision::Stop { .. }));
    assert!(
        t.statements.is_empty(),
        "nothing of a stopped statement is applied"
    );
}
