//! Verification: is the target, table by table and row by row, what `sync` should have made of
//! the source?
//!
//! The source is read exactly as `sync` reads it (`cdc_reader` decoding), pushed through the
//! same transform plan (`transform`) and converted with the mapping of the transformed schema
//! (`schemas::mapping`), so a transformed or renamed target is verified against what it should
//! hold, not against the raw source. The target is read in PostgreSQL's binary format into the
//! same value type. Values are compared through their canonical encoding
//! (`schemas::canonical`, documented in `docs/verify.md`), rows through the SHA-256 of it, and
//! tables by a symmetric hash merge on the key ([`compare`]). Drift is told from lag by
//! re-checking after the applier's checkpoint passes the source position of the comparison
//! ([`table`]).
//!
//! Where the table allows it, chunk checksums computed inside both databases ([`pushdown`])
//! compare most of the table without moving rows; the chunks whose checksums differ are
//! compared row by row as above, so differences are reported exactly the same way.
//!
//! Modules: [`compare`] (the merge), [`read`] (the two row streams), [`pushdown`] (chunk
//! checksums in SQL and their per-type text forms), [`table`] (one table: preconditions,
//! path, rounds), [`report`] (the report and its stable JSON).

pub mod compare;
pub mod error;
pub mod pushdown;
pub mod read;
pub mod report;
pub mod table;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use schemas::mapping::{MappingOptions, map_table};
use schemas::{TableId, TableSchema};

pub use error::{Result, VerifyError};
pub use report::{ComparePath, Report, TableReport, TableStatus};
pub use table::TableJob;

use report::{ExcludedColumn, Problem};

/// Default tables compared at once: each uses one connection per side and two reader tasks.
pub const DEFAULT_PARALLEL: usize = 4;
/// Default differing rows listed per table.
pub const DEFAULT_MAX_DIFFS: usize = 20;
/// Default re-check rounds while a pipeline applies (3 rounds in which a lagging row is
/// caught mid-flight every time are unlikely; a real difference persists in all of them).
pub const DEFAULT_RECHECKS: u32 = 3;
/// Default wait for the applier to pass the source position of a round.
pub const DEFAULT_CATCH_UP_TIMEOUT: Duration = Duration::from_secs(60);

/// How to verify.
#[derive(Debug, Clone)]
pub struct VerifyOptions {
    /// Tables compared at once.
    pub parallel: usize,
    /// Differing rows listed per table.
    pub max_diffs: usize,
    /// The sync pipeline whose checkpoint tells lag from drift.
    pub pipeline: String,
    /// Re-check rounds after differences while the pipeline applies (0: never re-check).
    pub rechecks: u32,
    /// How long to wait for the checkpoint to pass a round's source position.
    pub catch_up_timeout: Duration,
    /// Rows per second read from each side of each table (`None`: unlimited).
    pub max_rows_per_second: Option<u64>,
    /// Store per-table results in `my2pg.verify_result` (when the state schema exists).
    pub record: bool,
    /// Compare chunk checksums inside the databases where the table allows it
    /// ([`pushdown`]), streaming only differing chunks; `false`: stream every row.
    pub pushdown: bool,
}

impl Default for VerifyOptions {
    fn default() -> Self {
        VerifyOptions {
            parallel: DEFAULT_PARALLEL,
            max_diffs: DEFAULT_MAX_DIFFS,
            pipeline: sink::checkpoint::DEFAULT_PIPELINE.into(),
            rechecks: DEFAULT_RECHECKS,
            catch_up_timeout: DEFAULT_CATCH_UP_TIMEOUT,
            max_rows_per_second: None,
            record: true,
            pushdown: true,
        }
    }
}

/// A selected table: ready to compare, or a problem that keeps it from being compared.
#[derive(Debug, Clone)]
pub enum Entry {
    /// Compare it.
    Compare(TableJob),
    /// Report it without comparing.
    NotCompared {
        /// The table.
        table: TableId,
        /// The target table when known.
        target: String,
        /// `Error` or `Skipped`.
        status: TableStatus,
        /// Why.
        problem: Problem,
    },
}

/// The tables of a run and what transforms leave out of them.
#[derive(Debug, Clone, Default)]
pub struct Prepared {
    /// One per selected table.
    pub entries: Vec<Entry>,
    /// Source columns no target column corresponds to.
    pub columns_excluded: Vec<ExcludedColumn>,
}

/// Builds the jobs: each table through the transform chain, the transformed schema through the
/// mapping. `missing` are tables asked for by name that the source does not have.
pub fn prepare(
    tables: &[Arc<TableSchema>],
    missing: &[TableId],
    chain: &transform::Chain,
    options: &MappingOptions,
    schema_of: &dyn Fn(&str) -> String,
) -> Prepared {
    let mut out = Prepared::default();
    for id in missing {
        out.entries.push(Entry::NotCompared {
            table: id.clone(),
            target: String::new(),
            status: TableStatus::Error,
            problem: Problem {
                kind: "missing_on_source".into(),
                reason: format!("table {id} does not exist on the source"),
                fix: "check the name (db.table) against SHOW TABLES on the source".into(),
            },
        });
    }
    for t in tables {
        let not = |status, kind: &str, reason: String, fix: String| Entry::NotCompared {
            table: t.id.clone(),
            target: String::new(),
            status,
            problem: Problem {
                kind: kind.into(),
                reason,
                fix,
            },
        };
        let plan = match chain.table(t) {
            Ok(Some(p)) => p,
            Ok(None) => {
                out.entries.push(not(
                    TableStatus::Skipped,
                    "transform",
                    format!("table {} is dropped by a transform", t.id),
                    String::new(),
                ));
                continue;
            }
            Err(e) => {
                out.entries.push(not(
                    TableStatus::Error,
                    "transform",
                    e.to_string(),
                    "fix the [[transform]] entry named".into(),
                ));
                continue;
            }
        };
        let output = plan.output().clone();
        let kept: HashSet<&str> = output.columns.iter().map(|c| c.name.as_str()).collect();
        for c in &t.columns {
            if !kept.contains(c.name.as_str()) {
                out.columns_excluded.push(ExcludedColumn {
                    table: t.id.to_string(),
                    column: c.name.clone(),
                    reason: "not in the transformed table (removed or renamed by a transform)"
                        .into(),
                });
            }
        }
        let mapping = match map_table(output.clone(), &schema_of(&output.id.database), options) {
            Ok(m) => m,
            Err(e) => {
                out.entries.push(not(
                    TableStatus::Error,
                    "mapping",
                    format!("{}: {e}", t.id),
                    e.hint(),
                ));
                continue;
            }
        };
        if mapping.key.is_empty() {
            out.entries.push(Entry::NotCompared {
                table: t.id.clone(),
                target: mapping.target.to_string(),
                status: TableStatus::Error,
                problem: Problem {
                    kind: "no_key".into(),
                    reason: format!(
                        "table {} has no primary key and no NOT NULL unique key: rows cannot be \
                         matched one to one",
                        t.id
                    ),
                    fix: format!(
                        "add a primary key on the source: ALTER TABLE {} ADD PRIMARY KEY (…)",
                        t.id
                    ),
                },
            });
            continue;
        }
        out.entries.push(Entry::Compare(TableJob {
            input: t.clone(),
            plan,
            mapping: Arc::new(mapping),
        }));
    }
    out
}

/// Verifies every entry and builds the report. Fails (exit code 2 at the command) only when a
/// server cannot be reached or refuses the credentials; every per-table problem is in the
/// report.
pub async fn verify(
    source: &cdc_reader::SourceOptions,
    target: &sink::TargetOptions,
    prepared: Prepared,
    opts: &VerifyOptions,
) -> Result<Report> {
    let started = Instant::now();
    // Credentials and reachability first, so they are one clear error rather than one per table.
    let mut conn = source.connect().await?;
    let _ = mysql_async::prelude::Queryable::query_drop(&mut conn, "DO 1").await;
    let _ = conn.disconnect().await;
    let client = target.connect().await?;
    let mut reports: Vec<TableReport> = Vec::new();
    let mut jobs = Vec::new();
    for e in prepared.entries {
        match e {
            Entry::Compare(job) => jobs.push(job),
            Entry::NotCompared {
                table,
                target,
                status,
                problem,
            } => {
                let mut r = TableReport::new(table.to_string(), target);
                r.status = status;
                r.problem = Some(problem);
                reports.push(r);
            }
        }
    }
    let compared: Vec<TableReport> = futures::stream::iter(jobs.iter())
        .map(|job| table::verify_table(source, target, job, opts))
        .buffer_unordered(opts.parallel.max(1))
        .collect()
        .await;
    if opts.record {
        record(&client, &opts.pipeline, &compared).await;
    }
    reports.extend(compared);
    let mut report = Report::new(
        source.redacted_url(),
        target.redacted_url(),
        reports,
        started.elapsed().as_secs_f64(),
    );
    report.coverage.columns_excluded = prepared.columns_excluded;
    Ok(report)
}

/// Stores per-table results in `my2pg.verify_result` when the state schema exists (a failure
/// to record is logged, never fatal: the report is the result).
async fn record(client: &tokio_postgres::Client, pipeline: &str, tables: &[TableReport]) {
    let exists = client
        .query_one("SELECT to_regclass('my2pg.verify_result') IS NOT NULL", &[])
        .await
        .map(|r| r.get::<_, bool>(0));
    if !matches!(exists, Ok(true)) {
        return;
    }
    for t in tables {
        if !matches!(t.status, TableStatus::Identical | TableStatus::Different) {
            continue;
        }
        let n = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        let r = client
            .execute(
                "INSERT INTO my2pg.verify_result (pipeline, source_table, verified_at, rows_compared, \
                 rows_missing, rows_extra, rows_differing) VALUES ($1, $2, now(), $3, $4, $5, $6) \
                 ON CONFLICT (pipeline, source_table) DO UPDATE SET verified_at = EXCLUDED.verified_at, \
                 rows_compared = EXCLUDED.rows_compared, rows_missing = EXCLUDED.rows_missing, \
                 rows_extra = EXCLUDED.rows_extra, rows_differing = EXCLUDED.rows_differing",
                &[
                    &pipeline,
                    &t.source_table,
                    &n(t.rows_compared),
                    &n(t.missing_in_target),
                    &n(t.extra_in_target),
                    &n(t.differing),
                ],
            )
            .await;
        if let Err(e) = r {
            tracing::warn!(table = %t.source_table, error = %e, "could not record the verify result");
        }
    }
}
