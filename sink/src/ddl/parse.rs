//! What a MySQL DDL statement says that the before/after schemas cannot: renames (of tables and
//! columns), TRUNCATE, and `CREATE OR REPLACE TABLE`.
//!
//! Streaming DDL is translated from the schema diff (the reader's schema before and after the
//! statement is the truth about the new shape), but a diff is ambiguous exactly where data is
//! at stake: column `a` gone and column `b` new is a rename (keep the values) or a drop and an
//! add (lose them); a TRUNCATE or a `CREATE OR REPLACE` leaves the schema as it was while the
//! rows are gone. Those facts come from parsing the statement with `sqlparser`'s MySQL
//! dialect. When the statement does not parse (MariaDB syntax the parser lacks), a token-level
//! fallback still recognises `TRUNCATE` and `RENAME TABLE`, and the translator treats any
//! remaining drop-plus-add of columns as ambiguous (it stops rather than guess).

use sqlparser::ast::{AlterTableOperation, ObjectName, ObjectType, RenameTableNameKind, Statement};
use sqlparser::dialect::MySqlDialect;
use sqlparser::parser::Parser;
use sqlparser::tokenizer::{Token, Tokenizer};

use schemas::TableId;

/// The statement's kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatementKind {
    /// `ALTER TABLE`.
    AlterTable,
    /// `CREATE TABLE`.
    CreateTable,
    /// `DROP TABLE`.
    DropTable,
    /// `RENAME TABLE`.
    RenameTable,
    /// `TRUNCATE TABLE`.
    Truncate,
    /// `CREATE INDEX`.
    CreateIndex,
    /// `DROP INDEX … ON …`.
    DropIndex,
    /// Anything else.
    Other,
}

/// What the statement says beyond the schema diff.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedDdl {
    /// The statement's kind.
    pub kind: StatementKind,
    /// Whether the full parser understood the statement (false: token fallback only).
    pub parsed: bool,
    /// Table renames, old → new, in statement order.
    pub table_renames: Vec<(TableId, TableId)>,
    /// Column renames: table (its name before the statement), old name, new name.
    pub column_renames: Vec<(TableId, String, String)>,
    /// Tables emptied by TRUNCATE.
    pub truncated: Vec<TableId>,
    /// Tables dropped and created again by `CREATE OR REPLACE TABLE`.
    pub replaced: Vec<TableId>,
}

fn table_id(name: &ObjectName, default_db: &str) -> Option<TableId> {
    let parts: Vec<String> = name
        .0
        .iter()
        .map(|p| p.as_ident().map(|i| i.value.clone()))
        .collect::<Option<_>>()?;
    match parts.as_slice() {
        [t] => Some(TableId::new(default_db, t.clone())),
        [db, t] => Some(TableId::new(db.clone(), t.clone())),
        _ => None,
    }
}

/// Parses `statement`, run with `default_db` as the current database.
pub fn parse(statement: &str, default_db: &str) -> ParsedDdl {
    let mut out = ParsedDdl {
        kind: StatementKind::Other,
        parsed: false,
        table_renames: Vec::new(),
        column_renames: Vec::new(),
        truncated: Vec::new(),
        replaced: Vec::new(),
    };
    let statements = match Parser::parse_sql(&MySqlDialect {}, statement) {
        Ok(s) if s.len() == 1 => s,
        _ => {
            fallback(statement, default_db, &mut out);
            return out;
        }
    };
    out.parsed = true;
    let Some(stmt) = statements.into_iter().next() else {
        return out;
    };
    match stmt {
        Statement::AlterTable(alter) => {
            out.kind = StatementKind::AlterTable;
            let Some(id) = table_id(&alter.name, default_db) else {
                return out;
            };
            for op in &alter.operations {
                match op {
                    AlterTableOperation::RenameColumn {
                        old_column_name,
                        new_column_name,
                    } => out.column_renames.push((
                        id.clone(),
                        old_column_name.value.clone(),
                        new_column_name.value.clone(),
                    )),
                    AlterTableOperation::ChangeColumn {
                        old_name, new_name, ..
                    } if old_name.value != new_name.value => out.column_renames.push((
                        id.clone(),
                        old_name.value.clone(),
                        new_name.value.clone(),
                    )),
                    AlterTableOperation::RenameTable { table_name } => {
                        let (RenameTableNameKind::To(n) | RenameTableNameKind::As(n)) = table_name;
                        if let Some(new) = table_id(n, &id.database) {
                            out.table_renames.push((id.clone(), new));
                        }
                    }
                    _ => {}
                }
            }
        }
        Statement::RenameTable(renames) => {
            out.kind = StatementKind::RenameTable;
            for r in renames {
                if let (Some(old), Some(new)) = (
                    table_id(&r.old_name, default_db),
                    table_id(&r.new_name, default_db),
                ) {
                    out.table_renames.push((old, new));
                }
            }
        }
        Statement::Truncate(t) => {
            out.kind = StatementKind::Truncate;
            out.truncated = t
                .table_names
                .iter()
                .filter_map(|t| table_id(&t.name, default_db))
                .collect();
        }
        Statement::CreateTable(c) => {
            out.kind = StatementKind::CreateTable;
            if c.or_replace
                && let Some(id) = table_id(&c.name, default_db)
            {
                out.replaced.push(id);
            }
        }
        Statement::CreateIndex(_) => out.kind = StatementKind::CreateIndex,
        Statement::Drop {
            object_type: ObjectType::Table,
            ..
        } => out.kind = StatementKind::DropTable,
        Statement::Drop {
            object_type: ObjectType::Index,
            ..
        } => out.kind = StatementKind::DropIndex,
        _ => {}
    }
    out
}

/// Keyword-level reading for statements the parser rejects: enough to never miss a
/// TRUNCATE or a table rename.
fn fallback(statement: &str, default_db: &str, out: &mut ParsedDdl) {
    let Ok(tokens) = Tokenizer::new(&MySqlDialect {}, statement).tokenize() else {
        return;
    };
    let words: Vec<Token> = tokens
        .into_iter()
        .filter(|t| !matches!(t, Token::Whitespace(_)))
        .collect();
    let word = |i: usize| match words.get(i) {
        Some(Token::Word(w)) => Some(w.value.clone()),
        _ => None,
    };
    let upper = |i: usize| word(i).map(|w| w.to_ascii_uppercase());
    // A (possibly qualified) name starting at token i; returns the id and the next index.
    let name_at = |i: usize| -> Option<(TableId, usize)> {
        let first = word(i)?;
        if matches!(words.get(i + 1), Some(Token::Period)) {
            let second = word(i + 2)?;
            Some((TableId::new(first, second), i + 3))
        } else {
            Some((TableId::new(default_db, first), i + 1))
        }
    };
    match upper(0).as_deref() {
        Some("TRUNCATE") => {
            out.kind = StatementKind::Truncate;
            let start = if upper(1).as_deref() == Some("TABLE") {
                2
            } else {
                1
            };
            if let Some((id, _)) = name_at(start) {
                out.truncated.push(id);
            }
        }
        Some("RENAME") if upper(1).as_deref() == Some("TABLE") => {
            out.kind = StatementKind::RenameTable;
            let mut i = 2;
            while let Some((old, next)) = name_at(i) {
                if upper(next).as_deref() != Some("TO") {
                    break;
                }
                let Some((new, after)) = name_at(next + 1) else {
                    break;
                };
                out.table_renames.push((old, new));
                if !matches!(words.get(after), Some(Token::Comma)) {
                    break;
                }
                i = after + 1;
            }
        }
        Some("ALTER") => out.kind = StatementKind::AlterTable,
        Some("CREATE") => {
            let replace =
                upper(1).as_deref() == Some("OR") && upper(2).as_deref() == Some("REPLACE");
            let rest: Vec<String> = (1..6).filter_map(upper).collect();
            if rest.iter().any(|w| w == "TABLE") {
                out.kind = StatementKind::CreateTable;
                if replace
                    && let Some(pos) = (1..8).find(|&i| upper(i).as_deref() == Some("TABLE"))
                    && let Some((id, _)) = name_at(pos + 1)
                {
                    out.replaced.push(id);
                }
            } else if rest.iter().any(|w| w == "INDEX") {
                out.kind = StatementKind::CreateIndex;
            }
        }
        Some("DROP") => match upper(1).as_deref() {
            Some("TABLE") | Some("TEMPORARY") => out.kind = StatementKind::DropTable,
            Some("INDEX") => out.kind = StatementKind::DropIndex,
            _ => {}
        },
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(t: &str) -> TableId {
        TableId::new("shop", t)
    }

    #[test]
    fn column_renames() {
        let p = parse("ALTER TABLE t RENAME COLUMN a TO b", "shop");
        assert_eq!(p.kind, StatementKind::AlterTable);
        assert_eq!(p.column_renames, vec![(id("t"), "a".into(), "b".into())]);
        let p = parse(
            "ALTER TABLE `t` CHANGE COLUMN `a` `b` BIGINT NOT NULL",
            "shop",
        );
        assert_eq!(p.column_renames, vec![(id("t"), "a".into(), "b".into())]);
        let p = parse("ALTER TABLE t CHANGE a a BIGINT", "shop");
        assert!(p.column_renames.is_empty());
        let p = parse("ALTER TABLE t DROP COLUMN a, ADD COLUMN b INT", "shop");
        assert!(p.parsed && p.column_renames.is_empty());
    }

    #[test]
    fn table_renames_truncate_and_replace() {
        let p = parse("RENAME TABLE a TO b, other.c TO other.d", "shop");
        assert_eq!(p.kind, StatementKind::RenameTable);
        assert_eq!(
            p.table_renames,
            vec![
                (id("a"), id("b")),
                (TableId::new("other", "c"), TableId::new("other", "d"))
            ]
        );
        let p = parse("ALTER TABLE a RENAME TO b", "shop");
        assert_eq!(p.table_renames, vec![(id("a"), id("b"))]);
        let p = parse("TRUNCATE TABLE shop.t", "x");
        assert_eq!(p.truncated, vec![id("t")]);
        let p = parse("CREATE OR REPLACE TABLE t (id INT)", "shop");
        assert_eq!(p.replaced, vec![id("t")]);
    }

    #[test]
    fn fallback_never_misses_truncate_or_rename() {
        let mut p = ParsedDdl {
            kind: StatementKind::Other,
            parsed: false,
            table_renames: vec![],
            column_renames: vec![],
            truncated: vec![],
            replaced: vec![],
        };
        fallback("truncate `t`", "shop", &mut p);
        assert_eq!(p.truncated, vec![id("t")]);
        fallback("RENAME TABLE a TO b, c TO d", "shop", &mut p);
        assert_eq!(
            p.table_renames,
            vec![(id("a"), id("b")), (id("c"), id("d"))]
        );
    }
}
