//! The command line. Flags are for runtime choices only; everything about *what* to migrate can
//! also live in the config file. Every flag that touches data has an environment twin.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::config::{Config, Overrides};
use crate::logging::{self, LogFormat};
use crate::{commands, exit};

const EXAMPLES: &str = "\
Examples:
  my2pg check  --source mysql://repl:secret@db1:3306 --target postgres://app:secret@pg1/shop --databases shop
  my2pg schema --source mysql://repl:secret@db1:3306 --databases shop > schema.sql
  my2pg schema --config my2pg.toml --apply
  my2pg sync   --config my2pg.toml
  my2pg verify --config my2pg.toml --format json
  my2pg alert test --config my2pg.toml
  my2pg demo

Environment: MY2PG_SOURCE_URL, MY2PG_TARGET_URL, MY2PG_CONFIG, MY2PG_LOG_FORMAT, RUST_LOG;
any config key as MY2PG_<SECTION>__<KEY> (e.g. MY2PG_TABLES__EXCLUDE).";

/// Zero-downtime MySQL/MariaDB → PostgreSQL migration: consistent snapshot, change data capture
/// from the binlog, and row-by-row verification.
#[derive(Debug, Parser)]
#[command(name = "my2pg", version, after_help = EXAMPLES, propagate_version = true)]
pub struct Cli {
    /// Config file (TOML). Defaults to ./my2pg.toml when it exists.
    #[arg(long, global = true, env = "MY2PG_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Log line format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "MY2PG_LOG_FORMAT")]
    pub log_format: LogFormat,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The source, the target and the table selection: shared by every command that touches data.
#[derive(Debug, Clone, Default, Args)]
pub struct DataArgs {
    /// Source: mysql://USER:PASSWORD@HOST:PORT[?ssl-mode=required].
    #[arg(
        long,
        env = "MY2PG_SOURCE_URL",
        hide_env_values = true,
        value_name = "URL"
    )]
    pub source: Option<String>,
    /// Target: postgres://USER:PASSWORD@HOST:PORT/DATABASE[?sslmode=require].
    #[arg(
        long,
        env = "MY2PG_TARGET_URL",
        hide_env_values = true,
        value_name = "URL"
    )]
    pub target: Option<String>,
    /// Migrate every table of these databases (comma-separated).
    #[arg(
        long,
        value_delimiter = ',',
        env = "MY2PG_DATABASES",
        value_name = "DB,…"
    )]
    pub databases: Vec<String>,
    /// Include tables matching db.table (wildcards * and ?); repeatable.
    #[arg(long, value_name = "PATTERN")]
    pub include: Vec<String>,
    /// Exclude tables matching db.table; repeatable.
    #[arg(long, value_name = "PATTERN")]
    pub exclude: Vec<String>,
}

impl DataArgs {
    fn overrides(&self) -> Overrides {
        Overrides {
            source: self.source.clone(),
            target: self.target.clone(),
            databases: self.databases.clone(),
            include: self.include.clone(),
            exclude: self.exclude.clone(),
        }
    }
}

/// Report format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum Format {
    /// A table for people.
    #[default]
    Text,
    /// JSON for scripts and CI gates.
    Json,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check that the source and target are ready for a migration.
    ///
    /// Connects to both, checks the binlog settings, GTIDs, privileges and retention of the
    /// source and the encoding and privileges of the target. Exit code 0 when nothing blocks
    /// the migration, 1 when something does, 2 on error.
    ///
    /// Example: my2pg check --source mysql://repl:pw@db1 --target postgres://app:pw@pg1/shop --databases shop
    Check {
        /// Source, target and tables.
        #[command(flatten)]
        data: DataArgs,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Copy the selected tables, then stream every change into PostgreSQL, until stopped.
    ///
    /// Without a checkpoint on the target, copies the tables first (parallel, resumable, no
    /// locks on the source), then streams from the binlog with exactly-once effect: rows and
    /// source position commit together, so a restart (or kill -9) loses and repeats nothing.
    /// Serves /metrics, /healthz and /readyz; pages on-call per [alerts]. SIGINT/SIGTERM finish
    /// the batch in flight and exit 0.
    ///
    /// Example: my2pg sync --config my2pg.toml --listen 127.0.0.1:8432
    Sync {
        /// Source, target and tables.
        #[command(flatten)]
        data: DataArgs,
        /// Stop after the copy and print the position streaming will resume from.
        #[arg(long)]
        snapshot_only: bool,
        /// Copy these tables again (db.table), repeatable; streaming of the others goes on.
        #[arg(long, value_name = "TABLE")]
        resnapshot: Vec<String>,
        /// Address of /metrics, /healthz and /readyz (default from [http], 127.0.0.1:8432).
        #[arg(long, env = "MY2PG_LISTEN", value_name = "HOST:PORT")]
        listen: Option<std::net::SocketAddr>,
        /// Where changes go: straight into PostgreSQL, or into Kafka topics (one per table,
        /// Debezium envelope) for `my2pg apply` workers ([kafka], docs/kafka.md).
        #[arg(long, value_enum, default_value_t = Via::Direct, env = "MY2PG_VIA")]
        via: Via,
    },
    /// Apply change events from Kafka into PostgreSQL, as one worker of a consumer group.
    ///
    /// Run as many as wanted, on one machine or several, with the same [kafka] group: Kafka
    /// spreads the partitions over them. Each batch's rows and consumed offsets commit in one
    /// PostgreSQL transaction (my2pg.kafka_offsets), so a killed worker's partitions resume
    /// on another exactly where its last commit left them. Reads my2pg's own topics
    /// (`sync --via kafka`) and those of Debezium's MySQL connector. SIGINT/SIGTERM finish the
    /// batch in flight and exit 0.
    ///
    /// Example: my2pg apply --from kafka --config my2pg.toml --target postgres://app:pw@pg1/shop
    Apply {
        /// Source (read for table schemas only), target and tables.
        #[command(flatten)]
        data: DataArgs,
        /// Where the change events come from.
        #[arg(long, value_enum, default_value_t = ApplyFrom::Kafka)]
        from: ApplyFrom,
        /// Address of /metrics, /healthz and /readyz (default from [http], 127.0.0.1:8432).
        #[arg(long, env = "MY2PG_LISTEN", value_name = "HOST:PORT")]
        listen: Option<std::net::SocketAddr>,
    },
    /// Decode binlog files offline.
    ///
    /// Prints one JSON object per event and one per row change, with typed values (or text
    /// like `mariadb-binlog -vvv`). Every event's CRC32 is checked; a corrupt or truncated file
    /// stops with the offset of the bad event (exit code 2).
    ///
    /// Example: my2pg inspect-binlog /var/lib/mysql/binlog.000042 --format json | jq 'select(.op)'
    InspectBinlog {
        /// Binlog files, in order.
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Json)]
        format: Format,
        /// Skip events before this byte offset (the format description is always read).
        #[arg(long, value_name = "N")]
        start_position: Option<u64>,
    },
    /// Print the PostgreSQL DDL for the selected tables, or apply it to the target.
    ///
    /// Columns with their mapped types, NOT NULL, translated defaults, AUTO_INCREMENT as an
    /// identity, primary and unique keys, indexes, CHECKs for ENUM/SET, comments, a trigger for
    /// ON UPDATE CURRENT_TIMESTAMP, foreign keys NOT VALID. With --target, tables that already
    /// exist are compared with the mapping and their differences reported (never altered);
    /// with --apply the missing tables are created in one transaction. The mapping options are
    /// the [mapping] section of the config file (docs/type-mapping.md). Exit code 0 when done,
    /// 1 when an existing table differs from the mapping, 2 on error.
    ///
    /// Example: my2pg schema --source mysql://repl:pw@db1 --target postgres://app:pw@pg1/shop --databases shop --apply
    Schema {
        /// Source, target and tables.
        #[command(flatten)]
        data: DataArgs,
        /// Create the missing tables on the target (in one transaction).
        #[arg(long)]
        apply: bool,
        /// Output format: the SQL script (text) or the mapping and report (json).
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Where a pipeline stands, read from the state it keeps in the target.
    ///
    /// Position, lag at the last heartbeat, per-table state (copying n %, streaming, stopped),
    /// the error that stopped it, the last verify result and dead letters. Works whether or not
    /// sync is running. Exit code 0, or 1 when a definite error stopped the pipeline.
    ///
    /// Example: my2pg status --target postgres://app:pw@pg1/shop --format json
    Status {
        /// Target (and the pipeline name from [sync] pipeline in the config).
        #[command(flatten)]
        data: DataArgs,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// The whole job on throwaway local databases: a sample shop moves to PostgreSQL.
    ///
    /// Starts a MariaDB and a PostgreSQL in temporary directories (nothing else is touched),
    /// creates a shop with varied column types, starts live writes, runs sync (copy, then
    /// streaming) with a live view, stops the writes, waits for the applier to catch up, runs
    /// verify and prints a summary: rows, apply rate, lag p50/p99, the verify result. Exit
    /// code 0 when the target equals the source.
    ///
    /// Example: my2pg demo --size small        (about a minute)
    Demo {
        /// How much data the shop holds.
        #[arg(long, value_enum, default_value = "small")]
        size: commands::demo::Size,
        /// Keep the servers (and sync) running after the summary, until Ctrl-C, and print
        /// their URLs and commands to try.
        #[arg(long)]
        keep: bool,
        /// Seconds of live writes while streaming (default by size: 15, 30, 60).
        #[arg(long, value_name = "SECONDS")]
        seconds: Option<u64>,
    },
    /// Compare every selected table, source against target, row by row.
    ///
    /// Reads the source through the same [[transform]] stages and [mapping] as sync and the
    /// target in binary, compares the canonical encoding of every value (1.50 = 1.5 in a
    /// numeric, JSON key order ignored; NULL ≠ '', trailing spaces and microseconds count:
    /// docs/verify.md), and lists rows missing in the target, extra in the target, and
    /// differing (with the columns). While sync runs, differences are re-checked after the
    /// applier has passed the source position of the comparison, so lag is not reported as
    /// drift. Exit code 0 identical, 1 different, 2 when a table could not be compared
    /// (missing on one side, column type changed, no primary key) or on error.
    ///
    /// Example: my2pg verify --config my2pg.toml --tables shop.orders,shop.customers --format json --max-diffs 50
    Verify {
        /// Source, target and tables.
        #[command(flatten)]
        data: DataArgs,
        /// Compare only these tables (db.table, comma-separated); default: the selection.
        #[arg(long, value_delimiter = ',', value_name = "DB.TABLE,…")]
        tables: Vec<String>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
        /// Tables compared at once.
        #[arg(long, default_value_t = verifier::DEFAULT_PARALLEL, env = "MY2PG_VERIFY_PARALLEL", value_name = "N")]
        parallel: usize,
        /// Differing rows listed per table.
        #[arg(long, default_value_t = verifier::DEFAULT_MAX_DIFFS, env = "MY2PG_VERIFY_MAX_DIFFS", value_name = "N")]
        max_diffs: usize,
        /// Re-check rounds while sync applies (0: report the first comparison as is).
        #[arg(long, default_value_t = verifier::DEFAULT_RECHECKS, value_name = "N")]
        rechecks: u32,
        /// Seconds to wait for the applier to catch up before each re-check.
        #[arg(long, default_value_t = verifier::DEFAULT_CATCH_UP_TIMEOUT.as_secs(), value_name = "SECS")]
        catch_up_timeout: u64,
        /// Stream every row of every table instead of comparing chunk checksums in the
        /// databases first.
        #[arg(long, env = "MY2PG_VERIFY_NO_PUSHDOWN")]
        no_pushdown: bool,
    },
    /// Alerting: check the receivers configured in [alerts].
    Alert {
        /// What to do.
        #[command(subcommand)]
        action: AlertCommand,
    },
}

/// Where `my2pg sync` sends changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Via {
    /// Straight into PostgreSQL.
    #[default]
    Direct,
    /// Into Kafka, for `my2pg apply` workers.
    Kafka,
}

/// Where `my2pg apply` reads changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ApplyFrom {
    /// Kafka topics of `my2pg sync --via kafka` or Debezium's MySQL connector.
    #[default]
    Kafka,
}

/// `my2pg alert …`.
#[derive(Debug, Subcommand)]
pub enum AlertCommand {
    /// Send a test alert to every configured receiver.
    ///
    /// Each receiver gets a trigger of the rule "test" (severity info) and then its resolve,
    /// so nobody is left with an open incident. Prints per-receiver success or failure; exit
    /// code 0 when every receiver accepted it, 2 otherwise.
    ///
    /// Example: my2pg alert test --config my2pg.toml
    Test {
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
        /// Send only the trigger and leave the test alert open (to check phone, escalation).
        #[arg(long)]
        keep_open: bool,
    },
}

/// Loads the configuration for a command: file, environment, flags; then validates it.
pub fn load_config(path: Option<&PathBuf>, data: &DataArgs) -> anyhow::Result<Config> {
    let default = crate::config::default_config_path();
    let path = path.or(default.as_ref());
    let cfg = Config::load(path.map(|p| p.as_path()), &data.overrides())?;
    cfg.validate()?;
    Ok(cfg)
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    if matches!(cli.command, Command::Demo { .. }) {
        logging::init_with_default(cli.log_format, "error");
    } else {
        logging::init(cli.log_format);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            return exit::report(&anyhow::Error::new(e).context("starting the async runtime"));
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => ExitCode::from(code),
        Err(e) => exit::report(&e),
    }
}

async fn run(cli: Cli) -> anyhow::Result<u8> {
    match cli.command {
        Command::Check { data, format } => {
            let cfg = load_config(cli.config.as_ref(), &data)?;
            commands::check::run(&cfg, format).await
        }
        Command::Sync {
            data,
            snapshot_only,
            resnapshot,
            listen,
            via,
        } => {
            let cfg = load_config(cli.config.as_ref(), &data)?;
            commands::sync::run(&cfg, snapshot_only, &resnapshot, listen, via).await
        }
        Command::Apply {
            data,
            from: ApplyFrom::Kafka,
            listen,
        } => {
            let cfg = load_config(cli.config.as_ref(), &data)?;
            commands::sync::apply(&cfg, listen).await
        }
        Command::Status { data, format } => {
            let cfg = load_config(cli.config.as_ref(), &data)?;
            commands::status::run(&cfg, format).await
        }
        Command::Demo {
            size,
            keep,
            seconds,
        } => commands::demo::run(size, keep, seconds).await,
        Command::Verify {
            data,
            tables,
            format,
            parallel,
            max_diffs,
            rechecks,
            catch_up_timeout,
            no_pushdown,
        } => {
            let cfg = load_config(cli.config.as_ref(), &data)?;
            let args = commands::verify::VerifyArgs {
                tables,
                format,
                parallel,
                max_diffs,
                rechecks,
                catch_up_timeout_secs: catch_up_timeout,
                pushdown: !no_pushdown,
            };
            commands::verify::run(&cfg, &args).await
        }
        Command::InspectBinlog {
            files,
            format,
            start_position,
        } => commands::inspect::run(&files, format, start_position),
        Command::Alert {
            action: AlertCommand::Test { format, keep_open },
        } => {
            let cfg = load_config(cli.config.as_ref(), &DataArgs::default())?;
            commands::alert::test(&cfg, format, keep_open).await
        }
        Command::Schema {
            data,
            apply,
            format,
        } => {
            let cfg = load_config(cli.config.as_ref(), &data)?;
            commands::schema::run(&cfg, apply, format).await
        }
    }
}
