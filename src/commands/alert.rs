//! `my2pg alert test`: sends a test notification to every configured receiver and reports,
//! per receiver, whether it was delivered.
//!
//! Each receiver gets a `trigger` of the rule `test` (severity `info`, dedup key
//! `my2pg/<pipeline>/test`) and then its `resolve`, so a PagerDuty service sees an alert open
//! and close and nobody is left with an incident to clean up; `--keep-open` skips the resolve
//! to check the whole paging path (phone, escalation). Receivers are tried concurrently with a
//! short retry policy, the same HTTP client and payloads as `my2pg sync`. Exit code 0 when
//! every receiver accepted everything, 2 otherwise.

use std::fmt::Write as _;
use std::time::SystemTime;

use anyhow::Result;
use serde::Serialize;

use crate::alerts::delivery::{self, RetryPolicy};
use crate::alerts::{Action, AlertEvent, receivers};
use crate::cli::Format;
use crate::config::{Config, ConfigError};
use crate::exit;

/// One receiver's result.
#[derive(Debug, Serialize)]
pub struct ReceiverResult {
    /// Receiver name.
    pub name: String,
    /// `pagerduty`, `slack` or `webhook`.
    pub kind: &'static str,
    /// Whether every notification was accepted.
    pub delivered: bool,
    /// HTTP attempts made in all.
    pub attempts: u32,
    /// The last error, when not delivered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// What to do about it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

/// The whole report.
#[derive(Debug, Serialize)]
pub struct AlertTestReport {
    /// `alerts.pipeline`.
    pub pipeline: String,
    /// Per receiver, in configuration order.
    pub receivers: Vec<ReceiverResult>,
    /// Whether every receiver got everything.
    pub ok: bool,
}

/// Sends the test notifications and prints the report.
pub async fn test(cfg: &Config, format: Format, keep_open: bool) -> Result<u8> {
    let alerts = &cfg.alerts;
    if alerts.receivers.is_empty() {
        return Err(ConfigError::new(
            "alerts.receivers",
            "no alert receiver is configured",
            "add a [[alerts.receivers]] table with kind = \"pagerduty\", \"slack\" or \"webhook\" (see docs/alerts.md)",
        )
        .into());
    }
    let receivers = receivers::build_all(alerts)?;
    let policy = RetryPolicy::quick();
    let now = SystemTime::now();
    let mut actions = vec![Action::Trigger];
    if !keep_open {
        actions.push(Action::Resolve);
    }
    let results = futures::future::join_all(receivers.iter().map(|r| {
        let (policy, actions) = (&policy, &actions);
        async move {
            let mut result = ReceiverResult {
                name: r.name().to_owned(),
                kind: r.kind().as_str(),
                delivered: true,
                attempts: 0,
                error: None,
                fix: None,
            };
            for &action in actions {
                let ev = AlertEvent::test(alerts, action, now);
                let (attempts, outcome) = delivery::deliver(r, &ev, policy, None).await;
                result.attempts += attempts;
                match outcome {
                    Ok(()) => {}
                    Err(e) => {
                        result.delivered = false;
                        result.error = Some(format!(
                            "{} failed: {}",
                            action.as_str(),
                            delivery::error_chain(&e)
                        ));
                        result.fix = e.hint().map(str::to_owned);
                        break;
                    }
                }
            }
            result
        }
    }))
    .await;
    let ok = results.iter().all(|r| r.delivered);
    let report = AlertTestReport {
        pipeline: alerts.pipeline.clone(),
        receivers: results,
        ok,
    };
    match format {
        Format::Json => exit::emit(&serde_json::to_string_pretty(&report)?),
        Format::Text => exit::emit(&render_text(&report, keep_open)),
    }
    Ok(if ok { exit::OK } else { exit::ERROR })
}

fn render_text(r: &AlertTestReport, keep_open: bool) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "alert test for pipeline {}: {} receiver(s)",
        r.pipeline,
        r.receivers.len()
    );
    let width = r
        .receivers
        .iter()
        .map(|x| x.name.len() + x.kind.len() + 3)
        .max()
        .unwrap_or(0);
    for x in &r.receivers {
        let label = format!("{} ({})", x.name, x.kind);
        if x.delivered {
            let what = if keep_open {
                "test alert triggered (left open)"
            } else {
                "test alert triggered and resolved"
            };
            let _ = writeln!(out, "  [ok  ] {label:<width$}  {what}");
        } else {
            let _ = writeln!(
                out,
                "  [FAIL] {label:<width$}  {}",
                x.error.as_deref().unwrap_or("not delivered")
            );
            if let Some(f) = &x.fix {
                let _ = writeln!(out, "         fix: {f}");
            }
        }
    }
    let _ = writeln!(
        out,
        "{}",
        if r.ok {
            "every receiver accepted the test alert"
        } else {
            "some receivers did not accept the test alert"
        }
    );
    out
}
