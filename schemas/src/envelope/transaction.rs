//! The end-of-transaction marker of the single-partition transactional mode.
//!
//! In that mode every change of every table goes to one partition in source order, and each
//! source transaction's last change is followed by one marker, Debezium's transaction metadata
//! `END` record (`provide.transaction.metadata`):
//!
//! ```json
//! {"status": "END", "id": "0-1-42", "ts_ms": 1718000000000, "event_count": 3,
//!  "data_collections": [{"data_collection": "shop.a", "event_count": 2},
//!                       {"data_collection": "shop.b", "event_count": 1}]}
//! ```
//!
//! `id` is the `transaction.id` of the transaction's change events, `event_count` how many
//! there are, `ts_ms` the source commit time. Debezium also writes a `BEGIN` record; my2pg
//! does not, because the first change after an `END` already opens the next transaction and
//! carries its id, and the consumer needs nothing else to know where a transaction starts.
//! The marker's key is `{"id": "<id>"}`, as Debezium keys its transaction topic. Its JSON
//! Schema is `schemas/kafka-transaction-end.schema.json`.

use serde_json::{Map, Value as Json, json};

use super::{EnvelopeError, Message};

/// The end of one source transaction: its id and how many change events it had.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxEnd {
    /// `id`: the `transaction.id` of its change events.
    pub id: String,
    /// `event_count`: its change events (every message but the marker).
    pub event_count: u64,
    /// `ts_ms`: commit time on the source, ms since the epoch.
    pub commit_ms: i64,
}

/// The key and value of the `END` marker of transaction `id`; `per_table` counts its events
/// by `database.table`.
pub fn encode_tx_end(id: &str, commit_ms: i64, per_table: &[(String, u64)]) -> (Vec<u8>, Vec<u8>) {
    let total: u64 = per_table.iter().map(|(_, n)| n).sum();
    let collections: Vec<Json> = per_table
        .iter()
        .map(|(t, n)| json!({"data_collection": t, "event_count": n}))
        .collect();
    let key = json!({ "id": id }).to_string().into_bytes();
    let value = json!({
        "status": "END",
        "id": id,
        "ts_ms": commit_ms,
        "event_count": total,
        "data_collections": collections,
    })
    .to_string()
    .into_bytes();
    (key, value)
}

/// A transaction metadata record (`status` `BEGIN` or `END`), else `None` (a change event).
pub(super) fn marker(m: &Map<String, Json>) -> Result<Option<Message>, EnvelopeError> {
    if m.contains_key("source") {
        return Ok(None);
    }
    let Some(status) = m.get("status").and_then(Json::as_str) else {
        return Ok(None);
    };
    let bad = |reason: &str| EnvelopeError::NotAnEnvelope {
        reason: format!("transaction {status} record: {reason}"),
    };
    match status {
        "BEGIN" => Ok(Some(Message::Nothing)),
        "END" => {
            let id = m
                .get("id")
                .and_then(Json::as_str)
                .ok_or_else(|| bad("no id"))?;
            let event_count = m
                .get("event_count")
                .and_then(Json::as_u64)
                .ok_or_else(|| bad("no event_count"))?;
            Ok(Some(Message::End(TxEnd {
                id: id.to_owned(),
                event_count,
                commit_ms: m.get("ts_ms").and_then(Json::as_i64).unwrap_or(0),
            })))
        }
        other => Err(EnvelopeError::NotAnEnvelope {
            reason: format!("unknown transaction status {other:?}"),
        }),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::super::decode_message;
    use super::*;

    #[test]
    fn an_end_marker_round_trips() {
        let (key, value) = encode_tx_end(
            "0-1-42",
            1_718_000_000_000,
            &[("shop.a".into(), 2), ("shop.b".into(), 1)],
        );
        assert_eq!(key, br#"{"id":"0-1-42"}"#);
        assert_eq!(
            decode_message(Some(&value)).unwrap(),
            Message::End(TxEnd {
                id: "0-1-42".into(),
                event_count: 3,
                commit_ms: 1_718_000_000_000,
            })
        );
    }

    #[test]
    fn debezium_transaction_records_are_read() {
        // From Debezium's MySQL connector documentation ("Transaction metadata").
        let begin = br#"{"status":"BEGIN","id":"571:53195829","ts_ms":1486500577125,"event_count":null,"data_collections":null}"#;
        let end = br#"{"status":"END","id":"571:53195832","ts_ms":1486500577691,"event_count":2,"data_collections":[{"data_collection":"s1.a","event_count":1},{"data_collection":"s2.a","event_count":1}]}"#;
        assert_eq!(decode_message(Some(begin)).unwrap(), Message::Nothing);
        assert_eq!(
            decode_message(Some(end)).unwrap(),
            Message::End(TxEnd {
                id: "571:53195832".into(),
                event_count: 2,
                commit_ms: 1_486_500_577_691,
            })
        );
        assert!(decode_message(Some(br#"{"status":"END","id":"x"}"#)).is_err());
    }
}
