//! Copies into a parent model that this process started and that may still be running.
//!
//! CopyModel has no idempotency key, and a `parent_model` copy only shows up in
//! ListModelVersions once its operation ends (there is no marker on a running copy, and
//! `CopyModelOperationMetadata` names no source). So while a copy runs, only the process that
//! started it knows about it. Deliveries of the same request that reach this process while the
//! copy runs watch its operation instead of starting another copy; deliveries that reach
//! another instance in that window cannot tell (DESIGN.md §1, one copy per request).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::domain::OperationName;
use crate::domain::names::ModelIdentity;

/// One slot per (source, destination parent): the operation of the copy this process
/// started, if any. Held (async) while a delivery decides and starts, so concurrent
/// deliveries of the same copy queue behind each other instead of racing.
pub type Slot = Arc<tokio::sync::Mutex<Option<OperationName>>>;

#[derive(Debug, Default)]
pub struct InFlight(Mutex<HashMap<String, Slot>>);

impl InFlight {
    /// The slot of copies of `source` into `parent` (the destination model, canonical name).
    pub fn slot(&self, source: &ModelIdentity, parent: &str) -> Slot {
        let key = format!(
            "projects/{}/locations/{}/models/{}@{} -> {parent}",
            source.project_number,
            source.location,
            source.model_id,
            source.version_id.as_deref().unwrap_or("*"),
        );
        let mut map = self.0.lock().expect("lock");
        // Slots nobody holds and that name no operation are dead weight; drop them so the
        // map stays as small as the set of copies in flight.
        map.retain(|_, s| Arc::strong_count(s) > 1 || s.try_lock().is_ok_and(|g| g.is_some()));
        map.entry(key).or_default().clone()
    }

    /// Forgets `op` once it has ended, wherever it is recorded.
    pub fn forget(&self, op: &OperationName) {
        let mut map = self.0.lock().expect("lock");
        map.retain(|_, s| match s.try_lock() {
            Ok(g) => g.as_ref() != Some(op),
            Err(_) => true,
        });
    }

    /// How many copies are recorded.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.0.lock().expect("lock").len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(version: Option<&str>) -> ModelIdentity {
        ModelIdentity {
            project_number: "123".into(),
            location: "us-central1".into(),
            model_id: "77".into(),
            version_id: version.map(str::to_owned),
        }
    }

    #[tokio::test]
    async fn the_same_copy_shares_a_slot_and_other_copies_do_not() {
        let f = InFlight::default();
        let parent = "projects/456/locations/europe-west4/models/55";
        let a = f.slot(&source(None), parent);
        let op = OperationName::parse("projects/456/locations/europe-west4/operations/9").unwrap();
        *a.lock().await = Some(op.clone());
        let again = f.slot(&source(None), parent);
        assert_eq!(again.lock().await.as_ref(), Some(&op));
        let pinned = f.slot(&source(Some("3")), parent);
        assert!(pinned.lock().await.is_none());
        let elsewhere = f.slot(
            &source(None),
            "projects/456/locations/europe-west4/models/56",
        );
        assert!(elsewhere.lock().await.is_none());
        drop((a, again, pinned, elsewhere));

        // Empty slots are dropped on the next lookup; a recorded operation stays until forgotten.
        let _ = f.slot(&source(None), parent);
        assert_eq!(f.len(), 1);
        f.forget(&op);
        assert_eq!(f.len(), 0);
    }
}
