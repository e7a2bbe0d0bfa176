//! The admin HTTP server every service process runs beside its gRPC port:
//!
//! - `GET /metrics`: Prometheus text format.
//! - `GET /healthz`: 200 while the process serves at all (liveness).
//! - `GET /readyz`: 200 when the process can do its job (the control plane reaches its
//!   store, the worker reaches its control plane), 503 with the reason otherwise.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;

/// A boxed future, as the hooks return them.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// Answers whether the process is ready: `Err` carries the reason shown by `/readyz`.
pub type ReadinessCheck = Arc<dyn Fn() -> BoxFuture<Result<(), String>> + Send + Sync>;

/// Runs before each scrape, to refresh gauges read from elsewhere (the store's queue).
pub type ScrapeHook = Arc<dyn Fn() -> BoxFuture<()> + Send + Sync>;

/// What the admin server serves.
#[derive(Clone)]
pub struct Admin {
    /// The registry `/metrics` renders.
    pub metrics: PrometheusHandle,
    /// The checks of `/readyz`; all must pass. None means ready while alive.
    pub readiness: Vec<ReadinessCheck>,
    /// Hooks run before `/metrics` renders.
    pub before_scrape: Vec<ScrapeHook>,
}

impl Admin {
    /// An admin server over `metrics` with no readiness checks and no hooks yet.
    pub fn new(metrics: PrometheusHandle) -> Self {
        Self {
            metrics,
            readiness: Vec::new(),
            before_scrape: Vec::new(),
        }
    }
}

/// Why the admin server stopped.
#[derive(Debug, thiserror::Error)]
#[error("admin server: {0}")]
pub struct AdminError(#[from] std::io::Error);

/// Serves the admin endpoints on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    admin: Admin,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), AdminError> {
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .with_state(Arc::new(admin));
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await?;
    Ok(())
}

async fn metrics(State(admin): State<Arc<Admin>>) -> impl IntoResponse {
    for hook in &admin.before_scrape {
        hook().await;
    }
    admin.metrics.run_upkeep();
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        admin.metrics.render(),
    )
}

async fn readyz(State(admin): State<Arc<Admin>>) -> impl IntoResponse {
    for check in &admin.readiness {
        if let Err(reason) = check().await {
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                format!("not ready: {reason}\n"),
            );
        }
    }
    (StatusCode::OK, "ready\n".to_owned())
}
