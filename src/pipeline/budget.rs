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

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use google_cloud_gax::error::rpc::Code;
use tokio::time::Instant;

use std::future::Future;
use std::sync::Arc;

use super::existing::ProjectNumbers;
use crate::clients::vertex::{OperationState, Vertex};
use crate::domain::{CopyRequest, ModelInfo, OperationName};
use crate::retry::Failure;
use crate::telemetry::events::{CountedEvent as _, VertexQuotaExhausted};

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

/// [`Vertex`] with the instance's budget applied: reads wait for their slot, and a 429 from
/// Vertex AI holds the project's region back. CopyModel is admitted by the stages (they
/// decide what to do when no slot is free: hand the copy on as a pending watch).
pub struct Paced {
    inner: Arc<dyn Vertex>,
    budget: Arc<Budget>,
}

/// The project segment of a resource name (`projects/{p}/…`).
fn project_of(name: &str) -> &str {
    name.strip_prefix("projects/")
        .and_then(|rest| rest.split('/').next())
        .unwrap_or_default()
}

impl Paced {
    pub fn new(inner: Arc<dyn Vertex>, budget: Arc<Budget>) -> Self {
        Self { inner, budget }
    }

    /// A read slot, or this instance's own RESOURCE_EXHAUSTED when none is near.
    async fn read_slot(&self, project: &str, region: &str) -> Result<(), Failure> {
        if self.budget.read(project, region).await {
            return Ok(());
        }
        Err(Failure::new(
            Code::ResourceExhausted,
            format!(
                "no Vertex AI read slot for {project} in {region} within {} s (VERTEX_READ_RATE); this instance's budget, not Vertex AI's quota",
                READ_WAIT_MAX.as_secs()
            ),
        ))
    }

    /// A read of `name` in `region`, inside the budget.
    async fn read<T>(
        &self,
        name: &str,
        region: &str,
        call: impl Future<Output = Result<T, Failure>>,
    ) -> Result<T, Failure> {
        let project = project_of(name);
        self.read_slot(project, region).await?;
        let r = call.await;
        self.after(Kind::Read, (project, region), r)
    }

    fn after<T>(&self, kind: Kind, at: (&str, &str), r: Result<T, Failure>) -> Result<T, Failure> {
        if let Err(f) = &r
            && f.code == Code::ResourceExhausted
        {
            let hold = match kind {
                Kind::Copy => COPY_BACKOFF,
                Kind::Read => READ_BACKOFF,
            };
            let (project, region) = at;
            VertexQuotaExhausted {
                project,
                region,
                kind: &kind,
                hold,
                error: f,
            }
            .emit();
            self.budget.back_off(kind, at, hold);
        }
        r
    }
}

#[async_trait::async_trait]
impl Vertex for Paced {
    async fn start_copy(&self, req: &CopyRequest) -> Result<OperationName, Failure> {
        let r = self.inner.start_copy(req).await;
        let at = (
            req.destination.project.as_str(),
            req.destination.location.as_str(),
        );
        self.after(Kind::Copy, at, r)
    }

    async fn get_operation(&self, op: &OperationName) -> Result<OperationState, Failure> {
        let call = self.inner.get_operation(op);
        self.read(op.as_str(), op.location(), call).await
    }

    async fn get_model(&self, name: &str, location: &str) -> Result<Option<ModelInfo>, Failure> {
        let call = self.inner.get_model(name, location);
        self.read(name, location, call).await
    }

    async fn list_versions(&self, name: &str, location: &str) -> Result<Vec<ModelInfo>, Failure> {
        let call = self.inner.list_versions(name, location);
        self.read(name, location, call).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(copies: f64, reads: f64, instances: u32) -> Budget {
        Budget::new(Rates {
            copies_per_minute: copies,
            reads_per_minute: reads,
            instances,
            time_scale: 1.0,
        })
    }

    #[tokio::test(start_paused = true)]
    async fn reads_are_paced_to_the_instance_share_after_a_ten_second_burst() {
        // 120 reads a minute over 2 instances: 1 a second each, bursts of 10.
        let b = budget(30.0, 120.0, 2);
        assert_eq!(b.share(Kind::Read), 60.0);
        let t0 = Instant::now();
        for _ in 0..10 {
            assert!(b.read("p", "eu").await);
        }
        assert_eq!(t0.elapsed(), Duration::ZERO, "the burst goes at once");
        for _ in 0..20 {
            assert!(b.read("p", "eu").await);
        }
        let paced = t0.elapsed();
        assert!(
            paced >= Duration::from_secs(19) && paced <= Duration::from_secs(21),
            "{paced:?}"
        );
        // Another region, and another project in the same region, have their own pacers.
        let t1 = Instant::now();
        assert!(b.read("p", "us").await);
        assert!(b.read("other-project", "eu").await);
        assert_eq!(t1.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn a_read_further_than_twenty_seconds_away_is_refused_without_reserving() {
        // 6 reads a minute: one every 10 s, burst 1.
        let b = budget(30.0, 6.0, 1);
        // Four reads at the same moment: slots at 0, 10 and 20 s are taken; the fourth
        // would be 30 s away and is refused at once.
        let t0 = Instant::now();
        let (a, b1, c, d) = tokio::join!(
            b.read("p", "eu"),
            b.read("p", "eu"),
            b.read("p", "eu"),
            async {
                let refused = !b.read("p", "eu").await;
                (refused, t0.elapsed())
            }
        );
        assert!(a && b1 && c, "the first three wait for their slots");
        assert_eq!(d, (true, Duration::ZERO), "the fourth is refused at once");
        assert_eq!(t0.elapsed(), Duration::from_secs(20));
        // The refusal reserved nothing: the next slot is 10 s after the last one taken.
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert!(
            b.read("p", "eu").await,
            "nothing was reserved by the refusal"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_copy_slot_is_taken_only_when_one_is_free_soon_enough() {
        // 6 copies a minute: one every 10 s, burst 1.
        let b = budget(6.0, 300.0, 1);
        assert!(b.copy_within("p", "eu", Duration::ZERO).await);
        assert!(
            !b.copy_within("p", "eu", Duration::from_secs(5)).await,
            "next is 10 s away"
        );
        let t0 = Instant::now();
        assert!(b.copy_within("p", "eu", Duration::from_secs(11)).await);
        assert_eq!(t0.elapsed(), Duration::from_secs(10), "waited for its slot");
    }

    #[test]
    fn a_project_is_one_budget_key_whether_spelled_by_id_or_by_number() {
        let numbers = ProjectNumbers::default();
        assert_eq!(numbers.key("dst-proj"), "dst-proj", "not learned yet");
        let project = crate::domain::names::Project::parse("p", "dst-proj").unwrap();
        numbers.learn(&project, "projects/123456/locations/eu/operations/9");
        assert_eq!(numbers.key("dst-proj"), "123456");
        assert_eq!(numbers.key("123456"), "123456");
        assert_eq!(
            project_of("projects/123456/locations/eu/models/7"),
            "123456"
        );
        assert_eq!(project_of("not-a-name"), "");
    }

    #[tokio::test(start_paused = true)]
    async fn a_project_keeps_one_pacer_when_its_number_is_learned() {
        // 6 copies a minute: one every 10 s, burst 1.
        let numbers = Arc::<ProjectNumbers>::default();
        let b = Budget::with_numbers(
            Rates {
                copies_per_minute: 6.0,
                ..Rates::default()
            },
            numbers.clone(),
        );
        assert!(b.copy_within("dst-proj", "eu", Duration::ZERO).await);
        let project = crate::domain::names::Project::parse("p", "dst-proj").unwrap();
        numbers.learn(&project, "projects/123456/locations/eu/operations/9");
        assert!(
            !b.copy_within("dst-proj", "eu", Duration::from_secs(5))
                .await,
            "no second burst under the number"
        );
        assert!(!b.copy_within("123456", "eu", Duration::from_secs(5)).await);
    }

    #[tokio::test(start_paused = true)]
    async fn a_429_holds_the_region_back() {
        let b = budget(600.0, 600.0, 1);
        b.back_off(Kind::Copy, ("p", "eu"), COPY_BACKOFF);
        assert!(!b.copy_within("p", "eu", Duration::from_secs(29)).await);
        assert!(b.copy_within("p", "us", Duration::ZERO).await);
        let t0 = Instant::now();
        b.back_off(Kind::Read, ("p", "eu"), READ_BACKOFF);
        assert!(b.read("p", "eu").await);
        assert!(t0.elapsed() >= READ_BACKOFF, "{:?}", t0.elapsed());
    }
}
