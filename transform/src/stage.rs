//! The stage trait and the built-in stages that reshape a table: table filters, column
//! exclusion, renames, masks and casts.

use schemas::table::{Column, ColumnType, LobSize, TableId, TableSchema};
use schemas::value::{Row, Value};

use crate::TransformError;
use crate::config::{CastTo, TablePatterns};

/// One compiled row step of a stage: a pure function from a row of the stage's input schema
/// to a row of its output schema, or `None` to drop the row.
pub trait RowFn: Send + Sync {
    /// Applies the step.
    fn apply(&self, row: Row) -> Option<Row>;
}

impl<F: Fn(Row) -> Option<Row> + Send + Sync> RowFn for F {
    fn apply(&self, row: Row) -> Option<Row> {
        self(row)
    }
}

/// What a stage does to one table.
pub enum Compiled {
    /// The table is not migrated.
    Drop,
    /// Nothing changes.
    Pass,
    /// The schema changes but row values do not (a column rename).
    Schema(TableSchema),
    /// Schema and rows change.
    Rows {
        /// The table's schema after the stage.
        output: TableSchema,
        /// The row step.
        rows: Box<dyn RowFn>,
    },
}

impl std::fmt::Debug for Compiled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Compiled::Drop => f.write_str("Drop"),
            Compiled::Pass => f.write_str("Pass"),
            Compiled::Schema(s) => write!(f, "Schema({})", s.id),
            Compiled::Rows { output, .. } => write!(f, "Rows({})", output.id),
        }
    }
}

/// A transform stage: pure and synchronous. It is compiled once per table schema; the
/// compiled row step runs per row image.
pub trait Transform: Send + Sync {
    /// One line for logs and reports.
    fn describe(&self) -> String;

    /// Whether the stage keeps the table, by name alone.
    fn keeps_table(&self, _id: &TableId) -> bool {
        true
    }

    /// What the stage does to a table with this schema. An error means the stage cannot be
    /// used with this table (a key column excluded, a cast from a type it cannot read).
    fn compile(&self, schema: &TableSchema) -> Result<Compiled, TransformError>;
}

/// `include_tables` / `exclude_tables`.
pub(crate) struct TableFilter {
    pub(crate) patterns: TablePatterns,
    pub(crate) include: bool,
}

impl Transform for TableFilter {
    fn describe(&self) -> String {
        format!(
            "{} tables {}",
            if self.include { "include" } else { "exclude" },
            self.patterns
        )
    }

    fn keeps_table(&self, id: &TableId) -> bool {
        self.patterns.matches(id) == self.include
    }

    fn compile(&self, schema: &TableSchema) -> Result<Compiled, TransformError> {
        Ok(if self.keeps_table(&schema.id) {
            Compiled::Pass
        } else {
            Compiled::Drop
        })
    }
}

/// The column indexes of `names` in `schema`, or an error naming the missing one.
pub(crate) fn resolve(
    stage: &str,
    schema: &TableSchema,
    names: &[String],
) -> Result<Vec<usize>, TransformError> {
    names
        .iter()
        .map(|n| {
            schema.column_index(n).ok_or_else(|| TransformError {
                stage: stage.to_owned(),
                problem: format!(
                    "table {} has no column {n:?} (columns: {})",
                    schema.id,
                    schema
                        .columns
                        .iter()
                        .map(|c| c.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            })
        })
        .collect()
}

fn key_columns(schema: &TableSchema) -> Vec<usize> {
    schema.identity_key().unwrap_or_default()
}

/// `exclude_columns`: the columns are neither copied nor compared.
pub(crate) struct ExcludeColumns {
    pub(crate) name: String,
    pub(crate) tables: TablePatterns,
    pub(crate) columns: Vec<String>,
}

impl Transform for ExcludeColumns {
    fn describe(&self) -> String {
        format!(
            "exclude columns {} of {}",
            self.columns.join(", "),
            self.tables
        )
    }

    fn compile(&self, schema: &TableSchema) -> Result<Compiled, TransformError> {
        if !self.tables.matches(&schema.id) {
            return Ok(Compiled::Pass);
        }
        // A pattern may match tables that lack some of the columns: only present ones go.
        let drop: Vec<usize> = self
            .columns
            .iter()
            .filter_map(|c| schema.column_index(c))
            .collect();
        if drop.is_empty() {
            return Ok(Compiled::Pass);
        }
        let key = key_columns(schema);
        if let Some(k) = drop.iter().find(|i| key.contains(i)) {
            return Err(TransformError {
                stage: self.name.clone(),
                problem: format!(
                    "column {}.{} identifies rows (it is in the key) and cannot be excluded; \
                     mask it with sha256 instead, which keeps rows distinct",
                    schema.id, schema.columns[*k].name
                ),
            });
        }
        let keep: Vec<usize> = (0..schema.columns.len())
            .filter(|i| !drop.contains(i))
            .collect();
        let output = without_columns(schema, &keep);
        let width = schema.columns.len();
        Ok(Compiled::Rows {
            output,
            rows: Box::new(move |row: Row| {
                if row.0.len() != width {
                    // A row that does not fit the schema it was compiled for is passed on
                    // unchanged: the mapping reports the mismatch with the row named.
                    return Some(row);
                }
                let mut values = row.0;
                let mut i = 0;
                values.retain(|_| {
                    let k = keep.binary_search(&i).is_ok();
                    i += 1;
                    k
                });
                Some(Row(values))
            }),
        })
    }
}

/// The schema with only the columns at `keep` (ascending), key and index positions renumbered;
/// indexes and foreign keys that used a dropped column go.
fn without_columns(schema: &TableSchema, keep: &[usize]) -> TableSchema {
    let new_index = |old: usize| keep.binary_search(&old).ok();
    let mut out = schema.clone();
    out.columns = keep.iter().map(|&i| schema.columns[i].clone()).collect();
    out.primary_key = schema
        .primary_key
        .iter()
        .filter_map(|&i| new_index(i))
        .collect();
    let remap = |ix: &schemas::table::Index| {
        let mut ix = ix.clone();
        for part in &mut ix.columns {
            part.column = new_index(part.column)?;
        }
        Some(ix)
    };
    out.unique_keys = schema.unique_keys.iter().filter_map(remap).collect();
    out.indexes = schema.indexes.iter().filter_map(remap).collect();
    let names: Vec<&str> = out.columns.iter().map(|c| c.name.as_str()).collect();
    out.foreign_keys
        .retain(|fk| fk.columns.iter().all(|c| names.contains(&c.as_str())));
    out
}

/// `rename_column`: the target column gets another name; values are untouched.
pub(crate) struct RenameColumn {
    pub(crate) name: String,
    pub(crate) tables: TablePatterns,
    pub(crate) column: String,
    pub(crate) to: String,
}

impl Transform for RenameColumn {
    fn describe(&self) -> String {
        format!(
            "rename column {} of {} to {}",
            self.column, self.tables, self.to
        )
    }

    fn compile(&self, schema: &TableSchema) -> Result<Compiled, TransformError> {
        if !self.tables.matches(&schema.id) {
            return Ok(Compiled::Pass);
        }
        let Some(i) = schema.column_index(&self.column) else {
            return Ok(Compiled::Pass);
        };
        if schema.column_index(&self.to).is_some() {
            return Err(TransformError {
                stage: self.name.clone(),
                problem: format!(
                    "table {} already has a column {:?}; pick another name",
                    schema.id, self.to
                ),
            });
        }
        let mut out = schema.clone();
        let old = std::mem::replace(&mut out.columns[i].name, self.to.clone());
        for fk in &mut out.foreign_keys {
            for c in &mut fk.columns {
                if *c == old {
                    c.clone_from(&self.to);
                }
            }
        }
        Ok(Compiled::Schema(out))
    }
}

/// `cast`: a column's values change type.
pub(crate) struct Cast {
    pub(crate) name: String,
    pub(crate) tables: TablePatterns,
    pub(crate) column: String,
    pub(crate) to: CastTo,
}

impl Transform for Cast {
    fn describe(&self) -> String {
        format!(
            "cast column {} of {} to {}",
            self.column,
            self.tables,
            self.to.as_str()
        )
    }

    fn compile(&self, schema: &TableSchema) -> Result<Compiled, TransformError> {
        if !self.tables.matches(&schema.id) {
            return Ok(Compiled::Pass);
        }
        let Some(i) = schema.column_index(&self.column) else {
            return Ok(Compiled::Pass);
        };
        let from = &schema.columns[i].ty;
        let ty = self.to.output_type(from).ok_or_else(|| TransformError {
            stage: self.name.clone(),
            problem: format!(
                "column {}.{} is {from:?}; a cast to {} reads {}",
                schema.id,
                self.column,
                self.to.as_str(),
                self.to.reads()
            ),
        })?;
        let mut out = schema.clone();
        let col: &mut Column = &mut out.columns[i];
        col.ty = ty;
        if matches!(self.to, CastTo::Text | CastTo::Json) {
            col.charset = Some(schemas::charset::Charset::Utf8mb4);
            col.collation = Some("utf8mb4_bin".into());
        } else {
            col.charset = None;
            col.collation = None;
        }
        // The source default is in the source type's spelling; the target column gets none.
        col.default = None;
        col.auto_increment = false;
        col.on_update_current_timestamp = false;
        let to = self.to;
        Ok(Compiled::Rows {
            output: out,
            rows: Box::new(move |mut row: Row| {
                if let Some(v) = row.0.get_mut(i) {
                    let old = std::mem::replace(v, Value::Null);
                    *v = to.convert(old);
                }
                Some(row)
            }),
        })
    }
}

/// The type of a column of long text (a cast's output, a SHA-256 mask's output).
pub(crate) fn long_text() -> ColumnType {
    ColumnType::Text {
        size: LobSize::Long,
    }
}
