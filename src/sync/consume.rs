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
//! In the transactional mode (`[kafka] mode = "transactional"`) the worker subscribes to the
//! single-partition topic instead; `sink::kafka::transactions::Assembler` regroups its
//! messages into whole source transactions (by their end markers), and a batch ends only after
//! one. A source transaction larger than `batch_rows` goes to the applier in fragments that
//! share one PostgreSQL transaction, as in direct sync. Only the worker that owns the
//! partition applies; the others in the group stay idle members, ready to take over.
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
use schemas::envelope::{self, Message};
use schemas::{BinlogCoord, SourcePosition, SourceTx, TableId, TableSchema};
use sink::apply::{Applier, ErrorPolicy};
use sink::kafka::KafkaMode;
use sink::kafka::consume::Assignment;
use sink::kafka::offsets::{Consumed, Fence};
use sink::kafka::transactions::{Assembler, Item};
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
    let ids: Vec<TableId> = known.by_id.keys().cloned().collect();
    let topics = kopts.change_topics(&ids);
    if kopts.mode == KafkaMode::Transactional {
        let existing = sink::kafka::publish::partition_counts(&kopts).await?;
        sink::kafka::publish::check_transactions_topic(&kopts, &existing)?;
    }
    let consumer = sink::kafka::consume::consumer(&kopts, &ctx.target, &topics)?;
    info!(group = %kopts.group, mode = ?kopts.mode, topics = topics.len(), "apply worker joined the consumer group");
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
    item: std::result::Result<Item, String>,
    raw: Option<Vec<u8>>,
}

fn take(m: &BorrowedMessage<'_>, known: &Tables, mode: KafkaMode) -> Taken {
    let consumed = Consumed {
        topic: Arc::from(m.topic()),
        partition: m.partition(),
        offset: m.offset(),
    };
    let item = decode(m.payload(), known, mode);
    let raw = item
        .is_err()
        .then(|| m.payload().map(<[u8]>::to_vec))
        .flatten();
    Taken {
        consumed,
        item,
        raw,
    }
}

/// What a message means to the assembler. In the per-table mode every change is a unit of its
/// own; in the transactional mode a streamed change joins its source transaction (copy rows
/// stand alone: they belong to no transaction).
fn decode(
    payload: Option<&[u8]>,
    known: &Tables,
    mode: KafkaMode,
) -> std::result::Result<Item, String> {
    let d = match envelope::decode_message(payload).map_err(|e| e.to_string())? {
        Message::Change(d) => *d,
        Message::End(end) if mode == KafkaMode::Transactional => {
            return Ok(Item::End {
                id: end.id,
                event_count: end.event_count,
            });
        }
        Message::End(_) | Message::Nothing => return Ok(Item::Nothing),
    };
    let Some(change) = d.change else {
        return Ok(Item::Nothing);
    };
    let schema = known
        .by_id
        .get(&d.table)
        .ok_or_else(|| format!("table {} is not in the selection", d.table))?;
    let row = change.row_change(schema).map_err(|e| e.to_string())?;
    if mode == KafkaMode::Transactional
        && !change.snapshot
        && let Some(tx_id) = change.tx_id
    {
        return Ok(Item::Change {
            tx_id,
            change: row,
            commit_ms: change.commit_ms,
        });
    }
    let position = match &change.file {
        Some((f, p)) => SourcePosition::File(BinlogCoord::new(f.clone(), *p)),
        None => SourcePosition::File(BinlogCoord::new("", 0)),
    };
    Ok(Item::Whole(SourceTx {
        gtid: None,
        position,
        commit_time_ms: change.commit_ms,
        changes: vec![Change::Row(row)],
        fragment: TxFragment::WHOLE,
    }))
}

/// Acts on the rebalance events raised since the last call — before the message received
/// with them is accepted, so a message from before a revocation or a new assignment is never
/// mixed with the ones after it.
async fn act_on_rebalance(
    consumer: &sink::kafka::consume::Consumer,
    applier: &mut Applier,
    held: &mut Assembler,
) -> Result<()> {
    for a in consumer.context().take() {
        match a {
            Assignment::Own {
                topic,
                partition,
                stored,
            } => {
                // The new assignment starts again at the stored offset.
                if held.forget(&topic, partition) {
                    applier.rollback().await;
                }
                if let Some(f) = applier.fence_mut() {
                    f.own(topic, partition, stored);
                }
            }
            Assignment::Release { topic, partition } => {
                if let Some(f) = applier.fence_mut() {
                    f.release(&topic, partition);
                }
                // An unfinished source transaction of it (transactional mode): its applied
                // fragments go with the open PostgreSQL transaction; the next owner reads it
                // whole from the stored offset.
                if held.forget(&topic, partition) {
                    applier.rollback().await;
                }
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

/// A poison message recorded as a dead letter: where, the raw value, why.
type Poison = (Consumed, Option<Vec<u8>>, String);

/// Hands a received message to the assembler: dropped when its partition is not this
/// worker's, stopped on or recorded when it cannot be applied.
fn accept(
    ctx: &SyncContext,
    applier: &mut Applier,
    held: &mut Assembler,
    poison: &mut Vec<Poison>,
    t: Taken,
) -> Result<()> {
    // Messages of partitions this worker does not own (any more) are left to their owner.
    if !applier
        .fence_mut()
        .is_some_and(|f| f.owns(&t.consumed.topic, t.consumed.partition))
    {
        return Ok(());
    }
    let item = match t.item {
        Ok(item) => item,
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
            Item::Skipped
        }
    };
    held.push(item, t.consumed)?;
    Ok(())
}

async fn apply_loop(
    ctx: &SyncContext,
    consumer: &sink::kafka::consume::Consumer,
    known: &Tables,
    applier: &mut Applier,
    stop: &mut watch::Receiver<bool>,
) -> Result<Exit> {
    let mode = ctx.kafka.mode;
    let limit = ctx.sync.batch_rows.max(1);
    // A huge source transaction is handed to the applier in fragments of `batch_rows`.
    let mut held = Assembler::new(limit);
    let mut poison: Vec<Poison> = Vec::new();
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
                act_on_rebalance(consumer, applier, &mut held).await?;
                continue;
            }
        };
        act_on_rebalance(consumer, applier, &mut held).await?;
        let t = take(&first, known, mode);
        drop(first);
        accept(ctx, applier, &mut held, &mut poison, t)?;
        let mut received = 1;
        while received < limit && held.rows() < limit {
            match consumer.recv().now_or_never() {
                Some(Ok(m)) => {
                    act_on_rebalance(consumer, applier, &mut held).await?;
                    let t = take(&m, known, mode);
                    drop(m);
                    accept(ctx, applier, &mut held, &mut poison, t)?;
                    received += 1;
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
        act_on_rebalance(consumer, applier, &mut held).await?;
        // Whole units only (and a huge transaction's next fragment): the transactional mode's
        // PostgreSQL transactions never end inside a source transaction.
        let units = held.take();
        if units.is_empty() {
            continue;
        }
        if !poison.is_empty() {
            record_poison(applier.client(), &ctx.pipeline, &poison).await?;
            ctx.metrics
                .errors(ErrorKind::DeadLetter, poison.len() as u64);
            poison.clear();
        }
        let mut batch = Vec::with_capacity(units.len());
        let mut consumed = Vec::with_capacity(units.len());
        for u in units {
            batch.push(ctx.transforms.apply(u.tx)?);
            consumed.push(u.consumed);
        }
        let started = Instant::now();
        let outcome = applier.apply_consumed(batch, consumed).await?;
        let now = SystemTime::now();
        if !outcome.committed {
            debug!(
                "applied a fragment of a large source transaction; its PostgreSQL transaction stays open"
            );
        }
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

/// Records skipped messages in `my2pg.dead_letter` (position = `topic[partition]@offset`).
async fn record_poison(
    pg: &tokio_postgres::Client,
    pipeline: &str,
    poison: &[Poison],
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
