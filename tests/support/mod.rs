//! Helpers shared by the type-mapping, schema and check integration tests: connections to the
//! harness servers, reading source rows exactly, and writing mapped rows to PostgreSQL both
//! with binary COPY and with binary parameters.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod roundtrip;

use std::sync::Arc;

use mysql_async::prelude::Queryable;
use schemas::mapping::{MappingOptions, map_table};
use schemas::{PgValue, Row, TableId, TableMapping, TableSchema};
use sink::ddl::{Naming, create_schema, create_table};

/// A MySQL connection to the test database.
pub async fn mysql(url: &str) -> mysql_async::Conn {
    mysql_async::Conn::from_url(url)
        .await
        .unwrap_or_else(|e| panic!("connecting to {url}: {e}"))
}

/// A PostgreSQL client with UTC as session time zone, so `timestamptz::text` is UTC.
pub async fn pg(url: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("connecting to {url}: {e}"));
    tokio::spawn(conn);
    client
        .batch_execute("SET TimeZone = 'UTC'; SET IntervalStyle = 'postgres'")
        .await
        .unwrap();
    client
}

/// Runs statements on MySQL, panicking with the statement on failure.
pub async fn exec(conn: &mut mysql_async::Conn, sql: &str) {
    conn.query_drop(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// Reads a table's schema and all its rows through the reader (binary protocol, exact).
pub async fn read_source(
    conn: &mut mysql_async::Conn,
    db: &str,
    table: &str,
) -> (Arc<TableSchema>, Vec<Row>) {
    let schema = cdc_reader::schema::read_table(conn, &TableId::new(db, table))
        .await
        .unwrap_or_else(|e| panic!("reading the schema of {db}.{table}: {e}"));
    let rows = cdc_reader::rows::read_all(conn, &schema)
        .await
        .unwrap_or_else(|e| panic!("reading rows of {db}.{table}: {e}"));
    (Arc::new(schema), rows)
}

/// Options with one change.
pub fn opts(f: impl FnOnce(&mut MappingOptions)) -> MappingOptions {
    let mut o = MappingOptions::default();
    f(&mut o);
    o
}

/// Creates the mapped table on PostgreSQL with the sink's own DDL (indexes, checks, …).
pub async fn create_target(pg: &tokio_postgres::Client, m: &TableMapping, opts: &MappingOptions) {
    let naming = Naming {
        options: opts,
        target_schema: &|_: &str| m.target.schema.clone(),
        migrated: &|_: &TableId| false,
    };
    let plan = create_table(m, &naming);
    let mut sql = vec![create_schema(&m.target.schema)];
    sql.extend(plan.statements);
    for s in sql {
        pg.batch_execute(&s)
            .await
            .unwrap_or_else(|e| panic!("{s}: {e:?}"));
    }
}

/// Maps `schema` into `target_schema`.
pub fn map(schema: &Arc<TableSchema>, target_schema: &str, opts: &MappingOptions) -> TableMapping {
    map_table(schema.clone(), target_schema, opts)
        .unwrap_or_else(|e| panic!("mapping {}: {e}", schema.id))
}

/// Inserts rows one by one with binary parameters.
pub async fn insert_bound(pg: &tokio_postgres::Client, m: &TableMapping, rows: &[Vec<PgValue>]) {
    let sql = sink::binary::insert_statement(m);
    let stmt = pg
        .prepare(&sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    for r in rows {
        let params = sink::binary::params(r);
        let refs = sink::binary::param_refs(&params);
        pg.execute(&stmt, &refs)
            .await
            .unwrap_or_else(|e| panic!("insert {r:?} into {}: {e:?}", m.target));
    }
}

/// `SELECT column::text` of every row, ordered by the table's first column.
pub async fn texts(
    pg: &tokio_postgres::Client,
    m: &TableMapping,
    column: &str,
) -> Vec<Option<String>> {
    let q = schemas::mapping::quote_ident;
    let sql = format!(
        "SELECT {}::text FROM {} ORDER BY {}",
        q(column),
        m.target.quoted(),
        q(&m.columns[0].name)
    );
    pg.query(&sql, &[])
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .iter()
        .map(|r| r.get::<_, Option<String>>(0))
        .collect()
}

/// `format_type` of a target column.
pub async fn column_type(pg: &tokio_postgres::Client, m: &TableMapping, column: &str) -> String {
    pg.query_one(
        "SELECT format_type(atttypid, atttypmod) FROM pg_attribute \
         WHERE attrelid = to_regclass($1) AND attname = $2",
        &[&m.target.quoted(), &column],
    )
    .await
    .unwrap_or_else(|e| panic!("type of {}.{column}: {e}", m.target))
    .get(0)
}
