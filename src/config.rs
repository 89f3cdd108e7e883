//! Configuration: one TOML file, environment overrides and command-line flags, merged in that
//! order of increasing precedence.
//!
//! - The file is parsed, then `${VAR}` in any string value is replaced by the environment
//!   variable `VAR` (`$${` writes a literal `${`); a missing variable is an error naming the key.
//! - Environment variables `MY2PG_<SECTION>__<KEY>` (double underscore between levels) override
//!   keys, e.g. `MY2PG_SYNC__BATCH_ROWS=5000`. `MY2PG_SOURCE_URL` and `MY2PG_TARGET_URL` are the
//!   twins of `--source` / `--target`.
//! - Flags (`--source`, `--target`, `--databases`, `--include`, `--exclude`) override both.
//!
//! Unknown keys are rejected (`deny_unknown_fields`); [`Config::validate`] names the field path
//! and the fix. Secrets (passwords, URLs holding them, tokens) are wrapped in [`Secret`] so that
//! `Debug` and logs print `***`.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Serialized};
use serde::{Deserialize, Serialize};

use schemas::TableId;

/// A configuration problem: the key, what is wrong, and how to fix it.
#[derive(Debug, thiserror::Error)]
#[error("{key}: {problem}")]
pub struct ConfigError {
    /// Dotted key path (`source.url`), or the file for syntax errors.
    pub key: String,
    /// What is wrong.
    pub problem: String,
    /// How to fix it.
    pub fix: String,
}

impl ConfigError {
    /// A problem at `key`, with the fix.
    pub fn new(key: impl Into<String>, problem: impl Into<String>, fix: impl Into<String>) -> Self {
        ConfigError {
            key: key.into(),
            problem: problem.into(),
            fix: fix.into(),
        }
    }
}

/// A string that must not appear in logs. `Debug` and `Display` print `***` (URLs print with
/// only the password replaced).
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }

    /// The secret itself. Call only to hand it to a driver.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// A connection URL that may hold a password: printed with the password replaced by `***`.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SecretUrl(String);

impl SecretUrl {
    /// Wraps a URL.
    pub fn new(s: impl Into<String>) -> Self {
        SecretUrl(s.into())
    }

    /// The URL with its password. Call only to hand it to a driver.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", cdc_reader::connect::redact_url(&self.0))
    }
}

impl fmt::Display for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&cdc_reader::connect::redact_url(&self.0))
    }
}

/// The whole configuration.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The MySQL/MariaDB source.
    #[serde(default)]
    pub source: SourceConfig,
    /// The PostgreSQL target.
    #[serde(default)]
    pub target: TargetConfig,
    /// Which tables to migrate and where they go.
    #[serde(default)]
    pub tables: TablesConfig,
    /// `/metrics`, `/healthz` and `/readyz` of `my2pg sync` (see `crate::http`).
    #[serde(default)]
    pub http: crate::http::HttpConfig,
    /// On-call alert rules and receivers (see `crate::alerts` and `docs/alerts.md`).
    #[serde(default)]
    pub alerts: crate::alerts::AlertsConfig,
    /// How types map and what happens to values PostgreSQL cannot hold
    /// (`docs/type-mapping.md`).
    #[serde(default)]
    pub mapping: schemas::mapping::MappingOptions,
    /// How `my2pg sync` streams and applies (`docs/configuration.md`).
    #[serde(default)]
    pub sync: SyncConfig,
    /// How the initial copy runs.
    #[serde(default)]
    pub snapshot: SnapshotConfig,
    /// `[[transform]]` stages, applied in order to every copied and streamed row (and by
    /// `verify` to the source side). See `docs/configuration.md`.
    #[serde(default, rename = "transform")]
    pub transforms: Vec<transform::TransformConfig>,
    /// Continuous verification inside `my2pg sync` (`[verify]`, `docs/verify.md`).
    #[serde(default)]
    pub verify: VerifyConfig,
    /// Kafka between the reader and the apply workers (`sync --via kafka`, `my2pg apply`;
    /// `docs/kafka.md`).
    #[serde(default)]
    pub kafka: KafkaConfig,
}

/// Default topic prefix (Debezium's `topic.prefix`): topics are `my2pg.<db>.<table>`.
pub const DEFAULT_KAFKA_PREFIX: &str = "my2pg";
/// Partitions of the table topics my2pg creates: enough for a handful of apply workers per
/// table; more partitions than workers cost little, fewer cap the parallelism.
pub const DEFAULT_KAFKA_PARTITIONS: i32 = 6;
/// Consumer group of `my2pg apply` workers.
pub const DEFAULT_KAFKA_GROUP: &str = "my2pg-apply";

/// `[kafka]`.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaConfig {
    /// `bootstrap.servers`, e.g. `kafka1:9092,kafka2:9092`.
    pub brokers: String,
    /// Topic prefix: table topics are `<prefix>.<database>.<table>`.
    pub topic_prefix: String,
    /// Partitions of the table topics my2pg creates (existing topics are left as they are).
    pub partitions: i32,
    /// Replication factor of the topics my2pg creates.
    pub replication: i32,
    /// Consumer group of the apply workers.
    pub group: String,
    /// A message that is not an applicable change event (not JSON, unknown table, wrong
    /// schema): `stop` (name topic, partition and offset) or `dead_letter`.
    pub on_poison: sink::apply::ErrorPolicy,
    /// Extra librdkafka properties, passed as they are (`security.protocol`,
    /// `sasl.mechanism`, `sasl.username`, `sasl.password`, timeouts).
    pub client: std::collections::BTreeMap<String, String>,
    /// Topic layout: `per_table` (default: scales out, eventually consistent across tables)
    /// or `transactional` (one single-partition topic, one active worker, source
    /// transactions applied whole).
    pub mode: sink::kafka::KafkaMode,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        KafkaConfig {
            brokers: String::new(),
            topic_prefix: DEFAULT_KAFKA_PREFIX.to_owned(),
            partitions: DEFAULT_KAFKA_PARTITIONS,
            replication: 1,
            group: DEFAULT_KAFKA_GROUP.to_owned(),
            on_poison: sink::apply::ErrorPolicy::Stop,
            client: Default::default(),
            mode: sink::kafka::KafkaMode::PerTable,
        }
    }
}

impl fmt::Debug for KafkaConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let client: Vec<(&String, &str)> = self
            .client
            .iter()
            .map(|(k, v)| {
                let secret = k.contains("password") || k.contains("secret") || k.contains("key");
                (k, if secret { "***" } else { v.as_str() })
            })
            .collect();
        f.debug_struct("KafkaConfig")
            .field("brokers", &self.brokers)
            .field("topic_prefix", &self.topic_prefix)
            .field("group", &self.group)
            .field("mode", &self.mode)
            .field("client", &client)
            .finish_non_exhaustive()
    }
}

impl KafkaConfig {
    /// The client options; an error naming `kafka.brokers` when it is empty.
    pub fn options(&self) -> Result<sink::kafka::KafkaOptions, ConfigError> {
        if self.brokers.trim().is_empty() {
            return Err(ConfigError::new(
                "kafka.brokers",
                "no Kafka brokers configured",
                "set [kafka] brokers = \"host:9092\" (or MY2PG_KAFKA__BROKERS)",
            ));
        }
        if self.topic_prefix.is_empty() || self.topic_prefix.contains(['/', ' ']) {
            return Err(ConfigError::new(
                "kafka.topic_prefix",
                format!("{:?} is not a usable topic prefix", self.topic_prefix),
                "use letters, digits, '.', '_' or '-', e.g. my2pg",
            ));
        }
        Ok(sink::kafka::KafkaOptions {
            brokers: self.brokers.clone(),
            topic_prefix: self.topic_prefix.clone(),
            partitions: self.partitions.max(1),
            replication: self.replication.max(1),
            group: self.group.clone(),
            client: self.client.clone(),
            mode: self.mode,
        })
    }
}

/// `[verify]`: background verification inside `my2pg sync`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VerifyConfig {
    /// Seconds between the starts of two background passes over every table; 0 (the default)
    /// turns background verification off, because a pass reads every row of both databases.
    pub interval_secs: u64,
    /// Cap on rows read per second from each side per table during a background pass
    /// (protects a busy source); none when unset.
    pub max_rows_per_second: Option<u64>,
}

/// Rows per apply transaction: large enough that per-transaction costs (the checkpoint row,
/// the commit's WAL flush) stay a small share, small enough that a batch is a few megabytes.
pub const DEFAULT_BATCH_ROWS: usize = 20_000;
/// Bytes per apply transaction (same reasoning, for wide rows).
pub const DEFAULT_BATCH_BYTES: usize = 32 << 20;
/// Source transactions buffered between reader and applier: enough to keep the applier busy
/// while the reader decodes, few enough that memory stays bounded (times the fragment size).
pub const DEFAULT_CHANNEL_CAPACITY: usize = 64;
/// Heartbeat period: one second keeps the measured lag within a second of the truth.
pub const DEFAULT_HEARTBEAT_MS: u64 = 1000;
/// Where the heartbeat row lives on the source.
pub const DEFAULT_HEARTBEAT_TABLE: &str = "my2pg.heartbeat";
/// Longest wait between retries after a transient error.
pub const DEFAULT_RETRY_MAX_SECS: u64 = 60;
/// Snapshot workers: each waits on one server or the other part of the time, so four keep
/// both servers of the 2-core benchmark host busy.
pub const DEFAULT_SNAPSHOT_WORKERS: usize = 4;
/// Rows per snapshot chunk: a chunk is the unit of resumption and of parallelism.
pub const DEFAULT_CHUNK_ROWS: u64 = 50_000;

/// `[sync]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SyncConfig {
    /// Pipeline name: the key of the checkpoint in `my2pg.checkpoint` (several pipelines may
    /// share a target).
    pub pipeline: String,
    /// Server id my2pg registers with on the source (must differ from every server and
    /// replica of the source).
    pub server_id: u32,
    /// Rows per apply transaction.
    pub batch_rows: usize,
    /// Bytes per apply transaction.
    pub batch_bytes: usize,
    /// Source transactions buffered between reader and applier.
    pub channel_capacity: usize,
    /// Tables without a key: `stop` or `match_full_row`.
    pub tables_without_key: sink::apply::NoKeyPolicy,
    /// Changes the target rejects: `stop` or `dead_letter`.
    pub on_error: sink::apply::ErrorPolicy,
    /// Heartbeat period in milliseconds; 0 turns heartbeats off (read-only sources).
    pub heartbeat_interval_ms: u64,
    /// `db.table` of the heartbeat row on the source (created when missing).
    pub heartbeat_table: String,
    /// Longest wait between retries after a transient error, in seconds.
    pub retry_max_backoff_secs: u64,
}

impl Default for SyncConfig {
    fn default() -> Self {
        SyncConfig {
            pipeline: sink::checkpoint::DEFAULT_PIPELINE.to_owned(),
            server_id: cdc_reader::binlog::stream::DEFAULT_SERVER_ID,
            batch_rows: DEFAULT_BATCH_ROWS,
            batch_bytes: DEFAULT_BATCH_BYTES,
            channel_capacity: DEFAULT_CHANNEL_CAPACITY,
            tables_without_key: sink::apply::NoKeyPolicy::default(),
            on_error: sink::apply::ErrorPolicy::default(),
            heartbeat_interval_ms: DEFAULT_HEARTBEAT_MS,
            heartbeat_table: DEFAULT_HEARTBEAT_TABLE.to_owned(),
            retry_max_backoff_secs: DEFAULT_RETRY_MAX_SECS,
        }
    }
}

/// `[snapshot]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SnapshotConfig {
    /// Parallel chunk copies (across and within tables).
    pub workers: usize,
    /// Rows per chunk.
    pub chunk_rows: u64,
    /// Cap on rows read per second from the source (protects a busy source); none when unset.
    pub max_rows_per_second: Option<u64>,
    /// Keys and indexes built at once after each table's load; unset: one per core of this
    /// host, at most `workers` (see [`SnapshotConfig::index_builds`]).
    pub index_builds: Option<usize>,
    /// Seconds between progress lines in the log (when stderr is not a terminal; a terminal
    /// shows progress bars instead).
    pub progress_log_secs: u64,
}

impl SnapshotConfig {
    /// Index builds that may run at once. Each is a CPU-bound sort in one target backend,
    /// beside the copy of the tables still loading; more builds than cores only make them
    /// evict each other's sort memory from the caches (the 1M-row shop of
    /// `benches/snapshot.rs` on 2 cores: 4 at once took 5–12 % longer than 2, and 1 at once
    /// 15 % longer). This host's cores stand in for the target's, which a client cannot
    /// read; set `index_builds` when PostgreSQL runs on a larger machine.
    pub fn index_builds(&self) -> usize {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        self.index_builds
            .unwrap_or_else(|| self.workers.min(cores))
            .max(1)
    }
}

impl Default for SnapshotConfig {
    fn default() -> Self {
        SnapshotConfig {
            workers: DEFAULT_SNAPSHOT_WORKERS,
            chunk_rows: DEFAULT_CHUNK_ROWS,
            max_rows_per_second: None,
            index_builds: None,
            progress_log_secs: 60,
        }
    }
}

/// `[source]`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// `mysql://user:password@host:port`, optionally `?ssl-mode=…&ssl-ca=…`.
    pub url: Option<SecretUrl>,
    /// Password, overriding the one in `url` (so the URL can live in the file and the password
    /// in the environment: `password = "${MYSQL_PASSWORD}"`).
    pub password: Option<Secret>,
}

/// `[target]`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetConfig {
    /// `postgres://user:password@host:port/database`, optionally `?sslmode=…&sslrootcert=…`.
    pub url: Option<SecretUrl>,
    /// Password, overriding the one in `url`.
    pub password: Option<Secret>,
}

/// `[tables]`: the selection and the database → schema mapping.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TablesConfig {
    /// Every table of these databases.
    #[serde(default)]
    pub databases: Vec<String>,
    /// `db.table` patterns (`*` and `?` wildcards) to include.
    #[serde(default)]
    pub include: Vec<String>,
    /// `db.table` patterns to exclude (applied after `databases` and `include`).
    #[serde(default)]
    pub exclude: Vec<String>,
    /// MySQL database → PostgreSQL schema; a database not listed keeps its name.
    #[serde(default)]
    pub schema_map: BTreeMap<String, String>,
}

/// Overrides from the command line (highest precedence).
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--source`.
    pub source: Option<String>,
    /// `--target`.
    pub target: Option<String>,
    /// `--databases`.
    pub databases: Vec<String>,
    /// `--include`.
    pub include: Vec<String>,
    /// `--exclude`.
    pub exclude: Vec<String>,
}

impl Config {
    /// Loads the file (if any), applies environment and command-line overrides. Validation is
    /// separate ([`Config::validate`]) because each command needs different parts.
    pub fn load(path: Option<&Path>, overrides: &Overrides) -> Result<Config, ConfigError> {
        let env = |k: &str| std::env::var(k).ok();
        Self::load_with_env(path, overrides, &env)
    }

    /// [`Config::load`] with an explicit environment lookup (tests).
    pub fn load_with_env(
        path: Option<&Path>,
        overrides: &Overrides,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let mut figment = Figment::new();
        if let Some(path) = path {
            let text = std::fs::read_to_string(path).map_err(|e| {
                ConfigError::new(
                    path.display().to_string(),
                    format!("cannot read the config file: {e}"),
                    "check the --config path",
                )
            })?;
            let table = parse_toml(path, &text, env)?;
            figment = figment.merge(Serialized::defaults(table));
        }
        // MY2PG_SECTION__KEY overrides; single-underscore MY2PG_* variables belong to flags
        // (MY2PG_LOG_FORMAT, …) or to the test harness and are not config keys.
        figment = figment.merge(
            Env::prefixed("MY2PG_")
                .filter(|k| k.as_str().contains("__"))
                .split("__"),
        );
        let mut cfg: Config = figment.extract().map_err(figment_error)?;
        if let Some(u) = overrides.source.clone().or_else(|| env("MY2PG_SOURCE_URL")) {
            cfg.source.url = Some(SecretUrl::new(u));
        }
        if let Some(u) = overrides.target.clone().or_else(|| env("MY2PG_TARGET_URL")) {
            cfg.target.url = Some(SecretUrl::new(u));
        }
        if !overrides.databases.is_empty() {
            cfg.tables.databases = overrides.databases.clone();
        }
        if !overrides.include.is_empty() {
            cfg.tables.include = overrides.include.clone();
        }
        if !overrides.exclude.is_empty() {
            cfg.tables.exclude.extend(overrides.exclude.iter().cloned());
        }
        Ok(cfg)
    }

    /// The `[[transform]]` stages as a chain.
    pub fn transform_chain(&self) -> Result<transform::Chain, ConfigError> {
        transform::Chain::from_config(&self.transforms).map_err(|e| {
            ConfigError::new(
                "transform",
                e.to_string(),
                "see docs/configuration.md, section [[transform]], for the stages and their keys",
            )
        })
    }

    /// Checks what every command needs: well-formed URLs and patterns. Returns the first problem
    /// with its key path.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if let Some(u) = &self.source.url {
            self.source_options_from(u)?;
        }
        if let Some(u) = &self.target.url {
            self.target_options_from(u)?;
        }
        for (key, list) in [
            ("tables.include", &self.tables.include),
            ("tables.exclude", &self.tables.exclude),
        ] {
            for (i, p) in list.iter().enumerate() {
                TablePattern::parse(p).map_err(|problem| {
                    ConfigError::new(
                        format!("{key}[{i}]"),
                        problem,
                        "write patterns as db.table, e.g. shop.* or shop.order_*",
                    )
                })?;
            }
        }
        for (i, d) in self.tables.databases.iter().enumerate() {
            if d.is_empty() {
                return Err(ConfigError::new(
                    format!("tables.databases[{i}]"),
                    "empty database name",
                    "remove it",
                ));
            }
        }
        self.mapping.validate().map_err(|e| {
            ConfigError::new(
                e.key,
                e.problem,
                "see docs/type-mapping.md for the [mapping] keys and their values",
            )
        })?;
        self.transform_chain()?;
        for (db, schema) in &self.tables.schema_map {
            if schema.is_empty() || schema.len() > 63 {
                return Err(ConfigError::new(
                    format!("tables.schema_map.{db}"),
                    format!("{schema:?} is not a valid PostgreSQL schema name (1 to 63 bytes)"),
                    "choose a shorter non-empty name",
                ));
            }
        }
        self.http.validate()?;
        self.alerts.validate()?;
        Ok(())
    }

    /// The source connection options; an error names `source.url` when it is missing or bad.
    pub fn source_options(&self) -> Result<cdc_reader::SourceOptions, ConfigError> {
        let u = self.source.url.as_ref().ok_or_else(|| {
            ConfigError::new(
                "source.url",
                "no source given",
                "pass --source mysql://USER:PASSWORD@HOST:PORT, set MY2PG_SOURCE_URL, or set [source] url in the config file",
            )
        })?;
        self.source_options_from(u)
    }

    fn source_options_from(&self, u: &SecretUrl) -> Result<cdc_reader::SourceOptions, ConfigError> {
        let mut opts = cdc_reader::SourceOptions::from_url(u.expose()).map_err(|e| {
            ConfigError::new("source.url", e.to_string(), e.hint().unwrap_or_default())
        })?;
        if let Some(p) = &self.source.password {
            opts = opts.with_password(p.expose());
        }
        Ok(opts)
    }

    /// The target connection options; an error names `target.url` when it is missing or bad.
    pub fn target_options(&self) -> Result<sink::TargetOptions, ConfigError> {
        let u = self.target.url.as_ref().ok_or_else(|| {
            ConfigError::new(
                "target.url",
                "no target given",
                "pass --target postgres://USER:PASSWORD@HOST:PORT/DATABASE, set MY2PG_TARGET_URL, or set [target] url in the config file",
            )
        })?;
        self.target_options_from(u)
    }

    fn target_options_from(&self, u: &SecretUrl) -> Result<sink::TargetOptions, ConfigError> {
        let mut opts = sink::TargetOptions::from_url(u.expose()).map_err(|e| {
            ConfigError::new("target.url", e.to_string(), e.hint().unwrap_or_default())
        })?;
        if let Some(p) = &self.target.password {
            opts = opts.with_password(p.expose());
        }
        Ok(opts)
    }

    /// The table selection; an error names `tables` when nothing is selected.
    pub fn selection(&self) -> Result<TableSelection, ConfigError> {
        let sel = TableSelection::new(&self.tables)?;
        if sel.is_empty() {
            return Err(ConfigError::new(
                "tables",
                "no tables selected",
                "pass --databases shop,billing or --include 'shop.*', or set [tables] databases/include",
            ));
        }
        Ok(sel)
    }

    /// The PostgreSQL schema for a MySQL database.
    pub fn target_schema(&self, database: &str) -> String {
        self.tables
            .schema_map
            .get(database)
            .cloned()
            .unwrap_or_else(|| self.mapping.fold(database))
    }
}

fn figment_error(e: figment::Error) -> ConfigError {
    let key = if e.path.is_empty() {
        "config".to_owned()
    } else {
        e.path.join(".")
    };
    let source = e
        .metadata
        .as_ref()
        .map(|m| m.name.to_string())
        .unwrap_or_default();
    let problem = match &e.kind {
        figment::error::Kind::UnknownField(field, expected) => {
            let known = expected
                .iter()
                .map(|s| format!("`{s}`"))
                .collect::<Vec<_>>()
                .join(", ");
            return ConfigError::new(
                // Figment's path ends with the field itself for structs with a container-level
                // `#[serde(default)]` (such as `[mapping]`), and before it otherwise.
                if e.path.is_empty() {
                    field.clone()
                } else if e.path.last() == Some(field) {
                    // Inside arrays of tables figment's path already ends with the field.
                    key
                } else {
                    format!("{key}.{field}")
                },
                format!("unknown key `{field}`"),
                format!("known keys here: {known}"),
            );
        }
        other => other.to_string(),
    };
    let fix = if source.is_empty() {
        "check the value's type".to_owned()
    } else {
        format!("check the value from {source}")
    };
    ConfigError::new(key, problem, fix)
}

/// Parses TOML and interpolates `${VAR}` in every string value.
fn parse_toml(
    path: &Path,
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<toml::Table, ConfigError> {
    let mut table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
        let location = e
            .span()
            .map(|s| {
                let line = text[..s.start.min(text.len())].lines().count().max(1);
                format!(" (line {line})")
            })
            .unwrap_or_default();
        ConfigError::new(
            format!("{}{location}", path.display()),
            format!("not valid TOML: {}", e.message()),
            "fix the syntax; strings need quotes, tables are written [section]",
        )
    })?;
    interpolate_table(&mut table, "", env)?;
    Ok(table)
}

fn interpolate_table(
    table: &mut toml::Table,
    prefix: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(), ConfigError> {
    for (k, v) in table.iter_mut() {
        let key = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        interpolate_value(v, &key, env)?;
    }
    Ok(())
}

fn interpolate_value(
    v: &mut toml::Value,
    key: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(), ConfigError> {
    match v {
        toml::Value::String(s) => *s = interpolate(s, key, env)?,
        toml::Value::Array(a) => {
            for (i, item) in a.iter_mut().enumerate() {
                interpolate_value(item, &format!("{key}[{i}]"), env)?;
            }
        }
        toml::Value::Table(t) => interpolate_table(t, key, env)?,
        _ => {}
    }
    Ok(())
}

/// Replaces `${NAME}` with the environment variable `NAME`; `$${` is a literal `${`.
pub fn interpolate(
    s: &str,
    key: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<String, ConfigError> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(lit) = after.strip_prefix("${") {
            out.push_str("${");
            rest = lit;
        } else if let Some(var) = after.strip_prefix('{') {
            let end = var.find('}').ok_or_else(|| {
                ConfigError::new(
                    key,
                    "unterminated ${ in value",
                    "write ${NAME} or $${ for a literal ${",
                )
            })?;
            let name = &var[..end];
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(ConfigError::new(
                    key,
                    format!("invalid variable name {name:?}"),
                    "use letters, digits and _",
                ));
            }
            let value = env(name).ok_or_else(|| {
                ConfigError::new(
                    key,
                    format!("environment variable {name} is not set"),
                    format!("export {name}=… before starting my2pg"),
                )
            })?;
            out.push_str(&value);
            rest = &var[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// A `db.table` pattern with `*` and `?` wildcards on either side.
#[derive(Debug, Clone)]
pub struct TablePattern {
    database: glob::Pattern,
    table: glob::Pattern,
    text: String,
}

impl TablePattern {
    /// Parses `db.table` (backquotes allowed around names containing dots).
    pub fn parse(text: &str) -> Result<TablePattern, String> {
        let parts = schemas::table::split_qualified(text.trim())
            .ok_or_else(|| format!("pattern {text:?} is not of the form db.table"))?;
        let [db, table] = parts.as_slice() else {
            return Err(format!(
                "pattern {text:?} is not of the form db.table (use db.* for a whole database)"
            ));
        };
        let compile = |p: &str| glob::Pattern::new(p).map_err(|e| format!("pattern {text:?}: {e}"));
        Ok(TablePattern {
            database: compile(db)?,
            table: compile(table)?,
            text: text.to_owned(),
        })
    }

    /// Whether the pattern selects `id`.
    pub fn matches(&self, id: &TableId) -> bool {
        self.database.matches(&id.database) && self.table.matches(&id.table)
    }

    /// Whether the pattern can match tables of `database`.
    pub fn matches_database(&self, database: &str) -> bool {
        self.database.matches(database)
    }
}

impl fmt::Display for TablePattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Which source tables are selected: `databases` and `include` add, `exclude` removes.
#[derive(Debug, Clone, Default)]
pub struct TableSelection {
    databases: Vec<String>,
    include: Vec<TablePattern>,
    exclude: Vec<TablePattern>,
}

impl TableSelection {
    /// Builds the selection from `[tables]`.
    pub fn new(t: &TablesConfig) -> Result<TableSelection, ConfigError> {
        let parse = |key: &str, list: &[String]| -> Result<Vec<TablePattern>, ConfigError> {
            list.iter()
                .enumerate()
                .map(|(i, p)| {
                    TablePattern::parse(p).map_err(|problem| {
                        ConfigError::new(
                            format!("{key}[{i}]"),
                            problem,
                            "write patterns as db.table, e.g. shop.*",
                        )
                    })
                })
                .collect()
        };
        Ok(TableSelection {
            databases: t.databases.clone(),
            include: parse("tables.include", &t.include)?,
            exclude: parse("tables.exclude", &t.exclude)?,
        })
    }

    /// Whether nothing can be selected.
    pub fn is_empty(&self) -> bool {
        self.databases.is_empty() && self.include.is_empty()
    }

    /// Whether `id` is selected.
    pub fn selects(&self, id: &TableId) -> bool {
        let included =
            self.databases.contains(&id.database) || self.include.iter().any(|p| p.matches(id));
        included && !self.exclude.iter().any(|p| p.matches(id))
    }

    /// Whether any table of `database` may be selected (to limit introspection).
    pub fn may_select_database(&self, database: &str) -> bool {
        self.databases.iter().any(|d| d == database)
            || self.include.iter().any(|p| p.matches_database(database))
    }

    /// The databases named explicitly (`--databases`), which must exist.
    pub fn named_databases(&self) -> &[String] {
        &self.databases
    }
}

/// The default config file looked for when `--config` is not given.
pub fn default_config_path() -> Option<PathBuf> {
    let p = PathBuf::from("my2pg.toml");
    p.is_file().then_some(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_builds_default_to_the_cores_within_the_workers() {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        let mut s = SnapshotConfig::default();
        assert_eq!(s.index_builds(), cores.min(DEFAULT_SNAPSHOT_WORKERS));
        s.workers = 1;
        assert_eq!(s.index_builds(), 1);
        s.index_builds = Some(6);
        assert_eq!(s.index_builds(), 6);
        s.index_builds = Some(0);
        assert_eq!(s.index_builds(), 1);
    }

    #[test]
    fn interpolation_replaces_and_escapes() {
        let env = |k: &str| (k == "PW").then(|| "s3cret".to_owned());
        assert_eq!(interpolate("a${PW}b", "k", &env).unwrap(), "as3cretb");
        assert_eq!(interpolate("$${PW}", "k", &env).unwrap(), "${PW}");
        assert_eq!(interpolate("cost $5", "k", &env).unwrap(), "cost $5");
        let e = interpolate("${NOPE}", "source.password", &env).unwrap_err();
        assert_eq!(e.key, "source.password");
        assert!(e.problem.contains("NOPE"));
        assert!(interpolate("${PW", "k", &env).is_err());
    }

    #[test]
    fn patterns_select_and_exclude() {
        let t = TablesConfig {
            databases: vec!["billing".into()],
            include: vec!["shop.*".into()],
            exclude: vec!["shop.audit_*".into()],
            schema_map: BTreeMap::new(),
        };
        let s = TableSelection::new(&t).unwrap();
        assert!(s.selects(&TableId::new("shop", "orders")));
        assert!(!s.selects(&TableId::new("shop", "audit_log")));
        assert!(s.selects(&TableId::new("billing", "invoices")));
        assert!(!s.selects(&TableId::new("other", "t")));
        assert!(TablePattern::parse("shop").is_err());
    }

    #[test]
    fn mapping_section_reads_options_and_overrides() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.toml");
        std::fs::write(
            &path,
            "[mapping]\nzero_date = \"-infinity\"\nenum_as = \"pg_enum\"\n\
             [mapping.columns.\"shop.orders.created\"]\nzero_date = \"null\"\n\
             [mapping.ddl]\ndrop_column = \"stop\"\n",
        )
        .unwrap();
        let env = |k: &str| (k == "NONE").then(String::new);
        let cfg = Config::load_with_env(Some(&path), &Overrides::default(), &env).unwrap();
        cfg.validate().unwrap();
        use schemas::mapping::{DdlAction, EnumAs, ZeroDate};
        assert_eq!(cfg.mapping.zero_date, ZeroDate::NegInfinity);
        assert_eq!(cfg.mapping.enum_as, EnumAs::PgEnum);
        assert_eq!(cfg.mapping.ddl.drop_column, DdlAction::Stop);
        let t = TableId::new("shop", "orders");
        assert_eq!(
            cfg.mapping.policy_for(&t, "created").zero_date,
            ZeroDate::Null
        );
        std::fs::write(&path, "[mapping]\nzero_dates = \"null\"\n").unwrap();
        let e = Config::load_with_env(Some(&path), &Overrides::default(), &env).unwrap_err();
        assert_eq!(e.key, "mapping.zero_dates", "{e}");
        std::fs::write(&path, "[mapping]\nzero_date = \"epoch\"\n").unwrap();
        let e = Config::load_with_env(Some(&path), &Overrides::default(), &env).unwrap_err();
        assert!(e.to_string().contains("zero_date"), "{e}");
    }

    #[test]
    fn secrets_are_redacted_in_debug() {
        let c = Config {
            source: SourceConfig {
                url: Some(SecretUrl::new("mysql://u:hunter2@h:3306")),
                password: Some(Secret::new("hunter3")),
            },
            ..Config::default()
        };
        let dbg = format!("{c:?}");
        assert!(
            !dbg.contains("hunter2") && !dbg.contains("hunter3"),
            "{dbg}"
        );
        assert!(dbg.contains("mysql://u:***@h:3306"), "{dbg}");
    }
}
