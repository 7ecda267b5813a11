//! A publish Pub/Sub refuses for good is told apart from one that may pass later (issue 28,
//! item 2). The probe: a `callback_url` over 1,024 bytes went into an attribute of the callback
//! message, Pub/Sub refused that publish on every try, and the delivery asked for a retry for up
//! to 7 days. The stage can only dead-letter instead if the refusal says it is final.
//!
//! The emulator does not enforce the attribute limits (DESIGN.md §9: it takes a 1,025-byte
//! value), so the over-limit refusal is a unit test (`clients::pubsub::tests`). Here the
//! emulator's own INVALID_ARGUMENT stands in for it: a message with neither data nor
//! attributes, which Pub/Sub refuses as INVALID_ARGUMENT too
//! (cloud.google.com/pubsub/docs/reference/rest/v1/projects.topics/publish: "The message must
//! contain either a non-empty data field or at least one attribute").

use std::collections::BTreeMap;

use copy_worker::clients::{Connection, OutMessage, PubSubTopics, Topic, TopicNames, Topics};

use crate::helpers::{Knobs, emulator, spawn_app};

fn names(project: &str) -> TopicNames {
    let t = |n: &str| format!("projects/{project}/topics/{n}");
    TopicNames {
        completions: t("copy-completions"),
        dead_letter: t("copy-dead-letter"),
        requests: t("copy-requests"),
        callbacks: t("missing-topic"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_argument_refusal_is_permanent_and_a_missing_topic_is_not() {
    let app = spawn_app("hostile-publish", Knobs::default()).await;
    let conn = Connection {
        emulator_host: Some(emulator().host()),
        credentials: None,
    };
    let topics = PubSubTopics::new(&conn, names(&app.project)).await.unwrap();
    let e = topics
        .publish(Topic::Completions, OutMessage::default())
        .await
        .unwrap_err();
    assert!(e.is_permanent(), "{e:?}");

    let fits = OutMessage {
        data: b"{}".to_vec(),
        attributes: BTreeMap::from([("callback_url".to_owned(), "a".repeat(1024))]),
    };
    topics
        .publish(Topic::Completions, fits.clone())
        .await
        .unwrap();
    let e = topics.publish(Topic::Callbacks, fits).await.unwrap_err();
    assert!(!e.is_permanent(), "a topic may be created later: {e:?}");
}

/// Pub/Sub refusing the event for good (INVALID_ARGUMENT; here the emulator's answer to an
/// empty message) ends the delivery in a dead letter that names the reason, answered 2xx:
/// never a retry asked for again and again until the message's retention runs out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_pubsub_refuses_for_good_ends_in_a_dead_letter_not_a_503_loop() {
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt as _;

    /// The real publishers, except that every completion event goes out empty, which
    /// Pub/Sub refuses with INVALID_ARGUMENT on every try.
    struct EmptyEvents(std::sync::Arc<dyn Topics>);
    #[async_trait::async_trait]
    impl Topics for EmptyEvents {
        async fn publish(
            &self,
            topic: Topic,
            msg: OutMessage,
        ) -> Result<String, copy_worker::clients::PublishError> {
            let msg = if topic == Topic::Completions {
                OutMessage::default()
            } else {
                msg
            };
            self.0.publish(topic, msg).await
        }
        async fn flush(&self) {
            self.0.flush().await
        }
    }

    let app = spawn_app("hostile-refused", Knobs::default()).await;
    let mut state = app.second_instance().await;
    state.pipeline.topics = std::sync::Arc::new(EmptyEvents(state.pipeline.topics.clone()));
    let data = br#"{"request_id":"refused-1","source_model":""}"#;
    let body = crate::child::envelope("9", data, &[("request_id", "refused-1")]);
    let response = copy_worker::http::app(state)
        .oneshot(
            Request::post("/pubsub/copy-requests")
                .body(Body::from(body))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 204, "not a 503 that repeats");
    let dl = app.dead_letter_of("refused-1", 30).await;
    assert_eq!(dl.attribute("error_code"), Some("INVALID_ARGUMENT"));
    assert!(
        dl.attribute("error_message")
            .unwrap_or_default()
            .contains("refused the completion event for good"),
        "{:?}",
        dl.attributes
    );
    assert_eq!(dl.data, data.to_vec(), "the bytes as received");
}
