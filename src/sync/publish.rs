//! `my2pg sync --via kafka`: the reader side of the Kafka path. Wiring only: the producer,
//! the envelope and the exactly-once argument are in `sink::kafka`.
//!
//! ```text
//! source ─▶ BinlogReader ─(bounded channel)─▶ batcher ─▶ Publisher ─▶ <prefix>.<db>.<table>
//!    ▲                                            (one Kafka transaction: rows + position)
//!    └── heartbeat writer
//! ```
//!
//! On start the publisher fences older publishers of the pipeline and reads its position from
//! `<prefix>-my2pg-positions`. Without one it copies the selected tables (the same chunked,
//! lock-free copy as direct sync, `WriteMode::Publish`: chunks become `op = r` events) and
//! commits the copy's start position; the stream then replays from there, exactly as direct
//! sync does, which is what makes copy plus stream exact (see `snapshot`). With one, it
//! streams from it. A batch of whole source transactions is one Kafka transaction; a huge
//! source transaction's fragments share one Kafka transaction, committed after the last, so
//! consumers reading committed data see every source transaction whole or not at all. In the
//! transactional mode (`[kafka] mode = "transactional"`) the changes go to one single-partition
//! topic and each source transaction ends with its end marker (`sink::kafka::transactions`).
//!
//! The published position feeds the runway tracker (`super::runway::Tracker`) the way direct
//! sync's checkpoint does: the copy's start while it runs, then each committed position, so
//! `my2pg_binlog_runway_seconds` counts from the binlog file a restarted publisher needs.
//!
//! The target is still used for the copy's bookkeeping (chunk plan and progress, in
//! `my2pg.snapshot*`) and to create the target tables; rows reach it only through workers.
//! Rows are published as the source holds them (before `[[transform]]`): the workers apply
//! the transforms, the same way for my2pg's events and Debezium's.

use std::time::Duration;

use anyhow::{Result, anyhow};
use cdc_reader::binlog::stream::current_position;
use schemas::{SourcePosition, SourceTx, TableId};
use sink::kafka::publish::{Publisher, TxEvents};
use tokio::sync::{mpsc, watch};
use tracing::{debug, info};

use super::snapshot::{self, WriteMode};
use super::{Exit, SyncContext, SyncOptions, copies, discover, heartbeat};
use crate::health::Phase;

/// Copy (when Kafka holds no position yet), then stream into Kafka until stopped.
pub async fn run_once(
    ctx: &SyncContext,
    opts: &SyncOptions,
    stop: watch::Receiver<bool>,
) -> Result<Exit> {
    let kopts = ctx.kafka.options()?;
    let pg = ctx.target.connect().await?;
    pg.batch_execute("BEGIN").await?;
    sink::state::ensure_state(&pg).await?;
    pg.batch_execute("COMMIT").await?;
    super::preflight_source(ctx).await?;
    let tables = discover(ctx).await?;
    let publisher = Publisher::connect(&kopts, &ctx.pipeline, None).await?;
    let mut ids: Vec<TableId> = tables.iter().map(|t| t.id.clone()).collect();
    if let Some(hb) = &ctx.heartbeat_table {
        ids.push(hb.clone());
    }
    publisher.ensure_topics(&ids).await?;
    ctx.health.set(Phase::Snapshotting);
    let from = match publisher.read_position().await? {
        Some(p) => {
            info!(position = %p, "resuming the Kafka stream from the published position");
            ctx.tracker.set_resume(&p);
            p
        }
        None => {
            let start = match sink::snapshot::read(&pg, &ctx.pipeline).await? {
                Some(s) => s.start,
                None => {
                    let mut c = ctx.source.connect().await?;
                    let p = cdc_reader::snapshot::start_position(&mut c).await?;
                    sink::snapshot::begin(&pg, &ctx.pipeline, &p).await?;
                    p
                }
            };
            // A restart during the copy streams from its start: that file must not be purged.
            ctx.tracker.set_resume(&start);
            info!(position = %start, tables = tables.len(), "publishing a copy of the selected tables");
            snapshot::copy_tables(ctx, copies(ctx, &tables)?, WriteMode::Publish).await?;
            let end = {
                let mut c = ctx.source.connect().await?;
                current_position(&mut c).await?
            };
            sink::snapshot::copied(&pg, &ctx.pipeline, &end).await?;
            publisher.begin()?;
            publisher.commit(Some(&start)).await?;
            info!(start = %start, end = %end, "copy published; streaming replays from its start");
            start
        }
    };
    if opts.snapshot_only {
        return Ok(Exit::SnapshotOnly(from));
    }
    stream(ctx, &publisher, from, stop).await
}

async fn stream(
    ctx: &SyncContext,
    publisher: &Publisher,
    from: SourcePosition,
    mut stop: watch::Receiver<bool>,
) -> Result<Exit> {
    let (tx, mut rx) = mpsc::channel::<SourceTx>(ctx.sync.channel_capacity.max(1));
    let reader = ctx.reader();
    let max_backoff = Duration::from_secs(ctx.sync.retry_max_backoff_secs.max(1));
    let reader_task =
        tokio::spawn(async move { reader.run_resilient(from, &tx, max_backoff).await });
    let (hb_stop_tx, hb_stop) = watch::channel(false);
    let mut hb_task = None;
    if let Some(table) = &ctx.heartbeat_table
        && heartbeat::ensure_table(&ctx.source, table).await
    {
        hb_task = Some(tokio::spawn(heartbeat::run(
            ctx.source.clone(),
            table.clone(),
            ctx.pipeline.clone(),
            Duration::from_millis(ctx.sync.heartbeat_interval_ms),
            hb_stop,
        )));
    }
    ctx.health.set(Phase::Streaming);
    let result = publish_loop(ctx, publisher, &mut rx, &mut stop).await;
    let _ = hb_stop_tx.send(true);
    if let Some(h) = hb_task {
        let _ = h.await;
    }
    drop(rx);
    reader_task.abort();
    match result {
        Ok(Some(exit)) => Ok(exit),
        Ok(None) => match reader_task.await {
            Ok(Err(e)) => Err(e.into()),
            _ => Err(anyhow!(cdc_reader::ReaderError::StreamLost {
                source: None
            })),
        },
        Err(e) => {
            publisher.abort().await;
            Err(e)
        }
    }
}

/// Publishes batches until stopped (`Ok(Some)`), the reader ends (`Ok(None)`), or an error.
async fn publish_loop(
    ctx: &SyncContext,
    publisher: &Publisher,
    rx: &mut mpsc::Receiver<SourceTx>,
    stop: &mut watch::Receiver<bool>,
) -> Result<Option<Exit>> {
    // Whether a Kafka transaction is open (a huge source transaction's fragments so far).
    let mut open = false;
    // The source transaction being published, across its fragments.
    let mut events = TxEvents::default();
    loop {
        if *stop.borrow() && !open {
            return Ok(Some(Exit::Stopped));
        }
        let first = tokio::select! {
            msg = rx.recv() => match msg {
                Some(t) => t,
                None => return Ok(None),
            },
            _ = stop.changed(), if !open => return Ok(Some(Exit::Stopped)),
        };
        if !open {
            publisher.begin()?;
            open = true;
        }
        let mut rows = first.row_count();
        let mut last_whole = first.fragment.last.then(|| first.position.clone());
        let mut sent = publisher.send_tx(&first, &mut events).await?;
        let mut more = first.fragment.last;
        while more && rows < ctx.sync.batch_rows {
            match rx.try_recv() {
                Ok(t) => {
                    rows += t.row_count();
                    sent += publisher.send_tx(&t, &mut events).await?;
                    more = t.fragment.last;
                    if t.fragment.last {
                        last_whole = Some(t.position.clone());
                    }
                    ctx.metrics.transactions_applied(u64::from(t.fragment.last));
                }
                Err(_) => break,
            }
        }
        if more {
            publisher.commit(last_whole.as_ref()).await?;
            open = false;
            // The committed position is where a restarted publisher resumes: the binlog
            // runway counts from its file, as direct sync's does from the checkpoint.
            if let Some(p) = &last_whole {
                ctx.tracker.set_resume(p);
            }
            debug!(events = sent, position = ?last_whole, "published");
        }
    }
}
