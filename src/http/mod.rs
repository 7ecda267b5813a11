//! The HTTP surface (DESIGN.md §4, §7): push endpoints, the direct callers' endpoint and
//! health, built apart from serving so that tests can call the router without a socket.
//!
//! - [`envelope`]: the Pub/Sub push envelope.
//! - [`auth`]: who may call, as a middleware; [`oidc`]: the Google ID-token verifier.
//! - [`push`]: `POST /pubsub/copy-requests` and `/pubsub/copy-callbacks`, the queues'
//!   `POST /tasks/copy-starts` and `/tasks/copy-polls`, and (during an upgrade only)
//!   `POST /pubsub/copy-operations`.
//! - [`enqueue`]: `POST /v1/models/copy`.
//! - [`error`]: the one table from answer to status code.

pub(crate) mod auth;
pub(crate) mod enqueue;
pub(crate) mod envelope;
pub(crate) mod error;
pub(crate) mod oidc;
pub(crate) mod push;

// The surface tests and other front ends build on: the router, its state, and the seams.
pub use auth::{AuthDecision, PushAuth};
pub use envelope::{PushMessage, parse_envelope};
pub use oidc::OidcAuth;

use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};

use self::auth::{Answer, require};
use crate::pipeline::Pipeline;
use crate::topology;

/// Largest push body accepted: 10 MB of message, base64 included, plus the envelope.
pub const MAX_PUSH_BYTES: usize = 14 * 1024 * 1024;

/// Shared state of the handlers.
#[derive(Clone)]
pub struct AppState {
    pub pipeline: Pipeline,
    /// Checks pushes (`PUSH_SERVICE_ACCOUNTS`).
    pub push_auth: Arc<dyn PushAuth>,
    /// Checks the queues' dispatches (`TASKS_SERVICE_ACCOUNT`, audience `TASKS_URL`).
    pub tasks_auth: Arc<dyn PushAuth>,
    /// `COPY_OPERATIONS_DRAIN`: serve the upgrade route.
    pub drain: bool,
    /// Checks direct callers of `POST /v1/models/copy` (`INVOKER_SERVICE_ACCOUNTS`).
    pub invoker_auth: Arc<dyn PushAuth>,
}

/// The router. Authentication runs as a middleware in front of each group of routes.
pub fn app(state: AppState) -> Router {
    let mut pushes = Router::new()
        .route(topology::REQUESTS_ROUTE, post(push::copy_requests))
        .route(topology::CALLBACKS_ROUTE, post(push::copy_callbacks));
    // The upgrade route is served only while an upgrade drains the old subscription: a route
    // nobody should call is not a route anybody can call.
    if state.drain {
        pushes = pushes.route(
            topology::legacy::OPERATIONS_ROUTE,
            post(push::copy_operations),
        );
    }
    let pushes = pushes.route_layer(axum::middleware::from_fn_with_state(
        (state.push_auth.clone(), Answer::Text),
        require,
    ));
    let tasks = Router::new()
        .route(topology::COPY_STARTS_ROUTE, post(push::copy_starts))
        .route(topology::COPY_POLLS_ROUTE, post(push::copy_polls))
        .route_layer(axum::middleware::from_fn_with_state(
            (state.tasks_auth.clone(), Answer::Text),
            require,
        ));
    let callers = Router::new()
        .route(topology::DIRECT_COPY_ROUTE, post(enqueue::enqueue))
        .route_layer(axum::middleware::from_fn_with_state(
            (state.invoker_auth.clone(), Answer::Json),
            require,
        ));
    // `/healthz` for Cloud Run's probes, which reach the container directly. From outside,
    // Cloud Run's front end answers "some paths ending with z" itself and never forwards them
    // ("You can't use the following URL paths: … Some paths ending with z", Cloud Run known
    // issues, cloud.google.com/run/docs/known-issues), so `/health` is the same check for
    // callers who go through the service URL.
    let health = get(|| async { "ok" });
    Router::new()
        .route(topology::HEALTHZ_ROUTE, health.clone())
        .route(topology::HEALTH_ROUTE, health)
        .merge(pushes)
        .merge(tasks)
        .merge(callers)
        .with_state(state)
        // A panic outside a stage is answered as a failure (Pub/Sub redelivers) instead of killing the process.
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(
            error::on_panic,
        ))
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}
