//! The topic flags (DESIGN.md §2, §5, §6): one clap group per topic, which declares its
//! variable and default once, flattened into `serve` and into each command that names it.
//!
//! Each group is spelled as `serve` spells it. A command whose flag reads differently
//! (`publish --topic`, `events --topic`) or says more rewords it with
//! `#[command(mut_args(..))]`, which keeps the group's variable and default, and the flag's
//! place in `--help` and in completion scripts.
//!
//! Each group dereferences to the topic name as given, short or full.

use crate::topology;
use clap::{Arg, Args};

use super::{ConfigError, err};
use crate::clients::pubsub::{TopicNames, full_topic};

macro_rules! topic_name {
    ($group:ident, $field:ident) => {
        impl std::ops::Deref for $group {
            type Target = str;

            fn deref(&self) -> &str {
                &self.$field
            }
        }
    };
}

/// `COPY_REQUESTS_TOPIC`: where copy requests are published.
#[derive(Debug, Clone, Args)]
pub struct RequestsTopic {
    /// Topic for copy requests (direct HTTP callers).
    #[arg(long, env = "COPY_REQUESTS_TOPIC", default_value = topology::REQUESTS_TOPIC)]
    pub requests_topic: String,
}
topic_name!(RequestsTopic, requests_topic);

/// `COPY_COMPLETIONS_TOPIC`: completion events, which waiters and `events` read.
#[derive(Debug, Clone, Args)]
pub struct CompletionsTopic {
    /// Topic for completion events.
    #[arg(
        long,
        env = "COPY_COMPLETIONS_TOPIC",
        default_value = topology::COMPLETIONS_TOPIC
    )]
    pub completions_topic: String,
}
topic_name!(CompletionsTopic, completions_topic);

/// `COPY_DEAD_LETTER_TOPIC`: requests that could not be served, which `replay` moves back.
#[derive(Debug, Clone, Args)]
pub struct DeadLetterTopic {
    /// Topic for dead letters.
    #[arg(
        long,
        env = "COPY_DEAD_LETTER_TOPIC",
        default_value = topology::DEAD_LETTER_TOPIC
    )]
    pub dead_letter_topic: String,
}
topic_name!(DeadLetterTopic, dead_letter_topic);

/// `COPY_CALLBACKS_TOPIC`: webhook callbacks, posted by the topic's push subscription.
#[derive(Debug, Clone, Args)]
pub struct CallbacksTopic {
    /// Topic for webhook callbacks (internal; its push subscription posts them).
    #[arg(long, env = "COPY_CALLBACKS_TOPIC", default_value = topology::CALLBACKS_TOPIC)]
    pub callbacks_topic: String,
}
topic_name!(CallbacksTopic, callbacks_topic);

/// For `#[command(mut_args(..))]`: changes the flag `id` with `f`, and leaves the others.
pub fn reword(id: &'static str, f: impl Fn(Arg) -> Arg) -> impl FnMut(Arg) -> Arg {
    move |a| if a.get_id() == id { f(a) } else { a }
}

/// The topic flag `id` spelled `--topic`, with `help`.
pub fn spelled_topic(id: &'static str, help: &'static str) -> impl FnMut(Arg) -> Arg {
    reword(id, move |a| a.long("topic").value_name("TOPIC").help(help))
}

/// The topic flag `id` with `help`.
pub fn described(id: &'static str, help: &'static str) -> impl FnMut(Arg) -> Arg {
    reword(id, move |a| a.help(help))
}

/// The four topics of the worker, in the order `serve --help` lists them.
#[derive(Debug, Clone, Args)]
pub struct WorkerTopics {
    #[command(flatten)]
    pub completions: CompletionsTopic,
    #[command(flatten)]
    pub dead_letter: DeadLetterTopic,
    #[command(flatten)]
    pub requests: RequestsTopic,
    #[command(flatten)]
    pub callbacks: CallbacksTopic,
}

impl WorkerTopics {
    /// The full names, each checked in that order; a short name needs `project`.
    pub fn names(&self, project: Option<&str>) -> Result<TopicNames, ConfigError> {
        let topic =
            |var, name: &str| full_topic(name, project).map_err(|p| err(var, p.to_string()));
        Ok(TopicNames {
            completions: topic("COPY_COMPLETIONS_TOPIC", &self.completions)?,
            dead_letter: topic("COPY_DEAD_LETTER_TOPIC", &self.dead_letter)?,
            requests: topic("COPY_REQUESTS_TOPIC", &self.requests)?,
            callbacks: topic("COPY_CALLBACKS_TOPIC", &self.callbacks)?,
        })
    }
}

/// The project of the worker's topics: `GOOGLE_CLOUD_PROJECT`, or else the completions
/// topic's, when every name is full.
pub fn worker_project(project: Option<&str>, topics: &TopicNames) -> String {
    project.map(str::to_owned).unwrap_or_else(|| {
        topics
            .completions
            .split('/')
            .nth(1)
            .unwrap_or_default()
            .to_owned()
    })
}
