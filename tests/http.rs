//! The HTTP endpoints: `/metrics` is valid Prometheus text with every `my2pg_*` series and the
//! series move when the pipeline reports; `/readyz` follows the pipeline's phase and lag; the
//! bearer token guards `/metrics` and `/readyz` but not `/healthz`; bind failures and shutdown
//! behave.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, SystemTime};

use my2pg::config::Secret;
use my2pg::health::{Health, Phase};
use my2pg::http::{self, HttpConfig, HttpServer};
use my2pg::metrics::{DeliveryOutcome, ErrorKind, Metrics, SnapshotState};
use schemas::{ChangeOp, TableId};

/// Every series the issue names, with its Prometheus type.
const EXPECTED: &[(&str, &str)] = &[
    ("my2pg_heartbeat_lag_seconds", "gauge"),
    ("my2pg_last_event_age_seconds", "gauge"),
    ("my2pg_last_applied_event_timestamp_seconds", "gauge"),
    ("my2pg_row_events_applied_total", "counter"),
    ("my2pg_transactions_applied_total", "counter"),
    ("my2pg_apply_batch_duration_seconds", "histogram"),
    ("my2pg_snapshot_rows_total", "counter"),
    ("my2pg_snapshot_chunks_total", "counter"),
    ("my2pg_snapshot_state", "gauge"),
    ("my2pg_snapshot_rows_estimated", "gauge"),
    ("my2pg_snapshot_rows_per_second", "gauge"),
    ("my2pg_snapshot_eta_seconds", "gauge"),
    ("my2pg_verify_rows_compared_total", "counter"),
    ("my2pg_drift_rows", "gauge"),
    ("my2pg_binlog_runway_seconds", "gauge"),
    ("my2pg_binlog_distance_bytes", "gauge"),
    ("my2pg_errors_total", "counter"),
    ("my2pg_streaming", "gauge"),
    ("my2pg_build_info", "gauge"),
    ("my2pg_alert_deliveries_total", "counter"),
    ("my2pg_alert_delivery_retries_total", "counter"),
    ("my2pg_alerts_firing", "gauge"),
];

// ---------------------------------------------------------------------------------------------
// A strict reader of the Prometheus text exposition format 0.0.4.

#[derive(Debug, Clone)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

#[derive(Debug, Default)]
struct Family {
    kind: String,
    help: bool,
    samples: Vec<Sample>,
}

fn is_metric_name(s: &str) -> bool {
    let mut c = s.chars();
    matches!(c.next(), Some(ch) if ch.is_ascii_alphabetic() || ch == '_' || ch == ':')
        && c.all(|ch| ch.is_ascii_alphanumeric() || ch == '_' || ch == ':')
}

fn is_label_name(s: &str) -> bool {
    let mut c = s.chars();
    matches!(c.next(), Some(ch) if ch.is_ascii_alphabetic() || ch == '_')
        && c.all(|ch| ch.is_ascii_alphanumeric() || ch == '_')
}

fn parse_value(s: &str) -> Result<f64, String> {
    match s {
        "NaN" => Ok(f64::NAN),
        "+Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        _ => s
            .parse::<f64>()
            .map_err(|e| format!("bad value {s:?}: {e}")),
    }
}

/// Parses `{a="x",b="y"}` starting after `{`; returns labels and the rest after `}`.
fn parse_labels(mut s: &str) -> Result<(BTreeMap<String, String>, &str), String> {
    let mut labels = BTreeMap::new();
    loop {
        if let Some(rest) = s.strip_prefix('}') {
            return Ok((labels, rest));
        }
        let eq = s.find('=').ok_or("label without =")?;
        let name = &s[..eq];
        if !is_label_name(name) {
            return Err(format!("bad label name {name:?}"));
        }
        s = s[eq + 1..]
            .strip_prefix('"')
            .ok_or("label value not quoted")?;
        let mut value = String::new();
        let mut chars = s.char_indices();
        let end = loop {
            match chars.next().ok_or("unterminated label value")? {
                (i, '"') => break i,
                (_, '\\') => match chars.next().ok_or("dangling escape")?.1 {
                    'n' => value.push('\n'),
                    '\\' => value.push('\\'),
                    '"' => value.push('"'),
                    c => return Err(format!("bad escape \\{c}")),
                },
                (_, c) => value.push(c),
            }
        };
        if labels.insert(name.to_owned(), value).is_some() {
            return Err(format!("label {name} twice"));
        }
        s = &s[end + 1..];
        s = s.strip_prefix(',').unwrap_or(s);
    }
}

fn family_of<'a>(sample: &'a str, families: &HashMap<String, Family>) -> Option<&'a str> {
    if families.contains_key(sample) {
        return Some(sample);
    }
    for suffix in ["_bucket", "_sum", "_count"] {
        if let Some(base) = sample.strip_suffix(suffix)
            && families.get(base).is_some_and(|f| f.kind == "histogram")
        {
            return Some(base);
        }
    }
    None
}

/// Parses the whole exposition, checking the grammar, that `# TYPE` precedes samples, that no
/// series repeats, and the histogram invariants (cumulative buckets, `+Inf` bucket = count).
fn parse_exposition(text: &str) -> Result<HashMap<String, Family>, String> {
    let mut families: HashMap<String, Family> = HashMap::new();
    let mut seen = std::collections::HashSet::new();
    for (n, line) in text.lines().enumerate() {
        let err = |e: String| format!("line {}: {e}: {line:?}", n + 1);
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# ") {
            let mut parts = rest.splitn(3, ' ');
            let (kw, name) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
            let arg = parts.next().unwrap_or("");
            if !is_metric_name(name) {
                return Err(err(format!("bad metric name {name:?}")));
            }
            match kw {
                "HELP" => families.entry(name.into()).or_default().help = true,
                "TYPE" => {
                    if !["counter", "gauge", "histogram", "summary", "untyped"].contains(&arg) {
                        return Err(err(format!("bad type {arg:?}")));
                    }
                    let f = families.entry(name.into()).or_default();
                    if !f.kind.is_empty() || !f.samples.is_empty() {
                        return Err(err("TYPE after samples or twice".into()));
                    }
                    f.kind = arg.into();
                }
                _ => {}
            }
            continue;
        }
        let name_end = line
            .find(['{', ' '])
            .ok_or_else(|| err("no value".into()))?;
        let name = &line[..name_end];
        if !is_metric_name(name) {
            return Err(err(format!("bad metric name {name:?}")));
        }
        let (labels, rest) = if line[name_end..].starts_with('{') {
            parse_labels(&line[name_end + 1..]).map_err(err)?
        } else {
            (BTreeMap::new(), &line[name_end..])
        };
        let mut fields = rest.split_whitespace();
        let value =
            parse_value(fields.next().ok_or_else(|| err("no value".into()))?).map_err(err)?;
        if let Some(ts) = fields.next() {
            ts.parse::<i64>()
                .map_err(|e| err(format!("bad timestamp: {e}")))?;
        }
        if fields.next().is_some() {
            return Err(err("trailing text".into()));
        }
        let family = family_of(name, &families)
            .ok_or_else(|| err(format!("sample {name} before its # TYPE")))?
            .to_owned();
        if !seen.insert(format!("{name}{labels:?}")) {
            return Err(err("series repeated".into()));
        }
        families.get_mut(&family).unwrap().samples.push(Sample {
            name: name.into(),
            labels,
            value,
        });
    }
    for (name, f) in &families {
        if f.kind != "histogram" {
            continue;
        }
        let mut groups: BTreeMap<String, Vec<&Sample>> = BTreeMap::new();
        for s in &f.samples {
            let mut key = s.labels.clone();
            key.remove("le");
            groups.entry(format!("{key:?}")).or_default().push(s);
        }
        for (key, samples) in groups {
            let mut buckets: Vec<(f64, f64)> = samples
                .iter()
                .filter(|s| s.name.ends_with("_bucket"))
                .map(|s| (parse_value(&s.labels["le"]).unwrap(), s.value))
                .collect();
            buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
            if buckets.windows(2).any(|w| w[1].1 < w[0].1) {
                return Err(format!("{name}{key}: buckets not cumulative"));
            }
            let count = samples.iter().find(|s| s.name.ends_with("_count"));
            match (buckets.last(), count) {
                (Some((le, inf)), Some(c)) if le.is_infinite() && *inf == c.value => {}
                _ => return Err(format!("{name}{key}: +Inf bucket missing or ≠ _count")),
            }
        }
    }
    Ok(families)
}

fn value(f: &HashMap<String, Family>, name: &str, labels: &[(&str, &str)]) -> f64 {
    let fam = f
        .get(name)
        .or_else(|| family_of(name, f).and_then(|b| f.get(b)))
        .unwrap_or_else(|| panic!("{name} missing"));
    fam.samples
        .iter()
        .find(|s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .unwrap_or_else(|| panic!("{name}{labels:?} missing"))
        .value
}

// ---------------------------------------------------------------------------------------------

async fn start(token: Option<&str>) -> (HttpServer, Metrics, Health, String) {
    let metrics = Metrics::new().unwrap();
    let health = Health::new();
    let cfg = HttpConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        bearer_token: token.map(Secret::new),
        ready_max_lag_secs: 60.0,
    };
    let server = http::serve(&cfg, metrics.clone(), health.clone())
        .await
        .unwrap();
    let base = format!("http://{}", server.local_addr());
    (server, metrics, health, base)
}

async fn scrape(base: &str) -> HashMap<String, Family> {
    let resp = reqwest::get(format!("{base}/metrics")).await.unwrap();
    assert_eq!(resp.status(), 200);
    let ct = resp.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(ct.starts_with("text/plain; version=0.0.4"), "{ct}");
    let text = resp.text().await.unwrap();
    parse_exposition(&text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

#[tokio::test]
async fn metrics_parse_as_prometheus_text_and_every_series_moves() {
    let (server, m, _health, base) = start(None).await;
    let orders = TableId::new("shop", "orders");
    let t = m.table(&orders);
    m.register_receiver("oncall");
    m.set_alert_firing("lag", false);

    let before = scrape(&base).await;
    // A table's drift is unknown, not 0, until its first verification: no series at all.
    assert!(!before.contains_key("my2pg_drift_rows"));
    for (name, kind) in EXPECTED.iter().filter(|(n, _)| *n != "my2pg_drift_rows") {
        let f = before
            .get(*name)
            .unwrap_or_else(|| panic!("{name} missing from /metrics"));
        assert_eq!(&f.kind, kind, "{name}");
        assert!(f.help, "{name} has no HELP");
        assert!(!f.samples.is_empty(), "{name} has no series yet");
    }
    assert!(value(&before, "my2pg_heartbeat_lag_seconds", &[]).is_nan());
    assert!(value(&before, "my2pg_last_event_age_seconds", &[]).is_nan());
    assert!(value(&before, "my2pg_binlog_runway_seconds", &[]).is_nan());
    assert_eq!(
        value(
            &before,
            "my2pg_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        1.0
    );
    let orders_label = [("table", "shop.orders")];
    assert_eq!(
        value(
            &before,
            "my2pg_snapshot_state",
            &[("table", "shop.orders"), ("state", "pending")]
        ),
        1.0
    );
    assert_eq!(
        value(
            &before,
            "my2pg_errors_total",
            &[("kind", "target_transient")]
        ),
        0.0
    );

    // The pipeline reports one of everything.
    let now = SystemTime::now();
    m.set_heartbeat_interval(Some(Duration::from_secs(1)));
    m.heartbeat_applied(
        now - Duration::from_millis(1500),
        now - Duration::from_millis(1000),
    );
    m.event_applied(now - Duration::from_secs(3));
    t.row_events_applied(ChangeOp::Insert, 5);
    t.row_events_applied(ChangeOp::Update, 2);
    m.row_events_applied(&orders, ChangeOp::Delete, 1);
    m.transactions_applied(3);
    m.apply_batch_finished(Duration::from_millis(30));
    m.set_snapshot_state(&orders, SnapshotState::Copying);
    t.snapshot_chunk_copied(1000);
    t.snapshot_progress(5000, 1000, 4);
    t.verify_rows_compared(1000);
    m.set_drift_rows(&orders, 2);
    m.set_binlog_runway(Some(Duration::from_secs(7200)));
    m.set_binlog_distance(Some(4096));
    m.error(ErrorKind::TargetTransient);
    m.set_streaming(true);
    m.alert_delivery("oncall", DeliveryOutcome::Delivered);
    m.alert_retry("oncall");
    m.set_alert_firing("lag", true);

    let after = scrape(&base).await;
    for (name, kind) in EXPECTED {
        let f = after.get(*name).unwrap_or_else(|| panic!("{name} missing"));
        assert_eq!(&f.kind, kind, "{name}");
        assert!(!f.samples.is_empty(), "{name} has no series");
    }
    let lag = value(&after, "my2pg_heartbeat_lag_seconds", &[]);
    assert!((0.45..2.0).contains(&lag), "lag {lag}");
    let age = value(&after, "my2pg_last_event_age_seconds", &[]);
    assert!((2.9..10.0).contains(&age), "age {age}");
    assert!(value(&after, "my2pg_last_applied_event_timestamp_seconds", &[]) > 1.7e9);
    let op = |op: &'static str| [("table", "shop.orders"), ("op", op)];
    assert_eq!(
        value(&after, "my2pg_row_events_applied_total", &op("insert")),
        5.0
    );
    assert_eq!(
        value(&after, "my2pg_row_events_applied_total", &op("update")),
        2.0
    );
    assert_eq!(
        value(&after, "my2pg_row_events_applied_total", &op("delete")),
        1.0
    );
    assert_eq!(value(&after, "my2pg_transactions_applied_total", &[]), 3.0);
    assert_eq!(
        value(&after, "my2pg_apply_batch_duration_seconds_count", &[]),
        1.0
    );
    assert_eq!(
        value(
            &after,
            "my2pg_apply_batch_duration_seconds_bucket",
            &[("le", "0.05")]
        ),
        1.0
    );
    assert_eq!(
        value(
            &after,
            "my2pg_apply_batch_duration_seconds_bucket",
            &[("le", "0.025")]
        ),
        0.0
    );
    assert_eq!(
        value(&after, "my2pg_snapshot_rows_total", &orders_label),
        1000.0
    );
    assert_eq!(
        value(&after, "my2pg_snapshot_chunks_total", &orders_label),
        1.0
    );
    for (name, want) in [
        ("my2pg_snapshot_rows_estimated", 5000.0),
        ("my2pg_snapshot_rows_per_second", 1000.0),
        ("my2pg_snapshot_eta_seconds", 4.0),
    ] {
        assert_eq!(value(&after, name, &orders_label), want, "{name}");
    }
    let state = |s: &'static str| [("table", "shop.orders"), ("state", s)];
    assert_eq!(
        value(&after, "my2pg_snapshot_state", &state("copying")),
        1.0
    );
    assert_eq!(
        value(&after, "my2pg_snapshot_state", &state("pending")),
        0.0
    );
    assert_eq!(
        value(&after, "my2pg_verify_rows_compared_total", &orders_label),
        1000.0
    );
    assert_eq!(value(&after, "my2pg_drift_rows", &orders_label), 2.0);
    assert_eq!(value(&after, "my2pg_binlog_runway_seconds", &[]), 7200.0);
    assert_eq!(value(&after, "my2pg_binlog_distance_bytes", &[]), 4096.0);
    assert_eq!(
        value(
            &after,
            "my2pg_errors_total",
            &[("kind", "target_transient")]
        ),
        1.0
    );
    assert_eq!(value(&after, "my2pg_streaming", &[]), 1.0);
    let delivered = [("receiver", "oncall"), ("outcome", "delivered")];
    assert_eq!(
        value(&after, "my2pg_alert_deliveries_total", &delivered),
        1.0
    );
    assert_eq!(
        value(
            &after,
            "my2pg_alert_delivery_retries_total",
            &[("receiver", "oncall")]
        ),
        1.0
    );
    assert_eq!(
        value(&after, "my2pg_alerts_firing", &[("rule", "lag")]),
        1.0
    );

    // A source that never purges has an infinite runway, written +Inf.
    m.set_binlog_runway(Some(Duration::MAX));
    let inf = scrape(&base).await;
    assert_eq!(
        value(&inf, "my2pg_binlog_runway_seconds", &[]),
        f64::INFINITY
    );
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn heartbeat_lag_grows_on_the_scrape_while_apply_is_stalled() {
    let (server, m, _health, base) = start(None).await;
    m.set_heartbeat_interval(Some(Duration::from_secs(1)));
    // The last heartbeat applied was written 20 s ago (applied 0.1 s after): apply stalled.
    let now = SystemTime::now();
    m.heartbeat_applied(
        now - Duration::from_secs(20),
        now - Duration::from_millis(19_900),
    );
    let f = scrape(&base).await;
    let lag = value(&f, "my2pg_heartbeat_lag_seconds", &[]);
    assert!(
        (18.9..25.0).contains(&lag),
        "a stalled pipeline must not report 0.1 s: {lag}"
    );
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn readyz_follows_the_phase_and_the_lag() {
    let (server, m, health, base) = start(None).await;
    let get = |path: &'static str| {
        let base = base.clone();
        async move {
            let r = reqwest::get(format!("{base}{path}")).await.unwrap();
            let status = r.status().as_u16();
            let body: serde_json::Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
            (status, body)
        }
    };
    let (s, body) = get("/readyz").await;
    assert_eq!((s, body["phase"].as_str()), (503, Some("starting")));
    assert_eq!(body["ready"], false);

    health.set(Phase::Snapshotting);
    let (s, body) = get("/readyz").await;
    assert_eq!(s, 503);
    assert_eq!(body["reason"], "initial snapshot in progress");

    health.set(Phase::Streaming);
    m.set_heartbeat_interval(None);
    let (s, body) = get("/readyz").await;
    assert_eq!(s, 503, "lag unknown is not ready: {body}");
    assert!(body["lag_seconds"].is_null());

    m.set_estimated_lag(Some(2.0));
    let (s, body) = get("/readyz").await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["ready"], true);
    assert_eq!(body["lag_seconds"].as_f64(), Some(2.0));
    assert_eq!(body["max_lag_seconds"].as_f64(), Some(60.0));
    assert!(body.get("reason").is_none());

    m.set_estimated_lag(Some(61.0));
    let (s, body) = get("/readyz").await;
    assert_eq!(s, 503);
    assert_eq!(body["reason"], "lag 61.0 s is above 60.0 s");

    #[derive(Debug, thiserror::Error)]
    #[error("column orders.total: value 1e400 does not fit numeric(12,2)")]
    struct Definite;
    health.stopped(&Definite);
    let (s, body) = get("/readyz").await;
    assert_eq!(s, 503);
    assert_eq!(body["phase"], "stopped");
    assert!(
        body["reason"].as_str().unwrap().contains("numeric(12,2)"),
        "{body}"
    );

    let r = reqwest::get(format!("{base}/healthz")).await.unwrap();
    assert_eq!(
        r.status(),
        200,
        "/healthz answers whatever the pipeline does"
    );
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn bearer_token_guards_metrics_and_readyz_but_not_healthz() {
    let (server, m, health, base) = start(Some("t0ken-xyz")).await;
    health.set(Phase::Streaming);
    m.set_estimated_lag(Some(0.5));
    let client = reqwest::Client::new();
    for path in ["/metrics", "/readyz"] {
        let r = client.get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(r.status(), 401, "{path} without a token");
        assert_eq!(r.headers()["www-authenticate"], "Bearer");
        let r = client
            .get(format!("{base}{path}"))
            .bearer_auth("wrong-token")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{path} with a wrong token");
        let r = client
            .get(format!("{base}{path}"))
            .bearer_auth("t0ken-xyz")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{path} with the token");
    }
    let r = client.get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "ok\n");
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_port_in_use_is_reported_at_start_and_shutdown_closes_the_port() {
    let (server, m, health, base) = start(None).await;
    let cfg = HttpConfig {
        listen: server.local_addr(),
        ..HttpConfig::default()
    };
    let err = http::serve(&cfg, m.clone(), health.clone())
        .await
        .expect_err("the port is taken");
    assert!(
        err.to_string().contains(&server.local_addr().to_string()),
        "{err}"
    );
    assert!(
        err.hint().unwrap().contains("[http] listen"),
        "{:?}",
        err.hint()
    );

    server.shutdown().await.unwrap();
    let r = reqwest::get(format!("{base}/healthz")).await;
    assert!(r.is_err(), "still answering after shutdown");
}

#[test]
fn the_default_listen_address_is_loopback() {
    assert!(http::DEFAULT_LISTEN.ip().is_loopback());
    assert_eq!(HttpConfig::default().listen, http::DEFAULT_LISTEN);
}

#[test]
fn the_exposition_checker_rejects_malformed_text() {
    let ok = "# HELP a_total x\n# TYPE a_total counter\na_total{t=\"q\\\"x\"} 1\n";
    assert!(parse_exposition(ok).is_ok());
    for bad in [
        "a_total 1\n",                        // no TYPE
        "# TYPE a gauge\na{t=\"x} 1\n",       // unterminated label
        "# TYPE a gauge\na{1t=\"x\"} 1\n",    // bad label name
        "# TYPE a gauge\na one\n",            // bad value
        "# TYPE a gauge\na 1\na 2\n",         // repeated series
        "# TYPE a gauge\n# TYPE a counter\n", // TYPE twice
        "# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_count 1\n", // not cumulative
        "# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_count 1\n", // no +Inf bucket
    ] {
        assert!(parse_exposition(bad).is_err(), "accepted {bad:?}");
    }
}
