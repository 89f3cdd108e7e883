//! Readiness check results shared by the source preflight (`cdc-reader`) and the target checks
//! (`sink`), printed together by `my2pg check`.

use serde::Serialize;

/// Outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Fine.
    Pass,
    /// Works, with a cost the operator should know.
    Warn,
    /// Blocks the migration.
    Fail,
}

/// One check's result.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// What was checked, e.g. `binlog_format`.
    pub name: String,
    /// Outcome.
    pub status: Status,
    /// The value found.
    pub found: String,
    /// What it should be, and how to get there (empty when passed).
    pub fix: String,
}

impl Check {
    /// A check result; `fix` is dropped when the check passed.
    pub fn new(
        name: impl Into<String>,
        status: Status,
        found: impl Into<String>,
        fix: impl Into<String>,
    ) -> Check {
        Check {
            name: name.into(),
            status,
            found: found.into(),
            fix: if status == Status::Pass {
                String::new()
            } else {
                fix.into()
            },
        }
    }
}
