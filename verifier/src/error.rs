//! The verifier's errors. A problem with one table (missing on one side, a changed column
//! type, no key) is not an error: it is a [`crate::report::TableStatus::Error`] entry in the
//! report, so the other tables are still compared. These are the failures that stop a table's
//! comparison midway or the whole run (unreachable server, refused credentials).

use schemas::TableId;

/// Why a comparison could not run.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// Reading the source failed.
    #[error(transparent)]
    Source(#[from] cdc_reader::ReaderError),
    /// Reading the target failed.
    #[error(transparent)]
    Target(#[from] sink::SinkError),
    /// A query on the target failed.
    #[error("{what}")]
    TargetQuery {
        /// What was being done.
        what: String,
        /// The driver's error.
        #[source]
        source: tokio_postgres::Error,
    },
    /// A target value that does not decode as the mapped type.
    #[error("{table}: {source}")]
    Decode {
        /// The target table.
        table: String,
        /// The decoding error.
        #[source]
        source: schemas::pgbinary::BinaryError,
    },
    /// A source row that the mapping cannot convert (sync would have stopped or dead-lettered
    /// it too).
    #[error("{source}")]
    Convert {
        /// The conversion error.
        #[source]
        source: schemas::ConvertError,
    },
    /// The comparison stopped (a reader task ended unexpectedly).
    #[error("comparing {table}: {reason}")]
    Aborted {
        /// The table.
        table: TableId,
        /// What happened.
        reason: String,
    },
}

impl VerifyError {
    /// What the operator should do, when known.
    pub fn hint(&self) -> Option<String> {
        match self {
            VerifyError::Source(e) => e.hint(),
            VerifyError::Target(e) => e.hint(),
            VerifyError::Convert { source } => Some(source.hint()),
            VerifyError::Decode { .. } => Some(
                "the target column holds values of another type than the mapping gives: \
                 compare `my2pg schema --target …` with the target table"
                    .into(),
            ),
            VerifyError::TargetQuery { .. } | VerifyError::Aborted { .. } => None,
        }
    }
}

/// Result with [`VerifyError`].
pub type Result<T, E = VerifyError> = std::result::Result<T, E>;
