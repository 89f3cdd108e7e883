//! Logging setup: `--log-format text|json`, filtered by `RUST_LOG` (default `info` for my2pg's
//! crates, `warn` for dependencies). Logs go to stderr so that stdout stays for reports (JSON
//! output of `verify`, `check`, `inspect-binlog`).

use std::io::IsTerminal as _;

use clap::ValueEnum;
use tracing_subscriber::EnvFilter;

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// Default filter: our crates at info, everything else at warn.
pub const DEFAULT_FILTER: &str =
    "warn,my2pg=info,cdc_reader=info,transform=info,sink=info,verifier=info,schemas=info";

/// Installs the global subscriber. Safe to call more than once (later calls do nothing).
pub fn init(format: LogFormat) {
    init_with_default(format, DEFAULT_FILTER);
}

/// Like [`init`] with another default filter (`demo` keeps its screen for its own view and
/// logs only warnings unless `RUST_LOG` says otherwise).
pub fn init_with_default(format: LogFormat, default: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    // Colours only on a terminal: a log file or journald gets plain `key=value` text.
    let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.with_target(false).try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init(),
    };
}
