//! Unit tests of [`Config::from_args`]: what each setting refuses, and the warnings at start.

use super::*;
use clap::Parser;

/// `args_override_self`: a test's own flags override the queue defaults of [`config`].
#[derive(Parser)]
#[command(args_override_self = true)]
struct Cli {
    #[command(flatten)]
    serve: ServeArgs,
}

/// A full copy-start queue name.
const QUEUE: &str = "projects/p/locations/us-central1/queues/copy-starts";
/// A full poll queue name.
const POLLS: &str = "projects/p/locations/us-central1/queues/copy-polls";
/// The tasks' account.
const TASKS_ACCOUNT: &str = "tasks@p.iam.gserviceaccount.com";

/// `args` after the queues every configuration needs.
fn config(args: &[&str]) -> Result<Config, ConfigError> {
    let mut argv = vec![
        "t",
        "--project",
        "my-proj",
        "--copy-start-queue",
        QUEUE,
        "--copy-poll-queue",
        POLLS,
        "--tasks-url",
        "https://svc",
        "--tasks-service-account",
        TASKS_ACCOUNT,
    ];
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
    refused(&[(&["--push-jwks-url", "file:///etc/jwks"], "PUSH_JWKS_URL")]);
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
    assert!(startup_warnings(&c).is_empty());
    let none = config(&["--push-auth", "none"]).unwrap();
    assert_eq!(none.push_auth, PushAuthMode::None);
    let w = startup_warnings(&none);
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

/// The configuration with OIDC push auth for `https://svc` and one push account, plus `extra`.
fn with_push_auth(extra: &[&str]) -> Result<Config, ConfigError> {
    let mut args = vec![
        "--push-auth",
        "oidc",
        "--push-audience",
        "https://svc",
        "--push-service-accounts",
        "push@p.iam.gserviceaccount.com",
    ];
    args.extend_from_slice(extra);
    config(&args)
}

/// Each of `cases` is refused, and the error names its variable.
fn refused(cases: &[(&[&str], &str)]) {
    for (extra, var) in cases {
        let e = with_push_auth(extra).unwrap_err().to_string();
        assert!(e.contains(var), "{extra:?}: {e}");
    }
}

#[test]
fn both_queues_must_be_full_queue_names() {
    refused(&[
        (&["--copy-start-queue", "copy-starts"], "COPY_START_QUEUE"),
        (
            &["--copy-start-queue", "projects/p/queues/q"],
            "COPY_START_QUEUE",
        ),
        (&["--copy-start-queue", ""], "COPY_START_QUEUE"),
        (&["--copy-poll-queue", "copy-polls"], "COPY_POLL_QUEUE"),
        (&["--copy-poll-queue", ""], "COPY_POLL_QUEUE"),
    ]);
}

#[test]
fn the_tasks_need_an_http_url_and_an_account_that_is_an_email() {
    refused(&[
        (&["--tasks-url", "svc.run.app"], "TASKS_URL"),
        (
            &["--tasks-service-account", "push"],
            "TASKS_SERVICE_ACCOUNT",
        ),
        (&["--tasks-service-account", ""], "TASKS_SERVICE_ACCOUNT"),
    ]);
    // Without push authentication the tasks carry no token, so no account is needed.
    let c = config(&["--push-auth", "none", "--tasks-service-account", ""]).unwrap();
    assert_eq!(c.queues.service_account, None);
}

#[test]
fn the_queues_and_their_account_are_what_was_set() {
    let c = with_push_auth(&[]).unwrap();
    assert_eq!(c.queues.starts, QUEUE);
    assert_eq!(c.queues.polls, POLLS);
    assert_eq!(c.queues.target_url, "https://svc");
    assert_eq!(
        c.queues.service_account.as_deref(),
        Some(TASKS_ACCOUNT),
        "the tasks' own account, not a push account"
    );
    assert!(!c.operations_drain, "the upgrade route is off unless set");
    let drain = with_push_auth(&["--copy-operations-drain", "true"]).unwrap();
    assert!(drain.operations_drain);
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
    let w = startup_warnings(&unsigned);
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
        !startup_warnings(&signed)
            .iter()
            .any(|w| w.contains("CALLBACK_SIGNING_SECRET")),
    );
}

/// `--copy-max-duration` and `--copy-max-attempts` reach the stages' settings (the stages'
/// unit tests take them from there; `pipeline::poll_stage` ends a copy past the duration).
#[test]
fn the_copy_limits_reach_the_stages_settings() {
    let c = with_push_auth(&["--copy-max-duration", "4s", "--copy-max-attempts", "2"]).unwrap();
    assert_eq!(c.settings.max_duration, std::time::Duration::from_secs(4));
    assert_eq!(c.settings.max_attempts, 2);
    refused(&[(&["--copy-max-duration", "0s"], "COPY_MAX_DURATION")]);
}
