//! `PUSH_AUTH=cloud-run` checks the setting it trusts (DESIGN.md §11): the worker reads its own
//! Cloud Run service at start and every [`REFRESH`], and its verifiers refuse
//! signature-removed tokens while the invoker check is not confirmed on
//! (`http::oidc::anchor`).
//!
//! The refresh loop is owned by [`super::run`], beside the server, and stops with it: it is no
//! delivery's work, so the rule that nothing outlives a delivery (DESIGN.md §10) is kept.

use std::sync::Arc;
use std::time::Duration;

use crate::clients::CloudRunAdmin;
use crate::config::auth::WorkerService;
use crate::http::AppState;
use crate::http::oidc::anchor::{Anchored, TrustAnchor};
use crate::telemetry::events::{CloudRunTrustRefused, CountedEvent};

/// How often the service is read again.
pub const REFRESH: Duration = Duration::from_secs(5 * 60);
/// How soon a read that failed is tried again.
pub const RETRY: Duration = Duration::from_secs(30);

/// Holds every verifier of `state` (push, tasks, direct callers) to `service`'s invoker check: reads the service once (so
/// the first push meets a decided anchor), and returns the state with anchored verifiers and
/// the refresh loop, which the caller runs for as long as it serves.
pub async fn anchor_to_service(
    mut state: AppState,
    service: &WorkerService,
) -> Result<(AppState, impl Future<Output = ()> + Send + 'static), crate::app::ServeError> {
    let admin = CloudRunAdmin::new(&service.name, service.endpoint.as_deref())
        .await
        .map_err(crate::app::ServeError::CloudRunAdmin)?;
    let anchor = Arc::new(TrustAnchor::new(&service.name));
    read(&admin, &anchor).await;
    state.push_auth = Arc::new(Anchored {
        inner: state.push_auth,
        anchor: anchor.clone(),
    });
    state.invoker_auth = Arc::new(Anchored {
        inner: state.invoker_auth,
        anchor: anchor.clone(),
    });
    // The queues' tokens reach the worker through the same invoker check.
    state.tasks_auth = Arc::new(Anchored {
        inner: state.tasks_auth,
        anchor: anchor.clone(),
    });
    let refresh = async move {
        loop {
            let next = if anchor.refusal().is_none() {
                REFRESH
            } else {
                RETRY
            };
            tokio::time::sleep(next).await;
            read(&admin, &anchor).await;
        }
    };
    Ok((state, refresh))
}

/// One read of the service, recorded in the anchor; a refusal is logged as the event an
/// alert watches.
async fn read(admin: &CloudRunAdmin, anchor: &TrustAnchor) {
    if let Some((reason, cause)) = anchor.record(admin.check().await) {
        CloudRunTrustRefused {
            service: admin.service(),
            reason,
            cause: &cause,
        }
        .emit();
    } else {
        tracing::debug!(
            service = admin.service(),
            "Cloud Run invoker check confirmed"
        );
    }
}
