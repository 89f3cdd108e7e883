//! One table: preconditions on the target, comparison rounds, the re-check that separates
//! drift from replication lag, and the table's report.
//!
//! **Lag is not drift.** When a sync pipeline is applying changes (a checkpoint exists for
//! it), a row can differ only because the applier has not reached the source transaction that
//! changed it. After a round that found differences, the verifier takes the source position
//! `P` read right after that round's source snapshot ended, waits until the pipeline's
//! checkpoint is at or after `P` (every source change the round could have seen is then
//! applied), and compares again. A difference is reported only if its key differed in *every*
//! round: lag moves on between rounds, a real difference stays. When the checkpoint does not
//! reach `P` in time (sync stopped, or far behind), the rounds stop and the report says so.
//!
//! **Path.** A table whose types and key allow it ([`crate::pushdown::plan`]) is compared
//! by chunk checksums in the databases; the chunks whose checksums differ are then streamed
//! and merged exactly like a whole table, restricted to those chunks (more than
//! [`crate::pushdown::MAX_RESTRICTED_CHUNKS`], or more than half the rows: the whole
//! table). Every round does both steps, so the re-check above sees the rows of the second
//! step, and the position `P` is the one read after the last source snapshot of the round.
//! Should a checksum query fail, the table is compared by streaming from then on (the report's
//! `path_reason` says why): the fast path may give up, never decide.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use schemas::pgtext::input_text;
use schemas::{PgValue, SourcePosition, TableMapping, TableSchema};
use tokio::sync::mpsc;
use tokio_postgres::Client;

use crate::VerifyOptions;
use crate::compare::{DiffKind, Found, Merge, Outcome, differing_columns};
use crate::error::{Result, VerifyError};
use crate::pushdown::{ChunkOutcome, MAX_RESTRICTED_CHUNKS, Pushdown, Restriction};
use crate::read::{Batch, stream_source, stream_target};
use crate::report::{ColumnDiff, ComparePath, Problem, RowDiff, TableReport, TableStatus};

/// A table ready to compare: the source schema, its transform plan and the mapping of the
/// transformed schema.
#[derive(Debug, Clone)]
pub struct TableJob {
    /// The source table as introspected.
    pub input: Arc<TableSchema>,
    /// Its transform plan.
    pub plan: Arc<transform::TablePlan>,
    /// The mapping of `plan.output()`.
    pub mapping: Arc<TableMapping>,
}

/// Checks that the target table exists with the columns and types the mapping expects.
/// Returns notes (target columns that are not compared) or the problem.
pub async fn check_target(
    client: &Client,
    m: &TableMapping,
) -> Result<std::result::Result<Vec<String>, Problem>> {
    let q = |what: String| move |source| VerifyError::TargetQuery { what, source };
    let rows = client
        .query(
            "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod) \
             FROM pg_attribute a WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 \
             AND NOT a.attisdropped ORDER BY a.attnum",
            &[&m.target.quoted()],
        )
        .await
        .map_err(q(format!("reading the columns of {}", m.target)))?;
    if rows.is_empty() {
        return Ok(Err(Problem {
            kind: "missing_on_target".into(),
            reason: format!("table {} does not exist on the target", m.target),
            fix: "create and copy it: `my2pg schema --apply`, then `my2pg sync` (or --resnapshot)"
                .into(),
        }));
    }
    let found: Vec<(String, String)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    for c in &m.columns {
        let Some((_, ty)) = found.iter().find(|(n, _)| *n == c.name) else {
            return Ok(Err(Problem {
                kind: "column_missing_on_target".into(),
                reason: format!(
                    "column {}.{} (from source column {}) does not exist on the target",
                    m.target, c.name, c.source_name
                ),
                fix: "add the column to the target table (see `my2pg schema --target …`)".into(),
            }));
        };
        let expected = c.pg_type.to_string();
        let same = match &c.pg_type {
            // Per-database types: the catalogue may print them schema-qualified or not.
            schemas::PgType::Enum { name, .. } => ty.ends_with(name.as_str()),
            schemas::PgType::Geometry => ty.starts_with("geometry"),
            _ => *ty == expected,
        };
        if !same {
            return Ok(Err(Problem {
                kind: "column_type_changed".into(),
                reason: format!(
                    "column {}.{} is {ty} on the target, but source column {} ({}) maps to {expected}",
                    m.target, c.name, c.source_name, c.source_type
                ),
                fix: "the source or target column type changed: alter the target column to the \
                      mapped type (or re-create and re-copy the table)"
                    .into(),
            }));
        }
    }
    Ok(Ok(found
        .iter()
        .filter(|(n, _)| !m.columns.iter().any(|c| c.name == *n))
        .map(|(n, _)| format!("target column {n} has no source column and is not compared"))
        .collect()))
}

/// One streaming comparison of the table (of the rows `restrict` selects, when given); the
/// source position after the source snapshot ended when `want_position`.
pub async fn compare_once(
    source: &cdc_reader::SourceOptions,
    client: Arc<Client>,
    job: &TableJob,
    opts: &VerifyOptions,
    want_position: bool,
    restrict: Option<&Restriction>,
) -> Result<(Outcome, Option<SourcePosition>)> {
    let (tx, mut rx) = mpsc::channel::<Batch>(16);
    let s = tokio::spawn(stream_source(
        source.clone(),
        job.input.clone(),
        job.plan.clone(),
        job.mapping.clone(),
        restrict.map(|r| r.source.clone()),
        tx.clone(),
        opts.max_rows_per_second,
        want_position,
    ));
    let t = tokio::spawn(stream_target(
        client,
        job.mapping.clone(),
        restrict.map(|r| r.target.clone()),
        tx,
        opts.max_rows_per_second,
    ));
    let detail_cap = opts.max_diffs.saturating_mul(4).max(100);
    let mut merge = Merge::new(job.mapping.key.clone(), detail_cap);
    while let Some((side, rows)) = rx.recv().await {
        for r in rows {
            merge.push(side, r);
        }
    }
    let aborted = |e: tokio::task::JoinError| VerifyError::Aborted {
        table: job.input.id.clone(),
        reason: e.to_string(),
    };
    let position = s.await.map_err(aborted)??;
    t.await.map_err(aborted)??;
    Ok((merge.finish(), position))
}

/// What one round of the pushdown path did.
#[derive(Debug, Clone, Copy, Default)]
struct Chunks {
    compared: u64,
    restreamed: u64,
}

/// The rest of a comparison by chunk checksums: the differing chunks of `agg` streamed.
async fn stream_differing_chunks(
    source: &cdc_reader::SourceOptions,
    client: Arc<Client>,
    job: &TableJob,
    opts: &VerifyOptions,
    want_position: bool,
    pushdown: &Pushdown,
    agg: ChunkOutcome,
) -> Result<(Outcome, Option<SourcePosition>, Chunks)> {
    let chunks = Chunks {
        compared: agg.chunks,
        restreamed: agg.differing.len() as u64,
    };
    if agg.differing.is_empty() {
        let outcome = Outcome {
            source_rows: agg.source_rows,
            target_rows: agg.target_rows,
            found: Vec::new(),
        };
        return Ok((outcome, agg.position, chunks));
    }
    let whole = agg.differing.len() > MAX_RESTRICTED_CHUNKS
        || agg.differing_rows.saturating_mul(2) > agg.source_rows;
    if whole {
        let (outcome, position) =
            compare_once(source, client, job, opts, want_position, None).await?;
        return Ok((outcome, position, chunks));
    }
    let restrict = pushdown.restriction(&agg.differing);
    let (found, position) =
        compare_once(source, client, job, opts, want_position, Some(&restrict)).await?;
    let outcome = Outcome {
        source_rows: agg.source_rows,
        target_rows: agg.target_rows,
        found: found.found,
    };
    Ok((outcome, position, chunks))
}

/// Waits until the checkpoint of `pipeline` is at or after `p`; `Ok(false)` after `timeout`
/// or when the positions cannot be compared.
pub async fn wait_for_checkpoint(
    client: &Client,
    pipeline: &str,
    p: &SourcePosition,
    timeout: Duration,
) -> Result<bool> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(cp) = sink::checkpoint::read(client, pipeline).await? {
            match cp.position.is_at_or_after(p) {
                Some(true) => return Ok(true),
                None => return Ok(false),
                Some(false) => {}
            }
        }
        if Instant::now() >= deadline {
            return Ok(false);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Compares one table (with re-check rounds while a pipeline applies) into its report.
pub async fn verify_table(
    source: &cdc_reader::SourceOptions,
    target: &sink::TargetOptions,
    job: &TableJob,
    opts: &VerifyOptions,
) -> TableReport {
    let started = Instant::now();
    let mut report = TableReport::new(job.input.id.to_string(), job.mapping.target.to_string());
    if let Err(e) = verify_into(source, target, job, opts, &mut report).await {
        report.status = TableStatus::Error;
        report.problem = Some(Problem {
            kind: "read_failed".into(),
            reason: format!("comparing {}: {e}", job.input.id),
            fix: e.hint().unwrap_or_default(),
        });
    }
    report.seconds = started.elapsed().as_secs_f64();
    report
}

async fn verify_into(
    source: &cdc_reader::SourceOptions,
    target: &sink::TargetOptions,
    job: &TableJob,
    opts: &VerifyOptions,
    report: &mut TableReport,
) -> Result<()> {
    let client = Arc::new(target.connect().await?);
    match check_target(&client, &job.mapping).await? {
        Ok(notes) => report.notes.extend(notes),
        Err(p) => {
            report.status = TableStatus::Error;
            report.problem = Some(p);
            return Ok(());
        }
    }
    let applying = opts.rechecks > 0
        && sink::checkpoint::read(&*client, &opts.pipeline)
            .await?
            .is_some();
    let mut pushdown = choose_path(&client, job, opts).await?;
    match &pushdown {
        Ok(_) => report.path = ComparePath::Pushdown,
        Err(reason) => {
            report.path = ComparePath::Streaming;
            report.path_reason = Some(reason.clone());
        }
    }
    let mut persisting: Option<HashSet<Vec<u8>>> = None;
    let mut last: Outcome;
    loop {
        report.rounds += 1;
        let checksums = match &pushdown {
            Ok(p) => Some(p.compare(source, &client, &job.input.id, applying).await),
            Err(_) => None,
        };
        let (outcome, position) = match (&pushdown, checksums) {
            (Ok(p), Some(Ok(agg))) => {
                let (outcome, position, chunks) =
                    stream_differing_chunks(source, client.clone(), job, opts, applying, p, agg)
                        .await?;
                report.chunks = chunks.compared;
                report.chunks_restreamed = chunks.restreamed;
                (outcome, position)
            }
            (_, Some(Err(e))) => {
                // A checksum query failed (a server limit, a value one of its functions
                // rejects): the streaming path needs none of them, so it decides.
                // The server's own message belongs in the report: it says what to change.
                let e = cdc_reader::error::chain(&e);
                tracing::warn!(table = %job.input.id, error = %e, "chunk checksums failed; comparing row by row");
                let reason = format!("the chunk checksum queries failed: {e}");
                report.path = ComparePath::Streaming;
                report.path_reason = Some(reason.clone());
                report.chunks = 0;
                report.chunks_restreamed = 0;
                pushdown = Err(reason);
                compare_once(source, client.clone(), job, opts, applying, None).await?
            }
            _ => compare_once(source, client.clone(), job, opts, applying, None).await?,
        };
        let keys: HashSet<Vec<u8>> = outcome.found.iter().map(|f| f.key.clone()).collect();
        let keys = match persisting.take() {
            None => keys,
            Some(prev) => prev.intersection(&keys).cloned().collect(),
        };
        let done = keys.is_empty() || !applying || report.rounds > opts.rechecks;
        persisting = Some(keys);
        last = outcome;
        if done {
            break;
        }
        let Some(p) = position else { break };
        if !wait_for_checkpoint(&client, &opts.pipeline, &p, opts.catch_up_timeout).await? {
            report.notes.push(format!(
                "pipeline {:?} did not apply up to source position {p} within {}s: the \
                 differences listed may include changes not yet applied",
                opts.pipeline,
                opts.catch_up_timeout.as_secs()
            ));
            break;
        }
    }
    let persisting = persisting.unwrap_or_default();
    report.source_rows = last.source_rows;
    report.target_rows = last.target_rows;
    report.rows_compared = last.source_rows.max(last.target_rows);
    let found: Vec<Found> = last
        .found
        .into_iter()
        .filter(|f| persisting.contains(&f.key))
        .collect();
    for f in &found {
        match f.kind {
            DiffKind::MissingInTarget => report.missing_in_target += 1,
            DiffKind::ExtraInTarget => report.extra_in_target += 1,
            DiffKind::Differing => report.differing += 1,
        }
    }
    report.diffs = found
        .iter()
        .take(opts.max_diffs)
        .map(|f| row_diff(&job.mapping, f))
        .collect();
    report.diffs_truncated = found.len() > report.diffs.len();
    report.status = if found.is_empty() {
        TableStatus::Identical
    } else {
        TableStatus::Different
    };
    Ok(())
}

/// The pushdown plan of the table, or why it is streamed.
async fn choose_path(
    client: &Client,
    job: &TableJob,
    opts: &VerifyOptions,
) -> Result<std::result::Result<Pushdown, String>> {
    if !opts.pushdown {
        return Ok(Err("pushdown turned off".into()));
    }
    if opts.max_rows_per_second.is_some_and(|r| r > 0) {
        return Ok(Err(
            "a rate limit is set (row by row at the configured rate)".into(),
        ));
    }
    let mut plan = match crate::pushdown::plan(job) {
        Ok(p) => p,
        Err(reason) => return Ok(Err(reason)),
    };
    Ok(crate::pushdown::prepare_target(client, &mut plan)
        .await?
        .map(|()| plan))
}

fn row_diff(m: &TableMapping, f: &Found) -> RowDiff {
    let name = |i: usize| {
        m.columns
            .get(i)
            .map_or_else(|| format!("#{i}"), |c| c.name.clone())
    };
    let key = m
        .key
        .iter()
        .zip(&f.key_values)
        .map(|(&i, v)| (name(i), input_text(v)))
        .collect();
    let text = |vals: &Option<Vec<PgValue>>, i: usize| {
        vals.as_ref().and_then(|v| v.get(i)).and_then(input_text)
    };
    let columns = match (&f.source, &f.target) {
        (Some(s), Some(t)) => differing_columns(s, t)
            .into_iter()
            .map(|i| ColumnDiff {
                column: name(i),
                source: text(&f.source, i),
                target: text(&f.target, i),
            })
            .collect(),
        (Some(_), None) | (None, Some(_)) => (0..m.columns.len())
            .map(|i| ColumnDiff {
                column: name(i),
                source: text(&f.source, i),
                target: text(&f.target, i),
            })
            .collect(),
        (None, None) => Vec::new(),
    };
    RowDiff {
        kind: f.kind,
        key,
        columns,
    }
}
