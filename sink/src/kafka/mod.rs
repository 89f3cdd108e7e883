//! Kafka between the reader and the appliers: `my2pg sync --via kafka` publishes, any number of
//! `my2pg apply` workers in one consumer group consume and write with [`crate::apply::Applier`].
//!
//! **Topics.** One per source table, `<prefix>.<database>.<table>` (Debezium's naming), keyed by
//! the row's identity key, so every change of one key lands in one partition, in source order.
//! The value is the Debezium-compatible envelope of `schemas::envelope`. The publisher's own
//! position lives in `<prefix>-my2pg-positions` (one partition, compacted, key = pipeline).
//!
//! **Publishing exactly once** ([`publish`]). The publisher is a transactional producer
//! (`transactional.id = my2pg-<pipeline>`). A batch of whole source transactions is one Kafka
//! transaction: its row messages *and* the position record after its last source transaction
//! commit atomically. On start, `init_transactions` fences any older publisher of the same
//! pipeline and aborts its open transaction; the position is then read with `read_committed`
//! from the positions topic. Every change before that position is in Kafka exactly once (its
//! transaction committed with the position), every change after it is not (its transaction
//! was aborted or never begun), so resuming the reader there neither loses nor repeats a change.
//! The initial copy publishes each chunk as `op = r` messages in a Kafka transaction per chunk
//! and marks the chunk done in the target's `my2pg.snapshot_progress` after the commit; a
//! crash between the two republishes that chunk, which is harmless for the reason the copy is
//! exact at all (`src/sync/snapshot.rs`: reads are upserts replayed over by the stream).
//!
//! **Applying exactly once** ([`offsets`], [`consume`]). Workers never commit offsets to Kafka.
//! Each batch's rows and the next offset of every partition it covers commit in one PostgreSQL
//! transaction (`my2pg.kafka_offsets`). On assignment a worker reads the stored offsets and
//! seeks there. The offset update is a compare-and-set from the offset the worker started
//! from: if another worker (after a rebalance, or a zombie) moved it meanwhile, the batch rolls
//! back instead of applying twice. Consumers read with `isolation.level = read_committed`, so
//! the messages of an aborted publisher transaction are never applied.
//!
//! **Consistency.** Exact per row, in per-key order (one key, one partition, applied in offset
//! order). In the default [`KafkaMode::PerTable`], across tables — and across partitions of
//! one table — workers progress independently, so the target is eventually consistent: a
//! source transaction touching two tables may be visible half-applied for a moment; it is
//! complete once every worker has caught up. [`KafkaMode::Transactional`] trades the
//! parallelism for whole source transactions: one topic with one partition, so one worker
//! applies everything, each source transaction in one PostgreSQL transaction
//! ([`transactions`] argues it). `docs/kafka.md` has the details.

pub mod consume;
pub mod offsets;
pub mod publish;
pub mod transactions;

use std::collections::BTreeMap;

use rdkafka::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use schemas::TableId;

/// How changes are laid out in Kafka (`[kafka] mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KafkaMode {
    /// One topic per table, keyed by primary key: workers share the partitions; exact per
    /// key, eventually consistent across tables (default: it scales out).
    #[default]
    PerTable,
    /// Every change in one topic of one partition, in source order, each source transaction
    /// closed by an end marker: one worker applies source transactions whole.
    Transactional,
}

/// The suffix of the transactional mode's topic (`<prefix>.my2pg-transactions`); not a valid
/// MySQL database name's form of `<db>.<table>`, so it cannot clash with a table topic.
pub const TRANSACTIONS_TOPIC: &str = "my2pg-transactions";

/// Connection and naming settings (`[kafka]`).
#[derive(Debug, Clone)]
pub struct KafkaOptions {
    /// `bootstrap.servers`.
    pub brokers: String,
    /// Topic prefix (Debezium's `topic.prefix`).
    pub topic_prefix: String,
    /// Partitions of the per-table topics my2pg creates.
    pub partitions: i32,
    /// Replication factor of the topics my2pg creates.
    pub replication: i32,
    /// Consumer group of the apply workers.
    pub group: String,
    /// Extra librdkafka properties (security, SASL, tuning), passed as they are.
    pub client: BTreeMap<String, String>,
    /// Topic layout.
    pub mode: KafkaMode,
}

impl KafkaOptions {
    /// The topic of a table.
    pub fn topic(&self, table: &TableId) -> String {
        format!("{}.{}.{}", self.topic_prefix, table.database, table.table)
    }

    /// The single topic of the transactional mode.
    pub fn transactions_topic(&self) -> String {
        format!("{}.{TRANSACTIONS_TOPIC}", self.topic_prefix)
    }

    /// The topic a change of `table` is published to, under the configured mode.
    pub fn change_topic(&self, table: &TableId) -> String {
        match self.mode {
            KafkaMode::PerTable => self.topic(table),
            KafkaMode::Transactional => self.transactions_topic(),
        }
    }

    /// The topics apply workers subscribe to for `tables`.
    pub fn change_topics(&self, tables: &[TableId]) -> Vec<String> {
        match self.mode {
            KafkaMode::PerTable => tables.iter().map(|t| self.topic(t)).collect(),
            KafkaMode::Transactional => vec![self.transactions_topic()],
        }
    }

    /// The topic holding the publisher's positions.
    pub fn positions_topic(&self) -> String {
        format!("{}-my2pg-positions", self.topic_prefix)
    }

    /// A client configuration with the brokers and the extra properties.
    pub fn config(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.brokers);
        for (k, v) in &self.client {
            c.set(k, v);
        }
        c
    }
}

fn k(what: impl Into<String>) -> impl FnOnce(KafkaError) -> crate::SinkError {
    let what = what.into();
    move |source| crate::SinkError::Kafka { what, source }
}

/// Whether a Kafka error is worth retrying after a backoff.
pub fn is_transient(e: &KafkaError) -> bool {
    use RDKafkaErrorCode as C;
    // A broker without an API my2pg needs (e.g. Kafka transactions) will not grow it.
    if is_unsupported(e) {
        return false;
    }
    let code = match e {
        KafkaError::Transaction(t) => {
            return t.is_retriable() || t.txn_requires_abort();
        }
        other => other.rdkafka_error_code(),
    };
    match code {
        Some(
            C::Fenced
            | C::ProducerFenced
            | C::InvalidProducerEpoch
            | C::TopicAuthorizationFailed
            | C::GroupAuthorizationFailed
            | C::ClusterAuthorizationFailed
            | C::TransactionalIdAuthorizationFailed
            | C::SaslAuthenticationFailed
            | C::InvalidConfig,
        ) => false,
        // Brokers down, timeouts, leader changes, coordinator moves: all pass.
        _ => true,
    }
}

/// Whether the broker lacks a request my2pg needs (librdkafka checked its API versions).
pub fn is_unsupported(e: &KafkaError) -> bool {
    e.rdkafka_error_code() == Some(RDKafkaErrorCode::UnsupportedFeature)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_broker_feature_is_definite() {
        let e = KafkaError::MessageProduction(RDKafkaErrorCode::UnsupportedFeature);
        assert!(!is_transient(&e));
        assert!(is_transient(&KafkaError::MessageProduction(
            RDKafkaErrorCode::BrokerTransportFailure
        )));
    }
}
