//! Consumed offsets kept on the target, committed with the rows they produced.
//!
//! `my2pg.kafka_offsets` holds, per consumer group, topic and partition, the offset of the next
//! message to apply and how many events were applied so far. [`Fence`] is a worker's view: the
//! offset it expects to find for each partition it owns (the one it sought to). At commit,
//! [`Fence::advance`] moves each partition's offset with a compare-and-set from that expected
//! value, inside the transaction that applied the rows. PostgreSQL serialises concurrent
//! updates of one row and re-checks the `WHERE` on the newest version, so when two workers
//! apply the same messages (a rebalance raced a batch, a paused worker woke up) exactly one
//! commits; the other gets [`SinkError::Fenced`] and rolls its rows back with it.

use std::collections::HashMap;
use std::sync::Arc;

use tokio_postgres::GenericClient;

use crate::error::{Result, SinkError};

fn q(what: &str) -> impl FnOnce(tokio_postgres::Error) -> SinkError {
    let what = what.to_owned();
    move |source| SinkError::Query { what, source }
}

/// Where one applied message came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Consumed {
    /// Topic.
    pub topic: Arc<str>,
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
}

/// The stored next offset of a partition (`None`: nothing applied yet).
pub async fn read<C: GenericClient + Sync>(
    client: &C,
    group: &str,
    topic: &str,
    partition: i32,
) -> Result<Option<i64>> {
    let row = client
        .query_opt(
            "SELECT next_offset FROM my2pg.kafka_offsets \
             WHERE consumer_group = $1 AND topic = $2 AND partition = $3",
            &[&group, &topic, &partition],
        )
        .await
        .map_err(q("reading my2pg.kafka_offsets"))?;
    Ok(row.map(|r| r.get(0)))
}

/// A worker's expected offsets (see the module documentation).
#[derive(Debug, Clone)]
pub struct Fence {
    group: String,
    expected: HashMap<(Arc<str>, i32), Option<i64>>,
}

/// The offsets a commit moved to, to be confirmed once the transaction committed.
#[derive(Debug, Clone, Default)]
pub struct Advanced(Vec<((Arc<str>, i32), i64)>);

impl Fence {
    /// An empty fence for `group`.
    pub fn new(group: impl Into<String>) -> Fence {
        Fence {
            group: group.into(),
            expected: HashMap::new(),
        }
    }

    /// The consumer group.
    pub fn group(&self) -> &str {
        &self.group
    }

    /// Records that the worker owns `partition` from the stored offset `stored`.
    pub fn own(&mut self, topic: Arc<str>, partition: i32, stored: Option<i64>) {
        self.expected.insert((topic, partition), stored);
    }

    /// Forgets a partition given up.
    pub fn release(&mut self, topic: &str, partition: i32) {
        self.expected
            .retain(|(t, p), _| !(&**t == topic && *p == partition));
    }

    /// Whether the worker owns `partition`.
    pub fn owns(&self, topic: &str, partition: i32) -> bool {
        self.expected
            .keys()
            .any(|(t, p)| &**t == topic && *p == partition)
    }

    /// Moves the offsets of the partitions in `consumed` past their last message, counting
    /// the events, in the caller's transaction; fails with [`SinkError::Fenced`] when a stored
    /// offset is not the expected one.
    pub async fn advance<C: GenericClient + Sync>(
        &self,
        client: &C,
        consumed: &[Consumed],
    ) -> Result<Advanced> {
        let mut per: HashMap<(Arc<str>, i32), (i64, i64)> = HashMap::new();
        for c in consumed {
            let e = per
                .entry((c.topic.clone(), c.partition))
                .or_insert((c.offset, 0));
            e.0 = e.0.max(c.offset);
            e.1 += 1;
        }
        let mut out = Vec::with_capacity(per.len());
        for ((topic, partition), (last, events)) in per {
            let expected = self
                .expected
                .get(&(topic.clone(), partition))
                .copied()
                .flatten();
            let next = last + 1;
            let n = match expected {
                None => client
                    .execute(
                        "INSERT INTO my2pg.kafka_offsets (consumer_group, topic, partition, next_offset, applied_events) \
                         VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
                        &[&self.group, &&*topic, &partition, &next, &events],
                    )
                    .await
                    .map_err(q("writing my2pg.kafka_offsets"))?,
                Some(e) => client
                    .execute(
                        "UPDATE my2pg.kafka_offsets SET next_offset = $4, \
                         applied_events = applied_events + $5, updated_at = now() \
                         WHERE consumer_group = $1 AND topic = $2 AND partition = $3 AND next_offset = $6",
                        &[&self.group, &&*topic, &partition, &next, &events, &e],
                    )
                    .await
                    .map_err(q("writing my2pg.kafka_offsets"))?,
            };
            if n != 1 {
                let stored = read(client, &self.group, &topic, partition).await?;
                return Err(SinkError::Fenced {
                    topic: topic.to_string(),
                    partition,
                    stored,
                    expected,
                });
            }
            out.push(((topic, partition), next));
        }
        Ok(Advanced(out))
    }

    /// Takes the committed offsets as the new expected ones.
    pub fn confirm(&mut self, advanced: Advanced) {
        for (k, next) in advanced.0 {
            if let Some(e) = self.expected.get_mut(&k) {
                *e = Some(next);
            }
        }
    }
}
