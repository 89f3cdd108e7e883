//! The network binlog stream: from a stored position to a channel of source transactions.
//!
//! **Resume.** MariaDB: `SET @mariadb_slave_capability=4` (we understand GTID events) and
//! `SET @slave_connect_state='<pos>'`; the server then sends every group after that GTID
//! position. MySQL: `COM_BINLOG_DUMP_GTID` with the executed GTID set; the server skips those.
//! Without GTIDs: `COM_BINLOG_DUMP` from the file and offset. In all three cases the position
//! stored with a transaction is the position after it, so resuming from a stored position
//! neither repeats nor skips a transaction. A position the server no longer has (purged
//! binlogs, error 1236) is a definite [`ReaderError::PositionPurged`].
//!
//! **Liveness.** `@master_heartbeat_period` makes the server send a heartbeat when idle; a
//! stream that delivers nothing for three periods is dead (a silently dropped connection) and
//! is reported as [`ReaderError::StreamLost`], a transient error.
//!
//! **Reconnect.** [`BinlogReader::run_resilient`] retries transient errors with exponential
//! backoff from the position after the last transaction it delivered whole. If part of a
//! fragmented transaction was already delivered, a reconnect cannot continue it mid-way, so the
//! error is returned and the pipeline restarts from its durable checkpoint instead.
//!
//! **Schema tracking.** Table schemas from `information_schema` are cached by table and loaded
//! on a table's first TABLE_MAP. A QUERY event that changes selected tables (see [`crate::ddl`])
//! re-reads those tables and is emitted, in stream order, as a [`DdlChange`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt as _;
use mysql_async::BinlogStreamRequest;
use mysql_async::Conn;
use mysql_async::prelude::Queryable;
use mysql_common::binlog::consts::EventType;
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use schemas::change::DdlChange;
use schemas::position::{BinlogCoord, GtidSet, MariaGtidPos, SourcePosition};
use schemas::{Charset, SourceTx, TableId, TableSchema};

use super::decoder::{Decoded, EventDecoder, SchemaSource, Selection};
use super::tablemap::{CollationLookup, parse_table_map};
use super::tx::Assembler;
use crate::connect::{CONNECT_TIMEOUT, SourceOptions};
use crate::ddl::{TableDdl, classify};
use crate::error::{ReaderError, Result, is_transient_driver_error};
use crate::preflight::{Flavor, ServerInfo};
use crate::schema;

/// Default heartbeat period asked of the server: short enough that a dead idle connection is
/// noticed within seconds (three missed heartbeats), long enough to cost nothing.
pub const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(2);

/// Default server id my2pg registers with: high in the 32-bit range, away from the ids
/// replication topologies usually number from 1.
pub const DEFAULT_SERVER_ID: u32 = 1_977_000_001;

/// Stream settings.
#[derive(Clone)]
pub struct StreamConfig {
    /// Server id to register as (must differ from every server and replica of the source).
    pub server_id: u32,
    /// Heartbeat period asked of the server.
    pub heartbeat: Duration,
    /// Byte limit of one fragment of a large transaction.
    pub fragment_bytes: usize,
    /// Row limit of one fragment.
    pub fragment_rows: usize,
    /// Which tables' rows to decode.
    pub selection: Selection,
    /// Where the stream records when each binlog file was last written.
    pub clock: super::clock::BinlogClock,
}

impl std::fmt::Debug for StreamConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamConfig")
            .field("server_id", &self.server_id)
            .field("heartbeat", &self.heartbeat)
            .field("fragment_bytes", &self.fragment_bytes)
            .field("fragment_rows", &self.fragment_rows)
            .finish()
    }
}

impl StreamConfig {
    /// Defaults with the given selection.
    pub fn new(selection: Selection) -> Self {
        StreamConfig {
            server_id: DEFAULT_SERVER_ID,
            heartbeat: DEFAULT_HEARTBEAT,
            fragment_bytes: super::tx::DEFAULT_FRAGMENT_BYTES,
            fragment_rows: super::tx::DEFAULT_FRAGMENT_ROWS,
            selection,
            clock: super::clock::BinlogClock::new(),
        }
    }
}

/// `information_schema` schemas by table, plus collation ids.
#[derive(Debug, Default)]
pub struct SchemaCache {
    tables: HashMap<TableId, Option<Arc<TableSchema>>>,
    table_collations: HashMap<TableId, String>,
    collations: HashMap<u16, Charset>,
}

impl SchemaSource for SchemaCache {
    fn cached(&self, table: &TableId) -> Option<Arc<TableSchema>> {
        self.tables.get(table).cloned().flatten()
    }
    fn collations(&self) -> &dyn CollationLookup {
        &self.collations
    }
}

impl SchemaCache {
    /// Loads `table` unless it was loaded already (absent tables are remembered as absent).
    pub async fn ensure(&mut self, conn: &mut Conn, table: &TableId) -> Result<()> {
        if !self.tables.contains_key(table) {
            self.refresh(conn, table).await?;
        }
        Ok(())
    }

    /// Re-reads `table` from `information_schema`.
    pub async fn refresh(
        &mut self,
        conn: &mut Conn,
        table: &TableId,
    ) -> Result<Option<Arc<TableSchema>>> {
        let schema = match schema::read_table(conn, table).await {
            Ok(s) => Some(Arc::new(s)),
            Err(ReaderError::NotFound { .. }) => None,
            Err(e) => return Err(e),
        };
        if let Some(c) = schema::table_collation(conn, table).await? {
            self.table_collations.insert(table.clone(), c);
        }
        self.tables.insert(table.clone(), schema.clone());
        Ok(schema)
    }

    /// Forgets `table`.
    pub fn forget(&mut self, table: &TableId) {
        self.tables.insert(table.clone(), None);
    }

    /// Records the schema of `table` computed from a DDL statement.
    pub fn set(&mut self, table: &TableId, schema: Arc<TableSchema>) {
        self.tables.insert(table.clone(), Some(schema));
    }

    /// The table's default collation, when known.
    pub fn table_collation(&self, table: &TableId) -> Option<&str> {
        self.table_collations.get(table).map(String::as_str)
    }

    /// The schema `id` has after the DDL `statement`: computed from the schema before it when
    /// the statement can be applied exactly (see `crate::ddl::apply`), else read from
    /// `information_schema`, else — when the table no longer exists there — the schema before
    /// it, with a warning.
    async fn after_ddl(
        &mut self,
        conn: &mut Conn,
        id: &TableId,
        statement: &str,
        database: &str,
    ) -> Result<Option<Arc<TableSchema>>> {
        let before = self.cached(id);
        if let Some(b) = &before
            && let Some(after) =
                crate::ddl::schema_after(statement, database, id, b, self.table_collation(id))
        {
            let after = Arc::new(after);
            self.set(id, after.clone());
            return Ok(Some(after));
        }
        match self.refresh(conn, id).await? {
            Some(s) => Ok(Some(s)),
            None => {
                warn!(table = %id, statement, "cannot tell the schema after this statement; keeping the one before it");
                if let Some(b) = &before {
                    self.set(id, b.clone());
                }
                Ok(before)
            }
        }
    }
}

/// Where the stream is, for reconnects and for the caller.
#[derive(Debug, Clone)]
pub struct Progress {
    /// Position after the last transaction delivered whole.
    pub position: SourcePosition,
    /// Whether fragments of an unfinished transaction were delivered.
    pub mid_transaction: bool,
}

/// Reads the binlog of one source.
#[derive(Debug, Clone)]
pub struct BinlogReader {
    source: SourceOptions,
    config: StreamConfig,
}

/// The server's current binlog position (where a stream started now would begin).
pub async fn current_position(conn: &mut Conn) -> Result<SourcePosition> {
    let info = ServerInfo::read(conn).await?;
    let q = |what: &'static str| {
        move |source| ReaderError::Query {
            what: what.into(),
            source,
        }
    };
    let status: Option<mysql_async::Row> = match conn.query_first("SHOW MASTER STATUS").await {
        Ok(r) => r,
        // MySQL 8.4 renamed it.
        Err(mysql_async::Error::Server(_)) => conn
            .query_first("SHOW BINARY LOG STATUS")
            .await
            .map_err(q("reading the binlog position"))?,
        Err(e) => return Err(q("reading the binlog position")(e)),
    };
    let coord = status.and_then(|r| {
        let file: Option<String> = r.get(0);
        let pos: Option<u64> = r.get(1);
        Some(BinlogCoord::new(file?, pos?))
    });
    match info.flavor {
        Flavor::Mariadb => {
            let pos: Option<String> = conn
                .query_first("SELECT @@GLOBAL.gtid_binlog_pos")
                .await
                .map_err(q("reading @@gtid_binlog_pos"))?;
            let pos: MariaGtidPos = pos.unwrap_or_default().parse().map_err(
                |e: schemas::position::PositionParseError| ReaderError::Decode {
                    at: "@@gtid_binlog_pos".into(),
                    reason: e.to_string(),
                },
            )?;
            Ok(SourcePosition::MariaGtid { pos, coord })
        }
        Flavor::Mysql => {
            let mode: Option<String> = conn
                .query_first("SELECT @@GLOBAL.gtid_mode")
                .await
                .unwrap_or(None);
            if mode
                .as_deref()
                .is_some_and(|m| m.eq_ignore_ascii_case("ON"))
            {
                let set: Option<String> = conn
                    .query_first("SELECT @@GLOBAL.gtid_executed")
                    .await
                    .map_err(q("reading @@gtid_executed"))?;
                let executed: GtidSet = set.unwrap_or_default().parse().map_err(
                    |e: schemas::position::PositionParseError| ReaderError::Decode {
                        at: "@@gtid_executed".into(),
                        reason: e.to_string(),
                    },
                )?;
                Ok(SourcePosition::MysqlGtid { executed, coord })
            } else {
                coord
                    .map(SourcePosition::File)
                    .ok_or_else(|| ReaderError::Preflight {
                        problem: "the source has no binary log position".into(),
                        hint: "enable the binary log (log_bin) on the source".into(),
                    })
            }
        }
    }
}

fn mysql_sids(set: &GtidSet) -> Result<Vec<mysql_common::packets::Sid<'static>>> {
    let mut out = Vec::new();
    for (sid, ivs) in set.iter() {
        if !sid.tag.is_empty() {
            return Err(ReaderError::Decode {
                at: "resume position".into(),
                reason: format!(
                    "tagged GTIDs ({}) cannot be sent in COM_BINLOG_DUMP_GTID by this client yet",
                    sid.tag
                ),
            });
        }
        let mut s = mysql_common::packets::Sid::new(sid.uuid);
        for &(a, b) in ivs {
            // The protocol's intervals are half-open.
            s = s.with_interval(mysql_common::packets::GnoInterval::new(a, b + 1));
        }
        out.push(s);
    }
    Ok(out)
}

fn stream_error(e: mysql_async::Error, position: &SourcePosition) -> ReaderError {
    match &e {
        mysql_async::Error::Server(s) if s.code == 1236 => ReaderError::PositionPurged {
            position: position.to_string(),
            message: s.message.clone(),
        },
        mysql_async::Error::Server(s) if s.code == 4052 || s.code == 1593 => {
            ReaderError::Preflight {
                problem: format!("the source refused the binlog stream: {}", s.message),
                hint: "another replica (or another my2pg) already uses this server id; give each \
                       pipeline its own with [source] server_id = N"
                    .into(),
            }
        }
        mysql_async::Error::Server(s) if s.code == 1227 || s.code == 1045 => {
            ReaderError::Preflight {
                problem: format!("the source refused the binlog stream: {}", s.message),
                hint: "GRANT REPLICATION SLAVE ON *.* TO the my2pg user".into(),
            }
        }
        _ if is_transient_driver_error(&e) => ReaderError::StreamLost { source: Some(e) },
        _ => ReaderError::Query {
            what: "reading the binlog stream".into(),
            source: e,
        },
    }
}

impl BinlogReader {
    /// A reader for `source`.
    pub fn new(source: SourceOptions, config: StreamConfig) -> Self {
        BinlogReader { source, config }
    }

    /// Streams from `from` into `out` until `out` is closed (returns `Ok`) or an error occurs.
    /// `progress` is updated after every transaction delivered whole.
    pub async fn run(
        &self,
        from: SourcePosition,
        out: &mpsc::Sender<SourceTx>,
        progress: &Mutex<Progress>,
    ) -> Result<()> {
        self.config.clock.stream_started();
        let mut meta = self.source.connect().await?;
        let info = ServerInfo::read(&mut meta).await?;
        let checksum: Option<String> = meta
            .query_first("SELECT @@GLOBAL.binlog_checksum")
            .await
            .map_err(|source| ReaderError::Query {
                what: "reading @@binlog_checksum".into(),
                source,
            })?;
        let crc = checksum
            .as_deref()
            .is_some_and(|c| c.eq_ignore_ascii_case("CRC32"));
        let mut cache = SchemaCache {
            tables: HashMap::new(),
            table_collations: HashMap::new(),
            collations: schema::collation_charsets(&mut meta).await?,
        };

        let mut conn = self.source.connect().await?;
        let set = |what: String| {
            let w = what.clone();
            move |source| ReaderError::Query { what: w, source }
        };
        let period_ns = self
            .config
            .heartbeat
            .as_nanos()
            .min(u128::from(u32::MAX) * 1_000_000);
        conn.query_drop(format!("SET @master_heartbeat_period = {period_ns}"))
            .await
            .map_err(set("setting the heartbeat period".into()))?;
        let start_file = from.coord().map(|c| c.file.clone()).unwrap_or_default();
        let file_bytes = start_file.clone().into_bytes();
        let request = match (&from, info.flavor) {
            (SourcePosition::MariaGtid { pos, .. }, Flavor::Mariadb) => {
                conn.query_drop("SET @mariadb_slave_capability = 4")
                    .await
                    .map_err(set("declaring GTID capability".into()))?;
                conn.query_drop(format!("SET @slave_connect_state = '{pos}'"))
                    .await
                    .map_err(set(format!("setting the start GTID position {pos}")))?;
                conn.query_drop("SET @slave_gtid_strict_mode = 1")
                    .await
                    .map_err(set("setting GTID strict mode".into()))?;
                BinlogStreamRequest::new(self.config.server_id)
            }
            (SourcePosition::MysqlGtid { executed, .. }, Flavor::Mysql) => {
                BinlogStreamRequest::new(self.config.server_id)
                    .with_gtid()
                    .with_gtid_set(mysql_sids(executed)?)
            }
            (SourcePosition::File(c), _) => {
                if info.flavor == Flavor::Mariadb {
                    conn.query_drop("SET @mariadb_slave_capability = 4")
                        .await
                        .map_err(set("declaring GTID capability".into()))?;
                }
                BinlogStreamRequest::new(self.config.server_id)
                    .with_filename(&file_bytes)
                    .with_pos(c.offset)
            }
            (p, flavor) => {
                return Err(ReaderError::Preflight {
                    problem: format!("the stored position {p} does not fit a {flavor:?} source"),
                    hint: "the target holds a checkpoint from another kind of server; start over with a new target schema".into(),
                });
            }
        };
        info!(position = %from, server_id = self.config.server_id, "starting binlog stream");
        let mut stream =
            match tokio::time::timeout(CONNECT_TIMEOUT, conn.get_binlog_stream(request)).await {
                Ok(r) => r.map_err(|e| stream_error(e, &from))?,
                Err(_) => return Err(ReaderError::StreamLost { source: None }),
            };
        debug!("binlog stream requested");
        let mut decoder = EventDecoder::new(start_file, crc);
        let mut asm = Assembler::new(from.clone());
        asm.fragment_bytes = self.config.fragment_bytes;
        asm.fragment_rows = self.config.fragment_rows;
        let deadline = self.config.heartbeat * 3 + Duration::from_secs(2);
        let selected = self.config.selection.clone();
        let mut pending: Vec<SourceTx> = Vec::new();
        // The last event time recorded in the clock (it changes once a second at most).
        let mut clocked = (String::new(), 0u32);
        loop {
            let next = match tokio::time::timeout(deadline, stream.next()).await {
                Ok(n) => n,
                Err(_) => {
                    return Err(ReaderError::StreamLost { source: None });
                }
            };
            let event = match next {
                None => return Err(ReaderError::StreamLost { source: None }),
                Some(Err(e)) => return Err(stream_error(e, asm.position())),
                Some(Ok(ev)) => ev,
            };
            let header = event.header();
            let t = header.event_type_raw();
            tracing::trace!(
                event = super::event::event_type_name(t),
                log_pos = header.log_pos(),
                "binlog event"
            );
            let at_text = format!("{}:{}", decoder.file, header.log_pos());
            let at = || at_text.clone();
            // Events synthesised by the server (stream start, heartbeats) have no log
            // position or no time; the others date the file they come from.
            let heartbeat = t == EventType::HEARTBEAT_EVENT as u8 || t == 41;
            self.config.clock.set_at_end(heartbeat);
            if !heartbeat && header.log_pos() != 0 && header.timestamp() != 0 {
                if t == EventType::ROTATE_EVENT as u8 {
                    self.config.clock.closed(&decoder.file, header.timestamp());
                } else if clocked.1 != header.timestamp() || clocked.0 != decoder.file {
                    self.config.clock.saw(&decoder.file, header.timestamp());
                    clocked = (decoder.file.clone(), header.timestamp());
                }
            }
            if t == EventType::TABLE_MAP_EVENT as u8 {
                let tm = parse_table_map(event.data()).map_err(|e| ReaderError::Decode {
                    at: at(),
                    reason: e.0,
                })?;
                if selected(&tm.table) {
                    cache.ensure(&mut meta, &tm.table).await?;
                }
            }
            let decoded =
                decoder
                    .decode(&event, &cache, &selected)
                    .map_err(|e| ReaderError::Decode {
                        at: at(),
                        reason: e.0,
                    })?;
            let file = decoder.file.clone();
            let log_pos = u64::from(header.log_pos());
            // A selected table the catalogue no longer has (dropped or renamed since): the
            // table map's schema is the best knowledge, and later DDL applies to it.
            if let Decoded::TableMap(m) = &decoded
                && selected(&m.event.table)
                && cache.cached(&m.event.table).is_none()
            {
                cache.set(&m.event.table, m.schema.clone());
            }
            match decoded {
                Decoded::Query(q) if !is_control(&q.statement) => {
                    let change = classify(&q.statement, &q.database);
                    let touched: Vec<(TableId, TableDdl)> = change
                        .tables
                        .into_iter()
                        .filter(|(id, ddl)| {
                            selected(id) || matches!(ddl, TableDdl::Rename { to } if selected(to))
                        })
                        .collect();
                    if touched.is_empty() {
                        asm.push(
                            Decoded::Query(q),
                            header.timestamp(),
                            &file,
                            log_pos,
                            &mut pending,
                        )
                        .map_err(|e| ReaderError::Decode {
                            at: at(),
                            reason: e.0,
                        })?;
                    } else {
                        let mut tables = Vec::new();
                        for (id, ddl) in touched {
                            match ddl {
                                TableDdl::Drop => {
                                    cache.forget(&id);
                                    tables.push((id, None));
                                }
                                TableDdl::Rename { to } => {
                                    // The renamed table keeps its schema exactly.
                                    let before = cache.cached(&id);
                                    cache.forget(&id);
                                    tables.push((id, None));
                                    let after = match before {
                                        Some(b) => {
                                            let moved = Arc::new(TableSchema {
                                                id: to.clone(),
                                                ..(*b).clone()
                                            });
                                            cache.set(&to, moved.clone());
                                            Some(moved)
                                        }
                                        None => cache.refresh(&mut meta, &to).await?,
                                    };
                                    tables.push((to, after));
                                }
                                TableDdl::Truncate => {
                                    cache.ensure(&mut meta, &id).await?;
                                    let same = cache.cached(&id);
                                    tables.push((id, same));
                                }
                                TableDdl::Create => {
                                    let after = cache.refresh(&mut meta, &id).await?;
                                    tables.push((id, after));
                                }
                                TableDdl::Alter | TableDdl::CreateIndex | TableDdl::DropIndex => {
                                    if cache.cached(&id).is_none() {
                                        cache.ensure(&mut meta, &id).await?;
                                    }
                                    let after = cache
                                        .after_ddl(&mut meta, &id, &q.statement, &q.database)
                                        .await?;
                                    tables.push((id, after));
                                }
                            }
                        }
                        debug!(statement = %q.statement, "schema change");
                        let ddl = DdlChange {
                            database: q.database,
                            statement: q.statement,
                            tables,
                        };
                        asm.push_ddl(ddl, header.timestamp(), &file, log_pos, &mut pending)
                            .map_err(|e| ReaderError::Decode {
                                at: at(),
                                reason: e.0,
                            })?;
                    }
                }
                other => asm
                    .push(other, header.timestamp(), &file, log_pos, &mut pending)
                    .map_err(|e| ReaderError::Decode {
                        at: at(),
                        reason: e.0,
                    })?,
            }
            for tx in pending.drain(..) {
                let whole_end = tx.fragment.last.then(|| tx.position.clone());
                if out.send(tx).await.is_err() {
                    return Ok(());
                }
                if let Ok(mut p) = progress.lock() {
                    if let Some(pos) = whole_end {
                        self.config.clock.delivered(&pos);
                        p.position = pos;
                    }
                    p.mid_transaction = asm.mid_transaction_emitted();
                }
            }
        }
    }

    /// [`BinlogReader::run`] with reconnects (see the module documentation). Returns `Ok` when
    /// `out` is closed, or the first definite error.
    pub async fn run_resilient(
        &self,
        from: SourcePosition,
        out: &mpsc::Sender<SourceTx>,
        max_backoff: Duration,
    ) -> Result<()> {
        let progress = Mutex::new(Progress {
            position: from,
            mid_transaction: false,
        });
        let mut backoff = Duration::from_millis(200);
        loop {
            let start = progress
                .lock()
                .map(|p| p.position.clone())
                .unwrap_or_else(|p| p.into_inner().position.clone());
            match self.run(start.clone(), out, &progress).await {
                Ok(()) => return Ok(()),
                Err(e) if e.is_transient() => {
                    let (now, mid) = progress
                        .lock()
                        .map(|p| (p.position.clone(), p.mid_transaction))
                        .unwrap_or_else(|p| {
                            (p.get_ref().position.clone(), p.get_ref().mid_transaction)
                        });
                    if mid {
                        return Err(e);
                    }
                    if now != start {
                        backoff = Duration::from_millis(200);
                    }
                    warn!(error = %crate::error::chain(&e), position = %now, retry_in = ?backoff, "binlog stream interrupted; reconnecting");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(max_backoff);
                }
                Err(e) => return Err(e),
            }
        }
    }
}

fn is_control(statement: &str) -> bool {
    let s = statement.trim_start();
    let head: String = s.chars().take(20).collect::<String>().to_ascii_uppercase();
    [
        "BEGIN",
        "COMMIT",
        "ROLLBACK",
        "SAVEPOINT",
        "RELEASE SAVEPOINT",
        "XA ",
        "START TRANSACTION",
    ]
    .iter()
    .any(|k| head.starts_with(k))
}
