//! The composition root of the worker: builds the clients and the app state from a checked
//! [`Config`], and serves until SIGTERM.
//!
//! Shutdown order (DESIGN.md §4): held watch deliveries stop polling and answer 429 at once;
//! requests already in flight finish; publishers are flushed; the process exits within 8 s.

mod anchor;
mod serve;

use std::sync::Arc;
use std::time::Duration;

pub use crate::config::auth::{WorkerService, worker_service};
pub use anchor::anchor_to_service;
pub use serve::{ServeLimits, serve};

use crate::clients::pubsub::{Connection, PubSubTopics, Topics};
use crate::clients::vertex::{GoogleVertex, VertexOptions};
use crate::clients::webhook::{Callbacks, SecretError};
use crate::config::{Config, PushAuthMode, startup_warnings};
use crate::http::auth::{NoAuth, PushAuth};
use crate::http::enqueue::invoker_audiences;
use crate::http::oidc::OidcAuth;
use crate::http::{AppState, app, shutdown_signal};
use crate::pipeline::Pipeline;
use crate::pipeline::budget::{Budget, Paced};
use crate::pipeline::existing::ProjectNumbers;

/// Why the worker could not start or stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// The Pub/Sub publishers could not be built (credentials, endpoint).
    #[error("building the Pub/Sub publishers: {0}")]
    Publishers(#[from] google_cloud_gax::client_builder::Error),
    /// `CALLBACK_SIGNING_SECRET` could not be decoded.
    #[error("CALLBACK_SIGNING_SECRET: {0}")]
    Secret(#[from] SecretError),
    /// The Cloud Run Admin client (`PUSH_AUTH=cloud-run`) could not be built.
    #[error("building the Cloud Run Admin client: {0}")]
    CloudRunAdmin(google_cloud_gax::client_builder::Error),
    /// The port is taken or not allowed.
    #[error("PORT: cannot listen on {port}: {source}")]
    Listen {
        port: u16,
        #[source]
        source: std::io::Error,
    },
}

/// Hard limit on the time between SIGTERM and exit.
pub const SHUTDOWN_BUDGET: Duration = Duration::from_secs(8);

/// Builds the state of the app from a validated configuration.
pub async fn build_state(
    cfg: &Config,
    shutdown: tokio::sync::watch::Receiver<bool>,
) -> Result<(AppState, Arc<dyn Topics>), ServeError> {
    let conn = Connection {
        emulator_host: cfg.emulator_host.clone(),
        credentials: None,
    };
    let topics: Arc<dyn Topics> = Arc::new(PubSubTopics::new(&conn, cfg.topics.clone()).await?);
    let vertex = Arc::new(GoogleVertex::new(VertexOptions {
        endpoint: cfg.vertex_endpoint.clone(),
        call_timeout: cfg.vertex_call_timeout,
    }));
    let verifier = |audiences: &[String], accounts: &[String]| -> Arc<dyn PushAuth> {
        let auth = OidcAuth::new(audiences, accounts, cfg.push_jwks_url.as_deref());
        match cfg.push_auth {
            PushAuthMode::CloudRun => Arc::new(auth.behind_cloud_run()),
            _ => Arc::new(auth),
        }
    };
    let (push_auth, invoker_auth) = match cfg.push_auth {
        PushAuthMode::None => (Arc::new(NoAuth) as Arc<dyn PushAuth>, Arc::new(NoAuth) as _),
        PushAuthMode::Oidc | PushAuthMode::CloudRun => (
            verifier(&cfg.push_audiences, &cfg.push_service_accounts),
            // With no INVOKER_SERVICE_ACCOUNTS every direct caller gets 403.
            verifier(
                &invoker_audiences(&cfg.push_audiences),
                &cfg.invoker_service_accounts,
            ),
        ),
    };
    let numbers = Arc::<ProjectNumbers>::default();
    let budget = Arc::new(Budget::with_numbers(cfg.rates, numbers.clone()));
    let pipeline = Pipeline {
        vertex: Arc::new(Paced::new(vertex, budget.clone())),
        budget,
        topics: topics.clone(),
        queue: cfg.start_queue.clone().map(|q| {
            Arc::new(crate::clients::tasks::CloudTasksQueue::new(q))
                as Arc<dyn crate::clients::tasks::StartQueue>
        }),
        callbacks: Arc::new(Callbacks::new(cfg.callback_signing_secret.as_deref())?),
        settings: Arc::new(cfg.settings.clone()),
        numbers,
        in_flight: Arc::default(),
        shutdown,
    };
    Ok((
        AppState {
            pipeline,
            push_auth,
            invoker_auth,
        },
        topics,
    ))
}

/// Runs the worker until SIGTERM or Ctrl-C. With `PUSH_AUTH=cloud-run`, `service` is the
/// worker's own Cloud Run service, whose invoker check is read at start and kept under watch
/// for as long as the server runs ([`anchor_to_service`]).
pub async fn run(cfg: Config, service: Option<WorkerService>) -> Result<(), ServeError> {
    for w in startup_warnings(&cfg) {
        tracing::warn!("{w}");
    }
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let (state, topics) = build_state(&cfg, stop_rx).await?;
    let (state, refresh) = match &service {
        Some(svc) => {
            let (state, refresh) = anchor_to_service(state, svc).await?;
            (state, Some(tokio::spawn(refresh)))
        }
        None => (state, None),
    };
    let listener = tokio::net::TcpListener::bind(("0.0.0.0", cfg.port))
        .await
        .map_err(|source| ServeError::Listen {
            port: cfg.port,
            source,
        })?;
    tracing::info!(port = cfg.port, project = %cfg.worker_project, "copy-worker serving");
    let (sig_tx, sig_rx) = tokio::sync::oneshot::channel::<()>();
    let server = serve(listener, app(state), ServeLimits::default(), async move {
        let _ = sig_rx.await;
    });
    let server = tokio::spawn(server);
    shutdown_signal().await;
    tracing::info!("shutdown: stopping held watches, finishing in-flight requests");
    let deadline = tokio::time::Instant::now() + SHUTDOWN_BUDGET;
    let _ = stop_tx.send(true);
    let _ = sig_tx.send(());
    let budget = SHUTDOWN_BUDGET - Duration::from_secs(1);
    if tokio::time::timeout(budget, server).await.is_err() {
        tracing::warn!("in-flight requests did not finish in time; exiting anyway");
    }
    if let Some(refresh) = refresh {
        refresh.abort();
    }
    let _ = tokio::time::timeout_at(deadline, topics.flush()).await;
    tracing::info!("shutdown complete");
    Ok(())
}
