//! The transactional publisher (see the parent module for the exactly-once argument).
//!
//! In the transactional mode ([`super::KafkaMode::Transactional`]) every change goes to the
//! single-partition topic and each source transaction's last change is followed by its end
//! marker ([`super::transactions`]); [`TxEvents`] carries the transaction's id and counts
//! across the fragments of a huge one, so the marker counts all of them.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};
use schemas::change::{Change, RowChange, TxGtid};
use schemas::envelope::{self, SourceInfo};
use schemas::{ChangeOp, SourcePosition, SourceTx, TableId};
use tracing::info;

use super::{KafkaMode, KafkaOptions, k};
use crate::error::{Result, SinkError};

/// How long a Kafka transaction may take to commit before the publisher gives up (and
/// retries from its position).
const COMMIT_TIMEOUT: Duration = Duration::from_secs(60);

/// A transactional producer; see the parent module.
#[derive(Clone)]
pub struct Publisher {
    producer: FutureProducer,
    opts: Arc<KafkaOptions>,
    pipeline: String,
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher")
            .field("pipeline", &self.pipeline)
            .finish_non_exhaustive()
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl Publisher {
    /// Connects with `transactional.id = my2pg-<pipeline>[-<suffix>]` and fences older
    /// producers of that id (their open transaction is aborted).
    pub async fn connect(
        opts: &KafkaOptions,
        pipeline: &str,
        suffix: Option<&str>,
    ) -> Result<Publisher> {
        let id = match suffix {
            Some(s) => format!("my2pg-{pipeline}-{s}"),
            None => format!("my2pg-{pipeline}"),
        };
        let producer: FutureProducer = opts
            .config()
            .set("transactional.id", &id)
            .set("enable.idempotence", "true")
            .set("linger.ms", "5")
            .set("queue.buffering.max.messages", "1000000")
            .set("queue.buffering.max.kbytes", "1048576")
            .set("compression.type", "lz4")
            .create()
            .map_err(k("creating the producer"))?;
        let p = producer.clone();
        tokio::task::spawn_blocking(move || p.init_transactions(COMMIT_TIMEOUT))
            .await
            .map_err(|e| SinkError::State {
                reason: format!("kafka producer thread: {e}"),
            })?
            .map_err(k(format!("initialising transactions of {id}")))?;
        Ok(Publisher {
            producer,
            opts: Arc::new(opts.clone()),
            pipeline: pipeline.to_owned(),
        })
    }

    /// The options.
    pub fn options(&self) -> &KafkaOptions {
        &self.opts
    }

    /// Creates the change topics of `tables` (the transactional mode's single topic, with one
    /// partition) and the positions topic when missing. Topics that exist are left as they
    /// are — an operator may have created them with other settings — except that the
    /// transactional topic must have exactly one partition.
    pub async fn ensure_topics(&self, tables: &[TableId]) -> Result<()> {
        let positions = self.opts.positions_topic();
        let mut wanted: Vec<(String, i32)> = match self.opts.mode {
            KafkaMode::PerTable => tables
                .iter()
                .map(|t| (self.opts.topic(t), self.opts.partitions.max(1)))
                .collect(),
            KafkaMode::Transactional => vec![(self.opts.transactions_topic(), 1)],
        };
        wanted.push((positions.clone(), 1));
        let existing = partition_counts(&self.opts).await?;
        check_transactions_topic(&self.opts, &existing)?;
        wanted.retain(|(n, _)| !existing.contains_key(n));
        if wanted.is_empty() {
            return Ok(());
        }
        let admin: AdminClient<DefaultClientContext> = self
            .opts
            .config()
            .create()
            .map_err(k("creating the admin client"))?;
        let replication = self.opts.replication.max(1);
        let topics: Vec<NewTopic<'_>> = wanted
            .iter()
            .map(|(n, p)| {
                let t = NewTopic::new(n, *p, TopicReplication::Fixed(replication));
                if *n == positions {
                    t.set("cleanup.policy", "compact")
                } else {
                    t
                }
            })
            .collect();
        let results = admin
            .create_topics(
                &topics,
                &AdminOptions::new()
                    .operation_timeout(Some(Duration::from_secs(30)))
                    .request_timeout(Some(Duration::from_secs(30))),
            )
            .await
            .map_err(k("creating topics"))?;
        for r in results {
            match r {
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((topic, code)) => {
                    return Err(SinkError::Kafka {
                        what: format!("creating topic {topic}"),
                        source: KafkaError::AdminOp(code),
                    });
                }
            }
        }
        info!(topics = wanted.len(), "created topics");
        Ok(())
    }

    /// The position of the last committed transaction of this pipeline, if any.
    pub async fn read_position(&self) -> Result<Option<SourcePosition>> {
        let opts = self.opts.clone();
        let pipeline = self.pipeline.clone();
        tokio::task::spawn_blocking(move || read_position(&opts, &pipeline))
            .await
            .map_err(|e| SinkError::State {
                reason: format!("kafka position reader thread: {e}"),
            })?
    }

    /// Opens a Kafka transaction.
    pub fn begin(&self) -> Result<()> {
        self.producer
            .begin_transaction()
            .map_err(k("beginning a transaction"))
    }

    /// Produces the row changes of `tx` (within the open transaction). A key change is
    /// published as a delete of the old key and a create of the new one, so every key's
    /// changes stay in that key's partition, in order. `events` follows the source
    /// transaction across its fragments (pass the same one until its last fragment); in the
    /// transactional mode the last fragment's changes are followed by the end marker.
    /// Returns the change messages produced.
    pub async fn send_tx(&self, tx: &SourceTx, events: &mut TxEvents) -> Result<u64> {
        let (server_id, gtid) = match &tx.gtid {
            Some(TxGtid::Maria(g)) => (g.server_id, Some(g.to_string())),
            Some(g @ TxGtid::Mysql(_)) => (0, Some(g.to_string())),
            None => (0, None),
        };
        let coord = tx.position.coord().cloned();
        // The first fragment names the transaction: a later fragment's position differs.
        if tx.fragment.index == 0 || events.id.is_empty() {
            *events = TxEvents {
                id: gtid.clone().unwrap_or_else(|| tx.position.to_string()),
                ..TxEvents::default()
            };
        }
        let mut sent = 0;
        let now = now_ms();
        for change in &tx.changes {
            let Change::Row(r) = change else { continue };
            let parts: Vec<RowChange> = split_key_change(r);
            for part in &parts {
                let table = r.table.id.to_string();
                let n = match events.per_table.iter_mut().find(|(t, _)| *t == table) {
                    Some((_, n)) => n,
                    None => {
                        events.per_table.push((table, 0));
                        let last = events.per_table.len() - 1;
                        &mut events.per_table[last].1
                    }
                };
                *n += 1;
                let data_collection_order = *n;
                events.total += 1;
                let info = SourceInfo {
                    name: self.opts.topic_prefix.clone(),
                    commit_ms: tx.commit_time_ms,
                    snapshot: false,
                    server_id,
                    gtid: gtid.clone(),
                    file: coord.as_ref().map(|c| c.file.clone()),
                    pos: coord.as_ref().map_or(0, |c| c.offset),
                    tx_id: Some(events.id.clone()),
                    total_order: events.total,
                    data_collection_order,
                };
                self.send_change(part, &info, now).await?;
                sent += 1;
            }
        }
        if tx.fragment.last && self.opts.mode == KafkaMode::Transactional && events.total > 0 {
            let (key, value) =
                envelope::encode_tx_end(&events.id, tx.commit_time_ms, &events.per_table);
            self.send_record(&self.opts.transactions_topic(), &key, &value)
                .await?;
        }
        Ok(sent)
    }

    /// Produces snapshot rows of one table as `op = r` (within the open transaction).
    pub async fn send_reads(
        &self,
        table: &Arc<schemas::TableSchema>,
        rows: Vec<schemas::Row>,
    ) -> Result<()> {
        let info = SourceInfo {
            name: self.opts.topic_prefix.clone(),
            commit_ms: now_ms(),
            snapshot: true,
            ..Default::default()
        };
        let now = now_ms();
        for row in rows {
            let change = RowChange {
                table: table.clone(),
                ordinal: 0,
                op: ChangeOp::Read,
                before: None,
                after: Some(row),
            };
            self.send_change(&change, &info, now).await?;
        }
        Ok(())
    }

    async fn send_change(&self, change: &RowChange, info: &SourceInfo, now: i64) -> Result<()> {
        let image = change.after.as_ref().or(change.before.as_ref());
        let Some(image) = image else { return Ok(()) };
        let bad = |source| SinkError::Envelope {
            table: change.table.id.to_string(),
            source,
        };
        let key = envelope::encode_key(&change.table, image).map_err(bad)?;
        let value = envelope::encode(change, info, now).map_err(bad)?;
        self.send_record(&self.opts.change_topic(&change.table.id), &key, &value)
            .await
    }

    /// Produces one message (within the open transaction), waiting while the queue is full.
    async fn send_record(&self, topic: &str, key: &[u8], value: &[u8]) -> Result<()> {
        let mut record = FutureRecord::to(topic).key(key).payload(value);
        loop {
            match self.producer.send_result(record) {
                Ok(_delivery) => return Ok(()),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    record = r;
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                Err((e, _)) => return Err(k(format!("producing to {topic}"))(e)),
            }
        }
    }

    /// Produces the position record (when given) and commits the open transaction.
    pub async fn commit(&self, position: Option<&SourcePosition>) -> Result<()> {
        if let Some(p) = position {
            let value = serde_json::json!({
                "position": p.to_string(),
                "committed_ms": now_ms(),
            })
            .to_string();
            let topic = self.opts.positions_topic();
            let record = FutureRecord::to(&topic)
                .key(self.pipeline.as_bytes())
                .payload(value.as_bytes());
            self.producer
                .send_result(record)
                .map_err(|(e, _)| k("producing the position record")(e))?;
        }
        let p = self.producer.clone();
        tokio::task::spawn_blocking(move || p.commit_transaction(COMMIT_TIMEOUT))
            .await
            .map_err(|e| SinkError::State {
                reason: format!("kafka producer thread: {e}"),
            })?
            .map_err(k("committing a transaction"))
    }

    /// Aborts the open transaction (after an error).
    pub async fn abort(&self) {
        let p = self.producer.clone();
        let _ = tokio::task::spawn_blocking(move || p.abort_transaction(COMMIT_TIMEOUT)).await;
    }
}

/// The source transaction being published, across its fragments (see [`Publisher::send_tx`]).
#[derive(Debug, Clone, Default)]
pub struct TxEvents {
    /// `transaction.id`: the GTID, else the position of its first fragment.
    id: String,
    /// Change messages so far.
    total: u64,
    /// Change messages so far by `database.table`, in first-seen order.
    per_table: Vec<(String, u64)>,
}

/// Partitions of every topic of the cluster, by name.
pub async fn partition_counts(
    opts: &KafkaOptions,
) -> Result<std::collections::HashMap<String, usize>> {
    let opts = opts.clone();
    tokio::task::spawn_blocking(move || existing_topics(&opts))
        .await
        .map_err(|e| SinkError::State {
            reason: format!("kafka metadata thread: {e}"),
        })?
}

/// In the transactional mode, refuses a single topic that exists with more than one partition
/// (its order would be lost between partitions).
pub fn check_transactions_topic(
    opts: &KafkaOptions,
    existing: &std::collections::HashMap<String, usize>,
) -> Result<()> {
    if opts.mode != KafkaMode::Transactional {
        return Ok(());
    }
    let topic = opts.transactions_topic();
    match existing.get(&topic) {
        Some(&partitions) if partitions > 1 => {
            Err(SinkError::TopicPartitions { topic, partitions })
        }
        _ => Ok(()),
    }
}

/// An update that changes the row's key becomes a delete of the old key and a create of the
/// new one (what Debezium does), so per-key order holds across partitions.
fn split_key_change(r: &RowChange) -> Vec<RowChange> {
    if let (ChangeOp::Update, Some(b), Some(a)) = (r.op, &r.before, &r.after) {
        let key = envelope::key_columns(&r.table);
        if key.iter().any(|&i| b.get(i) != a.get(i)) {
            return vec![
                RowChange {
                    op: ChangeOp::Delete,
                    after: None,
                    ..r.clone()
                },
                RowChange {
                    op: ChangeOp::Insert,
                    before: None,
                    ..r.clone()
                },
            ];
        }
    }
    vec![r.clone()]
}

fn existing_topics(opts: &KafkaOptions) -> Result<std::collections::HashMap<String, usize>> {
    let consumer: BaseConsumer = opts
        .config()
        .create()
        .map_err(k("creating a metadata client"))?;
    let md = consumer
        .fetch_metadata(None, Duration::from_secs(30))
        .map_err(k("reading the cluster's topics"))?;
    Ok(md
        .topics()
        .iter()
        .map(|t| (t.name().to_owned(), t.partitions().len()))
        .collect())
}

fn read_position(opts: &KafkaOptions, pipeline: &str) -> Result<Option<SourcePosition>> {
    let topic = opts.positions_topic();
    let consumer: BaseConsumer = opts
        .config()
        .set("group.id", format!("my2pg-{pipeline}-position-reader"))
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .create()
        .map_err(k("creating the position reader"))?;
    let (low, high) = match consumer.fetch_watermarks(&topic, 0, Duration::from_secs(30)) {
        Ok(w) => w,
        Err(e) if e.rdkafka_error_code() == Some(RDKafkaErrorCode::UnknownTopicOrPartition) => {
            return Ok(None);
        }
        Err(e) => return Err(k(format!("reading the watermarks of {topic}"))(e)),
    };
    if high <= low {
        return Ok(None);
    }
    let mut tpl = TopicPartitionList::new();
    // Each committed batch adds its record and a commit marker; the last thousand offsets
    // hold the last committed record unless hundreds of aborted batches came after it.
    let from = (high - 1000).max(low);
    tpl.add_partition_offset(&topic, 0, Offset::Offset(from))
        .map_err(k("seeking in the positions topic"))?;
    consumer
        .assign(&tpl)
        .map_err(k("reading the positions topic"))?;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let mut last: Option<String> = None;
    loop {
        if let Some(m) = consumer.poll(Duration::from_millis(200)) {
            let m = m.map_err(k(format!("reading {topic}")))?;
            if m.key() == Some(pipeline.as_bytes())
                && let Some(v) = m.payload()
                && let Ok(j) = serde_json::from_slice::<serde_json::Value>(v)
                && let Some(p) = j.get("position").and_then(|p| p.as_str())
            {
                last = Some(p.to_owned());
            }
        }
        let pos = consumer
            .position()
            .ok()
            .and_then(|l| {
                l.find_partition(&topic, 0)
                    .and_then(|e| e.offset().to_raw())
            })
            .unwrap_or(-1);
        if pos >= high {
            break;
        }
        if std::time::Instant::now() > deadline {
            return Err(SinkError::State {
                reason: format!("could not read {topic} up to offset {high} within 60 s"),
            });
        }
    }
    info!(topic = %topic, position = ?last, "publisher position read");
    last.map(|p| {
        p.parse().map_err(
            |e: schemas::position::PositionParseError| SinkError::State {
                reason: format!("{topic} holds an unreadable position: {e}"),
            },
        )
    })
    .transpose()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn opts(mode: KafkaMode) -> KafkaOptions {
        KafkaOptions {
            brokers: "localhost:9092".into(),
            topic_prefix: "shop".into(),
            partitions: 6,
            replication: 1,
            group: "g".into(),
            client: Default::default(),
            mode,
        }
    }

    #[test]
    fn the_transactional_topic_must_have_one_partition() {
        let t = opts(KafkaMode::Transactional);
        assert_eq!(t.transactions_topic(), "shop.my2pg-transactions");
        assert_eq!(
            t.change_topic(&TableId::new("db", "a")),
            "shop.my2pg-transactions"
        );
        let one = [("shop.my2pg-transactions".to_owned(), 1)].into();
        check_transactions_topic(&t, &one).unwrap();
        check_transactions_topic(&t, &Default::default()).unwrap();
        let three = [("shop.my2pg-transactions".to_owned(), 3)].into();
        let e = check_transactions_topic(&t, &three).unwrap_err();
        assert_eq!(
            e.to_string(),
            "kafka topic shop.my2pg-transactions has 3 partitions; the transactional mode needs exactly one to keep source order"
        );
        assert!(e.hint().unwrap().contains("delete shop.my2pg-transactions"));
        // The per-table mode does not care.
        check_transactions_topic(&opts(KafkaMode::PerTable), &three).unwrap();
        assert_eq!(
            opts(KafkaMode::PerTable).change_topic(&TableId::new("db", "a")),
            "shop.db.a"
        );
    }
}
