//! The CLI under CI (issue 29): a batch whose `request_id` repeats, input over the request
//! limit (an endless line from a file or a pipe), and SIGTERM, which ends a command as Ctrl-C
//! does (DESIGN.md §6).

use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::Child;

use crate::bin;
use crate::helpers::{Knobs, SRC, TestApp, emulator, request, spawn_app};
use crate::publish::{cli, only_a_sentinel_arrives, requests_inbox};

/// `copy-worker ARGS` against the test's emulator project, stdout and stderr piped.
pub fn spawn_cli(app: &TestApp, args: &[&str], stdin: Stdio) -> Child {
    bin::command_for(app, args)
        .stdin(stdin)
        .spawn()
        .expect("spawn copy-worker")
}

pub fn sigterm(child: &Child) {
    bin::signal(child.id().expect("running"), "TERM");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_whose_request_id_repeats_is_refused_naming_the_lines_and_nothing_is_published() {
    let app = spawn_app("in-dup", Knobs::default()).await;
    let seen = requests_inbox(&app).await;
    let text = format!(
        "{}\n{}\n{}\n",
        request("dup-1", "target-dup-a"),
        request("dup-2", "target-dup-b"),
        request("dup-1", "target-dup-c"),
    );
    let run = cli(&app, "publish", &["--file", "-"], Some(&text), &[]).await;
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stdout.is_empty(), "{}", run.stdout);
    assert!(
        run.stderr
            .contains(r#"line 3: request_id "dup-1" repeats line 1"#)
            && run.stderr.contains("nothing was published"),
        "{}",
        run.stderr
    );
    only_a_sentinel_arrives(&app, &seen).await;
}

/// `publish --file /dev/zero` once grew to 11 GB. An endless line, from a file or a pipe, is
/// refused by its number with exit 2 once it passes the 64 KiB request limit (DESIGN.md §3).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endless_line_from_a_file_or_a_pipe_is_refused_by_number_with_exit_2() {
    let app = spawn_app("in-endless", Knobs::default()).await;
    let file = cli(&app, "publish", &["--file", "/dev/zero"], None, &[]).await;
    let mut child = spawn_cli(&app, &["publish", "--file", "-"], Stdio::piped());
    let mut pipe = child.stdin.take().unwrap();
    // Feeds zeros until the command exits and the pipe breaks.
    let feeder = tokio::spawn(async move {
        let chunk = vec![0u8; 1 << 16];
        let mut sent = 0usize;
        while pipe.write_all(&chunk).await.is_ok() {
            sent += chunk.len();
        }
        sent
    });
    let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("publish --file - ends on an endless line")
        .unwrap();
    let sent = feeder.await.unwrap();
    let piped = String::from_utf8_lossy(&out.stderr).into_owned();
    for (how, code, stderr) in [
        ("file", Some(file.code), file.stderr.as_str()),
        ("pipe", out.status.code(), piped.as_str()),
    ] {
        assert_eq!(code, Some(2), "{how}: {stderr}");
        assert!(
            stderr.contains("line 1: longer than 65536 bytes")
                && stderr.contains("nothing was published"),
            "{how}: {stderr}"
        );
    }
    assert!(out.stdout.is_empty());
    assert!(sent >= 1 << 16, "the pipe took {sent} bytes");
}

/// SIGTERM (CI cancellation, `timeout`) is Ctrl-C: `publish --wait` prints its summary and
/// the resume command and exits 3, and the only subscription it leaves is the one that
/// command reads, labelled for it (DESIGN.md §6).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_publish_wait_prints_the_resume_command_and_leaves_no_stray_subscription() {
    let app = spawn_app("in-term", Knobs::default()).await;
    app.copies_take(Duration::from_secs(600));
    let before = app.subscriptions().await;
    let args = [
        "publish",
        "--source-model",
        SRC,
        "--request-id",
        "term-1",
        "--wait",
        "--timeout",
        "5m",
    ];
    let mut child = spawn_cli(&app, &args, Stdio::null());
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = bin::next_line(&mut stdout, "the publish line").await;
    assert!(first.contains("term-1"), "{first}");
    while app.vertex.copies_started() == 0 {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    sigterm(&child);
    let mut rest = Vec::new();
    while let Some(l) = stdout.next_line().await.unwrap() {
        rest.push(l);
    }
    let out = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .expect("the waiter exits within 30 s of SIGTERM")
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{rest:?}\n{stderr}");
    let summary: Value = serde_json::from_str(rest.last().expect("a summary line")).unwrap();
    let s = &summary["summary"];
    assert_eq!(s["outcome"], "interrupted", "{summary}");
    assert_eq!(s["pending"], serde_json::json!(["term-1"]));
    let kept = s["subscription"].as_str().unwrap();
    let resume = s["resume"].as_str().unwrap();
    assert_eq!(
        resume,
        format!("copy-worker wait --subscription {kept} --request-id term-1")
    );
    assert!(
        stderr.contains("interrupted (SIGTERM)") && stderr.contains(resume),
        "{stderr}"
    );
    let after = app.subscriptions().await;
    let new: Vec<&String> = after.iter().filter(|s| !before.contains(s)).collect();
    assert_eq!(new, [kept], "only the kept subscription is new: {after:?}");
}

/// SIGTERM stops `events` as Ctrl-C does: exit 0, and its subscription is deleted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_events_and_deletes_its_subscription() {
    let app = spawn_app("in-term-ev", Knobs::default()).await;
    let before = app.subscriptions().await;
    let mut child = spawn_cli(&app, &["events", "--follow"], Stdio::null());
    let mut stderr = BufReader::new(child.stderr.take().unwrap()).lines();
    let reading = bin::next_line(&mut stderr, "events starts").await;
    assert!(reading.contains("reading"), "{reading}");
    assert!(
        app.subscriptions().await.len() > before.len(),
        "its subscription exists"
    );
    sigterm(&child);
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("events exits within 30 s of SIGTERM")
        .unwrap();
    assert_eq!(status.code(), Some(0));
    assert_eq!(app.subscriptions().await, before);
}

/// A port nothing listens on.
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// Runs the binary with `args` and `env` and no emulator or Vertex AI endpoint of the test's:
/// (exit code, stdout, stderr).
async fn run(args: Vec<String>, env: Vec<(&'static str, String)>) -> (Option<i32>, String, String) {
    let out = bin::command(&args)
        .env_remove("PUBSUB_EMULATOR_HOST")
        .env_remove("VERTEX_ENDPOINT")
        .env("GOOGLE_CLOUD_PROJECT", "my-proj-123")
        .envs(env)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(60), out)
        .await
        .expect("the command gives up")
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// doctor with both endpoints dead: one failed Pub/Sub check and one failed Vertex AI check,
/// naming both variables.
async fn assert_doctor_names_both_dead_endpoints(dead: &str) {
    let args = ["doctor", "--push-auth", "none", "--location", "us-central1"];
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let env = vec![
        ("PUBSUB_EMULATOR_HOST", dead.to_owned()),
        ("VERTEX_ENDPOINT", format!("http://{dead}")),
        ("COPY_START_QUEUE", crate::helpers::START_QUEUE.to_owned()),
        ("COPY_POLL_QUEUE", crate::helpers::POLL_QUEUE.to_owned()),
        ("TASKS_URL", "http://127.0.0.1:8080".to_owned()),
        // Unreachable too: the queues' rates are then unknown, never a third failure.
        ("CLOUD_TASKS_ENDPOINT", format!("http://{dead}")),
    ];
    let (code, stdout, _) = run(args, env).await;
    assert_eq!(code, Some(1), "{stdout}");
    let failed: Vec<&str> = stdout.lines().filter(|l| l.starts_with("fail")).collect();
    assert_eq!(failed.len(), 2, "{stdout}");
    assert!(
        failed[0].contains("(set by PUBSUB_EMULATOR_HOST)"),
        "{stdout}"
    );
    assert!(failed[1].contains("cannot reach Vertex AI") && failed[1].contains("VERTEX_ENDPOINT"));
}

/// An emulator that is not there is one line, naming it and the variable or flag that set it,
/// for every command that connects; `doctor` reports it as one failed check instead of one
/// per topic and subscription after minutes of retries.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_endpoint_is_one_line_naming_it_and_where_its_value_came_from() {
    let dead = format!("127.0.0.1:{}", closed_port());
    let by_var = vec![("PUBSUB_EMULATOR_HOST", dead.clone())];
    let publish = [
        "publish",
        "--source-model",
        SRC,
        "--destination-project",
        "dst-proj",
    ];
    for args in [
        &publish[..],
        &["wait", "--request-id", "r1"][..],
        &["events", "--idle-timeout", "1s"][..],
        &["status", "r1"][..],
        &["replay"][..],
    ] {
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        let (code, _, stderr) = run(args.clone(), by_var.clone()).await;
        assert_eq!(code, Some(4), "{args:?}: {stderr}");
        let want = format!(
            "cannot reach the Pub/Sub emulator at {dead} (set by PUBSUB_EMULATOR_HOST): connection refused"
        );
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.contains(&want), "{args:?}: {stderr}");
    }
    // `serve` too, with a configuration that is otherwise complete: exit 4 at once, not a
    // worker that starts and fails every delivery.
    let serve_env = vec![
        ("PUBSUB_EMULATOR_HOST", dead.clone()),
        ("PUSH_AUTH", "none".to_owned()),
        ("PORT", "0".to_owned()),
        ("COPY_START_QUEUE", crate::helpers::START_QUEUE.to_owned()),
        ("COPY_POLL_QUEUE", crate::helpers::POLL_QUEUE.to_owned()),
        ("TASKS_URL", "http://127.0.0.1:8080".to_owned()),
    ];
    let t0 = std::time::Instant::now();
    let (code, _, stderr) = run(vec!["serve".into()], serve_env).await;
    assert_eq!(code, Some(4), "{stderr}");
    assert!(t0.elapsed() < Duration::from_secs(10), "{:?}", t0.elapsed());
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(
        lines[0].contains(&format!(
            "cannot reach the Pub/Sub emulator at {dead} (set by PUBSUB_EMULATOR_HOST)"
        )),
        "{stderr}"
    );
    // Given as a flag, the flag is named.
    let mut args: Vec<String> = publish.iter().map(|a| a.to_string()).collect();
    args.extend(["--pubsub-emulator-host".into(), dead.clone()]);
    let (code, _, stderr) = run(args, vec![]).await;
    assert_eq!(code, Some(4), "{stderr}");
    assert!(
        stderr.contains("(set by --pubsub-emulator-host)")
            && !stderr.contains("set PUBSUB_EMULATOR_HOST"),
        "{stderr}"
    );
    assert_doctor_names_both_dead_endpoints(&dead).await;
}

/// `serve` on a port that is taken says so in one line that names PORT and the port.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_on_a_port_in_use_says_so_once() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let out = bin::command(["serve"])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("PUSH_AUTH", "none")
        .env("GOOGLE_CLOUD_PROJECT", "copy-worker-demo")
        .env("PUBSUB_EMULATOR_HOST", emulator().host())
        .env("COPY_START_QUEUE", crate::helpers::START_QUEUE)
        .env("COPY_POLL_QUEUE", crate::helpers::POLL_QUEUE)
        .env("TASKS_URL", "http://127.0.0.1:8080")
        .env("PORT", &port)
        .env("LOG_FORMAT", "json")
        .output();
    let out = tokio::time::timeout(Duration::from_secs(60), out)
        .await
        .expect("serve gives up")
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    // A configuration problem (PORT), nothing was done: exit 2 (DESIGN.md §6).
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    let line = stderr
        .lines()
        .find(|l| l.starts_with("copy-worker: "))
        .unwrap_or_else(|| panic!("no error line: {stderr}"));
    assert!(
        line.contains(&format!("PORT: cannot listen on {port}")),
        "{line}"
    );
    assert_eq!(line.matches("Address already in use").count(), 1, "{line}");
    drop(taken);
}

/// `doctor --publisher` checks the publisher's side and publishes nothing. The emulator has no
/// IAM API (testIamPermissions answers UNIMPLEMENTED), so the publish grant is `unknown`, never
/// `ok`; the token and federation links need the real services (unit tests cover how a failed
/// token is named).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_publisher_checks_the_topic_and_publishes_nothing() {
    let app = spawn_app("in-doc-pub", Knobs::default()).await;
    let seen = requests_inbox(&app).await;
    let run = cli(&app, "doctor", &["--publisher", "--json"], None, &[]).await;
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let report: Value = serde_json::from_str(&run.stdout).unwrap();
    let checks = report["checks"].as_array().unwrap();
    let find = |what: &str| {
        checks
            .iter()
            .find(|c| c["subject"] == "topic copy-requests" && c["check"] == what)
            .unwrap_or_else(|| panic!("no {what} check: {report}"))
    };
    assert_eq!(find("exists")["status"], "ok", "{report}");
    assert_eq!(find("publish")["status"], "unknown", "{report}");
    assert_eq!(checks.len(), 2, "only the publisher's checks: {report}");
    only_a_sentinel_arrives(&app, &seen).await;
    let missing = ["--publisher", "--requests-topic", "no-such-topic"];
    let run = cli(&app, "doctor", &missing, None, &[]).await;
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert!(
        run.stdout.contains("no-such-topic does not exist"),
        "{}",
        run.stdout
    );
}

/// `doctor` with no `CLOUD_TASKS_ENDPOINT`, off Google Cloud and without credentials: the
/// queues' rates are read from the real endpoint, whose token never comes. It gives up within
/// seconds (it took about a minute), and says which endpoint and why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_gives_up_on_the_queues_within_seconds_when_no_token_comes() {
    let dead = format!("127.0.0.1:{}", closed_port());
    // An empty HOME: no gcloud application-default credentials to find.
    let home = std::env::temp_dir().join(format!("doctor-no-creds-{}", std::process::id()));
    std::fs::create_dir_all(&home).unwrap();
    let out = bin::command(["doctor", "--push-auth", "none", "--location", "us-central1"])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", &home)
        .env("GOOGLE_CLOUD_PROJECT", "my-proj-123")
        .env("PUBSUB_EMULATOR_HOST", &dead)
        .env("VERTEX_ENDPOINT", format!("http://{dead}"))
        .env("COPY_START_QUEUE", crate::helpers::START_QUEUE)
        .env("COPY_POLL_QUEUE", crate::helpers::POLL_QUEUE)
        .env("TASKS_URL", "http://127.0.0.1:8080")
        .output();
    let t0 = std::time::Instant::now();
    let out = tokio::time::timeout(Duration::from_secs(60), out)
        .await
        .expect("doctor gives up")
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        t0.elapsed() < Duration::from_secs(20),
        "{:?}: {stdout}",
        t0.elapsed()
    );
    let queues = stdout
        .lines()
        .find(|l| l.contains("quota: headroom"))
        .unwrap_or_else(|| panic!("a queue line: {stdout}"));
    assert!(
        queues.starts_with("unknown")
            && queues.contains(
                "https://cloudtasks.googleapis.com (the default; CLOUD_TASKS_ENDPOINT is not set)"
            ),
        "{queues}"
    );
}
