//! `my2pg schema`: the PostgreSQL DDL for the selected tables — printed, or applied to the
//! target in one transaction. Tables that already exist on the target are compared with the
//! mapping and their differences reported; they are never altered.

use anyhow::{Context, Result, bail};
use serde::Serialize;

use schemas::TableMapping;
use schemas::mapping::PgType;
use sink::SinkError;
use sink::ddl::{ApplyReport, Naming, SchemaPlan, compare, read_target_table};

use crate::cli::Format;
use crate::commands::selection::read_selected;
use crate::config::Config;
use crate::exit;

/// The JSON report.
#[derive(Debug, Serialize)]
struct SchemaReport<'a> {
    tables: &'a [TableMapping],
    sql: String,
    applied: Option<&'a ApplyReport>,
    existing: Vec<(String, Vec<String>)>,
}

/// Prints or applies the DDL; exit code 1 when an existing target table differs.
pub async fn run(cfg: &Config, apply: bool, format: Format) -> Result<u8> {
    let selection = cfg.selection()?;
    if apply && cfg.target.url.is_none() {
        bail!(crate::config::ConfigError {
            key: "target.url".into(),
            problem: "--apply needs a target".into(),
            fix: "pass --target postgres://USER:PASSWORD@HOST:PORT/DATABASE".into(),
        });
    }
    let source = cfg.source_options()?;
    let mut conn = source.connect().await?;
    let tables = read_selected(&mut conn, &selection).await?;
    let _ = conn.disconnect().await;
    let target_schema = |db: &str| cfg.target_schema(db);
    let migrated = |id: &schemas::TableId| selection.selects(id);
    let naming = Naming {
        options: &cfg.mapping,
        target_schema: &target_schema,
        migrated: &migrated,
    };
    let mut mappings = Vec::with_capacity(tables.len());
    for t in tables {
        let m = naming
            .map(t.clone())
            .map_err(|source| SinkError::Mapping { source })
            .with_context(|| format!("mapping {}", t.id))?;
        mappings.push(m);
    }
    let plan = SchemaPlan::new(&mappings, &naming);
    let mut applied = None;
    let mut existing = Vec::new();
    if cfg.target.url.is_some() {
        let target = cfg.target_options()?;
        let mut client = target.connect().await?;
        if mappings
            .iter()
            .any(|m| m.columns.iter().any(|c| c.pg_type == PgType::Geometry))
        {
            let has: bool = client
                .query_one(
                    "SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'postgis')",
                    &[],
                )
                .await
                .map_err(|source| SinkError::Query {
                    what: "looking for PostGIS on the target".into(),
                    source,
                })?
                .get(0);
            if !has {
                bail!(crate::config::ConfigError {
                    key: "mapping.geometry_as".into(),
                    problem: "\"postgis\" needs the PostGIS extension, which the target lacks"
                        .into(),
                    fix: "CREATE EXTENSION postgis on the target, or set geometry_as = \"wkb\""
                        .into(),
                });
            }
        }
        if apply {
            applied = Some(sink::ddl::apply_schema(&mut client, &mappings, &naming).await?);
        } else {
            for m in &mappings {
                if let Some(t) = read_target_table(&client, &m.target).await? {
                    existing.push((m.target.to_string(), compare(m, &t)));
                }
            }
        }
    }
    if let Some(r) = &applied {
        existing = r.existing.clone();
    }
    let differs = existing.iter().any(|(_, d)| !d.is_empty());
    match format {
        Format::Json => {
            let report = SchemaReport {
                tables: &mappings,
                sql: plan.to_sql(),
                applied: applied.as_ref(),
                existing,
            };
            exit::emit(&serde_json::to_string_pretty(&report)?);
        }
        Format::Text => {
            let mut out = String::new();
            match &applied {
                Some(r) => {
                    for t in &r.created {
                        out.push_str(&format!("-- created {t}\n"));
                    }
                }
                None => out.push_str(&plan.to_sql()),
            }
            for (t, diffs) in &existing {
                if diffs.is_empty() {
                    out.push_str(&format!("-- {t} exists and matches the mapping\n"));
                } else {
                    out.push_str(&format!("-- {t} exists and differs from the mapping:\n"));
                    for d in diffs {
                        out.push_str(&format!("--   {d}\n"));
                    }
                }
            }
            exit::emit(&out);
        }
    }
    Ok(if differs { exit::DIFFERENT } else { exit::OK })
}
