//! Alert delivery as a local HTTP receiver sees it: the documented PagerDuty / Slack / webhook
//! payloads, a stalled apply paging once and resolving once end to end, and delivery that
//! never slows the caller — whatever the receivers do. (The rule state machine is in
//! `alert_rules.rs`.)

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use serde_json::Value;
use tokio::sync::Notify;
use tokio::time::Instant;

use my2pg::alerts::{
    AlertEngine, Alerting, AlertsConfig, Dispatcher, Evaluator, Receiver, ReceiverConfig,
    ReceiverKind, RetryPolicy, Rule, RuleConfig, RuleKind, Signals,
};
use my2pg::config::Secret;
use my2pg::health::Health;
use my2pg::metrics::{DeliveryOutcome, Metrics};

use common::{Drive, lag_episode, lag_rule};

// ---------------------------------------------------------------------------------------------
// A local HTTP receiver that records every request.

#[derive(Debug, Clone, Copy)]
enum Behavior {
    /// Answer every request with this status.
    Status(u16),
    /// Sleep this long, then answer 202.
    Sleep(Duration),
    /// Answer the first `n` requests with `status`, then 202.
    FailFirst(usize, u16),
}

#[derive(Debug, Clone)]
struct Hit {
    path: String,
    headers: HeaderMap,
    body: Value,
}

#[derive(Debug)]
struct Recorder {
    behavior: Behavior,
    hits: Mutex<Vec<Hit>>,
    arrived: Notify,
}

struct LocalReceiver {
    url: String,
    rec: Arc<Recorder>,
}

impl LocalReceiver {
    async fn start(behavior: Behavior) -> LocalReceiver {
        async fn handle(
            State(rec): State<Arc<Recorder>>,
            uri: Uri,
            headers: HeaderMap,
            body: Bytes,
        ) -> (StatusCode, &'static str) {
            let n = {
                let mut hits = rec.hits.lock().unwrap();
                hits.push(Hit {
                    path: uri.path().to_owned(),
                    headers,
                    body: serde_json::from_slice(&body).unwrap_or(Value::Null),
                });
                hits.len()
            };
            rec.arrived.notify_waiters();
            let status = match rec.behavior {
                Behavior::Status(s) => s,
                Behavior::Sleep(d) => {
                    tokio::time::sleep(d).await;
                    202
                }
                Behavior::FailFirst(k, s) if n <= k => s,
                Behavior::FailFirst(..) => 202,
            };
            (StatusCode::from_u16(status).unwrap(), "ok")
        }
        let rec = Arc::new(Recorder {
            behavior,
            hits: Mutex::new(Vec::new()),
            arrived: Notify::new(),
        });
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(Arc::clone(&rec));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/v2/enqueue", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        LocalReceiver { url, rec }
    }

    fn hits(&self) -> Vec<Hit> {
        self.rec.hits.lock().unwrap().clone()
    }

    /// Waits until at least `n` requests arrived (panics after 10 s).
    async fn wait_for(&self, n: usize) -> Vec<Hit> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let notified = self.rec.arrived.notified();
            let hits = self.hits();
            if hits.len() >= n {
                return hits;
            }
            assert!(
                tokio::time::timeout_at(deadline, notified).await.is_ok(),
                "expected {n} requests, got {}: {hits:#?}",
                hits.len()
            );
        }
    }
}

/// An address nothing listens on.
async fn dead_url() -> String {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    format!("http://{addr}/hook")
}

fn receiver_cfg(name: &str, kind: ReceiverKind, url: &str) -> ReceiverConfig {
    ReceiverConfig {
        name: name.into(),
        kind,
        routing_key: (kind == ReceiverKind::Pagerduty)
            .then(|| Secret::new("R0UTINGKEY0123456789abcdef012345")),
        url: Some(Secret::new(url)),
        headers: BTreeMap::new(),
    }
}

fn receiver(name: &str, kind: ReceiverKind, url: &str) -> Receiver {
    let client = my2pg::alerts::receivers::http_client().unwrap();
    Receiver::from_config("test", &receiver_cfg(name, kind, url), client).unwrap()
}

fn fast_retries() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 3,
        initial_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(40),
    }
}

// ---------------------------------------------------------------------------------------------
// Payloads, as a receiver sees them.

/// A trigger and its resolve, made by the evaluator.
fn is_rfc3339(s: &str) -> bool {
    let b = s.as_bytes();
    s.len() == 24
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[13] == b':'
        && b[16] == b':'
        && b[19] == b'.'
        && b[23] == b'Z'
        && s.chars().filter(char::is_ascii_digit).count() == 17
}

fn keys(v: &Value) -> BTreeSet<&str> {
    v.as_object().unwrap().keys().map(String::as_str).collect()
}

#[tokio::test]
async fn pagerduty_trigger_and_resolve_follow_events_api_v2() {
    let pd = LocalReceiver::start(Behavior::Status(202)).await;
    let metrics = Metrics::new().unwrap();
    let dispatcher = Dispatcher::start(
        vec![receiver("oncall", ReceiverKind::Pagerduty, &pd.url)],
        fast_retries(),
        16,
        metrics.clone(),
    );
    let (trigger, resolve) = lag_episode("shop-prod");
    dispatcher.enqueue(trigger);
    dispatcher.enqueue(resolve);
    let hits = pd.wait_for(2).await;
    dispatcher.shutdown(Duration::from_secs(5)).await;
    assert_eq!(
        metrics.alert_deliveries("oncall", DeliveryOutcome::Delivered),
        2
    );

    for h in &hits {
        assert_eq!(h.path, "/v2/enqueue");
        assert_eq!(h.headers["content-type"], "application/json");
    }
    // Trigger: the documented required fields, and only documented keys.
    let t = &hits[0].body;
    let documented: BTreeSet<&str> = [
        "routing_key",
        "event_action",
        "dedup_key",
        "payload",
        "client",
        "client_url",
        "images",
        "links",
    ]
    .into();
    assert!(keys(t).is_subset(&documented), "{t:#}");
    assert_eq!(t["routing_key"], "R0UTINGKEY0123456789abcdef012345");
    assert_eq!(t["event_action"], "trigger");
    let dedup = t["dedup_key"].as_str().unwrap();
    assert_eq!(dedup, "my2pg/shop-prod/replica-behind");
    assert!(dedup.len() <= 255);
    let p = &t["payload"];
    let payload_keys: BTreeSet<&str> = [
        "summary",
        "source",
        "severity",
        "timestamp",
        "component",
        "group",
        "class",
        "custom_details",
    ]
    .into();
    assert!(keys(p).is_subset(&payload_keys), "{p:#}");
    let summary = p["summary"].as_str().unwrap();
    assert!(!summary.is_empty() && summary.chars().count() <= 1024);
    assert!(
        summary.contains("replication lag 42.5 s is above 30 s"),
        "{summary}"
    );
    assert_eq!(p["source"], "my2pg:shop-prod");
    assert_eq!(p["severity"], "critical");
    assert!(["critical", "error", "warning", "info"].contains(&p["severity"].as_str().unwrap()));
    assert!(
        is_rfc3339(p["timestamp"].as_str().unwrap()),
        "{}",
        p["timestamp"]
    );
    assert_eq!(p["component"], "my2pg");
    assert_eq!(p["group"], "shop-prod");
    assert_eq!(p["class"], "lag");
    let details = &p["custom_details"];
    assert!(details.is_object());
    assert_eq!(details["rule"], "replica-behind");
    assert_eq!(details["value"], "42.5 s");
    assert_eq!(details["threshold"], "30 s");
    assert!(is_rfc3339(details["firing_since"].as_str().unwrap()));

    // Resolve: exactly the documented triple, with the trigger's dedup key.
    let r = &hits[1].body;
    assert_eq!(keys(r), ["dedup_key", "event_action", "routing_key"].into());
    assert_eq!(r["event_action"], "resolve");
    assert_eq!(r["dedup_key"], dedup);
    assert_eq!(r["routing_key"], t["routing_key"]);
}

#[tokio::test]
async fn slack_messages_follow_the_incoming_webhook_format() {
    let slack = LocalReceiver::start(Behavior::Status(200)).await;
    let metrics = Metrics::new().unwrap();
    let dispatcher = Dispatcher::start(
        vec![receiver("team", ReceiverKind::Slack, &slack.url)],
        fast_retries(),
        16,
        metrics,
    );
    let (trigger, resolve) = lag_episode("shop-prod");
    let d = Drive::new();
    let mut ev = Evaluator::new(
        "shop-prod",
        "my2pg:shop-prod",
        AlertsConfig::default().resolved_rules(),
    );
    let stopped = Signals {
        stopped: Some("<!channel> table a&b: value > limit".into()),
        ..Signals::default()
    };
    let stop = d.run(&mut ev, (0, 0, 1), |_| stopped.clone()).remove(0).1;
    for e in [trigger, resolve, stop] {
        dispatcher.enqueue(e);
    }
    let hits = slack.wait_for(3).await;
    dispatcher.shutdown(Duration::from_secs(5)).await;

    for h in &hits {
        let b = &h.body;
        assert_eq!(keys(b), ["blocks", "text"].into(), "{b:#}");
        assert!(!b["text"].as_str().unwrap().is_empty());
        let blocks = b["blocks"].as_array().unwrap();
        assert!(!blocks.is_empty() && blocks.len() <= 50);
        for block in blocks {
            match block["type"].as_str().unwrap() {
                "header" => {
                    assert_eq!(block["text"]["type"], "plain_text");
                    assert!(block["text"]["text"].as_str().unwrap().chars().count() <= 150);
                }
                "section" => {
                    if let Some(text) = block.get("text") {
                        assert_eq!(text["type"], "mrkdwn");
                        assert!(text["text"].as_str().unwrap().chars().count() <= 3000);
                    } else {
                        let fields = block["fields"].as_array().unwrap();
                        assert!(!fields.is_empty() && fields.len() <= 10);
                        for f in fields {
                            assert_eq!(f["type"], "mrkdwn");
                            assert!(f["text"].as_str().unwrap().chars().count() <= 2000);
                        }
                    }
                }
                "context" => {
                    let el = block["elements"].as_array().unwrap();
                    assert!(!el.is_empty() && el.len() <= 10);
                    assert_eq!(el[0]["type"], "mrkdwn");
                }
                other => panic!("unexpected block type {other}"),
            }
        }
    }
    let text = |i: usize| hits[i].body["text"].as_str().unwrap().to_owned();
    assert!(
        text(0).starts_with(":rotating_light: FIRING: [shop-prod] replica-behind"),
        "{}",
        text(0)
    );
    assert!(
        text(1).starts_with(":white_check_mark: RESOLVED: [shop-prod] replica-behind"),
        "{}",
        text(1)
    );
    assert_eq!(
        hits[0].body["blocks"][0]["text"]["text"],
        "FIRING: replica-behind (shop-prod)"
    );
    // The error text cannot ping the channel or break the markup.
    let all = hits[2].body.to_string();
    assert!(
        !all.contains("<!channel>") && all.contains("&lt;!channel&gt;"),
        "{all}"
    );
    assert!(all.contains("a&amp;b: value &gt; limit"), "{all}");
}

#[tokio::test]
async fn the_webhook_gets_stable_json_and_its_headers() {
    let hook = LocalReceiver::start(Behavior::Status(204)).await;
    let mut cfg = receiver_cfg("ops", ReceiverKind::Webhook, &hook.url);
    cfg.headers
        .insert("Authorization".into(), Secret::new("Bearer hook-token"));
    cfg.headers.insert("X-Team".into(), Secret::new("data"));
    let client = my2pg::alerts::receivers::http_client().unwrap();
    let r = Receiver::from_config("alerts.receivers[0]", &cfg, client).unwrap();
    let dispatcher = Dispatcher::start(vec![r], fast_retries(), 16, Metrics::new().unwrap());
    let (trigger, resolve) = lag_episode("shop-prod");
    dispatcher.enqueue(trigger);
    dispatcher.enqueue(resolve);
    let hits = hook.wait_for(2).await;
    dispatcher.shutdown(Duration::from_secs(5)).await;

    let all_keys: BTreeSet<&str> = [
        "version",
        "status",
        "test",
        "pipeline",
        "source",
        "rule",
        "kind",
        "severity",
        "dedup_key",
        "summary",
        "value",
        "threshold",
        "error",
        "firing_since",
        "at",
        "notification",
    ]
    .into();
    for h in &hits {
        assert_eq!(h.headers["authorization"], "Bearer hook-token");
        assert_eq!(h.headers["x-team"], "data");
        assert_eq!(keys(&h.body), all_keys);
        assert_eq!(h.body["version"], 1);
        assert_eq!(h.body["dedup_key"], "my2pg/shop-prod/replica-behind");
    }
    assert_eq!(hits[0].body["status"], "firing");
    assert_eq!(hits[0].body["value"].as_f64(), Some(42.5));
    assert!(hits[0].body["error"].is_null());
    assert_eq!(hits[1].body["status"], "resolved");
}

// ---------------------------------------------------------------------------------------------
// The whole path: a stalled apply makes the heartbeat lag cross the threshold.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_apply_pages_once_and_resuming_resolves_once() {
    let pd = LocalReceiver::start(Behavior::Status(202)).await;
    let slack = LocalReceiver::start(Behavior::Status(200)).await;
    let metrics = Metrics::new().unwrap();
    let health = Health::new();
    health.set(my2pg::health::Phase::Streaming);
    let hb = Duration::from_millis(100);
    metrics.set_heartbeat_interval(Some(hb));

    // A stand-in pipeline: writes a heartbeat every 100 ms and applies it 5 ms later, unless
    // apply is paused.
    let paused = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (m, p) = (metrics.clone(), Arc::clone(&paused));
    let pipeline = tokio::spawn(async move {
        let mut backlog = Vec::new();
        loop {
            backlog.push(SystemTime::now());
            if !p.load(std::sync::atomic::Ordering::SeqCst) {
                for written in backlog.drain(..) {
                    m.heartbeat_applied(written, SystemTime::now() + Duration::from_millis(5));
                }
            }
            tokio::time::sleep(hb).await;
        }
    });

    let rule = Rule {
        threshold: 1.0,
        clear: 0.5,
        for_: Duration::from_millis(300),
        clear_for: Duration::from_millis(300),
        repeat: Some(Duration::from_secs(3600)),
        ..lag_rule(None)
    };
    let dispatcher = Arc::new(Dispatcher::start(
        vec![
            receiver("oncall", ReceiverKind::Pagerduty, &pd.url),
            receiver("team", ReceiverKind::Slack, &slack.url),
        ],
        fast_retries(),
        16,
        metrics.clone(),
    ));
    let (m, h) = (metrics.clone(), health.clone());
    let engine = AlertEngine::new(
        Evaluator::new("shop", "my2pg:shop", vec![rule]).with_metrics(metrics.clone()),
        Duration::from_millis(50),
    )
    .spawn(dispatcher.clone(), move || Signals::observe(&m, &h));

    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(pd.hits().is_empty(), "paged while healthy");
    let lag = metrics.lag_seconds().unwrap();
    assert!(lag < 0.5, "healthy lag {lag}");

    paused.store(true, std::sync::atomic::Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let lag = metrics.lag_seconds().unwrap();
    assert!(lag > 2.0, "lag must grow while apply is paused: {lag}");
    assert_eq!(pd.wait_for(1).await.len(), 1);
    assert_eq!(slack.wait_for(1).await.len(), 1);

    paused.store(false, std::sync::atomic::Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let _ = engine.stop().await;
    dispatcher.shutdown(Duration::from_secs(5)).await;
    pipeline.abort();

    let pd_hits = pd.hits();
    let actions: Vec<&str> = pd_hits
        .iter()
        .map(|h| h.body["event_action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["trigger", "resolve"], "one trigger, one resolve");
    assert_eq!(pd_hits[0].body["dedup_key"], pd_hits[1].body["dedup_key"]);
    let slack_texts: Vec<String> = slack
        .hits()
        .iter()
        .map(|h| h.body["text"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(slack_texts.len(), 2, "{slack_texts:?}");
    assert!(slack_texts[0].contains("FIRING") && slack_texts[1].contains("RESOLVED"));
}

// ---------------------------------------------------------------------------------------------
// Delivery.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_and_slow_receivers_do_not_slow_the_caller() {
    const N: usize = 20_000;
    let healthy = LocalReceiver::start(Behavior::Status(202)).await;
    let slow = LocalReceiver::start(Behavior::Sleep(Duration::from_secs(5))).await;
    let dead = dead_url().await;
    let (trigger, _) = lag_episode("shop");

    let time_enqueues = |d: &Dispatcher| {
        let start = std::time::Instant::now();
        for _ in 0..N {
            d.enqueue(trigger.clone());
        }
        start.elapsed()
    };
    let metrics = Metrics::new().unwrap();
    let baseline = Dispatcher::start(
        vec![receiver("ok", ReceiverKind::Pagerduty, &healthy.url)],
        RetryPolicy::default(),
        128,
        metrics.clone(),
    );
    let base = time_enqueues(&baseline);
    let troubled = Dispatcher::start(
        vec![
            receiver("dead", ReceiverKind::Pagerduty, &dead),
            receiver("slow", ReceiverKind::Slack, &slow.url),
        ],
        RetryPolicy::default(),
        128,
        metrics.clone(),
    );
    // Let the workers get stuck first: one in connection retries, one in a 5 s request.
    troubled.enqueue(trigger.clone());
    slow.wait_for(1).await;
    let with_trouble = time_enqueues(&troubled);
    eprintln!(
        "{N} enqueues: {base:?} with a healthy receiver, {with_trouble:?} with a dead and a slow one"
    );
    // Two queues instead of one: allow double the work plus scheduling noise, nowhere near
    // the seconds a single network wait would cost.
    assert!(
        with_trouble < base * 2 + Duration::from_millis(300),
        "enqueue waited on the network: {with_trouble:?} vs {base:?}"
    );
    // The queues stayed bounded: everything past the capacity was dropped, oldest first.
    for name in ["dead", "slow"] {
        assert_eq!(troubled.queued(name), 128);
        let dropped = metrics.alert_deliveries(name, DeliveryOutcome::Dropped);
        assert!(dropped >= (N - 129) as u64, "{name}: dropped {dropped}");
    }
    let start = std::time::Instant::now();
    troubled.shutdown(Duration::from_millis(200)).await;
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "shutdown ignored its deadline"
    );
    assert!(metrics.alert_deliveries("dead", DeliveryOutcome::Failed) >= 128);
    baseline.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn transient_failures_are_retried_and_refusals_are_not() {
    let flaky = LocalReceiver::start(Behavior::FailFirst(2, 503)).await;
    let refusing = LocalReceiver::start(Behavior::Status(400)).await;
    let metrics = Metrics::new().unwrap();
    let d = Dispatcher::start(
        vec![
            receiver("flaky", ReceiverKind::Pagerduty, &flaky.url),
            receiver("refusing", ReceiverKind::Pagerduty, &refusing.url),
        ],
        fast_retries(),
        16,
        metrics.clone(),
    );
    let (trigger, _) = lag_episode("shop");
    d.enqueue(trigger);
    flaky.wait_for(3).await;
    refusing.wait_for(1).await;
    d.shutdown(Duration::from_secs(5)).await;
    assert_eq!(flaky.hits().len(), 3, "two 503s, then accepted");
    assert_eq!(
        metrics.alert_deliveries("flaky", DeliveryOutcome::Delivered),
        1
    );
    assert_eq!(refusing.hits().len(), 1, "a 400 is not retried");
    assert_eq!(
        metrics.alert_deliveries("refusing", DeliveryOutcome::Failed),
        1
    );
}

#[tokio::test]
async fn a_resolve_never_overtakes_its_trigger() {
    let slow = LocalReceiver::start(Behavior::Sleep(Duration::from_millis(300))).await;
    let d = Dispatcher::start(
        vec![receiver("slow", ReceiverKind::Webhook, &slow.url)],
        fast_retries(),
        16,
        Metrics::new().unwrap(),
    );
    let (trigger, resolve) = lag_episode("shop");
    d.enqueue(trigger);
    d.enqueue(resolve);
    let hits = slow.wait_for(2).await;
    d.shutdown(Duration::from_secs(5)).await;
    let statuses: Vec<&str> = hits
        .iter()
        .map(|h| h.body["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["firing", "resolved"]);
}

#[tokio::test]
async fn shutdown_pages_a_definite_stop_before_exiting() {
    let pd = LocalReceiver::start(Behavior::Status(202)).await;
    let cfg = AlertsConfig {
        pipeline: "shop".into(),
        evaluate_every_secs: 3600,
        rules: Some(vec![RuleConfig {
            name: "stopped".into(),
            kind: RuleKind::Stopped,
            threshold: None,
            clear: None,
            for_secs: None,
            clear_for_secs: None,
            repeat_secs: None,
            severity: None,
            receivers: vec![],
        }]),
        receivers: vec![receiver_cfg("oncall", ReceiverKind::Pagerduty, &pd.url)],
        ..AlertsConfig::default()
    };
    cfg.validate().unwrap();
    let metrics = Metrics::new().unwrap();
    let health = Health::new();
    let alerting = Alerting::start(&cfg, &metrics, &health).unwrap().unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;

    #[derive(Debug, thiserror::Error)]
    #[error("the resume position was purged from the source")]
    struct Purged;
    health.stopped(&Purged);
    alerting.shutdown(Duration::from_secs(5)).await;
    let hits = pd.hits();
    assert_eq!(hits.len(), 1, "{hits:#?}");
    let b = &hits[0].body;
    assert_eq!(b["event_action"], "trigger");
    assert_eq!(b["dedup_key"], "my2pg/shop/stopped");
    assert_eq!(
        b["payload"]["custom_details"]["error"],
        "the resume position was purged from the source"
    );
    assert_eq!(
        metrics.alert_deliveries("oncall", DeliveryOutcome::Delivered),
        1
    );
}

/// A `MakeWriter` into a shared buffer, to read what was logged.
#[derive(Clone, Default)]
struct LogBuffer(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn failed_deliveries_are_logged_without_secrets() {
    let logs = LogBuffer::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_max_level(tracing::Level::INFO)
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let dead = dead_url().await;
    let refusing = LocalReceiver::start(Behavior::Status(404)).await;
    let mut pd = receiver_cfg("oncall", ReceiverKind::Pagerduty, &dead);
    pd.routing_key = Some(Secret::new("PDSECRETKEY"));
    let slack_url = refusing
        .url
        .replace("/v2/enqueue", "/services/T0/B0/SLACKSECRETTOKEN");
    let slack = receiver_cfg("team", ReceiverKind::Slack, &slack_url);
    let cfg = AlertsConfig {
        receivers: vec![pd, slack],
        ..AlertsConfig::default()
    };
    let metrics = Metrics::new().unwrap();
    let receivers = my2pg::alerts::receivers::build_all(&cfg).unwrap();
    let d = Dispatcher::start(receivers, fast_retries(), 16, metrics.clone());
    let (trigger, _) = lag_episode("shop");
    d.enqueue(trigger);
    refusing.wait_for(1).await;
    d.shutdown(Duration::from_secs(5)).await;
    assert_eq!(
        metrics.alert_deliveries("oncall", DeliveryOutcome::Failed),
        1
    );
    assert_eq!(metrics.alert_deliveries("team", DeliveryOutcome::Failed), 1);

    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(text.contains("alert not delivered"), "{text}");
    assert!(text.contains("HTTP 404"), "{text}");
    assert!(text.contains("retrying"), "{text}");
    let debug = format!(
        "{cfg:?} {:?}",
        my2pg::alerts::receivers::build_all(&cfg).unwrap()
    );
    for secret in ["PDSECRETKEY", "SLACKSECRETTOKEN", &dead] {
        assert!(!text.contains(secret), "{secret} logged:\n{text}");
        assert!(!debug.contains(secret), "{secret} in Debug: {debug}");
    }
}
