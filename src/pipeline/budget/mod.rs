//! The Vertex AI request budget of one instance (DESIGN.md §10, "Quotas").
//!
//! Vertex AI's quotas are per project and region, and shared with everything else the project
//! runs: 60 long-running-operation submissions a minute (CopyModel) and 600 resource-management
//! requests a minute (GetOperation, GetModel, ListModelVersions). The deployment keeps inside
//! `VERTEX_COPY_RATE` and `VERTEX_READ_RATE` (default half of those) for the whole deployment,
//! with no shared state: each instance takes `rate / WORKER_INSTANCES`, which Terraform passes
//! as the service's maximum instance count.
//!
//! One pacer per (kind, project, region) per instance, as Vertex AI counts its quotas (the
//! project spelled as its number once known, so that names with the id and with the number
//! share one pacer), in the manner of GCRA: each call reserves the
//! next free slot, slots are `1 / rate` apart, and a burst of up to ten seconds' worth may go
//! at once. Reads wait for their slot, so however many watches poll, the instance's reads per
//! minute stay inside its share and every poll interval stretches to fit. A copy never waits
//! long inside a push: when no slot is free soon enough it is handed on as a pending watch
//! (`copy-operations` has no dead-letter policy). A 429 from Vertex AI pushes the region's
//! next slot back, so the instance slows down instead of retrying into the quota.

mod paced;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use std::sync::Arc;

use super::existing::ProjectNumbers;

pub use paced::Paced;

/// How long a 429 on CopyModel holds back the next copy in that region.
pub const COPY_BACKOFF: Duration = Duration::from_secs(30);
/// How long a 429 on a read holds back the next read in that region.
pub const READ_BACKOFF: Duration = Duration::from_secs(10);
/// The longest a read waits for its slot. Beyond it the read is refused with a local
/// RESOURCE_EXHAUSTED: a held watch polls again later, and the request stage hands the copy
/// on as a pending watch instead of running out of its 45 s budget (a 503 would spend the
/// request subscription's delivery attempts).
pub const READ_WAIT_MAX: Duration = Duration::from_secs(20);
/// The burst a pacer allows: this long's worth of its rate (at least one call).
const BURST_WINDOW: Duration = Duration::from_secs(10);

/// What a call spends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// CopyModel: a long-running-operation submission.
    Copy,
    /// GetOperation, GetModel, ListModelVersions: resource management.
    Read,
}

/// Vertex AI's default quotas per project and region, a minute
/// (<https://cloud.google.com/vertex-ai/docs/quotas>, "Request quotas"): "Job or long-running
/// operation (LRO) submission requests" (CopyModel counts here) and "Resource management
/// (CRUD) requests" (GetOperation, GetModel). testkit's Vertex fake enforces the same.
pub const VERTEX_DEFAULT_COPY_QUOTA: f64 = 60.0;
/// See [`VERTEX_DEFAULT_COPY_QUOTA`].
pub const VERTEX_DEFAULT_READ_QUOTA: f64 = 600.0;

/// Per-minute rates for the whole deployment, and how many instances share them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rates {
    /// `VERTEX_COPY_RATE`: CopyModel calls a minute per region.
    pub copies_per_minute: f64,
    /// `VERTEX_READ_RATE`: reads a minute per region.
    pub reads_per_minute: f64,
    /// `WORKER_INSTANCES`: the most instances that run at once.
    pub instances: u32,
    /// Benchmarks only (`COPY_WORKER_TIME_SCALE`): every duration of the budget is divided
    /// by this, a "minute" included, so a time-compressed run keeps the same proportions.
    pub time_scale: f64,
}

impl Default for Rates {
    /// Half of Vertex AI's default quotas, for one instance.
    fn default() -> Self {
        Self {
            copies_per_minute: 30.0,
            reads_per_minute: 300.0,
            instances: 1,
            time_scale: 1.0,
        }
    }
}

#[derive(Debug)]
struct Pacer {
    /// Time between two calls.
    interval: Duration,
    /// How far ahead of now the next slot may be and still be taken at once.
    tolerance: Duration,
    /// The theoretical time of the next call.
    next: Instant,
}

impl Pacer {
    fn new(per_minute: f64, scale: f64, now: Instant) -> Self {
        let interval = Duration::from_secs_f64(60.0 / scale / per_minute.max(f64::MIN_POSITIVE));
        let window = BURST_WINDOW.as_secs_f64() / scale;
        let burst = (window / interval.as_secs_f64()).floor().max(1.0);
        Self {
            interval,
            tolerance: interval.mul_f64(burst - 1.0),
            next: now,
        }
    }

    /// The time the caller may call at: now, or the first free slot.
    fn slot(&self, now: Instant) -> Instant {
        let earliest = self.next.checked_sub(self.tolerance).unwrap_or(now);
        earliest.max(now)
    }

    fn take(&mut self, now: Instant) -> Instant {
        let at = self.slot(now);
        self.next = self.next.max(now) + self.interval;
        at
    }
}

/// The instance's share of the deployment's Vertex AI budget.
#[derive(Debug)]
pub struct Budget {
    rates: Rates,
    pacers: Mutex<HashMap<(Kind, String, String), Pacer>>,
    /// Project numbers learned from Vertex AI's answers: a project's pacers are keyed by its
    /// number once known, so names spelled with the id and with the number share them.
    numbers: Arc<ProjectNumbers>,
}

impl Budget {
    pub fn new(rates: Rates) -> Self {
        Self::with_numbers(rates, Arc::default())
    }

    /// A budget that keys projects by the numbers `numbers` learns.
    pub fn with_numbers(rates: Rates, numbers: Arc<ProjectNumbers>) -> Self {
        Self {
            rates,
            pacers: Mutex::new(HashMap::new()),
            numbers,
        }
    }

    fn scale(&self) -> f64 {
        self.rates.time_scale.max(1.0)
    }

    /// `d` in the budget's time (divided by the time scale of a benchmark).
    pub fn scaled(&self, d: Duration) -> Duration {
        d.div_f64(self.scale())
    }

    /// This instance's rate for `kind`, per minute.
    pub fn share(&self, kind: Kind) -> f64 {
        let r = match kind {
            Kind::Copy => self.rates.copies_per_minute,
            Kind::Read => self.rates.reads_per_minute,
        };
        r / f64::from(self.rates.instances.max(1))
    }

    fn with<T>(
        &self,
        kind: Kind,
        (project, region): (&str, &str),
        f: impl FnOnce(&mut Pacer, Instant) -> T,
    ) -> T {
        let now = Instant::now();
        let key = self.numbers.key(project);
        let mut pacers = self.pacers.lock().unwrap_or_else(|e| e.into_inner());
        if key != project {
            // The number was learned after this pacer was made under the id: move it, so
            // that the project keeps one pacer (a new one would allow a second burst).
            let by_id = (kind, project.to_owned(), region.to_owned());
            if let Some(p) = pacers.remove(&by_id) {
                // Both may exist (reads of operation names are keyed by the number from the
                // start): keep the later next slot of the two, so a back-off is not lost.
                let next = p.next;
                let kept = pacers
                    .entry((kind, key.clone(), region.to_owned()))
                    .or_insert(p);
                kept.next = kept.next.max(next);
            }
        }
        let pacer = pacers
            .entry((kind, key, region.to_owned()))
            .or_insert_with(|| Pacer::new(self.share(kind), self.scale(), now));
        f(pacer, now)
    }

    /// Waits for a read slot in `project` and `region`, if one is free within
    /// [`READ_WAIT_MAX`]; `false` (nothing reserved) otherwise.
    pub async fn read(&self, project: &str, region: &str) -> bool {
        let wait = self.scaled(READ_WAIT_MAX);
        self.within(Kind::Read, (project, region), wait).await
    }

    /// Reserves a copy slot in `project` and `region` if one is free within `within`, and
    /// waits for it; `false` (nothing reserved) when the budget has none that soon.
    pub async fn copy_within(&self, project: &str, region: &str, within: Duration) -> bool {
        self.within(Kind::Copy, (project, region), within).await
    }

    async fn within(&self, kind: Kind, place: (&str, &str), within: Duration) -> bool {
        let at = self.with(kind, place, |p, now| {
            (p.slot(now) <= now + within).then(|| p.take(now))
        });
        match at {
            Some(at) => {
                tokio::time::sleep_until(at).await;
                true
            }
            None => false,
        }
    }

    /// Vertex AI answered 429 (RESOURCE_EXHAUSTED): nothing of `kind` in `project` and
    /// `region` for `for_`.
    pub fn back_off(&self, kind: Kind, (project, region): (&str, &str), for_: Duration) {
        let for_ = self.scaled(for_);
        self.with(kind, (project, region), |p, now| {
            p.next = p.next.max(now + for_ + p.tolerance);
        });
    }
}
