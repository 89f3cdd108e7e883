//! The HTTP endpoints of a running pipeline: `/metrics` (Prometheus text format 0.0.4),
//! `/healthz` (the process is alive) and `/readyz` (the replica can be relied on).
//!
//! - **Listen address.** `127.0.0.1:8432` by default ([`DEFAULT_LISTEN`]): metrics name tables
//!   and `/readyz` shows error text, so nothing is exposed beyond the host unless the operator
//!   says so (`[http] listen = "0.0.0.0:8432"`), and then a bearer token is recommended (a
//!   warning is logged without one).
//! - **Bearer token.** With `[http] bearer_token` set, `/metrics` and `/readyz` answer 401
//!   (with `WWW-Authenticate: Bearer`) unless the request carries
//!   `Authorization: Bearer <token>`; Prometheus sends it with `authorization: {credentials}`
//!   in the scrape config, Kubernetes probes with `httpHeaders`. `/healthz` stays open: it
//!   says only `ok`, and liveness probes are the callers least able to carry a secret. The
//!   comparison takes the same time whatever prefix of the token matches.
//! - **`/readyz`.** 200 when the pipeline streams with a known lag at most
//!   `[http] ready_max_lag_secs`, else 503; both with a small JSON body
//!   (`{"ready":false,"phase":"snapshotting","lag_seconds":null,"max_lag_seconds":60.0,
//!   "reason":"initial snapshot in progress"}`), see [`crate::health::readiness`].
//! - **Shutdown.** [`HttpServer::shutdown`] stops accepting, lets in-flight requests finish,
//!   and returns when the server task has ended. The socket is bound before [`serve`]
//!   returns, so a port already in use is reported at start, not later from a task.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::config::{ConfigError, Secret};
use crate::health::{self, Health};
use crate::metrics::{self, Metrics};

/// Default listen address: loopback only, so nothing leaves the host unless configured. Port
/// 8432 is outside the Prometheus exporter range 9100–9999, which is fully allocated (every
/// port there belongs to some exporter on paper), and reads as "PostgreSQL's 5432, shifted".
pub const DEFAULT_LISTEN: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 8432);

/// Default maximum lag for `/readyz`, in seconds. A minute is long against a healthy
/// pipeline's sub-second lag, so ordinary bursts (a bulk update, a target vacuum) do not flip
/// readiness, and short enough that a cutover script gating on `/readyz` drains in seconds.
pub const DEFAULT_READY_MAX_LAG_SECS: f64 = 60.0;

/// `[http]`: the endpoints of `my2pg sync`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// Address to listen on (`host:port`; port 0 picks a free one).
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Token required by `/metrics` and `/readyz` as `Authorization: Bearer <token>`.
    #[serde(default)]
    pub bearer_token: Option<Secret>,
    /// `/readyz` answers 503 when the lag is above this many seconds.
    #[serde(default = "default_ready_max_lag_secs")]
    pub ready_max_lag_secs: f64,
}

fn default_listen() -> SocketAddr {
    DEFAULT_LISTEN
}

fn default_ready_max_lag_secs() -> f64 {
    DEFAULT_READY_MAX_LAG_SECS
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: DEFAULT_LISTEN,
            bearer_token: None,
            ready_max_lag_secs: DEFAULT_READY_MAX_LAG_SECS,
        }
    }
}

impl HttpConfig {
    /// Checks `[http]`, naming the key and the fix.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(self.ready_max_lag_secs.is_finite() && self.ready_max_lag_secs > 0.0) {
            return Err(ConfigError::new(
                "http.ready_max_lag_secs",
                format!(
                    "{} is not a positive number of seconds",
                    self.ready_max_lag_secs
                ),
                format!("set it to e.g. {DEFAULT_READY_MAX_LAG_SECS}"),
            ));
        }
        if let Some(t) = &self.bearer_token {
            let t = t.expose();
            if t.is_empty() || t.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(ConfigError::new(
                    "http.bearer_token",
                    "the token is empty or contains spaces or control characters",
                    "use a random token such as the output of `openssl rand -hex 32`, or remove the key",
                ));
            }
        }
        Ok(())
    }

    /// `ready_max_lag_secs` as a duration.
    pub fn ready_max_lag(&self) -> Duration {
        Duration::from_secs_f64(self.ready_max_lag_secs.max(0.0))
    }
}

/// The server could not start or failed while running.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The listen address could not be bound.
    #[error("cannot listen on {addr} for /metrics, /healthz and /readyz")]
    Bind {
        /// The address from `[http] listen`.
        addr: SocketAddr,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The server failed while accepting connections.
    #[error("the HTTP server on {addr} failed")]
    Serve {
        /// The bound address.
        addr: SocketAddr,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The server task panicked or was cancelled.
    #[error("the HTTP server task on {addr} ended abnormally")]
    Task {
        /// The bound address.
        addr: SocketAddr,
        /// The join error.
        #[source]
        source: tokio::task::JoinError,
    },
}

impl HttpError {
    /// What the operator should do.
    pub fn hint(&self) -> Option<String> {
        match self {
            HttpError::Bind { addr, .. } => Some(format!(
                "another process may be listening on {addr}; set [http] listen to a free address (port 0 picks one)"
            )),
            _ => None,
        }
    }
}

/// What the handlers share.
#[derive(Debug, Clone)]
struct AppState {
    metrics: Metrics,
    health: Health,
    max_lag: Duration,
    token: Option<Secret>,
}

/// A running server. Dropping it leaves the server running until the runtime ends; call
/// [`HttpServer::shutdown`] for a graceful stop.
#[derive(Debug)]
pub struct HttpServer {
    addr: SocketAddr,
    stop: oneshot::Sender<()>,
    task: JoinHandle<std::io::Result<()>>,
}

impl HttpServer {
    /// The bound address (the real port when `listen` had port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting connections, waits for in-flight requests, and returns when the
    /// server has ended.
    pub async fn shutdown(self) -> Result<(), HttpError> {
        let addr = self.addr;
        let _ = self.stop.send(());
        match self.task.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(source)) => Err(HttpError::Serve { addr, source }),
            Err(source) => Err(HttpError::Task { addr, source }),
        }
    }
}

/// Binds `cfg.listen` and serves the endpoints from a spawned task. The pipeline keeps
/// updating `metrics` and `health`; the server only reads them.
pub async fn serve(
    cfg: &HttpConfig,
    metrics: Metrics,
    health: Health,
) -> Result<HttpServer, HttpError> {
    let listener = tokio::net::TcpListener::bind(cfg.listen)
        .await
        .map_err(|source| HttpError::Bind {
            addr: cfg.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| HttpError::Bind {
        addr: cfg.listen,
        source,
    })?;
    if !addr.ip().is_loopback() && cfg.bearer_token.is_none() {
        tracing::warn!(
            listen = %addr,
            "serving /metrics and /readyz beyond this host without a bearer token; set [http] bearer_token"
        );
    }
    let app = router(AppState {
        metrics,
        health,
        max_lag: cfg.ready_max_lag(),
        token: cfg.bearer_token.clone(),
    });
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stopped.await;
            })
            .await
    });
    tracing::info!(listen = %addr, "serving /metrics, /healthz and /readyz");
    Ok(HttpServer { addr, stop, task })
}

fn router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(metrics_handler))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(state)
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn metrics_handler(State(s): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(denied) = check_token(&s, &headers) {
        return denied;
    }
    match s.metrics.encode() {
        Ok(text) => ([(header::CONTENT_TYPE, metrics::CONTENT_TYPE)], text).into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "cannot encode /metrics");
            (StatusCode::INTERNAL_SERVER_ERROR, "cannot encode metrics\n").into_response()
        }
    }
}

async fn readyz(State(s): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(denied) = check_token(&s, &headers) {
        return denied;
    }
    let r = health::readiness(&s.health, &s.metrics, s.max_lag);
    let status = if r.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(r)).into_response()
}

/// `None` when the request may proceed, else the 401 response.
fn check_token(s: &AppState, headers: &HeaderMap) -> Option<Response> {
    let token = s.token.as_ref()?;
    if bearer_matches(headers.get(header::AUTHORIZATION), token) {
        return None;
    }
    Some(
        (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"))],
            "a bearer token is required (Authorization: Bearer <token>)\n",
        )
            .into_response(),
    )
}

/// Whether `Authorization: Bearer <token>` carries `token`. The scheme is case-insensitive
/// (RFC 7235); the token is compared in time independent of where it first differs.
fn bearer_matches(value: Option<&HeaderValue>, token: &Secret) -> bool {
    let Some(value) = value.and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let Some((scheme, given)) = value.trim().split_once(' ') else {
        return false;
    };
    scheme.eq_ignore_ascii_case("bearer")
        && same_bytes(given.trim().as_bytes(), token.expose().as_bytes())
}

fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    // Length differences still leak, which reveals only the token's length.
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_header_is_parsed_strictly() {
        let t = Secret::new("s3cret");
        let h = |s: &'static str| HeaderValue::from_static(s);
        assert!(bearer_matches(Some(&h("Bearer s3cret")), &t));
        assert!(bearer_matches(Some(&h("bearer s3cret")), &t));
        assert!(!bearer_matches(Some(&h("Bearer s3cre")), &t));
        assert!(!bearer_matches(Some(&h("Bearer s3cretx")), &t));
        assert!(!bearer_matches(Some(&h("Basic s3cret")), &t));
        assert!(!bearer_matches(Some(&h("s3cret")), &t));
        assert!(!bearer_matches(None, &t));
    }

    #[test]
    fn validation_names_the_key() {
        let cfg = HttpConfig {
            ready_max_lag_secs: 0.0,
            ..HttpConfig::default()
        };
        assert_eq!(cfg.validate().unwrap_err().key, "http.ready_max_lag_secs");
        let cfg = HttpConfig {
            bearer_token: Some(Secret::new("has space")),
            ..HttpConfig::default()
        };
        assert_eq!(cfg.validate().unwrap_err().key, "http.bearer_token");
    }
}
