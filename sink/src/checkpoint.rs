//! The checkpoint: the source position every applied row is consistent with.
//!
//! It is written by [`write`] inside the PostgreSQL transaction that applies the rows, so a
//! crash at any instant leaves either both the rows and the new position or neither: resuming
//! from the stored position re-reads exactly the transactions whose effect is not on the
//! target. [`write`] refuses a position that is not at or after the stored one (a bug upstream
//! must never make the pipeline skip or repeat work silently).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use schemas::SourcePosition;
use tokio_postgres::GenericClient;

use crate::error::{Result, SinkError};

/// Pipeline name used when the configuration names none.
pub const DEFAULT_PIPELINE: &str = "default";

/// A stored checkpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct Checkpoint {
    /// Position after the last applied source transaction.
    pub position: SourcePosition,
    /// GTID of that transaction, when the source uses GTIDs.
    pub last_gtid: Option<String>,
    /// Its commit time on the source.
    pub source_commit_time: Option<SystemTime>,
    /// When it was applied.
    pub applied_at: SystemTime,
    /// Source transactions applied so far.
    pub transactions: i64,
}

fn q(what: &str) -> impl FnOnce(tokio_postgres::Error) -> SinkError {
    let what = what.to_owned();
    move |source| SinkError::Query { what, source }
}

/// Reads the checkpoint of `pipeline`; `None` when the pipeline never committed one (or the
/// state schema does not exist yet).
pub async fn read<C: GenericClient + Sync>(
    client: &C,
    pipeline: &str,
) -> Result<Option<Checkpoint>> {
    let exists: bool = client
        .query_one("SELECT to_regclass('my2pg.checkpoint') IS NOT NULL", &[])
        .await
        .map_err(q("looking for my2pg.checkpoint"))?
        .get(0);
    if !exists {
        return Ok(None);
    }
    let row = client
        .query_opt(
            "SELECT position, last_gtid, source_commit_time, applied_at, transactions \
             FROM my2pg.checkpoint WHERE pipeline = $1",
            &[&pipeline],
        )
        .await
        .map_err(q("reading my2pg.checkpoint"))?;
    let Some(row) = row else { return Ok(None) };
    let text: String = row.get(0);
    let position: SourcePosition = text.parse().map_err(
        |e: schemas::position::PositionParseError| SinkError::State {
            reason: format!("my2pg.checkpoint holds an unreadable position: {e}"),
        },
    )?;
    Ok(Some(Checkpoint {
        position,
        last_gtid: row.get(1),
        source_commit_time: row.get(2),
        applied_at: row.get(3),
        transactions: row.get(4),
    }))
}

/// Stores `position` as the checkpoint of `pipeline`. Call inside the transaction that
/// applied the rows. `previous` is the checkpoint the caller last read or wrote: a position
/// that is not at or after it is refused.
pub async fn write<C: GenericClient + Sync>(
    client: &C,
    pipeline: &str,
    previous: Option<&SourcePosition>,
    position: &SourcePosition,
    last_gtid: Option<&str>,
    source_commit_ms: Option<i64>,
    transactions: i64,
) -> Result<()> {
    if let Some(prev) = previous
        && position.is_at_or_after(prev) == Some(false)
    {
        return Err(SinkError::State {
            reason: format!("refusing to move the checkpoint backwards from {prev} to {position}"),
        });
    }
    let commit = source_commit_ms.map(|ms| UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64));
    client
        .execute(
            "INSERT INTO my2pg.checkpoint (pipeline, position, last_gtid, source_commit_time, applied_at, transactions) \
             VALUES ($1, $2, $3, $4, now(), $5) \
             ON CONFLICT (pipeline) DO UPDATE SET position = EXCLUDED.position, last_gtid = EXCLUDED.last_gtid, \
             source_commit_time = EXCLUDED.source_commit_time, applied_at = EXCLUDED.applied_at, \
             transactions = my2pg.checkpoint.transactions + EXCLUDED.transactions",
            &[&pipeline, &position.to_string(), &last_gtid, &commit, &transactions],
        )
        .await
        .map_err(q("writing my2pg.checkpoint"))?;
    Ok(())
}
