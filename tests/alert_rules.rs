//! The alert rule state machine: one trigger per episode however often it is evaluated,
//! repeats only at the repeat interval, one resolve, no storm when a value hovers at the
//! threshold, every rule kind on its own signal, and the engine on a paused clock.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use my2pg::alerts::{
    Action, AlertEngine, AlertEvent, AlertSink, AlertsConfig, Evaluator, Rule, RuleKind, Signals,
};

use common::{Drive, alert_summary, lag, lag_rule};

#[test]
fn one_trigger_per_episode_repeats_at_the_interval_and_one_resolve() {
    let d = Drive::new();
    let mut ev = Evaluator::new(
        "shop",
        "my2pg:shop",
        vec![lag_rule(Some(Duration::from_secs(600)))],
    );

    // Above the threshold for 55 s, less than `for`: nothing, and the episode does not count.
    assert!(d.run(&mut ev, (0, 55, 5), |_| lag(40.0)).is_empty());
    assert!(d.run(&mut ev, (60, 60, 5), |_| lag(10.0)).is_empty());

    // Above for longer: exactly one trigger at 100 + 60 s across 180 evaluations, then one
    // repeat after the 600 s repeat interval.
    let firing = d.run(&mut ev, (100, 1000, 5), |_| lag(40.0));
    assert_eq!(
        alert_summary(&firing),
        [(160, Action::Trigger, 1), (760, Action::Trigger, 2)]
    );
    assert_eq!(ev.firing(), ["replica-behind"]);

    // Back under the clear level: one resolve after `clear_for`, then silence.
    let cleared = d.run(&mut ev, (1005, 5000, 5), |_| lag(10.0));
    assert_eq!(alert_summary(&cleared), [(1065, Action::Resolve, 2)]);
    let (trigger, resolve) = (&firing[0].1, &cleared[0].1);
    assert_eq!(resolve.dedup_key, trigger.dedup_key);
    assert_eq!(trigger.dedup_key, "my2pg/shop/replica-behind");
    assert_eq!(resolve.firing_since, trigger.firing_since);
    assert_eq!(trigger.value, Some(40.0));
    assert_eq!(trigger.threshold, Some(30.0));
    assert!(
        trigger
            .summary
            .starts_with("[shop] replica-behind: replication lag 40 s is above 30 s"),
        "{}",
        trigger.summary
    );
    assert!(ev.firing().is_empty());
}

#[test]
fn a_value_hovering_at_the_threshold_does_not_storm() {
    let d = Drive::new();
    let mut ev = Evaluator::new("shop", "my2pg:shop", vec![lag_rule(None)]);

    // Crossing the threshold back and forth never stays above for `for`: never fires.
    let flap = d.run(&mut ev, (0, 3595, 5), |t| {
        lag(if t % 40 < 35 { 31.0 } else { 29.0 })
    });
    assert!(flap.is_empty(), "{:?}", alert_summary(&flap));

    let fired = d.run(&mut ev, (3600, 3660, 5), |_| lag(40.0));
    assert_eq!(alert_summary(&fired), [(3660, Action::Trigger, 1)]);

    // Hovering around the threshold but above the clear level: stays firing, silent.
    let hover = d.run(&mut ev, (3665, 7200, 5), |t| {
        lag(if t % 10 == 0 { 35.0 } else { 25.0 })
    });
    assert!(hover.is_empty(), "{:?}", alert_summary(&hover));
    // Dipping under the clear level for less than `clear_for`: no resolve, no re-trigger.
    let dips = d.run(&mut ev, (7205, 10800, 5), |t| {
        lag(if t % 40 < 20 { 10.0 } else { 40.0 })
    });
    assert!(dips.is_empty(), "{:?}", alert_summary(&dips));

    // The last dip began at 10800 and now lasts: resolved 60 s after it began.
    let resolved = d.run(&mut ev, (10805, 11000, 5), |_| lag(10.0));
    assert_eq!(alert_summary(&resolved), [(10860, Action::Resolve, 1)]);
}

#[test]
fn every_rule_kind_fires_and_clears_on_its_signal() {
    let d = Drive::new();
    let cfg = AlertsConfig::default();
    let rules = cfg.resolved_rules();
    let kinds: Vec<RuleKind> = rules.iter().map(|r| r.kind).collect();
    assert_eq!(
        kinds,
        [
            RuleKind::Lag,
            RuleKind::Drift,
            RuleKind::Stopped,
            RuleKind::BinlogRunway,
            RuleKind::SnapshotStalled
        ]
    );
    let mut ev = Evaluator::new("shop", "my2pg:shop", rules);
    let fired = |events: &[(u64, AlertEvent)]| -> Vec<(String, Action)> {
        events
            .iter()
            .map(|(_, e)| (e.rule.clone(), e.action))
            .collect()
    };

    // Nothing measured yet: nothing fires. A source that never purges has no runway problem.
    let quiet = Signals {
        binlog_runway_seconds: Some(f64::INFINITY),
        drift_rows: Some(0),
        ..Signals::default()
    };
    assert!(d.run(&mut ev, (0, 600, 5), |_| quiet.clone()).is_empty());

    // Drift, a short runway and a stalled snapshot fire at once (default `for` is 0).
    let bad = Signals {
        drift_rows: Some(3),
        binlog_runway_seconds: Some(1800.0),
        snapshot_stalled_for: Some(Duration::from_secs(1000)),
        ..quiet.clone()
    };
    let events = d.run(&mut ev, (605, 700, 5), |_| bad.clone());
    assert_eq!(
        fired(&events),
        [
            ("drift".into(), Action::Trigger),
            ("binlog_runway".into(), Action::Trigger),
            ("snapshot_stalled".into(), Action::Trigger)
        ]
    );
    assert_eq!(events[0].1.value, Some(3.0));

    // A definite error: `stopped` fires with the error text; lag is inhibited while stopped.
    let stopped = Signals {
        stopped: Some("column orders.total: value 1e400 does not fit numeric(12,2)".into()),
        lag_seconds: Some(5000.0),
        ..bad.clone()
    };
    let events = d.run(&mut ev, (705, 1200, 5), |_| stopped.clone());
    assert_eq!(fired(&events), [("stopped".into(), Action::Trigger)]);
    let e = &events[0].1;
    assert_eq!(e.error.as_deref(), stopped.stopped.as_deref());
    assert!(
        e.summary.contains("pipeline stopped: column orders.total"),
        "{}",
        e.summary
    );
    assert_eq!((e.value, e.threshold), (None, None));

    // Running again with a huge lag: after the default 120 s, lag fires.
    let behind = Signals {
        stopped: None,
        ..stopped.clone()
    };
    let events = d.run(&mut ev, (1205, 1400, 5), |_| behind.clone());
    assert_eq!(
        fired(&events),
        [
            ("stopped".into(), Action::Resolve),
            ("lag".into(), Action::Trigger)
        ]
    );
    assert_eq!(
        events[0].0, 1265,
        "resolve after the default clear_for of 60 s"
    );
    assert_eq!(events[1].0, 1325, "lag after the default for of 120 s");

    // Lag unknown (restarting): holds; nothing resolves on a value nobody measured.
    let unknown = Signals {
        lag_seconds: None,
        ..behind.clone()
    };
    assert!(
        d.run(&mut ev, (1405, 2000, 5), |_| unknown.clone())
            .is_empty()
    );

    // Everything healthy: every firing rule resolves once; the snapshot finished (None).
    let healthy = Signals {
        lag_seconds: Some(0.3),
        drift_rows: Some(0),
        stopped: None,
        binlog_runway_seconds: Some(86_400.0),
        snapshot_stalled_for: None,
    };
    let events = d.run(&mut ev, (2005, 2200, 5), |_| healthy.clone());
    let mut resolved: Vec<String> = events
        .iter()
        .filter(|(_, e)| e.action == Action::Resolve)
        .map(|(_, e)| e.rule.clone())
        .collect();
    resolved.sort();
    assert_eq!(
        resolved,
        ["binlog_runway", "drift", "lag", "snapshot_stalled"]
    );
    assert_eq!(events.len(), 4);
}

/// Collects what the engine enqueues.
#[derive(Default)]
struct Collector(Mutex<Vec<AlertEvent>>);

impl AlertSink for Collector {
    fn enqueue(&self, event: AlertEvent) {
        self.0.lock().unwrap().push(event);
    }
}

impl Collector {
    fn actions(&self) -> Vec<Action> {
        self.0.lock().unwrap().iter().map(|e| e.action).collect()
    }
}

#[tokio::test(start_paused = true)]
async fn the_engine_evaluates_every_second_but_pages_once() {
    let sink = Arc::new(Collector::default());
    let signals = Arc::new(Mutex::new(lag(0.5)));
    let rule = Rule {
        clear_for: Duration::from_secs(30),
        ..lag_rule(None)
    };
    let s = Arc::clone(&signals);
    let engine = AlertEngine::new(
        Evaluator::new("shop", "my2pg:shop", vec![rule]),
        Duration::from_secs(1),
    )
    .spawn(sink.clone(), move || s.lock().unwrap().clone());

    tokio::time::sleep(Duration::from_secs(10)).await;
    *signals.lock().unwrap() = lag(50.0);
    tokio::time::sleep(Duration::from_secs(59)).await;
    assert!(sink.actions().is_empty(), "fired before `for` elapsed");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(sink.actions(), [Action::Trigger]);
    // An hour of evaluations (3600) while firing: still one notification.
    tokio::time::sleep(Duration::from_secs(3600)).await;
    assert_eq!(sink.actions(), [Action::Trigger]);

    *signals.lock().unwrap() = lag(1.0);
    tokio::time::sleep(Duration::from_secs(29)).await;
    assert_eq!(
        sink.actions(),
        [Action::Trigger],
        "resolved before `clear_for`"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(sink.actions(), [Action::Trigger, Action::Resolve]);
    tokio::time::sleep(Duration::from_secs(600)).await;
    let evaluator = engine.stop().await.unwrap();
    assert_eq!(sink.actions(), [Action::Trigger, Action::Resolve]);
    assert!(evaluator.firing().is_empty());
}

#[tokio::test(start_paused = true)]
async fn signals_are_read_from_the_shared_metrics_and_health() {
    use my2pg::health::Health;
    use my2pg::metrics::{Metrics, SnapshotState};
    use schemas::TableId;

    let m = Metrics::new().unwrap();
    let h = Health::new();
    assert_eq!(
        Signals::observe(&m, &h),
        Signals::default(),
        "nothing measured yet"
    );

    let t = TableId::new("shop", "orders");
    m.set_heartbeat_interval(None);
    m.set_estimated_lag(Some(12.0));
    m.set_drift_rows(&t, 4);
    m.set_binlog_runway(Some(Duration::from_secs(600)));
    m.set_snapshot_state(&t, SnapshotState::Copying);
    tokio::time::advance(Duration::from_secs(90)).await;
    #[derive(Debug, thiserror::Error)]
    #[error("binlog_row_image is MINIMAL on the source")]
    struct Minimal;
    h.stopped(&Minimal);

    let s = Signals::observe(&m, &h);
    assert_eq!(s.lag_seconds, Some(12.0));
    assert_eq!(s.drift_rows, Some(4));
    assert_eq!(s.binlog_runway_seconds, Some(600.0));
    assert_eq!(s.snapshot_stalled_for, Some(Duration::from_secs(90)));
    assert_eq!(
        s.stopped.as_deref(),
        Some("binlog_row_image is MINIMAL on the source")
    );
}
