//! The sink's errors, classified as transient (retry with backoff from the checkpoint) or
//! definite (stop with the position, table, key and reason; the checkpoint stays before the
//! failed transaction).

/// Result type of this crate.
pub type Result<T, E = SinkError> = std::result::Result<T, E>;

/// Everything that can go wrong while writing to PostgreSQL.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// The target URL is invalid.
    #[error("invalid target url {url}: {reason}")]
    InvalidUrl {
        /// The URL with its password redacted.
        url: String,
        /// What is wrong.
        reason: String,
    },
    /// The server could not be reached.
    #[error("cannot connect to PostgreSQL at {addr}")]
    Connect {
        /// host:port.
        addr: String,
        /// The driver's error.
        #[source]
        source: tokio_postgres::Error,
    },
    /// The server refused the credentials.
    #[error("PostgreSQL at {addr} refused user {user:?}: {message}")]
    AccessDenied {
        /// host:port.
        addr: String,
        /// The user.
        user: String,
        /// The server's message.
        message: String,
    },
    /// The target database does not exist.
    #[error("database {database:?} does not exist on PostgreSQL at {addr}")]
    NoDatabase {
        /// host:port.
        addr: String,
        /// The database name.
        database: String,
    },
    /// TLS could not be set up.
    #[error("TLS setup for PostgreSQL failed: {reason}")]
    Tls {
        /// What is wrong.
        reason: String,
    },
    /// A value could not be encoded into, or decoded from, PostgreSQL's binary format.
    #[error("binary value for {table}")]
    Encode {
        /// The target table.
        table: String,
        /// What is wrong.
        #[source]
        source: schemas::pgbinary::BinaryError,
    },
    /// A source table cannot be mapped as configured.
    #[error("cannot map the table")]
    Mapping {
        /// Why.
        #[source]
        source: schemas::mapping::MappingError,
    },
    /// A schema history entry could not be written.
    #[error("schema history of {table}: {reason}")]
    History {
        /// `db.table`.
        table: String,
        /// What is wrong.
        reason: String,
    },
    /// A source value the target cannot hold under the mapping's policies.
    #[error(transparent)]
    Convert {
        /// Names the table, column, key and value.
        #[from]
        source: schemas::ConvertError,
    },
    /// A table without a primary key or NOT NULL unique key, and the policy says stop.
    #[error(
        "table {table} has neither a primary key nor a NOT NULL unique key, so its updates and deletes cannot be matched to one row"
    )]
    NoKey {
        /// The source table.
        table: schemas::TableId,
    },
    /// A schema change the policy says to stop at.
    #[error("schema change {statement:?} stops the pipeline: {reason}")]
    Ddl {
        /// The source statement.
        statement: String,
        /// Why.
        reason: String,
        /// What to do.
        hint: String,
    },
    /// A change the target rejected for a reason in the data.
    #[error(
        "the target rejected a change of {table} (key {key}) at source position {position}: {reason}"
    )]
    Rejected {
        /// Source position of the transaction.
        position: String,
        /// Source table.
        table: String,
        /// Key of the row.
        key: String,
        /// The target's reason.
        reason: String,
        /// What to do, when known.
        hint: Option<String>,
    },
    /// A COPY wrote another number of rows than it was sent.
    #[error("COPY into {table} wrote {written} rows where {sent} were sent")]
    CopyCount {
        /// The target table.
        table: String,
        /// Rows sent.
        sent: u64,
        /// Rows the server reported.
        written: u64,
    },
    /// The state kept in schema `my2pg` is not what this version expects.
    #[error("my2pg state: {reason}")]
    State {
        /// What is wrong.
        reason: String,
    },
    /// A change that has no envelope form.
    #[error("cannot publish a change of {table}")]
    Envelope {
        /// The source table.
        table: String,
        /// Why.
        #[source]
        source: schemas::envelope::EnvelopeError,
    },
    /// A Kafka client call failed.
    #[error("kafka: {what} failed")]
    Kafka {
        /// What was being done.
        what: String,
        /// The client's error.
        #[source]
        source: rdkafka::error::KafkaError,
    },
    /// A message that is not a change event my2pg can apply (see `crate::kafka`).
    #[error("kafka message {topic}[{partition}]@{offset} cannot be applied: {reason}")]
    Poison {
        /// Topic.
        topic: String,
        /// Partition.
        partition: i32,
        /// Offset.
        offset: i64,
        /// What is wrong with it.
        reason: String,
    },
    /// The transactional mode's topic breaks its own structure: a change of another source
    /// transaction before the end marker of the open one, or an end marker whose event count
    /// does not match the changes read (see `crate::kafka::transactions`).
    #[error(
        "kafka message {topic}[{partition}]@{offset} breaks the transaction sequence: {reason}"
    )]
    TxSequence {
        /// Topic.
        topic: String,
        /// Partition.
        partition: i32,
        /// Offset.
        offset: i64,
        /// What is wrong.
        reason: String,
    },
    /// The transactional mode's topic exists with more than one partition.
    #[error(
        "kafka topic {topic} has {partitions} partitions; the transactional mode needs exactly one to keep source order"
    )]
    TopicPartitions {
        /// Topic.
        topic: String,
        /// Its partitions.
        partitions: usize,
    },
    /// Another worker committed offsets of a partition this worker was applying: the batch
    /// was rolled back, and the partition is no longer this worker's.
    #[error(
        "kafka partition {topic}[{partition}] was applied by another worker (stored offset {stored:?}, expected {expected:?})"
    )]
    Fenced {
        /// Topic.
        topic: String,
        /// Partition.
        partition: i32,
        /// The offset found.
        stored: Option<i64>,
        /// The offset this worker started from.
        expected: Option<i64>,
    },
    /// A statement failed.
    #[error("{what} failed")]
    Query {
        /// What was being done.
        what: String,
        /// The driver's error.
        #[source]
        source: tokio_postgres::Error,
    },
}

/// SQLSTATEs after which retrying the same work may succeed.
const TRANSIENT_SQLSTATES: &[&str] = &[
    "40001", // serialization_failure
    "40P01", // deadlock_detected
    "53300", // too_many_connections
    "55P03", // lock_not_available
    "57P01", // admin_shutdown
    "57P02", // crash_shutdown
    "57P03", // cannot_connect_now
    "58000", // system_error
];

/// Whether a driver error is connection trouble or a retryable conflict.
pub fn is_transient_pg_error(e: &tokio_postgres::Error) -> bool {
    if e.is_closed() {
        return true;
    }
    match e.code() {
        Some(code) => {
            let c = code.code();
            c.starts_with("08") || TRANSIENT_SQLSTATES.contains(&c)
        }
        // No SQLSTATE: an I/O error or a closed connection.
        None => e.as_db_error().is_none(),
    }
}

impl SinkError {
    /// Whether retrying (after a backoff, from the checkpoint) may succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            SinkError::Connect { source, .. } | SinkError::Query { source, .. } => {
                is_transient_pg_error(source)
            }
            SinkError::Kafka { source, .. } => crate::kafka::is_transient(source),
            SinkError::Fenced { .. } => true,
            _ => false,
        }
    }

    /// What the operator should do, when the error is definite.
    pub fn hint(&self) -> Option<String> {
        match self {
            SinkError::InvalidUrl { .. } => Some(
                "write the target as postgres://USER:PASSWORD@HOST:PORT/DATABASE, e.g. postgres://my2pg:secret@pg1:5432/shop"
                    .into(),
            ),
            SinkError::Connect { addr, .. } => Some(format!(
                "check that PostgreSQL listens on {addr} and that pg_hba.conf lets this machine in"
            )),
            SinkError::AccessDenied { user, .. } => {
                Some(format!("check the password of {user:?} and the pg_hba.conf entry for it"))
            }
            SinkError::NoDatabase { database, .. } => Some(format!("create it first: CREATE DATABASE \"{database}\"")),
            SinkError::Tls { .. } => Some("check sslmode and sslrootcert in the target url".into()),
            SinkError::Encode { .. } => Some(
                "this is a my2pg encoding bug or a target column of another type than the mapping's; compare with `my2pg schema --target`".into(),
            ),
            SinkError::Mapping { source } => Some(source.hint()),
            SinkError::History { .. } => None,
            SinkError::Convert { source } => Some(source.hint()),
            SinkError::NoKey { table } => Some(format!(
                "add a primary key to {table} on the source, exclude it with --exclude '{table}', or set \
                 [sync] tables_without_key = \"match_full_row\""
            )),
            SinkError::Ddl { hint, .. } => Some(hint.clone()),
            SinkError::Rejected { hint, .. } => Some(hint.clone().unwrap_or_else(|| {
                "fix the row on the source or the target, or set [sync] on_error = \"dead_letter\" to record \
                 such changes in my2pg.dead_letter and go on"
                    .into()
            })),
            SinkError::CopyCount { table, .. } => Some(format!(
                "the chunk was rolled back and is copied again on the next start; if it recurs, a \
                 trigger or rule on {table} is dropping or adding rows: disable it during the copy"
            )),
            SinkError::State { .. } => Some(
                "the my2pg schema on the target was changed by hand or by another version; \
                 inspect it, or drop schema my2pg and start over with a new snapshot"
                    .into(),
            ),
            SinkError::Query { .. } => None,
            SinkError::Envelope { .. } => Some(
                "set a [[transform]] cast or mask on that column, or exclude the table".into(),
            ),
            SinkError::Kafka { source, .. } if crate::kafka::is_unsupported(source) => Some(
                "the broker does not implement a Kafka API my2pg needs; sync --via kafka publishes with \
                 Kafka transactions (KIP-98: InitProducerId, AddPartitionsToTxn, EndTxn): use a broker \
                 that has them (Apache Kafka 0.11 or later, Redpanda, …; tansu 0.6 lacks EndTxn)"
                    .into(),
            ),
            SinkError::Kafka { .. } => Some(
                "check [kafka] brokers and that the brokers are up and reachable from this machine".into(),
            ),
            SinkError::Poison { topic, .. } => Some(format!(
                "inspect the message (kcat -C -t {topic} -p PARTITION -o OFFSET -c 1), fix its producer, \
                 or set [kafka] on_poison = \"dead_letter\" to record such messages in my2pg.dead_letter and go on"
            )),
            SinkError::TxSequence { topic, .. } => Some(format!(
                "only `my2pg sync --via kafka` with [kafka] mode = \"transactional\" may write to {topic}; \
                 stop the other producer, then delete the topic and my2pg.kafka_offsets rows of the group and publish again"
            )),
            SinkError::TopicPartitions { topic, .. } => Some(format!(
                "delete {topic} (kafka-topics --delete --topic {topic}) and let my2pg create it with one partition, \
                 or set another [kafka] topic_prefix"
            )),
            SinkError::Fenced { .. } => None,
        }
    }
}

/// Renders an error and its causes on one line (PostgreSQL's detail included).
pub use schemas::error_chain as chain;
