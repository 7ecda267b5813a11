//! The composition root of the worker: builds the clients and the app state from a checked
//! [`Config`], and serves until SIGTERM.
//!
//! Shutdown order (DESIGN.md §4): no new connections; requests already in flight (each one
//! short: nothing is held while a copy runs) finish; publishers are flushed; the process
//! exits within 8 s.

mod anchor;
mod serve;

use std::sync::Arc;
use std::time::Duration;

pub use crate::config::auth::{WorkerService, worker_service};
pub use anchor::anchor_to_service;
pub use serve::{ServeLimits, serve};

use crate::clients::pubsub::{Connection, PubSubTopics, Topics};
use crate::clients::tasks::CloudTasksQueues;
use crate::clients::vertex::{GoogleVertex, VertexOptions};
use crate::clients::webhook::{Callbacks, SecretError};
use crate::config::{Config, PushAuthMode, startup_warnings};
use crate::http::auth::{NoAuth, PushAuth};
use crate::http::enqueue::invoker_audiences;
use crate::http::oidc::OidcAuth;
use crate::http::{AppState, app, shutdown_signal};
use crate::pipeline::Pipeline;
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
pub async fn build_state(cfg: &Config) -> Result<(AppState, Arc<dyn Topics>), ServeError> {
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
    // One allow-list per route (DESIGN.md §11): Pub/Sub's push account on /pubsub/*, the
    // queues' own account on /tasks/*, the direct callers on /v1/models/copy. A token that is
    // good on one route is refused (403) on the others.
    let none = || Arc::new(NoAuth) as Arc<dyn PushAuth>;
    let (tasks_audiences, tasks_accounts) = tasks_identities(cfg);
    let (push_auth, tasks_auth, invoker_auth) = match cfg.push_auth {
        PushAuthMode::None => (none(), none(), none()),
        PushAuthMode::Oidc | PushAuthMode::CloudRun => (
            verifier(&cfg.push_audiences, &cfg.push_service_accounts),
            verifier(&tasks_audiences, &tasks_accounts),
            // With no INVOKER_SERVICE_ACCOUNTS every direct caller gets 403.
            verifier(
                &invoker_audiences(&cfg.push_audiences),
                &cfg.invoker_service_accounts,
            ),
        ),
    };
    let pipeline = Pipeline {
        vertex,
        topics: topics.clone(),
        queues: Arc::new(CloudTasksQueues::new(cfg.queues.clone())),
        callbacks: Arc::new(Callbacks::new(cfg.callback_signing_secret.as_deref())?),
        settings: Arc::new(cfg.settings.clone()),
        numbers: Arc::<ProjectNumbers>::default(),
        in_flight: Arc::default(),
    };
    Ok((
        AppState {
            pipeline,
            push_auth,
            tasks_auth,
            invoker_auth,
            drain: cfg.operations_drain,
        },
        topics,
    ))
}

/// Who may call the `/tasks/*` routes: the queues' own account, for `TASKS_URL`. While an
/// upgrade drains (`COPY_OPERATIONS_DRAIN`), also the push account for the push audiences:
/// the previous release's copy-start tasks, still in the queue, carry the push account's token
/// (docs/DESIGN.md, "Upgrading").
fn tasks_identities(cfg: &Config) -> (Vec<String>, Vec<String>) {
    let mut audiences = vec![cfg.queues.target_url.clone()];
    let mut accounts: Vec<String> = cfg.queues.service_account.iter().cloned().collect();
    if cfg.operations_drain {
        audiences.extend(cfg.push_audiences.iter().cloned());
        accounts.extend(cfg.push_service_accounts.iter().cloned());
    }
    (audiences, accounts)
}

/// Runs the worker until SIGTERM or Ctrl-C. With `PUSH_AUTH=cloud-run`, `service` is the
/// worker's own Cloud Run service, whose invoker check is read at start and kept under watch
/// for as long as the server runs ([`anchor_to_service`]).
pub async fn run(cfg: Config, service: Option<WorkerService>) -> Result<(), ServeError> {
    for w in startup_warnings(&cfg) {
        tracing::warn!("{w}");
    }
    let (state, topics) = build_state(&cfg).await?;
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
    tracing::info!("shutdown: finishing in-flight requests");
    let deadline = tokio::time::Instant::now() + SHUTDOWN_BUDGET;
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
