//! The pipeline's phase, shared between the sync pipeline (which sets it), `/readyz` (which
//! reports it) and the alert engine (which pages on a definite stop).
//!
//! **Ready means safe to rely on the replica.** [`readiness`] says ready only when the pipeline
//! streams *and* the lag is known *and* it is at most the configured maximum. Every other
//! state is not ready, with the reason: starting, snapshot in progress, lag not measured yet,
//! lag too high, stopped with an error. An unknown lag is never taken for zero: right after a
//! restart the replica may be hours behind, and readiness must not flip to 200 before the first
//! heartbeat proves otherwise.
//!
//! [`Health`] is a cloneable handle on one small mutex; phase changes are rare (start,
//! snapshot done, stop, restart), so the lock is never on a per-row path.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use serde::Serialize;

use crate::metrics::Metrics;

/// Where the pipeline stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Phase {
    /// Connecting, checking, loading the checkpoint.
    Starting,
    /// Copying tables (the stream may already be buffering).
    Snapshotting,
    /// Following the binlog; the replica is as fresh as the lag says.
    Streaming,
    /// Reconnecting after a transient error (connection lost, server restarting).
    Retrying(String),
    /// Stopped by a definite error: state kept, an operator must act.
    Stopped(String),
}

impl Phase {
    /// Short name for logs and JSON.
    pub fn name(&self) -> &'static str {
        match self {
            Phase::Starting => "starting",
            Phase::Snapshotting => "snapshotting",
            Phase::Streaming => "streaming",
            Phase::Retrying(_) => "retrying",
            Phase::Stopped(_) => "stopped",
        }
    }
}

/// The shared phase handle. Clone it into every task that changes or reads the phase.
#[derive(Debug, Clone)]
pub struct Health {
    phase: Arc<Mutex<Phase>>,
}

impl Default for Health {
    fn default() -> Self {
        Health::new()
    }
}

impl Health {
    /// A pipeline that is starting.
    pub fn new() -> Health {
        Health {
            phase: Arc::new(Mutex::new(Phase::Starting)),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Phase> {
        self.phase.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Sets the phase. Use [`Health::stopped`] for a definite error so the text is rendered
    /// with its causes.
    pub fn set(&self, phase: Phase) {
        *self.lock() = phase;
    }

    /// The pipeline stopped with a definite error: records the error with its whole cause
    /// chain (`what failed: cause: cause`), which `/readyz` and the "stopped" alert show.
    pub fn stopped(&self, error: &(dyn std::error::Error + 'static)) {
        self.set(Phase::Stopped(schemas::error_chain(error)));
    }

    /// The current phase.
    pub fn phase(&self) -> Phase {
        self.lock().clone()
    }

    /// The error text when stopped by a definite error.
    pub fn stopped_error(&self) -> Option<String> {
        match &*self.lock() {
            Phase::Stopped(e) => Some(e.clone()),
            _ => None,
        }
    }
}

/// The answer of `/readyz`, also its JSON body.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Readiness {
    /// Whether the replica can be relied on.
    pub ready: bool,
    /// The pipeline's phase (`starting`, `snapshotting`, `streaming`, `retrying`, `stopped`).
    pub phase: &'static str,
    /// The lag in seconds, `null` while unknown.
    pub lag_seconds: Option<f64>,
    /// The maximum lag for readiness.
    pub max_lag_seconds: f64,
    /// Why not ready (absent when ready).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Whether the replica is ready: streaming with a known lag of at most `max_lag`.
pub fn readiness(health: &Health, metrics: &Metrics, max_lag: Duration) -> Readiness {
    readiness_of(&health.phase(), metrics.lag_seconds(), max_lag)
}

/// [`readiness`] from explicit values.
pub fn readiness_of(phase: &Phase, lag_seconds: Option<f64>, max_lag: Duration) -> Readiness {
    let max = max_lag.as_secs_f64();
    let reason = match (phase, lag_seconds) {
        (Phase::Streaming, Some(lag)) if lag <= max => None,
        (Phase::Streaming, Some(lag)) => Some(format!("lag {lag:.1} s is above {max:.1} s")),
        (Phase::Streaming, None) => Some("lag not measured yet (no heartbeat applied)".into()),
        (Phase::Starting, _) => Some("starting".into()),
        (Phase::Snapshotting, _) => Some("initial snapshot in progress".into()),
        (Phase::Retrying(e), _) => Some(format!("reconnecting after: {e}")),
        (Phase::Stopped(e), _) => Some(format!("stopped: {e}")),
    };
    Readiness {
        ready: reason.is_none(),
        phase: phase.name(),
        lag_seconds,
        max_lag_seconds: max,
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_only_when_streaming_with_a_known_small_lag() {
        let max = Duration::from_secs(30);
        assert!(readiness_of(&Phase::Streaming, Some(3.0), max).ready);
        assert!(readiness_of(&Phase::Streaming, Some(30.0), max).ready);
        let r = readiness_of(&Phase::Streaming, Some(31.0), max);
        assert!(!r.ready);
        assert_eq!(r.reason.as_deref(), Some("lag 31.0 s is above 30.0 s"));
        assert!(!readiness_of(&Phase::Streaming, None, max).ready);
        assert!(!readiness_of(&Phase::Snapshotting, Some(0.0), max).ready);
        let r = readiness_of(&Phase::Stopped("boom".into()), Some(0.0), max);
        assert_eq!(r.reason.as_deref(), Some("stopped: boom"));
    }

    #[test]
    fn stopped_keeps_the_cause_chain() {
        #[derive(Debug, thiserror::Error)]
        #[error("applying shop.orders failed")]
        struct Outer(#[source] std::io::Error);
        let h = Health::new();
        h.stopped(&Outer(std::io::Error::other("disk full")));
        assert_eq!(
            h.stopped_error().as_deref(),
            Some("applying shop.orders failed: disk full")
        );
    }
}
