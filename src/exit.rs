//! Exit codes and the one-line error report.
//!
//! A failed command prints `error: <what failed>: <cause>: <cause>` and, when the error knows
//! the fix, `  fix: <what to do>` — never a panic, never a secret (URLs are printed redacted by
//! the types that hold them).

use std::process::ExitCode;

/// Success; for `verify`: source and target are identical.
pub const OK: u8 = 0;
/// `verify`: differences found; `check`: something blocks the migration.
pub const DIFFERENT: u8 = 1;
/// An error: bad configuration, unreachable server, failed run.
pub const ERROR: u8 = 2;

/// Finds the operator hint in an error chain (the first typed error that knows one).
pub fn hint_of(err: &anyhow::Error) -> Option<String> {
    for cause in err.chain() {
        if let Some(e) = cause.downcast_ref::<crate::config::ConfigError>() {
            return Some(e.fix.clone()).filter(|f| !f.is_empty());
        }
        if let Some(e) = cause.downcast_ref::<cdc_reader::ReaderError>()
            && let Some(h) = e.hint()
        {
            return Some(h);
        }
        if let Some(e) = cause.downcast_ref::<sink::SinkError>()
            && let Some(h) = e.hint()
        {
            return Some(h);
        }
        if let Some(e) = cause.downcast_ref::<verifier::VerifyError>()
            && let Some(h) = e.hint()
        {
            return Some(h);
        }
    }
    None
}

/// Renders the error chain on one line, de-duplicating causes that repeat their parent's text.
pub fn render(err: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in err.chain() {
        let s = cause.to_string();
        if parts.last().is_some_and(|p| p.contains(&s)) {
            continue;
        }
        parts.push(s);
    }
    parts.join(": ")
}

/// Prints the error report to stderr and returns exit code 2.
pub fn report(err: &anyhow::Error) -> ExitCode {
    eprintln!("error: {}", render(err));
    if let Some(h) = hint_of(err) {
        eprintln!("  fix: {h}");
    }
    ExitCode::from(ERROR)
}

/// Writes a report to stdout. A closed pipe (`my2pg verify | head`) is not an error worth a
/// panic, so write errors are ignored here; the exit code still tells the result.
pub fn emit(text: &str) {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    if !text.ends_with('\n') {
        let _ = out.write_all(b"\n");
    }
    let _ = out.flush();
}
