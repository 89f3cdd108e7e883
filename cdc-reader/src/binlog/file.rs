//! Offline reading of binlog files (`my2pg inspect-binlog`).
//!
//! Events are framed here, not by the library: the 19-byte header is read, its size checked
//! against what the file still holds (a truncated file is reported with the offset of the
//! event it cut), and only an event of exactly the announced size is handed to
//! `mysql_common`, whose reader assumes well-formed input. Every event's CRC32 is then verified
//! by the shared [`EventDecoder`], so a flipped byte is reported with its offset instead of
//! producing a wrong value. MySQL 8 transaction payloads are decompressed and their inner events
//! decoded in order.

use std::io::Read;
use std::sync::Arc;

use mysql_common::binlog::EventStreamReader;
use mysql_common::binlog::consts::{BinlogVersion, EventType};
use mysql_common::binlog::events::{Event, TransactionPayloadEvent};

use schemas::{TableId, TableSchema};

use super::decoder::{Decoded, EventDecoder, SchemaSource, Selection};
use super::event::{DecodeError, event_type_name};
use super::tablemap::{CollationLookup, StaticCollations};

/// Binlog files start with these four bytes.
pub const MAGIC: [u8; 4] = [0xfe, b'b', b'i', b'n'];
/// Size of an event header.
pub const HEADER_LEN: usize = 19;
/// The largest event a server writes (`max_allowed_packet` is at most 1 GiB).
pub const MAX_EVENT: u64 = 1 << 30;

/// A decoding problem at a byte offset of a file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file} at offset {offset}: {reason}")]
pub struct FileError {
    /// The file.
    pub file: String,
    /// Byte offset of the event.
    pub offset: u64,
    /// What is wrong.
    pub reason: String,
}

/// One decoded event of a file.
#[derive(Debug, Clone)]
pub struct FileEvent {
    /// Byte offset of the event (0 for events inside a transaction payload: see `in_payload`).
    pub offset: u64,
    /// Whether the event came out of a MySQL 8 transaction payload.
    pub in_payload: bool,
    /// Event type number.
    pub type_code: u8,
    /// Event type name.
    pub type_name: &'static str,
    /// Header timestamp (seconds).
    pub timestamp: u32,
    /// Originating server id.
    pub server_id: u32,
    /// Offset of the next event as the header says.
    pub log_pos: u32,
    /// Total size in bytes.
    pub size: u32,
    /// The decoded content.
    pub decoded: Decoded,
}

struct NoSchemas;

impl SchemaSource for NoSchemas {
    fn cached(&self, _: &TableId) -> Option<Arc<TableSchema>> {
        None
    }
    fn collations(&self) -> &dyn CollationLookup {
        &StaticCollations
    }
}

/// Iterator over the events of a binlog file.
pub struct BinlogFileReader<R> {
    name: String,
    input: R,
    offset: u64,
    esr: EventStreamReader,
    decoder: EventDecoder,
    payload: std::vec::IntoIter<Event>,
    selection: Selection,
    done: bool,
    start_at: Option<u64>,
}

impl<R> std::fmt::Debug for BinlogFileReader<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BinlogFileReader")
            .field("name", &self.name)
            .field("offset", &self.offset)
            .finish()
    }
}

impl<R: Read> BinlogFileReader<R> {
    /// Opens a reader over `input` (the whole file, from byte 0). Events before `start_at`
    /// (after the format description, which is always read) are skipped.
    pub fn new(
        name: impl Into<String>,
        mut input: R,
        start_at: Option<u64>,
    ) -> Result<Self, FileError> {
        let name = name.into();
        let mut magic = [0u8; 4];
        input.read_exact(&mut magic).map_err(|e| FileError {
            file: name.clone(),
            offset: 0,
            reason: format!("cannot read the file header: {e}"),
        })?;
        if magic != MAGIC {
            return Err(FileError {
                file: name,
                offset: 0,
                reason: format!(
                    "not a binlog file (starts with {magic:02x?}, expected fe 62 69 6e)"
                ),
            });
        }
        let file_name = std::path::Path::new(&name)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| name.clone());
        Ok(BinlogFileReader {
            decoder: EventDecoder::new(file_name, false),
            name,
            input,
            offset: 4,
            esr: EventStreamReader::new(BinlogVersion::Version4),
            payload: Vec::new().into_iter(),
            selection: Arc::new(|_| true),
            done: false,
            start_at,
        })
    }

    fn err(&self, offset: u64, reason: impl Into<String>) -> FileError {
        FileError {
            file: self.name.clone(),
            offset,
            reason: reason.into(),
        }
    }

    /// Reads the next framed event; `None` at a clean end of file.
    fn next_raw(&mut self) -> Result<Option<(u64, Vec<u8>)>, FileError> {
        let at = self.offset;
        let mut header = [0u8; HEADER_LEN];
        let mut got = 0;
        while got < HEADER_LEN {
            match self.input.read(&mut header[got..]) {
                Ok(0) if got == 0 => return Ok(None),
                Ok(0) => {
                    return Err(self.err(
                        at,
                        format!("truncated event header: {got} of {HEADER_LEN} bytes"),
                    ));
                }
                Ok(n) => got += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(self.err(at, e.to_string())),
            }
        }
        let size = u64::from(u32::from_le_bytes([
            header[9], header[10], header[11], header[12],
        ]));
        if size < HEADER_LEN as u64 + 4 || size > MAX_EVENT {
            return Err(self.err(
                at,
                format!("event size {size} is impossible (corrupt header)"),
            ));
        }
        // Read what the file holds, up to the announced size, without allocating the announced
        // size up front: a corrupt header may claim a gigabyte.
        let mut raw = header.to_vec();
        let body = size - HEADER_LEN as u64;
        let got = (&mut self.input)
            .take(body)
            .read_to_end(&mut raw)
            .map_err(|e| self.err(at, e.to_string()))?;
        if (got as u64) < body {
            return Err(self.err(
                at,
                format!(
                    "truncated {} event: the header announces {size} bytes, the file ends after {}",
                    event_type_name(header[4]),
                    HEADER_LEN + got
                ),
            ));
        }
        self.offset += size;
        Ok(Some((at, raw)))
    }

    fn decode(
        &mut self,
        offset: u64,
        in_payload: bool,
        event: &Event,
    ) -> Result<FileEvent, FileError> {
        let h = event.header();
        let decoded = self
            .decoder
            .decode(event, &NoSchemas, &self.selection)
            .map_err(|DecodeError(reason)| self.err(offset, reason))?;
        Ok(FileEvent {
            offset,
            in_payload,
            type_code: h.event_type_raw(),
            type_name: event_type_name(h.event_type_raw()),
            timestamp: h.timestamp(),
            server_id: h.server_id(),
            log_pos: h.log_pos(),
            size: h.event_size(),
            decoded,
        })
    }

    fn step(&mut self) -> Result<Option<FileEvent>, FileError> {
        if let Some(ev) = self.payload.next() {
            return self.decode(self.offset, true, &ev).map(Some);
        }
        loop {
            let Some((at, raw)) = self.next_raw()? else {
                return Ok(None);
            };
            let t = raw[4];
            if t == EventType::FORMAT_DESCRIPTION_EVENT as u8 && raw.len() < HEADER_LEN + 57 {
                return Err(self.err(at, "format description event too short"));
            }
            let event = self
                .esr
                .read(&raw[..])
                .map_err(|e| self.err(at, e.to_string()))?
                .ok_or_else(|| self.err(at, "empty event"))?;
            let is_fde = t == EventType::FORMAT_DESCRIPTION_EVENT as u8;
            if let Some(start) = self.start_at
                && at < start
                && !is_fde
            {
                continue;
            }
            let fe = self.decode(at, false, &event)?;
            if t == EventType::TRANSACTION_PAYLOAD_EVENT as u8 {
                let p = event
                    .read_event::<TransactionPayloadEvent<'_>>()
                    .map_err(|e| self.err(at, e.to_string()))?;
                let mut bytes = Vec::new();
                p.decompressed()
                    .and_then(|mut r| r.read_to_end(&mut bytes))
                    .map_err(|e| self.err(at, format!("transaction payload: {e}")))?;
                let mut inner = Vec::new();
                let mut cur = &bytes[..];
                while !cur.is_empty() {
                    if cur.len() < HEADER_LEN {
                        return Err(self.err(at, "transaction payload ends inside an event header"));
                    }
                    let size = u32::from_le_bytes([cur[9], cur[10], cur[11], cur[12]]) as usize;
                    if size < HEADER_LEN || size > cur.len() {
                        return Err(self.err(
                            at,
                            format!("transaction payload holds an event of impossible size {size}"),
                        ));
                    }
                    let ev = self
                        .esr
                        .read_decompressed(&cur[..size])
                        .map_err(|e| self.err(at, format!("transaction payload: {e}")))?
                        .ok_or_else(|| self.err(at, "empty event in transaction payload"))?;
                    inner.push(ev);
                    cur = &cur[size..];
                }
                self.payload = inner.into_iter();
            }
            return Ok(Some(fe));
        }
    }
}

impl<R: Read> Iterator for BinlogFileReader<R> {
    type Item = Result<FileEvent, FileError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.step() {
            Ok(Some(e)) => Some(Ok(e)),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

/// Decodes a whole file held in memory; used by the fuzz target and tests. Returns the events
/// decoded before the first error, and the error.
pub fn decode_bytes(name: &str, bytes: &[u8]) -> (Vec<FileEvent>, Option<FileError>) {
    let reader = match BinlogFileReader::new(name, bytes, None) {
        Ok(r) => r,
        Err(e) => return (Vec::new(), Some(e)),
    };
    let mut out = Vec::new();
    for ev in reader {
        match ev {
            Ok(e) => out.push(e),
            Err(e) => return (out, Some(e)),
        }
    }
    (out, None)
}
