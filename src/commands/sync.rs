//! `my2pg sync`: copy, then stream, until stopped; serves `/metrics`, `/healthz`, `/readyz`
//! and pages on-call (see `crate::sync` for the pipeline).

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Result;
use schemas::TableId;
use tokio::sync::watch;
use tracing::info;

use crate::alerts::Alerting;
use crate::config::{Config, ConfigError};
use crate::health::Health;
use crate::metrics::Metrics;
use crate::sync::{self, Exit, SyncOptions};
use crate::{exit, http};

/// Runs `sync` with the given options; returns the exit code.
pub async fn run(
    cfg: &Config,
    snapshot_only: bool,
    resnapshot: &[String],
    listen: Option<SocketAddr>,
    via: crate::cli::Via,
) -> Result<u8> {
    let mut resnapshot_ids = Vec::new();
    for (i, r) in resnapshot.iter().enumerate() {
        let id = TableId::parse(r).ok_or_else(|| {
            ConfigError::new(
                format!("--resnapshot[{i}]"),
                format!("{r:?} is not of the form db.table"),
                "write it as db.table, e.g. shop.orders",
            )
        })?;
        resnapshot_ids.push(id);
    }
    if via == crate::cli::Via::Kafka && !resnapshot_ids.is_empty() {
        return Err(ConfigError::new(
            "--resnapshot",
            "copying a table again is not supported with --via kafka (its copy would need \
             ordering against the apply workers' streams)",
            "start a new pipeline (another [sync] pipeline name) to copy every table again \
             through Kafka, or sync directly (without --via kafka), which supports --resnapshot",
        )
        .into());
    }
    let opts = SyncOptions {
        snapshot_only,
        resnapshot: resnapshot_ids,
        via_kafka: via == crate::cli::Via::Kafka,
    };
    let result = sidecar(cfg, listen, |ctx, stop| sync::run(ctx, opts, stop)).await;
    let exit = result??;
    exit::emit(&sync::describe_exit(&exit));
    Ok(match exit {
        Exit::Stopped | Exit::SnapshotOnly(_) => exit::OK,
    })
}

/// Runs `apply --from kafka` (one worker of the group); returns the exit code.
pub async fn apply(cfg: &Config, listen: Option<SocketAddr>) -> Result<u8> {
    let result = sidecar(cfg, listen, sync::consume::run).await;
    let exit = result??;
    exit::emit(&sync::describe_exit(&exit));
    Ok(exit::OK)
}

/// Runs `run` as the sidecar does: `/metrics` and health endpoints, alerting, and SIGINT or
/// SIGTERM turned into the stop signal; everything is shut down when `run` ends.
async fn sidecar<F, Fut>(
    cfg: &Config,
    listen: Option<SocketAddr>,
    run: F,
) -> anyhow::Result<anyhow::Result<Exit>>
where
    F: FnOnce(sync::SyncContext, watch::Receiver<bool>) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<Exit>>,
{
    let metrics = Metrics::new()?;
    let health = Health::new();
    let mut http_cfg = cfg.http.clone();
    if let Some(l) = listen {
        http_cfg.listen = l;
    }
    let server = http::serve(&http_cfg, metrics.clone(), health.clone()).await?;
    let alerting = Alerting::start(&cfg.alerts, &metrics, &health)?;
    let ctx = sync::context(cfg, metrics, health)?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let signals = tokio::spawn(async move {
        wait_for_signal().await;
        info!("stop requested; finishing the batch in flight");
        let _ = stop_tx.send(true);
    });
    let result = run(ctx, stop_rx).await;
    signals.abort();
    if let Some(a) = alerting {
        a.shutdown(Duration::from_secs(5)).await;
    }
    let _ = server.shutdown().await;
    Ok(result)
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let term = signal(SignalKind::terminate());
        let int = signal(SignalKind::interrupt());
        match (term, int) {
            (Ok(mut t), Ok(mut i)) => {
                tokio::select! {
                    _ = t.recv() => {}
                    _ = i.recv() => {}
                }
            }
            _ => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
