//! The start stage: a copy start that the copy-start queue (`COPY_START_QUEUE`) paced for the
//! whole deployment (docs/DESIGN.md §10, "Quotas").
//!
//! With a queue configured, the request stage (and a watch that restarts a failed copy) does
//! not call CopyModel itself: it queues a copy-start task, whose message is the one a pending
//! watch would carry, and acks. Cloud Tasks posts the task back at the queue's rate, and this
//! stage starts the copy exactly as the request stage would, with two differences: no
//! budget slot is asked for (the queue's rate is the deployment's), and a quota refusal is
//! answered non-2xx so that the queue tries again later, still within its rate.

use super::decide::{self, Admission, AfterQueue, StartSite};
use super::request_stage::Start;
use super::{Delivery, Job, Pipeline, RetryReason, StepOutcome};
use crate::clients::tasks::task_id;
use crate::contract::dead_letter::FailedStage;
use crate::contract::push::PushMessage;
use crate::contract::watch::Watch;
use crate::domain::CopyRequest;
use crate::retry::retry_transient;

impl Pipeline {
    /// Hands a copy start to the queue: the task carries `data` and `watch` (no operation)
    /// with the caller's attributes, named after the delivery so that a redelivery queues
    /// nothing new. Acks once the queue has it; a failure to queue is a 503 (redelivered).
    pub(super) async fn queue_start(
        &self,
        job: Job<'_>,
        data: Vec<u8>,
        watch: Watch,
    ) -> StepOutcome {
        let Job { d, req } = job;
        let Some(queue) = &self.queue else {
            unreachable!("queue_start is called only with a copy-start queue");
        };
        let (message, _dropped) =
            watch.to_message(data, &d.msg.attributes, req.request_id.as_str());
        let id = task_id(&d.msg.message_id, watch.attempt);
        let queued = retry_transient("create_task", || {
            queue.enqueue(&id, &d.msg.message_id, &message)
        })
        .await;
        match decide::after_queue(queued) {
            AfterQueue::Queued => {
                tracing::info!(task = id, attempt = watch.attempt, "copy start queued");
                StepOutcome::Acked
            }
            AfterQueue::Fail(f) => {
                tracing::error!(error.message = %f, "the copy-start queue refused the start");
                let mut end = super::announce::Ending::failed(&f, watch.accepted_at);
                end.attempts = watch.attempt;
                self.announce(job, end).await
            }
            AfterQueue::Retry(f) => StepOutcome::Retry(f.into()),
        }
    }

    /// Handles one copy-start task (`POST /tasks/copy-starts`).
    ///
    /// 1. Bad message → `rejected` + dead letter, ack (the queue never retries it).
    /// 2. Older than `COPY_MAX_DURATION` → `failed` DEADLINE_EXCEEDED + dead letter.
    /// 3. Otherwise the request stage's start: `parent_model` looks first; CopyModel; the
    ///    watch message; ALREADY_EXISTS resolved by reading the destination.
    /// 4. RESOURCE_EXHAUSTED or a transient failure → 503: the queue retries after its
    ///    backoff. Like the request stage, it answers within 45 s.
    pub async fn start_stage(&self, msg: &PushMessage) -> StepOutcome {
        let budget = self.settings.request_budget;
        match tokio::time::timeout(budget, self.start_step(msg)).await {
            Ok(outcome) => outcome,
            Err(_elapsed) => StepOutcome::Retry(RetryReason::OutOfTime {
                stage: "start",
                budget,
            }),
        }
    }

    async fn start_step(&self, msg: &PushMessage) -> StepOutcome {
        let answer_by = tokio::time::Instant::now() + self.settings.request_budget;
        let watch = Watch::parse(&msg.attributes, msg.publish_time.as_deref());
        let stage = match &watch {
            Ok(w) if w.attempt > 1 => FailedStage::Operation,
            _ => FailedStage::Request,
        };
        let d = Delivery { msg, stage };
        let parsed = watch.and_then(|w| {
            let req = CopyRequest::parse(&msg.data, &self.settings.defaults)?;
            Ok((w, req))
        });
        let (watch, req) = match parsed {
            Ok(p) => p,
            Err(why) => return self.reject(&d, why).await,
        };
        tracing::Span::current().record("request_id", req.request_id.as_str());
        let job = Job { d: &d, req: &req };
        let model = req.destination.model_name();
        let too_old = self
            .settings
            .past_max_duration(watch.accepted_at, &model, "not started");
        if let Some(f) = too_old {
            let mut end = super::announce::Ending::failed(&f, watch.accepted_at);
            end.attempts = watch.attempt;
            return self.announce(job, end).await;
        }
        let start = Start {
            accepted_at: watch.accepted_at,
            attempt: watch.attempt,
            site: StartSite::Request(Admission::Queue),
            answer_by,
        };
        self.first_start(job, start).await
    }
}
