//! The callback stage over the in-memory doubles, for every answer that posts nothing: a
//! message this worker did not seal, a host no longer allowed, a message that is not a
//! callback. Posting itself goes over the network (`Callbacks::post`, reqwest) and stays with
//! `tests/it/callbacks.rs`.

use crate::clients::pubsub::Topic;
use crate::contract::callback::Callback;
use crate::contract::push::PushMessage;
use crate::pipeline::Pipeline;
use crate::pipeline::callback_stage::CALLBACK_REJECTED;
use crate::pipeline::doubles::*;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const EVENT: &str = r#"{"request_id":"r-1","status":"succeeded"}"#;

/// The callback message for `url`, sealed by `p` (unsealed when `p` holds no secret).
fn callback(p: &Pipeline, url: &str) -> PushMessage {
    let cb = Callback {
        url: url.into(),
        webhook_id: "r-1:succeeded".into(),
        request_id: "r-1".into(),
    };
    let seal = p
        .callbacks
        .seal(&cb.url, &cb.request_id, &cb.webhook_id, EVENT.as_bytes());
    let out = cb.to_message(EVENT.as_bytes().to_vec(), seal, None);
    PushMessage {
        attributes: out.attributes,
        ..push("cb-1", EVENT, &[])
    }
}

#[tokio::test(start_paused = true)]
async fn a_callback_this_worker_did_not_seal_is_dead_lettered_not_posted() {
    let d = doubles();
    let p = d.pipeline_with(settings(), Some(SECRET));
    let mut msg = callback(&p, "https://hooks.example.com/done");
    msg.attributes.remove("callback_seal");
    let out = p.callback_stage(&msg).await;
    acked(&out);
    let dl = d.topics.only(Topic::DeadLetter);
    assert_eq!(dl.attributes["error_code"], CALLBACK_REJECTED);
    assert_eq!(dl.attributes["failed_stage"], "callback");
    assert_eq!(dl.attributes["request_id"], "r-1");
    assert!(dl.attributes["error_message"].contains("not sealed"));
    assert_eq!(dl.data, EVENT.as_bytes(), "the event as received");
    assert!(d.topics.confirmed(Topic::Completions).is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_seal_over_another_body_is_refused_too() {
    let d = doubles();
    let p = d.pipeline_with(settings(), Some(SECRET));
    let mut msg = callback(&p, "https://hooks.example.com/done");
    msg.data = br#"{"request_id":"r-1","status":"forged"}"#.to_vec();
    let out = p.callback_stage(&msg).await;
    acked(&out);
    let dl = d.topics.only(Topic::DeadLetter);
    assert_eq!(dl.attributes["error_code"], CALLBACK_REJECTED);
}

#[tokio::test(start_paused = true)]
async fn a_host_no_longer_allowed_refuses_the_callback_when_it_is_sent() {
    let d = doubles();
    let mut settings = settings();
    settings.defaults.callback_allowed_hosts = vec!["other.example.com".into()];
    let p = d.pipeline_with(settings, Some(SECRET));
    let out = p
        .callback_stage(&callback(&p, "https://hooks.example.com/done"))
        .await;
    acked(&out);
    let dl = d.topics.only(Topic::DeadLetter);
    assert_eq!(dl.attributes["error_code"], CALLBACK_REJECTED);
    assert!(
        dl.attributes["error_message"].starts_with("callback_url:"),
        "{}",
        dl.attributes["error_message"]
    );
}

#[tokio::test(start_paused = true)]
async fn a_message_that_is_not_a_callback_is_dead_lettered_without_a_request_id() {
    let d = doubles();
    let p = d.pipeline();
    let msg = push(
        "cb-2",
        EVENT,
        &[("callback_url", "https://hooks.example.com/x")],
    );
    let out = p.callback_stage(&msg).await;
    acked(&out);
    let dl = d.topics.only(Topic::DeadLetter);
    assert_eq!(dl.attributes["error_code"], CALLBACK_REJECTED);
    assert!(!dl.attributes.contains_key("request_id"));
    assert_eq!(
        dl.attributes["callback_url"], "https://hooks.example.com/x",
        "the caller's attributes are kept"
    );
    assert_eq!(dl.attributes["failed_stage"], "callback");
}

#[tokio::test(start_paused = true)]
async fn a_callback_dead_letter_pubsub_did_not_confirm_answers_retry() {
    let d = doubles();
    d.topics.on(Topic::DeadLetter, [Publish::UNAVAILABLE]);
    let p = d.pipeline_with(settings(), Some(SECRET));
    let mut msg = callback(&p, "https://hooks.example.com/done");
    msg.attributes.remove("callback_seal");
    let out = p.callback_stage(&msg).await;
    publish_retry(&out);
}
