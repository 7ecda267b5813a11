//! Names, and which publish refusals are permanent.

use super::{PublishError, full_subscription, full_topic};
use google_cloud_gax::error::rpc::{Code, Status};

fn refused(code: Code) -> PublishError {
    let e = google_cloud_pubsub::Error::service(Status::default().set_code(code));
    PublishError {
        topic: "projects/p/topics/t".into(),
        source: google_cloud_pubsub::error::PublishError::Rpc(std::sync::Arc::new(e)),
    }
}

/// The probe: a callback message whose `callback_url` broke the 1024-byte limit was
/// refused on every try, and its delivery retried for up to 7 days.
#[test]
fn only_invalid_argument_is_a_permanent_refusal() {
    assert!(refused(Code::InvalidArgument).is_permanent());
    for code in [
        Code::Unavailable,
        Code::NotFound,
        Code::DeadlineExceeded,
        Code::PermissionDenied,
        Code::Internal,
    ] {
        assert!(!refused(code).is_permanent(), "{code:?}");
    }
    let shutdown = PublishError {
        topic: "t".into(),
        source: google_cloud_pubsub::error::PublishError::Shutdown,
    };
    assert!(!shutdown.is_permanent());
}

#[test]
fn topic_names_expand_with_the_project_or_stay_full() {
    assert_eq!(
        full_topic("copy-requests", Some("p")).unwrap(),
        "projects/p/topics/copy-requests"
    );
    assert_eq!(
        full_topic("projects/q/topics/t", None).unwrap(),
        "projects/q/topics/t"
    );
    assert!(
        full_topic("copy-requests", None)
            .unwrap_err()
            .to_string()
            .contains("GOOGLE_CLOUD_PROJECT")
    );
    assert!(full_topic("projects/q/subscriptions/t", Some("p")).is_err());
}

#[test]
fn subscription_names_expand_like_topic_names() {
    assert_eq!(
        full_subscription("copy-dead-letter-replay", Some("p")).unwrap(),
        "projects/p/subscriptions/copy-dead-letter-replay"
    );
    assert_eq!(
        full_subscription("projects/q/subscriptions/s", None).unwrap(),
        "projects/q/subscriptions/s"
    );
    let e = full_subscription("s", None).unwrap_err().to_string();
    assert!(
        e.contains("GOOGLE_CLOUD_PROJECT") && e.contains("subscription"),
        "{e}"
    );
    assert!(full_subscription("projects/q/snapshots/s", Some("p")).is_err());
    assert!(full_subscription("projects/q/topics/w", Some("p")).is_err());
}
