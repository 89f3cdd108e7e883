//! Target checks for `my2pg check`: version, encoding, and the privileges my2pg needs to create
//! its `my2pg` state schema and the migrated schemas.

use schemas::check::{Check, Status};
use tokio_postgres::Client;

use crate::connect::TargetOptions;
use crate::error::{Result, SinkError};

/// Oldest PostgreSQL my2pg supports: 12 brought generated columns and the planner features
/// the apply statements rely on.
pub const MIN_SERVER_VERSION: i32 = 120000;

/// Runs the target checks.
pub async fn target_checks(client: &Client, opts: &TargetOptions) -> Result<Vec<Check>> {
    let q = |what: &str| {
        let what = what.to_owned();
        move |source| SinkError::Query { what, source }
    };
    let row = client
        .query_one(
            "SELECT current_setting('server_version_num')::int, current_setting('server_version'), \
             pg_encoding_to_char(encoding), has_database_privilege(current_user, current_database(), 'CREATE') \
             FROM pg_database WHERE datname = current_database()",
            &[],
        )
        .await
        .map_err(q("reading the target's version and encoding"))?;
    let num: i32 = row.get(0);
    let version: String = row.get(1);
    let encoding: String = row.get(2);
    let can_create: bool = row.get(3);
    Ok(vec![
        Check::new(
            "target version",
            if num >= MIN_SERVER_VERSION {
                Status::Pass
            } else {
                Status::Fail
            },
            format!("PostgreSQL {version}"),
            "use PostgreSQL 12 or newer",
        ),
        Check::new(
            "target encoding",
            if encoding.eq_ignore_ascii_case("UTF8") {
                Status::Pass
            } else {
                Status::Fail
            },
            format!("database {} is {encoding}", opts.database()),
            format!(
                "create the target database with ENCODING 'UTF8': CREATE DATABASE \"{}\" ENCODING 'UTF8' TEMPLATE template0",
                opts.database()
            ),
        ),
        Check::new(
            "target privilege CREATE",
            if can_create {
                Status::Pass
            } else {
                Status::Fail
            },
            format!(
                "user {} {} create schemas in {}",
                opts.user(),
                if can_create { "may" } else { "may not" },
                opts.database()
            ),
            format!(
                "GRANT CREATE ON DATABASE \"{}\" TO \"{}\"",
                opts.database(),
                opts.user()
            ),
        ),
    ])
}
