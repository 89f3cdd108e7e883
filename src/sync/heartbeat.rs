//! The heartbeat: a timestamp row my2pg writes into the source every interval.
//!
//! The row travels the whole pipeline like any change (binlog → reader → applier), and the
//! applier stores it with its apply time; `apply time − source time` is the end-to-end lag. A
//! heartbeat also keeps the checkpoint moving while the application writes nothing, so lag
//! stays true on an idle source and the stored position never falls behind the binlog
//! retention. The row lives in its own table (default `my2pg.heartbeat`), which is never a
//! migrated table and is never verified.

use std::time::Duration;

use mysql_async::prelude::Queryable;
use schemas::TableId;
use tokio::sync::watch;
use tracing::{debug, warn};

use cdc_reader::SourceOptions;
use cdc_reader::rows::{quote_ident, quote_table};

/// Creates the heartbeat table when missing. Returns false (with the reason logged) when the
/// source user may not create or write it: my2pg then measures lag from event times.
pub async fn ensure_table(source: &SourceOptions, table: &TableId) -> bool {
    let result = async {
        let mut conn = source.connect().await?;
        conn.query_drop(format!("CREATE DATABASE IF NOT EXISTS {}", quote_ident(&table.database)))
            .await
            .map_err(|source| cdc_reader::ReaderError::Query { what: "creating the heartbeat database".into(), source })?;
        conn.query_drop(format!(
            "CREATE TABLE IF NOT EXISTS {} (pipeline VARCHAR(64) NOT NULL PRIMARY KEY, ts DATETIME(6) NOT NULL) ENGINE=InnoDB",
            quote_table(table)
        ))
        .await
        .map_err(|source| cdc_reader::ReaderError::Query { what: "creating the heartbeat table".into(), source })?;
        let _ = conn.disconnect().await;
        Ok::<_, cdc_reader::ReaderError>(())
    }
    .await;
    match result {
        Ok(()) => true,
        Err(e) => {
            warn!(
                table = %table,
                error = %cdc_reader::error::chain(&e),
                "heartbeats are off: the source user cannot create or write the heartbeat table \
                 (GRANT CREATE, INSERT, UPDATE ON my2pg.* to it); lag falls back to event times"
            );
            false
        }
    }
}

/// Writes the heartbeat row every `interval` until `stop` is set. Connection errors are retried
/// quietly: a missing heartbeat shows as growing lag, which is what should page.
pub async fn run(
    source: SourceOptions,
    table: TableId,
    pipeline: String,
    interval: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let sql = format!(
        "INSERT INTO {} (pipeline, ts) VALUES (?, UTC_TIMESTAMP(6)) ON DUPLICATE KEY UPDATE ts = VALUES(ts)",
        quote_table(&table)
    );
    let mut conn: Option<mysql_async::Conn> = None;
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => {
                if *stop.borrow() {
                    break;
                }
            }
        }
        if conn.is_none() {
            conn = source.connect().await.ok();
        }
        let Some(c) = conn.as_mut() else { continue };
        if let Err(e) = c.exec_drop(&sql, (&pipeline,)).await {
            debug!(error = %e, "heartbeat write failed; reconnecting");
            conn = None;
        }
    }
    if let Some(c) = conn {
        let _ = c.disconnect().await;
    }
}
