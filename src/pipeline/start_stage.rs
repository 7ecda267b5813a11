//! The start stage: one copy-start task of the copy-start queue (`COPY_START_QUEUE`), which
//! paces CopyModel for the whole deployment (docs/DESIGN.md §10, "Quotas").

use std::time::Duration;

use super::chain::StartPlace;
use super::start::Start;
use super::{Delivery, Job, Pipeline, StepOutcome};
use crate::contract::dead_letter::FailedStage;
use crate::contract::push::PushMessage;
use crate::contract::task::CopyTask;
use crate::domain::{CopyRequest, Defaults};

/// One dispatch of a task, as the route read it: its name (`X-CloudTasks-TaskName`) and its
/// body.
pub struct Dispatch<'a> {
    pub task_name: &'a str,
    pub body: &'a [u8],
}

/// A task dispatch, parsed: the task, the delivery the stages read, and the request.
pub(super) struct Parsed {
    pub task: CopyTask,
    pub msg: PushMessage,
    pub req: CopyRequest,
}

/// The defaults a request in a task is read with: the worker's, except that the host of its
/// `callback_url` counts as allowed. The request stage checked it when it accepted the request;
/// a host removed from `CALLBACK_ALLOWED_HOSTS` since then must not turn a running copy into
/// `rejected`: the event stands, and the callback stage, which checks the current list when it
/// sends, refuses only the callback (DESIGN.md §7).
fn accepted_defaults(defaults: &Defaults, request: &[u8]) -> Defaults {
    #[derive(serde::Deserialize)]
    struct Callback {
        callback_url: Option<String>,
    }
    let host = serde_json::from_slice::<Callback>(request)
        .ok()
        .and_then(|c| c.callback_url)
        .and_then(|u| url::Url::parse(&u).ok())
        .and_then(|u| u.host_str().map(str::to_ascii_lowercase));
    let mut d = defaults.clone();
    d.callback_allowed_hosts.extend(host);
    d
}

impl Pipeline {
    /// Handles one copy-start task (`POST /tasks/copy-starts`).
    ///
    /// 1. A body that is not a task, or an invalid request → `rejected` + dead letter, 2xx
    ///    (the queue never retries it).
    /// 2. Older than `COPY_MAX_DURATION` → `failed` DEADLINE_EXCEEDED + dead letter.
    /// 3. Otherwise the start (`start`): `parent_model` looks first; CopyModel; the first
    ///    poll task; ALREADY_EXISTS resolved by reading the destination.
    /// 4. RESOURCE_EXHAUSTED or a transient failure → a retry asked for: the queue
    ///    retries after its backoff. It answers within 45 s.
    pub async fn start_stage(&self, dispatch: Dispatch<'_>) -> StepOutcome {
        self.within_budget("start", self.start_step(dispatch)).await
    }

    async fn start_step(&self, dispatch: Dispatch<'_>) -> StepOutcome {
        let answer_by = tokio::time::Instant::now() + self.settings.request_budget;
        let p = match self.parse_task(&dispatch, FailedStage::Request).await {
            Ok(p) => p,
            Err(outcome) => return outcome,
        };
        let stage = match p.task.attempt {
            1 => FailedStage::Request,
            _ => FailedStage::Operation,
        };
        let d = Delivery { msg: &p.msg, stage };
        let job = Job { d: &d, req: &p.req };
        let model = p.req.destination.model_name();
        let too_old = self
            .settings
            .past_max_duration(p.task.accepted_at, &model, "not started");
        if let Some(f) = too_old {
            let mut end = super::announce::Ending::failed(&f, p.task.accepted_at);
            end.attempts = p.task.attempt;
            end.operation = p.task.previous_operation.clone();
            return self.announce(job, end).await;
        }
        let start = Start {
            place: StartPlace {
                accepted_at: p.task.accepted_at,
                attempt: p.task.attempt,
                origin: p.task.origin.clone(),
                seq: p.task.seq,
                previous_operation: p.task.previous_operation.clone(),
            },
            answer_by,
            key: None,
        };
        self.first_start(job, start).await
    }

    /// Reads a task's body and its request. A body that cannot be read is answered as a
    /// rejection (event and dead letter, then 2xx): the queue would otherwise retry it for
    /// ever.
    pub(super) async fn parse_task(
        &self,
        dispatch: &Dispatch<'_>,
        stage: FailedStage,
    ) -> Result<Parsed, StepOutcome> {
        let raw = PushMessage {
            message_id: dispatch.task_name.to_owned(),
            data: dispatch.body.to_vec(),
            attributes: Default::default(),
            publish_time: None,
            ordering_key: None,
            subscription: None,
            delivery_attempt: None,
        };
        let task = match CopyTask::parse(dispatch.body) {
            Ok(t) => t,
            Err(why) => return Err(self.reject(&Delivery { msg: &raw, stage }, why).await),
        };
        let msg = task.to_delivery(dispatch.task_name);
        match CopyRequest::parse(
            &msg.data,
            &accepted_defaults(&self.settings.defaults, &msg.data),
        ) {
            Ok(req) => {
                tracing::Span::current().record("request_id", req.request_id.as_str());
                Ok(Parsed { task, msg, req })
            }
            Err(why) => Err(self.reject(&Delivery { msg: &msg, stage }, why).await),
        }
    }

    /// A copy whose destination cannot be decided yet (ALREADY_EXISTS, and the destination
    /// not readable: the first copy probably still runs) asks again later through the
    /// copy-start queue: the next start task of its chain, held back `quota_backoff` (or the
    /// copy's poll interval, when longer).
    pub(super) async fn start_later(&self, job: Job<'_>, place: &StartPlace) -> StepOutcome {
        let age = (chrono::Utc::now() - place.accepted_at)
            .to_std()
            .unwrap_or_default();
        let after = self.next_poll_after(age).max(self.settings.quota_backoff);
        let next = StartPlace {
            seq: place.seq + 1,
            ..place.clone()
        };
        tracing::info!(
            after_s = after.as_secs_f64(),
            "destination not readable yet; asking again later"
        );
        self.queue_start(job, &next, after.max(Duration::from_millis(1)))
            .await
    }
}

#[cfg(test)]
mod options_tests;
#[cfg(test)]
mod tests;
