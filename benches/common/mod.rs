//! Helpers shared by the benchmark drivers.

use std::io::Write as _;

/// Prints one result line at once (a long run shows progress as it goes).
pub fn report(line: &str) {
    println!("{line}");
    let _ = std::io::stdout().flush();
}

/// Peak resident set of a running process, in MiB (`VmHWM`); 0 once it has exited.
pub fn peak_rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// A PostgreSQL client whose connection runs on the runtime.
pub async fn pg_connect(url: &str) -> tokio_postgres::Client {
    let (c, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    c
}
