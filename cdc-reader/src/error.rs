//! The reader's errors, each classified as transient (retry with backoff, resume from the
//! checkpoint) or definite (stop, report, keep state), and each definite one carrying a hint that
//! tells the operator what to change.

use schemas::TableId;

/// Result type of this crate.
pub type Result<T, E = ReaderError> = std::result::Result<T, E>;

/// Everything that can go wrong while talking to the source.
#[derive(Debug, thiserror::Error)]
pub enum ReaderError {
    /// The source URL or an option in it is invalid.
    #[error("invalid source url {url}: {reason}")]
    InvalidUrl {
        /// The URL with its password redacted.
        url: String,
        /// What is wrong.
        reason: String,
    },
    /// The server could not be reached.
    #[error("cannot connect to MySQL at {addr}")]
    Connect {
        /// host:port.
        addr: String,
        /// The driver's error.
        #[source]
        source: mysql_async::Error,
    },
    /// The server refused the credentials.
    #[error("MySQL at {addr} refused user {user:?}: {message}")]
    AccessDenied {
        /// host:port.
        addr: String,
        /// The user name.
        user: String,
        /// The server's message.
        message: String,
    },
    /// A query failed.
    #[error("{what} failed")]
    Query {
        /// What was being done, e.g. `reading information_schema.COLUMNS for shop.orders`.
        what: String,
        /// The driver's error.
        #[source]
        source: mysql_async::Error,
    },
    /// A preflight check failed: the source is not configured for change data capture.
    #[error("{problem}")]
    Preflight {
        /// What is wrong, with the value found.
        problem: String,
        /// How to fix it.
        hint: String,
    },
    /// The resume position is no longer on the server.
    #[error("the resume position {position} is no longer available on the source: {message}")]
    PositionPurged {
        /// The position.
        position: String,
        /// The server's message.
        message: String,
    },
    /// A binlog event could not be decoded.
    #[error("cannot decode binlog event at {at}: {reason}")]
    Decode {
        /// Where (file:offset, or stream position).
        at: String,
        /// What is wrong.
        reason: String,
    },
    /// A table that my2pg cannot migrate as it is.
    #[error("table {table}: {reason}")]
    Table {
        /// The table.
        table: TableId,
        /// Why.
        reason: String,
        /// How to fix it.
        hint: String,
    },
    /// A table or database that the selection names does not exist.
    #[error("{what} not found on the source")]
    NotFound {
        /// What was looked for.
        what: String,
    },
    /// A table's columns or the table itself changed while a chunk of it was read (a column
    /// dropped or renamed, the table dropped): retried, and the retry reads the new schema.
    #[error("{table} changed while it was copied (the copy resumes with its new definition)")]
    ChangedDuringCopy {
        /// The table.
        table: String,
        /// The server's error.
        #[source]
        source: mysql_async::Error,
    },
    /// The binlog stream ended or the connection dropped.
    #[error("binlog connection lost")]
    StreamLost {
        /// The driver's error, when there is one.
        #[source]
        source: Option<mysql_async::Error>,
    },
    /// Reading a local binlog file failed.
    #[error("cannot read {path}")]
    Io {
        /// The file.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// MySQL error codes that mean "try again".
const TRANSIENT_SERVER_CODES: &[u16] = &[
    1040, // ER_CON_COUNT_ERROR: too many connections
    1053, // ER_SERVER_SHUTDOWN
    1205, // ER_LOCK_WAIT_TIMEOUT
    1213, // ER_LOCK_DEADLOCK
    1927, // ER_CONNECTION_KILLED (MariaDB)
    2006, // CR_SERVER_GONE_ERROR
    2013, // CR_SERVER_LOST
    3024, // ER_QUERY_TIMEOUT
];

/// Whether a driver error is worth retrying (connection-level trouble, deadlocks, timeouts).
pub fn is_transient_driver_error(e: &mysql_async::Error) -> bool {
    match e {
        mysql_async::Error::Io(_) => true,
        mysql_async::Error::Driver(d) => matches!(
            d,
            mysql_async::DriverError::ConnectionClosed | mysql_async::DriverError::PoolDisconnected
        ),
        mysql_async::Error::Server(s) => TRANSIENT_SERVER_CODES.contains(&s.code),
        _ => false,
    }
}

impl ReaderError {
    /// Whether retrying (after a backoff, from the last checkpoint) may succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            ReaderError::Connect { source, .. } | ReaderError::Query { source, .. } => {
                is_transient_driver_error(source)
            }
            ReaderError::StreamLost { .. } | ReaderError::ChangedDuringCopy { .. } => true,
            _ => false,
        }
    }

    /// What the operator should do, when the error is definite.
    pub fn hint(&self) -> Option<String> {
        match self {
            ReaderError::InvalidUrl { .. } => Some(
                "write the source as mysql://USER:PASSWORD@HOST:PORT, e.g. mysql://repl:secret@db1:3306"
                    .into(),
            ),
            ReaderError::Connect { addr, .. } => Some(format!(
                "check that MySQL listens on {addr} and that this machine may connect to it"
            )),
            ReaderError::AccessDenied { user, .. } => Some(format!(
                "check the password of {user:?}, or create the user: CREATE USER ... ; \
                 GRANT SELECT, REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO ..."
            )),
            ReaderError::Preflight { hint, .. } | ReaderError::Table { hint, .. } => Some(hint.clone()),
            ReaderError::PositionPurged { .. } => Some(
                "the binlog holding the checkpoint was purged; raise binlog retention \
                 (expire_logs_days / binlog_expire_logs_seconds) and take a new snapshot: \
                 my2pg sync --resnapshot all"
                    .into(),
            ),
            ReaderError::NotFound { .. } => Some(
                "check --databases / --include, and that the source user may see the tables (SELECT privilege)"
                    .into(),
            ),
            _ => None,
        }
    }
}

/// Renders an error and its causes on one line (for logs).
pub use schemas::error_chain as chain;
