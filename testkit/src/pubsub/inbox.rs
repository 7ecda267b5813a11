//! Collects every message of a pull subscription so that tests can wait for what they expect.

use super::{Topology, anonymous};
use anyhow::{Context, bail};
use google_cloud_pubsub::client::Subscriber;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;

/// One message as the subscriber received it.
#[derive(Clone, Debug)]
pub struct Received {
    /// Server-assigned id.
    pub message_id: String,
    /// Payload bytes.
    pub data: Vec<u8>,
    /// Message attributes.
    pub attributes: HashMap<String, String>,
}

impl Received {
    /// The payload parsed as JSON, or `Value::Null` when it is not JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.data).unwrap_or(serde_json::Value::Null)
    }

    /// The value of one attribute, if present.
    pub fn attribute(&self, key: &str) -> Option<&str> {
        self.attributes.get(key).map(String::as_str)
    }
}

/// Streams a pull subscription in a background task (official `Subscriber`, streaming pull) and
/// acks every message after recording it. The task stops when the `Inbox` is dropped.
#[derive(Debug)]
pub struct Inbox {
    subscription: String,
    received: Arc<Mutex<Vec<Received>>>,
    /// Errors that ended the stream, quoted by [`Inbox::wait_for`] when it times out.
    errors: Arc<Mutex<Vec<String>>>,
    task: JoinHandle<()>,
}

impl Inbox {
    /// Starts collecting `short_subscription` of the topology's project.
    pub async fn open(topology: &Topology, short_subscription: &str) -> anyhow::Result<Inbox> {
        let subscription = topology.subscription(short_subscription);
        let subscriber = Subscriber::builder()
            .with_endpoint(&topology.endpoint)
            .with_credentials(anonymous())
            .build()
            .await
            .context("building Subscriber for the emulator")?;
        let mut stream = subscriber.subscribe(subscription.clone()).build();
        let received = Arc::new(Mutex::new(Vec::new()));
        let errors = Arc::new(Mutex::new(Vec::new()));
        let (sink, error_sink) = (received.clone(), errors.clone());
        let task = tokio::spawn(async move {
            // Keep the client alive as long as its stream.
            let _subscriber = subscriber;
            while let Some(next) = stream.next().await {
                match next {
                    Ok((message, handler)) => {
                        lock(&sink).push(Received {
                            message_id: message.message_id,
                            data: message.data.to_vec(),
                            attributes: message.attributes,
                        });
                        handler.ack();
                    }
                    Err(e) => {
                        lock(&error_sink).push(format!("{e:#}"));
                        break;
                    }
                }
            }
        });
        Ok(Inbox {
            subscription,
            received,
            errors,
            task,
        })
    }

    /// Everything received so far, in arrival order.
    pub fn snapshot(&self) -> Vec<Received> {
        lock(&self.received).clone()
    }

    /// Waits until at least `n` received messages satisfy `pred` and returns those messages.
    ///
    /// On timeout the error lists every message that did arrive, to make failures readable.
    pub async fn wait_for(
        &self,
        n: usize,
        timeout: Duration,
        pred: impl Fn(&Received) -> bool,
    ) -> anyhow::Result<Vec<Received>> {
        let deadline = Instant::now() + timeout;
        loop {
            let all = self.snapshot();
            let matching: Vec<Received> = all.iter().filter(|m| pred(m)).cloned().collect();
            if matching.len() >= n {
                return Ok(matching);
            }
            if Instant::now() >= deadline {
                let listing: Vec<String> = all.iter().map(describe).collect();
                bail!(
                    "expected {n} matching message(s) on {} within {timeout:?}, {} matched; \
                     received {}:\n{}\nstream errors: {:?}",
                    self.subscription,
                    matching.len(),
                    all.len(),
                    listing.join("\n"),
                    lock(&self.errors),
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Inbox {
    /// Waits until at least `n` messages carry the attribute `request_id` = `request_id`
    /// (the worker sets it on every event and dead letter) and returns those.
    pub async fn of_request(
        &self,
        request_id: &str,
        n: usize,
        timeout: Duration,
    ) -> anyhow::Result<Vec<Received>> {
        self.wait_for(n, timeout, |m| {
            m.attribute("request_id") == Some(request_id)
        })
        .await
    }
}

impl Drop for Inbox {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn describe(m: &Received) -> String {
    let mut attributes: Vec<_> = m.attributes.iter().collect();
    attributes.sort();
    format!(
        "  id={} attributes={attributes:?} data={}",
        m.message_id,
        String::from_utf8_lossy(&m.data)
    )
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
