//! `[alerts]`: rules and receivers as written in the config file, their validation (naming the
//! key path and the fix), and their resolution into the runtime [`Rule`]s with every default
//! applied. `docs/alerts.md` is the operator's reference with a full example.
//!
//! Rules and receivers are flat tables with a `kind` key rather than serde-tagged enums: a key
//! that does not belong to a kind (`threshold` on a `stopped` rule, `routing_key` on a Slack
//! receiver) is then reported by [`AlertsConfig::validate`] as "not used by kind …" with the
//! key path, instead of a generic "unknown variant" from the deserializer.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::{ConfigError, Secret};

use super::rules::Rule;

/// Default pipeline name, used in dedup keys and message titles. Set `alerts.pipeline` when
/// several migrations page the same on-call, so their alerts do not merge.
pub const DEFAULT_PIPELINE: &str = "my2pg";

/// Default evaluation period in seconds. Lag moves with each heartbeat (1 s); five seconds
/// adds at most five seconds to any `for_secs` while costing nothing measurable.
pub const DEFAULT_EVALUATE_EVERY_SECS: u64 = 5;

/// Default repeat interval of a firing alert in seconds. An hour keeps a forgotten problem in
/// view during a sync window of days without turning a known incident into noise;
/// PagerDuty folds repeats into the open alert (same dedup key), so they re-page only after
/// someone resolved the incident by hand while the condition still holds.
pub const DEFAULT_REPEAT_SECS: u64 = 3600;

/// Default time, in seconds, a condition must stay clear before the resolve is sent. With the
/// clear band, this is what stops a value hovering at the threshold from paging and resolving
/// over and over: a minute is longer than any heartbeat or verify jitter.
pub const DEFAULT_CLEAR_FOR_SECS: u64 = 60;

/// Default clear level of an "above" rule, as a fraction of its threshold: lag must fall to
/// 80 % of the threshold before the alert clears (hysteresis band).
pub const DEFAULT_CLEAR_RATIO_ABOVE: f64 = 0.8;

/// Default clear level of a "below" rule (binlog runway), as a multiple of its threshold.
pub const DEFAULT_CLEAR_RATIO_BELOW: f64 = 1.25;

/// Default lag threshold in seconds: a replica five minutes behind delays a cutover by
/// minutes, while bulk jobs on a healthy source cause shorter bursts.
pub const DEFAULT_LAG_THRESHOLD_SECS: f64 = 300.0;

/// Default `for_secs` of a lag rule: two minutes filters one-off bursts (a bulk update, a
/// target checkpoint) and still pages long before a cutover window is at risk.
pub const DEFAULT_LAG_FOR_SECS: u64 = 120;

/// Default binlog runway threshold in seconds: six hours is enough for on-call to raise
/// `binlog_expire_logs_seconds` (or fix whatever stalls apply) before the source purges the
/// binlog my2pg must resume from, which would force a new snapshot.
pub const DEFAULT_RUNWAY_THRESHOLD_SECS: f64 = 6.0 * 3600.0;

/// Default snapshot stall threshold in seconds: a chunk takes seconds, a huge row or a slow
/// link a minute or two; fifteen minutes without one means the copy is stuck.
pub const DEFAULT_SNAPSHOT_STALL_SECS: f64 = 900.0;

/// `[alerts]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertsConfig {
    /// Names this migration in dedup keys and messages.
    #[serde(default = "default_pipeline")]
    pub pipeline: String,
    /// PagerDuty `payload.source` and the webhook's `source` (default `my2pg:<pipeline>`).
    #[serde(default)]
    pub source: Option<String>,
    /// How often rules are evaluated, in seconds.
    #[serde(default = "default_evaluate_every_secs")]
    pub evaluate_every_secs: u64,
    /// The rules; absent = the default set (see [`default_rules`]), `[]` = none.
    #[serde(default)]
    pub rules: Option<Vec<RuleConfig>>,
    /// Where alerts go.
    #[serde(default)]
    pub receivers: Vec<ReceiverConfig>,
}

fn default_pipeline() -> String {
    DEFAULT_PIPELINE.to_owned()
}

fn default_evaluate_every_secs() -> u64 {
    DEFAULT_EVALUATE_EVERY_SECS
}

impl Default for AlertsConfig {
    fn default() -> Self {
        AlertsConfig {
            pipeline: default_pipeline(),
            source: None,
            evaluate_every_secs: DEFAULT_EVALUATE_EVERY_SECS,
            rules: None,
            receivers: Vec::new(),
        }
    }
}

/// What a rule watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleKind {
    /// Replication lag in seconds above `threshold`.
    Lag,
    /// Rows differing in the last verification above `threshold` (default 0).
    Drift,
    /// The pipeline stopped with a definite error.
    Stopped,
    /// Seconds until the checkpoint's binlog is purged below `threshold`.
    BinlogRunway,
    /// No snapshot progress for more than `threshold` seconds while copying.
    SnapshotStalled,
}

impl RuleKind {
    /// The `kind` value.
    pub fn as_str(self) -> &'static str {
        match self {
            RuleKind::Lag => "lag",
            RuleKind::Drift => "drift",
            RuleKind::Stopped => "stopped",
            RuleKind::BinlogRunway => "binlog_runway",
            RuleKind::SnapshotStalled => "snapshot_stalled",
        }
    }

    /// Whether the rule fires when the value falls *below* the threshold.
    pub fn fires_below(self) -> bool {
        self == RuleKind::BinlogRunway
    }

    fn default_threshold(self) -> f64 {
        match self {
            RuleKind::Lag => DEFAULT_LAG_THRESHOLD_SECS,
            RuleKind::Drift | RuleKind::Stopped => 0.0,
            RuleKind::BinlogRunway => DEFAULT_RUNWAY_THRESHOLD_SECS,
            RuleKind::SnapshotStalled => DEFAULT_SNAPSHOT_STALL_SECS,
        }
    }

    fn default_for_secs(self) -> u64 {
        match self {
            RuleKind::Lag => DEFAULT_LAG_FOR_SECS,
            // A verify result, a definite error, a runway and a stall are settled facts
            // already (the stall threshold is itself a duration).
            _ => 0,
        }
    }

    fn default_severity(self) -> Severity {
        match self {
            RuleKind::SnapshotStalled => Severity::Error,
            _ => Severity::Critical,
        }
    }
}

/// Severity, with PagerDuty's four values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Wake someone up.
    Critical,
    /// Needs action soon.
    Error,
    /// Needs attention.
    Warning,
    /// For the record.
    Info,
}

impl Severity {
    /// PagerDuty's `payload.severity` value.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Critical => "critical",
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Info => "info",
        }
    }
}

/// `[[alerts.rules]]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// Unique name; part of the dedup key, so renaming a rule opens a new incident.
    pub name: String,
    /// What the rule watches.
    pub kind: RuleKind,
    /// Fire beyond this value (seconds, or rows for `drift`); not used by `stopped`.
    #[serde(default)]
    pub threshold: Option<f64>,
    /// Clear only back past this value (hysteresis); not used by `stopped`.
    #[serde(default)]
    pub clear: Option<f64>,
    /// The condition must hold this long before the alert fires.
    #[serde(default)]
    pub for_secs: Option<u64>,
    /// The condition must stay clear this long before the resolve is sent.
    #[serde(default)]
    pub clear_for_secs: Option<u64>,
    /// Re-send a firing alert this often; 0 = never.
    #[serde(default)]
    pub repeat_secs: Option<u64>,
    /// Severity (default `critical`, `error` for `snapshot_stalled`).
    #[serde(default)]
    pub severity: Option<Severity>,
    /// Receiver names; empty = every receiver.
    #[serde(default)]
    pub receivers: Vec<String>,
}

/// Which service a receiver talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReceiverKind {
    /// PagerDuty Events API v2.
    Pagerduty,
    /// Slack incoming webhook.
    Slack,
    /// Any HTTP endpoint taking my2pg's JSON.
    Webhook,
}

impl ReceiverKind {
    /// The `kind` value.
    pub fn as_str(self) -> &'static str {
        match self {
            ReceiverKind::Pagerduty => "pagerduty",
            ReceiverKind::Slack => "slack",
            ReceiverKind::Webhook => "webhook",
        }
    }
}

/// `[[alerts.receivers]]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReceiverConfig {
    /// Unique name, used by rules, logs and the `receiver` metric label.
    pub name: String,
    /// The service.
    pub kind: ReceiverKind,
    /// PagerDuty: the Events API v2 integration key.
    #[serde(default)]
    pub routing_key: Option<Secret>,
    /// Slack: the incoming webhook URL; webhook: the endpoint; PagerDuty: an endpoint
    /// replacing `https://events.pagerduty.com/v2/enqueue` (EU service region, a proxy, tests).
    #[serde(default)]
    pub url: Option<Secret>,
    /// Webhook: extra request headers (values are secrets: tokens usually live here).
    #[serde(default)]
    pub headers: BTreeMap<String, Secret>,
}

/// The rules used when `[alerts]` has no `rules` key: one of each kind with its defaults.
pub fn default_rules() -> Vec<RuleConfig> {
    [
        RuleKind::Lag,
        RuleKind::Drift,
        RuleKind::Stopped,
        RuleKind::BinlogRunway,
        RuleKind::SnapshotStalled,
    ]
    .into_iter()
    .map(|kind| RuleConfig {
        name: kind.as_str().to_owned(),
        kind,
        threshold: None,
        clear: None,
        for_secs: None,
        clear_for_secs: None,
        repeat_secs: None,
        severity: None,
        receivers: Vec::new(),
    })
    .collect()
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

fn check_url(key: &str, url: &Secret) -> Result<(), ConfigError> {
    // The URL is a secret (Slack's carries its token in the path): never echo it.
    match url::Url::parse(url.expose()) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => Ok(()),
        Ok(_) => Err(ConfigError::new(
            key,
            "the URL is not an http:// or https:// URL with a host",
            "write the full URL, e.g. https://hooks.slack.com/services/…",
        )),
        Err(e) => Err(ConfigError::new(
            key,
            format!("not a valid URL: {e}"),
            "write the full URL, e.g. https://hooks.slack.com/services/…",
        )),
    }
}

impl AlertsConfig {
    /// The rule configurations in force (the default set when `rules` is absent).
    pub fn rule_configs(&self) -> Vec<RuleConfig> {
        self.rules.clone().unwrap_or_else(default_rules)
    }

    /// The rules with every default applied. Call after [`AlertsConfig::validate`].
    pub fn resolved_rules(&self) -> Vec<Rule> {
        self.rule_configs()
            .iter()
            .map(RuleConfig::resolve)
            .collect()
    }

    /// `payload.source` for PagerDuty and `source` for webhooks.
    pub fn source_name(&self) -> String {
        self.source
            .clone()
            .unwrap_or_else(|| format!("my2pg:{}", self.pipeline))
    }

    /// Checks `[alerts]`, naming the key path and the fix.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !valid_name(&self.pipeline) {
            return Err(ConfigError::new(
                "alerts.pipeline",
                format!("{:?} is not a valid pipeline name", self.pipeline),
                "use 1 to 64 letters, digits, '-', '_' or '.', e.g. shop-prod",
            ));
        }
        if self.evaluate_every_secs == 0 {
            return Err(ConfigError::new(
                "alerts.evaluate_every_secs",
                "0 is not a period",
                format!("set it to e.g. {DEFAULT_EVALUATE_EVERY_SECS}"),
            ));
        }
        let mut names = BTreeSet::new();
        for (i, r) in self.receivers.iter().enumerate() {
            let key = format!("alerts.receivers[{i}]");
            validate_receiver(&key, r)?;
            if !names.insert(r.name.as_str()) {
                return Err(ConfigError::new(
                    format!("{key}.name"),
                    format!("receiver name {:?} is used twice", r.name),
                    "give every receiver its own name",
                ));
            }
        }
        let mut rule_names = BTreeSet::new();
        for (i, r) in self.rules.iter().flatten().enumerate() {
            let key = format!("alerts.rules[{i}]");
            validate_rule(&key, r)?;
            if !rule_names.insert(r.name.as_str()) {
                return Err(ConfigError::new(
                    format!("{key}.name"),
                    format!("rule name {:?} is used twice", r.name),
                    "give every rule its own name (it is part of the PagerDuty dedup key)",
                ));
            }
            for (j, name) in r.receivers.iter().enumerate() {
                if !names.contains(name.as_str()) {
                    return Err(ConfigError::new(
                        format!("{key}.receivers[{j}]"),
                        format!("no receiver is named {name:?}"),
                        format!(
                            "use one of the [[alerts.receivers]] names: {}",
                            names.iter().cloned().collect::<Vec<_>>().join(", ")
                        ),
                    ));
                }
            }
        }
        if self.rules.as_ref().is_some_and(|r| !r.is_empty()) && self.receivers.is_empty() {
            return Err(ConfigError::new(
                "alerts.receivers",
                "rules are configured but no receiver",
                "add a [[alerts.receivers]] table (pagerduty, slack or webhook)",
            ));
        }
        Ok(())
    }
}

fn validate_receiver(key: &str, r: &ReceiverConfig) -> Result<(), ConfigError> {
    if !valid_name(&r.name) {
        return Err(ConfigError::new(
            format!("{key}.name"),
            format!("{:?} is not a valid receiver name", r.name),
            "use 1 to 64 letters, digits, '-', '_' or '.', e.g. oncall",
        ));
    }
    let unused = |field: &str| {
        ConfigError::new(
            format!("{key}.{field}"),
            format!("not used by kind = {:?}", r.kind.as_str()),
            "remove the key",
        )
    };
    match r.kind {
        ReceiverKind::Pagerduty => {
            match &r.routing_key {
                Some(k) if !k.expose().trim().is_empty() => {}
                _ => {
                    return Err(ConfigError::new(
                        format!("{key}.routing_key"),
                        "a PagerDuty receiver needs its integration key",
                        "set routing_key = \"${PAGERDUTY_ROUTING_KEY}\" (the Events API v2 integration key of the service)",
                    ));
                }
            }
            if let Some(u) = &r.url {
                check_url(&format!("{key}.url"), u)?;
            }
            if !r.headers.is_empty() {
                return Err(unused("headers"));
            }
        }
        ReceiverKind::Slack | ReceiverKind::Webhook => {
            let Some(u) = &r.url else {
                return Err(ConfigError::new(
                    format!("{key}.url"),
                    format!("a {} receiver needs its URL", r.kind.as_str()),
                    if r.kind == ReceiverKind::Slack {
                        "set url = \"${SLACK_WEBHOOK_URL}\" (the channel's incoming webhook URL)"
                    } else {
                        "set url = \"https://…\" (the endpoint that receives the JSON)"
                    },
                ));
            };
            check_url(&format!("{key}.url"), u)?;
            if r.routing_key.is_some() {
                return Err(unused("routing_key"));
            }
            if r.kind == ReceiverKind::Slack && !r.headers.is_empty() {
                return Err(unused("headers"));
            }
            for (name, value) in &r.headers {
                let bad_name = reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err();
                let bad_value = reqwest::header::HeaderValue::from_str(value.expose()).is_err();
                if bad_name || bad_value {
                    return Err(ConfigError::new(
                        format!("{key}.headers.{name}"),
                        if bad_name {
                            "not a valid HTTP header name"
                        } else {
                            "the value is not a valid HTTP header value"
                        },
                        "use a token-character name (e.g. Authorization) and a visible-ASCII value",
                    ));
                }
            }
        }
    }
    Ok(())
}

fn validate_rule(key: &str, r: &RuleConfig) -> Result<(), ConfigError> {
    if !valid_name(&r.name) {
        return Err(ConfigError::new(
            format!("{key}.name"),
            format!("{:?} is not a valid rule name", r.name),
            "use 1 to 64 letters, digits, '-', '_' or '.', e.g. replica-behind",
        ));
    }
    if r.kind == RuleKind::Stopped {
        for (field, set) in [
            ("threshold", r.threshold.is_some()),
            ("clear", r.clear.is_some()),
        ] {
            if set {
                return Err(ConfigError::new(
                    format!("{key}.{field}"),
                    "not used by kind = \"stopped\" (it fires on any definite error)",
                    "remove the key",
                ));
            }
        }
        return Ok(());
    }
    for (field, v) in [("threshold", r.threshold), ("clear", r.clear)] {
        if let Some(v) = v
            && !(v.is_finite() && v >= 0.0)
        {
            return Err(ConfigError::new(
                format!("{key}.{field}"),
                format!("{v} is not a finite number ≥ 0"),
                "write a number of seconds (rows for kind = \"drift\")",
            ));
        }
    }
    let resolved = r.resolve();
    let (bad, fix) = if r.kind.fires_below() {
        (
            resolved.clear < resolved.threshold,
            "clear must be ≥ threshold: the runway must grow back past it",
        )
    } else {
        (
            resolved.clear > resolved.threshold,
            "clear must be ≤ threshold: the value must fall back below it",
        )
    };
    if bad {
        return Err(ConfigError::new(
            format!("{key}.clear"),
            format!(
                "clear = {} is on the wrong side of threshold = {}",
                resolved.clear, resolved.threshold
            ),
            fix,
        ));
    }
    Ok(())
}

impl RuleConfig {
    /// The runtime rule with every default applied.
    pub fn resolve(&self) -> Rule {
        let threshold = self
            .threshold
            .unwrap_or_else(|| self.kind.default_threshold());
        let clear = self.clear.unwrap_or(if self.kind.fires_below() {
            threshold * DEFAULT_CLEAR_RATIO_BELOW
        } else {
            threshold * DEFAULT_CLEAR_RATIO_ABOVE
        });
        Rule {
            name: self.name.clone(),
            kind: self.kind,
            threshold,
            clear,
            for_: Duration::from_secs(
                self.for_secs
                    .unwrap_or_else(|| self.kind.default_for_secs()),
            ),
            clear_for: Duration::from_secs(self.clear_for_secs.unwrap_or(DEFAULT_CLEAR_FOR_SECS)),
            repeat: match self.repeat_secs.unwrap_or(DEFAULT_REPEAT_SECS) {
                0 => None,
                s => Some(Duration::from_secs(s)),
            },
            severity: self
                .severity
                .unwrap_or_else(|| self.kind.default_severity()),
            receivers: self.receivers.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(kind: RuleKind) -> RuleConfig {
        RuleConfig {
            name: "r".into(),
            ..default_rules()
                .into_iter()
                .find(|r| r.kind == kind)
                .unwrap()
        }
    }

    #[test]
    fn defaults_resolve_with_a_hysteresis_band() {
        let lag = rule(RuleKind::Lag).resolve();
        assert_eq!(lag.threshold, DEFAULT_LAG_THRESHOLD_SECS);
        assert_eq!(lag.clear, DEFAULT_LAG_THRESHOLD_SECS * 0.8);
        assert_eq!(lag.for_, Duration::from_secs(DEFAULT_LAG_FOR_SECS));
        let runway = rule(RuleKind::BinlogRunway).resolve();
        assert!(runway.clear > runway.threshold);
        let drift = rule(RuleKind::Drift).resolve();
        assert_eq!((drift.threshold, drift.clear), (0.0, 0.0));
    }

    #[test]
    fn validation_names_the_key_path() {
        let mut cfg = AlertsConfig {
            rules: Some(vec![RuleConfig {
                clear: Some(400.0),
                threshold: Some(300.0),
                ..rule(RuleKind::Lag)
            }]),
            receivers: vec![ReceiverConfig {
                name: "oncall".into(),
                kind: ReceiverKind::Pagerduty,
                routing_key: Some(Secret::new("k")),
                url: None,
                headers: BTreeMap::new(),
            }],
            ..AlertsConfig::default()
        };
        assert_eq!(cfg.validate().unwrap_err().key, "alerts.rules[0].clear");
        cfg.rules = Some(vec![RuleConfig {
            receivers: vec!["pager".into()],
            ..rule(RuleKind::Lag)
        }]);
        let e = cfg.validate().unwrap_err();
        assert_eq!(e.key, "alerts.rules[0].receivers[0]");
        assert!(e.fix.contains("oncall"), "{}", e.fix);
        cfg.rules = Some(vec![RuleConfig {
            threshold: Some(1.0),
            ..rule(RuleKind::Stopped)
        }]);
        assert_eq!(cfg.validate().unwrap_err().key, "alerts.rules[0].threshold");
        cfg.rules = None;
        cfg.receivers[0].kind = ReceiverKind::Slack;
        assert_eq!(cfg.validate().unwrap_err().key, "alerts.receivers[0].url");
        cfg.receivers[0].url = Some(Secret::new("hooks.slack.com/services/T/B/secret"));
        let e = cfg.validate().unwrap_err();
        assert!(!e.to_string().contains("secret"), "{e}");
    }
}
