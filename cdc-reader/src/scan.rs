//! The data scan of `my2pg check`: what in the source the target cannot hold under the chosen
//! mapping policies, found before the migration starts.
//!
//! Two kinds of findings:
//! - **From the schema alone**: tables without a primary key or NOT NULL unique key (rows
//!   cannot be identified for updates and deletes), names PostgreSQL cannot take (longer than
//!   63 bytes, or clashing once folded), column types without a mapping, and unique keys whose
//!   case-insensitive collation PostgreSQL will not reproduce.
//! - **From the data**: one SQL predicate per (column, problem) — zero and invalid dates, NUL
//!   characters and invalid bytes in text, BIGINT UNSIGNED values beyond `bigint`, TINYINT(1)
//!   values other than 0 and 1, ENUM error values, `\u0000` in JSON bound for `jsonb`. The
//!   predicates of a table are summed in **one** pass (`SUM(CASE WHEN … THEN 1 ELSE 0 END)` per
//!   predicate), so a table is read once however many columns it has; then up to
//!   [`DEFAULT_SAMPLE_KEYS`] keys of offending rows are fetched per non-zero predicate.
//!
//! A finding's status follows the column's resolved policy ([`MappingOptions::policy_for`]):
//! `fail` when the migration would stop on it (the default policies), `warn` when a configured
//! policy converts it (the count says how many values will change). Only predicates a policy
//! can act on run: with `unsigned_bigint_as = numeric` no BIGINT UNSIGNED value can fail, so
//! none is scanned. The conversion itself ([`schemas::pgvalue`]) is the authority: these
//! predicates find the same values with the server's own functions, so the migration does
//! not start only to stop hours later on row 900 million.

use std::collections::BTreeMap;
use std::sync::Arc;

use mysql_async::Conn;
use mysql_async::prelude::Queryable;
use serde::Serialize;

use schemas::check::Status;
use schemas::mapping::{
    EnumAs, InvalidText, JsonAs, MappingError, MappingOptions, NulInText, UnsignedBigintAs,
    ZeroDate, map_table,
};
use schemas::table::{IntWidth, TableSchema};
use schemas::{Charset, Column, ColumnType, TableId};

use crate::error::{ReaderError, Result};
use crate::rows::{prepare_session, quote_ident, quote_table};
use crate::value::from_driver;

/// Keys of offending rows reported per finding: enough to look at, few enough to print.
pub const DEFAULT_SAMPLE_KEYS: usize = 5;

/// What a finding is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    /// A zero or invalid date.
    ZeroDate,
    /// A NUL character in text.
    NulInText,
    /// Bytes invalid in the column's character set.
    InvalidText,
    /// A BIGINT UNSIGNED value above 9223372036854775807 mapped to `bigint`.
    UnsignedBeyondBigint,
    /// A TINYINT(1) value other than 0 or 1 mapped to `boolean`.
    NotBoolean,
    /// MySQL's ENUM error value `''` mapped to a PostgreSQL enum.
    EnumErrorValue,
    /// The JSON escape `\u0000` mapped to `jsonb`.
    NulInJson,
    /// Neither a primary key nor a NOT NULL unique key.
    NoKey,
    /// A unique key whose collation is case-insensitive.
    CaseInsensitiveUnique,
    /// A name longer than 63 bytes.
    NameTooLong,
    /// Two names that become the same in PostgreSQL.
    NameClash,
    /// A column type without a mapping.
    UnsupportedType,
}

/// One finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// What.
    pub kind: FindingKind,
    /// `fail` blocks the migration; `warn` is converted by a configured policy, or a behaviour
    /// difference the operator should know.
    pub status: Status,
    /// The table.
    pub table: TableId,
    /// The column, when the finding is about one.
    pub column: Option<String>,
    /// How many rows (or groups of rows) — 0 for schema findings.
    pub count: u64,
    /// Keys of some offending rows, e.g. `id=42`.
    pub samples: Vec<String>,
    /// The finding in words, with the policy that decides it.
    pub detail: String,
    /// What to do.
    pub fix: String,
}

/// The whole scan.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ScanReport {
    /// Tables scanned.
    pub tables: usize,
    /// Findings, by table then kind.
    pub findings: Vec<Finding>,
}

impl ScanReport {
    /// Whether any finding blocks the migration.
    pub fn blocks(&self) -> bool {
        self.findings.iter().any(|f| f.status == Status::Fail)
    }
}

/// One data predicate of a table.
struct Probe {
    kind: FindingKind,
    column: usize,
    predicate: String,
    status: Status,
    detail: String,
    fix: String,
}

/// Scans `tables`. `target_schema` maps a MySQL database to its PostgreSQL schema.
pub async fn scan(
    conn: &mut Conn,
    tables: &[Arc<TableSchema>],
    opts: &MappingOptions,
    target_schema: &dyn Fn(&str) -> String,
    sample_keys: usize,
) -> Result<ScanReport> {
    prepare_session(conn).await?;
    let mut report = ScanReport {
        tables: tables.len(),
        findings: Vec::new(),
    };
    let mut targets: BTreeMap<(String, String), Vec<TableId>> = BTreeMap::new();
    for t in tables {
        let schema = target_schema(&t.id.database);
        targets
            .entry((schema.clone(), opts.table_name(&t.id)))
            .or_default()
            .push(t.id.clone());
        if let Err(e) = map_table(t.clone(), &schema, opts) {
            report.findings.push(mapping_finding(&t.id, &e));
        }
        if t.identity_key().is_none() {
            report.findings.push(Finding {
                kind: FindingKind::NoKey,
                status: Status::Fail,
                table: t.id.clone(),
                column: None,
                count: 0,
                samples: Vec::new(),
                detail: "no primary key and no NOT NULL unique key: updates and deletes cannot find their row".into(),
                fix: format!("add a primary key on the source (ALTER TABLE {} ADD PRIMARY KEY (…)), or exclude the table", quote_table(&t.id)),
            });
        }
        report
            .findings
            .extend(case_insensitive_keys(conn, t).await?);
        let probes = probes(t, opts);
        report
            .findings
            .extend(run_probes(conn, t, &probes, sample_keys).await?);
    }
    for ((schema, name), ids) in targets {
        if ids.len() > 1 {
            let names: Vec<String> = ids.iter().map(ToString::to_string).collect();
            for id in &ids {
                report.findings.push(Finding {
                    kind: FindingKind::NameClash,
                    status: Status::Fail,
                    table: id.clone(),
                    column: None,
                    count: 0,
                    samples: Vec::new(),
                    detail: format!(
                        "{} all become PostgreSQL table {schema}.{name}",
                        names.join(", ")
                    ),
                    fix: format!(
                        "give one a name: [mapping.tables.\"{id}\"] name = \"…\", or set [mapping] identifiers = \"preserve\", or map the databases to different schemas ([tables] schema_map)"
                    ),
                });
            }
        }
    }
    Ok(report)
}

fn mapping_finding(id: &TableId, e: &MappingError) -> Finding {
    let (kind, column) = match e {
        MappingError::Unsupported { column, .. } => (FindingKind::UnsupportedType, Some(column)),
        MappingError::NameTooLong { .. } => (FindingKind::NameTooLong, None),
        MappingError::NameClash { second, .. } => (FindingKind::NameClash, Some(second)),
        MappingError::EnumLabel { column, .. } => (FindingKind::EnumErrorValue, Some(column)),
    };
    Finding {
        kind,
        status: Status::Fail,
        table: id.clone(),
        column: column.map(|c| c.rsplit('.').next().unwrap_or(c).to_owned()),
        count: 0,
        samples: Vec::new(),
        detail: e.to_string(),
        fix: e.hint(),
    }
}

/// Whether a collation compares case-insensitively (`…_ci`, `…_ai_ci`).
fn case_insensitive(c: &Column) -> bool {
    c.ty.is_text()
        && !c.charset.as_ref().is_some_and(Charset::is_binary)
        && c.collation
            .as_deref()
            .is_some_and(|k| k.to_ascii_lowercase().contains("_ci"))
}

/// Unique keys with a case-insensitive text column: PostgreSQL's unique index compares bytes.
/// Counts the groups of rows that would collide under `lower()`, to say whether a unique
/// index on `lower(…)` could keep MySQL's rule.
async fn case_insensitive_keys(conn: &mut Conn, t: &TableSchema) -> Result<Vec<Finding>> {
    let mut keys: Vec<(String, Vec<usize>)> = Vec::new();
    if !t.primary_key.is_empty() {
        keys.push(("PRIMARY".into(), t.primary_key.clone()));
    }
    for k in &t.unique_keys {
        keys.push((k.name.clone(), k.columns.iter().map(|c| c.column).collect()));
    }
    let mut out = Vec::new();
    for (name, cols) in keys {
        let ci: Vec<&Column> = cols
            .iter()
            .filter_map(|&i| t.columns.get(i))
            .filter(|c| case_insensitive(c))
            .collect();
        if ci.is_empty() {
            continue;
        }
        let group: Vec<String> = cols
            .iter()
            .filter_map(|&i| t.columns.get(i))
            .map(|c| {
                if case_insensitive(c) {
                    format!("CAST(LOWER({}) AS BINARY)", quote_ident(&c.name))
                } else {
                    quote_ident(&c.name)
                }
            })
            .collect();
        let not_null: Vec<String> = cols
            .iter()
            .filter_map(|&i| t.columns.get(i))
            .map(|c| format!("{} IS NOT NULL", quote_ident(&c.name)))
            .collect();
        let sql = format!(
            "SELECT COUNT(*) FROM (SELECT 1 FROM {} WHERE {} GROUP BY {} HAVING COUNT(*) > 1) g",
            quote_table(&t.id),
            not_null.join(" AND "),
            group.join(", ")
        );
        let collide: u64 = conn
            .query_first(sql)
            .await
            .map_err(|source| ReaderError::Query {
                what: format!("checking unique key {name} of {}", t.id),
                source,
            })?
            .unwrap_or(0);
        let col_names: Vec<&str> = ci.iter().map(|c| c.name.as_str()).collect();
        let collations: Vec<&str> = ci.iter().filter_map(|c| c.collation.as_deref()).collect();
        out.push(Finding {
            kind: FindingKind::CaseInsensitiveUnique,
            status: Status::Warn,
            table: t.id.clone(),
            column: Some(col_names.join(", ")),
            count: collide,
            samples: Vec::new(),
            detail: format!(
                "unique key {name} compares {} case-insensitively ({}); PostgreSQL's unique index will accept values differing only in case",
                col_names.join(", "),
                collations.join(", ")
            ),
            fix: if collide == 0 {
                format!(
                    "no rows collide under lower(): a unique index on lower({}) on the target would keep MySQL's rule",
                    col_names.join("), lower(")
                )
            } else {
                format!(
                    "{collide} groups of rows collide under lower(): a unique index on lower(…) could not be created; review them before relying on case-insensitive uniqueness"
                )
            },
        });
    }
    Ok(out)
}

fn status_for(blocks: bool) -> Status {
    if blocks { Status::Fail } else { Status::Warn }
}

/// The data predicates of a table under the column policies.
fn probes(t: &TableSchema, opts: &MappingOptions) -> Vec<Probe> {
    let mut out = Vec::new();
    let key: Vec<usize> = t.identity_key().unwrap_or_default();
    for (i, c) in t.columns.iter().enumerate() {
        let p = opts.policy_for(&t.id, &c.name);
        let q = quote_ident(&c.name);
        let path = format!("{}.{}", t.id, c.name);
        let override_fix = |key: &str, values: &str| {
            format!(
                "fix the rows on the source, or set [mapping] {key} = {values} (or [mapping.columns.\"{path}\"] {key} = … for this column)"
            )
        };
        let binary = c.charset.as_ref().is_some_and(Charset::is_binary);
        match &c.ty {
            ColumnType::Date | ColumnType::DateTime { .. } | ColumnType::Timestamp { .. } => {
                let predicate = if matches!(c.ty, ColumnType::Timestamp { .. }) {
                    format!("{q} IS NOT NULL AND MONTH({q}) = 0")
                } else {
                    format!(
                        "{q} IS NOT NULL AND (YEAR({q}) = 0 OR MONTH({q}) = 0 OR DAYOFMONTH({q}) = 0 \
                         OR LAST_DAY({q}) IS NULL OR DAYOFMONTH({q}) > DAYOFMONTH(LAST_DAY({q})))"
                    )
                };
                let in_key = key.contains(&i);
                let blocks =
                    p.zero_date == ZeroDate::Error || (p.zero_date == ZeroDate::Null && in_key);
                out.push(Probe {
                    kind: FindingKind::ZeroDate,
                    column: i,
                    predicate,
                    status: status_for(blocks),
                    detail: match p.zero_date {
                        ZeroDate::Error => "zero or invalid dates, which PostgreSQL cannot hold (zero_date = \"error\")".into(),
                        ZeroDate::Null if in_key => "zero dates in a key column cannot become NULL (zero_date = \"null\")".into(),
                        other => format!("zero or invalid dates will be written as {other} (zero_date)"),
                    },
                    fix: override_fix("zero_date", "\"null\" | \"-infinity\" | \"1970-01-01\""),
                });
            }
            ColumnType::Char { .. }
            | ColumnType::VarChar { .. }
            | ColumnType::Text { .. }
            | ColumnType::Enum { .. }
            | ColumnType::Set { .. }
                if !binary =>
            {
                out.push(Probe {
                    kind: FindingKind::NulInText,
                    column: i,
                    predicate: format!("LOCATE(X'00', CAST(CONVERT({q} USING utf8mb4) AS BINARY)) > 0"),
                    status: status_for(p.nul_in_text == NulInText::Error),
                    detail: match p.nul_in_text {
                        NulInText::Error => "NUL characters, which PostgreSQL text cannot hold (nul_in_text = \"error\")".into(),
                        NulInText::Strip => "NUL characters will be removed (nul_in_text = \"strip\")".into(),
                        NulInText::Replace => "NUL characters will become U+FFFD (nul_in_text = \"replace\")".into(),
                    },
                    fix: override_fix("nul_in_text", "\"strip\" | \"replace\""),
                });
                let cs = c.charset.clone().unwrap_or(Charset::Utf8mb4);
                if let Some(name) = convertible_name(&cs) {
                    out.push(Probe {
                        kind: FindingKind::InvalidText,
                        column: i,
                        predicate: format!(
                            "{q} IS NOT NULL AND CAST({q} AS BINARY) <> CAST(CONVERT(CONVERT({q} USING utf32) USING {name}) AS BINARY)"
                        ),
                        status: status_for(p.invalid_text == InvalidText::Error),
                        detail: match p.invalid_text {
                            InvalidText::Error => format!("bytes that are not valid {cs} (invalid_text = \"error\")"),
                            InvalidText::Replace => format!("bytes that are not valid {cs} will become U+FFFD (invalid_text = \"replace\")"),
                        },
                        fix: override_fix("invalid_text", "\"replace\""),
                    });
                }
                if let ColumnType::Enum { .. } = c.ty
                    && p.enum_as == EnumAs::PgEnum
                {
                    out.push(Probe {
                        kind: FindingKind::EnumErrorValue,
                        column: i,
                        predicate: format!("({q} + 0) = 0"),
                        status: Status::Fail,
                        detail: "MySQL's ENUM error value '', which a PostgreSQL enum cannot hold (enum_as = \"pg_enum\")".into(),
                        fix: format!("fix the rows on the source, or set [mapping.columns.\"{path}\"] enum_as = \"check\""),
                    });
                }
            }
            ColumnType::Integer {
                width: IntWidth::Big,
                unsigned: true,
                ..
            } if p.unsigned_bigint_as == UnsignedBigintAs::Bigint => {
                out.push(Probe {
                    kind: FindingKind::UnsignedBeyondBigint,
                    column: i,
                    predicate: format!("{q} > 9223372036854775807"),
                    status: Status::Fail,
                    detail: "values above 9223372036854775807, which bigint cannot hold (unsigned_bigint_as = \"bigint\")".into(),
                    fix: format!("set [mapping.columns.\"{path}\"] unsigned_bigint_as = \"numeric\" (the default)"),
                });
            }
            ColumnType::Integer {
                width: IntWidth::Tiny,
                display_width: Some(1),
                ..
            } if p.tinyint1_as_boolean => {
                out.push(Probe {
                    kind: FindingKind::NotBoolean,
                    column: i,
                    predicate: format!("{q} NOT IN (0, 1)"),
                    status: Status::Fail,
                    detail: "values other than 0 and 1, which boolean cannot hold (tinyint1_as_boolean = true)".into(),
                    fix: format!("set [mapping.columns.\"{path}\"] tinyint1_as_boolean = false to keep the numbers"),
                });
            }
            ColumnType::Json if p.json_as == JsonAs::Jsonb => {
                out.push(Probe {
                    kind: FindingKind::NulInJson,
                    column: i,
                    predicate: format!("LOCATE('\\u0000', {q}) > 0"),
                    status: Status::Fail,
                    detail:
                        "the JSON escape \\u0000, which jsonb cannot hold (json_as = \"jsonb\")"
                            .into(),
                    fix: format!(
                        "set [mapping.columns.\"{path}\"] json_as = \"json\" (keeps the text)"
                    ),
                });
            }
            _ => {}
        }
    }
    out
}

/// The name to CONVERT text back into, for sets whose bytes can be invalid (not latin1, whose
/// every byte decodes, nor binary).
fn convertible_name(cs: &Charset) -> Option<&'static str> {
    Some(match cs {
        Charset::Utf8mb4 => "utf8mb4",
        Charset::Utf8mb3 => "utf8",
        Charset::Ascii => "ascii",
        Charset::Ucs2 => "ucs2",
        Charset::Utf16 => "utf16",
        Charset::Utf16le => "utf16le",
        Charset::Utf32 => "utf32",
        Charset::Latin1 | Charset::Binary | Charset::Other(_) => return None,
    })
}

async fn run_probes(
    conn: &mut Conn,
    t: &TableSchema,
    probes: &[Probe],
    sample_keys: usize,
) -> Result<Vec<Finding>> {
    if probes.is_empty() {
        return Ok(Vec::new());
    }
    let q = |what: String| move |source| ReaderError::Query { what, source };
    let sums: Vec<String> = probes
        .iter()
        .map(|p| {
            format!(
                "CAST(COALESCE(SUM(CASE WHEN {} THEN 1 ELSE 0 END), 0) AS UNSIGNED)",
                p.predicate
            )
        })
        .collect();
    let sql = format!("SELECT {} FROM {}", sums.join(", "), quote_table(&t.id));
    let row: Option<mysql_async::Row> = conn
        .query_first(sql)
        .await
        .map_err(q(format!("scanning {}", t.id)))?;
    let counts: Vec<u64> = row
        .map(|r| {
            r.unwrap()
                .into_iter()
                .map(|v| mysql_async::from_value_opt::<u64>(v).unwrap_or(0))
                .collect()
        })
        .unwrap_or_default();
    let key = t.identity_key().unwrap_or_default();
    let mut out = Vec::new();
    for (p, &count) in probes.iter().zip(&counts) {
        if count == 0 {
            continue;
        }
        let Some(col) = t.columns.get(p.column) else {
            continue;
        };
        // Keys of offending rows; without a key, the offending values themselves.
        let shown: Vec<usize> = if key.is_empty() {
            vec![p.column]
        } else {
            key.clone()
        };
        let select: Vec<String> = shown
            .iter()
            .filter_map(|&i| t.columns.get(i))
            .map(|c| quote_ident(&c.name))
            .collect();
        let sql = format!(
            "SELECT {} FROM {} WHERE {} LIMIT {sample_keys}",
            select.join(", "),
            quote_table(&t.id),
            p.predicate
        );
        let rows: Vec<mysql_async::Row> = conn
            .exec(sql, ())
            .await
            .map_err(q(format!("sampling {} in {}", col.name, t.id)))?;
        let samples = rows
            .into_iter()
            .map(|r| {
                let values = r.unwrap();
                let rendered: Vec<String> = shown
                    .iter()
                    .zip(values)
                    .filter_map(|(&i, v)| {
                        let c = t.columns.get(i)?;
                        let v = from_driver(c, v).map_or_else(|e| e.found, |v| v.to_string());
                        Some(format!("{}={v}", c.name))
                    })
                    .collect();
                rendered.join(", ")
            })
            .collect();
        out.push(Finding {
            kind: p.kind,
            status: p.status,
            table: t.id.clone(),
            column: Some(col.name.clone()),
            count,
            samples,
            detail: p.detail.clone(),
            fix: p.fix.clone(),
        });
    }
    Ok(out)
}
