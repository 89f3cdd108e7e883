//! Rule evaluation: from a [`Signals`] snapshot to trigger and resolve events, with hysteresis.
//!
//! Each rule is a small state machine, advanced once per evaluation with the time of that
//! evaluation (a [`tokio::time::Instant`], so tests drive it with a paused clock or with
//! explicit instants):
//!
//! ```text
//!            value beyond threshold             beyond threshold for `for`
//! Inactive ─────────────────────────▶ Pending ─────────────────────────────▶ Firing ──┐
//!    ▲                                  │  not beyond threshold: back to Inactive       │ repeat
//!    │                                  ▼                                               │ every
//!    └──── back past `clear` continuously for `clear_for` (one Resolve) ◀───────────────┘ `repeat`
//! ```
//!
//! - **One trigger per episode.** Only the Pending → Firing transition emits a trigger; while
//!   firing, further evaluations emit nothing until `repeat` has passed since the last
//!   notification. So an alert evaluated every five seconds for an hour sends one trigger
//!   (plus the configured repeats), not 720.
//! - **Hysteresis.** Firing needs the value beyond `threshold` for `for`; clearing needs it back
//!   past `clear` (a stricter level: 80 % of the threshold by default) for `clear_for`. A value
//!   hovering around the threshold therefore stays firing, and a value that dips below `clear`
//!   briefly does not resolve: no trigger/resolve storm. A Pending rule whose value returns
//!   inside the threshold starts over, so `for` means *continuously* beyond.
//! - **One resolve per episode.** Only the Firing → Inactive transition emits it, with the same
//!   dedup key as the trigger.
//! - **Unknown values hold.** A signal nobody has measured yet (lag before the first
//!   heartbeat, drift before the first verify) neither fires nor clears: the state and its
//!   timers stay as they are. While the pipeline is stopped, `lag` and `snapshot_stalled` also
//!   hold: the `stopped` alert names the cause, and a growing lag is its consequence.

use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use super::config::{RuleKind, Severity};
use super::{Action, AlertEvent, format_duration};
use crate::health::Health;
use crate::metrics::Metrics;

/// PagerDuty's limit on `payload.summary`.
const MAX_SUMMARY_CHARS: usize = 1024;
/// PagerDuty's limit on `dedup_key`.
const MAX_DEDUP_KEY_CHARS: usize = 255;

/// What the pipeline reports to the alert engine at each evaluation; `None` means not measured
/// yet. Build it with [`Signals::observe`] from the shared [`Metrics`] and [`Health`], or by
/// hand in tests.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Signals {
    /// Replication lag in seconds.
    pub lag_seconds: Option<f64>,
    /// Rows differing in the last verification, summed over tables.
    pub drift_rows: Option<u64>,
    /// The definite error that stopped the pipeline.
    pub stopped: Option<String>,
    /// Seconds until the checkpoint's binlog file is purged (`+Inf`: never).
    pub binlog_runway_seconds: Option<f64>,
    /// Time without snapshot progress while a table is copying; `None` when none is.
    pub snapshot_stalled_for: Option<Duration>,
}

impl Signals {
    /// The signals as the shared pipeline state says now.
    pub fn observe(metrics: &Metrics, health: &Health) -> Signals {
        Signals {
            lag_seconds: metrics.lag_seconds(),
            drift_rows: metrics.drift_rows_total(),
            stopped: health.stopped_error(),
            binlog_runway_seconds: metrics.binlog_runway_seconds(),
            snapshot_stalled_for: metrics.snapshot_stalled_for(),
        }
    }
}

/// A rule with every default applied (see [`super::config::RuleConfig::resolve`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    /// Unique name.
    pub name: String,
    /// What it watches.
    pub kind: RuleKind,
    /// Fire beyond this value (above, or below for `binlog_runway`).
    pub threshold: f64,
    /// Clear only back past this value.
    pub clear: f64,
    /// How long the value must stay beyond `threshold` before firing.
    pub for_: Duration,
    /// How long it must stay back past `clear` before resolving.
    pub clear_for: Duration,
    /// Re-send interval while firing; `None` = never.
    pub repeat: Option<Duration>,
    /// Severity.
    pub severity: Severity,
    /// Receiver names; empty = all.
    pub receivers: Vec<String>,
}

impl Rule {
    /// The rule's reading of the signals: `None` = hold (not measured, or inhibited).
    fn reading(&self, s: &Signals) -> Option<f64> {
        let stopped = s.stopped.is_some();
        match self.kind {
            RuleKind::Lag if stopped => None,
            RuleKind::Lag => s.lag_seconds,
            RuleKind::Drift => s.drift_rows.map(|n| n as f64),
            RuleKind::Stopped => Some(if stopped { 1.0 } else { 0.0 }),
            RuleKind::BinlogRunway => s.binlog_runway_seconds,
            RuleKind::SnapshotStalled if stopped => None,
            // Not copying = not stalled (a finished snapshot clears a stall alert).
            RuleKind::SnapshotStalled => {
                Some(s.snapshot_stalled_for.map_or(0.0, |d| d.as_secs_f64()))
            }
        }
    }

    fn beyond_threshold(&self, v: f64) -> bool {
        if self.kind.fires_below() {
            v < self.threshold
        } else {
            v > self.threshold
        }
    }

    fn back_past_clear(&self, v: f64) -> bool {
        if self.kind.fires_below() {
            v >= self.clear
        } else {
            v <= self.clear
        }
    }

    fn summary(&self, pipeline: &str, action: Action, v: Option<f64>, s: &Signals) -> String {
        let secs = |v: Option<f64>| v.map_or_else(|| "unknown".to_owned(), fmt_secs);
        let th = fmt_secs(self.threshold);
        let text = match (self.kind, action) {
            (RuleKind::Lag, Action::Trigger) => format!(
                "replication lag {} is above {th} (for {})",
                secs(v),
                format_duration(self.for_)
            ),
            (RuleKind::Lag, _) => format!("replication lag back to {}", secs(v)),
            (RuleKind::Drift, Action::Trigger) => format!(
                "{} rows differ between source and target (threshold {})",
                v.unwrap_or(0.0),
                self.threshold
            ),
            (RuleKind::Drift, _) => format!(
                "source and target agree again ({} rows differ)",
                v.unwrap_or(0.0)
            ),
            (RuleKind::Stopped, Action::Trigger) => format!(
                "pipeline stopped: {}",
                s.stopped.as_deref().unwrap_or("unknown error")
            ),
            (RuleKind::Stopped, _) => "pipeline running again".to_owned(),
            (RuleKind::BinlogRunway, Action::Trigger) => format!(
                "binlog runway {} is below {th}: the source will purge the binlog my2pg resumes from",
                secs(v)
            ),
            (RuleKind::BinlogRunway, _) => format!("binlog runway back to {}", secs(v)),
            (RuleKind::SnapshotStalled, Action::Trigger) => {
                format!("snapshot made no progress for {}", secs(v))
            }
            (RuleKind::SnapshotStalled, _) => "snapshot progressing again".to_owned(),
        };
        truncate(
            &format!("[{pipeline}] {}: {text}", self.name),
            MAX_SUMMARY_CHARS,
        )
    }
}

fn fmt_secs(v: f64) -> String {
    if v.is_infinite() {
        "unlimited".to_owned()
    } else {
        format_duration(Duration::from_secs_f64(v.max(0.0)))
    }
}

/// Cuts `s` to at most `max` characters (on a character boundary), marking the cut.
pub(crate) fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// The stable dedup key of `rule` in `pipeline`: the same for the trigger, its repeats and
/// its resolve, and across restarts of my2pg.
pub fn dedup_key(pipeline: &str, rule: &str) -> String {
    truncate(&format!("my2pg/{pipeline}/{rule}"), MAX_DEDUP_KEY_CHARS)
}

#[derive(Debug, Clone)]
enum State {
    Inactive,
    Pending {
        since: Instant,
    },
    Firing {
        since: SystemTime,
        last_sent: Instant,
        clear_since: Option<Instant>,
        notifications: u32,
    },
}

impl State {
    /// When the firing episode started and how many triggers it has sent.
    fn episode(&self) -> Option<(SystemTime, u32)> {
        match self {
            State::Firing {
                since,
                notifications,
                ..
            } => Some((*since, *notifications)),
            _ => None,
        }
    }
}

/// Evaluates every rule against each [`Signals`] snapshot. Pure apart from the optional
/// `my2pg_alerts_firing` gauge: the caller passes the time.
#[derive(Debug)]
pub struct Evaluator {
    pipeline: String,
    source: String,
    rules: Vec<(Rule, State)>,
    metrics: Option<Metrics>,
}

impl Evaluator {
    /// An evaluator for `rules` of `pipeline`; `source` is PagerDuty's `payload.source`.
    pub fn new(pipeline: &str, source: &str, rules: Vec<Rule>) -> Evaluator {
        Evaluator {
            pipeline: pipeline.to_owned(),
            source: source.to_owned(),
            rules: rules.into_iter().map(|r| (r, State::Inactive)).collect(),
            metrics: None,
        }
    }

    /// Also exports `my2pg_alerts_firing{rule}`.
    pub fn with_metrics(mut self, metrics: Metrics) -> Evaluator {
        for (r, _) in &self.rules {
            metrics.set_alert_firing(&r.name, false);
        }
        self.metrics = Some(metrics);
        self
    }

    /// Names of the rules now firing.
    pub fn firing(&self) -> Vec<&str> {
        self.rules
            .iter()
            .filter(|(_, s)| matches!(s, State::Firing { .. }))
            .map(|(r, _)| r.name.as_str())
            .collect()
    }

    /// Advances every rule to `now` (`wall` stamps the events) and returns the notifications
    /// to send, in rule order.
    pub fn evaluate(&mut self, s: &Signals, now: Instant, wall: SystemTime) -> Vec<AlertEvent> {
        let mut out = Vec::new();
        for (rule, state) in &mut self.rules {
            let Some(v) = rule.reading(s) else { continue };
            let (next, action) = step(rule, state, v, now, wall);
            // A trigger describes the episode it starts or repeats; a resolve the one it ends.
            let episode = match action {
                Some(Action::Trigger) => next.episode(),
                Some(Action::Resolve) => state.episode(),
                None => None,
            };
            let was_firing = matches!(state, State::Firing { .. });
            let firing = matches!(next, State::Firing { .. });
            *state = next;
            if was_firing != firing
                && let Some(m) = &self.metrics
            {
                m.set_alert_firing(&rule.name, firing);
            }
            let (Some(action), Some((since, notification))) = (action, episode) else {
                continue;
            };
            out.push(AlertEvent {
                action,
                rule: rule.name.clone(),
                kind: rule.kind.as_str(),
                severity: rule.severity,
                pipeline: self.pipeline.clone(),
                source: self.source.clone(),
                dedup_key: dedup_key(&self.pipeline, &rule.name),
                summary: rule.summary(&self.pipeline, action, Some(v), s),
                value: (rule.kind != RuleKind::Stopped).then_some(v),
                threshold: (rule.kind != RuleKind::Stopped).then_some(rule.threshold),
                firing_since: since,
                at: wall,
                notification,
                error: s.stopped.clone().filter(|_| rule.kind == RuleKind::Stopped),
                receivers: rule.receivers.clone(),
                test: false,
            });
        }
        out
    }
}

/// One transition. Returns the next state and the notification to send, if any.
fn step(
    rule: &Rule,
    state: &State,
    v: f64,
    now: Instant,
    wall: SystemTime,
) -> (State, Option<Action>) {
    match *state {
        State::Inactive if rule.beyond_threshold(v) => {
            let pending = State::Pending { since: now };
            // `for = 0` fires on the first evaluation beyond the threshold.
            if rule.for_.is_zero() {
                step(rule, &pending, v, now, wall)
            } else {
                (pending, None)
            }
        }
        State::Inactive => (State::Inactive, None),
        State::Pending { since } => {
            if !rule.beyond_threshold(v) {
                (State::Inactive, None)
            } else if now.duration_since(since) >= rule.for_ {
                let firing = State::Firing {
                    since: wall,
                    last_sent: now,
                    clear_since: None,
                    notifications: 1,
                };
                (firing, Some(Action::Trigger))
            } else {
                (State::Pending { since }, None)
            }
        }
        State::Firing {
            since,
            last_sent,
            clear_since,
            notifications,
        } => {
            if rule.back_past_clear(v) {
                let clear_since = clear_since.unwrap_or(now);
                if now.duration_since(clear_since) >= rule.clear_for {
                    return (State::Inactive, Some(Action::Resolve));
                }
                let keep = State::Firing {
                    since,
                    last_sent,
                    clear_since: Some(clear_since),
                    notifications,
                };
                return (keep, None);
            }
            let due = rule
                .repeat
                .is_some_and(|every| now.duration_since(last_sent) >= every);
            let next = State::Firing {
                since,
                last_sent: if due { now } else { last_sent },
                clear_since: None,
                notifications: notifications + u32::from(due),
            };
            (next, due.then_some(Action::Trigger))
        }
    }
}
