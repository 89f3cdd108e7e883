//! The Debezium-compatible JSON envelope of one row change, as published to Kafka.
//!
//! **Shape.** A message's key is a JSON object of the row's identity-key columns; its value is
//! Debezium's change-event envelope *without* the Kafka Connect schema part (the
//! `JsonConverter` with `schemas.enable=false`):
//!
//! ```json
//! {"before": null, "after": {"id": 1, "name": "a"},
//!  "source": {"version": "my2pg-0.1.0", "connector": "mysql", "name": "my2pg",
//!             "ts_ms": 1718000000000, "snapshot": "false", "db": "shop", "table": "orders",
//!             "server_id": 1, "gtid": "0-1-42", "file": "binlog.000001", "pos": 4711,
//!             "row": 0, "thread": null, "query": null},
//!  "op": "c", "ts_ms": 1718000000012,
//!  "transaction": {"id": "0-1-42", "total_order": 1, "data_collection_order": 1}}
//! ```
//!
//! `schemas/kafka-envelope.schema.json` is the JSON Schema of this value. [`decode`] also
//! accepts the `{"schema": …, "payload": …}` form Debezium writes with schemas enabled, and a
//! `null` value (Debezium's tombstone after a delete), which decodes to nothing.
//!
//! **Values** use Debezium's MySQL connector encodings, chosen so that every MySQL value
//! survives exactly: integers as JSON numbers (unsigned 64-bit too: the envelope's numbers are
//! arbitrary precision), DECIMAL as a string (`decimal.handling.mode=string`; Debezium's
//! `precise` base64 form is accepted on input), DATE as days since the epoch, DATETIME(0–3) as
//! epoch milliseconds and DATETIME(4–6) as epoch microseconds (`io.debezium.time.Timestamp` /
//! `MicroTimestamp`), TIMESTAMP as an ISO-8601 UTC string (`ZonedTimestamp`), TIME as signed
//! microseconds (`MicroTime`), binary strings as base64, BIT(1) as a boolean and BIT(n) as
//! base64 little-endian bytes (`io.debezium.data.Bits`), SET as a comma-separated string, JSON
//! as its text, spatial values as `{"wkb": base64, "srid": n}`. Debezium turns zero dates into
//! `null`; my2pg does not drop data silently, so it writes a zero or partly-zero DATE/DATETIME
//! as its MySQL text (`"0000-00-00 00:00:00"`), which [`decode`] reads back, and text whose
//! bytes are invalid in their character set as `{"invalid_text": hex, "charset": name}`.
//!
//! **Transaction markers** ([`transaction`]): in the single-partition transactional mode the
//! publisher follows each source transaction's last change with Debezium's transaction
//! metadata `END` record; [`decode_message`] tells the two apart.
//!
//! Decoding needs the table's source schema: the JSON alone cannot tell a DATETIME(6) in
//! microseconds from a BIGINT. Columns are matched by name, so a message written before a
//! column was added or dropped is reported as not matching the schema instead of shifted.

use std::fmt::Write as _;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Map, Value as Json, json};

use crate::change::{ChangeOp, RowChange};
use crate::table::{ColumnType, TableId, TableSchema};
use crate::value::{Date, DateTime, Decimal, Row, Time, Timestamp, Value, civil_from_days};

pub mod transaction;

pub use transaction::{TxEnd, encode_tx_end};

/// Why a message could not be read as a change event.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EnvelopeError {
    /// Not JSON at all.
    #[error("not JSON: {reason}")]
    NotJson {
        /// The parser's message.
        reason: String,
    },
    /// JSON, but not a change event envelope.
    #[error("not a change event: {reason}")]
    NotAnEnvelope {
        /// What is missing or wrong.
        reason: String,
    },
    /// A column the table's schema does not have (or lacks one it has).
    #[error("does not match the schema of {table}: {reason}")]
    SchemaMismatch {
        /// The table.
        table: TableId,
        /// Which column.
        reason: String,
    },
    /// A value that cannot be a value of its column.
    #[error("column {table}.{column}: {reason}")]
    BadValue {
        /// The table.
        table: TableId,
        /// The column.
        column: String,
        /// What is wrong.
        reason: String,
    },
}

/// Where a change came from, for the envelope's `source` and `transaction` blocks.
#[derive(Debug, Clone, Default)]
pub struct SourceInfo {
    /// Logical name (the topic prefix).
    pub name: String,
    /// Commit time on the source, ms since the epoch.
    pub commit_ms: i64,
    /// Whether the row was read by the snapshot.
    pub snapshot: bool,
    /// Originating server id (0 when unknown).
    pub server_id: u32,
    /// The transaction's GTID.
    pub gtid: Option<String>,
    /// Binlog file and position of the transaction (when known).
    pub file: Option<String>,
    /// Offset in `file`.
    pub pos: u64,
    /// The transaction's identity (GTID, else its position), for `transaction.id`.
    pub tx_id: Option<String>,
    /// 1-based order of the change inside its transaction.
    pub total_order: u64,
    /// 1-based order of the change among its table's changes inside the transaction.
    pub data_collection_order: u64,
}

/// The envelope `op` letter of a change.
pub fn op_letter(op: ChangeOp) -> &'static str {
    match op {
        ChangeOp::Insert => "c",
        ChangeOp::Update => "u",
        ChangeOp::Delete => "d",
        ChangeOp::Read => "r",
    }
}

/// The identity-key columns of a table (the primary key, else the first NOT NULL unique key,
/// else every column).
pub fn key_columns(schema: &TableSchema) -> Vec<usize> {
    schema
        .identity_key()
        .unwrap_or_else(|| (0..schema.columns.len()).collect())
}

/// The message key of a row: a JSON object of its identity-key columns.
pub fn encode_key(schema: &TableSchema, row: &Row) -> Result<Vec<u8>, EnvelopeError> {
    let mut m = Map::new();
    for i in key_columns(schema) {
        if let (Some(c), Some(v)) = (schema.columns.get(i), row.get(i)) {
            m.insert(c.name.clone(), encode_value(schema, i, v)?);
        }
    }
    serde_json::to_vec(&Json::Object(m)).map_err(|e| EnvelopeError::NotJson {
        reason: e.to_string(),
    })
}

/// The message value of one row change (see the module documentation).
pub fn encode(
    change: &RowChange,
    info: &SourceInfo,
    now_ms: i64,
) -> Result<Vec<u8>, EnvelopeError> {
    let schema = &*change.table;
    let image = |r: &Option<Row>| -> Result<Json, EnvelopeError> {
        match r {
            None => Ok(Json::Null),
            Some(row) => {
                let mut m = Map::new();
                for (i, (c, v)) in schema.columns.iter().zip(&row.0).enumerate() {
                    m.insert(c.name.clone(), encode_value(schema, i, v)?);
                }
                Ok(Json::Object(m))
            }
        }
    };
    let transaction = match &info.tx_id {
        Some(id) => json!({
            "id": id,
            "total_order": info.total_order,
            "data_collection_order": info.data_collection_order,
        }),
        None => Json::Null,
    };
    let value = json!({
        "before": image(&change.before)?,
        "after": image(&change.after)?,
        "source": {
            "version": concat!("my2pg-", env!("CARGO_PKG_VERSION")),
            "connector": "mysql",
            "name": info.name,
            "ts_ms": info.commit_ms,
            "snapshot": if info.snapshot { "true" } else { "false" },
            "db": schema.id.database,
            "table": schema.id.table,
            "server_id": info.server_id,
            "gtid": info.gtid,
            "file": info.file.clone().unwrap_or_default(),
            "pos": info.pos,
            "row": change.ordinal,
            "thread": Json::Null,
            "query": Json::Null,
        },
        "op": op_letter(change.op),
        "ts_ms": now_ms,
        "transaction": transaction,
    });
    serde_json::to_vec(&value).map_err(|e| EnvelopeError::NotJson {
        reason: e.to_string(),
    })
}

fn bad(schema: &TableSchema, i: usize, reason: impl Into<String>) -> EnvelopeError {
    EnvelopeError::BadValue {
        table: schema.id.clone(),
        column: schema
            .columns
            .get(i)
            .map(|c| c.name.clone())
            .unwrap_or_default(),
        reason: reason.into(),
    }
}

fn num(n: impl ToString) -> Json {
    // serde_json is built with arbitrary_precision: a number is kept as its text.
    serde_json::from_str(&n.to_string()).unwrap_or(Json::Null)
}

/// Encodes one value of column `i`.
pub fn encode_value(schema: &TableSchema, i: usize, v: &Value) -> Result<Json, EnvelopeError> {
    let ty = schema.columns.get(i).map(|c| &c.ty);
    Ok(match v {
        Value::Null => Json::Null,
        Value::Int(n) => num(n),
        Value::UInt(n) => num(n),
        Value::Float(f) if f.is_finite() => num(f),
        Value::Double(f) if f.is_finite() => num(f),
        Value::Float(_) | Value::Double(_) => {
            return Err(bad(schema, i, "a non-finite float has no JSON form"));
        }
        Value::Decimal(d) => Json::String(d.to_string()),
        Value::Bit { width, bits } => {
            if *width == 1 {
                Json::Bool(*bits & 1 == 1)
            } else {
                let n = usize::from(*width).div_ceil(8);
                Json::String(B64.encode(&bits.to_le_bytes()[..n]))
            }
        }
        Value::Date(d) if d.has_zero_part() => Json::String(d.to_string()),
        Value::Date(d) => num(crate::value::days_from_civil(
            i64::from(d.year),
            u32::from(d.month),
            u32::from(d.day),
        )),
        Value::DateTime(dt) if dt.date.has_zero_part() => Json::String(dt.to_string()),
        Value::DateTime(dt) => {
            let ts = Timestamp::from_utc(dt);
            let micros = ts.secs * 1_000_000 + i64::from(ts.micros);
            match ty {
                Some(ColumnType::DateTime { fsp }) if *fsp <= 3 => num(micros.div_euclid(1000)),
                _ => num(micros),
            }
        }
        Value::Timestamp(ts) => Json::String(iso_utc(ts)),
        Value::Time(t) => num(t.total_micros()),
        Value::Year(y) => num(y),
        Value::Text(s) | Value::Enum(s) | Value::Json(s) => Json::String(s.clone()),
        Value::InvalidText { bytes, charset } => {
            json!({"invalid_text": hex::encode(bytes), "charset": charset})
        }
        Value::Bytes(b) => Json::String(B64.encode(b)),
        Value::Set(members) => Json::String(members.join(",")),
        Value::Geometry { srid, wkb } => json!({"wkb": B64.encode(wkb), "srid": srid}),
    })
}

fn iso_utc(ts: &Timestamp) -> String {
    let dt = ts.to_utc();
    let mut s = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        dt.date.year, dt.date.month, dt.date.day, dt.hour, dt.minute, dt.second
    );
    if dt.micros > 0 {
        let _ = write!(s, ".{:06}", dt.micros);
    }
    s.push('Z');
    s
}

/// A decoded message: the table it names and, unless it is a tombstone, its change.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded {
    /// `source.db` / `source.table`.
    pub table: TableId,
    /// The change (`None`: a tombstone or a schema-less heartbeat of Debezium).
    pub change: Option<DecodedChange>,
}

/// The parts of a change event my2pg uses.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodedChange {
    /// What happened.
    pub op: ChangeOp,
    /// `source.ts_ms`: commit time on the source.
    pub commit_ms: i64,
    /// `source.gtid`.
    pub gtid: Option<String>,
    /// `source.file` and `source.pos`.
    pub file: Option<(String, u64)>,
    /// `source.row`, else `transaction.total_order`.
    pub ordinal: u64,
    /// `transaction.id`: the source transaction the change belongs to (when given).
    pub tx_id: Option<String>,
    /// `source.snapshot`: a row read by the initial copy (`"true"`, `"last"`, `true`).
    pub snapshot: bool,
    /// The raw images, decoded once the schema is known ([`DecodedChange::row_change`]).
    before: Json,
    after: Json,
}

/// What a message of a change topic holds.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    /// A change event (boxed: it is much larger than the others).
    Change(Box<Decoded>),
    /// The end of a source transaction (transactional mode, see [`transaction`]).
    End(TxEnd),
    /// Nothing to apply: a tombstone (`null` value), a Debezium heartbeat without a change,
    /// or a transaction `BEGIN` record.
    Nothing,
}

/// Reads the table and change of a message value (a `None` value is a tombstone: the table
/// then comes from the caller, and `table` is left empty). A transaction marker decodes to
/// nothing here; [`decode_message`] returns it.
pub fn decode(value: Option<&[u8]>) -> Result<Option<Decoded>, EnvelopeError> {
    Ok(match decode_message(value)? {
        Message::Change(d) => Some(*d),
        Message::End(_) | Message::Nothing => None,
    })
}

/// Reads a message value: a change event, a transaction marker, or nothing to apply.
pub fn decode_message(value: Option<&[u8]>) -> Result<Message, EnvelopeError> {
    let Some(bytes) = value else {
        return Ok(Message::Nothing);
    };
    let json: Json = serde_json::from_slice(bytes).map_err(|e| EnvelopeError::NotJson {
        reason: e.to_string(),
    })?;
    let payload = match json {
        Json::Object(mut m) if m.contains_key("payload") && m.contains_key("schema") => {
            m.remove("payload").unwrap_or(Json::Null)
        }
        other => other,
    };
    let Json::Object(mut m) = payload else {
        if payload.is_null() {
            return Ok(Message::Nothing);
        }
        return Err(EnvelopeError::NotAnEnvelope {
            reason: "the value is not a JSON object".into(),
        });
    };
    if let Some(marker) = transaction::marker(&m)? {
        return Ok(marker);
    }
    let missing = |what: &str| EnvelopeError::NotAnEnvelope {
        reason: format!("no {what}"),
    };
    let source = m.remove("source").ok_or_else(|| missing("source"))?;
    let db = source
        .get("db")
        .and_then(Json::as_str)
        .ok_or_else(|| missing("source.db"))?;
    let table = source
        .get("table")
        .and_then(Json::as_str)
        .ok_or_else(|| missing("source.table"))?;
    let id = TableId::new(db, table);
    let op = match m.get("op").and_then(Json::as_str) {
        Some("c") => ChangeOp::Insert,
        Some("u") => ChangeOp::Update,
        Some("d") => ChangeOp::Delete,
        Some("r") => ChangeOp::Read,
        Some(other) => {
            return Err(EnvelopeError::NotAnEnvelope {
                reason: format!("unknown op {other:?}"),
            });
        }
        None => return Err(missing("op")),
    };
    let as_u64 = |v: Option<&Json>| v.and_then(|v| v.as_u64().or_else(|| v.as_str()?.parse().ok()));
    let file = source
        .get("file")
        .and_then(Json::as_str)
        .filter(|f| !f.is_empty())
        .map(|f| (f.to_owned(), as_u64(source.get("pos")).unwrap_or(0)));
    let ordinal = as_u64(source.get("row"))
        .or_else(|| as_u64(m.get("transaction").and_then(|t| t.get("total_order"))))
        .unwrap_or(0);
    let tx_id = m
        .get("transaction")
        .and_then(|t| t.get("id"))
        .and_then(Json::as_str)
        .map(str::to_owned);
    let snapshot = match source.get("snapshot") {
        Some(Json::Bool(b)) => *b,
        Some(Json::String(s)) => s != "false",
        _ => false,
    };
    let change = DecodedChange {
        op,
        commit_ms: source.get("ts_ms").and_then(Json::as_i64).unwrap_or(0),
        gtid: source.get("gtid").and_then(Json::as_str).map(str::to_owned),
        file,
        ordinal,
        tx_id,
        snapshot,
        before: m.remove("before").unwrap_or(Json::Null),
        after: m.remove("after").unwrap_or(Json::Null),
    };
    let needs = match op {
        ChangeOp::Insert | ChangeOp::Read => (false, true),
        ChangeOp::Update => (true, true),
        ChangeOp::Delete => (true, false),
    };
    if (needs.0 && change.before.is_null()) || (needs.1 && change.after.is_null()) {
        return Err(EnvelopeError::NotAnEnvelope {
            reason: format!("op {:?} without its row image", op_letter(op)),
        });
    }
    Ok(Message::Change(Box::new(Decoded {
        table: id,
        change: Some(change),
    })))
}

impl DecodedChange {
    /// The row change, with images read against `schema` (the table's source schema).
    pub fn row_change(&self, schema: &Arc<TableSchema>) -> Result<RowChange, EnvelopeError> {
        let image = |j: &Json| -> Result<Option<Row>, EnvelopeError> {
            match j {
                Json::Null => Ok(None),
                Json::Object(m) => {
                    if let Some(extra) = m.keys().find(|k| schema.column_index(k).is_none()) {
                        return Err(EnvelopeError::SchemaMismatch {
                            table: schema.id.clone(),
                            reason: format!("the message has column {extra:?}, the table has not"),
                        });
                    }
                    let mut row = Vec::with_capacity(schema.columns.len());
                    for (i, c) in schema.columns.iter().enumerate() {
                        let v = m
                            .get(&c.name)
                            .ok_or_else(|| EnvelopeError::SchemaMismatch {
                                table: schema.id.clone(),
                                reason: format!("the message lacks column {:?}", c.name),
                            })?;
                        row.push(decode_value(schema, i, v)?);
                    }
                    Ok(Some(Row(row)))
                }
                _ => Err(EnvelopeError::NotAnEnvelope {
                    reason: "a row image is not an object".into(),
                }),
            }
        };
        Ok(RowChange {
            table: schema.clone(),
            ordinal: self.ordinal,
            op: self.op,
            before: image(&self.before)?,
            after: image(&self.after)?,
        })
    }
}

fn parse_date(s: &str) -> Option<Date> {
    let mut it = s.splitn(3, '-');
    Some(Date {
        year: it.next()?.parse().ok()?,
        month: it.next()?.parse().ok()?,
        day: it.next()?.get(..2)?.parse().ok()?,
    })
}

/// `YYYY-MM-DD[ T]HH:MM:SS[.ffffff][Z]`.
fn parse_datetime(s: &str) -> Option<DateTime> {
    let s = s.trim_end_matches('Z');
    let (d, t) = s.split_once([' ', 'T']).unwrap_or((s, "00:00:00"));
    let (hms, frac) = t.split_once('.').unwrap_or((t, ""));
    let mut it = hms.split(':');
    let micros = if frac.is_empty() {
        0
    } else {
        let digits: String = frac.chars().chain("000000".chars()).take(6).collect();
        digits.parse().ok()?
    };
    Some(DateTime {
        date: parse_date(d)?,
        hour: it.next()?.parse().ok()?,
        minute: it.next()?.parse().ok()?,
        second: it.next()?.parse().ok()?,
        micros,
    })
}

fn from_micros(total: i64) -> DateTime {
    Timestamp {
        secs: total.div_euclid(1_000_000),
        micros: total.rem_euclid(1_000_000) as u32,
    }
    .to_utc()
}

/// Decodes one value of column `i` from its JSON form (Debezium's and my2pg's).
pub fn decode_value(schema: &TableSchema, i: usize, v: &Json) -> Result<Value, EnvelopeError> {
    if v.is_null() {
        return Ok(Value::Null);
    }
    let Some(col) = schema.columns.get(i) else {
        return Err(bad(schema, i, "no such column"));
    };
    let wrong = || {
        bad(
            schema,
            i,
            format!("{v} is not a value of type {:?}", col.ty),
        )
    };
    let text = || v.as_str().map(str::to_owned);
    let b64 = || -> Result<Vec<u8>, EnvelopeError> {
        B64.decode(v.as_str().ok_or_else(wrong)?)
            .map_err(|e| bad(schema, i, format!("not base64: {e}")))
    };
    Ok(match &col.ty {
        ColumnType::Integer { unsigned, .. } => {
            let n = v
                .as_number()
                .map(ToString::to_string)
                .or_else(text)
                .ok_or_else(wrong)?;
            if *unsigned {
                Value::UInt(n.parse().map_err(|_| wrong())?)
            } else {
                Value::Int(n.parse().map_err(|_| wrong())?)
            }
        }
        ColumnType::Decimal { scale, .. } => {
            let n = v
                .as_number()
                .map(ToString::to_string)
                .or_else(text)
                .ok_or_else(wrong)?;
            match Decimal::parse(&n) {
                Ok(d) => Value::Decimal(d),
                // Debezium's `precise` mode: the unscaled value, big-endian two's complement.
                Err(_) => Value::Decimal(unscaled(&b64()?, *scale).ok_or_else(wrong)?),
            }
        }
        ColumnType::Float => Value::Float(v.as_f64().ok_or_else(wrong)? as f32),
        ColumnType::Double => Value::Double(v.as_f64().ok_or_else(wrong)?),
        ColumnType::Bit { width } => {
            let bits = match v {
                Json::Bool(b) => u64::from(*b),
                Json::Number(n) => n.as_u64().ok_or_else(wrong)?,
                _ => {
                    let bytes = b64()?;
                    let mut buf = [0u8; 8];
                    for (d, s) in buf.iter_mut().zip(&bytes) {
                        *d = *s;
                    }
                    u64::from_le_bytes(buf)
                }
            };
            Value::Bit {
                width: *width,
                bits,
            }
        }
        ColumnType::Date => match v {
            Json::Number(n) => {
                let (y, m, d) = civil_from_days(n.as_i64().ok_or_else(wrong)?);
                Value::Date(Date {
                    year: y as u16,
                    month: m as u8,
                    day: d as u8,
                })
            }
            _ => Value::Date(parse_date(&text().ok_or_else(wrong)?).ok_or_else(wrong)?),
        },
        ColumnType::DateTime { fsp } => match v {
            Json::Number(n) => {
                let n = n.as_i64().ok_or_else(wrong)?;
                Value::DateTime(from_micros(if *fsp <= 3 { n * 1000 } else { n }))
            }
            _ => Value::DateTime(parse_datetime(&text().ok_or_else(wrong)?).ok_or_else(wrong)?),
        },
        ColumnType::Timestamp { .. } => match v {
            Json::Number(n) => {
                let ms = n.as_i64().ok_or_else(wrong)?;
                Value::Timestamp(Timestamp {
                    secs: ms.div_euclid(1000),
                    micros: (ms.rem_euclid(1000) * 1000) as u32,
                })
            }
            _ => {
                let s = text().ok_or_else(wrong)?;
                let dt = parse_datetime(&s).ok_or_else(wrong)?;
                Value::Timestamp(Timestamp::from_utc(&dt))
            }
        },
        ColumnType::Time { .. } => match v {
            Json::Number(n) => Value::Time(Time::from_micros(n.as_i64().ok_or_else(wrong)?)),
            _ => {
                let s = text().ok_or_else(wrong)?;
                let (neg, s) = s
                    .strip_prefix('-')
                    .map_or((false, s.as_str()), |r| (true, r));
                let (hms, frac) = s.split_once('.').unwrap_or((s, ""));
                let mut it = hms.split(':');
                let h: i64 = it.next().and_then(|x| x.parse().ok()).ok_or_else(wrong)?;
                let m: i64 = it.next().and_then(|x| x.parse().ok()).ok_or_else(wrong)?;
                let sec: i64 = it.next().and_then(|x| x.parse().ok()).ok_or_else(wrong)?;
                let us: i64 = if frac.is_empty() {
                    0
                } else {
                    frac.chars()
                        .chain("000000".chars())
                        .take(6)
                        .collect::<String>()
                        .parse()
                        .map_err(|_| wrong())?
                };
                let total = ((h * 60 + m) * 60 + sec) * 1_000_000 + us;
                Value::Time(Time::from_micros(if neg { -total } else { total }))
            }
        },
        ColumnType::Year => Value::Year(
            v.as_u64()
                .and_then(|n| u16::try_from(n).ok())
                .ok_or_else(wrong)?,
        ),
        ColumnType::Char { .. } | ColumnType::VarChar { .. } | ColumnType::Text { .. } => match v {
            Json::String(s) => Value::Text(s.clone()),
            Json::Object(m) if m.contains_key("invalid_text") => Value::InvalidText {
                bytes: m
                    .get("invalid_text")
                    .and_then(Json::as_str)
                    .and_then(|h| hex::decode(h).ok())
                    .ok_or_else(wrong)?,
                charset: m
                    .get("charset")
                    .and_then(Json::as_str)
                    .unwrap_or_default()
                    .to_owned(),
            },
            _ => return Err(wrong()),
        },
        ColumnType::Binary { .. } | ColumnType::VarBinary { .. } | ColumnType::Blob { .. } => {
            Value::Bytes(b64()?)
        }
        ColumnType::Enum { .. } => Value::Enum(text().ok_or_else(wrong)?),
        ColumnType::Set { .. } => {
            let s = text().ok_or_else(wrong)?;
            Value::Set(if s.is_empty() {
                Vec::new()
            } else {
                s.split(',').map(str::to_owned).collect()
            })
        }
        ColumnType::Json => match v {
            Json::String(s) => Value::Json(s.clone()),
            other => Value::Json(other.to_string()),
        },
        ColumnType::Geometry { .. } => {
            let wkb = v
                .get("wkb")
                .and_then(Json::as_str)
                .and_then(|s| B64.decode(s).ok())
                .ok_or_else(wrong)?;
            let srid = v
                .get("srid")
                .and_then(Json::as_u64)
                .and_then(|n| u32::try_from(n).ok())
                .unwrap_or(0);
            Value::Geometry { srid, wkb }
        }
        ColumnType::Unsupported { name } => {
            return Err(bad(schema, i, format!("type {name} is not migrated")));
        }
    })
}

/// A decimal from its unscaled big-endian two's-complement bytes and its scale.
fn unscaled(bytes: &[u8], scale: u8) -> Option<Decimal> {
    if bytes.is_empty() || bytes.len() > 16 {
        return None;
    }
    let mut n: i128 = if bytes[0] & 0x80 != 0 { -1 } else { 0 };
    for b in bytes {
        n = (n << 8) | i128::from(*b);
    }
    let digits = n.unsigned_abs().to_string();
    let scale = usize::from(scale);
    let padded = format!("{digits:0>width$}", width = scale + 1);
    let (int, frac) = padded.split_at(padded.len() - scale);
    let sign = if n < 0 { "-" } else { "" };
    let text = if scale == 0 {
        format!("{sign}{int}")
    } else {
        format!("{sign}{int}.{frac}")
    };
    Decimal::parse(&text).ok()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::table::Column;

    fn schema() -> Arc<TableSchema> {
        let cols = vec![
            Column::new("id", ColumnType::parse("bigint unsigned").unwrap()),
            Column::new("d", ColumnType::parse("decimal(12,2)").unwrap()),
            Column::new("dt", ColumnType::parse("datetime(6)").unwrap()),
            Column::new("dt3", ColumnType::parse("datetime(3)").unwrap()),
            Column::new("ts", ColumnType::parse("timestamp(6)").unwrap()),
            Column::new("day", ColumnType::parse("date").unwrap()),
            Column::new("t", ColumnType::parse("time(6)").unwrap()),
            Column::new("b", ColumnType::parse("varbinary(8)").unwrap()),
            Column::new("bits", ColumnType::parse("bit(12)").unwrap()),
            Column::new("s", ColumnType::parse("set('a','b','c')").unwrap()),
            Column::new("v", ColumnType::parse("varchar(20)").unwrap()),
        ];
        Arc::new(TableSchema {
            id: TableId::new("shop", "t"),
            columns: cols,
            primary_key: vec![0],
            unique_keys: vec![],
            indexes: vec![],
            foreign_keys: vec![],
            comment: String::new(),
            auto_increment: None,
        })
    }

    #[test]
    fn a_change_round_trips_exactly() {
        let s = schema();
        let row = Row(vec![
            Value::UInt(u64::MAX),
            Value::Decimal(Decimal::parse("-1234567890.05").unwrap()),
            Value::DateTime(parse_datetime("2024-02-29 23:59:59.000001").unwrap()),
            Value::DateTime(parse_datetime("1969-12-31 23:59:59.999").unwrap()),
            Value::Timestamp(Timestamp::from_utc(
                &parse_datetime("2038-01-19 03:14:08.5").unwrap(),
            )),
            Value::Date(parse_date("0000-00-00").unwrap()),
            Value::Time(Time::from_micros(-838 * 3_600_000_000)),
            Value::Bytes(vec![0, 255, 10]),
            Value::Bit {
                width: 12,
                bits: 0xabc,
            },
            Value::Set(vec!["a".into(), "c".into()]),
            Value::Text("ünïcode \"quoted\"".into()),
        ]);
        let change = RowChange {
            table: s.clone(),
            ordinal: 3,
            op: ChangeOp::Update,
            before: Some(row.clone()),
            after: Some(row.clone()),
        };
        let bytes = encode(&change, &SourceInfo::default(), 0).unwrap();
        let d = decode(Some(&bytes)).unwrap().unwrap();
        assert_eq!(d.table, s.id);
        assert_eq!(d.change.unwrap().row_change(&s).unwrap(), change);
    }

    #[test]
    fn debezium_encodings_are_read() {
        let s = schema();
        // As Debezium's MySQL connector writes them (decimal.handling.mode=precise for `d`).
        let v = |i: usize, j: Json| decode_value(&s, i, &j).unwrap();
        assert_eq!(
            v(1, json!("AeJA")),
            Value::Decimal(Decimal::parse("1234.56").unwrap())
        );
        assert_eq!(
            v(1, json!("/w==")),
            Value::Decimal(Decimal::parse("-0.01").unwrap())
        );
        assert_eq!(
            v(3, json!(1_700_000_000_123_i64)).to_string(),
            "2023-11-14 22:13:20.123000"
        );
        assert_eq!(
            v(4, json!("2023-11-14T22:13:20.5Z")),
            Value::Timestamp(Timestamp {
                secs: 1_700_000_000,
                micros: 500_000
            })
        );
        assert_eq!(v(5, json!(19_000)).to_string(), "2022-01-08");
        assert_eq!(
            v(8, json!("vAo=")),
            Value::Bit {
                width: 12,
                bits: 0xabc
            }
        );
    }

    #[test]
    fn a_message_with_a_column_the_table_lacks_is_refused() {
        let s = schema();
        let msg = br#"{"before":null,"after":{"id":1,"nope":2},"source":{"db":"shop","table":"t"},"op":"c"}"#;
        let d = decode(Some(msg)).unwrap().unwrap();
        let err = d.change.unwrap().row_change(&s).unwrap_err();
        assert!(matches!(err, EnvelopeError::SchemaMismatch { .. }), "{err}");
        assert!(matches!(
            decode(Some(b"{not json")),
            Err(EnvelopeError::NotJson { .. })
        ));
        assert_eq!(decode(None).unwrap(), None);
    }
}
