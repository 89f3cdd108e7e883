//! The verify report: per table counts and differing rows, a coverage section, totals. Its JSON
//! form is a stable interface for CI gates (documented in `docs/verify.md`; fields are only
//! ever added, `format_version` changes if one is removed or changes meaning).

use std::fmt::Write as _;

use serde::Serialize;

use crate::compare::DiffKind;

/// The JSON format version.
pub const FORMAT_VERSION: u32 = 1;

/// What became of one table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TableStatus {
    /// Every row equal.
    Identical,
    /// Rows differ.
    Different,
    /// The table could not be compared (missing on one side, column type changed, no key,
    /// read error): see `problem`.
    Error,
    /// Not compared on purpose (a transform drops it).
    Skipped,
}

/// How a table was compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ComparePath {
    /// Chunk checksums computed in both databases; differing chunks compared row by row.
    Pushdown,
    /// Every row streamed from both sides and compared in my2pg.
    Streaming,
}

/// One column of a differing row.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ColumnDiff {
    /// Target column name.
    pub column: String,
    /// Source value as PostgreSQL input text (`null` for NULL).
    pub source: Option<String>,
    /// Target value as PostgreSQL input text (`null` for NULL).
    pub target: Option<String>,
}

/// One differing row.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RowDiff {
    /// Missing in target, extra in target, or differing.
    pub kind: DiffKind,
    /// The key: target column name → value text.
    pub key: Vec<(String, Option<String>)>,
    /// For `differing`: the columns that differ. For missing/extra: every column of the row
    /// that exists (source or target value), when it was kept.
    pub columns: Vec<ColumnDiff>,
}

/// Why a table could not be compared, and the fix.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Problem {
    /// Short machine-readable kind: `missing_on_source`, `missing_on_target`,
    /// `column_missing_on_target`, `column_type_changed`, `no_key`, `transform`, `mapping`,
    /// `read_failed`.
    pub kind: String,
    /// What is wrong.
    pub reason: String,
    /// What to do.
    pub fix: String,
}

/// One table's result.
#[derive(Debug, Clone, Serialize)]
pub struct TableReport {
    /// Source table `db.table`.
    pub source_table: String,
    /// Target table `schema.table` (empty when unknown).
    pub target_table: String,
    /// The outcome.
    pub status: TableStatus,
    /// Rows read from the source (after transform filters).
    pub source_rows: u64,
    /// Rows read from the target.
    pub target_rows: u64,
    /// Rows compared (the larger of the two counts).
    pub rows_compared: u64,
    /// Rows in the source and not in the target.
    pub missing_in_target: u64,
    /// Rows in the target and not in the source.
    pub extra_in_target: u64,
    /// Rows in both with different values.
    pub differing: u64,
    /// Up to `--max-diffs` differing rows.
    pub diffs: Vec<RowDiff>,
    /// Whether more differing rows exist than are listed.
    pub diffs_truncated: bool,
    /// Comparison rounds (more than 1 when differences were re-checked after the applier
    /// caught up).
    pub rounds: u32,
    /// Notes: target columns not compared, re-check caveats.
    pub notes: Vec<String>,
    /// Why it could not be compared (status `error` or `skipped`).
    pub problem: Option<Problem>,
    /// Seconds spent.
    pub seconds: f64,
    /// How it was compared.
    pub path: ComparePath,
    /// Why it was streamed rather than pushed down (`None` for `pushdown`).
    pub path_reason: Option<String>,
    /// Chunks whose checksums the databases compared (last round; 0 when streamed).
    pub chunks: u64,
    /// Of those, chunks whose checksums differed and that were compared row by row.
    pub chunks_restreamed: u64,
}

impl TableReport {
    /// An empty report for a table.
    pub fn new(source_table: String, target_table: String) -> TableReport {
        TableReport {
            source_table,
            target_table,
            status: TableStatus::Identical,
            source_rows: 0,
            target_rows: 0,
            rows_compared: 0,
            missing_in_target: 0,
            extra_in_target: 0,
            differing: 0,
            diffs: Vec::new(),
            diffs_truncated: false,
            rounds: 0,
            notes: Vec::new(),
            problem: None,
            seconds: 0.0,
            path: ComparePath::Streaming,
            path_reason: None,
            chunks: 0,
            chunks_restreamed: 0,
        }
    }

    /// Rows that differ in any way.
    pub fn differences(&self) -> u64 {
        self.missing_in_target + self.extra_in_target + self.differing
    }
}

/// A table not compared.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Skipped {
    /// The table.
    pub table: String,
    /// Why.
    pub reason: String,
}

/// A source column not compared because a transform removes it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExcludedColumn {
    /// `db.table`.
    pub table: String,
    /// The source column.
    pub column: String,
    /// Why.
    pub reason: String,
}

/// How one compared table was compared.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TablePath {
    /// The table.
    pub table: String,
    /// `pushdown` or `streaming`.
    pub path: ComparePath,
    /// Why `streaming`.
    pub reason: Option<String>,
}

/// What the run covered.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Coverage {
    /// Tables compared completely.
    pub tables_compared: usize,
    /// The path of every compared table.
    pub paths: Vec<TablePath>,
    /// Tables not compared, and why (errors included).
    pub tables_skipped: Vec<Skipped>,
    /// Source columns excluded by transforms.
    pub columns_excluded: Vec<ExcludedColumn>,
    /// Wall-clock seconds of the run.
    pub seconds: f64,
}

/// Sums over all tables.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Totals {
    /// Rows compared.
    pub rows_compared: u64,
    /// Missing in target.
    pub missing_in_target: u64,
    /// Extra in target.
    pub extra_in_target: u64,
    /// Differing.
    pub differing: u64,
    /// Tables that could not be compared.
    pub tables_with_errors: usize,
    /// Rows compared per second of wall-clock time.
    pub rows_per_second: f64,
}

/// The whole report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// [`FORMAT_VERSION`].
    pub format_version: u32,
    /// `identical`, `different` or `error`.
    pub result: String,
    /// The exit code the command returns (0, 1, 2).
    pub exit_code: u8,
    /// The source, redacted.
    pub source: String,
    /// The target, redacted.
    pub target: String,
    /// Per table, in name order.
    pub tables: Vec<TableReport>,
    /// Coverage.
    pub coverage: Coverage,
    /// Totals.
    pub totals: Totals,
}

impl Report {
    /// Builds the report and its verdict from the table results.
    pub fn new(
        source: String,
        target: String,
        mut tables: Vec<TableReport>,
        seconds: f64,
    ) -> Report {
        tables.sort_by(|a, b| a.source_table.cmp(&b.source_table));
        let mut coverage = Coverage {
            seconds,
            ..Coverage::default()
        };
        let mut totals = Totals::default();
        for t in &tables {
            totals.rows_compared += t.rows_compared;
            totals.missing_in_target += t.missing_in_target;
            totals.extra_in_target += t.extra_in_target;
            totals.differing += t.differing;
            match t.status {
                TableStatus::Identical | TableStatus::Different => {
                    coverage.tables_compared += 1;
                    coverage.paths.push(TablePath {
                        table: t.source_table.clone(),
                        path: t.path,
                        reason: t.path_reason.clone(),
                    });
                }
                TableStatus::Error | TableStatus::Skipped => {
                    if t.status == TableStatus::Error {
                        totals.tables_with_errors += 1;
                    }
                    coverage.tables_skipped.push(Skipped {
                        table: t.source_table.clone(),
                        reason: t
                            .problem
                            .as_ref()
                            .map_or_else(String::new, |p| p.reason.clone()),
                    });
                }
            }
        }
        totals.rows_per_second = if seconds > 0.0 {
            totals.rows_compared as f64 / seconds
        } else {
            0.0
        };
        let (result, exit_code) = if totals.tables_with_errors > 0 {
            ("error", 2)
        } else if tables.iter().any(|t| t.status == TableStatus::Different) {
            ("different", 1)
        } else {
            ("identical", 0)
        };
        Report {
            format_version: FORMAT_VERSION,
            result: result.into(),
            exit_code,
            source,
            target,
            tables,
            coverage,
            totals,
        }
    }

    /// The human-readable table.
    pub fn render_text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{:<40} {:>10} {:>10} {:>9} {:>9} {:>9}  status",
            "table", "source", "target", "missing", "extra", "differ"
        );
        for t in &self.tables {
            let status = match t.status {
                TableStatus::Identical => "identical",
                TableStatus::Different => "DIFFERENT",
                TableStatus::Error => "ERROR",
                TableStatus::Skipped => "skipped",
            };
            let _ = writeln!(
                out,
                "{:<40} {:>10} {:>10} {:>9} {:>9} {:>9}  {status}",
                t.source_table,
                t.source_rows,
                t.target_rows,
                t.missing_in_target,
                t.extra_in_target,
                t.differing
            );
        }
        for t in &self.tables {
            if let Some(p) = &t.problem {
                let _ = writeln!(out, "\n{}: {}", t.source_table, p.reason);
                if !p.fix.is_empty() {
                    let _ = writeln!(out, "  fix: {}", p.fix);
                }
            }
            if t.diffs.is_empty() {
                continue;
            }
            let _ = writeln!(out, "\n{} → {}:", t.source_table, t.target_table);
            for d in &t.diffs {
                let key = d
                    .key
                    .iter()
                    .map(|(k, v)| format!("{k}={}", v.as_deref().unwrap_or("NULL")))
                    .collect::<Vec<_>>()
                    .join(", ");
                let kind = match d.kind {
                    DiffKind::MissingInTarget => "missing in target",
                    DiffKind::ExtraInTarget => "extra in target",
                    DiffKind::Differing => "differs",
                };
                let _ = writeln!(out, "  [{key}] {kind}");
                if d.kind == DiffKind::Differing {
                    for c in &d.columns {
                        let _ = writeln!(
                            out,
                            "      {}: source {} | target {}",
                            c.column,
                            show(&c.source),
                            show(&c.target)
                        );
                    }
                }
            }
            if t.diffs_truncated {
                let _ = writeln!(
                    out,
                    "  … {} more (raise --max-diffs to list them)",
                    t.differences().saturating_sub(t.diffs.len() as u64)
                );
            }
            for n in &t.notes {
                let _ = writeln!(out, "  note: {n}");
            }
        }
        let c = &self.coverage;
        let _ = writeln!(
            out,
            "\ncoverage: {} tables compared, {} not compared, {} columns excluded by transforms, {:.1}s ({:.0} rows/s)",
            c.tables_compared,
            c.tables_skipped.len(),
            c.columns_excluded.len(),
            c.seconds,
            self.totals.rows_per_second
        );
        for t in &self.tables {
            if !matches!(t.status, TableStatus::Identical | TableStatus::Different) {
                continue;
            }
            let _ = match (t.path, &t.path_reason) {
                (ComparePath::Pushdown, _) => writeln!(
                    out,
                    "  {}: chunk checksums in the databases ({} chunks, {} compared row by row)",
                    t.source_table, t.chunks, t.chunks_restreamed
                ),
                (ComparePath::Streaming, Some(r)) => {
                    writeln!(out, "  {}: every row streamed: {r}", t.source_table)
                }
                (ComparePath::Streaming, None) => {
                    writeln!(out, "  {}: every row streamed", t.source_table)
                }
            };
        }
        for s in &c.tables_skipped {
            let _ = writeln!(out, "  not compared: {}: {}", s.table, s.reason);
        }
        for e in &c.columns_excluded {
            let _ = writeln!(
                out,
                "  column not compared: {}.{}: {}",
                e.table, e.column, e.reason
            );
        }
        let _ = writeln!(
            out,
            "result: {} ({} rows compared, {} missing, {} extra, {} differing)",
            self.result,
            self.totals.rows_compared,
            self.totals.missing_in_target,
            self.totals.extra_in_target,
            self.totals.differing
        );
        out
    }
}

fn show(v: &Option<String>) -> String {
    match v {
        None => "NULL".into(),
        Some(s) => format!("{s:?}"),
    }
}
