//! The label values the pipeline can set: closed enums, so every series' cardinality is fixed
//! by the code (and known series can be created at zero before the first event).

/// Where a table's initial copy stands, as `my2pg_snapshot_state{table,state}` (1 for the
/// current state, 0 for the others).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SnapshotState {
    /// Selected, not copied yet.
    Pending,
    /// Chunks are being copied.
    Copying,
    /// Copied; the table follows the binlog.
    Done,
    /// The copy stopped with a definite error.
    Failed,
}

impl SnapshotState {
    /// Every state, in label order.
    pub const ALL: [SnapshotState; 4] = [
        SnapshotState::Pending,
        SnapshotState::Copying,
        SnapshotState::Done,
        SnapshotState::Failed,
    ];

    /// The `state` label.
    pub fn as_str(self) -> &'static str {
        match self {
            SnapshotState::Pending => "pending",
            SnapshotState::Copying => "copying",
            SnapshotState::Done => "done",
            SnapshotState::Failed => "failed",
        }
    }
}

/// What failed, as the `kind` label of `my2pg_errors_total`. Transient errors are retried
/// (the pipeline goes on); definite ones stop it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// Source connection lost, server restarting: retried.
    SourceTransient,
    /// Source misconfigured, binlog purged, undecodable event: the pipeline stops.
    SourceDefinite,
    /// Target connection lost, deadlock, serialization failure: retried.
    TargetTransient,
    /// A value the target cannot hold, a constraint violation: the pipeline stops.
    TargetDefinite,
    /// A transform stage rejected a row.
    Transform,
    /// Writing a heartbeat row to the source failed (lag then grows until it works again).
    Heartbeat,
    /// The background verifier failed (not a difference: an error while comparing).
    Verify,
    /// A change the target rejected was recorded in `my2pg.dead_letter` and skipped
    /// (`[sync] on_error = "dead_letter"`).
    DeadLetter,
}

impl ErrorKind {
    /// Every kind, in label order.
    pub const ALL: [ErrorKind; 8] = [
        ErrorKind::SourceTransient,
        ErrorKind::SourceDefinite,
        ErrorKind::TargetTransient,
        ErrorKind::TargetDefinite,
        ErrorKind::Transform,
        ErrorKind::Heartbeat,
        ErrorKind::Verify,
        ErrorKind::DeadLetter,
    ];

    /// The `kind` label.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::SourceTransient => "source_transient",
            ErrorKind::SourceDefinite => "source_definite",
            ErrorKind::TargetTransient => "target_transient",
            ErrorKind::TargetDefinite => "target_definite",
            ErrorKind::Transform => "transform",
            ErrorKind::Heartbeat => "heartbeat",
            ErrorKind::Verify => "verify",
            ErrorKind::DeadLetter => "dead_letter",
        }
    }
}

/// The outcome of one alert notification for one receiver
/// (`my2pg_alert_deliveries_total{receiver,outcome}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeliveryOutcome {
    /// The receiver accepted it (possibly after retries).
    Delivered,
    /// Retries ran out or the receiver refused it for good (4xx other than 429).
    Failed,
    /// The receiver's queue was full and this, its oldest entry, was dropped.
    Dropped,
}

impl DeliveryOutcome {
    /// Every outcome, in label order.
    pub const ALL: [DeliveryOutcome; 3] = [
        DeliveryOutcome::Delivered,
        DeliveryOutcome::Failed,
        DeliveryOutcome::Dropped,
    ];

    /// The `outcome` label.
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryOutcome::Delivered => "delivered",
            DeliveryOutcome::Failed => "failed",
            DeliveryOutcome::Dropped => "dropped",
        }
    }
}
