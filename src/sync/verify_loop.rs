//! Background verification inside `my2pg sync` (`[verify] interval_secs`): every interval,
//! every migrated table is compared with `verifier` exactly as `my2pg verify` does — through
//! the pipeline's transforms and mapping — and the rows that still differ after the applier
//! passed the comparison's source position become the `my2pg_drift_rows{table}` gauge, which
//! the drift alert reads. Rows that differ only because they are not applied yet are re-checked
//! and dropped (see `verifier::table`), so replication lag never shows as drift.
//!
//! One table at a time, optionally rate-limited, so a pass is a steady background read rather
//! than a burst competing with the applier. A failed pass (a server restarting) is logged and
//! retried at the next interval; it never stops the pipeline. Results are also stored in
//! `my2pg.verify_result`.

use std::time::Duration;

use schemas::TableId;
use tokio::sync::watch;
use tracing::{info, warn};
use verifier::{TableStatus, VerifyOptions};

use crate::sync::SyncContext;

/// Re-verifies every migrated table every `every` until `stop` turns true; no rate limit.
pub async fn run(ctx: SyncContext, every: Duration, stop: watch::Receiver<bool>) {
    run_limited(ctx, every, None, stop).await;
}

/// [`run`] reading at most `max_rows_per_second` rows per second from each side.
pub async fn run_limited(
    ctx: SyncContext,
    every: Duration,
    max_rows_per_second: Option<u64>,
    mut stop: watch::Receiver<bool>,
) {
    let every = every.max(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            changed = stop.changed() => {
                if changed.is_err() || *stop.borrow() {
                    return;
                }
                continue;
            }
        }
        if *stop.borrow() {
            return;
        }
        let pass = tokio::select! {
            r = pass(&ctx, max_rows_per_second) => r,
            _ = stop.wait_for(|s| *s) => return,
        };
        if let Err(e) = pass {
            warn!(error = %e, "background verification pass failed; retrying at the next interval");
        }
    }
}

/// One pass over every migrated table.
pub async fn pass(ctx: &SyncContext, max_rows_per_second: Option<u64>) -> anyhow::Result<()> {
    let tables = crate::sync::discover(ctx).await?;
    let schema_of = |db: &str| ctx.targeting.schema_of(db);
    let prepared = verifier::prepare(
        &tables,
        &[],
        &ctx.transforms,
        &ctx.targeting.options,
        &schema_of,
    );
    let opts = VerifyOptions {
        parallel: 1,
        max_diffs: 0,
        pipeline: ctx.pipeline.clone(),
        max_rows_per_second,
        ..VerifyOptions::default()
    };
    let report = verifier::verify(&ctx.source, &ctx.target, prepared, &opts).await?;
    for t in &report.tables {
        let Some(id) = TableId::parse(&t.source_table) else {
            continue;
        };
        match t.status {
            TableStatus::Identical | TableStatus::Different => {
                ctx.metrics.table(&id).verify_rows_compared(t.rows_compared);
                ctx.metrics.set_drift_rows(&id, t.differences());
                if t.differences() > 0 {
                    warn!(
                        table = %id,
                        missing = t.missing_in_target,
                        extra = t.extra_in_target,
                        differing = t.differing,
                        "drift: target rows differ from the source after the applier caught up"
                    );
                }
            }
            TableStatus::Error | TableStatus::Skipped => {
                if let Some(p) = &t.problem {
                    warn!(table = %id, problem = %p.reason, "background verification could not compare a table");
                }
            }
        }
    }
    info!(
        rows = report.totals.rows_compared,
        seconds = report.coverage.seconds,
        result = %report.result,
        "background verification pass done"
    );
    Ok(())
}
