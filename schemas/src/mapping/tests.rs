//! The default types of the design table, the options that change them, names and keys.

use super::*;
use crate::table::Column;

fn table(cols: Vec<Column>) -> Arc<TableSchema> {
    Arc::new(TableSchema {
        id: TableId::new("shop", "Orders"),
        columns: cols,
        primary_key: vec![0],
        unique_keys: vec![],
        indexes: vec![],
        foreign_keys: vec![],
        comment: String::new(),
        auto_increment: Some(42),
    })
}

fn ty(s: &str) -> ColumnType {
    ColumnType::parse(s).unwrap()
}

#[test]
fn default_types_follow_the_design_table() {
    let p = MappingOptions::default().global_policy();
    let cases = [
        ("tinyint(1)", "boolean"),
        ("tinyint(4)", "smallint"),
        ("tinyint(3) unsigned", "smallint"),
        ("smallint unsigned", "integer"),
        ("mediumint unsigned", "integer"),
        ("int", "integer"),
        ("int unsigned", "bigint"),
        ("bigint", "bigint"),
        ("bigint(20) unsigned", "numeric(20,0)"),
        ("decimal(65,30)", "numeric(65,30)"),
        ("float", "real"),
        ("double", "double precision"),
        ("bit(1)", "boolean"),
        ("bit(64)", "bit varying(64)"),
        ("char(3)", "character varying(3)"),
        ("varchar(255)", "character varying(255)"),
        ("mediumtext", "text"),
        ("binary(4)", "bytea"),
        ("longblob", "bytea"),
        ("date", "date"),
        ("datetime(6)", "timestamp(6) without time zone"),
        ("timestamp(3)", "timestamp(3) with time zone"),
        ("time", "interval(0)"),
        ("year", "smallint"),
        ("enum('a','b')", "text"),
        ("set('a','b')", "text[]"),
        ("json", "jsonb"),
        ("point", "bytea"),
        ("uuid", "uuid"),
    ];
    for (mysql, pg) in cases {
        let t = pg_type_for(&ty(mysql), &p, false, || unreachable!()).unwrap();
        assert_eq!(t.to_string(), pg, "{mysql}");
    }
    assert_eq!(
        pg_type_for(&ty("inet6"), &p, false, || unreachable!()),
        None
    );
}

#[test]
fn options_change_types() {
    let mut p = MappingOptions::default().global_policy();
    p.tinyint1_as_boolean = false;
    p.unsigned_bigint_as = UnsignedBigintAs::Bigint;
    p.set_as = SetAs::Text;
    p.json_as = JsonAs::Text;
    p.string_as = StringAs::Text;
    p.geometry_as = GeometryAs::Postgis;
    p.enum_as = EnumAs::PgEnum;
    let e = || PgTable {
        schema: "s".into(),
        name: "t_c".into(),
    };
    assert_eq!(
        pg_type_for(&ty("tinyint(1)"), &p, false, e),
        Some(PgType::SmallInt)
    );
    assert_eq!(
        pg_type_for(&ty("bigint unsigned"), &p, false, e),
        Some(PgType::BigInt)
    );
    assert_eq!(
        pg_type_for(&ty("set('a')"), &p, false, e),
        Some(PgType::Text)
    );
    assert_eq!(pg_type_for(&ty("json"), &p, false, e), Some(PgType::Text));
    assert_eq!(
        pg_type_for(&ty("varchar(9)"), &p, false, e),
        Some(PgType::Text)
    );
    assert_eq!(
        pg_type_for(&ty("geometry"), &p, false, e),
        Some(PgType::Geometry)
    );
    assert_eq!(
        pg_type_for(&ty("enum('x')"), &p, false, e)
            .unwrap()
            .to_string(),
        "\"s\".\"t_c\""
    );
    assert_eq!(
        pg_type_for(&ty("varchar(9)"), &p, true, e),
        Some(PgType::Bytea)
    );
}

#[test]
fn map_table_folds_names_and_keeps_source_order() {
    let mut id = Column::new("ID", ty("int unsigned"));
    id.nullable = false;
    id.auto_increment = true;
    let mut d = Column::new("Created", ty("datetime"));
    d.nullable = false;
    let m = map_table(
        table(vec![id, d, Column::new("kind", ty("enum('a','b')"))]),
        "shop",
        &MappingOptions::default(),
    )
    .unwrap();
    assert_eq!(m.target.quoted(), "\"shop\".\"orders\"");
    assert_eq!(m.target_columns(), vec!["id", "created", "kind"]);
    assert_eq!(m.columns[0].identity_start, Some(42));
    assert!(!m.columns[1].nullable);
    assert_eq!(
        m.columns[2].allowed,
        Some(vec!["a".to_owned(), "b".to_owned(), String::new()])
    );
    assert_eq!(m.key, vec![0]);
    assert_eq!(m.column_path(1), "shop.Orders.Created");
}

#[test]
fn zero_date_null_relaxes_not_null_outside_the_key() {
    let o = MappingOptions {
        zero_date: ZeroDate::Null,
        ..Default::default()
    };
    let mut k = Column::new("d0", ty("date"));
    k.nullable = false;
    let mut d = Column::new("d1", ty("date"));
    d.nullable = false;
    let m = map_table(table(vec![k, d]), "shop", &o).unwrap();
    assert!(!m.columns[0].nullable, "key column stays NOT NULL");
    assert!(m.columns[1].nullable);
    assert!(m.columns[1].notes[0].contains("NOT NULL dropped"));
}

#[test]
fn names_too_long_or_clashing_are_errors() {
    let long = "x".repeat(64);
    let e = map_table(
        table(vec![Column::new(long.clone(), ty("int"))]),
        "shop",
        &MappingOptions::default(),
    )
    .unwrap_err();
    assert!(
        matches!(e, MappingError::NameTooLong { bytes: 64, .. }),
        "{e}"
    );
    assert!(
        e.hint().contains("mapping.columns.\"shop.Orders."),
        "{}",
        e.hint()
    );
    let e = map_table(
        table(vec![
            Column::new("é", ty("int")),
            Column::new("É", ty("int")),
        ]),
        "shop",
        &MappingOptions::default(),
    )
    .unwrap_err();
    assert!(matches!(e, MappingError::NameClash { .. }), "{e}");
    let e = map_table(
        table(vec![Column::new("ip", ty("inet6"))]),
        "shop",
        &MappingOptions::default(),
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "column shop.Orders.ip: type inet6 has no PostgreSQL mapping"
    );
}

#[test]
fn derived_names_stay_within_63_bytes_and_unique() {
    assert_eq!(derived_name(&["orders", "idx"]), "orders_idx");
    let a = derived_name(&[&"a".repeat(40), &"b".repeat(40)]);
    let b = derived_name(&[&"a".repeat(40), &"c".repeat(40)]);
    assert!(a.len() <= 63 && b.len() <= 63);
    assert_ne!(a, b);
    let multi = derived_name(&["é".repeat(40).as_str()]);
    assert!(multi.len() <= 63);
}
