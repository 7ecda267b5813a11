//! The upgrade route over the in-memory doubles: a watch message of the previous release
//! becomes the task that carries its copy on, and nothing is polled or started here.

use chrono::SubsecRound as _;
use google_cloud_gax::error::rpc::Code;

use crate::clients::pubsub::Topic;
use crate::clients::tasks::{Queue, poll_task_id, start_task_id};
use crate::contract::rfc3339;
use crate::pipeline::doubles::*;

#[tokio::test(start_paused = true)]
async fn a_watch_of_a_running_operation_becomes_its_first_poll_due_at_once() {
    let d = doubles();
    let p = d.pipeline();
    // The old release wrote whole seconds.
    let accepted = now_ms().trunc_subsecs(0) - chrono::Duration::seconds(90);
    let at = rfc3339(accepted);
    let msg = push(
        "w-1",
        &request(),
        &[("operation", OP), ("attempt", "2"), ("accepted_at", &at)],
    );
    let out = p.drain_stage(&msg).await;
    acked(&out);
    let t = d.queues.only(Queue::Polls);
    assert_eq!(t.id, poll_task_id(OP, 1));
    let poll = task_of(&t);
    assert_eq!((poll.attempt, poll.seq), (2, 1));
    assert_eq!(poll.accepted_at, accepted);
    assert!(
        poll.due_ms.unwrap() >= 90_000,
        "the copy is as old as it is"
    );
    assert!(d.vertex.calls().is_empty(), "nothing is polled here");
    assert!(d.topics.attempts().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_pending_watch_becomes_a_copy_start_named_from_its_message() {
    let d = doubles();
    let p = d.pipeline();
    let at = rfc3339(now_ms());
    let msg = push("w-2", &request(), &[("accepted_at", &at)]);
    let out = p.drain_stage(&msg).await;
    acked(&out);
    let t = d.queues.only(Queue::Starts);
    assert_eq!(t.id, start_task_id("w-2", "r-1", 1, 0));
    assert_eq!(t.schedule, None);
    assert!(d.vertex.calls().is_empty(), "nothing is started here");
}

#[tokio::test(start_paused = true)]
async fn a_watch_whose_task_is_not_taken_answers_retry_and_a_broken_one_is_rejected() {
    let d = doubles();
    d.queues.on_create([Create::Fails(Code::Unavailable)]);
    let p = d.pipeline();
    let at = rfc3339(now_ms());
    let out = p
        .drain_stage(&push("w-3", &request(), &[("accepted_at", &at)]))
        .await;
    assert_eq!(queue_failure(&out), Code::Unavailable);
    let d = doubles();
    let p = d.pipeline();
    let msg = push("w-4", &request(), &[("attempt", "0"), ("accepted_at", &at)]);
    acked(&p.drain_stage(&msg).await);
    let dl = d.topics.only(Topic::DeadLetter);
    assert_eq!(dl.attributes["failed_stage"], "operation");
    assert!(dl.attributes["error_message"].starts_with("attempt:"));
    assert!(d.queues.calls().is_empty());
}
