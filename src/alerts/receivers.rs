//! Receivers: the payload each service documents, and one HTTP POST that says whether a
//! failure is worth retrying.
//!
//! - **PagerDuty Events API v2** (`POST https://events.pagerduty.com/v2/enqueue`): a trigger
//!   carries `routing_key`, `event_action: "trigger"`, the rule's stable `dedup_key`, and
//!   `payload.{summary (≤ 1024 chars), source, severity, timestamp, component, group, class,
//!   custom_details}`; a resolve carries `routing_key`, `event_action: "resolve"` and the same
//!   `dedup_key`, which is what closes the alert the trigger opened. PagerDuty answers 202;
//!   it documents 429 and 5xx as "retry after some time" and 400 as not worth retrying.
//! - **Slack incoming webhook**: `text` (the notification and fallback line) plus Block Kit
//!   `blocks` (header, section, fields, context). Slack answers 200 `ok`; 4xx bodies name the
//!   problem (`invalid_payload`, `no_service`, `channel_is_archived`). Text from my2pg is
//!   escaped (`&`, `<`, `>`) so an error message cannot ping `<!channel>`.
//! - **Webhook**: my2pg's own JSON, version 1 (see `docs/alerts.md`), with every key always
//!   present (`null` when not applicable) so consumers can rely on the shape.
//!
//! **Secrets stay out of logs.** Routing keys, webhook URLs (Slack's carries its token in the
//! path) and header values are [`Secret`]s; HTTP errors are stripped of their URL
//! ([`reqwest::Error::without_url`]) before they are logged or returned; redirects are not
//! followed (a 3xx is a failure), so no credential is replayed to another host.

use std::time::Duration;

use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue, RETRY_AFTER};
use serde_json::{Value, json};

use super::config::{AlertsConfig, ReceiverConfig, ReceiverKind};
use super::rules::truncate;
use super::{Action, AlertError, AlertEvent, format_duration, rfc3339};
use crate::config::{ConfigError, Secret};

/// PagerDuty's Events API v2 endpoint (US service region; EU accounts set `url` to
/// `https://events.eu.pagerduty.com/v2/enqueue`).
pub const PAGERDUTY_EVENTS_URL: &str = "https://events.pagerduty.com/v2/enqueue";

/// Time limit of one delivery attempt. Ten seconds is far above the sub-second answers of
/// PagerDuty and Slack, and short enough that a hung endpoint is retried rather than waited on.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Time limit to open a connection: an unreachable host is known in seconds, not minutes.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How much of a refusal's body is kept for the log: enough for PagerDuty's and Slack's
/// error names and messages.
const MAX_ERROR_BODY_CHARS: usize = 300;

/// Slack's limits on header text and on section text.
const SLACK_HEADER_CHARS: usize = 150;
const SLACK_SECTION_CHARS: usize = 3000;

/// A failed delivery attempt.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The receiver could not be reached or did not answer in time.
    #[error("cannot reach the receiver")]
    Network {
        /// The HTTP client's error, without the URL.
        #[source]
        source: reqwest::Error,
    },
    /// The receiver answered with an error status.
    #[error("the receiver answered HTTP {status}: {body}")]
    Status {
        /// HTTP status.
        status: u16,
        /// The start of the response body.
        body: String,
        /// The `Retry-After` the receiver asked for, in seconds.
        retry_after: Option<Duration>,
    },
    /// The notification could not be encoded.
    #[error("cannot encode the notification as JSON")]
    Encode {
        /// The encoder's error.
        #[source]
        source: serde_json::Error,
    },
}

impl SendError {
    /// Whether the same request may succeed later: network trouble, 408, 429 and 5xx.
    pub fn is_retryable(&self) -> bool {
        match self {
            SendError::Network { .. } => true,
            SendError::Status { status, .. } => {
                matches!(status, 408 | 429) || (500..600).contains(status)
            }
            SendError::Encode { .. } => false,
        }
    }

    /// The wait the receiver asked for.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            SendError::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// What the operator should do.
    pub fn hint(&self) -> Option<&'static str> {
        match self {
            SendError::Network { .. } => Some(
                "check that this host can reach the receiver (proxy, firewall, DNS) and that its URL is right",
            ),
            SendError::Status { status: 400, .. } => Some(
                "the receiver rejected the payload: for PagerDuty check routing_key (an Events API v2 integration key)",
            ),
            SendError::Status {
                status: 401 | 403, ..
            } => Some("the receiver refused the credentials: check the token, key or headers"),
            SendError::Status {
                status: 404 | 410, ..
            } => Some(
                "the endpoint does not exist (a Slack webhook is revoked when its channel or app goes): create a new one",
            ),
            _ => None,
        }
    }
}

enum Target {
    PagerDuty { url: Secret, routing_key: Secret },
    Slack { url: Secret },
    Webhook { url: Secret, headers: HeaderMap },
}

/// One configured receiver with its HTTP client. `Debug` shows only its name and kind.
pub struct Receiver {
    name: String,
    target: Target,
    client: reqwest::Client,
}

impl std::fmt::Debug for Receiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Receiver")
            .field("name", &self.name)
            .field("kind", &self.kind().as_str())
            .finish_non_exhaustive()
    }
}

/// The HTTP client shared by all receivers: rustls, bounded timeouts, no redirects.
pub fn http_client() -> Result<reqwest::Client, AlertError> {
    reqwest::Client::builder()
        .user_agent(concat!("my2pg/", env!("CARGO_PKG_VERSION")))
        .timeout(REQUEST_TIMEOUT)
        .connect_timeout(CONNECT_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| AlertError::Client {
            source: e.without_url(),
        })
}

/// Builds every receiver of a validated `[alerts]` section with one shared client.
pub fn build_all(cfg: &AlertsConfig) -> Result<Vec<Receiver>, AlertError> {
    let client = http_client()?;
    cfg.receivers
        .iter()
        .enumerate()
        .map(|(i, r)| Receiver::from_config(&format!("alerts.receivers[{i}]"), r, client.clone()))
        .collect()
}

impl Receiver {
    /// Builds a receiver from its (validated) configuration; `key` names it in errors.
    pub fn from_config(
        key: &str,
        cfg: &ReceiverConfig,
        client: reqwest::Client,
    ) -> Result<Receiver, AlertError> {
        let missing = |field: &str| AlertError::Config {
            source: ConfigError::new(
                format!("{key}.{field}"),
                "missing",
                "run `my2pg alert test` to see the configuration problems",
            ),
        };
        let target = match cfg.kind {
            ReceiverKind::Pagerduty => Target::PagerDuty {
                url: cfg
                    .url
                    .clone()
                    .unwrap_or_else(|| Secret::new(PAGERDUTY_EVENTS_URL)),
                routing_key: cfg
                    .routing_key
                    .clone()
                    .ok_or_else(|| missing("routing_key"))?,
            },
            ReceiverKind::Slack => Target::Slack {
                url: cfg.url.clone().ok_or_else(|| missing("url"))?,
            },
            ReceiverKind::Webhook => {
                let mut headers = HeaderMap::new();
                for (name, value) in &cfg.headers {
                    let bad = || AlertError::Config {
                        source: ConfigError::new(
                            format!("{key}.headers.{name}"),
                            "not a valid HTTP header",
                            "use a token-character name and a visible-ASCII value",
                        ),
                    };
                    let n = HeaderName::from_bytes(name.as_bytes()).map_err(|_| bad())?;
                    let mut v = HeaderValue::from_str(value.expose()).map_err(|_| bad())?;
                    v.set_sensitive(true);
                    headers.insert(n, v);
                }
                Target::Webhook {
                    url: cfg.url.clone().ok_or_else(|| missing("url"))?,
                    headers,
                }
            }
        };
        Ok(Receiver {
            name: cfg.name.clone(),
            target,
            client,
        })
    }

    /// The configured name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The service kind.
    pub fn kind(&self) -> ReceiverKind {
        match self.target {
            Target::PagerDuty { .. } => ReceiverKind::Pagerduty,
            Target::Slack { .. } => ReceiverKind::Slack,
            Target::Webhook { .. } => ReceiverKind::Webhook,
        }
    }

    /// The JSON body this receiver sends for `ev`.
    pub fn body(&self, ev: &AlertEvent) -> Value {
        match &self.target {
            Target::PagerDuty { routing_key, .. } => pagerduty_body(ev, routing_key),
            Target::Slack { .. } => slack_body(ev),
            Target::Webhook { .. } => webhook_body(ev),
        }
    }

    /// One delivery attempt.
    pub async fn send(&self, ev: &AlertEvent) -> Result<(), SendError> {
        let body =
            serde_json::to_vec(&self.body(ev)).map_err(|source| SendError::Encode { source })?;
        let (url, headers) = match &self.target {
            Target::PagerDuty { url, .. } | Target::Slack { url } => (url, None),
            Target::Webhook { url, headers } => (url, Some(headers)),
        };
        let mut req = self
            .client
            .post(url.expose())
            .header(CONTENT_TYPE, "application/json")
            .body(body);
        if let Some(h) = headers {
            req = req.headers(h.clone());
        }
        let resp = req.send().await.map_err(|e| SendError::Network {
            source: e.without_url(),
        })?;
        let status = resp.status();
        if status.is_success() {
            return Ok(());
        }
        let retry_after = resp
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let text = resp.text().await.unwrap_or_default();
        Err(SendError::Status {
            status: status.as_u16(),
            body: truncate(text.trim(), MAX_ERROR_BODY_CHARS),
            retry_after,
        })
    }
}

fn value_text(ev: &AlertEvent, v: f64) -> String {
    if ev.kind == "drift" {
        format!("{v} rows")
    } else if v.is_infinite() {
        "unlimited".to_owned()
    } else {
        format_duration(Duration::from_secs_f64(v.max(0.0)))
    }
}

/// PagerDuty Events API v2 body: a full alert event for a trigger, the documented
/// `routing_key` + `event_action` + `dedup_key` triple for a resolve.
pub fn pagerduty_body(ev: &AlertEvent, routing_key: &Secret) -> Value {
    if ev.action == Action::Resolve {
        return json!({
            "routing_key": routing_key.expose(),
            "event_action": "resolve",
            "dedup_key": ev.dedup_key,
        });
    }
    let mut details = serde_json::Map::new();
    details.insert("rule".into(), json!(ev.rule));
    details.insert("kind".into(), json!(ev.kind));
    details.insert("pipeline".into(), json!(ev.pipeline));
    if let Some(v) = ev.value {
        details.insert("value".into(), json!(value_text(ev, v)));
    }
    if let Some(t) = ev.threshold {
        details.insert("threshold".into(), json!(value_text(ev, t)));
    }
    if let Some(e) = &ev.error {
        details.insert("error".into(), json!(e));
    }
    details.insert("firing_since".into(), json!(rfc3339(ev.firing_since)));
    details.insert("notification".into(), json!(ev.notification));
    if ev.test {
        details.insert("test".into(), json!(true));
    }
    json!({
        "routing_key": routing_key.expose(),
        "event_action": "trigger",
        "dedup_key": ev.dedup_key,
        "client": "my2pg",
        "payload": {
            "summary": ev.summary,
            "source": ev.source,
            "severity": ev.severity.as_str(),
            "timestamp": rfc3339(ev.at),
            "component": "my2pg",
            "group": ev.pipeline,
            "class": ev.kind,
            "custom_details": details,
        },
    })
}

/// Slack's mrkdwn treats `&`, `<` and `>` as markup.
fn slack_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Slack incoming-webhook body: `text` (notification line) and Block Kit `blocks`.
pub fn slack_body(ev: &AlertEvent) -> Value {
    let (icon, state) = match (ev.action, ev.notification) {
        (Action::Resolve, _) => (":white_check_mark:", "RESOLVED"),
        (Action::Trigger, n) if n > 1 => (":rotating_light:", "STILL FIRING"),
        (Action::Trigger, _) => (":rotating_light:", "FIRING"),
    };
    let text = format!("{icon} {state}: {}", slack_escape(&ev.summary));
    let header = truncate(
        &format!("{state}: {} ({})", ev.rule, ev.pipeline),
        SLACK_HEADER_CHARS,
    );
    let mut fields = vec![format!("*Severity*\n{}", ev.severity.as_str())];
    if let Some(v) = ev.value {
        fields.push(format!("*Value*\n{}", value_text(ev, v)));
    }
    if let Some(t) = ev.threshold {
        fields.push(format!("*Threshold*\n{}", value_text(ev, t)));
    }
    fields.push(format!("*Firing since*\n{}", rfc3339(ev.firing_since)));
    if ev.action == Action::Resolve {
        let lasted = ev.at.duration_since(ev.firing_since).unwrap_or_default();
        fields.push(format!("*Lasted*\n{}", format_duration(lasted)));
    }
    let mut blocks = vec![
        json!({"type": "header", "text": {"type": "plain_text", "text": header, "emoji": true}}),
        json!({"type": "section", "text": {"type": "mrkdwn", "text": truncate(&text, SLACK_SECTION_CHARS)}}),
        json!({
            "type": "section",
            "fields": fields.iter().map(|f| json!({"type": "mrkdwn", "text": f})).collect::<Vec<_>>(),
        }),
    ];
    if let Some(e) = &ev.error {
        let code = format!(
            "```{}```",
            slack_escape(&truncate(e, SLACK_SECTION_CHARS - 10))
        );
        blocks.push(json!({"type": "section", "text": {"type": "mrkdwn", "text": code}}));
    }
    blocks.push(json!({
        "type": "context",
        "elements": [{
            "type": "mrkdwn",
            "text": format!("my2pg {} · {} · dedup key `{}`", env!("CARGO_PKG_VERSION"), slack_escape(&ev.source), slack_escape(&ev.dedup_key)),
        }],
    }));
    json!({"text": text, "blocks": blocks})
}

/// The generic webhook body, version 1. Keys are always present; `null` when not applicable.
pub fn webhook_body(ev: &AlertEvent) -> Value {
    json!({
        "version": 1,
        "status": match ev.action { Action::Trigger => "firing", Action::Resolve => "resolved" },
        "test": ev.test,
        "pipeline": ev.pipeline,
        "source": ev.source,
        "rule": ev.rule,
        "kind": ev.kind,
        "severity": ev.severity.as_str(),
        "dedup_key": ev.dedup_key,
        "summary": ev.summary,
        "value": ev.value.filter(|v| v.is_finite()),
        "threshold": ev.threshold,
        "error": ev.error,
        "firing_since": rfc3339(ev.firing_since),
        "at": rfc3339(ev.at),
        "notification": ev.notification,
    })
}
