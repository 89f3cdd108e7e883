//! The state my2pg keeps on the target, in schema `my2pg`, and its versioned DDL.
//!
//! The DDL is a list of numbered statements ([`MIGRATIONS`]); `my2pg.state_version` records
//! which have run. [`ensure_state`] runs the missing ones in order under a transaction-level
//! advisory lock, so two my2pg processes starting together neither race nor run one twice.
//! A statement is never edited once released; a change is a new, higher-numbered statement.
//!
//! `my2pg.schema_history` is the log of every schema change applied to (or deliberately not
//! applied to) a migrated table: one row per source table per change, numbered per table, with
//! the source statement, the decision, the PostgreSQL statements run, and the table's source
//! schema after the change (JSON), so the schema any past row was written with can be found.

use serde::Serialize;
use tokio_postgres::GenericClient;

use schemas::{TableId, TableSchema};

use crate::error::{Result, SinkError};

/// The schema holding my2pg's state on the target.
pub const STATE_SCHEMA: &str = "my2pg";

/// Advisory lock key serialising state migrations (`my2pg` in ASCII).
const STATE_LOCK: i64 = 0x006d_7932_7067;

/// The state DDL, in order: (version, statement).
pub const MIGRATIONS: &[(i32, &str)] = &[
    (
        1,
        "CREATE TABLE my2pg.schema_history (
    source_table text NOT NULL,
    version integer NOT NULL,
    position text,
    source_statement text NOT NULL,
    decision text NOT NULL,
    applied_ddl text[] NOT NULL,
    table_schema jsonb,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (source_table, version)
)",
    ),
    (
        2,
        // The source position every applied row is consistent with, written in the same
        // transaction as the rows (see `crate::checkpoint`).
        "CREATE TABLE my2pg.checkpoint (
    pipeline text PRIMARY KEY,
    position text NOT NULL,
    last_gtid text,
    source_commit_time timestamptz,
    applied_at timestamptz NOT NULL DEFAULT now(),
    transactions bigint NOT NULL DEFAULT 0
);
CREATE TABLE my2pg.heartbeat (
    pipeline text PRIMARY KEY,
    source_time timestamptz NOT NULL,
    applied_at timestamptz NOT NULL
);
CREATE TABLE my2pg.dead_letter (
    id bigserial PRIMARY KEY,
    pipeline text NOT NULL,
    position text NOT NULL,
    gtid text,
    source_table text,
    row_key text,
    event jsonb,
    error text NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE my2pg.table_state (
    pipeline text NOT NULL,
    source_table text NOT NULL,
    target_table text NOT NULL,
    state text NOT NULL,
    error text,
    rows_copied bigint NOT NULL DEFAULT 0,
    rows_estimate bigint,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (pipeline, source_table)
);
CREATE TABLE my2pg.verify_result (
    pipeline text NOT NULL,
    source_table text NOT NULL,
    verified_at timestamptz NOT NULL,
    rows_compared bigint NOT NULL,
    rows_missing bigint NOT NULL,
    rows_extra bigint NOT NULL,
    rows_differing bigint NOT NULL,
    PRIMARY KEY (pipeline, source_table)
)",
    ),
    (
        3,
        // The initial copy (see `crate::snapshot`): where streaming starts, the chunk plan,
        // and the statements that wait until the stream has passed the end of the copy.
        "CREATE TABLE my2pg.snapshot (
    pipeline text PRIMARY KEY,
    start_position text NOT NULL,
    end_position text,
    state text NOT NULL,
    started_at timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz
);
CREATE TABLE my2pg.snapshot_progress (
    pipeline text NOT NULL,
    source_table text NOT NULL,
    chunk integer NOT NULL,
    lower_key jsonb,
    upper_key jsonb,
    state text NOT NULL,
    rows_copied bigint NOT NULL DEFAULT 0,
    copied_at timestamptz,
    PRIMARY KEY (pipeline, source_table, chunk)
);
CREATE TABLE my2pg.deferred_ddl (
    pipeline text NOT NULL,
    source_table text NOT NULL,
    ordinal integer NOT NULL,
    statement text NOT NULL,
    PRIMARY KEY (pipeline, source_table, ordinal)
)",
    ),
    (
        4,
        // What `my2pg status` shows of a pipeline that is not running: its last phase and, when
        // a definite error stopped it, the error.
        "CREATE TABLE my2pg.pipeline_state (
    pipeline text PRIMARY KEY,
    phase text NOT NULL,
    error text,
    updated_at timestamptz NOT NULL DEFAULT now()
)",
    ),
    (
        5,
        // The Kafka path (`crate::kafka::offsets`): per consumer group, topic and partition,
        // the next offset to apply, committed with the rows the earlier offsets produced.
        "CREATE TABLE my2pg.kafka_offsets (
    consumer_group text NOT NULL,
    topic text NOT NULL,
    partition integer NOT NULL,
    next_offset bigint NOT NULL,
    applied_events bigint NOT NULL DEFAULT 0,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer_group, topic, partition)
)",
    ),
];

/// Records the phase of `pipeline` (and the error that stopped it, if any) for `my2pg status`.
pub async fn record_phase(
    client: &tokio_postgres::Client,
    pipeline: &str,
    phase: &str,
    error: Option<&str>,
) -> Result<()> {
    client
        .batch_execute("BEGIN")
        .await
        .map_err(q("recording the pipeline's phase"))?;
    ensure_state(client).await?;
    client
        .execute(
            "INSERT INTO my2pg.pipeline_state (pipeline, phase, error, updated_at) \
             VALUES ($1, $2, $3, now()) ON CONFLICT (pipeline) DO UPDATE \
             SET phase = EXCLUDED.phase, error = EXCLUDED.error, updated_at = now()",
            &[&pipeline, &phase, &error],
        )
        .await
        .map_err(q("recording the pipeline's phase"))?;
    client
        .batch_execute("COMMIT")
        .await
        .map_err(q("recording the pipeline's phase"))?;
    Ok(())
}

fn q(what: &str) -> impl FnOnce(tokio_postgres::Error) -> SinkError {
    let what = what.to_owned();
    move |source| SinkError::Query { what, source }
}

/// Creates schema `my2pg` and runs the missing [`MIGRATIONS`]. Call inside a transaction.
pub async fn ensure_state<C: GenericClient + Sync>(client: &C) -> Result<()> {
    client
        .execute("SELECT pg_advisory_xact_lock($1)", &[&STATE_LOCK])
        .await
        .map_err(q("locking the my2pg state schema"))?;
    client
        .batch_execute(
            "CREATE SCHEMA IF NOT EXISTS my2pg; \
             CREATE TABLE IF NOT EXISTS my2pg.state_version (\
                 version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())",
        )
        .await
        .map_err(q("creating the my2pg state schema"))?;
    let row = client
        .query_one(
            "SELECT COALESCE(MAX(version), 0) FROM my2pg.state_version",
            &[],
        )
        .await
        .map_err(q("reading my2pg.state_version"))?;
    let current: i32 = row.get(0);
    // The missing migrations and their records in one round trip (a new target needs all of
    // them); the caller's transaction keeps them all or none.
    let pending: Vec<&(i32, &str)> = MIGRATIONS.iter().filter(|(v, _)| *v > current).collect();
    if pending.is_empty() {
        return Ok(());
    }
    let mut batch = String::new();
    for (version, sql) in &pending {
        // On a line of its own, the `;` ends the migration even after a trailing comment (an
        // empty statement after its own `;` is allowed).
        batch.push_str(sql);
        batch.push_str(&format!(
            "\n;\nINSERT INTO my2pg.state_version (version) VALUES ({version});\n"
        ));
    }
    let versions: Vec<String> = pending.iter().map(|(v, _)| v.to_string()).collect();
    client.batch_execute(&batch).await.map_err(q(&format!(
        "running state migrations {}",
        versions.join(", ")
    )))?;
    Ok(())
}

/// One schema change of one table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SchemaHistoryEntry {
    /// The source table.
    pub source_table: TableId,
    /// The source position of the change (`None` for `my2pg schema`).
    pub position: Option<String>,
    /// The source statement.
    pub statement: String,
    /// `apply`, `ignore` or `stop`.
    pub decision: String,
    /// The PostgreSQL statements run.
    pub applied: Vec<String>,
    /// The table's source schema after the change (`None`: dropped).
    pub schema: Option<TableSchema>,
}

/// Appends an entry; returns its version (1 for the table's first entry). Run it in the
/// transaction that applies the change, so the history and the target never disagree.
pub async fn record_schema_history<C: GenericClient + Sync>(
    client: &C,
    e: &SchemaHistoryEntry,
) -> Result<i32> {
    let table = e.source_table.to_string();
    let schema = e
        .schema
        .as_ref()
        .map(serde_json::to_value)
        .transpose()
        .map_err(|err| SinkError::History {
            table: table.clone(),
            reason: err.to_string(),
        })?;
    let row = client
        .query_one(
            "INSERT INTO my2pg.schema_history \
             (source_table, version, position, source_statement, decision, applied_ddl, table_schema) \
             SELECT $1, COALESCE(MAX(version), 0) + 1, $2, $3, $4, $5, $6 \
             FROM my2pg.schema_history WHERE source_table = $1 RETURNING version",
            &[
                &table,
                &e.position,
                &e.statement,
                &e.decision,
                &e.applied,
                &schema,
            ],
        )
        .await
        .map_err(q(&format!("recording the schema history of {table}")))?;
    Ok(row.get(0))
}
