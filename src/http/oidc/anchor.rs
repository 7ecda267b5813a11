//! `PUSH_AUTH=cloud-run` holds its trust anchor to what the service says (DESIGN.md §11).
//!
//! A signature-removed token proves something only while Cloud Run's invoker check runs and
//! is not open to everyone. [`TrustAnchor`] keeps what the last reads of the worker's own
//! service found (`clients::run_admin`); [`Anchored`] refuses such tokens with 401, naming the
//! cause, until a read confirmed the check, and again once a read finds it off or public, or
//! when no read has confirmed it for [`CONFIRMATION_TTL`]. Tokens that keep their signature
//! are verified in full as before and do not depend on the anchor.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::SIGNATURE_REMOVED;
use crate::clients::Trust;
use crate::http::auth::{AuthDecision, PushAuth};

/// How long one confirmation stands when later reads fail (the Admin API unreachable, say):
/// three refresh intervals, so one failed read does not stop every push.
pub const CONFIRMATION_TTL: Duration = Duration::from_secs(15 * 60);

/// What the reads of the worker's service found.
pub struct TrustAnchor {
    service: String,
    state: Mutex<State>,
}

#[derive(Debug, Clone)]
enum State {
    /// No read has answered yet.
    Unread,
    /// The last read confirmed the check, at this time.
    Confirmed(Instant),
    /// The last answer, or the last failure to read since no confirmation stands, refuses.
    Refused(String),
}

impl TrustAnchor {
    /// An anchor for `service` that nothing has confirmed yet.
    pub fn new(service: &str) -> Self {
        Self {
            service: service.to_owned(),
            state: Mutex::new(State::Unread),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records a read; returns the reason signature-removed tokens are now refused, if they
    /// are (the caller logs it). A failed read keeps a confirmation younger than
    /// [`CONFIRMATION_TTL`].
    pub fn record(&self, read: Result<Trust, String>) -> Option<(&'static str, String)> {
        let mut st = self.state();
        match read {
            Ok(Trust::Confirmed) => {
                *st = State::Confirmed(Instant::now());
                None
            }
            Ok(t) => {
                let why = t.refusal(&self.service).unwrap_or_default();
                *st = State::Refused(why.clone());
                Some((t.reason(), why))
            }
            Err(e) => match &*st {
                State::Confirmed(at) if at.elapsed() < CONFIRMATION_TTL => None,
                _ => {
                    *st = State::Refused(e.clone());
                    Some(("unreadable", e))
                }
            },
        }
    }

    /// Why signature-removed tokens are refused now; `None` while the check is confirmed.
    pub fn refusal(&self) -> Option<String> {
        match &*self.state() {
            State::Confirmed(at) if at.elapsed() < CONFIRMATION_TTL => None,
            State::Confirmed(_) => Some(format!(
                "no read of {} has confirmed its invoker check for {} minutes",
                self.service,
                CONFIRMATION_TTL.as_secs() / 60
            )),
            State::Unread => Some(format!(
                "the invoker check of {} is not confirmed yet",
                self.service
            )),
            State::Refused(why) => Some(why.clone()),
        }
    }
}

/// A [`PushAuth`] that refuses signature-removed tokens while `anchor` is not confirmed, and
/// hands everything else to `inner`.
pub struct Anchored {
    pub inner: Arc<dyn PushAuth>,
    pub anchor: Arc<TrustAnchor>,
}

#[async_trait::async_trait]
impl PushAuth for Anchored {
    async fn check(&self, authorization: Option<&str>) -> AuthDecision {
        let stripped = authorization
            .and_then(|h| h.trim_end().rsplit('.').next())
            .is_some_and(|sig| sig == SIGNATURE_REMOVED);
        if stripped && let Some(why) = self.anchor.refusal() {
            return AuthDecision::Unauthenticated(format!(
                "a signature-removed token is trusted only behind Cloud Run's invoker check: {why}"
            ));
        }
        self.inner.check(authorization).await
    }

    fn verifies(&self) -> bool {
        self.inner.verifies()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SVC: &str = "projects/p/locations/us-central1/services/copy-worker";

    #[test]
    fn only_a_confirmed_read_opens_the_anchor_and_a_refusing_one_closes_it() {
        let a = TrustAnchor::new(SVC);
        assert!(a.refusal().unwrap().contains("not confirmed yet"));
        assert_eq!(a.record(Ok(Trust::Confirmed)), None);
        assert_eq!(a.refusal(), None);
        // One failed read keeps a fresh confirmation.
        assert_eq!(a.record(Err("admin API down".into())), None);
        assert_eq!(a.refusal(), None);
        let (reason, why) = a.record(Ok(Trust::InvokerCheckOff)).unwrap();
        assert_eq!(reason, "invoker_check_off");
        assert!(why.contains("invokerIamDisabled"), "{why}");
        assert_eq!(a.refusal(), Some(why));
        let public = Trust::Public {
            role: "roles/run.invoker".into(),
            member: "allUsers".into(),
        };
        let (reason, why) = a.record(Ok(public)).unwrap();
        assert_eq!(reason, "public_invoker");
        assert!(why.contains("allUsers"), "{why}");
        // A failed read after a refusal stays refused, with the read's error.
        let (reason, why) = a.record(Err("cannot read".into())).unwrap();
        assert_eq!((reason, why.as_str()), ("unreadable", "cannot read"));
        assert_eq!(a.refusal().as_deref(), Some("cannot read"));
    }

    #[test]
    fn an_unread_anchor_refuses_an_unreadable_service() {
        let a = TrustAnchor::new(SVC);
        assert!(a.record(Err("PERMISSION_DENIED".into())).is_some());
        assert_eq!(a.refusal().as_deref(), Some("PERMISSION_DENIED"));
    }
}
