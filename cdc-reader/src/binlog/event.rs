//! Event-level plumbing: CRC32 verification, the MariaDB events `mysql_common` does not know
//! (GTID, GTID_LIST, compressed QUERY and ROWS), and MariaDB's binlog compression format.
//!
//! Everything here reads bytes that come from the network or a file, so every read is
//! bounds-checked and every length is validated before it is trusted; a malformed event gives
//! a [`DecodeError`], never a panic (see the fuzz targets in `fuzz/`).
//!
//! **CRC32.** With `binlog_checksum=CRC32` every event ends with the CRC32 of its header and
//! body. `mysql_common` strips and keeps those four bytes but does not compare them; we do, for
//! every event, so a flipped bit on disk or a bug between server and client stops the stream
//! instead of silently changing a value.

use mysql_common::binlog::consts::BinlogChecksumAlg;
use mysql_common::binlog::events::Event;

use schemas::position::{MariaGtid, MariaGtidPos};

/// MariaDB event types (`log_event.h`), absent from `mysql_common`'s `EventType`.
pub mod mariadb_type {
    /// The statement behind the following row events (`binlog_annotate_row_events`).
    pub const ANNOTATE_ROWS: u8 = 160;
    /// Binlog checkpoint (crash recovery bookkeeping).
    pub const BINLOG_CHECKPOINT: u8 = 161;
    /// GTID of the following event group.
    pub const GTID: u8 = 162;
    /// GTID state at the start of a binlog file.
    pub const GTID_LIST: u8 = 163;
    /// Binlog encryption start.
    pub const START_ENCRYPTION: u8 = 164;
    /// QUERY with a compressed statement (`log_bin_compress=ON`).
    pub const QUERY_COMPRESSED: u8 = 165;
    /// Compressed WRITE_ROWS v1.
    pub const WRITE_ROWS_COMPRESSED_V1: u8 = 166;
    /// Compressed UPDATE_ROWS v1.
    pub const UPDATE_ROWS_COMPRESSED_V1: u8 = 167;
    /// Compressed DELETE_ROWS v1.
    pub const DELETE_ROWS_COMPRESSED_V1: u8 = 168;
    /// Compressed WRITE_ROWS v2.
    pub const WRITE_ROWS_COMPRESSED: u8 = 169;
    /// Compressed UPDATE_ROWS v2.
    pub const UPDATE_ROWS_COMPRESSED: u8 = 170;
    /// Compressed DELETE_ROWS v2.
    pub const DELETE_ROWS_COMPRESSED: u8 = 171;
}

/// MariaDB GTID event flags (`Gtid_log_event::FL_*`).
pub mod gtid_flags {
    /// The group is a single statement without BEGIN/COMMIT (DDL).
    pub const STANDALONE: u8 = 1;
    /// A commit id follows the flags.
    pub const GROUP_COMMIT_ID: u8 = 2;
    /// The group ends an XA PREPARE.
    pub const PREPARED_XA: u8 = 64;
    /// The group is an XA COMMIT/ROLLBACK of a prepared transaction.
    pub const COMPLETED_XA: u8 = 128;
}

/// A malformed or unsupported event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct DecodeError(pub String);

impl DecodeError {
    /// Builds an error from anything printable.
    pub fn new(msg: impl Into<String>) -> Self {
        DecodeError(msg.into())
    }
}

/// Result of decoding.
pub type DecodeResult<T> = Result<T, DecodeError>;

/// A bounds-checked little-endian cursor over event bytes.
#[derive(Debug, Clone)]
pub struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
    what: &'static str,
}

impl<'a> Cursor<'a> {
    /// A cursor at the start of `buf`; `what` names the structure in errors.
    pub fn new(buf: &'a [u8], what: &'static str) -> Self {
        Cursor { buf, pos: 0, what }
    }

    /// Bytes not yet read.
    pub fn remaining(&self) -> &'a [u8] {
        &self.buf[self.pos.min(self.buf.len())..]
    }

    /// Whether everything was read.
    pub fn is_empty(&self) -> bool {
        self.pos >= self.buf.len()
    }

    /// Current offset.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Takes `n` bytes.
    pub fn take(&mut self, n: usize) -> DecodeResult<&'a [u8]> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or_else(|| {
                DecodeError(format!(
                    "{}: needs {n} bytes at offset {}, only {} left",
                    self.what,
                    self.pos,
                    self.buf.len().saturating_sub(self.pos)
                ))
            })?;
        let out = &self.buf[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    /// Reads a byte.
    pub fn u8(&mut self) -> DecodeResult<u8> {
        Ok(self.take(1)?[0])
    }

    /// Reads an unsigned little-endian integer of `n` (1..=8) bytes.
    pub fn uint_le(&mut self, n: usize) -> DecodeResult<u64> {
        let b = self.take(n)?;
        Ok(b.iter()
            .rev()
            .fold(0u64, |acc, x| (acc << 8) | u64::from(*x)))
    }

    /// Reads an unsigned big-endian integer of `n` (1..=8) bytes.
    pub fn uint_be(&mut self, n: usize) -> DecodeResult<u64> {
        let b = self.take(n)?;
        Ok(b.iter().fold(0u64, |acc, x| (acc << 8) | u64::from(*x)))
    }

    /// Reads a u16 LE.
    pub fn u16(&mut self) -> DecodeResult<u16> {
        Ok(self.uint_le(2)? as u16)
    }

    /// Reads a u32 LE.
    pub fn u32(&mut self) -> DecodeResult<u32> {
        Ok(self.uint_le(4)? as u32)
    }

    /// Reads a u64 LE.
    pub fn u64(&mut self) -> DecodeResult<u64> {
        self.uint_le(8)
    }

    /// Reads a MySQL length-encoded integer.
    pub fn lenenc(&mut self) -> DecodeResult<u64> {
        match self.u8()? {
            n @ 0..=0xfa => Ok(u64::from(n)),
            0xfc => self.uint_le(2),
            0xfd => self.uint_le(3),
            0xfe => self.uint_le(8),
            b => Err(DecodeError(format!(
                "{}: invalid length-encoded integer prefix 0x{b:02x}",
                self.what
            ))),
        }
    }
}

/// Verifies an event's CRC32 when the stream carries checksums. `alg` is the algorithm from
/// the format description event in force.
pub fn verify_checksum(event: &Event, alg: Option<BinlogChecksumAlg>) -> DecodeResult<()> {
    if alg != Some(BinlogChecksumAlg::BINLOG_CHECKSUM_ALG_CRC32) {
        return Ok(());
    }
    let Some(stored) = event.checksum() else {
        return Err(DecodeError::new(
            "event has no checksum although binlog_checksum is CRC32",
        ));
    };
    let stored = u32::from_le_bytes(stored);
    let computed = event.calc_checksum(BinlogChecksumAlg::BINLOG_CHECKSUM_ALG_CRC32);
    if stored != computed {
        return Err(DecodeError(format!(
            "CRC32 mismatch in {} event: stored {stored:08x}, computed {computed:08x} (the event is corrupt)",
            event_type_name(event.header().event_type_raw())
        )));
    }
    Ok(())
}

/// CRC32 of raw bytes (for events framed by hand: the first ROTATE and file reading).
pub fn crc32(bytes: &[u8]) -> u32 {
    crc32fast::hash(bytes)
}

/// A MariaDB GTID event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MariaGtidEvent {
    /// The GTID (server id from the event header).
    pub gtid: MariaGtid,
    /// `FL_*` flags.
    pub flags: u8,
    /// XID of an XA transaction (prepared or completed).
    pub xid: Option<Xid>,
}

/// An XA transaction id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Xid {
    /// formatID.
    pub format_id: u32,
    /// Global transaction id bytes.
    pub gtrid: Vec<u8>,
    /// Branch qualifier bytes.
    pub bqual: Vec<u8>,
}

impl Xid {
    /// The XID as the server writes it in `XA COMMIT X'…',X'…',n` (upper-case hex).
    pub fn text(&self) -> String {
        let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02X}")).collect::<String>();
        format!(
            "X'{}',X'{}',{}",
            hex(&self.gtrid),
            hex(&self.bqual),
            self.format_id
        )
    }
}

impl MariaGtidEvent {
    /// Whether the group is one statement without BEGIN/COMMIT.
    pub fn standalone(&self) -> bool {
        self.flags & gtid_flags::STANDALONE != 0
    }
}

/// Parses a MariaDB GTID event body.
pub fn parse_maria_gtid(body: &[u8], server_id: u32) -> DecodeResult<MariaGtidEvent> {
    let mut c = Cursor::new(body, "MariaDB GTID event");
    let seq = c.u64()?;
    let domain = c.u32()?;
    let flags = c.u8()?;
    if flags & gtid_flags::GROUP_COMMIT_ID != 0 {
        c.u64()?;
    }
    let xid = if flags & (gtid_flags::PREPARED_XA | gtid_flags::COMPLETED_XA) != 0 {
        let format_id = c.u32()?;
        let gtrid_len = usize::from(c.u8()?);
        let bqual_len = usize::from(c.u8()?);
        if gtrid_len > 64 || bqual_len > 64 {
            return Err(DecodeError::new(
                "MariaDB GTID event: XID longer than 64 bytes",
            ));
        }
        let gtrid = c.take(gtrid_len)?.to_vec();
        let bqual = c.take(bqual_len)?.to_vec();
        Some(Xid {
            format_id,
            gtrid,
            bqual,
        })
    } else {
        None
    };
    Ok(MariaGtidEvent {
        gtid: MariaGtid {
            domain,
            server_id,
            seq,
        },
        flags,
        xid,
    })
}

/// Parses a MariaDB GTID_LIST event body: the GTID state at that point of the binlog.
pub fn parse_maria_gtid_list(body: &[u8]) -> DecodeResult<MariaGtidPos> {
    let mut c = Cursor::new(body, "MariaDB GTID_LIST event");
    // The low 28 bits count the entries; the high 4 bits are flags.
    let count = c.u32()? & 0x0fff_ffff;
    if u64::from(count) * 16 > body.len() as u64 {
        return Err(DecodeError(format!(
            "MariaDB GTID_LIST event: {count} entries do not fit in {} bytes",
            body.len()
        )));
    }
    let mut pos = MariaGtidPos::new();
    for _ in 0..count {
        let domain = c.u32()?;
        let server_id = c.u32()?;
        let seq = c.u64()?;
        pos.update(MariaGtid {
            domain,
            server_id,
            seq,
        });
    }
    Ok(pos)
}

/// The largest payload my2pg will decompress from one compressed event. MariaDB compresses
/// events of at most `max_allowed_packet` (1 GiB) bytes; a larger claimed length is corruption.
pub const MAX_DECOMPRESSED: u64 = 1 << 30;

/// Decompresses a MariaDB-compressed buffer (`binlog_buf_compress`): one header byte
/// `0x80 | lenlen` (the algorithm, zlib, is 0 in bits 4-6), `lenlen` bytes of big-endian
/// uncompressed length, then a zlib stream.
pub fn maria_decompress(buf: &[u8]) -> DecodeResult<Vec<u8>> {
    use std::io::Read as _;
    let mut c = Cursor::new(buf, "MariaDB compressed payload");
    let header = c.u8()?;
    if header & 0x80 == 0 {
        return Err(DecodeError(format!(
            "MariaDB compressed payload: header 0x{header:02x} lacks the compression flag"
        )));
    }
    let algorithm = (header >> 4) & 0x07;
    if algorithm != 0 {
        return Err(DecodeError(format!(
            "MariaDB compressed payload: unknown algorithm {algorithm}"
        )));
    }
    let lenlen = usize::from(header & 0x07);
    if !(1..=4).contains(&lenlen) {
        return Err(DecodeError(format!(
            "MariaDB compressed payload: invalid length size {lenlen}"
        )));
    }
    let len = c.uint_be(lenlen)?;
    if len > MAX_DECOMPRESSED {
        return Err(DecodeError(format!(
            "MariaDB compressed payload claims {len} bytes, more than {MAX_DECOMPRESSED}"
        )));
    }
    // Grow with the data actually inflated, not with the length the (untrusted) header claims.
    let mut out = Vec::with_capacity((len as usize).min(1 << 16));
    flate2::read::ZlibDecoder::new(c.remaining())
        .take(len + 1)
        .read_to_end(&mut out)
        .map_err(|e| DecodeError(format!("MariaDB compressed payload: zlib: {e}")))?;
    if out.len() as u64 != len {
        return Err(DecodeError(format!(
            "MariaDB compressed payload: expected {len} bytes, decompressed {}",
            out.len()
        )));
    }
    Ok(out)
}

/// A QUERY event's parts: default database and statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryParts {
    /// Default database (`USE db`).
    pub database: String,
    /// The statement (bytes in the session's character set; almost always UTF-8).
    pub statement: String,
}

/// Parses a QUERY or MariaDB QUERY_COMPRESSED event body: post-header (thread id, exec time,
/// database length, error code, status variables length), status variables, database, NUL,
/// statement (compressed in QUERY_COMPRESSED).
pub fn parse_query(body: &[u8], compressed: bool) -> DecodeResult<QueryParts> {
    let mut c = Cursor::new(body, "QUERY event");
    let _thread_id = c.u32()?;
    let _exec_time = c.u32()?;
    let db_len = usize::from(c.u8()?);
    let _error_code = c.u16()?;
    let status_len = usize::from(c.u16()?);
    c.take(status_len)?;
    let database = String::from_utf8_lossy(c.take(db_len)?).into_owned();
    if c.u8()? != 0 {
        return Err(DecodeError::new(
            "QUERY event: database name is not NUL-terminated",
        ));
    }
    let raw = c.remaining();
    let statement = if compressed {
        String::from_utf8_lossy(&maria_decompress(raw)?).into_owned()
    } else {
        String::from_utf8_lossy(raw).into_owned()
    };
    Ok(QueryParts {
        database,
        statement,
    })
}

/// A readable name for an event type number (MySQL and MariaDB).
pub fn event_type_name(t: u8) -> &'static str {
    match t {
        0 => "UNKNOWN",
        2 => "QUERY",
        3 => "STOP",
        4 => "ROTATE",
        5 => "INTVAR",
        13 => "RAND",
        14 => "USER_VAR",
        15 => "FORMAT_DESCRIPTION",
        16 => "XID",
        17 => "BEGIN_LOAD_QUERY",
        18 => "EXECUTE_LOAD_QUERY",
        19 => "TABLE_MAP",
        23 => "WRITE_ROWS_V1",
        24 => "UPDATE_ROWS_V1",
        25 => "DELETE_ROWS_V1",
        26 => "INCIDENT",
        27 => "HEARTBEAT",
        28 => "IGNORABLE",
        29 => "ROWS_QUERY",
        30 => "WRITE_ROWS",
        31 => "UPDATE_ROWS",
        32 => "DELETE_ROWS",
        33 => "GTID",
        34 => "ANONYMOUS_GTID",
        35 => "PREVIOUS_GTIDS",
        36 => "TRANSACTION_CONTEXT",
        37 => "VIEW_CHANGE",
        38 => "XA_PREPARE",
        39 => "PARTIAL_UPDATE_ROWS",
        40 => "TRANSACTION_PAYLOAD",
        41 => "HEARTBEAT_V2",
        42 => "GTID_TAGGED",
        mariadb_type::ANNOTATE_ROWS => "ANNOTATE_ROWS",
        mariadb_type::BINLOG_CHECKPOINT => "BINLOG_CHECKPOINT",
        mariadb_type::GTID => "MARIADB_GTID",
        mariadb_type::GTID_LIST => "GTID_LIST",
        mariadb_type::START_ENCRYPTION => "START_ENCRYPTION",
        mariadb_type::QUERY_COMPRESSED => "QUERY_COMPRESSED",
        mariadb_type::WRITE_ROWS_COMPRESSED_V1 => "WRITE_ROWS_COMPRESSED_V1",
        mariadb_type::UPDATE_ROWS_COMPRESSED_V1 => "UPDATE_ROWS_COMPRESSED_V1",
        mariadb_type::DELETE_ROWS_COMPRESSED_V1 => "DELETE_ROWS_COMPRESSED_V1",
        mariadb_type::WRITE_ROWS_COMPRESSED => "WRITE_ROWS_COMPRESSED",
        mariadb_type::UPDATE_ROWS_COMPRESSED => "UPDATE_ROWS_COMPRESSED",
        mariadb_type::DELETE_ROWS_COMPRESSED => "DELETE_ROWS_COMPRESSED",
        _ => "OTHER",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maria_gtid_with_commit_id() {
        let mut b = Vec::new();
        b.extend_from_slice(&42u64.to_le_bytes());
        b.extend_from_slice(&3u32.to_le_bytes());
        b.push(gtid_flags::GROUP_COMMIT_ID | gtid_flags::STANDALONE);
        b.extend_from_slice(&7u64.to_le_bytes());
        let g = parse_maria_gtid(&b, 9).unwrap();
        assert_eq!(
            g.gtid,
            MariaGtid {
                domain: 3,
                server_id: 9,
                seq: 42
            }
        );
        assert!(g.standalone());
        assert!(parse_maria_gtid(&b[..10], 9).is_err());
    }

    #[test]
    fn gtid_list_rejects_impossible_counts() {
        let mut b = Vec::new();
        b.extend_from_slice(&1u32.to_le_bytes());
        b.extend_from_slice(&0u32.to_le_bytes());
        b.extend_from_slice(&1u32.to_le_bytes());
        b.extend_from_slice(&5u64.to_le_bytes());
        assert_eq!(parse_maria_gtid_list(&b).unwrap().to_string(), "0-1-5");
        let mut huge = Vec::new();
        huge.extend_from_slice(&0x0fff_ffffu32.to_le_bytes());
        assert!(parse_maria_gtid_list(&huge).is_err());
    }

    #[test]
    fn maria_compression_round_trip_and_bad_input() {
        use std::io::Write as _;
        let payload = b"INSERT INTO t VALUES (1), (2), (3), (4), (5)".repeat(20);
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        z.write_all(&payload).unwrap();
        let body = z.finish().unwrap();
        let mut framed = vec![0x82, (payload.len() >> 8) as u8, payload.len() as u8];
        framed.extend_from_slice(&body);
        assert_eq!(maria_decompress(&framed).unwrap(), payload);
        // Wrong claimed length.
        framed[2] ^= 1;
        assert!(maria_decompress(&framed).is_err());
        assert!(maria_decompress(&[0x81]).is_err());
        assert!(maria_decompress(&[0x02, 1, 2]).is_err());
        assert!(maria_decompress(&[0x84, 0xff, 0xff, 0xff, 0xff]).is_err());
    }

    #[test]
    fn cursor_never_reads_past_the_end() {
        let mut c = Cursor::new(&[1, 2, 3], "t");
        assert!(c.take(4).is_err());
        assert_eq!(c.u16().unwrap(), 0x0201);
        assert!(c.u16().is_err());
        assert!(c.take(usize::MAX).is_err());
        let mut c = Cursor::new(&[0xfe, 1], "t");
        assert!(c.lenenc().is_err());
    }
}
