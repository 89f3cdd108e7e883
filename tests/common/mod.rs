//! Helpers shared by the alert tests: a lag rule, signals, and a driver that advances an
//! evaluator through explicit instants.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

use my2pg::alerts::{Action, AlertEvent, Evaluator, Rule, RuleKind, Severity, Signals};

pub fn lag_rule(repeat: Option<Duration>) -> Rule {
    Rule {
        name: "replica-behind".into(),
        kind: RuleKind::Lag,
        threshold: 30.0,
        clear: 24.0,
        for_: Duration::from_secs(60),
        clear_for: Duration::from_secs(60),
        repeat,
        severity: Severity::Critical,
        receivers: Vec::new(),
    }
}

pub fn lag(v: f64) -> Signals {
    Signals {
        lag_seconds: Some(v),
        ..Signals::default()
    }
}

/// Drives `ev` from second `from` to `to` (inclusive) every `step` seconds with the signals
/// `f(t)`; returns the events with the second they were made.
pub struct Drive {
    base: Instant,
    wall: SystemTime,
}

impl Drive {
    pub fn new() -> Drive {
        Drive {
            base: Instant::now(),
            wall: UNIX_EPOCH + Duration::from_secs(1_760_000_000),
        }
    }

    pub fn run(
        &self,
        ev: &mut Evaluator,
        (from, to, step): (u64, u64, u64),
        f: impl Fn(u64) -> Signals,
    ) -> Vec<(u64, AlertEvent)> {
        let mut out = Vec::new();
        let mut t = from;
        while t <= to {
            let at = Duration::from_secs(t);
            for e in ev.evaluate(&f(t), self.base + at, self.wall + at) {
                out.push((t, e));
            }
            t += step;
        }
        out
    }
}

pub fn summary(events: &[(u64, AlertEvent)]) -> Vec<(u64, Action, u32)> {
    events
        .iter()
        .map(|(t, e)| (*t, e.action, e.notification))
        .collect()
}

/// A trigger and its resolve, made by the evaluator.
pub fn lag_episode(pipeline: &str) -> (AlertEvent, AlertEvent) {
    let d = Drive::new();
    let rule = Rule {
        for_: Duration::ZERO,
        ..lag_rule(None)
    };
    let mut ev = Evaluator::new(pipeline, &format!("my2pg:{pipeline}"), vec![rule]);
    let mut t = d.run(&mut ev, (0, 0, 1), |_| lag(42.5));
    let mut r = d.run(&mut ev, (300, 400, 5), |_| lag(1.0));
    (t.remove(0).1, r.remove(0).1)
}
