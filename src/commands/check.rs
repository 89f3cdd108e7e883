//! `my2pg check`: is the source ready for change data capture and the target ready to receive?
//!
//! Three parts: the source preflight (binlog settings, GTIDs, privileges, retention), the
//! target checks (version, encoding, privileges), and — when tables are selected — the data
//! scan (`cdc_reader::scan`): values the target cannot hold under the `[mapping]` policies,
//! tables without keys, names PostgreSQL cannot take. Exit code 0 when nothing blocks.

use anyhow::Result;
use serde::Serialize;

use cdc_reader::preflight::{self, Check, PreflightOptions, PreflightReport, Status};
use cdc_reader::scan::{self, DEFAULT_SAMPLE_KEYS, ScanReport};

use crate::cli::Format;
use crate::config::Config;
use crate::exit;

/// The whole report.
#[derive(Debug, Serialize)]
pub struct CheckReport {
    /// Source preflight.
    pub source: PreflightReport,
    /// Target checks.
    pub target: Vec<Check>,
    /// The data scan of the selected tables (`None` when no tables are selected).
    pub scan: Option<ScanReport>,
    /// Whether nothing blocks the migration.
    pub ok: bool,
}

/// Runs the checks and prints the report; exit code 0 when nothing blocks the migration.
pub async fn run(cfg: &Config, format: Format) -> Result<u8> {
    let source_opts = cfg.source_options()?;
    let target_opts = cfg.target_options()?;
    let mut conn = source_opts.connect().await?;
    let source = preflight::preflight(&mut conn, &PreflightOptions::default()).await?;
    let selection = crate::config::TableSelection::new(&cfg.tables)?;
    let scan = if selection.is_empty() {
        None
    } else {
        let tables = crate::commands::selection::read_selected(&mut conn, &selection).await?;
        let target_schema = |db: &str| cfg.target_schema(db);
        Some(
            scan::scan(
                &mut conn,
                &tables,
                &cfg.mapping,
                &target_schema,
                DEFAULT_SAMPLE_KEYS,
            )
            .await?,
        )
    };
    let _ = conn.disconnect().await;
    let client = target_opts.connect().await?;
    let target = sink::preflight::target_checks(&client, &target_opts).await?;
    let ok = !source.has_failures()
        && target.iter().all(|c| c.status != Status::Fail)
        && !scan.as_ref().is_some_and(ScanReport::blocks);
    let report = CheckReport {
        source,
        target,
        scan,
        ok,
    };
    match format {
        Format::Json => exit::emit(&serde_json::to_string_pretty(&report)?),
        Format::Text => exit::emit(&render_text(&report)),
    }
    Ok(if report.ok { exit::OK } else { exit::DIFFERENT })
}

fn render_text(r: &CheckReport) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let s = &r.source.server;
    let _ = writeln!(
        out,
        "source: {:?} {} (server_id {})",
        s.flavor, s.version, s.server_id
    );
    for c in r.source.checks.iter().chain(r.target.iter()) {
        let mark = match c.status {
            Status::Pass => "ok  ",
            Status::Warn => "warn",
            Status::Fail => "FAIL",
        };
        let _ = writeln!(out, "  [{mark}] {:<30} {}", c.name, c.found);
        if !c.fix.is_empty() {
            let _ = writeln!(out, "         fix: {}", c.fix);
        }
    }
    match &r.scan {
        None => {
            let _ = writeln!(
                out,
                "data: no tables selected, scan skipped (pass --databases or --include)"
            );
        }
        Some(scan) => {
            let _ = writeln!(
                out,
                "data: {} tables scanned, {} findings",
                scan.tables,
                scan.findings.len()
            );
            for f in &scan.findings {
                let mark = match f.status {
                    Status::Pass => "ok  ",
                    Status::Warn => "warn",
                    Status::Fail => "FAIL",
                };
                let at = match &f.column {
                    Some(c) => format!("{}.{c}", f.table),
                    None => f.table.to_string(),
                };
                let count = if f.count > 0 {
                    format!("{} row{}: ", f.count, if f.count == 1 { "" } else { "s" })
                } else {
                    String::new()
                };
                let _ = writeln!(out, "  [{mark}] {at:<30} {count}{}", f.detail);
                if !f.samples.is_empty() {
                    let _ = writeln!(out, "         e.g. {}", f.samples.join("; "));
                }
                let _ = writeln!(out, "         fix: {}", f.fix);
            }
        }
    }
    let _ = writeln!(
        out,
        "{}",
        if r.ok {
            "ready: nothing blocks the migration"
        } else {
            "not ready: fix the FAIL lines above"
        }
    );
    out
}
