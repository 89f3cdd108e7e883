//! `[alerts]` / `[http]` configuration and `my2pg alert test`: the documented example parses
//! and validates, bad keys name their path, and the command reports each receiver and sets the
//! exit code — without printing a secret.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::io::Write as _;
use std::path::Path;
use std::process::Output;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::Value;

use my2pg::config::{Config, Overrides};

const SECRET: &str = "hunter2routingkey";

/// The first ```toml block after `heading` in a doc.
fn toml_block(doc: &str, heading: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs").join(doc);
    let text = std::fs::read_to_string(&path).unwrap();
    let after = &text[text
        .find(heading)
        .unwrap_or_else(|| panic!("{heading} in {doc}"))..];
    let start = after.find("```toml\n").unwrap() + "```toml\n".len();
    let end = start + after[start..].find("```").unwrap();
    after[start..end].to_owned()
}

fn write_config(text: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
    f.write_all(text.as_bytes()).unwrap();
    f
}

#[test]
fn the_documented_examples_parse_and_validate() {
    let text = format!(
        "{}\n{}",
        toml_block("alerts.md", "## Full example"),
        toml_block("metrics.md", "# Metrics")
    );
    let f = write_config(&text);
    let env: HashMap<&str, &str> = [
        ("PAGERDUTY_ROUTING_KEY", "R0123"),
        (
            "SLACK_WEBHOOK_URL",
            "https://hooks.slack.com/services/T0/B0/xyz",
        ),
        ("OPS_HOOK_TOKEN", "tok"),
        ("MY2PG_HTTP_TOKEN", "metrics-token"),
    ]
    .into();
    let lookup = |k: &str| env.get(k).map(|v| (*v).to_owned());
    let cfg = Config::load_with_env(Some(f.path()), &Overrides::default(), &lookup).unwrap();
    cfg.validate().unwrap();
    let a = &cfg.alerts;
    assert_eq!(a.pipeline, "shop-prod");
    assert_eq!(a.source_name(), "db1.example.com");
    let rules = a.resolved_rules();
    assert_eq!(rules.len(), 5);
    let lag = &rules[0];
    assert_eq!((lag.threshold, lag.clear), (120.0, 60.0));
    assert_eq!(lag.for_.as_secs(), 300);
    assert_eq!(lag.receivers, ["oncall", "team"]);
    assert_eq!(a.receivers.len(), 3);
    assert_eq!(
        a.receivers[0].routing_key.as_ref().unwrap().expose(),
        "R0123"
    );
    assert_eq!(
        a.receivers[2].headers["Authorization"].expose(),
        "Bearer tok"
    );
    assert_eq!(cfg.http.listen.to_string(), "127.0.0.1:8432");
    assert_eq!(
        cfg.http.bearer_token.as_ref().unwrap().expose(),
        "metrics-token"
    );
    let debug = format!("{cfg:?}");
    for secret in ["R0123", "xyz", "Bearer tok", "metrics-token"] {
        assert!(!debug.contains(secret), "{secret} in {debug}");
    }
}

async fn my2pg(args: &[&str]) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_my2pg"))
        .args(args)
        .env_remove("MY2PG_SOURCE_URL")
        .env_remove("MY2PG_TARGET_URL")
        .env_remove("RUST_LOG")
        .current_dir(std::env::temp_dir())
        .output()
        .await
        .unwrap()
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn a_misspelled_rule_key_names_its_path() {
    let f = write_config(
        "[alerts]\n[[alerts.rules]]\nname = \"lag\"\nkind = \"lag\"\nthreshhold = 30\n",
    );
    let out = my2pg(&["alert", "test", "--config", f.path().to_str().unwrap()]).await;
    let (_, err) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("threshhold") && err.contains("unknown key"),
        "{err}"
    );
    assert!(
        err.contains("error: alerts.rules.0.threshhold: unknown key"),
        "{err}"
    );
    assert!(
        err.contains("`threshold`"),
        "the fix lists the known keys: {err}"
    );

    let f = write_config("[alerts]\n[[alerts.rules]]\nname = \"lag\"\nkind = \"lagg\"\n");
    let out = my2pg(&["alert", "test", "--config", f.path().to_str().unwrap()]).await;
    let (_, err) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("lagg"), "{err}");
}

#[tokio::test]
async fn alert_test_without_receivers_says_how_to_add_one() {
    let f = write_config("[alerts]\npipeline = \"shop\"\n");
    let out = my2pg(&["alert", "test", "--config", f.path().to_str().unwrap()]).await;
    let (_, err) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.starts_with("error: alerts.receivers: no alert receiver"),
        "{err}"
    );
    assert!(err.contains("fix: add a [[alerts.receivers]]"), "{err}");
}

type Hits = Arc<Mutex<Vec<Value>>>;

/// A local receiver answering `status`, recording bodies.
async fn local(status: u16) -> (String, Hits) {
    async fn handle(State((hits, status)): State<(Hits, u16)>, body: Bytes) -> StatusCode {
        hits.lock()
            .unwrap()
            .push(serde_json::from_slice(&body).unwrap_or(Value::Null));
        StatusCode::from_u16(status).unwrap()
    }
    let hits: Hits = Arc::default();
    let app = axum::Router::new()
        .fallback(handle)
        .with_state((Arc::clone(&hits), status));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://{}/services/T0/B0/tok",
        listener.local_addr().unwrap()
    );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, hits)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alert_test_reports_every_receiver_and_sets_the_exit_code() {
    let (pd_url, pd_hits) = local(202).await;
    let (slack_url, slack_hits) = local(404).await;
    let config = format!(
        "[alerts]\npipeline = \"shop\"\n\
         [[alerts.receivers]]\nname = \"oncall\"\nkind = \"pagerduty\"\nrouting_key = \"{SECRET}\"\nurl = \"{pd_url}\"\n\
         [[alerts.receivers]]\nname = \"team\"\nkind = \"slack\"\nurl = \"{slack_url}\"\n"
    );
    let f = write_config(&config);
    let path = f.path().to_str().unwrap();
    let out = my2pg(&["alert", "test", "--config", path]).await;
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stdout}{stderr}");
    assert!(stdout.contains("[ok  ] oncall (pagerduty)"), "{stdout}");
    assert!(
        stdout.contains("test alert triggered and resolved"),
        "{stdout}"
    );
    assert!(stdout.contains("[FAIL] team (slack)"), "{stdout}");
    assert!(stdout.contains("HTTP 404"), "{stdout}");
    assert!(
        stdout.contains("fix: the endpoint does not exist"),
        "{stdout}"
    );
    for s in [&stdout, &stderr] {
        assert!(
            !s.contains(SECRET) && !s.contains("/services/T0"),
            "secret printed: {s}"
        );
    }
    {
        let pd = pd_hits.lock().unwrap();
        let actions: Vec<&str> = pd
            .iter()
            .map(|b| b["event_action"].as_str().unwrap())
            .collect();
        assert_eq!(actions, ["trigger", "resolve"]);
        assert_eq!(pd[0]["payload"]["severity"], "info");
        assert_eq!(pd[0]["dedup_key"], "my2pg/shop/test");
        assert_eq!(pd[0]["payload"]["custom_details"]["test"], true);
    }
    assert_eq!(slack_hits.lock().unwrap().len(), 1, "a 404 is not retried");

    // Only the working receiver, JSON report, trigger only: exit 0.
    let config = config[..config
        .find("[[alerts.receivers]]\nname = \"team\"")
        .unwrap()]
        .to_owned();
    let f = write_config(&config);
    let out = my2pg(&[
        "alert",
        "test",
        "--config",
        f.path().to_str().unwrap(),
        "--format",
        "json",
        "--keep-open",
    ])
    .await;
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    let report: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["ok"], true);
    assert_eq!(report["receivers"][0]["name"], "oncall");
    assert_eq!(report["receivers"][0]["delivered"], true);
    assert_eq!(report["receivers"][0]["attempts"], 1);
    assert_eq!(
        pd_hits.lock().unwrap().len(),
        3,
        "--keep-open sends only the trigger"
    );
}
