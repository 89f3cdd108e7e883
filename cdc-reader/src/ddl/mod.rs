//! Which tables a QUERY event's statement changes.
//!
//! In ROW format the only QUERY events besides transaction control are schema changes and
//! administrative statements. Statements are parsed with `sqlparser` (MySQL dialect); what it
//! cannot parse falls back to a keyword scan of the leading tokens (`ALTER TABLE x`, `DROP
//! TABLE a, b`, `RENAME TABLE a TO b`, …), so a statement the parser does not know still
//! names its tables and leads to a fresh read of `information_schema`. Statements that touch
//! no table (`GRANT`, `ALTER USER`, `FLUSH`, `SET`, …) are ignored by construction: they are
//! neither parsed into table changes nor ever fatal. Temporary tables are ignored (their rows
//! are never logged in ROW format).

pub mod apply;

use sqlparser::ast::{AlterTableOperation, ObjectName, ObjectNamePart, ObjectType, Statement};
use sqlparser::dialect::MySqlDialect;
use sqlparser::parser::Parser;

use schemas::{TableId, TableSchema};

/// What a statement does to one table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TableDdl {
    /// CREATE TABLE.
    Create,
    /// ALTER TABLE (columns, keys, options).
    Alter,
    /// DROP TABLE.
    Drop,
    /// RENAME TABLE / ALTER TABLE … RENAME TO.
    Rename {
        /// The new name.
        to: TableId,
    },
    /// TRUNCATE TABLE.
    Truncate,
    /// CREATE INDEX … ON table.
    CreateIndex,
    /// DROP INDEX … ON table.
    DropIndex,
}

/// What a statement does to a database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseDdl {
    /// CREATE DATABASE.
    Create,
    /// DROP DATABASE.
    Drop,
}

/// The schema changes of one statement.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SchemaChange {
    /// Tables changed, in statement order.
    pub tables: Vec<(TableId, TableDdl)>,
    /// Databases created or dropped.
    pub databases: Vec<(String, DatabaseDdl)>,
    /// Whether the statement was understood by the parser (false: keyword scan).
    pub parsed: bool,
}

impl SchemaChange {
    /// Whether the statement changes nothing my2pg tracks.
    pub fn is_empty(&self) -> bool {
        self.tables.is_empty() && self.databases.is_empty()
    }
}

fn ident_part(p: &ObjectNamePart) -> Option<String> {
    match p {
        ObjectNamePart::Identifier(i) => Some(i.value.clone()),
        _ => None,
    }
}

fn table_id(name: &ObjectName, default_db: &str) -> Option<TableId> {
    let parts: Vec<String> = name.0.iter().map(ident_part).collect::<Option<_>>()?;
    match parts.as_slice() {
        [t] => Some(TableId::new(default_db, t.clone())),
        [d, t] => Some(TableId::new(d.clone(), t.clone())),
        _ => None,
    }
}

/// Classifies one statement run with default database `default_db`.
pub fn classify(statement: &str, default_db: &str) -> SchemaChange {
    let trimmed = statement.trim_start();
    // Transaction control and the like never reach here in practice, but be safe.
    let head: String = trimmed
        .chars()
        .take(12)
        .collect::<String>()
        .to_ascii_uppercase();
    if head.starts_with("BEGIN")
        || head.starts_with("COMMIT")
        || head.starts_with("ROLLBACK")
        || head.starts_with("SAVEPOINT")
        || head.starts_with("XA ")
    {
        return SchemaChange::default();
    }
    match Parser::parse_sql(&MySqlDialect {}, statement) {
        Ok(stmts) => {
            let mut out = SchemaChange {
                parsed: true,
                ..SchemaChange::default()
            };
            for s in &stmts {
                classify_statement(s, default_db, &mut out);
            }
            // A statement the parser accepted but did not map (e.g. a dialect quirk parsed as
            // something else) while its keywords say it changes a table: trust the keywords.
            if out.is_empty() {
                let scanned = scan(statement, default_db);
                if !scanned.is_empty() {
                    return scanned;
                }
            }
            out
        }
        Err(_) => scan(statement, default_db),
    }
}

/// The schema `id` has after `statement`, computed from `before` (see [`apply`]); `None` when
/// the statement cannot be applied exactly and `information_schema` must be asked.
pub fn schema_after(
    statement: &str,
    default_db: &str,
    id: &TableId,
    before: &TableSchema,
    default_collation: Option<&str>,
) -> Option<TableSchema> {
    let stmts = Parser::parse_sql(&MySqlDialect {}, statement).ok()?;
    let mut current = before.clone();
    let mut touched = false;
    for s in &stmts {
        match s {
            Statement::AlterTable(at) if table_id(&at.name, default_db).as_ref() == Some(id) => {
                current = apply::apply_alter(&current, &at.operations, default_collation)?;
                touched = true;
            }
            Statement::CreateIndex(ci)
                if table_id(&ci.table_name, default_db).as_ref() == Some(id) =>
            {
                let name = ci
                    .name
                    .as_ref()
                    .map(|n| n.to_string().trim_matches('`').to_owned())
                    .unwrap_or_default();
                let constraint = if ci.unique {
                    sqlparser::ast::TableConstraint::Unique(sqlparser::ast::UniqueConstraint {
                        name: Some(sqlparser::ast::Ident::new(name)),
                        index_name: None,
                        index_type_display: sqlparser::ast::KeyOrIndexDisplay::None,
                        index_type: None,
                        columns: ci.columns.clone(),
                        include: vec![],
                        index_options: vec![],
                        characteristics: None,
                        nulls_distinct: sqlparser::ast::NullsDistinctOption::None,
                    })
                } else {
                    sqlparser::ast::TableConstraint::Index(sqlparser::ast::IndexConstraint {
                        display_as_key: false,
                        name: Some(sqlparser::ast::Ident::new(name)),
                        index_type: None,
                        columns: ci.columns.clone(),
                        index_options: vec![],
                    })
                };
                let op = AlterTableOperation::AddConstraint {
                    constraint,
                    not_valid: false,
                };
                current =
                    apply::apply_alter(&current, std::slice::from_ref(&op), default_collation)?;
                touched = true;
            }
            Statement::Drop {
                object_type: ObjectType::Index,
                names,
                table: Some(t),
                ..
            } if table_id(t, default_db).as_ref() == Some(id) => {
                for n in names {
                    let name = n.to_string().trim_matches('`').to_owned();
                    current
                        .unique_keys
                        .retain(|i| !i.name.eq_ignore_ascii_case(&name));
                    current
                        .indexes
                        .retain(|i| !i.name.eq_ignore_ascii_case(&name));
                    if name.eq_ignore_ascii_case("PRIMARY") {
                        current.primary_key.clear();
                    }
                }
                touched = true;
            }
            _ => {}
        }
    }
    touched.then_some(current)
}

fn classify_statement(s: &Statement, db: &str, out: &mut SchemaChange) {
    match s {
        Statement::CreateTable(ct) if !ct.temporary => {
            if let Some(id) = table_id(&ct.name, db) {
                out.tables.push((id, TableDdl::Create));
            }
        }
        Statement::AlterTable(at) => {
            let Some(id) = table_id(&at.name, db) else {
                return;
            };
            let mut renamed = None;
            for op in &at.operations {
                if let AlterTableOperation::RenameTable { table_name } = op {
                    let name = match table_name {
                        sqlparser::ast::RenameTableNameKind::As(n)
                        | sqlparser::ast::RenameTableNameKind::To(n) => n,
                    };
                    renamed = table_id(name, db);
                }
            }
            let has_other = at
                .operations
                .iter()
                .any(|op| !matches!(op, AlterTableOperation::RenameTable { .. }));
            if has_other || renamed.is_none() {
                out.tables.push((id.clone(), TableDdl::Alter));
            }
            if let Some(to) = renamed {
                out.tables.push((id, TableDdl::Rename { to }));
            }
        }
        Statement::Drop {
            object_type: ObjectType::Table,
            names,
            temporary: false,
            ..
        } => {
            for n in names {
                if let Some(id) = table_id(n, db) {
                    out.tables.push((id, TableDdl::Drop));
                }
            }
        }
        Statement::Drop {
            object_type: ObjectType::Index,
            table: Some(t),
            ..
        } => {
            if let Some(id) = table_id(t, db) {
                out.tables.push((id, TableDdl::DropIndex));
            }
        }
        Statement::Drop {
            object_type: ObjectType::Schema | ObjectType::Database,
            names,
            ..
        } => {
            for n in names {
                if let Some(d) = n.0.first().and_then(ident_part) {
                    out.databases.push((d, DatabaseDdl::Drop));
                }
            }
        }
        Statement::CreateDatabase { db_name, .. } => {
            if let Some(d) = db_name.0.first().and_then(ident_part) {
                out.databases.push((d, DatabaseDdl::Create));
            }
        }
        Statement::CreateSchema { schema_name, .. } => {
            if let sqlparser::ast::SchemaName::Simple(n) = schema_name
                && let Some(d) = n.0.first().and_then(ident_part)
            {
                out.databases.push((d, DatabaseDdl::Create));
            }
        }
        Statement::RenameTable(renames) => {
            for r in renames {
                if let (Some(from), Some(to)) =
                    (table_id(&r.old_name, db), table_id(&r.new_name, db))
                {
                    out.tables.push((from, TableDdl::Rename { to }));
                }
            }
        }
        Statement::Truncate(t) => {
            for target in &t.table_names {
                if let Some(id) = table_id(&target.name, db) {
                    out.tables.push((id, TableDdl::Truncate));
                }
            }
        }
        Statement::CreateIndex(ci) => {
            if let Some(id) = table_id(&ci.table_name, db) {
                out.tables.push((id, TableDdl::CreateIndex));
            }
        }
        _ => {}
    }
}

/// Splits SQL into tokens: backquoted identifiers (unquoted), words, and punctuation.
fn tokens(sql: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = sql.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
        } else if c == '/' {
            // Skip /* comments */ (including MariaDB's /* generated by server */).
            chars.next();
            if chars.peek() == Some(&'*') {
                chars.next();
                let mut prev = ' ';
                for ch in chars.by_ref() {
                    if prev == '*' && ch == '/' {
                        break;
                    }
                    prev = ch;
                }
            } else {
                out.push("/".into());
            }
        } else if c == '`' {
            chars.next();
            let mut s = String::from("`");
            while let Some(ch) = chars.next() {
                if ch == '`' {
                    if chars.peek() == Some(&'`') {
                        chars.next();
                        s.push('`');
                    } else {
                        break;
                    }
                } else {
                    s.push(ch);
                }
            }
            out.push(s);
        } else if c.is_alphanumeric() || c == '_' || c == '$' {
            let mut s = String::new();
            while let Some(&ch) = chars.peek() {
                if ch.is_alphanumeric() || ch == '_' || ch == '$' {
                    s.push(ch);
                    chars.next();
                } else {
                    break;
                }
            }
            out.push(s);
        } else {
            out.push(c.to_string());
            chars.next();
        }
    }
    out
}

fn is_kw(t: &str, kw: &str) -> bool {
    !t.starts_with('`') && t.eq_ignore_ascii_case(kw)
}

/// Reads `name` or `db . name` at `i`, returning the id and the next index.
fn name_at(toks: &[String], i: usize, db: &str) -> Option<(TableId, usize)> {
    let strip = |t: &String| {
        t.strip_prefix('`')
            .map(str::to_owned)
            .unwrap_or_else(|| t.clone())
    };
    let first = toks.get(i)?;
    if first.len() == 1 && !first.starts_with(|c: char| c.is_alphanumeric() || c == '_') {
        return None;
    }
    if toks.get(i + 1).is_some_and(|t| t == ".") {
        let second = toks.get(i + 2)?;
        Some((TableId::new(strip(first), strip(second)), i + 3))
    } else {
        Some((TableId::new(db, strip(first)), i + 1))
    }
}

/// The keyword scan used when the parser fails.
fn scan(sql: &str, db: &str) -> SchemaChange {
    let toks = tokens(sql);
    let mut out = SchemaChange::default();
    let kw = |i: usize, k: &str| toks.get(i).is_some_and(|t| is_kw(t, k));
    let skip_if_exists = |mut i: usize| {
        if kw(i, "IF") && kw(i + 1, "EXISTS") {
            i += 2;
        } else if kw(i, "IF") && kw(i + 1, "NOT") && kw(i + 2, "EXISTS") {
            i += 3;
        }
        i
    };
    if kw(0, "ALTER") {
        let mut i = 1;
        while kw(i, "ONLINE") || kw(i, "IGNORE") {
            i += 1;
        }
        if kw(i, "TABLE")
            && let Some((id, _)) = name_at(&toks, skip_if_exists(i + 1), db)
        {
            out.tables.push((id, TableDdl::Alter));
        }
    } else if kw(0, "CREATE") {
        let mut i = 1;
        if kw(i, "OR") && kw(i + 1, "REPLACE") {
            i += 2;
        }
        if kw(i, "TEMPORARY") {
            return out;
        }
        if kw(i, "TABLE") {
            if let Some((id, _)) = name_at(&toks, skip_if_exists(i + 1), db) {
                out.tables.push((id, TableDdl::Create));
            }
        } else {
            while kw(i, "UNIQUE") || kw(i, "FULLTEXT") || kw(i, "SPATIAL") || kw(i, "ONLINE") {
                i += 1;
            }
            if kw(i, "INDEX")
                && let Some(on) = (i..toks.len()).find(|&j| kw(j, "ON"))
                && let Some((id, _)) = name_at(&toks, on + 1, db)
            {
                out.tables.push((id, TableDdl::CreateIndex));
            }
        }
    } else if kw(0, "DROP") {
        if kw(1, "TEMPORARY") {
            return out;
        }
        if kw(1, "TABLE") || kw(1, "TABLES") {
            let mut i = skip_if_exists(2);
            while let Some((id, next)) = name_at(&toks, i, db) {
                out.tables.push((id, TableDdl::Drop));
                if toks.get(next).is_some_and(|t| t == ",") {
                    i = next + 1;
                } else {
                    break;
                }
            }
        } else if kw(1, "INDEX")
            && let Some(on) = (2..toks.len()).find(|&j| kw(j, "ON"))
            && let Some((id, _)) = name_at(&toks, on + 1, db)
        {
            out.tables.push((id, TableDdl::DropIndex));
        }
    } else if kw(0, "RENAME") && (kw(1, "TABLE") || kw(1, "TABLES")) {
        let mut i = 2;
        while let Some((from, next)) = name_at(&toks, i, db) {
            if !kw(next, "TO") {
                break;
            }
            let Some((to, after)) = name_at(&toks, next + 1, db) else {
                break;
            };
            out.tables.push((from, TableDdl::Rename { to }));
            if toks.get(after).is_some_and(|t| t == ",") {
                i = after + 1;
            } else {
                break;
            }
        }
    } else if kw(0, "TRUNCATE") {
        let i = if kw(1, "TABLE") { 2 } else { 1 };
        if let Some((id, _)) = name_at(&toks, i, db) {
            out.tables.push((id, TableDdl::Truncate));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(db: &str, name: &str) -> TableId {
        TableId::new(db, name)
    }

    #[test]
    fn parsed_statements_name_their_tables() {
        let c = classify("ALTER TABLE orders ADD COLUMN note TEXT", "shop");
        assert_eq!(c.tables, vec![(t("shop", "orders"), TableDdl::Alter)]);
        let c = classify("DROP TABLE `a`, other.b /* generated by server */", "shop");
        assert_eq!(
            c.tables,
            vec![
                (t("shop", "a"), TableDdl::Drop),
                (t("other", "b"), TableDdl::Drop)
            ]
        );
        let c = classify("RENAME TABLE a TO b, x.c TO x.d", "shop");
        assert_eq!(
            c.tables,
            vec![
                (t("shop", "a"), TableDdl::Rename { to: t("shop", "b") }),
                (t("x", "c"), TableDdl::Rename { to: t("x", "d") })
            ]
        );
        let c = classify("TRUNCATE TABLE shop.t", "x");
        assert_eq!(c.tables, vec![(t("shop", "t"), TableDdl::Truncate)]);
        let c = classify("CREATE TABLE n (id INT PRIMARY KEY)", "shop");
        assert_eq!(c.tables, vec![(t("shop", "n"), TableDdl::Create)]);
        let c = classify("ALTER TABLE a RENAME TO b", "shop");
        assert_eq!(
            c.tables,
            vec![(t("shop", "a"), TableDdl::Rename { to: t("shop", "b") })]
        );
    }

    #[test]
    fn administrative_statements_touch_nothing() {
        for s in [
            "GRANT SELECT ON *.* TO 'u'@'%'",
            "ALTER USER 'u'@'%' IDENTIFIED BY 'x'",
            "FLUSH PRIVILEGES",
            "CREATE USER 'x'@'%'",
            "SET GLOBAL max_connections = 10",
            "CREATE TEMPORARY TABLE tmp (a INT)",
            "DROP TEMPORARY TABLE IF EXISTS `tmp` /* generated by server */",
            "ANALYZE TABLE t",
            "BEGIN",
        ] {
            assert!(classify(s, "db").tables.is_empty(), "{s}");
        }
    }

    #[test]
    fn keyword_scan_covers_what_the_parser_rejects() {
        // MariaDB-only syntax the parser may not know.
        let c = classify(
            "ALTER ONLINE TABLE `shop`.`t` ADD COLUMN c INT INVISIBLE, ALGORITHM=INSTANT",
            "x",
        );
        assert_eq!(c.tables, vec![(t("shop", "t"), TableDdl::Alter)]);
        let c = scan("CREATE UNIQUE INDEX i ON `we``ird` (a)", "db");
        assert_eq!(c.tables, vec![(t("db", "we`ird"), TableDdl::CreateIndex)]);
        let c = scan("DROP INDEX i ON t", "db");
        assert_eq!(c.tables, vec![(t("db", "t"), TableDdl::DropIndex)]);
        let c = scan("DROP TABLE IF EXISTS a, b", "db");
        assert_eq!(c.tables.len(), 2);
    }
}
