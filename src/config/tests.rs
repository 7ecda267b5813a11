//! Unit tests of [`Config::from_args`]: what each setting refuses, and the warnings at start.

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

/// A full copy-start queue name.
const QUEUE: &str = "projects/p/locations/us-central1/queues/copy-starts";

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
fn a_copy_start_queue_must_be_a_full_queue_name() {
    refused(&[
        (&["--copy-start-queue", "copy-starts"], "COPY_START_QUEUE"),
        (
            &["--copy-start-queue", "projects/p/queues/q"],
            "COPY_START_QUEUE",
        ),
    ]);
}

#[test]
fn a_copy_start_queue_needs_an_http_url() {
    refused(&[
        (&["--copy-start-queue", QUEUE], "COPY_START_URL"),
        (
            &[
                "--copy-start-queue",
                QUEUE,
                "--copy-start-url",
                "svc.run.app",
            ],
            "COPY_START_URL",
        ),
    ]);
}

#[test]
fn a_copy_start_queue_needs_an_account_that_is_an_email() {
    refused(&[(
        &[
            "--copy-start-queue",
            QUEUE,
            "--copy-start-url",
            "https://svc",
            "--copy-start-service-account",
            "push",
        ],
        "COPY_START_SERVICE_ACCOUNT",
    )]);
}

#[test]
fn a_copy_start_queue_s_url_and_account_must_be_a_push_audience_and_a_push_account() {
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
        let mut args = vec!["--copy-start-queue", QUEUE];
        args.extend(extra);
        let e = with_push_auth(&args).unwrap_err().to_string();
        assert!(e.contains(var) && e.contains("must be one of"), "{e}");
    }
}

#[test]
fn a_copy_start_queue_s_account_defaults_to_the_first_push_account_and_none_is_set_by_default() {
    let c = with_push_auth(&[
        "--copy-start-queue",
        QUEUE,
        "--copy-start-url",
        "https://svc",
    ])
    .unwrap();
    let opts = c.start_queue.expect("a queue");
    assert_eq!(opts.queue, QUEUE);
    assert_eq!(
        opts.service_account, "push@p.iam.gserviceaccount.com",
        "the first push account"
    );
    assert!(
        with_push_auth(&[]).unwrap().start_queue.is_none(),
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
