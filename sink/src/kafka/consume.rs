//! The apply workers' consumer: a consumer group member that seeks to the offsets stored in
//! PostgreSQL when it is given partitions.
//!
//! librdkafka calls the rebalance callback from inside `poll`, on the task that polls. The
//! worker polls only between batches, so a revocation can never interrupt a batch being
//! applied: the batch in flight finishes (and commits its offsets) before the partitions are
//! given up. Messages received but not yet applied when a partition is revoked are dropped by
//! the worker ([`Assignment::Release`]); the next owner reads them again from the stored
//! offset. On assignment the stored offsets are read (on a thread of its own: the callback is
//! synchronous) and put into the assignment itself, so the first fetch starts there.

use std::sync::{Arc, Mutex};

use rdkafka::consumer::{BaseConsumer, Consumer as _, ConsumerContext, StreamConsumer};
use rdkafka::error::KafkaResult;
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use tracing::{info, warn};

use super::{KafkaOptions, k};
use crate::TargetOptions;
use crate::error::Result;

/// What a rebalance did, for the worker to act on before its next batch.
#[derive(Debug, Clone, PartialEq)]
pub enum Assignment {
    /// The worker now owns this partition from this stored offset.
    Own {
        /// Topic.
        topic: Arc<str>,
        /// Partition.
        partition: i32,
        /// Next offset stored in PostgreSQL (`None`: from the beginning).
        stored: Option<i64>,
    },
    /// The partition was given up.
    Release {
        /// Topic.
        topic: Arc<str>,
        /// Partition.
        partition: i32,
    },
    /// The stored offsets could not be read: the worker must stop and start again.
    Failed(String),
}

/// The consumer context: rebalances seek to PostgreSQL's offsets.
pub struct Rebalancing {
    target: TargetOptions,
    group: String,
    events: Mutex<Vec<Assignment>>,
}

impl std::fmt::Debug for Rebalancing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rebalancing")
            .field("group", &self.group)
            .finish_non_exhaustive()
    }
}

impl Rebalancing {
    /// The rebalance events since the last call.
    pub fn take(&self) -> Vec<Assignment> {
        self.events
            .lock()
            .map(|mut e| std::mem::take(&mut *e))
            .unwrap_or_default()
    }

    fn push(&self, a: Assignment) {
        if let Ok(mut e) = self.events.lock() {
            e.push(a);
        }
    }

    fn stored(&self, parts: Vec<(String, i32)>) -> std::result::Result<Vec<Option<i64>>, String> {
        let target = self.target.clone();
        let group = self.group.clone();
        let reader = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            rt.block_on(async move {
                let pg = target
                    .connect()
                    .await
                    .map_err(|e| crate::error::chain(&e))?;
                let mut out = Vec::with_capacity(parts.len());
                for (t, p) in &parts {
                    out.push(
                        super::offsets::read(&pg, &group, t, *p)
                            .await
                            .map_err(|e| crate::error::chain(&e))?,
                    );
                }
                Ok(out)
            })
        });
        reader
            .join()
            .map_err(|_| "the offset reader panicked".to_owned())?
    }
}

impl ClientContext for Rebalancing {}

impl ConsumerContext for Rebalancing {
    fn rebalance(
        &self,
        base: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        let parts: Vec<(String, i32)> = tpl
            .elements()
            .iter()
            .map(|e| (e.topic().to_owned(), e.partition()))
            .collect();
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                match self.stored(parts.clone()) {
                    Ok(stored) => {
                        for ((t, p), s) in parts.iter().zip(&stored) {
                            if let Some(o) = s {
                                let _ = tpl.set_partition_offset(t, *p, Offset::Offset(*o));
                            }
                            self.push(Assignment::Own {
                                topic: Arc::from(t.as_str()),
                                partition: *p,
                                stored: *s,
                            });
                        }
                        info!(
                            partitions = parts.len(),
                            "partitions assigned; seeking to the offsets stored in PostgreSQL"
                        );
                        if let Err(e) = base.assign(tpl) {
                            self.push(Assignment::Failed(format!("assigning partitions: {e}")));
                        }
                    }
                    Err(e) => {
                        warn!(error = %e, "cannot read the stored offsets of assigned partitions");
                        self.push(Assignment::Failed(format!(
                            "reading the stored offsets of assigned partitions: {e}"
                        )));
                    }
                }
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                for (t, p) in parts {
                    self.push(Assignment::Release {
                        topic: Arc::from(t.as_str()),
                        partition: p,
                    });
                }
                info!("partitions revoked between batches");
                let _ = base.unassign();
            }
            other => {
                self.push(Assignment::Failed(format!("rebalance error {other:?}")));
                let _ = base.unassign();
            }
        }
    }

    fn commit_callback(&self, _result: KafkaResult<()>, _offsets: &TopicPartitionList) {}
}

/// A consumer in `opts.group` subscribed to `topics`, reading committed data only and never
/// committing offsets to Kafka.
pub fn consumer(
    opts: &KafkaOptions,
    target: &TargetOptions,
    topics: &[String],
) -> Result<StreamConsumer<Rebalancing>> {
    let mut config = opts.config();
    config
        .set("group.id", &opts.group)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("isolation.level", "read_committed")
        .set("auto.offset.reset", "earliest")
        // Workers may start before the publisher has created the topics; librdkafka's
        // default (5 minutes) would leave them idle that long.
        .set("topic.metadata.refresh.interval.ms", "2000");
    for (key, v) in &opts.client {
        config.set(key, v);
    }
    let consumer: StreamConsumer<Rebalancing> = config
        .create_with_context(Rebalancing {
            target: target.clone(),
            group: opts.group.clone(),
            events: Mutex::new(Vec::new()),
        })
        .map_err(k("creating the consumer"))?;
    let names: Vec<&str> = topics.iter().map(String::as_str).collect();
    consumer
        .subscribe(&names)
        .map_err(k(format!("subscribing to {}", topics.join(", "))))?;
    Ok(consumer)
}

/// The apply workers' consumer type.
pub type Consumer = StreamConsumer<Rebalancing>;
