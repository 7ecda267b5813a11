//! [`FakeTopics`]: the Pub/Sub seam, a script of answers per topic and a log of every publish.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use google_cloud_gax::error::rpc::{Code, Status};

use super::Script;
use crate::clients::pubsub::{OutMessage, PublishError, Topic, Topics};

/// How Pub/Sub answers a publish.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Publish {
    /// Confirmed: a message id.
    Ok,
    /// Not confirmed; a later try may pass (UNAVAILABLE, a topic not made yet).
    Fails(Code),
}

impl Publish {
    /// Refused for good: Pub/Sub's INVALID_ARGUMENT (a message over its limits).
    pub const REFUSED: Publish = Publish::Fails(Code::InvalidArgument);
    pub const UNAVAILABLE: Publish = Publish::Fails(Code::Unavailable);
}

/// One publish the stage attempted.
#[derive(Debug, Clone)]
pub(crate) struct Published {
    pub topic: Topic,
    pub msg: OutMessage,
    /// Whether Pub/Sub confirmed it (returned a message id).
    pub confirmed: bool,
}

/// [`Topics`] from a script per topic; a topic without one confirms every publish.
#[derive(Default)]
pub(crate) struct FakeTopics {
    scripts: Mutex<HashMap<Topic, Script<Publish>>>,
    log: Mutex<Vec<Published>>,
}

impl FakeTopics {
    pub fn on(&self, topic: Topic, answers: impl IntoIterator<Item = Publish>) {
        let mut scripts = self.scripts.lock().unwrap();
        scripts.entry(topic).or_default().0.extend(answers);
    }

    /// Every publish attempted, confirmed or not, in order.
    pub fn attempts(&self) -> Vec<Published> {
        self.log.lock().unwrap().clone()
    }

    /// The topic of every publish attempted, in order.
    pub fn published_to(&self) -> Vec<Topic> {
        self.log.lock().unwrap().iter().map(|p| p.topic).collect()
    }

    /// The confirmed messages on `topic`, in order.
    pub fn confirmed(&self, topic: Topic) -> Vec<OutMessage> {
        let log = self.log.lock().unwrap();
        log.iter()
            .filter(|p| p.topic == topic && p.confirmed)
            .map(|p| p.msg.clone())
            .collect()
    }

    /// The one confirmed message on `topic`; fails the test unless there is exactly one.
    pub fn only(&self, topic: Topic) -> OutMessage {
        super::only(topic, self.confirmed(topic))
    }
}

#[async_trait]
impl Topics for FakeTopics {
    async fn publish(&self, topic: Topic, msg: OutMessage) -> Result<String, PublishError> {
        let answer = {
            let mut scripts = self.scripts.lock().unwrap();
            scripts
                .get_mut(&topic)
                .map_or(Publish::Ok, |s| s.next("publish"))
        };
        let mut log = self.log.lock().unwrap();
        log.push(Published {
            topic,
            msg,
            confirmed: answer == Publish::Ok,
        });
        match answer {
            Publish::Ok => Ok(log.len().to_string()),
            Publish::Fails(code) => {
                let e = google_cloud_pubsub::Error::service(
                    Status::default()
                        .set_code(code)
                        .set_message("scripted refusal"),
                );
                Err(PublishError {
                    topic: format!("projects/worker-proj/topics/{topic:?}"),
                    source: google_cloud_pubsub::error::PublishError::Rpc(Arc::new(e)),
                })
            }
        }
    }

    async fn flush(&self) {}
}
