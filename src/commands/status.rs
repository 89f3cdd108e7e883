//! `my2pg status`: where a pipeline stands, read from the state it keeps in the target
//! (`my2pg.*`), so it works whether or not `sync` is running and from any machine that can
//! reach the target.

use std::fmt::Write as _;
use std::time::SystemTime;

use anyhow::{Context as _, Result};
use serde::Serialize;

use crate::cli::Format;
use crate::config::Config;

/// One table's state.
#[derive(Debug, Serialize)]
pub struct TableStatus {
    /// `db.table` on the source.
    pub table: String,
    /// `copying`, `copied`, `streaming` or `stopped`.
    pub state: String,
    /// Percentage of chunks copied (100 once the copy is done).
    pub copied_percent: f64,
    /// Rows the copy wrote.
    pub rows_copied: i64,
    /// The last verification of the table, when one ran.
    pub last_verify: Option<VerifyStatus>,
}

/// The last verification of a table.
#[derive(Debug, Serialize)]
pub struct VerifyStatus {
    /// When it ran (RFC 3339).
    pub at: String,
    /// Rows compared.
    pub rows_compared: i64,
    /// Rows missing on the target, extra on the target, differing.
    pub missing: i64,
    /// Rows only on the target.
    pub extra: i64,
    /// Rows with another value.
    pub differing: i64,
}

/// The whole status.
#[derive(Debug, Serialize)]
pub struct Status {
    /// Pipeline name.
    pub pipeline: String,
    /// Its last recorded phase (`streaming`, `stopped`, `stopped on request`, …).
    pub phase: Option<String>,
    /// The error that stopped it.
    pub error: Option<String>,
    /// Applied source position.
    pub position: Option<String>,
    /// Source commit time of the last applied transaction (RFC 3339).
    pub last_source_commit: Option<String>,
    /// When the checkpoint was last written (RFC 3339).
    pub checkpoint_at: Option<String>,
    /// Transactions applied so far.
    pub transactions: i64,
    /// Lag measured by the last heartbeat, in seconds.
    pub heartbeat_lag_seconds: Option<f64>,
    /// Seconds since that heartbeat was applied.
    pub heartbeat_age_seconds: Option<f64>,
    /// Snapshot state (`copying`, `copied`, `done`).
    pub snapshot: Option<String>,
    /// Rows recorded in `my2pg.dead_letter`.
    pub dead_letters: i64,
    /// Per table.
    pub tables: Vec<TableStatus>,
}

fn rfc3339(t: SystemTime) -> String {
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let dt = schemas::value::Timestamp { secs, micros: 0 }.to_utc();
    format!("{}Z", dt.to_string().replace(' ', "T"))
}

fn age(t: SystemTime) -> f64 {
    SystemTime::now()
        .duration_since(t)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Reads the status of `cfg.sync.pipeline` from the target.
pub async fn read(cfg: &Config) -> Result<Status> {
    let pg = cfg.target_options()?.connect().await?;
    let pipeline = cfg.sync.pipeline.clone();
    let has_state: bool = pg
        .query_one("SELECT to_regclass('my2pg.checkpoint') IS NOT NULL", &[])
        .await?
        .get(0);
    anyhow::ensure!(
        has_state,
        "the target has no my2pg state (schema my2pg): sync has not run against this database"
    );
    let table = |name: &str| {
        let name = name.to_owned();
        let pg = &pg;
        async move {
            let exists: bool = pg
                .query_one("SELECT to_regclass($1) IS NOT NULL", &[&name])
                .await?
                .get(0);
            Ok::<bool, tokio_postgres::Error>(exists)
        }
    };
    let mut s = Status {
        pipeline: pipeline.clone(),
        phase: None,
        error: None,
        position: None,
        last_source_commit: None,
        checkpoint_at: None,
        transactions: 0,
        heartbeat_lag_seconds: None,
        heartbeat_age_seconds: None,
        snapshot: None,
        dead_letters: 0,
        tables: Vec::new(),
    };
    if table("my2pg.pipeline_state").await?
        && let Some(r) = pg
            .query_opt(
                "SELECT phase, error FROM my2pg.pipeline_state WHERE pipeline = $1",
                &[&pipeline],
            )
            .await?
    {
        s.phase = Some(r.get(0));
        s.error = r.get(1);
    }
    if let Some(r) = pg
        .query_opt(
            "SELECT position, source_commit_time, applied_at, transactions \
             FROM my2pg.checkpoint WHERE pipeline = $1",
            &[&pipeline],
        )
        .await?
    {
        s.position = Some(r.get(0));
        s.last_source_commit = r.get::<_, Option<SystemTime>>(1).map(rfc3339);
        s.checkpoint_at = Some(rfc3339(r.get(2)));
        s.transactions = r.get(3);
    }
    if let Some(r) = pg
        .query_opt(
            "SELECT source_time, applied_at FROM my2pg.heartbeat WHERE pipeline = $1",
            &[&pipeline],
        )
        .await?
    {
        let (source, applied): (SystemTime, SystemTime) = (r.get(0), r.get(1));
        s.heartbeat_lag_seconds = Some(
            applied
                .duration_since(source)
                .map_or(0.0, |d| d.as_secs_f64()),
        );
        s.heartbeat_age_seconds = Some(age(applied));
    }
    s.dead_letters = pg
        .query_one(
            "SELECT count(*) FROM my2pg.dead_letter WHERE pipeline = $1",
            &[&pipeline],
        )
        .await?
        .get(0);
    let snapshot_done = if table("my2pg.snapshot").await? {
        s.snapshot = pg
            .query_opt(
                "SELECT state FROM my2pg.snapshot WHERE pipeline = $1",
                &[&pipeline],
            )
            .await?
            .map(|r| r.get(0));
        s.snapshot.as_deref() == Some("done")
    } else {
        false
    };
    let stopped = s.phase.as_deref().is_some_and(|p| p.starts_with("stopped"));
    if table("my2pg.snapshot_progress").await? {
        for r in pg
            .query(
                "SELECT source_table, count(*) FILTER (WHERE state = 'done'), count(*), \
                        coalesce(sum(rows_copied), 0)::bigint \
                 FROM my2pg.snapshot_progress WHERE pipeline = $1 \
                 GROUP BY source_table ORDER BY source_table",
                &[&pipeline],
            )
            .await?
        {
            let (done, total): (i64, i64) = (r.get(1), r.get(2));
            let percent = if total == 0 {
                100.0
            } else {
                done as f64 * 100.0 / total as f64
            };
            let state = if stopped {
                "stopped"
            } else if done < total {
                "copying"
            } else if snapshot_done || s.phase.as_deref() == Some("streaming") {
                "streaming"
            } else {
                "copied"
            };
            s.tables.push(TableStatus {
                table: r.get(0),
                state: state.into(),
                copied_percent: percent,
                rows_copied: r.get(3),
                last_verify: None,
            });
        }
    }
    for r in pg
        .query(
            "SELECT source_table, verified_at, rows_compared, rows_missing, rows_extra, rows_differing \
             FROM my2pg.verify_result WHERE pipeline = $1",
            &[&pipeline],
        )
        .await?
    {
        let name: String = r.get(0);
        let v = VerifyStatus {
            at: rfc3339(r.get(1)),
            rows_compared: r.get(2),
            missing: r.get(3),
            extra: r.get(4),
            differing: r.get(5),
        };
        match s.tables.iter_mut().find(|t| t.table == name) {
            Some(t) => t.last_verify = Some(v),
            None => s.tables.push(TableStatus {
                table: name,
                state: "unknown".into(),
                copied_percent: 0.0,
                rows_copied: 0,
                last_verify: Some(v),
            }),
        }
    }
    Ok(s)
}

/// The text form.
pub fn render(s: &Status) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "pipeline {}: {}",
        s.pipeline,
        s.phase.as_deref().unwrap_or("never ran")
    );
    if let Some(e) = &s.error {
        let _ = writeln!(out, "  error      {e}");
    }
    let _ = writeln!(
        out,
        "  position   {}",
        s.position.as_deref().unwrap_or("none yet")
    );
    if let Some(t) = &s.last_source_commit {
        let _ = writeln!(out, "  last commit applied from the source at {t}");
    }
    let _ = writeln!(out, "  applied    {} transactions", s.transactions);
    match (s.heartbeat_lag_seconds, s.heartbeat_age_seconds) {
        (Some(l), Some(a)) => {
            let _ = writeln!(
                out,
                "  lag        {l:.2} s at the last heartbeat, {a:.0} s ago"
            );
        }
        _ => {
            let _ = writeln!(out, "  lag        no heartbeat applied yet");
        }
    }
    let _ = writeln!(
        out,
        "  snapshot   {}",
        s.snapshot.as_deref().unwrap_or("not started")
    );
    let _ = writeln!(out, "  dead letters {}", s.dead_letters);
    if !s.tables.is_empty() {
        let _ = writeln!(out, "  tables");
        for t in &s.tables {
            let verify = t
                .last_verify
                .as_ref()
                .map_or("never verified".to_owned(), |v| {
                    if v.missing + v.extra + v.differing == 0 {
                        format!("verified {}: identical ({} rows)", v.at, v.rows_compared)
                    } else {
                        format!(
                            "verified {}: {} missing, {} extra, {} differing of {} rows",
                            v.at, v.missing, v.extra, v.differing, v.rows_compared
                        )
                    }
                });
            let _ = writeln!(
                out,
                "    {:<32} {:<10} {:>5.1} % copied ({} rows)  {verify}",
                t.table, t.state, t.copied_percent, t.rows_copied
            );
        }
    }
    out
}

/// Runs `my2pg status`; exit 0 when the pipeline is not stopped by an error, 1 when it is.
pub async fn run(cfg: &Config, format: Format) -> Result<u8> {
    let s = read(cfg).await.context("reading the pipeline's state")?;
    match format {
        Format::Text => crate::exit::emit(&render(&s)),
        Format::Json => crate::exit::emit(&serde_json::to_string_pretty(&s)?),
    }
    Ok(if s.error.is_some() {
        crate::exit::DIFFERENT
    } else {
        crate::exit::OK
    })
}
