//! `my2pg verify`: compares every selected table, source against target, through the same
//! transforms and type mapping as `sync`, and answers identical (exit 0), different (exit 1,
//! with the rows), or could not tell (exit 2, with the reason per table). Wiring only: the
//! comparison is the `verifier` crate's.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result};
use schemas::{TableId, TableSchema};
use verifier::{Prepared, VerifyOptions};

use crate::cli::Format;
use crate::config::Config;
use crate::exit;

/// Flags of `my2pg verify`.
#[derive(Debug, Clone)]
pub struct VerifyArgs {
    /// Tables named explicitly (`db.table`); empty: the configured selection.
    pub tables: Vec<String>,
    /// Report format.
    pub format: Format,
    /// Tables compared at once.
    pub parallel: usize,
    /// Differing rows listed per table.
    pub max_diffs: usize,
    /// Re-check rounds while sync applies.
    pub rechecks: u32,
    /// Seconds to wait for the applier to catch up before a re-check.
    pub catch_up_timeout_secs: u64,
    /// Chunk checksums in the databases where a table allows it (`--no-pushdown`: off).
    pub pushdown: bool,
}

/// Reads the selected tables (or the named ones), returning the schemas and the names that do
/// not exist on the source.
pub async fn source_tables(
    cfg: &Config,
    named: &[String],
) -> Result<(Vec<Arc<TableSchema>>, Vec<TableId>)> {
    let mut conn = cfg.source_options()?.connect().await?;
    let heartbeat = (cfg.sync.heartbeat_interval_ms > 0)
        .then(|| TableId::parse(&cfg.sync.heartbeat_table))
        .flatten();
    let mut tables = Vec::new();
    let mut missing = Vec::new();
    if named.is_empty() {
        let selection = cfg.selection()?;
        for t in crate::commands::selection::read_selected(&mut conn, &selection).await? {
            if heartbeat.as_ref() != Some(&t.id) {
                tables.push(t);
            }
        }
    } else {
        for n in named {
            let id = TableId::parse(n).ok_or_else(|| {
                crate::config::ConfigError::new(
                    "--tables",
                    format!("{n:?} is not of the form db.table"),
                    "name tables as db.table, comma-separated",
                )
            })?;
            match cdc_reader::schema::read_table(&mut conn, &id).await {
                Ok(t) => tables.push(Arc::new(t)),
                Err(cdc_reader::ReaderError::NotFound { .. }) => missing.push(id),
                Err(e) => return Err(e).with_context(|| format!("reading the schema of {id}")),
            }
        }
    }
    let _ = conn.disconnect().await;
    Ok((tables, missing))
}

/// The jobs for `tables` under the configuration's transforms and mapping.
pub fn prepare(cfg: &Config, tables: &[Arc<TableSchema>], missing: &[TableId]) -> Result<Prepared> {
    let chain = cfg.transform_chain()?;
    let schema_of = |db: &str| cfg.target_schema(db);
    Ok(verifier::prepare(
        tables,
        missing,
        &chain,
        &cfg.mapping,
        &schema_of,
    ))
}

/// Runs the comparison and prints the report; the exit code is the verdict.
pub async fn run(cfg: &Config, args: &VerifyArgs) -> Result<u8> {
    let source = cfg.source_options()?;
    let target = cfg.target_options()?;
    let (tables, missing) = source_tables(cfg, &args.tables).await?;
    let prepared = prepare(cfg, &tables, &missing)?;
    let opts = VerifyOptions {
        parallel: args.parallel.max(1),
        max_diffs: args.max_diffs,
        pipeline: cfg.sync.pipeline.clone(),
        rechecks: args.rechecks,
        catch_up_timeout: Duration::from_secs(args.catch_up_timeout_secs),
        max_rows_per_second: None,
        record: true,
        pushdown: args.pushdown,
    };
    let report = verifier::verify(&source, &target, prepared, &opts).await?;
    match args.format {
        Format::Json => exit::emit(&serde_json::to_string_pretty(&report)?),
        Format::Text => exit::emit(&report.render_text()),
    }
    Ok(report.exit_code)
}
