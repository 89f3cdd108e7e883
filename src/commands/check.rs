//! `my2pg check`: is the source ready for change data capture and the target ready to receive?

use anyhow::Result;
use serde::Serialize;

use cdc_reader::preflight::{self, Check, PreflightOptions, PreflightReport, Status};

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
    /// Whether nothing blocks the migration.
    pub ok: bool,
}

/// Runs the checks and prints the report; exit code 0 when nothing blocks the migration.
pub async fn run(cfg: &Config, format: Format) -> Result<u8> {
    let source_opts = cfg.source_options()?;
    let target_opts = cfg.target_options()?;
    let mut conn = source_opts.connect().await?;
    let source = preflight::preflight(&mut conn, &PreflightOptions::default()).await?;
    let _ = conn.disconnect().await;
    let client = target_opts.connect().await?;
    let target = sink::preflight::target_checks(&client, &target_opts).await?;
    let ok = !source.has_failures() && target.iter().all(|c| c.status != Status::Fail);
    let report = CheckReport { source, target, ok };
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
