//! On-call alerts: rules evaluated on a timer against the pipeline's signals, notifications
//! delivered to PagerDuty, Slack and generic webhooks without ever slowing replication.
//!
//! ```text
//! Metrics + Health ──Signals::observe──▶ Evaluator ──AlertEvent──▶ Dispatcher ──▶ queue per receiver ──▶ worker ──HTTP──▶
//!   (pipeline updates)   every N s        (rules.rs)                (delivery.rs)   bounded, drop-oldest   retries   (receivers.rs)
//! ```
//!
//! - [`rules`]: one state machine per rule with `for`, a clear band, `clear_for` and a repeat
//!   interval, so an episode produces one trigger, its repeats and one resolve — never one page
//!   per evaluation, never a storm when a value hovers at the threshold.
//! - [`receivers`]: the documented payloads of PagerDuty Events API v2, Slack incoming webhooks
//!   and my2pg's own webhook JSON, and the HTTP call with its retry classification.
//! - [`delivery`]: a bounded queue and a worker per receiver. Enqueueing is a lock, a push and
//!   a wake-up: it never waits for the network, so a dead or slow receiver cannot delay the
//!   evaluator or the pipeline. A full queue drops its *oldest* notification (counted): the
//!   newest says what is true now. Each receiver's worker sends in order, so a resolve never
//!   overtakes its trigger.
//!
//! **Entry points for the pipeline.** Build [`Alerting::start`] with the config, the shared
//! [`Metrics`] and [`Health`]; it evaluates [`Signals::observe`] every
//! `alerts.evaluate_every_secs`. On the way out call [`Alerting::shutdown`]: it evaluates once
//! more (so a definite error that just stopped the pipeline is paged), then gives the queues a
//! bounded time to drain.
//!
//! **Across restarts.** Alert state lives in memory. Dedup keys are stable
//! (`my2pg/<pipeline>/<rule>`), so a restarted my2pg that finds the condition still true
//! re-triggers the *same* PagerDuty alert; one that finds it cleared does not send a resolve
//! for the previous process's episode (it never saw it), so that incident is resolved by hand.

pub mod config;
pub mod delivery;
pub mod receivers;
pub mod rules;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};

pub use config::{AlertsConfig, ReceiverConfig, ReceiverKind, RuleConfig, RuleKind, Severity};
pub use delivery::{Dispatcher, RetryPolicy};
pub use receivers::{Receiver, SendError};
pub use rules::{Evaluator, Rule, Signals};

use crate::health::Health;
use crate::metrics::Metrics;

/// Whether a notification opens (or repeats) an alert or closes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// The condition holds: page (PagerDuty `trigger`).
    Trigger,
    /// The condition cleared: close (PagerDuty `resolve`).
    Resolve,
}

impl Action {
    /// PagerDuty's `event_action`.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Trigger => "trigger",
            Action::Resolve => "resolve",
        }
    }
}

/// One notification, rendered by each receiver into its own format.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertEvent {
    /// Trigger or resolve.
    pub action: Action,
    /// Rule name.
    pub rule: String,
    /// Rule kind (`lag`, `drift`, `stopped`, `binlog_runway`, `snapshot_stalled`; `test`).
    pub kind: &'static str,
    /// Severity.
    pub severity: Severity,
    /// `alerts.pipeline`.
    pub pipeline: String,
    /// `alerts.source` (PagerDuty `payload.source`).
    pub source: String,
    /// Stable key shared by a trigger, its repeats and its resolve.
    pub dedup_key: String,
    /// One line for people (at most 1024 characters).
    pub summary: String,
    /// The measured value (seconds, or rows for drift), absent for `stopped`.
    pub value: Option<f64>,
    /// The rule's threshold, absent for `stopped`.
    pub threshold: Option<f64>,
    /// When the episode started firing.
    pub firing_since: SystemTime,
    /// When this notification was made.
    pub at: SystemTime,
    /// 1 for the first trigger of an episode, 2… for repeats; for a resolve, how many
    /// triggers the episode sent.
    pub notification: u32,
    /// The error text of a `stopped` alert.
    pub error: Option<String>,
    /// Receiver names; empty = every receiver.
    pub receivers: Vec<String>,
    /// Sent by `my2pg alert test`.
    pub test: bool,
}

impl AlertEvent {
    /// The notification `my2pg alert test` sends: a `trigger` (or, with `action = Resolve`,
    /// its resolve) of the rule `test`, severity info.
    pub fn test(cfg: &AlertsConfig, action: Action, at: SystemTime) -> AlertEvent {
        let summary = match action {
            Action::Trigger => format!(
                "[{}] test: this is a test alert from `my2pg alert test`; no action needed",
                cfg.pipeline
            ),
            Action::Resolve => format!("[{}] test: test alert resolved", cfg.pipeline),
        };
        AlertEvent {
            action,
            rule: "test".to_owned(),
            kind: "test",
            severity: Severity::Info,
            pipeline: cfg.pipeline.clone(),
            source: cfg.source_name(),
            dedup_key: rules::dedup_key(&cfg.pipeline, "test"),
            summary,
            value: None,
            threshold: None,
            firing_since: at,
            at,
            notification: 1,
            error: None,
            receivers: Vec::new(),
            test: true,
        }
    }

    /// Whether `receiver` should get this notification.
    pub fn is_for(&self, receiver: &str) -> bool {
        self.receivers.is_empty() || self.receivers.iter().any(|r| r == receiver)
    }
}

/// Alert configuration or start-up failed.
#[derive(Debug, thiserror::Error)]
pub enum AlertError {
    /// A receiver's HTTP client could not be built (TLS roots, proxy settings).
    #[error("cannot set up the HTTP client for alert receivers")]
    Client {
        /// The library's error (its text carries no URL).
        #[source]
        source: reqwest::Error,
    },
    /// A receiver's configuration is invalid (see `AlertsConfig::validate`).
    #[error("invalid alert receiver configuration")]
    Config {
        /// The problem and its key.
        #[source]
        source: crate::config::ConfigError,
    },
}

/// Where the engine puts notifications. [`Dispatcher`] is the real one; tests collect.
/// `enqueue` must return at once: it is called from the evaluation loop.
pub trait AlertSink: Send + Sync {
    /// Hands over one notification without waiting.
    fn enqueue(&self, event: AlertEvent);
}

impl AlertSink for Dispatcher {
    fn enqueue(&self, event: AlertEvent) {
        Dispatcher::enqueue(self, event);
    }
}

/// The evaluation loop: every `every`, read the signals, advance the rules, enqueue the
/// notifications.
#[derive(Debug)]
pub struct AlertEngine {
    evaluator: Evaluator,
    every: Duration,
}

/// A running [`AlertEngine`].
#[derive(Debug)]
pub struct EngineHandle {
    stop: oneshot::Sender<()>,
    task: JoinHandle<Evaluator>,
}

impl AlertEngine {
    /// An engine evaluating `evaluator`'s rules every `every`.
    pub fn new(evaluator: Evaluator, every: Duration) -> AlertEngine {
        AlertEngine { evaluator, every }
    }

    /// Spawns the loop. `signals` is called once per evaluation and must be quick (it reads
    /// shared state; [`Signals::observe`] takes a few uncontended locks).
    pub fn spawn<F>(self, sink: Arc<dyn AlertSink>, mut signals: F) -> EngineHandle
    where
        F: FnMut() -> Signals + Send + 'static,
    {
        let (stop, mut stopped) = oneshot::channel::<()>();
        let AlertEngine {
            mut evaluator,
            every,
        } = self;
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = &mut stopped => break,
                }
                evaluate_into(&mut evaluator, &mut signals, sink.as_ref());
            }
            // One last look: a pipeline that stopped just now must still page.
            evaluate_into(&mut evaluator, &mut signals, sink.as_ref());
            evaluator
        });
        EngineHandle { stop, task }
    }
}

fn evaluate_into<F: FnMut() -> Signals>(ev: &mut Evaluator, signals: &mut F, sink: &dyn AlertSink) {
    let s = signals();
    for event in ev.evaluate(&s, Instant::now(), SystemTime::now()) {
        match event.action {
            Action::Trigger => tracing::warn!(
                rule = %event.rule, dedup_key = %event.dedup_key, notification = event.notification,
                summary = %event.summary, "alert firing"
            ),
            Action::Resolve => tracing::info!(
                rule = %event.rule, dedup_key = %event.dedup_key, summary = %event.summary,
                "alert resolved"
            ),
        }
        sink.enqueue(event);
    }
}

impl EngineHandle {
    /// Evaluates one last time, stops the loop and returns the evaluator (its rule states).
    pub async fn stop(self) -> Option<Evaluator> {
        let _ = self.stop.send(());
        self.task.await.ok()
    }
}

/// The whole alerting side of `my2pg sync`: receivers, dispatcher and engine.
#[derive(Debug)]
pub struct Alerting {
    engine: EngineHandle,
    dispatcher: Arc<Dispatcher>,
}

impl Alerting {
    /// Starts alerting for the shared pipeline state; `Ok(None)` when no receiver is
    /// configured (nothing to send to). `cfg` must have passed [`AlertsConfig::validate`].
    pub fn start(
        cfg: &AlertsConfig,
        metrics: &Metrics,
        health: &Health,
    ) -> Result<Option<Alerting>, AlertError> {
        if cfg.receivers.is_empty() {
            return Ok(None);
        }
        let receivers = receivers::build_all(cfg)?;
        let dispatcher = Arc::new(Dispatcher::start(
            receivers,
            RetryPolicy::default(),
            delivery::DEFAULT_QUEUE_CAPACITY,
            metrics.clone(),
        ));
        let evaluator = Evaluator::new(&cfg.pipeline, &cfg.source_name(), cfg.resolved_rules())
            .with_metrics(metrics.clone());
        let (m, h) = (metrics.clone(), health.clone());
        let sink: Arc<dyn AlertSink> = dispatcher.clone();
        let engine = AlertEngine::new(evaluator, Duration::from_secs(cfg.evaluate_every_secs))
            .spawn(sink, move || Signals::observe(&m, &h));
        tracing::info!(
            pipeline = %cfg.pipeline,
            rules = cfg.rule_configs().len(),
            receivers = cfg.receivers.len(),
            "alerting started"
        );
        Ok(Some(Alerting { engine, dispatcher }))
    }

    /// Evaluates once more, stops evaluating, and waits at most `drain` for queued
    /// notifications to be delivered (what is left is logged and counted as failed).
    pub async fn shutdown(self, drain: Duration) {
        let _ = self.engine.stop().await;
        self.dispatcher.shutdown(drain).await;
    }
}

/// `1 h 5 min`, `42 s`, `42.5 s`: durations for people (tenths of a second below two
/// minutes, where they can matter for lag).
pub fn format_duration(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..120 if d.subsec_millis() >= 50 => format!("{:.1} s", d.as_secs_f64()),
        0..120 => format!("{s} s"),
        120..7200 => match s % 60 {
            0 => format!("{} min", s / 60),
            r => format!("{} min {r} s", s / 60),
        },
        _ => match (s % 3600) / 60 {
            0 => format!("{} h", s / 3600),
            m => format!("{} h {m} min", s / 3600),
        },
    }
}

/// RFC 3339 UTC with milliseconds (`2026-01-31T23:59:59.123Z`), the timestamp format
/// PagerDuty and the webhook payload use.
pub fn rfc3339(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm, proleptic Gregorian).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60,
        d.subsec_millis()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_matches_known_instants() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let t = UNIX_EPOCH + Duration::from_millis(951_782_400_123); // leap day 2000
        assert_eq!(rfc3339(t), "2000-02-29T00:00:00.123Z");
        let t = UNIX_EPOCH + Duration::from_secs(1_767_225_599); // last second of 2025
        assert_eq!(rfc3339(t), "2025-12-31T23:59:59.000Z");
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(format_duration(Duration::from_millis(1500)), "1.5 s");
        assert_eq!(format_duration(Duration::from_millis(42_500)), "42.5 s");
        assert_eq!(format_duration(Duration::from_millis(42_010)), "42 s");
        assert_eq!(format_duration(Duration::from_secs(42)), "42 s");
        assert_eq!(format_duration(Duration::from_secs(300)), "5 min");
        assert_eq!(format_duration(Duration::from_secs(3905)), "65 min 5 s");
        assert_eq!(format_duration(Duration::from_secs(6 * 3600)), "6 h");
        assert_eq!(
            format_duration(Duration::from_secs(3 * 3600 + 60)),
            "3 h 1 min"
        );
    }
}
