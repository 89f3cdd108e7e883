//! Preflight: is this source configured for exact change data capture?
//!
//! Each check reads one server setting or privilege and reports it as passed, a warning (works,
//! with a cost the operator should know) or a failure (my2pg would lose or misread data), with
//! the value found and the statement that fixes it. `my2pg check` prints the report; `sync`
//! refuses to start while any check fails.
//!
//! Why each check exists:
//! - `log_bin`, `binlog_format=ROW`, `binlog_row_image=FULL`: row events with full before and
//!   after images are the only input from which every change can be reproduced exactly;
//!   statement events and minimal images cannot be applied to a different engine.
//! - `binlog_row_metadata=FULL`: column names, signedness, charsets and ENUM/SET labels travel
//!   with every table map, so a row is decoded with the schema it was written with, even after
//!   later DDL. Without it my2pg falls back to `information_schema` (a warning).
//! - GTIDs: a position that survives failover and file rotation. MariaDB always logs GTIDs;
//!   MySQL needs `gtid_mode=ON`, else file positions are used (a warning).
//! - `server_id`: a server with id 0 refuses replication clients.
//! - privileges: `REPLICATION SLAVE` to stream, `REPLICATION CLIENT` (MariaDB: `BINLOG MONITOR`)
//!   to read positions, `SELECT` to snapshot and verify.
//! - binlog retention against the expected sync window: a purged binlog means a new snapshot.
//! - MySQL 8 `binlog_row_value_options=PARTIAL_JSON`: partial JSON updates carry only a diff.

use std::time::Duration;

use mysql_async::Conn;
use mysql_async::prelude::Queryable;
use serde::Serialize;

use crate::error::{ReaderError, Result};

/// Default sync window the binlog retention is compared with: a week covers the usual
/// "sync, test for some days, cut over" migration.
pub const DEFAULT_SYNC_WINDOW: Duration = Duration::from_secs(7 * 24 * 3600);

/// MySQL or MariaDB.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Flavor {
    /// Oracle MySQL (and Percona Server).
    Mysql,
    /// MariaDB.
    Mariadb,
}

/// Who the source is.
#[derive(Debug, Clone, Serialize)]
pub struct ServerInfo {
    /// MySQL or MariaDB.
    pub flavor: Flavor,
    /// `VERSION()`.
    pub version: String,
    /// Major, minor, patch.
    pub version_numbers: (u16, u16, u16),
    /// `@@server_id`.
    pub server_id: u32,
}

impl ServerInfo {
    /// Reads flavour, version and server id.
    pub async fn read(conn: &mut Conn) -> Result<ServerInfo> {
        let row: Option<(String, u32)> = conn
            .query_first("SELECT VERSION(), @@server_id")
            .await
            .map_err(|source| ReaderError::Query {
                what: "reading the server version".into(),
                source,
            })?;
        let (version, server_id) = row.unwrap_or_default();
        let flavor = if version.to_ascii_lowercase().contains("mariadb") {
            Flavor::Mariadb
        } else {
            Flavor::Mysql
        };
        let mut nums = version
            .split(|c: char| !c.is_ascii_digit())
            .filter(|s| !s.is_empty())
            .map(|s| s.parse().unwrap_or(0));
        let version_numbers = (
            nums.next().unwrap_or(0),
            nums.next().unwrap_or(0),
            nums.next().unwrap_or(0),
        );
        Ok(ServerInfo {
            flavor,
            version,
            version_numbers,
            server_id,
        })
    }
}

pub use schemas::check::{Check, Status};

/// The preflight report.
#[derive(Debug, Clone, Serialize)]
pub struct PreflightReport {
    /// Who the source is.
    pub server: ServerInfo,
    /// Every check in order.
    pub checks: Vec<Check>,
}

impl PreflightReport {
    /// Whether any check failed.
    pub fn has_failures(&self) -> bool {
        self.checks.iter().any(|c| c.status == Status::Fail)
    }

    /// The first failure as a definite error (for `sync`, which refuses to start).
    pub fn first_failure(&self) -> Option<ReaderError> {
        self.checks
            .iter()
            .find(|c| c.status == Status::Fail)
            .map(|c| ReaderError::Preflight {
                problem: format!("source check {} failed: found {}", c.name, c.found),
                hint: c.fix.clone(),
            })
    }
}

/// Options of the preflight.
#[derive(Debug, Clone)]
pub struct PreflightOptions {
    /// How long the sync window is expected to last; binlog retention shorter than this warns.
    pub sync_window: Duration,
}

impl Default for PreflightOptions {
    fn default() -> Self {
        PreflightOptions {
            sync_window: DEFAULT_SYNC_WINDOW,
        }
    }
}

async fn var(conn: &mut Conn, name: &str) -> Result<Option<String>> {
    // SHOW GLOBAL VARIABLES never fails on an unknown name (it returns no row), unlike @@name.
    let row: Option<(String, String)> = conn
        .exec_first("SHOW GLOBAL VARIABLES WHERE Variable_name = ?", (name,))
        .await
        .map_err(|source| ReaderError::Query {
            what: format!("reading @@{name}"),
            source,
        })?;
    Ok(row.map(|(_, v)| v))
}

/// Runs every check.
pub async fn preflight(conn: &mut Conn, opts: &PreflightOptions) -> Result<PreflightReport> {
    let server = ServerInfo::read(conn).await?;
    let mut checks = Vec::new();
    let mut push = |name: &str, status: Status, found: String, fix: &str| {
        checks.push(Check::new(name, status, found, fix))
    };
    let is_maria = server.flavor == Flavor::Mariadb;
    let config_hint = if is_maria {
        "in the [mariadbd] section of my.cnf"
    } else {
        "in the [mysqld] section of my.cnf"
    };

    let log_bin = var(conn, "log_bin").await?.unwrap_or_else(|| "OFF".into());
    push(
        "log_bin",
        if log_bin.eq_ignore_ascii_case("ON") {
            Status::Pass
        } else {
            Status::Fail
        },
        log_bin,
        &format!(
            "enable the binary log: set log_bin=ON (with a file name) {config_hint} and restart the server"
        ),
    );

    let fmt = var(conn, "binlog_format").await?.unwrap_or_default();
    push(
        "binlog_format",
        if fmt.eq_ignore_ascii_case("ROW") {
            Status::Pass
        } else {
            Status::Fail
        },
        fmt,
        &format!(
            "SET GLOBAL binlog_format = 'ROW' and set binlog_format=ROW {config_hint}; existing sessions keep their format until they reconnect"
        ),
    );

    let image = var(conn, "binlog_row_image")
        .await?
        .unwrap_or_else(|| "FULL".into());
    push(
        "binlog_row_image",
        if image.eq_ignore_ascii_case("FULL") {
            Status::Pass
        } else {
            Status::Fail
        },
        image,
        &format!(
            "SET GLOBAL binlog_row_image = 'FULL' and set binlog_row_image=FULL {config_hint}"
        ),
    );

    match var(conn, "binlog_row_metadata").await? {
        Some(m) => push(
            "binlog_row_metadata",
            if m.eq_ignore_ascii_case("FULL") {
                Status::Pass
            } else {
                Status::Warn
            },
            m,
            &format!(
                "SET GLOBAL binlog_row_metadata = 'FULL' (and {config_hint}) so rows decode with the schema they were written with; without it my2pg reads information_schema"
            ),
        ),
        None => push(
            "binlog_row_metadata",
            Status::Warn,
            "not supported by this server version".into(),
            "upgrade to MySQL 8.0 or MariaDB 10.5+ for self-describing row events; my2pg reads information_schema meanwhile",
        ),
    }

    if is_maria {
        let pos = var(conn, "gtid_binlog_pos").await?.unwrap_or_default();
        push(
            "gtid",
            Status::Pass,
            format!("MariaDB GTID, gtid_binlog_pos={pos}"),
            "",
        );
    } else {
        let mode = var(conn, "gtid_mode")
            .await?
            .unwrap_or_else(|| "OFF".into());
        push(
            "gtid_mode",
            if mode.eq_ignore_ascii_case("ON") {
                Status::Pass
            } else {
                Status::Warn
            },
            mode,
            "set gtid_mode=ON and enforce_gtid_consistency=ON so the position survives failover; my2pg uses file positions meanwhile",
        );
        let partial = var(conn, "binlog_row_value_options")
            .await?
            .unwrap_or_default();
        push(
            "binlog_row_value_options",
            if partial.to_ascii_uppercase().contains("PARTIAL_JSON") {
                Status::Fail
            } else {
                Status::Pass
            },
            if partial.is_empty() {
                "''".into()
            } else {
                partial
            },
            "SET GLOBAL binlog_row_value_options = '': partial JSON updates carry only a diff that cannot be applied without the full document",
        );
    }

    push(
        "server_id",
        if server.server_id != 0 {
            Status::Pass
        } else {
            Status::Fail
        },
        server.server_id.to_string(),
        &format!(
            "set server_id to a non-zero value {config_hint}; a server with id 0 refuses replication clients"
        ),
    );

    let grants = read_grants(conn).await?;
    let has = |p: &str| {
        grants
            .iter()
            .any(|g| g.global && (g.all || g.privileges.iter().any(|x| x == p)))
    };
    push(
        "privilege REPLICATION SLAVE",
        if has("REPLICATION SLAVE") || has("REPLICATION REPLICA") {
            Status::Pass
        } else {
            Status::Fail
        },
        summarize_grants(&grants),
        "GRANT REPLICATION SLAVE ON *.* TO the my2pg user",
    );
    let client = has("REPLICATION CLIENT") || has("BINLOG MONITOR") || has("SUPER");
    push(
        if is_maria {
            "privilege BINLOG MONITOR"
        } else {
            "privilege REPLICATION CLIENT"
        },
        if client { Status::Pass } else { Status::Fail },
        summarize_grants(&grants),
        if is_maria {
            "GRANT BINLOG MONITOR ON *.* TO the my2pg user (REPLICATION CLIENT on MariaDB before 10.5)"
        } else {
            "GRANT REPLICATION CLIENT ON *.* TO the my2pg user"
        },
    );
    let select = grants
        .iter()
        .any(|g| g.all || g.privileges.iter().any(|x| x == "SELECT"));
    push(
        "privilege SELECT",
        if select { Status::Pass } else { Status::Fail },
        summarize_grants(&grants),
        "GRANT SELECT ON each migrated database (or *.*) TO the my2pg user",
    );

    let retention = binlog_retention(conn, is_maria).await?;
    match retention {
        None => push(
            "binlog retention",
            Status::Pass,
            "binlogs are never purged automatically".into(),
            "",
        ),
        Some(r) => push(
            "binlog retention",
            if r >= opts.sync_window {
                Status::Pass
            } else {
                Status::Warn
            },
            format!("{} (sync window {})", human(r), human(opts.sync_window)),
            if is_maria {
                "raise binlog_expire_logs_seconds (or expire_logs_days) above the sync window; if my2pg is stopped longer than the retention its position is purged and a new snapshot is needed"
            } else {
                "raise binlog_expire_logs_seconds above the sync window; if my2pg is stopped longer than the retention its position is purged and a new snapshot is needed"
            },
        ),
    }

    Ok(PreflightReport { server, checks })
}

/// How long binlogs are kept; `None` when they are never purged automatically.
pub async fn binlog_retention(conn: &mut Conn, is_maria: bool) -> Result<Option<Duration>> {
    let secs = var(conn, "binlog_expire_logs_seconds")
        .await?
        .and_then(|v| v.parse::<f64>().ok());
    let days = var(conn, "expire_logs_days")
        .await?
        .and_then(|v| v.parse::<f64>().ok());
    let secs = match (secs, days) {
        (Some(s), _) if s > 0.0 => s,
        (_, Some(d)) if d > 0.0 => d * 86400.0,
        _ => 0.0,
    };
    let _ = is_maria;
    Ok((secs > 0.0).then(|| Duration::from_secs_f64(secs)))
}

fn human(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 86400 && s.is_multiple_of(86400) {
        format!("{} days", s / 86400)
    } else if s >= 3600 {
        format!("{:.1} hours", s as f64 / 3600.0)
    } else {
        format!("{s} s")
    }
}

/// One `GRANT` line, reduced to what the checks need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// Privileges, upper case (`SELECT`, `REPLICATION SLAVE`).
    pub privileges: Vec<String>,
    /// `ALL PRIVILEGES`.
    pub all: bool,
    /// Granted `ON *.*`.
    pub global: bool,
}

/// Parses one line of `SHOW GRANTS`.
pub fn parse_grant(line: &str) -> Option<Grant> {
    let upper = line.trim();
    let rest = upper.strip_prefix("GRANT ")?;
    let on = rest.find(" ON ")?;
    let privs = &rest[..on];
    let target = rest[on + 4..].trim_start();
    let global = target.starts_with("*.*");
    let privileges: Vec<String> = privs
        .split(',')
        .map(|p| p.trim().to_ascii_uppercase())
        .collect();
    let all = privileges
        .iter()
        .any(|p| p == "ALL" || p == "ALL PRIVILEGES");
    Some(Grant {
        privileges,
        all,
        global,
    })
}

async fn read_grants(conn: &mut Conn) -> Result<Vec<Grant>> {
    let lines: Vec<String> =
        conn.query("SHOW GRANTS FOR CURRENT_USER()")
            .await
            .map_err(|source| ReaderError::Query {
                what: "reading the source user's grants".into(),
                source,
            })?;
    Ok(lines.iter().filter_map(|l| parse_grant(l)).collect())
}

fn summarize_grants(grants: &[Grant]) -> String {
    let global: Vec<String> = grants
        .iter()
        .filter(|g| g.global)
        .flat_map(|g| g.privileges.clone())
        .collect();
    if global.is_empty() {
        "no global privileges".into()
    } else {
        format!("global: {}", global.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_grant_lines() {
        let g = parse_grant("GRANT SELECT, REPLICATION SLAVE, BINLOG MONITOR ON *.* TO `repl`@`%` IDENTIFIED BY PASSWORD '*x'")
            .unwrap();
        assert!(g.global && !g.all);
        assert_eq!(
            g.privileges,
            vec!["SELECT", "REPLICATION SLAVE", "BINLOG MONITOR"]
        );
        let g = parse_grant("GRANT ALL PRIVILEGES ON *.* TO `root`@`localhost` WITH GRANT OPTION")
            .unwrap();
        assert!(g.all && g.global);
        let g = parse_grant("GRANT SELECT ON `shop`.* TO `app`@`%`").unwrap();
        assert!(!g.global);
        assert!(parse_grant("REVOKE x").is_none());
    }
}
