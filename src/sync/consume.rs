//! `my2pg apply --from kafka`: one apply worker of a consumer group. Wiring only: the
//! consumer, the offsets and the exactly-once argument are in `sink::kafka`.
//!
//! ```text
//! <prefix>.<db>.<table> ─▶ consumer (group member) ─▶ decode ─▶ transform ─▶ Applier ─▶ target
//!                          (seeks to my2pg.kafka_offsets)           (rows + offsets in one transaction)
//! ```
//!
//! The worker takes what is ready (up to `batch_rows`), decodes each message against its
//! table's source schema (read from the source's `information_schema` once, like `sync` and
//! `verify`), runs the `[[transform]]` stages and hands the batch to the same
//! `sink::apply::Applier` as direct sync, which commits the rows and the partitions' next
//! offsets together. It polls Kafka only between batches, so a rebalance always finds no
//! batch in flight: the last batch committed, the unapplied messages of revoked partitions are
//! dropped, and their next owner starts at the stored offsets.
//!
//! A message that cannot be applied (not JSON, an unknown table, columns that do not match)
//! stops the worker naming topic, partition and offset, or — with
//! `[kafka] on_poison = "dead_letter"` — is recorded in `my2pg.dead_letter` and skipped. The
//! record is committed just before the batch that skips it: a crash in between records it
//! again on the retry (never skips it unrecorded).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Result;
use futures::FutureExt as _;
use rdkafka::Message as _;
use rdkafka::consumer::Consumer as _;
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::message::BorrowedMessage;
use schemas::change::{Change, TxFragment};
use schemas::envelope;
use schemas::{BinlogCoord, SourcePosition, SourceTx, TableId, TableSchema};
use sink::apply::{Applier, ErrorPolicy};
use sink::kafka::consume::Assignment;
use sink::kafka::offsets::{Consumed, Fence};
use tokio::sync::watch;
use tracing::{debug, info, warn};

use super::{Exit, Retry, SyncContext, applier_config, copies, discover, error_kind, is_transient};
use crate::health::Phase;
use crate::metrics::ErrorKind;

/// Runs the worker until stopped: transient errors (a broker or the target restarting, a
/// partition taken over mid-batch) rejoin the group after a backoff.
pub async fn run(ctx: SyncContext, stop: watch::Receiver<bool>) -> Result<Exit> {
    let max_backoff = Duration::from_secs(ctx.sync.retry_max_backoff_secs.max(1));
    let mut backoff = Duration::from_millis(500);
    loop {
        ctx.health.set(Phase::Starting);
        let started = Instant::now();
        match run_once(&ctx, stop.clone()).await {
            Ok(exit) => return Ok(exit),
            Err(e) if is_transient(&e) && !*stop.borrow() => {
                let retry = Retry {
                    action: "apply worker interrupted; rejoining the group",
                    ran: started.elapsed(),
                    max: max_backoff,
                };
                if !retry.wait(&ctx, &e, &mut backoff, &stop).await {
                    return Ok(Exit::Stopped);
                }
            }
            Err(e) => {
                ctx.metrics.error(error_kind(&e, false));
                ctx.health.stopped(e.as_ref());
                return Err(e);
            }
        }
    }
}

/// What the worker knows to decode messages: each table's source schema, by table and topic.
struct Tables {
    by_id: HashMap<TableId, Arc<TableSchema>>,
}

async fn run_once(ctx: &SyncContext, mut stop: watch::Receiver<bool>) -> Result<Exit> {
    let kopts = ctx.kafka.options()?;
    let mut applier = Applier::new(
        ctx.target.connect().await?,
        applier_config(ctx),
        ctx.targeting.clone(),
    )
    .await?
    .consuming(Fence::new(kopts.group.clone()));
    let tables = discover(ctx).await?;
    // The target tables, when `sync --via kafka` (or `my2pg schema`) did not create them.
    {
        let pg = ctx.target.connect().await?;
        for t in copies(ctx, &tables)? {
            super::snapshot::ensure_table(ctx, &pg, &t, super::snapshot::WriteMode::Upsert).await?;
        }
    }
    for t in super::outputs(ctx, &tables)? {
        applier.know(t);
    }
    let mut by_id: HashMap<TableId, Arc<TableSchema>> =
        tables.iter().map(|t| (t.id.clone(), t.clone())).collect();
    if let Some(hb) = &ctx.heartbeat_table {
        // The publisher creates it too; the worker may start first.
        super::heartbeat::ensure_table(&ctx.source, hb).await;
        let mut my = ctx.source.connect().await?;
        if let Ok(s) = cdc_reader::schema::read_table(&mut my, hb).await {
            by_id.insert(hb.clone(), Arc::new(s));
        }
        let _ = my.disconnect().await;
        ctx.metrics
            .set_heartbeat_interval(Some(Duration::from_millis(ctx.sync.heartbeat_interval_ms)));
    }
    let known = Tables { by_id };
    let topics: Vec<String> = known.by_id.keys().map(|id| kopts.topic(id)).collect();
    let consumer = sink::kafka::consume::consumer(&kopts, &ctx.target, &topics)?;
    info!(group = %kopts.group, topics = topics.len(), "apply worker joined the consumer group");
    ctx.health.set(Phase::Streaming);
    ctx.metrics.set_streaming(true);
    let result = apply_loop(ctx, &consumer, &known, &mut applier, &mut stop).await;
    ctx.metrics.set_streaming(false);
    applier.rollback().await;
    consumer.unsubscribe();
    result
}

/// A message taken from Kafka, decoded (or why not).
struct Taken {
    consumed: Consumed,
    tx: std::result::Result<Option<SourceTx>, String>,
    raw: Option<Vec<u8>>,
}

fn take(m: &BorrowedMessage<'_>, known: &Tables) -> Taken {
    let consumed = Consumed {
        topic: Arc::from(m.topic()),
        partition: m.partition(),
        offset: m.offset(),
    };
    let tx = decode(m.payload(), known);
    let raw = tx
        .is_err()
        .then(|| m.payload().map(<[u8]>::to_vec))
        .flatten();
    Taken { consumed, tx, raw }
}

fn decode(payload: Option<&[u8]>, known: &Tables) -> std::result::Result<Option<SourceTx>, String> {
    let Some(d) = envelope::decode(payload).map_err(|e| e.to_string())? else {
        return Ok(None);
    };
    let Some(change) = d.change else {
        return Ok(None);
    };
    let schema = known
        .by_id
        .get(&d.table)
        .ok_or_else(|| format!("table {} is not in the selection", d.table))?;
    let row = change.row_change(schema).map_err(|e| e.to_string())?;
    let position = match &change.file {
        Some((f, p)) => SourcePosition::File(BinlogCoord::new(f.clone(), *p)),
        None => SourcePosition::File(BinlogCoord::new("", 0)),
    };
    Ok(Some(SourceTx {
        gtid: None,
        position,
        commit_time_ms: change.commit_ms,
        changes: vec![Change::Row(row)],
        fragment: TxFragment::WHOLE,
    }))
}

fn act_on_rebalance(
    consumer: &sink::kafka::consume::Consumer,
    applier: &mut Applier,
    pending: &mut Vec<Taken>,
) -> Result<()> {
    for a in consumer.context().take() {
        match a {
            Assignment::Own {
                topic,
                partition,
                stored,
            } => {
                if let Some(f) = applier.fence_mut() {
                    f.own(topic, partition, stored);
                }
            }
            Assignment::Release { topic, partition } => {
                if let Some(f) = applier.fence_mut() {
                    f.release(&topic, partition);
                }
                pending
                    .retain(|t| !(t.consumed.topic == topic && t.consumed.partition == partition));
            }
            // Transient: the worker leaves the group and joins again.
            Assignment::Failed(reason) => {
                return Err(sink::SinkError::Kafka {
                    what: reason,
                    source: rdkafka::error::KafkaError::Rebalance(RDKafkaErrorCode::Fail),
                }
                .into());
            }
        }
    }
    Ok(())
}

async fn apply_loop(
    ctx: &SyncContext,
    consumer: &sink::kafka::consume::Consumer,
    known: &Tables,
    applier: &mut Applier,
    stop: &mut watch::Receiver<bool>,
) -> Result<Exit> {
    loop {
        if *stop.borrow() {
            return Ok(Exit::Stopped);
        }
        let first = tokio::select! {
            m = consumer.recv() => match m {
                Ok(m) => m,
                // A topic not created yet (the publisher creates them when it starts): the
                // subscription picks it up when it appears.
                Err(e) if e.rdkafka_error_code() == Some(RDKafkaErrorCode::UnknownTopicOrPartition) => {
                    debug!(error = %e, "waiting for the topics to exist");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
                Err(e) => return Err(sink::SinkError::Kafka { what: "consuming".into(), source: e }.into()),
            },
            _ = stop.changed() => return Ok(Exit::Stopped),
            // Wake up now and then so rebalance events are acted on while idle.
            _ = tokio::time::sleep(Duration::from_millis(500)) => {
                let mut none = Vec::new();
                act_on_rebalance(consumer, applier, &mut none)?;
                continue;
            }
        };
        let mut pending = vec![take(&first, known)];
        drop(first);
        let mut rows = 1;
        while rows < ctx.sync.batch_rows {
            match consumer.recv().now_or_never() {
                Some(Ok(m)) => {
                    pending.push(take(&m, known));
                    rows += 1;
                }
                Some(Err(e))
                    if e.rdkafka_error_code()
                        == Some(RDKafkaErrorCode::UnknownTopicOrPartition) =>
                {
                    break;
                }
                Some(Err(e)) => {
                    return Err(sink::SinkError::Kafka {
                        what: "consuming".into(),
                        source: e,
                    }
                    .into());
                }
                None => break,
            }
        }
        act_on_rebalance(consumer, applier, &mut pending)?;
        // Messages of partitions this worker does not own (any more) are left to their owner.
        pending.retain(|t| {
            applier
                .fence_mut()
                .is_some_and(|f| f.owns(&t.consumed.topic, t.consumed.partition))
        });
        if pending.is_empty() {
            continue;
        }
        let mut batch = Vec::with_capacity(pending.len());
        let mut consumed = Vec::with_capacity(pending.len());
        let mut poison = Vec::new();
        for t in pending {
            let tx = match t.tx {
                Ok(Some(tx)) => ctx.transforms.apply(tx)?,
                // A tombstone: nothing to apply, but its offset moves on with the batch.
                Ok(None) => empty_tx(),
                Err(reason) => {
                    if ctx.kafka.on_poison == ErrorPolicy::Stop {
                        return Err(sink::SinkError::Poison {
                            topic: t.consumed.topic.to_string(),
                            partition: t.consumed.partition,
                            offset: t.consumed.offset,
                            reason,
                        }
                        .into());
                    }
                    poison.push((t.consumed.clone(), t.raw, reason));
                    empty_tx()
                }
            };
            batch.push(tx);
            consumed.push(t.consumed);
        }
        if !poison.is_empty() {
            record_poison(applier.client(), &ctx.pipeline, &poison).await?;
            ctx.metrics
                .errors(ErrorKind::DeadLetter, poison.len() as u64);
        }
        let started = Instant::now();
        let outcome = applier.apply_consumed(batch, consumed).await?;
        let now = SystemTime::now();
        ctx.metrics.apply_batch_finished(started.elapsed());
        ctx.metrics.transactions_applied(outcome.transactions);
        for (table, op, n) in &outcome.rows {
            ctx.metrics.row_events_applied(table, *op, *n);
        }
        if let Some(ms) = outcome.last_commit_ms.filter(|ms| *ms > 0) {
            ctx.metrics
                .event_applied(UNIX_EPOCH + Duration::from_millis(ms as u64));
        }
        if let Some(hb) = outcome.heartbeat {
            ctx.metrics.heartbeat_applied(hb, now);
        }
    }
}

fn empty_tx() -> SourceTx {
    SourceTx {
        gtid: None,
        position: SourcePosition::File(BinlogCoord::new("", 0)),
        commit_time_ms: 0,
        changes: Vec::new(),
        fragment: TxFragment::WHOLE,
    }
}

/// Records skipped messages in `my2pg.dead_letter` (position = `topic[partition]@offset`).
async fn record_poison(
    pg: &tokio_postgres::Client,
    pipeline: &str,
    poison: &[(Consumed, Option<Vec<u8>>, String)],
) -> Result<()> {
    for (c, raw, reason) in poison {
        let event = raw.as_deref().map(|b| {
            serde_json::from_slice::<serde_json::Value>(b)
                .unwrap_or_else(|_| serde_json::json!({ "raw": String::from_utf8_lossy(b) }))
        });
        let position = format!("{}[{}]@{}", c.topic, c.partition, c.offset);
        warn!(message = %position, error = %reason, "kafka message cannot be applied; recorded in my2pg.dead_letter");
        pg.execute(
            "INSERT INTO my2pg.dead_letter (pipeline, position, event, error) VALUES ($1, $2, $3, $4)",
            &[&pipeline, &position, &event, reason],
        )
        .await?;
    }
    Ok(())
}
