//! Configuration of `copy-worker serve` (DESIGN.md §5): every environment variable is also
//! a flag, and a wrong value stops the process at start with a message naming the variable.

use std::time::Duration;

use clap::{Args, ValueEnum};

use super::args::{PubSubArgs, parse_duration};
use crate::clients::pubsub::{TopicNames, full_topic};
use crate::clients::tasks::QueueOptions;
use crate::domain::Defaults;
use crate::domain::names::{is_location, is_project};
use crate::pipeline::Settings;
use crate::telemetry::LogFormat;

/// `PUSH_AUTH`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PushAuthMode {
    /// Verify Pub/Sub's OIDC token on every push: signature, issuer, audience, expiry, email.
    Oidc,
    /// Behind Cloud Run's IAM invoker check, which verifies the token's signature and forwards
    /// it with the signature replaced by `SIGNATURE_REMOVED_BY_GOOGLE`: check the claims of
    /// that form (issuer, audience, expiry, email), and a token that still carries a
    /// signature in full. Refused at start unless `K_SERVICE` is set (docs/auth.md).
    CloudRun,
    /// Accept every push (local tests only; logged as a warning at every start).
    None,
}

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
    /// Topic for watch messages, short or projects/P/topics/T.
    #[arg(long, env = "COPY_OPERATIONS_TOPIC", default_value = "copy-operations")]
    pub operations_topic: String,
    /// Topic for completion events.
    #[arg(
        long,
        env = "COPY_COMPLETIONS_TOPIC",
        default_value = "copy-completions"
    )]
    pub completions_topic: String,
    /// Topic for dead letters.
    #[arg(
        long,
        env = "COPY_DEAD_LETTER_TOPIC",
        default_value = "copy-dead-letter"
    )]
    pub dead_letter_topic: String,
    /// Topic for copy requests (direct HTTP callers).
    #[arg(long, env = "COPY_REQUESTS_TOPIC", default_value = "copy-requests")]
    pub requests_topic: String,
    /// Topic for webhook callbacks (internal; its push subscription posts them).
    #[arg(long, env = "COPY_CALLBACKS_TOPIC", default_value = "copy-callbacks")]
    pub callbacks_topic: String,
    /// Project of bare source model ids.
    #[arg(long, env = "SOURCE_PROJECT")]
    pub source_project: Option<String>,
    /// Destination project when a request names none.
    #[arg(long, env = "TARGET_PROJECT")]
    pub target_project: Option<String>,
    /// Location of bare source model ids and the two-field form.
    #[arg(long, env = "LOCATION")]
    pub location: Option<String>,
    /// How pushes are authenticated.
    #[arg(long, env = "PUSH_AUTH", value_enum, default_value_t = PushAuthMode::Oidc)]
    pub push_auth: PushAuthMode,
    /// Expected `aud` of push tokens, comma-separated.
    #[arg(long, env = "PUSH_AUDIENCE")]
    pub push_audience: Option<String>,
    /// Allowed `email` claims of push tokens, comma-separated.
    #[arg(long, env = "PUSH_SERVICE_ACCOUNTS")]
    pub push_service_accounts: Option<String>,
    /// JWKS URL override (tests, private issuers).
    #[arg(long, env = "PUSH_JWKS_URL")]
    pub push_jwks_url: Option<String>,
    /// The Cloud Run service name, which Cloud Run sets as `K_SERVICE`: `PUSH_AUTH=cloud-run`
    /// trusts Cloud Run's front end and is refused where there is none.
    #[arg(long = "cloud-run-service", env = "K_SERVICE", hide = true)]
    pub k_service: Option<String>,
    /// Base URL of the Vertex AI API (default: regional endpoint per request).
    #[arg(long, env = "VERTEX_ENDPOINT")]
    pub vertex_endpoint: Option<String>,
    /// Timeout of one attempt of one Vertex AI call.
    #[arg(long, env = "VERTEX_CALL_TIMEOUT", default_value = "30s")]
    pub vertex_call_timeout: String,
    /// CopyModel calls a minute per destination region, for the whole deployment (half of
    /// Vertex AI's default quota of 60, which the project's other jobs share).
    #[arg(long, env = "VERTEX_COPY_RATE", default_value_t = 30.0)]
    pub vertex_copy_rate: f64,
    /// Vertex AI reads (GetOperation, GetModel, ListModelVersions) a minute per region, for
    /// the whole deployment (half of the default quota of 600).
    #[arg(long, env = "VERTEX_READ_RATE", default_value_t = 300.0)]
    pub vertex_read_rate: f64,
    /// How many instances share those rates: the service's maximum instance count (Terraform
    /// passes max_instances). Each instance takes rate / WORKER_INSTANCES.
    #[arg(long, env = "WORKER_INSTANCES", default_value_t = 1)]
    pub worker_instances: u32,
    /// Cloud Tasks queue that paces copy starts for the whole deployment,
    /// projects/P/locations/L/queues/Q (unset: each instance admits copies from its share).
    #[arg(long, env = "COPY_START_QUEUE")]
    pub copy_start_queue: Option<String>,
    /// The worker's service URL, which the copy-start tasks call (required with the queue).
    #[arg(long, env = "COPY_START_URL")]
    pub copy_start_url: Option<String>,
    /// The account whose OIDC token the queue attaches (default: the first of
    /// PUSH_SERVICE_ACCOUNTS).
    #[arg(long, env = "COPY_START_SERVICE_ACCOUNT")]
    pub copy_start_service_account: Option<String>,
    /// Base URL of the Cloud Tasks API (tests; default https://cloudtasks.googleapis.com).
    #[arg(long, env = "CLOUD_TASKS_ENDPOINT")]
    pub cloud_tasks_endpoint: Option<String>,
    /// Benchmarks only: divide the worker's internal timings (poll intervals, the budget's
    /// minute, bursts and back-offs, the admission wait) by this, to run a time-compressed
    /// burst with the same proportions.
    #[arg(
        long,
        env = "COPY_WORKER_TIME_SCALE",
        default_value_t = 1.0,
        hide = true
    )]
    pub time_scale: f64,
    /// Copy attempts for transient operation failures.
    #[arg(long, env = "COPY_MAX_ATTEMPTS", default_value_t = 3)]
    pub copy_max_attempts: u32,
    /// Deliveries of one webhook callback before it is dead-lettered with the receiver's last
    /// answer (counted by Pub/Sub's deliveryAttempt; keep it at or below the max delivery
    /// attempts of copy-callbacks-push, which dead-letters on its own as a backstop).
    #[arg(long, env = "CALLBACK_MAX_ATTEMPTS", default_value_t = 10)]
    pub callback_max_attempts: u32,
    /// Give up on an operation after this long (e.g. 24h, 90m).
    #[arg(long, env = "COPY_MAX_DURATION", default_value = "24h")]
    pub copy_max_duration: String,
    /// How long one watch delivery may poll in-request (below COPY_OPERATIONS_ACK_DEADLINE).
    #[arg(long, env = "WATCH_HOLD", default_value = "240s")]
    pub watch_hold: String,
    /// The ack deadline of copy-operations-push (10s to 600s): each watch delivery answers
    /// within it, counted from its arrival (Terraform passes the subscription's value).
    #[arg(long, env = "COPY_OPERATIONS_ACK_DEADLINE", default_value = "300s")]
    pub operations_ack_deadline: String,
    /// Callers allowed on POST /v1/models/copy, comma-separated.
    #[arg(long, env = "INVOKER_SERVICE_ACCOUNTS")]
    pub invoker_service_accounts: Option<String>,
    /// Hosts a callback_url may point at, comma-separated.
    #[arg(long, env = "CALLBACK_ALLOWED_HOSTS")]
    pub callback_allowed_hosts: Option<String>,
    /// Standard Webhooks signing secret (whsec_… or raw).
    #[arg(long, env = "CALLBACK_SIGNING_SECRET", hide_env_values = true)]
    pub callback_signing_secret: Option<String>,
    /// Also allow http://127.0.0.1 callbacks (local tests only).
    #[arg(long, env = "CALLBACK_ALLOW_HTTP_LOOPBACK", default_value_t = false)]
    pub callback_allow_http_loopback: bool,
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

/// What is wrong with one `CALLBACK_ALLOWED_HOSTS` entry, if anything: it must be a bare
/// host name (`hooks.example.com`), which is what a callback URL's host is compared with.
fn host_mistake(h: &str) -> Option<String> {
    if let Some((scheme, rest)) = h.split_once("://") {
        let host = rest.split(['/', ':']).next().unwrap_or_default();
        return Some(format!(
            "{h:?} has a scheme ({scheme}://); list the host only, e.g. {host:?}"
        ));
    }
    if h.contains('/') {
        let host = h.split('/').next().unwrap_or_default();
        return Some(format!(
            "{h:?} has a path; list the host only, e.g. {host:?}"
        ));
    }
    if let Some((host, _port)) = h.rsplit_once(':') {
        return Some(format!(
            "{h:?} has a port; hosts are matched without one, list {host:?}"
        ));
    }
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if h.len() > 253 || !h.split('.').all(label_ok) {
        return Some(format!(
            "{h:?} is not a host name (letters, digits, hyphens and dots, e.g. hooks.example.com)"
        ));
    }
    None
}

/// `name@domain.tld`: the form of a token's `email` claim (a service account email).
fn is_email(s: &str) -> bool {
    match s.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !s.contains(|c: char| c.is_whitespace() || c == ',' || c == '/')
                && !domain.contains('@')
        }
        None => false,
    }
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
    pub vertex_call_timeout: Duration,
    pub emulator_host: Option<String>,
    pub callback_signing_secret: Option<String>,
    pub log_format: LogFormat,
    /// `VERTEX_COPY_RATE`, `VERTEX_READ_RATE`, `WORKER_INSTANCES`.
    pub rates: crate::pipeline::budget::Rates,
    /// `COPY_START_QUEUE` and what its tasks call; `None` without a queue.
    pub start_queue: Option<QueueOptions>,
}

/// Splits a comma-separated list, dropping blanks.
pub fn list(s: &Option<String>) -> Vec<String> {
    s.iter()
        .flat_map(|s| s.split(','))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Parses `24h`, `240s`, `90m`, `1h 30m`, naming the variable on error.
fn duration(var: &'static str, s: &str) -> Result<Duration, ConfigError> {
    parse_duration(s).map_err(|e| err(var, e))
}

/// `COPY_START_QUEUE` and its companions, checked: a queue needs the URL its tasks call and
/// an account for their token.
fn start_queue(
    a: &ServeArgs,
    push_service_accounts: &[String],
    call_timeout: Duration,
) -> Result<Option<QueueOptions>, ConfigError> {
    let Some(queue) = a.copy_start_queue.clone().filter(|q| !q.is_empty()) else {
        return Ok(None);
    };
    let parts: Vec<&str> = queue.split('/').collect();
    let shape = ["projects", "", "locations", "", "queues", ""];
    let well_formed = parts.len() == shape.len()
        && parts
            .iter()
            .zip(shape)
            .all(|(p, s)| !p.is_empty() && (s.is_empty() || *p == s));
    if !well_formed {
        return Err(err(
            "COPY_START_QUEUE",
            format!("{queue:?} must be a full queue name, projects/P/locations/L/queues/Q"),
        ));
    }
    let url_var = |var: &'static str, v: &Option<String>| match v.as_deref() {
        Some(u) if u.starts_with("https://") || u.starts_with("http://") => Ok(Some(u.to_owned())),
        Some(u) => Err(err(
            var,
            format!("{u:?} must be an http:// or https:// URL"),
        )),
        None => Ok(None),
    };
    let target_url = url_var("COPY_START_URL", &a.copy_start_url)?.ok_or_else(|| {
        err(
            "COPY_START_URL",
            "is required with COPY_START_QUEUE: set it to this service's URL, which the queue's tasks call",
        )
    })?;
    let endpoint = url_var("CLOUD_TASKS_ENDPOINT", &a.cloud_tasks_endpoint)?;
    let service_account = a
        .copy_start_service_account
        .clone()
        .or_else(|| push_service_accounts.first().cloned())
        .ok_or_else(|| {
            err(
                "COPY_START_SERVICE_ACCOUNT",
                "is required with COPY_START_QUEUE when PUSH_SERVICE_ACCOUNTS is empty: the account whose token the queue's tasks carry",
            )
        })?;
    if !is_email(&service_account) {
        return Err(err(
            "COPY_START_SERVICE_ACCOUNT",
            format!("{service_account:?} is not an email address"),
        ));
    }
    Ok(Some(QueueOptions {
        queue,
        endpoint,
        target_url,
        service_account,
        call_timeout,
    }))
}

impl Config {
    pub fn from_args(a: &ServeArgs) -> Result<Self, ConfigError> {
        let project = a.pubsub.project();
        let topic =
            |var, name: &str| full_topic(name, project).map_err(|p| err(var, p.to_string()));
        let topics = TopicNames {
            operations: topic("COPY_OPERATIONS_TOPIC", &a.operations_topic)?,
            completions: topic("COPY_COMPLETIONS_TOPIC", &a.completions_topic)?,
            dead_letter: topic("COPY_DEAD_LETTER_TOPIC", &a.dead_letter_topic)?,
            requests: topic("COPY_REQUESTS_TOPIC", &a.requests_topic)?,
            callbacks: topic("COPY_CALLBACKS_TOPIC", &a.callbacks_topic)?,
        };
        let worker_project = project.map(str::to_owned).unwrap_or_else(|| {
            topics
                .completions
                .split('/')
                .nth(1)
                .unwrap_or_default()
                .to_owned()
        });
        let push_audiences = list(&a.push_audience);
        let push_service_accounts = list(&a.push_service_accounts);
        if a.push_auth == PushAuthMode::CloudRun && a.k_service.is_none() {
            return Err(err(
                "PUSH_AUTH",
                "cloud-run trusts the signature check of Cloud Run's front end, and K_SERVICE is not set, so this is not Cloud Run: use PUSH_AUTH=oidc here (the worker then verifies signatures itself)",
            ));
        }
        if a.push_auth != PushAuthMode::None {
            let mode = a.push_auth.to_possible_value().expect("no skipped variant");
            let mode = mode.get_name();
            if push_audiences.is_empty() {
                return Err(err(
                    "PUSH_AUDIENCE",
                    format!(
                        "is required with PUSH_AUTH={mode}: set it to the push endpoint URL(s) of the subscriptions, or set PUSH_AUTH=none for local tests"
                    ),
                ));
            }
            if let Some(u) = &a.push_jwks_url
                && !(u.starts_with("https://") || u.starts_with("http://"))
            {
                return Err(err(
                    "PUSH_JWKS_URL",
                    format!("{u:?} must be an http:// or https:// URL"),
                ));
            }
            if push_service_accounts.is_empty() {
                return Err(err(
                    "PUSH_SERVICE_ACCOUNTS",
                    format!(
                        "is required with PUSH_AUTH={mode}: set it to the push subscriptions' service account email(s)"
                    ),
                ));
            }
        }
        for (var, list) in [
            ("PUSH_SERVICE_ACCOUNTS", &push_service_accounts),
            (
                "INVOKER_SERVICE_ACCOUNTS",
                &list(&a.invoker_service_accounts),
            ),
        ] {
            if let Some(e) = list.iter().find(|e| !is_email(e)) {
                return Err(err(
                    var,
                    format!(
                        "{e:?} is not an email address; list service account emails such as copy-worker-push@my-proj.iam.gserviceaccount.com, comma-separated"
                    ),
                ));
            }
        }
        if a.callback_max_attempts == 0 {
            return Err(err("CALLBACK_MAX_ATTEMPTS", "must be at least 1"));
        }
        for (var, rate) in [
            ("VERTEX_COPY_RATE", a.vertex_copy_rate),
            ("VERTEX_READ_RATE", a.vertex_read_rate),
        ] {
            if !(rate.is_finite() && rate > 0.0) {
                return Err(err(
                    var,
                    format!("{rate} must be a positive number of calls a minute, e.g. 30"),
                ));
            }
        }
        if !(a.time_scale.is_finite() && a.time_scale >= 1.0) {
            return Err(err(
                "COPY_WORKER_TIME_SCALE",
                "must be a number of at least 1",
            ));
        }
        if a.worker_instances == 0 {
            return Err(err(
                "WORKER_INSTANCES",
                "must be at least 1 (the service's maximum instance count)",
            ));
        }
        if a.copy_max_attempts == 0 {
            return Err(err("COPY_MAX_ATTEMPTS", "must be at least 1"));
        }
        let max_duration = duration("COPY_MAX_DURATION", &a.copy_max_duration)?;
        let watch_hold = duration("WATCH_HOLD", &a.watch_hold)?;
        let vertex_call_timeout = duration("VERTEX_CALL_TIMEOUT", &a.vertex_call_timeout)?;
        if vertex_call_timeout.is_zero() {
            return Err(err("VERTEX_CALL_TIMEOUT", "must be above zero"));
        }
        let ack_deadline = duration("COPY_OPERATIONS_ACK_DEADLINE", &a.operations_ack_deadline)?;
        if !(Duration::from_secs(10)..=Duration::from_secs(600)).contains(&ack_deadline) {
            return Err(err(
                "COPY_OPERATIONS_ACK_DEADLINE",
                format!(
                    "{}s is outside Pub/Sub's range of 10s to 600s; set it to copy-operations-push's ack deadline",
                    ack_deadline.as_secs()
                ),
            ));
        }
        if watch_hold >= ack_deadline {
            return Err(err(
                "WATCH_HOLD",
                format!(
                    "{}s must stay below the {}s ack deadline of copy-operations-push (COPY_OPERATIONS_ACK_DEADLINE)",
                    watch_hold.as_secs(),
                    ack_deadline.as_secs()
                ),
            ));
        }
        if let Some(e) = &a.vertex_endpoint
            && !(e.starts_with("https://") || e.starts_with("http://"))
        {
            return Err(err(
                "VERTEX_ENDPOINT",
                format!("{e:?} must be an http:// or https:// URL"),
            ));
        }
        let mut defaults = Defaults {
            source_project: a.source_project.clone().filter(|s| !s.is_empty()),
            target_project: a.target_project.clone().filter(|s| !s.is_empty()),
            location: a.location.clone().filter(|s| !s.is_empty()),
            callback_allowed_hosts: list(&a.callback_allowed_hosts),
            callback_allow_http_loopback: a.callback_allow_http_loopback,
        };
        defaults
            .callback_allowed_hosts
            .iter_mut()
            .for_each(|h| h.make_ascii_lowercase());
        for h in &defaults.callback_allowed_hosts {
            if let Some(why) = host_mistake(h) {
                return Err(err("CALLBACK_ALLOWED_HOSTS", why));
            }
        }
        if let Some(l) = &defaults.location
            && !is_location(l)
        {
            return Err(err(
                "LOCATION",
                format!("{l:?} is not a region such as us-central1"),
            ));
        }
        for (var, p) in [
            ("SOURCE_PROJECT", &defaults.source_project),
            ("TARGET_PROJECT", &defaults.target_project),
        ] {
            if let Some(p) = p
                && !is_project(p)
            {
                return Err(err(var, format!("{p:?} is not a project id")));
            }
        }
        if let Some(s) = &a.callback_signing_secret {
            // The variable is named once, by ConfigError's Display.
            crate::clients::webhook::decode_secret(s)
                .map_err(|e| err("CALLBACK_SIGNING_SECRET", e.to_string()))?;
        }
        let log_format = a
            .log_format
            .unwrap_or(if std::env::var_os("K_SERVICE").is_some() {
                LogFormat::Json
            } else {
                LogFormat::Text
            });
        let mut settings = Settings::new(worker_project.clone());
        settings.defaults = defaults;
        settings.max_attempts = a.copy_max_attempts;
        settings.callback_max_attempts = a.callback_max_attempts;
        settings.max_duration = max_duration;
        settings.watch_hold = watch_hold;
        settings.operations_ack_deadline = ack_deadline;
        settings.vertex_call_timeout = vertex_call_timeout;
        settings.poll_initial = settings.poll_initial.div_f64(a.time_scale);
        settings.poll_max = settings.poll_max.div_f64(a.time_scale);
        let start_queue = start_queue(a, &push_service_accounts, vertex_call_timeout)?;
        if let Some(q) = &start_queue
            && a.push_auth != PushAuthMode::None
        {
            // Otherwise every dispatch is refused before the start stage runs, and the
            // queue retries for ever with nothing announced.
            if !push_service_accounts
                .iter()
                .any(|e| e.eq_ignore_ascii_case(&q.service_account))
            {
                return Err(err(
                    "COPY_START_SERVICE_ACCOUNT",
                    format!(
                        "{} must be one of PUSH_SERVICE_ACCOUNTS: the queue's tasks carry its token",
                        q.service_account
                    ),
                ));
            }
            if !push_audiences.contains(&q.target_url) {
                return Err(err(
                    "COPY_START_URL",
                    format!(
                        "{} must be one of PUSH_AUDIENCE: it is the audience of the tasks' tokens",
                        q.target_url
                    ),
                ));
            }
        }
        Ok(Self {
            port: a.port,
            start_queue,
            worker_project,
            topics,
            settings,
            push_auth: a.push_auth,
            push_audiences,
            push_service_accounts,
            push_jwks_url: a.push_jwks_url.clone(),
            invoker_service_accounts: list(&a.invoker_service_accounts),
            vertex_endpoint: a.vertex_endpoint.clone().filter(|s| !s.is_empty()),
            vertex_call_timeout,
            emulator_host: a.pubsub.emulator_host(),
            callback_signing_secret: a.callback_signing_secret.clone(),
            log_format,
            rates: crate::pipeline::budget::Rates {
                copies_per_minute: a.vertex_copy_rate,
                reads_per_minute: a.vertex_read_rate,
                instances: a.worker_instances,
                time_scale: a.time_scale,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        serve: ServeArgs,
    }

    fn config(args: &[&str]) -> Result<Config, ConfigError> {
        let mut argv = vec!["t", "--project", "my-proj"];
        argv.extend_from_slice(args);
        Config::from_args(&Cli::try_parse_from(argv).expect("flags parse").serve)
    }

    #[test]
    fn push_auth_is_oidc_unless_none_is_set_explicitly() {
        // The default case reads the environment: skip it where PUSH_* is set.
        if std::env::var_os("PUSH_AUTH").is_none() && std::env::var_os("PUSH_AUDIENCE").is_none() {
            let e = config(&[]).unwrap_err().to_string();
            assert!(e.contains("PUSH_AUDIENCE"), "{e}");
        }
        let e = config(&["--push-auth", "oidc", "--push-audience", "https://a"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("PUSH_SERVICE_ACCOUNTS"), "{e}");
        let e = config(&[
            "--push-auth",
            "oidc",
            "--push-audience",
            "https://a",
            "--push-service-accounts",
            "s@p.iam.gserviceaccount.com",
            "--push-jwks-url",
            "file:///etc/jwks",
        ])
        .unwrap_err()
        .to_string();
        assert!(e.contains("PUSH_JWKS_URL"), "{e}");
        let c = config(&[
            "--push-auth",
            "oidc",
            "--push-audience",
            "https://a, https://a/v1/models/copy",
            "--push-service-accounts",
            "s@p.iam.gserviceaccount.com",
        ])
        .unwrap();
        assert_eq!(c.push_audiences, ["https://a", "https://a/v1/models/copy"]);
        assert!(crate::cli::serve::startup_warnings(&c).is_empty());
        let none = config(&["--push-auth", "none"]).unwrap();
        assert_eq!(none.push_auth, PushAuthMode::None);
        let w = crate::cli::serve::startup_warnings(&none);
        assert!(
            w.iter()
                .any(|w| w.contains("PUSH_AUTH=none") && w.contains("anyone")),
            "{w:?}"
        );
    }

    #[test]
    fn push_auth_cloud_run_is_refused_off_cloud_run_and_needs_the_same_lists_as_oidc() {
        let accounts = ["--push-service-accounts", "s@p.iam.gserviceaccount.com"];
        let audience = ["--push-audience", "https://a"];
        let mut args = vec!["--push-auth", "cloud-run"];
        args.extend(audience);
        args.extend(accounts);
        // Without K_SERVICE (where the test runner does not set it) the mode is refused.
        if std::env::var_os("K_SERVICE").is_none() {
            let e = config(&args).unwrap_err().to_string();
            assert!(e.contains("PUSH_AUTH") && e.contains("K_SERVICE"), "{e}");
        }
        args.extend(["--cloud-run-service", "copy-worker"]);
        let c = config(&args).unwrap();
        assert_eq!(c.push_auth, PushAuthMode::CloudRun);
        let e = config(&["--push-auth", "cloud-run", "--cloud-run-service", "w"])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("PUSH_AUDIENCE") && e.contains("cloud-run"),
            "{e}"
        );
    }

    #[test]
    fn a_copy_start_queue_needs_a_full_name_a_url_and_an_account() {
        let base = [
            "--push-auth",
            "oidc",
            "--push-audience",
            "https://svc",
            "--push-service-accounts",
            "push@p.iam.gserviceaccount.com",
        ];
        let with = |extra: &[&str]| {
            let mut args = base.to_vec();
            args.extend_from_slice(extra);
            config(&args)
        };
        let q = "projects/p/locations/us-central1/queues/copy-starts";
        for (extra, var) in [
            (
                vec!["--copy-start-queue", "copy-starts"],
                "COPY_START_QUEUE",
            ),
            (
                vec!["--copy-start-queue", "projects/p/queues/q"],
                "COPY_START_QUEUE",
            ),
            (vec!["--copy-start-queue", q], "COPY_START_URL"),
            (
                vec!["--copy-start-queue", q, "--copy-start-url", "svc.run.app"],
                "COPY_START_URL",
            ),
            (
                vec![
                    "--copy-start-queue",
                    q,
                    "--copy-start-url",
                    "https://svc",
                    "--copy-start-service-account",
                    "push",
                ],
                "COPY_START_SERVICE_ACCOUNT",
            ),
        ] {
            let e = with(&extra).unwrap_err().to_string();
            assert!(e.contains(var), "{extra:?}: {e}");
        }
        for (extra, var) in [
            (vec!["--copy-start-url", "https://other"], "COPY_START_URL"),
            (
                vec![
                    "--copy-start-url",
                    "https://svc",
                    "--copy-start-service-account",
                    "x@p.iam.gserviceaccount.com",
                ],
                "COPY_START_SERVICE_ACCOUNT",
            ),
        ] {
            let mut args = vec!["--copy-start-queue", q];
            args.extend(extra);
            let e = with(&args).unwrap_err().to_string();
            assert!(e.contains(var) && e.contains("must be one of"), "{e}");
        }
        let c = with(&["--copy-start-queue", q, "--copy-start-url", "https://svc"]).unwrap();
        let opts = c.start_queue.expect("a queue");
        assert_eq!(opts.queue, q);
        assert_eq!(
            opts.service_account, "push@p.iam.gserviceaccount.com",
            "the first push account"
        );
        assert!(
            with(&[]).unwrap().start_queue.is_none(),
            "no queue unless set"
        );
    }

    #[test]
    fn service_account_lists_must_be_emails_and_the_error_names_the_variable() {
        let oidc = ["--push-auth", "oidc", "--push-audience", "https://a"];
        for (flag, var) in [
            ("--push-service-accounts", "PUSH_SERVICE_ACCOUNTS"),
            ("--invoker-service-accounts", "INVOKER_SERVICE_ACCOUNTS"),
        ] {
            for bad in ["copy-push", "https://x@y.com", "a@b", "a@@b.com"] {
                let mut args = oidc.to_vec();
                if var == "INVOKER_SERVICE_ACCOUNTS" {
                    args.extend(["--push-service-accounts", "s@p.iam.gserviceaccount.com"]);
                }
                let list = format!("ok@p.iam.gserviceaccount.com,{bad}");
                args.extend([flag, list.as_str()]);
                let e = config(&args).unwrap_err().to_string();
                assert!(
                    e.contains(var) && e.contains(&format!("{bad:?} is not an email")),
                    "{bad}: {e}"
                );
            }
        }
    }

    #[test]
    fn callbacks_without_a_signing_secret_warn_at_start() {
        let unsigned = config(&[
            "--push-auth",
            "none",
            "--callback-allowed-hosts",
            "hooks.example.com",
        ])
        .unwrap();
        let w = crate::cli::serve::startup_warnings(&unsigned);
        assert!(
            w.iter()
                .any(|w| w.contains("CALLBACK_SIGNING_SECRET is not")),
            "{w:?}"
        );
        let signed = config(&[
            "--push-auth",
            "none",
            "--callback-allowed-hosts",
            "hooks.example.com",
            "--callback-signing-secret",
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        ])
        .unwrap();
        assert!(
            !crate::cli::serve::startup_warnings(&signed)
                .iter()
                .any(|w| w.contains("CALLBACK_SIGNING_SECRET")),
        );
    }
}

#[cfg(test)]
mod host_tests {
    use super::host_mistake;

    #[test]
    fn callback_allowed_hosts_must_be_bare_host_names_and_the_error_says_what_to_list() {
        assert_eq!(host_mistake("hooks.example.com"), None);
        assert_eq!(host_mistake("127.0.0.1"), None);
        let cases = [
            (
                "https://hooks.example.com",
                "has a scheme",
                "\"hooks.example.com\"",
            ),
            (
                "hooks.example.com:443",
                "has a port",
                "\"hooks.example.com\"",
            ),
            (
                "hooks.example.com/copy",
                "has a path",
                "\"hooks.example.com\"",
            ),
            (
                "hooks example.com",
                "is not a host name",
                "hooks.example.com",
            ),
            (
                "-bad.example.com",
                "is not a host name",
                "hooks.example.com",
            ),
        ];
        for (entry, why, fix) in cases {
            let e = host_mistake(entry).unwrap_or_else(|| panic!("{entry} accepted"));
            assert!(e.contains(why) && e.contains(fix), "{entry}: {e}");
        }
    }
}
