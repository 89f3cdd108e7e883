//! Applying a parsed ALTER TABLE to the schema the table had before it.
//!
//! `information_schema` describes a table as it is *now*; while the stream catches up, "now"
//! may be several schema changes ahead of the event being read (the table may even have been
//! renamed or dropped since). The schema a DDL event leaves behind is therefore computed from
//! the schema before it and the statement itself, exactly, for the operations that say
//! everything needed: ADD / DROP / RENAME / CHANGE / MODIFY COLUMN, ALTER COLUMN SET|DROP
//! DEFAULT, ADD / DROP PRIMARY KEY / UNIQUE / INDEX, and table options that do not change
//! columns. For anything else [`apply_alter`] returns `None` and the caller falls back to
//! `information_schema`.

use sqlparser::ast::{
    AlterColumnOperation, AlterTableOperation, ColumnDef, ColumnOption, DataType, Expr, Ident,
    MySQLColumnPosition, TableConstraint,
};

use schemas::table::{Generated, Index, IndexColumn};
use schemas::{Charset, Column, ColumnType, TableSchema};

fn name_of(i: &Ident) -> String {
    i.value.clone()
}

fn find(t: &TableSchema, name: &str) -> Option<usize> {
    // MySQL column names are case-insensitive.
    t.columns
        .iter()
        .position(|c| c.name.eq_ignore_ascii_case(name))
}

/// A column from its definition; `None` when the type is not one my2pg reads.
pub fn column_from_def(
    name: &str,
    data_type: &DataType,
    options: &[ColumnOption],
    default_collation: Option<&str>,
) -> Option<Column> {
    let ty = ColumnType::parse(&data_type.to_string()).ok()?;
    if matches!(ty, ColumnType::Unsupported { .. }) {
        return None;
    }
    let mut col = Column::new(name, ty);
    col.charset = None;
    let mut collation: Option<String> = None;
    let mut charset: Option<Charset> = None;
    for opt in options {
        match opt {
            ColumnOption::NotNull => col.nullable = false,
            ColumnOption::Null => col.nullable = true,
            ColumnOption::PrimaryKey(_) => col.nullable = false,
            ColumnOption::Default(e) => col.default = Some(default_text(e)),
            ColumnOption::Comment(c) => col.comment = c.clone(),
            ColumnOption::OnUpdate(_) => col.on_update_current_timestamp = true,
            ColumnOption::CharacterSet(cs) => charset = Some(Charset::from_name(&cs.to_string())),
            ColumnOption::Collation(c) => collation = Some(c.to_string()),
            ColumnOption::Invisible => col.invisible = true,
            ColumnOption::DialectSpecific(tokens) => {
                let text: String = tokens
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(" ");
                if text.to_ascii_uppercase().contains("AUTO_INCREMENT") {
                    col.auto_increment = true;
                }
            }
            ColumnOption::Generated {
                generation_expr,
                generation_expr_mode,
                ..
            } => {
                col.generated = Some(Generated {
                    expression: generation_expr
                        .as_ref()
                        .map(ToString::to_string)
                        .unwrap_or_default(),
                    stored: matches!(
                        generation_expr_mode,
                        Some(sqlparser::ast::GeneratedExpressionMode::Stored)
                    ),
                });
            }
            _ => {}
        }
    }
    if col.ty.is_text() || matches!(col.ty, ColumnType::Json) {
        let cs = charset
            .or_else(|| collation.as_deref().map(Charset::from_collation_name))
            .or_else(|| default_collation.map(Charset::from_collation_name))
            .unwrap_or(Charset::Utf8mb4);
        col.collation = collation.or_else(|| default_collation.map(str::to_owned));
        col.charset = Some(cs);
    }
    // Types whose character set decides bytes vs text: CHAR/VARCHAR … CHARACTER SET binary.
    if let Some(Charset::Binary) = &col.charset {
        col.ty = match col.ty {
            ColumnType::Char { len } => ColumnType::Binary { len },
            ColumnType::VarChar { len } => ColumnType::VarBinary { len },
            other => other,
        };
    }
    Some(col)
}

/// The default as `information_schema.COLUMN_DEFAULT` spells it on MariaDB: string literals
/// quoted, everything else as written.
fn default_text(e: &Expr) -> String {
    e.to_string()
}

fn place(t: &mut TableSchema, col: Column, pos: Option<&MySQLColumnPosition>) -> Option<()> {
    let at = match pos {
        None => t.columns.len(),
        Some(MySQLColumnPosition::First) => 0,
        Some(MySQLColumnPosition::After(a)) => find(t, &a.value)? + 1,
    };
    insert_column(t, at, col);
    Some(())
}

/// Inserts a column at `at`, shifting key column indexes.
fn insert_column(t: &mut TableSchema, at: usize, col: Column) {
    t.columns.insert(at, col);
    let shift = |i: &mut usize| {
        if *i >= at {
            *i += 1;
        }
    };
    t.primary_key.iter_mut().for_each(shift);
    for idx in t.unique_keys.iter_mut().chain(t.indexes.iter_mut()) {
        idx.columns.iter_mut().for_each(|c| shift(&mut c.column));
    }
}

/// Removes column `at`, dropping it from keys (MySQL drops a key whose last column goes).
fn remove_column(t: &mut TableSchema, at: usize) -> Column {
    let col = t.columns.remove(at);
    let fix = |v: &mut Vec<usize>| {
        v.retain(|&i| i != at);
        v.iter_mut().for_each(|i| {
            if *i > at {
                *i -= 1;
            }
        });
    };
    fix(&mut t.primary_key);
    for idx in t.unique_keys.iter_mut().chain(t.indexes.iter_mut()) {
        idx.columns.retain(|c| c.column != at);
        idx.columns.iter_mut().for_each(|c| {
            if c.column > at {
                c.column -= 1;
            }
        });
    }
    t.unique_keys.retain(|i| !i.columns.is_empty());
    t.indexes.retain(|i| !i.columns.is_empty());
    col
}

fn key_columns(t: &TableSchema, cols: &[sqlparser::ast::IndexColumn]) -> Option<Vec<IndexColumn>> {
    cols.iter()
        .map(|c| {
            // `col` or `col(10)` (a prefix, parsed as a function call).
            let text = c.column.expr.to_string();
            let (name, prefix) = match text.split_once('(') {
                Some((n, rest)) => (
                    n.trim().to_owned(),
                    rest.trim_end_matches(')').trim().parse().ok(),
                ),
                None => (text.trim().to_owned(), None),
            };
            let name = name.trim_matches('`').to_owned();
            Some(IndexColumn {
                column: find(t, &name)?,
                prefix_len: prefix,
                descending: matches!(
                    c.column.options.sort,
                    Some(sqlparser::ast::OrderBySort::Desc)
                ),
            })
        })
        .collect()
}

fn add_constraint(t: &mut TableSchema, c: &TableConstraint) -> Option<()> {
    match c {
        TableConstraint::PrimaryKey(pk) => {
            let cols = key_columns(t, &pk.columns)?;
            t.primary_key = cols.iter().map(|c| c.column).collect();
            for c in &cols {
                t.columns[c.column].nullable = false;
            }
        }
        TableConstraint::Unique(u) => {
            let name = u
                .name
                .as_ref()
                .or(u.index_name.as_ref())
                .map(name_of)
                .unwrap_or_else(|| {
                    key_columns(t, &u.columns)
                        .and_then(|c| c.first().map(|c| t.columns[c.column].name.clone()))
                        .unwrap_or_default()
                });
            let columns = key_columns(t, &u.columns)?;
            t.unique_keys.push(Index {
                name,
                columns,
                unique: true,
                kind: "BTREE".into(),
            });
        }
        TableConstraint::Index(i) => {
            let columns = key_columns(t, &i.columns)?;
            let name = i
                .name
                .as_ref()
                .map(name_of)
                .unwrap_or_else(|| t.columns[columns[0].column].name.clone());
            t.indexes.push(Index {
                name,
                columns,
                unique: false,
                kind: "BTREE".into(),
            });
        }
        // Foreign keys and checks do not change what a row holds.
        TableConstraint::ForeignKey(_) | TableConstraint::Check(_) => {}
        _ => return None,
    }
    Some(())
}

fn modify(
    t: &mut TableSchema,
    old: &str,
    new: &str,
    data_type: &DataType,
    options: &[ColumnOption],
    pos: Option<&MySQLColumnPosition>,
    default_collation: Option<&str>,
) -> Option<()> {
    let at = find(t, old)?;
    // Keep the column's collation when the new definition does not name one (MySQL uses the
    // table default then, which is what default_collation is).
    let col = column_from_def(new, data_type, options, default_collation)?;
    let was_pk = t.primary_key.contains(&at);
    match pos {
        None => {
            let nullable = col.nullable && !was_pk;
            t.columns[at] = Column { nullable, ..col };
        }
        Some(p) => {
            remove_column(t, at);
            place(t, col, Some(p))?;
            // Key membership follows the column by name only in simple cases; a moved key
            // column is left to information_schema.
            if was_pk {
                return None;
            }
        }
    }
    Some(())
}

/// Applies `operations` to `before`; `None` when one of them cannot be applied exactly.
pub fn apply_alter(
    before: &TableSchema,
    operations: &[AlterTableOperation],
    default_collation: Option<&str>,
) -> Option<TableSchema> {
    let mut t = before.clone();
    for op in operations {
        match op {
            AlterTableOperation::AddColumn {
                column_def:
                    ColumnDef {
                        name,
                        data_type,
                        options,
                    },
                column_position,
                if_not_exists,
                ..
            } => {
                if find(&t, &name.value).is_some() {
                    if *if_not_exists {
                        continue;
                    }
                    return None;
                }
                let opts: Vec<ColumnOption> = options.iter().map(|o| o.option.clone()).collect();
                let col = column_from_def(&name.value, data_type, &opts, default_collation)?;
                let pk = opts
                    .iter()
                    .any(|o| matches!(o, ColumnOption::PrimaryKey(_)));
                place(&mut t, col, column_position.as_ref())?;
                if pk {
                    t.primary_key = vec![find(&t, &name.value)?];
                }
            }
            AlterTableOperation::DropColumn {
                column_names,
                if_exists,
                ..
            } => {
                for n in column_names {
                    match find(&t, &n.value) {
                        Some(at) => {
                            remove_column(&mut t, at);
                        }
                        None if *if_exists => {}
                        None => return None,
                    }
                }
            }
            AlterTableOperation::RenameColumn {
                old_column_name,
                new_column_name,
            } => {
                let at = find(&t, &old_column_name.value)?;
                t.columns[at].name = new_column_name.value.clone();
            }
            AlterTableOperation::ChangeColumn {
                old_name,
                new_name,
                data_type,
                options,
                column_position,
            } => {
                modify(
                    &mut t,
                    &old_name.value,
                    &new_name.value,
                    data_type,
                    options,
                    column_position.as_ref(),
                    default_collation,
                )?;
            }
            AlterTableOperation::ModifyColumn {
                col_name,
                data_type,
                options,
                column_position,
            } => {
                modify(
                    &mut t,
                    &col_name.value,
                    &col_name.value,
                    data_type,
                    options,
                    column_position.as_ref(),
                    default_collation,
                )?;
            }
            AlterTableOperation::AlterColumn { column_name, op } => {
                let at = find(&t, &column_name.value)?;
                match op {
                    AlterColumnOperation::SetDefault { value } => {
                        t.columns[at].default = Some(default_text(value))
                    }
                    AlterColumnOperation::DropDefault => t.columns[at].default = None,
                    AlterColumnOperation::SetNotNull => t.columns[at].nullable = false,
                    AlterColumnOperation::DropNotNull => t.columns[at].nullable = true,
                    _ => return None,
                }
            }
            AlterTableOperation::AddConstraint { constraint, .. } => {
                add_constraint(&mut t, constraint)?
            }
            AlterTableOperation::DropPrimaryKey { .. } => t.primary_key.clear(),
            AlterTableOperation::DropIndex { name } => {
                let n = name.value.as_str();
                if n.eq_ignore_ascii_case("PRIMARY") {
                    t.primary_key.clear();
                } else {
                    t.unique_keys.retain(|i| !i.name.eq_ignore_ascii_case(n));
                    t.indexes.retain(|i| !i.name.eq_ignore_ascii_case(n));
                }
            }
            AlterTableOperation::DropForeignKey { name, .. }
            | AlterTableOperation::DropConstraint { name, .. } => {
                t.foreign_keys
                    .retain(|f| !f.name.eq_ignore_ascii_case(&name.value));
                t.unique_keys
                    .retain(|i| !i.name.eq_ignore_ascii_case(&name.value));
            }
            AlterTableOperation::RenameTable { .. }
            | AlterTableOperation::Algorithm { .. }
            | AlterTableOperation::Lock { .. }
            | AlterTableOperation::AutoIncrement { .. } => {}
            _ => return None,
        }
    }
    Some(t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use schemas::TableId;
    use schemas::table::IntWidth;
    use sqlparser::ast::Statement;
    use sqlparser::dialect::MySqlDialect;
    use sqlparser::parser::Parser;

    fn base() -> TableSchema {
        let mut id = Column::new(
            "id",
            ColumnType::Integer {
                width: IntWidth::Int,
                unsigned: false,
                display_width: None,
            },
        );
        id.nullable = false;
        TableSchema {
            id: TableId::new("d", "t"),
            columns: vec![id, Column::new("a", ColumnType::VarChar { len: 10 })],
            primary_key: vec![0],
            unique_keys: vec![],
            indexes: vec![],
            foreign_keys: vec![],
            comment: String::new(),
            auto_increment: None,
        }
    }

    fn alter(sql: &str) -> Option<TableSchema> {
        let stmts = Parser::parse_sql(&MySqlDialect {}, sql).unwrap();
        let Statement::AlterTable(at) = &stmts[0] else {
            panic!("not an alter")
        };
        apply_alter(&base(), &at.operations, Some("latin1_swedish_ci"))
    }

    fn names(t: &TableSchema) -> Vec<&str> {
        t.columns.iter().map(|c| c.name.as_str()).collect()
    }

    #[test]
    fn add_drop_rename_change_modify() {
        let t = alter("ALTER TABLE t ADD COLUMN note VARCHAR(20) NOT NULL DEFAULT 'x' COMMENT 'c'")
            .unwrap();
        assert_eq!(names(&t), ["id", "a", "note"]);
        assert!(!t.columns[2].nullable);
        assert_eq!(t.columns[2].default.as_deref(), Some("'x'"));
        assert_eq!(t.columns[2].charset, Some(Charset::Latin1));
        let t = alter("ALTER TABLE t ADD COLUMN z INT UNSIGNED FIRST, DROP COLUMN a").unwrap();
        assert_eq!(names(&t), ["z", "id"]);
        assert_eq!(t.primary_key, vec![1]);
        let t = alter("ALTER TABLE t RENAME COLUMN a TO b").unwrap();
        assert_eq!(names(&t), ["id", "b"]);
        let t = alter("ALTER TABLE t CHANGE a b BIGINT UNSIGNED").unwrap();
        assert_eq!(
            t.columns[1].ty,
            ColumnType::Integer {
                width: IntWidth::Big,
                unsigned: true,
                display_width: None
            }
        );
        let t = alter("ALTER TABLE t MODIFY a TEXT CHARACTER SET utf8mb4").unwrap();
        assert_eq!(t.columns[1].charset, Some(Charset::Utf8mb4));
        let t = alter("ALTER TABLE t ADD UNIQUE KEY ua (a), ADD INDEX ia (a(5))").unwrap();
        assert_eq!(t.unique_keys[0].name, "ua");
        assert_eq!(t.indexes[0].columns[0].prefix_len, Some(5));
        let t = alter("ALTER TABLE t DROP PRIMARY KEY").unwrap();
        assert!(t.primary_key.is_empty());
    }

    #[test]
    fn unknown_operations_defer_to_information_schema() {
        assert!(alter("ALTER TABLE t DROP COLUMN nope").is_none());
        assert!(alter("ALTER TABLE t ADD COLUMN a INT").is_none());
    }
}
