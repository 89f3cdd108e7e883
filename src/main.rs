//! `my2pg`: zero-downtime MySQL/MariaDB → PostgreSQL migration.

use std::process::ExitCode;

fn main() -> ExitCode {
    my2pg::cli::main()
}
