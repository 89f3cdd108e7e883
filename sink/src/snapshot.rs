//! The initial copy's state on the target: where streaming starts, the chunk plan with each
//! chunk's completion, and the DDL that waits for the stream to pass the end of the copy.
//!
//! A chunk's rows and its `done` mark are committed in one transaction ([`chunk_done`] runs
//! inside the caller's transaction), so after a crash a chunk is either entirely copied and
//! marked, or absent and still pending: completed chunks are never copied twice.

use schemas::{SourcePosition, TableId, Value};
use tokio_postgres::GenericClient;

use crate::error::{Result, SinkError};

fn q(what: impl Into<String>) -> impl FnOnce(tokio_postgres::Error) -> SinkError {
    let what = what.into();
    move |source| SinkError::Query { what, source }
}

/// Phase of a pipeline's initial copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Chunks are being copied.
    Copying,
    /// Every chunk is copied; streaming replays from the start position; deferred DDL waits.
    Copied,
    /// Deferred DDL ran: the copy is finished.
    Done,
}

impl Phase {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Copying => "copying",
            Phase::Copied => "copied",
            Phase::Done => "done",
        }
    }

    fn parse(s: &str) -> Option<Phase> {
        Some(match s {
            "copying" => Phase::Copying,
            "copied" => Phase::Copied,
            "done" => Phase::Done,
            _ => return None,
        })
    }
}

/// A pipeline's copy state.
#[derive(Debug, Clone, PartialEq)]
pub struct SnapshotState {
    /// Position read before the first chunk: streaming starts here.
    pub start: SourcePosition,
    /// Position read after the last chunk: deferred DDL runs once the stream passed it.
    pub end: Option<SourcePosition>,
    /// Phase.
    pub phase: Phase,
}

fn parse_pos(text: &str) -> Result<SourcePosition> {
    text.parse().map_err(
        |e: schemas::position::PositionParseError| SinkError::State {
            reason: format!("my2pg.snapshot holds an unreadable position: {e}"),
        },
    )
}

/// The copy state of `pipeline`, if a copy was ever started.
pub async fn read<C: GenericClient + Sync>(
    client: &C,
    pipeline: &str,
) -> Result<Option<SnapshotState>> {
    let row = client
        .query_opt(
            "SELECT start_position, end_position, state FROM my2pg.snapshot WHERE pipeline = $1",
            &[&pipeline],
        )
        .await
        .map_err(q("reading my2pg.snapshot"))?;
    let Some(row) = row else { return Ok(None) };
    let start = parse_pos(row.get::<_, &str>(0))?;
    let end = row.get::<_, Option<&str>>(1).map(parse_pos).transpose()?;
    let phase_text: &str = row.get(2);
    let phase = Phase::parse(phase_text).ok_or_else(|| SinkError::State {
        reason: format!("my2pg.snapshot has an unknown state {phase_text:?}"),
    })?;
    Ok(Some(SnapshotState { start, end, phase }))
}

/// Records the start of a copy at `start` (replacing a previous one of the pipeline).
pub async fn begin<C: GenericClient + Sync>(
    client: &C,
    pipeline: &str,
    start: &SourcePosition,
) -> Result<()> {
    client
        .execute(
            "INSERT INTO my2pg.snapshot (pipeline, start_position, state) VALUES ($1, $2, 'copying') \
             ON CONFLICT (pipeline) DO UPDATE SET start_position = EXCLUDED.start_position, end_position = NULL, \
             state = 'copying', started_at = now(), finished_at = NULL",
            &[&pipeline, &start.to_string()],
        )
        .await
        .map_err(q("recording the start of the copy"))?;
    Ok(())
}

/// A chunk to plan: its number and its key bounds (inclusive lower, exclusive upper).
pub type ChunkBounds = (u32, Option<Vec<Value>>, Option<Vec<Value>>);

/// One chunk of the plan.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedChunk {
    /// Chunk number.
    pub index: u32,
    /// Inclusive lower key bound.
    pub lower: Option<Vec<Value>>,
    /// Exclusive upper key bound.
    pub upper: Option<Vec<Value>>,
    /// Whether it is copied.
    pub done: bool,
    /// Rows copied.
    pub rows: i64,
}

fn to_json(v: &Option<Vec<Value>>) -> Result<Option<serde_json::Value>> {
    v.as_ref()
        .map(serde_json::to_value)
        .transpose()
        .map_err(|e| SinkError::State {
            reason: format!("cannot store a chunk bound: {e}"),
        })
}

/// Stores the chunk plan of `table` unless one exists (a resumed copy keeps its plan).
/// Returns the plan in force.
pub async fn plan<C: GenericClient + Sync>(
    client: &C,
    pipeline: &str,
    table: &TableId,
    chunks: &[ChunkBounds],
) -> Result<Vec<PlannedChunk>> {
    let name = table.to_string();
    let mut index = Vec::with_capacity(chunks.len());
    let mut lowers = Vec::with_capacity(chunks.len());
    let mut uppers = Vec::with_capacity(chunks.len());
    for (i, lower, upper) in chunks {
        index.push(i32::try_from(*i).map_err(|_| SinkError::State {
            reason: format!("{name} needs more than 2^31 chunks; raise [snapshot] chunk_rows"),
        })?);
        lowers.push(to_json(lower)?);
        uppers.push(to_json(upper)?);
    }
    // One statement, so the plan is stored whole or not at all: a partial plan would end
    // in a chunk with an upper bound, and a resumed copy would never read past it. A plan
    // already stored (a resumed copy keeps its plan) is left as it is and read back.
    let stored = client
        .execute(
            "INSERT INTO my2pg.snapshot_progress (pipeline, source_table, chunk, lower_key, upper_key, state) \
             SELECT $1, $2, c, l, u, 'pending' FROM unnest($3::int4[], $4::jsonb[], $5::jsonb[]) AS p(c, l, u) \
             WHERE NOT EXISTS (SELECT 1 FROM my2pg.snapshot_progress WHERE pipeline = $1 AND source_table = $2)",
            &[&pipeline, &name, &index, &lowers, &uppers],
        )
        .await
        .map_err(q(format!("planning the chunks of {name}")))?;
    if stored == 0 {
        return planned(client, pipeline, table).await;
    }
    Ok(chunks
        .iter()
        .map(|(i, lower, upper)| PlannedChunk {
            index: *i,
            lower: lower.clone(),
            upper: upper.clone(),
            done: false,
            rows: 0,
        })
        .collect())
}

/// The stored plan of `table` (empty when none).
pub async fn planned<C: GenericClient + Sync>(
    client: &C,
    pipeline: &str,
    table: &TableId,
) -> Result<Vec<PlannedChunk>> {
    let rows = client
        .query(
            "SELECT chunk, lower_key, upper_key, state, rows_copied FROM my2pg.snapshot_progress \
             WHERE pipeline = $1 AND source_table = $2 ORDER BY chunk",
            &[&pipeline, &table.to_string()],
        )
        .await
        .map_err(q(format!("reading the chunk plan of {table}")))?;
    rows.iter()
        .map(|r| {
            let bound = |i: usize| -> Result<Option<Vec<Value>>> {
                r.get::<_, Option<serde_json::Value>>(i)
                    .map(serde_json::from_value)
                    .transpose()
                    .map_err(|e| SinkError::State {
                        reason: format!("unreadable chunk bound of {table}: {e}"),
                    })
            };
            Ok(PlannedChunk {
                index: r.get::<_, i32>(0) as u32,
                lower: bound(1)?,
                upper: bound(2)?,
                done: r.get::<_, &str>(3) == "done",
                rows: r.get(4),
            })
        })
        .collect()
}

/// Marks a chunk copied. Call inside the transaction that wrote its rows.
pub async fn chunk_done<C: GenericClient + Sync>(
    client: &C,
    pipeline: &str,
    table: &TableId,
    index: u32,
    rows: u64,
) -> Result<()> {
    client
        .execute(
            "UPDATE my2pg.snapshot_progress SET state = 'done', rows_copied = $4, copied_at = now() \
             WHERE pipeline = $1 AND source_table = $2 AND chunk = $3",
            &[&pipeline, &table.to_string(), &(index as i32), &(rows as i64)],
        )
        .await
        .map_err(q(format!("marking chunk {index} of {table} copied")))?;
    Ok(())
}

/// Forgets the plan of `table` (a re-copy starts over).
pub async fn forget<C: GenericClient + Sync>(
    client: &C,
    pipeline: &str,
    table: &TableId,
) -> Result<()> {
    client
        .execute(
            "DELETE FROM my2pg.snapshot_progress WHERE pipeline = $1 AND source_table = $2",
            &[&pipeline, &table.to_string()],
        )
        .await
        .map_err(q(format!("forgetting the chunk plan of {table}")))?;
    Ok(())
}

/// Stores statements to run once the stream passed the end of the copy.
pub async fn defer_ddl<C: GenericClient + Sync>(
    client: &C,
    pipeline: &str,
    table: &TableId,
    statements: &[String],
) -> Result<()> {
    let name = table.to_string();
    client
        .execute(
            "DELETE FROM my2pg.deferred_ddl WHERE pipeline = $1 AND source_table = $2",
            &[&pipeline, &name],
        )
        .await
        .map_err(q("replacing deferred DDL"))?;
    let rows: Vec<(i32, &String)> = statements
        .iter()
        .enumerate()
        .map(|(i, s)| (i as i32, s))
        .collect();
    insert_ddl(client, pipeline, &name, &rows).await
}

async fn insert_ddl<C: GenericClient + Sync>(
    client: &C,
    pipeline: &str,
    table: &str,
    rows: &[(i32, &String)],
) -> Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    // One statement for all of them: the table's preparation runs while other tables are
    // being copied, where every round trip waits for a busy server.
    let ordinals: Vec<i32> = rows.iter().map(|(o, _)| *o).collect();
    let statements: Vec<&str> = rows.iter().map(|(_, s)| s.as_str()).collect();
    client
        .execute(
            "INSERT INTO my2pg.deferred_ddl (pipeline, source_table, ordinal, statement) \
             SELECT $1, $2, o, s FROM unnest($3::int4[], $4::text[]) AS d(o, s)",
            &[&pipeline, &table, &ordinals, &statements],
        )
        .await
        .map_err(q("recording deferred DDL"))?;
    Ok(())
}

/// The deferred statements, in order.
pub async fn deferred_ddl<C: GenericClient + Sync>(
    client: &C,
    pipeline: &str,
) -> Result<Vec<(String, String)>> {
    let rows = client
        .query(
            "SELECT source_table, statement FROM my2pg.deferred_ddl WHERE pipeline = $1 AND ordinal >= 0 \
             ORDER BY source_table, ordinal",
            &[&pipeline],
        )
        .await
        .map_err(q("reading deferred DDL"))?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// Records statements to run right after the copy, before streaming (primary keys and plain
/// indexes of tables the copy created: nothing in the replay can make them fail). Stored
/// with negative ordinals beside the [`defer_ddl`] ones, replacing the table's previous ones.
pub async fn after_load_ddl<C: GenericClient + Sync>(
    client: &C,
    pipeline: &str,
    table: &TableId,
    statements: &[String],
) -> Result<()> {
    let rows: Vec<(i32, &String)> = statements
        .iter()
        .enumerate()
        .map(|(i, s)| (-1 - i as i32, s))
        .collect();
    insert_ddl(client, pipeline, &table.to_string(), &rows).await
}

/// The statements recorded by [`after_load_ddl`] that have not run yet: (table, statement);
/// those of `table` only when given.
pub async fn pending_after_load<C: GenericClient + Sync>(
    client: &C,
    pipeline: &str,
    table: Option<&TableId>,
) -> Result<Vec<(String, String)>> {
    let table = table.map(ToString::to_string);
    let rows = client
        .query(
            "SELECT source_table, statement FROM my2pg.deferred_ddl WHERE pipeline = $1 AND ordinal < 0 \
             AND ($2::text IS NULL OR source_table = $2) ORDER BY source_table, ordinal DESC",
            &[&pipeline, &table],
        )
        .await
        .map_err(q("reading post-copy DDL"))?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// Forgets the [`after_load_ddl`] statements once they ran.
pub async fn after_load_done<C: GenericClient + Sync>(client: &C, pipeline: &str) -> Result<()> {
    client
        .execute(
            "DELETE FROM my2pg.deferred_ddl WHERE pipeline = $1 AND ordinal < 0",
            &[&pipeline],
        )
        .await
        .map_err(q("clearing post-copy DDL"))?;
    Ok(())
}

/// Marks the copy copied at `end` and stores `start` as the checkpoint (streaming replays
/// from there). Call inside one transaction.
pub async fn copied<C: GenericClient + Sync>(
    client: &C,
    pipeline: &str,
    end: &SourcePosition,
) -> Result<()> {
    client
        .execute(
            "UPDATE my2pg.snapshot SET end_position = $2, state = 'copied' WHERE pipeline = $1",
            &[&pipeline, &end.to_string()],
        )
        .await
        .map_err(q("recording the end of the copy"))?;
    Ok(())
}

/// Marks the copy finished (deferred DDL ran) and clears the deferred statements.
pub async fn done<C: GenericClient + Sync>(client: &C, pipeline: &str) -> Result<()> {
    client
        .execute(
            "DELETE FROM my2pg.deferred_ddl WHERE pipeline = $1",
            &[&pipeline],
        )
        .await
        .map_err(q("clearing deferred DDL"))?;
    client
        .execute(
            // `clock_timestamp()`, not `now()`: the transaction began before the deferred
            // indexes were built, and the copy is finished only once they are.
            "UPDATE my2pg.snapshot SET state = 'done', finished_at = clock_timestamp() WHERE pipeline = $1",
            &[&pipeline],
        )
        .await
        .map_err(q("finishing the copy"))?;
    Ok(())
}
