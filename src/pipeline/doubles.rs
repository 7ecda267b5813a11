//! In-memory doubles of the stages' three seams (`Vertex`, `Topics`, `TaskQueues`), for the
//! stage tests beside each stage (issue 30, point 4). A double records what a stage hands on
//! and answers from a script; it does not reimplement the pipeline, Pub/Sub or Cloud Tasks.
//!
//! Each answers only what its real client can answer: a Vertex failure is a [`Failure`] as
//! `retry::classify` makes it, a model read that finds nothing is `Ok(None)` (the client's
//! NOT_FOUND), a publish failure is the client's `PublishError::Rpc` around a status, and
//! CreateTask's ALREADY_EXISTS is `Ok` (`CloudTasksQueues::create`). The wire contract
//! (envelopes, the emulator, the Cloud Tasks fake), crashes and shutdown stay with `tests/it`.
//!
//! One file a seam: [`vertex`], [`topics`], [`queues`]; the request and deliveries the tests
//! share are in [`fixtures`]. This file holds what they have in common and [`Doubles`], the
//! three together under a pipeline.

mod fixtures;
mod queues;
mod topics;
mod vertex;

use std::collections::VecDeque;
use std::sync::Arc;

use google_cloud_gax::error::rpc::Code;

pub(crate) use self::fixtures::*;
pub(crate) use self::queues::{Create, FakeQueues};
pub(crate) use self::topics::{FakeTopics, Publish};
pub(crate) use self::vertex::{FakeVertex, VertexCall};
use super::{Pipeline, Settings};
use crate::clients::webhook::Callbacks;
use crate::retry::Failure;

/// Answers in order; the last one repeats, so "always UNAVAILABLE" is a script of one.
#[derive(Debug)]
struct Script<T>(VecDeque<T>);

impl<T: Clone> Script<T> {
    fn next(&mut self, what: &str) -> T {
        match self.0.len() {
            0 => panic!("the stage called {what}, which this test did not script"),
            1 => self.0[0].clone(),
            _ => self.0.pop_front().expect("not empty"),
        }
    }
}

impl<T> Default for Script<T> {
    fn default() -> Self {
        Self(VecDeque::new())
    }
}

/// The one item of `all` (what `of` holds); fails the test unless there is exactly one.
fn only<T: std::fmt::Debug>(of: impl std::fmt::Debug, mut all: Vec<T>) -> T {
    assert_eq!(all.len(), 1, "{of:?}: {all:#?}");
    all.remove(0)
}

/// A failure as `retry::classify` makes it from a status.
fn failure(code: Code, call: &str) -> Failure {
    Failure::new(code, format!("{call}: scripted {}", code.name()))
}

/// The three doubles, and a pipeline over them.
#[derive(Clone, Default)]
pub(crate) struct Doubles {
    pub vertex: Arc<FakeVertex>,
    pub topics: Arc<FakeTopics>,
    pub queues: Arc<FakeQueues>,
}

impl Doubles {
    /// A pipeline over these doubles, with `settings`; callbacks sealed with `secret`.
    pub fn pipeline_with(&self, settings: Settings, secret: Option<&str>) -> Pipeline {
        Pipeline {
            vertex: self.vertex.clone(),
            topics: self.topics.clone(),
            queues: self.queues.clone(),
            callbacks: Arc::new(Callbacks::new(secret).expect("a callback secret")),
            settings: Arc::new(settings),
            numbers: Default::default(),
            in_flight: Default::default(),
        }
    }

    /// A pipeline with the test settings ([`settings`]) and no callback secret.
    pub fn pipeline(&self) -> Pipeline {
        self.pipeline_with(settings(), None)
    }
}

/// The worker's default settings, with `hooks.example.com` allowed for callbacks.
pub(crate) fn settings() -> Settings {
    let mut s = Settings::new("worker-proj");
    s.defaults.callback_allowed_hosts = vec!["hooks.example.com".into()];
    s
}

/// The test settings once `hooks.example.com` is no longer allowed for callbacks (a host
/// removed after a request naming it was accepted).
pub(crate) fn no_callback_hosts() -> Settings {
    let mut s = settings();
    s.defaults.callback_allowed_hosts.clear();
    s
}
