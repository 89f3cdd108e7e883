//! One binlog event in, one typed [`Decoded`] item out. Shared by the network stream and the
//! offline file reader (`my2pg inspect-binlog`).
//!
//! The decoder keeps the per-stream state that decoding needs: the current file name (from
//! ROTATE), the checksum algorithm (from FORMAT_DESCRIPTION), and the table maps by table id.
//! It verifies the CRC32 of every event before looking inside it. Rows of tables the selection
//! does not include are skipped without decoding their values.
//!
//! The first ROTATE of a network stream is sent before any FORMAT_DESCRIPTION, so the library
//! cannot know whether it carries a checksum and leaves the four CRC bytes at the end of the
//! file name. When the server's `binlog_checksum` is CRC32 we verify and strip them here.

use std::collections::HashMap;
use std::sync::Arc;

use mysql_common::binlog::consts::{BinlogChecksumAlg, EventType};
use mysql_common::binlog::events::{Event, GtidEvent, QueryEvent, RotateEvent, XidEvent};

use schemas::position::{MariaGtidPos, MysqlGtid, Sid};
use schemas::{ChangeOp, TableId, TableSchema};

use super::event::{
    DecodeError, DecodeResult, MariaGtidEvent, QueryParts, crc32, mariadb_type as mt,
    parse_maria_gtid, parse_maria_gtid_list, parse_query, verify_checksum,
};
use super::rows::{DecodedRow, decode_rows, parse_rows_event, rows_event_kind, rows_table_id};
use super::tablemap::{CollationLookup, TableMap, merged_schema, parse_table_map};

/// A decoded event.
#[derive(Debug, Clone)]
pub enum Decoded {
    /// The stream moved to another file.
    Rotate {
        /// New file name.
        file: String,
        /// Offset in it.
        position: u64,
        /// Whether the server synthesised it (stream start, heartbeat switch) rather than
        /// reading it from the file: only a real rotation moves the position.
        fake: bool,
    },
    /// Format description (start of a file).
    FormatDescription {
        /// Server version string.
        server_version: String,
    },
    /// MariaDB GTID: a transaction starts.
    MariaGtid(MariaGtidEvent),
    /// MySQL GTID: a transaction starts.
    MysqlGtid {
        /// The GTID.
        gtid: MysqlGtid,
        /// Original commit time in microseconds since the epoch (MySQL 8), when present.
        commit_micros: Option<u64>,
    },
    /// MySQL anonymous GTID (GTID mode off): a transaction starts.
    AnonymousGtid,
    /// MariaDB GTID_LIST: the GTID state at this point.
    GtidList(MariaGtidPos),
    /// A QUERY (transaction control or a schema change).
    Query(QueryParts),
    /// A table map.
    TableMap(Arc<TableMap>),
    /// Rows of a selected table.
    Rows {
        /// The table map the rows were decoded with.
        map: Arc<TableMap>,
        /// Operation.
        op: ChangeOp,
        /// Before/after images.
        rows: Vec<DecodedRow>,
    },
    /// Rows of a table that is not selected (not decoded).
    RowsSkipped {
        /// The table.
        table: TableId,
    },
    /// Transaction commit (XID).
    Xid(u64),
    /// XA PREPARE ends the current group.
    XaPrepare,
    /// Server heartbeat (the stream is alive but idle).
    Heartbeat,
    /// MariaDB ANNOTATE_ROWS: the statement behind the following rows.
    Annotate(String),
    /// MySQL 8 TRANSACTION_PAYLOAD: the compressed transaction follows as separate events.
    TransactionPayload,
    /// Anything else (intvar, rand, user var, checkpoint, previous GTIDs, …).
    Ignored(u8),
}

/// Where the decoder gets table schemas for merging with table maps.
pub trait SchemaSource {
    /// The `information_schema` schema of `table`, if known.
    fn cached(&self, table: &TableId) -> Option<Arc<TableSchema>>;
    /// Collation id → character set.
    fn collations(&self) -> &dyn CollationLookup;
}

/// Decoding state of one stream.
#[derive(Debug)]
pub struct EventDecoder {
    /// Current binlog file.
    pub file: String,
    server_crc: bool,
    seen_fde: bool,
    maps: HashMap<u64, Arc<TableMap>>,
}

/// Whether rows of a table are wanted.
pub type Selection = Arc<dyn Fn(&TableId) -> bool + Send + Sync>;

impl EventDecoder {
    /// A decoder for a stream whose server has `binlog_checksum=CRC32` when `server_crc`.
    pub fn new(file: impl Into<String>, server_crc: bool) -> Self {
        EventDecoder {
            file: file.into(),
            server_crc,
            seen_fde: false,
            maps: HashMap::new(),
        }
    }

    /// The table map for `table_id`, if one was seen.
    pub fn table_map(&self, table_id: u64) -> Option<&Arc<TableMap>> {
        self.maps.get(&table_id)
    }

    /// Decodes one event.
    pub fn decode(
        &mut self,
        event: &Event,
        schemas: &dyn SchemaSource,
        selected: &Selection,
    ) -> DecodeResult<Decoded> {
        let t = event.header().event_type_raw();
        let body = event.data();
        if t == EventType::ROTATE_EVENT as u8 && !self.seen_fde {
            return self.first_rotate(event);
        }
        let alg = event
            .footer()
            .get_checksum_alg()
            .map_err(|e| DecodeError(format!("checksum algorithm: {e}")))?;
        verify_checksum(event, alg)?;
        let lib = |e: std::io::Error| DecodeError(e.to_string());
        Ok(match t {
            x if x == EventType::FORMAT_DESCRIPTION_EVENT as u8 => {
                self.seen_fde = true;
                let fde = event
                    .read_event::<mysql_common::binlog::events::FormatDescriptionEvent<'_>>()
                    .map_err(lib)?;
                Decoded::FormatDescription {
                    server_version: fde.server_version().trim_end_matches('\0').to_owned(),
                }
            }
            x if x == EventType::ROTATE_EVENT as u8 => {
                let r = event.read_event::<RotateEvent<'_>>().map_err(lib)?;
                self.file = r.name().into_owned();
                if !r.is_fake() {
                    // Table ids restart in a new file.
                    self.maps.clear();
                }
                Decoded::Rotate {
                    file: self.file.clone(),
                    position: r.position(),
                    fake: event.header().log_pos() == 0,
                }
            }
            x if x == EventType::QUERY_EVENT as u8 => {
                let q = event.read_event::<QueryEvent<'_>>().map_err(lib)?;
                Decoded::Query(QueryParts {
                    database: q.schema().into_owned(),
                    statement: q.query().into_owned(),
                })
            }
            mt::QUERY_COMPRESSED => Decoded::Query(parse_query(body, true)?),
            x if x == EventType::TABLE_MAP_EVENT as u8 => {
                let ev = parse_table_map(body)?;
                let reuse = self
                    .maps
                    .get(&ev.table_id)
                    .filter(|m| m.event == ev)
                    .cloned();
                let map = match reuse {
                    Some(m) => m,
                    None => {
                        let cached = if selected(&ev.table) {
                            schemas.cached(&ev.table)
                        } else {
                            None
                        };
                        let schema = merged_schema(&ev, cached.as_deref(), schemas.collations())
                            .map_err(DecodeError)?;
                        let m = Arc::new(TableMap {
                            event: ev,
                            schema: Arc::new(schema),
                        });
                        self.maps.insert(m.event.table_id, m.clone());
                        m
                    }
                };
                Decoded::TableMap(map)
            }
            x if rows_event_kind(x).is_some() || x == 39 => {
                let table_id = rows_table_id(body)?;
                let map = self.maps.get(&table_id).cloned().ok_or_else(|| {
                    DecodeError(format!(
                        "rows event for table id {table_id} without a table map"
                    ))
                })?;
                if !selected(&map.event.table) {
                    return Ok(Decoded::RowsSkipped {
                        table: map.event.table.clone(),
                    });
                }
                let ev = parse_rows_event(x, body)?;
                let rows = decode_rows(&ev, &map.event, &map.schema)?;
                Decoded::Rows {
                    op: ev.op,
                    rows,
                    map,
                }
            }
            x if x == EventType::XID_EVENT as u8 => {
                let xid = event.read_event::<XidEvent>().map_err(lib)?;
                Decoded::Xid(xid.xid)
            }
            x if x == EventType::GTID_EVENT as u8 || x == 42 => {
                let g = event.read_event::<GtidEvent>().map_err(lib)?;
                let tag = g
                    .tag()
                    .map(|t| t.as_str().to_ascii_lowercase())
                    .unwrap_or_default();
                let oct = g.original_commit_timestamp();
                Decoded::MysqlGtid {
                    gtid: MysqlGtid {
                        sid: Sid { uuid: g.sid(), tag },
                        gno: g.gno(),
                    },
                    commit_micros: (oct != 0).then_some(oct),
                }
            }
            x if x == EventType::ANONYMOUS_GTID_EVENT as u8 => Decoded::AnonymousGtid,
            x if x == EventType::XA_PREPARE_LOG_EVENT as u8 => Decoded::XaPrepare,
            x if x == EventType::HEARTBEAT_EVENT as u8 || x == 41 => Decoded::Heartbeat,
            x if x == EventType::TRANSACTION_PAYLOAD_EVENT as u8 => {
                let p = event
                    .read_event::<mysql_common::binlog::events::TransactionPayloadEvent<'_>>()
                    .map_err(lib)?;
                // The stream decompresses the payload and sends its events next; make sure it
                // can, because the library would otherwise skip the transaction silently.
                let mut reader = p.decompressed().map_err(|e| {
                    DecodeError(format!(
                        "cannot decompress a MySQL transaction payload ({e}); set binlog_transaction_compression=OFF on the source"
                    ))
                })?;
                let mut sink = Vec::new();
                std::io::Read::read_to_end(&mut reader, &mut sink).map_err(|e| {
                    DecodeError(format!(
                        "cannot decompress a MySQL transaction payload ({e}); set binlog_transaction_compression=OFF on the source"
                    ))
                })?;
                Decoded::TransactionPayload
            }
            x if x == EventType::INCIDENT_EVENT as u8 => {
                return Err(DecodeError::new(
                    "INCIDENT event: the source logged an incident (changes may be missing from the binlog); \
                     take a new snapshot of the affected tables",
                ));
            }
            mt::GTID => Decoded::MariaGtid(parse_maria_gtid(body, event.header().server_id())?),
            mt::GTID_LIST => Decoded::GtidList(parse_maria_gtid_list(body)?),
            mt::ANNOTATE_ROWS => Decoded::Annotate(String::from_utf8_lossy(body).into_owned()),
            mt::START_ENCRYPTION => {
                return Err(DecodeError::new(
                    "the binlog file is encrypted; read it through the server (my2pg sync) instead of from disk",
                ));
            }
            other => Decoded::Ignored(other),
        })
    }

    /// The ROTATE that precedes the first FORMAT_DESCRIPTION of a network stream.
    fn first_rotate(&mut self, event: &Event) -> DecodeResult<Decoded> {
        let body = event.data();
        if body.len() < 8 {
            return Err(DecodeError::new(
                "ROTATE event shorter than its 8-byte position",
            ));
        }
        let mut name = &body[8..];
        if self.server_crc && name.len() >= 4 {
            let (n, crc) = name.split_at(name.len() - 4);
            let mut header = Vec::with_capacity(19);
            let h = event.header();
            header.extend_from_slice(&h.timestamp().to_le_bytes());
            header.push(h.event_type_raw());
            header.extend_from_slice(&h.server_id().to_le_bytes());
            header.extend_from_slice(&h.event_size().to_le_bytes());
            header.extend_from_slice(&h.log_pos().to_le_bytes());
            header.extend_from_slice(&h.flags_raw().to_le_bytes());
            let mut all = header;
            all.extend_from_slice(&body[..8]);
            all.extend_from_slice(n);
            let stored = u32::from_le_bytes([crc[0], crc[1], crc[2], crc[3]]);
            if crc32(&all) != stored {
                return Err(DecodeError::new("CRC32 mismatch in the first ROTATE event"));
            }
            name = n;
        }
        let position = u64::from_le_bytes([
            body[0], body[1], body[2], body[3], body[4], body[5], body[6], body[7],
        ]);
        self.file = String::from_utf8_lossy(name).into_owned();
        Ok(Decoded::Rotate {
            file: self.file.clone(),
            position,
            fake: true,
        })
    }
}

/// The checksum algorithm named by `@@global.binlog_checksum`.
pub fn checksum_from_name(name: &str) -> Option<BinlogChecksumAlg> {
    name.eq_ignore_ascii_case("CRC32")
        .then_some(BinlogChecksumAlg::BINLOG_CHECKSUM_ALG_CRC32)
}
