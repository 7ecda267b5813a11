//! Configuration of the worker (DESIGN.md §5), read by `serve` and `doctor`: every environment
//! variable is also a flag, and a wrong value stops the process at start with a message
//! naming the variable.
//!
//! [`ServeArgs`] flattens one clap group per concern, in the order `serve --help` lists them:
//! - [`flags`]: the Pub/Sub project and emulator, and the value parsers every command shares;
//! - [`topics`]: the topic flags, one group per topic, shared with the other commands;
//! - [`defaults`]: what a short-form request is completed with;
//! - [`auth`]: `PUSH_AUTH`, what a push token must carry, and the check of account lists;
//! - [`vertex`]: the Vertex AI endpoint, call timeout and default KMS keys per region;
//! - [`queue`]: the two task queues (copy starts and polls), their URL and account;
//! - [`limits`]: attempts and durations;
//! - [`callers`]: direct callers and webhooks.
//!
//! [`Config::from_args`] checks them, always in the same order, so that of several wrong
//! values the same one is named first.

pub(crate) mod auth;
pub(crate) mod callers;
pub(crate) mod defaults;
pub(crate) mod flags;
pub(crate) mod limits;
pub(crate) mod queue;
pub(crate) mod topics;
pub(crate) mod vertex;

#[cfg(test)]
mod tests;

use clap::Args;

pub use self::auth::PushAuthMode;
use self::auth::PushTokenArgs;
use self::callers::CallerArgs;
use self::defaults::DefaultsArgs;
use self::flags::PubSubArgs;
use self::limits::{Durations, LimitArgs, at_least_one};
use self::queue::QueueArgs;
use self::topics::WorkerTopics;
use self::vertex::VertexArgs;
use crate::clients::pubsub::TopicNames;
use crate::clients::tasks::QueueOptions;
use crate::domain::Defaults;
use crate::pipeline::Settings;
use crate::telemetry::LogFormat;

/// Flags and environment of `copy-worker serve`.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Listen port.
    #[arg(long, env = "PORT", default_value_t = 8080)]
    pub port: u16,
    /// Project of the worker's topics (needed unless every topic name is full), and the
    /// Pub/Sub emulator.
    #[command(flatten)]
    pub pubsub: PubSubArgs,
    #[command(flatten)]
    pub topics: WorkerTopics,
    #[command(flatten)]
    pub defaults: DefaultsArgs,
    /// How pushes are authenticated.
    #[arg(long, env = "PUSH_AUTH", value_enum, default_value_t = PushAuthMode::Oidc)]
    pub push_auth: PushAuthMode,
    #[command(flatten)]
    pub push: PushTokenArgs,
    /// The Cloud Run service name, which Cloud Run sets as `K_SERVICE`: `PUSH_AUTH=cloud-run`
    /// trusts Cloud Run's front end and is refused where there is none.
    #[arg(long = "cloud-run-service", env = "K_SERVICE", hide = true)]
    pub k_service: Option<String>,
    #[command(flatten)]
    pub vertex: VertexArgs,
    #[command(flatten)]
    pub queue: QueueArgs,
    /// Benchmarks only: divide the worker's internal timings (the poll schedule and the
    /// back-offs) by this, to run a time-compressed burst with the same proportions.
    #[arg(
        long,
        env = "COPY_WORKER_TIME_SCALE",
        default_value_t = 1.0,
        hide = true
    )]
    pub time_scale: f64,
    #[command(flatten)]
    pub limits: LimitArgs,
    #[command(flatten)]
    pub callers: CallerArgs,
    /// Log format (default: json on Cloud Run, where K_SERVICE is set; else text).
    #[arg(long, env = "LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,
}

/// A configuration error: the variable and what is wrong.
#[derive(Debug, thiserror::Error)]
#[error("configuration: {var}: {problem}")]
pub struct ConfigError {
    pub var: &'static str,
    pub problem: String,
}

fn err(var: &'static str, problem: impl Into<String>) -> ConfigError {
    ConfigError {
        var,
        problem: problem.into(),
    }
}

/// Validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub port: u16,
    /// Project of the worker's topics; also in `settings`, for `ce-source`.
    pub worker_project: String,
    pub topics: TopicNames,
    /// What the stages need: defaults, attempts, durations.
    pub settings: Settings,
    pub push_auth: PushAuthMode,
    pub push_audiences: Vec<String>,
    pub push_service_accounts: Vec<String>,
    pub push_jwks_url: Option<String>,
    pub invoker_service_accounts: Vec<String>,
    pub vertex_endpoint: Option<String>,
    pub vertex_call_timeout: std::time::Duration,
    pub emulator_host: Option<String>,
    pub callback_signing_secret: Option<String>,
    pub log_format: LogFormat,
    /// `COPY_START_QUEUE`, `COPY_POLL_QUEUE`, and what their tasks call and carry.
    pub queues: QueueOptions,
    /// `COPY_OPERATIONS_DRAIN`: serve the upgrade route.
    pub operations_drain: bool,
}

impl Config {
    /// Checks every setting; the error names the first wrong one.
    pub fn from_args(a: &ServeArgs) -> Result<Self, ConfigError> {
        let project = a.pubsub.project();
        let topics = a.topics.names(project)?;
        let worker_project = topics::worker_project(project, &topics);
        let push = auth::push(a.push_auth, a.k_service.is_some(), &a.push)?;
        let invoker_service_accounts = a.callers.invokers();
        auth::emails([
            ("PUSH_SERVICE_ACCOUNTS", &push.service_accounts),
            ("INVOKER_SERVICE_ACCOUNTS", &invoker_service_accounts),
        ])?;
        let one = "must be at least 1";
        at_least_one("CALLBACK_MAX_ATTEMPTS", a.limits.callback_max_attempts, one)?;
        if !(a.time_scale.is_finite() && a.time_scale >= 1.0) {
            return Err(err(
                "COPY_WORKER_TIME_SCALE",
                "must be a number of at least 1",
            ));
        }
        at_least_one("COPY_MAX_ATTEMPTS", a.limits.copy_max_attempts, one)?;
        let durations = a.limits.durations(&a.vertex.vertex_call_timeout)?;
        let vertex_endpoint = a.vertex.endpoint()?;
        let default_kms_keys = a.vertex.default_keys()?;
        let defaults = defaults::defaults(&a.defaults, &a.callers)?;
        a.callers.check_secret()?;
        let timeout = durations.vertex_call_timeout;
        let queues = queue::queues(&a.queue, a.push_auth, timeout)?;
        Ok(Self {
            port: a.port,
            settings: Settings {
                default_kms_keys,
                ..settings(a, &worker_project, defaults, durations)
            },
            worker_project,
            topics,
            push_auth: a.push_auth,
            push_audiences: push.audiences,
            push_service_accounts: push.service_accounts,
            push_jwks_url: a.push.push_jwks_url.clone(),
            invoker_service_accounts,
            vertex_endpoint,
            vertex_call_timeout: timeout,
            emulator_host: a.pubsub.emulator_host(),
            callback_signing_secret: a.callers.callback_signing_secret.clone(),
            log_format: log_format(a.log_format),
            queues,
            operations_drain: a.queue.copy_operations_drain,
        })
    }
}

/// What the stages need, from checked values; the benchmarks' time scale divides the poll
/// schedule and the back-offs.
fn settings(a: &ServeArgs, worker_project: &str, defaults: Defaults, d: Durations) -> Settings {
    let mut s = Settings::new(worker_project);
    s.defaults = defaults;
    s.max_attempts = a.limits.copy_max_attempts;
    s.callback_max_attempts = a.limits.callback_max_attempts;
    s.max_duration = d.max_duration;
    s.vertex_call_timeout = d.vertex_call_timeout;
    s.poll_initial = s.poll_initial.div_f64(a.time_scale);
    s.poll_max = s.poll_max.div_f64(a.time_scale);
    s.quota_backoff = s.quota_backoff.div_f64(a.time_scale);
    s
}

/// `LOG_FORMAT`; by default JSON on Cloud Run, where `K_SERVICE` is set, and text elsewhere.
fn log_format(set: Option<LogFormat>) -> LogFormat {
    set.unwrap_or(if std::env::var_os("K_SERVICE").is_some() {
        LogFormat::Json
    } else {
        LogFormat::Text
    })
}

/// The risks a configuration takes, logged as warnings at every start (and listed by
/// `doctor`).
pub fn startup_warnings(cfg: &Config) -> Vec<&'static str> {
    let mut w = vec![];
    if cfg.push_auth == PushAuthMode::None {
        w.push(
            "PUSH_AUTH=none: push endpoints accept requests from anyone who can reach them, who can then start copies and publish events as this worker; use only for local tests",
        );
    }
    if !cfg.settings.defaults.callback_allowed_hosts.is_empty()
        && cfg.callback_signing_secret.is_none()
    {
        w.push(
            "CALLBACK_ALLOWED_HOSTS is set but CALLBACK_SIGNING_SECRET is not: callbacks are sent unsigned, so receivers cannot tell them from forgeries; set CALLBACK_SIGNING_SECRET (whsec_…)",
        );
    }
    if cfg.settings.defaults.callback_allow_http_loopback {
        w.push(
            "CALLBACK_ALLOW_HTTP_LOOPBACK=true: http://127.0.0.1 callbacks are allowed (local tests only)",
        );
    }
    w
}
