//! `my2pg`: zero-downtime MySQL/MariaDB → PostgreSQL migration.

use std::process::ExitCode;

// The copy and the applier allocate a value per column of every row: glibc's malloc spent
// about a third of the copy's CPU time in a profile (arena locking, consolidation) while
// mimalloc's thread-local free lists make that a few percent.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    my2pg::cli::main()
}
