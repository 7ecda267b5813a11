//! `copy-worker publish` as a subprocess against the emulator, with the worker and the Vertex
//! fake answering for `--wait` (DESIGN.md §6).

use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use testkit::pubsub::Inbox;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};

use crate::bin;
use crate::helpers::{Knobs, SRC, TestApp, emulator, request, spawn_app};

const MISSING_SRC: &str = "projects/src-proj/locations/us-central1/models/404404";

/// What one `copy-worker publish` run left behind.
pub(crate) struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Each stdout line parsed as JSON.
    pub fn lines(&self) -> Vec<Value> {
        self.stdout
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
            .collect()
    }

    /// The stdout lines before the summary: publish lines and events.
    pub fn events(&self) -> Vec<Value> {
        let mut lines = self.lines();
        if lines.last().is_some_and(|l| l.get("summary").is_some()) {
            lines.pop();
        }
        lines
    }

    /// The `--wait` summary: the last stdout line, `{"summary":{…}}`.
    pub fn summary(&self) -> Value {
        let lines = self.lines();
        let last = lines
            .last()
            .unwrap_or_else(|| panic!("no stdout: {}", self.stderr));
        assert!(last.get("summary").is_some(), "no summary: {}", self.stdout);
        last["summary"].clone()
    }
}

/// `copy-worker publish ARGS` wired to the test's emulator project, with `stdin` piped in.
async fn publish_cli(
    app: &TestApp,
    args: &[&str],
    stdin: Option<&str>,
    env: &[(&str, &str)],
) -> Run {
    cli(app, "publish", args, stdin, env).await
}

/// `copy-worker SUBCOMMAND ARGS` wired to the test's emulator project.
pub(crate) async fn cli(
    app: &TestApp,
    subcommand: &str,
    args: &[&str],
    stdin: Option<&str>,
    env: &[(&str, &str)],
) -> Run {
    let mut cmd = bin::command_for(app, [subcommand]);
    cmd.args(args)
        .envs(env.iter().copied())
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
    let mut child = cmd.spawn().expect("spawn copy-worker publish");
    if let Some(text) = stdin {
        let mut pipe = child.stdin.take().unwrap();
        pipe.write_all(text.as_bytes()).await.unwrap();
    }
    let out = tokio::time::timeout(Duration::from_secs(120), child.wait_with_output())
        .await
        .expect("copy-worker publish finished within 120 s")
        .unwrap();
    Run {
        code: out.status.code().expect("exit code"),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

/// The CLI's own Pub/Sub connection, to the test emulator.
pub(crate) fn emulator_connection() -> copy_worker::clients::Connection {
    copy_worker::clients::Connection {
        emulator_host: Some(emulator().host()),
        credentials: None,
    }
}

/// A pull subscription on copy-requests, opened before publishing: it sees every request.
pub(crate) async fn requests_inbox(app: &TestApp) -> Inbox {
    app.topology
        .create_pull_subscription("seen-requests", "copy-requests")
        .await
        .unwrap();
    Inbox::open(&app.topology, "seen-requests").await.unwrap()
}

async fn waiters_subscription(app: &TestApp) -> &'static str {
    app.topology
        .create_pull_subscription("waiters", "copy-completions")
        .await
        .unwrap();
    "waiters"
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_from_flags_sends_the_normalised_request_with_request_id_and_traceparent() {
    let app = spawn_app("pub-flags", Knobs::default()).await;
    let seen = requests_inbox(&app).await;
    let tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    let run = publish_cli(
        &app,
        &[
            "--source-model",
            SRC,
            "--destination-location",
            "europe-west4",
            "--destination-model-id",
            "target-flags",
            "--request-id",
            "flags-1",
            "--context",
            "pipeline=it",
            "--context",
            "commit=a1b2",
        ],
        None,
        &[("TRACEPARENT", tp)],
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let lines = run.lines();
    assert_eq!(lines.len(), 1, "{}", run.stdout);
    assert_eq!(lines[0]["request_id"], "flags-1");
    let message_id = lines[0]["message_id"].as_str().unwrap().to_owned();

    let msg = seen
        .wait_for(1, Duration::from_secs(20), |m| m.message_id == message_id)
        .await
        .unwrap()
        .remove(0);
    assert_eq!(msg.attribute("request_id"), Some("flags-1"));
    assert_eq!(msg.attribute("traceparent"), Some(tp));
    let data = msg.json();
    assert_eq!(data["source_model"], SRC);
    assert_eq!(
        data["destination"]["project"], "dst-proj",
        "TARGET_PROJECT applied"
    );
    assert_eq!(data["destination"]["model_id"], "target-flags");
    assert_eq!(data["context"]["commit"], "a1b2");
    let ev = app.completion_of("flags-1", 1, 60).await.remove(0).json();
    assert_eq!(
        ev["status"], "succeeded",
        "the worker accepts what publish sent"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_from_json_lines_on_stdin_prints_one_line_per_request_in_input_order() {
    let app = spawn_app("pub-jsonl", Knobs::default()).await;
    let seen = requests_inbox(&app).await;
    let text = format!(
        "{}\n\n{}\n{}\n",
        request("jl-1", "target-jl-1"),
        request("jl-2", "target-jl-2"),
        // Bare id resolved with SOURCE_PROJECT/LOCATION, request id derived.
        r#"{"source_model":"1001","destination":{"model_id":"target-jl-3"}}"#,
    );
    let run = publish_cli(
        &app,
        &["--file", "-"],
        Some(&text),
        &[("SOURCE_PROJECT", "src-proj"), ("LOCATION", "us-central1")],
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let lines = run.lines();
    assert_eq!(lines.len(), 3, "{}", run.stdout);
    assert_eq!(lines[0]["request_id"], "jl-1");
    assert_eq!(lines[1]["request_id"], "jl-2");
    let derived = lines[2]["request_id"].as_str().unwrap();
    assert_eq!(derived.len(), 32, "derived request id: {derived}");

    let all = seen
        .wait_for(3, Duration::from_secs(20), |_| true)
        .await
        .unwrap();
    for line in &lines {
        let m = all
            .iter()
            .find(|m| Some(m.message_id.as_str()) == line["message_id"].as_str())
            .unwrap_or_else(|| panic!("{line} was not received"));
        assert_eq!(m.attribute("request_id"), line["request_id"].as_str());
    }
    let third = all
        .iter()
        .find(|m| m.attribute("request_id") == Some(derived))
        .unwrap();
    assert_eq!(third.json()["source_model"], SRC);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_invalid_line_rejects_the_whole_file_and_publishes_nothing() {
    let app = spawn_app("pub-invalid", Knobs::default()).await;
    let seen = requests_inbox(&app).await;
    let dir = std::env::temp_dir().join(format!("publish-invalid-{}", app.topology.project));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("requests.jsonl");
    let bad = format!(r#"{{"source_model":"{SRC}","destination":{{"model_id":"Not_Valid!"}}}}"#);
    std::fs::write(
        &file,
        format!("{}\n{bad}\n", request("bad-file-1", "target-ok")),
    )
    .unwrap();

    let run = publish_cli(&app, &["--file", file.to_str().unwrap()], None, &[]).await;
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stdout.is_empty(), "{}", run.stdout);
    assert!(
        run.stderr
            .contains("line 2: destination.model_id: must match"),
        "{}",
        run.stderr
    );

    only_a_sentinel_arrives(&app, &seen).await;
}

/// Publishes a sentinel request and asserts that `seen` gets it and nothing else: proof that
/// what ran before published nothing.
pub(crate) async fn only_a_sentinel_arrives(app: &TestApp, seen: &Inbox) {
    let sentinel = publish_cli(
        app,
        &["--source-model", SRC, "--request-id", "sentinel"],
        None,
        &[],
    )
    .await;
    assert_eq!(sentinel.code, 0, "{}", sentinel.stderr);
    seen.of_request("sentinel", 1, Duration::from_secs(20))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let ids: Vec<_> = seen
        .snapshot()
        .iter()
        .map(|m| m.attribute("request_id").map(str::to_owned))
        .collect();
    assert_eq!(ids, vec![Some("sentinel".to_owned())]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_exits_0_and_prints_the_event_when_the_copy_succeeds() {
    let app = spawn_app("pub-wait-ok", Knobs::default()).await;
    let run = publish_cli(
        &app,
        &[
            "--source-model",
            SRC,
            "--destination-model-id",
            "target-wait-ok",
            "--request-id",
            "wait-ok",
            "--wait",
            "--timeout",
            "90s",
        ],
        None,
        &[],
    )
    .await;
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let lines = run.events();
    assert_eq!(lines.len(), 2, "{}", run.stdout);
    let summary = run.summary();
    assert_eq!(summary["outcome"], "succeeded", "{summary}");
    assert_eq!(
        (summary["requests"].as_u64(), summary["succeeded"].as_u64()),
        (Some(1), Some(1))
    );
    assert!(summary.get("resume").is_none(), "{summary}");
    assert_eq!(lines[0]["request_id"], "wait-ok");
    assert!(lines[0]["message_id"].is_string());
    assert_eq!(lines[1]["request_id"], "wait-ok");
    assert_eq!(lines[1]["status"], "succeeded");
    assert_eq!(
        lines[1]["destination_model"],
        testkit::vertex::numbered("projects/dst-proj/locations/us-central1/models/target-wait-ok")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_exits_1_when_one_copy_fails_and_another_is_rejected_by_the_worker() {
    let app = spawn_app("pub-wait-fail", Knobs::default()).await;
    // Publish accepts any https callback host; this worker allows none, so it rejects.
    let text = format!(
        "{}\n{}\n{}\n",
        request("wf-ok", "target-wf-ok"),
        format_args!(r#"{{"request_id":"wf-missing","source_model":"{MISSING_SRC}"}}"#),
        format_args!(
            r#"{{"request_id":"wf-hook","source_model":"{SRC}","callback_url":"https://hooks.example.com/done"}}"#
        ),
    );
    let run = publish_cli(
        &app,
        &["--file", "-", "--wait", "--timeout", "90s"],
        Some(&text),
        &[],
    )
    .await;
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    let events: Vec<Value> = run.events().into_iter().skip(3).collect();
    let summary = run.summary();
    assert_eq!(summary["outcome"], "failed", "{summary}");
    for (k, n) in [
        ("succeeded", 1),
        ("failed", 1),
        ("rejected", 1),
        ("requests", 3),
    ] {
        assert_eq!(summary[k], n, "{k}: {summary}");
    }
    let status_of = |id: &str| {
        let found: Vec<&Value> = events.iter().filter(|e| e["request_id"] == id).collect();
        assert_eq!(found.len(), 1, "one event for {id}: {}", run.stdout);
        found[0]["status"].as_str().unwrap().to_owned()
    };
    assert_eq!(status_of("wf-ok"), "succeeded");
    assert_eq!(status_of("wf-missing"), "failed");
    assert_eq!(status_of("wf-hook"), "rejected");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_exits_3_and_names_the_pending_request_when_the_timeout_passes() {
    let app = spawn_app("pub-wait-slow", Knobs::default()).await;
    app.copies_take(Duration::from_secs(600));
    let started = std::time::Instant::now();
    let run = publish_cli(
        &app,
        &[
            "--source-model",
            SRC,
            "--request-id",
            "wait-slow",
            "--wait",
            "--timeout",
            "4s",
        ],
        None,
        &[],
    )
    .await;
    assert_eq!(run.code, 3, "{}\n{}", run.stdout, run.stderr);
    assert_eq!(
        run.events().len(),
        1,
        "only the publish line: {}",
        run.stdout
    );
    let summary = run.summary();
    assert_eq!(summary["outcome"], "timed_out", "{summary}");
    assert_eq!(summary["pending"], serde_json::json!(["wait-slow"]));
    let kept = summary["subscription"].as_str().unwrap();
    assert_eq!(
        summary["resume"],
        format!("copy-worker wait --subscription {kept} --request-id wait-slow")
    );
    assert!(
        app.subscriptions().await.iter().any(|s| s == kept),
        "the waiting subscription is kept for `wait`"
    );
    assert!(
        run.stderr.contains("timed out") && run.stderr.contains("wait-slow"),
        "{}",
        run.stderr
    );
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
}

/// `--completions-subscription` (DESIGN.md §7): a shared subscription. The waiter acks its
/// own events and hands the others back (nack), so they stay for whoever owns them. With
/// several waiters on one subscription they bounce between them (the reason the default is a
/// subscription of one's own); one waiter per shared subscription is what the README advises.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_subscription_waiter_gets_its_events_and_hands_back_the_others() {
    let app = spawn_app("pub-shared", Knobs::default()).await;
    let sub = waiters_subscription(&app).await;
    // An event nobody waits for, already on the shared subscription.
    app.publish(&request("shared-other", "target-shared-other"))
        .await;
    app.completion_of("shared-other", 1, 60).await;
    let text = format!(
        "{}\n{}\n",
        request("shared-1", "target-shared-1"),
        request("shared-2", "target-shared-2")
    );
    let args = [
        "--file",
        "-",
        "--wait",
        "--completions-subscription",
        sub,
        "--timeout",
        "90s",
    ];
    let run = publish_cli(&app, &args, Some(&text), &[]).await;
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let events: Vec<Value> = run.events().into_iter().skip(2).collect();
    let mut ids: Vec<&str> = events
        .iter()
        .map(|e| e["request_id"].as_str().unwrap())
        .collect();
    ids.sort();
    assert_eq!(ids, ["shared-1", "shared-2"], "{}", run.stdout);
    assert!(events.iter().all(|e| e["status"] == "succeeded"));
    let (ours, _, others) = read_counts(&run.stderr);
    assert_eq!(ours, 2, "{}", run.stderr);
    assert!(
        others >= 1,
        "the other event was read and handed back: {}",
        run.stderr
    );

    // Handed back, not acked: it is still on the subscription for its owner. (The emulator
    // keeps the waiter's closed stream, which may take it again: end that stream first,
    // docs/reliability.md.)
    app.topology.release_closed_streams(sub).await.unwrap();
    let inbox = Inbox::open(&app.topology, sub).await.unwrap();
    inbox
        .of_request("shared-other", 1, Duration::from_secs(30))
        .await
        .expect("the other event is still there");
}

/// The default `--wait`: each waiter reads its own temporary subscription, acks everything it
/// reads and hands nothing back, so an event reaches each waiter at most once, whoever else
/// publishes; the subscriptions are gone afterwards (DESIGN.md §6).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiters_on_their_own_subscriptions_read_each_event_once_and_leave_none_behind() {
    let app = spawn_app("pub-own", Knobs::default()).await;
    app.copies_take(Duration::from_secs(2));
    let jsonl = |a: &str, b: &str| {
        format!(
            "{}\n{}\n",
            request(a, &format!("target-{a}")),
            request(b, &format!("target-{b}"))
        )
    };
    let (text_a, text_b) = (jsonl("own-a1", "own-a2"), jsonl("own-b1", "own-b2"));
    let wait = ["--file", "-", "--wait", "--timeout", "90s"];
    let lone = [
        "--source-model",
        SRC,
        "--destination-model-id",
        "target-own-c",
        "--request-id",
        "own-c",
    ];
    let (a, b, c) = tokio::join!(
        publish_cli(&app, &wait, Some(&text_a), &[]),
        publish_cli(&app, &wait, Some(&text_b), &[]),
        publish_cli(&app, &lone, None, &[]),
    );
    assert_eq!(c.code, 0, "{}", c.stderr);
    for (run, own) in [(&a, "own-a"), (&b, "own-b")] {
        assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
        let events: Vec<Value> = run.events().into_iter().skip(2).collect();
        let ids: Vec<&str> = events
            .iter()
            .map(|e| e["request_id"].as_str().unwrap())
            .collect();
        assert_eq!(ids.len(), 2, "{}", run.stdout);
        assert!(ids.iter().all(|id| id.starts_with(own)), "{}", run.stdout);
        let (ours, repeated, others) = read_counts(&run.stderr);
        assert_eq!(ours, 2, "{}", run.stderr);
        // 5 events in all: 3 of other requests, each read at most once; ours at most twice.
        assert!(
            others <= 3,
            "an event of another request came back: {}",
            run.stderr
        );
        assert!(repeated <= 2, "{}", run.stderr);
    }
    // The single publish that nobody waits for still reached the topic's other readers.
    app.completion_of("own-c", 1, 60).await;
    let left = app.subscriptions().await;
    assert!(
        !left.iter().any(|s| s.contains("copy-worker-wait-")),
        "temporary subscriptions left: {left:?}"
    );
}

/// The local emulator accepts a subscription filter but does not apply it: a waiter's own
/// subscription also gets events of other requests. This is why the waiter checks
/// `request_id` itself (`clients::temp_subscription`); on real Pub/Sub the filter drops them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_emulator_ignores_subscription_filters_so_the_waiter_checks_ids_itself() {
    use copy_worker::clients::{FilterBy, TempSubscription, WaiterTag};
    let app = spawn_app("pub-filter", Knobs::default()).await;
    let conn = emulator_connection();
    let topic = format!("projects/{}/topics/copy-completions", app.topology.project);
    let mine = ["mine".to_owned()];
    let by = FilterBy::RequestIds(&mine);
    let tag = WaiterTag::generate();
    let project = &app.topology.project;
    let sub =
        TempSubscription::for_waiter(&conn, &topic, project, &tag, by, Duration::from_secs(60))
            .await
            .unwrap();
    assert_eq!(sub.filter, r#"attributes.request_id = "mine""#);
    let short = sub.name.rsplit('/').next().unwrap().to_owned();
    let inbox = Inbox::open(&app.topology, &short).await.unwrap();
    app.topology
        .publish("copy-completions", b"{}", &[("request_id", "theirs")])
        .await
        .unwrap();
    let got = inbox
        .wait_for(1, Duration::from_secs(20), |_| true)
        .await
        .expect("the emulator delivers the filtered-out event");
    assert_eq!(got[0].attribute("request_id"), Some("theirs"));
    drop(inbox);
    sub.delete().await.unwrap();
    assert!(
        !app.subscriptions()
            .await
            .iter()
            .any(|s| s.ends_with(&short))
    );
}

/// `(ours, repeated, others)` from the waiter's summary line on stderr.
fn read_counts(stderr: &str) -> (usize, usize, usize) {
    let line = stderr
        .lines()
        .find(|l| l.contains(" events on "))
        .unwrap_or_else(|| panic!("no summary line: {stderr}"));
    let n = |marker: &str| -> usize {
        let before = &line[..line
            .find(marker)
            .unwrap_or_else(|| panic!("{marker}: {line}"))];
        before
            .rsplit([' ', ':'])
            .find(|w| !w.is_empty())
            .unwrap()
            .parse()
            .unwrap()
    };
    (n(" ours"), n(" repeated"), n(" of other requests"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishing_to_a_topic_that_does_not_exist_exits_4_and_prints_no_request() {
    let app = spawn_app("pub-no-topic", Knobs::default()).await;
    let run = publish_cli(
        &app,
        &["--topic", "no-such-topic", "--source-model", SRC],
        None,
        &[],
    )
    .await;
    assert_eq!(run.code, 4, "{}\n{}", run.stdout, run.stderr);
    assert!(run.stdout.is_empty(), "{}", run.stdout);
    assert!(run.stderr.contains("no-such-topic"), "{}", run.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_on_a_completions_topic_that_does_not_exist_exits_4_before_publishing() {
    let app = spawn_app("pub-no-ctopic", Knobs::default()).await;
    let seen = requests_inbox(&app).await;
    let run = publish_cli(
        &app,
        &[
            "--source-model",
            SRC,
            "--wait",
            "--completions-topic",
            "nope",
        ],
        None,
        &[],
    )
    .await;
    assert_eq!(run.code, 4, "{}\n{}", run.stdout, run.stderr);
    assert!(run.stdout.is_empty(), "{}", run.stdout);
    assert!(
        run.stderr.contains("topics/nope") && run.stderr.contains("nothing was published"),
        "{}",
        run.stderr
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(seen.snapshot().is_empty(), "a request was published");
}

/// `publish --wait` times out (exit 3) and keeps its subscription; the copy ends while nobody
/// waits; the summary's `resume` command (`copy-worker wait --subscription …`) still gets the
/// event, exits 0 and deletes the subscription (DESIGN.md §6).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_resumes_a_timed_out_publish_without_missing_the_event_in_between() {
    let app = spawn_app("pub-resume", Knobs::default()).await;
    app.copies_take(Duration::from_secs(6));
    let publish = [
        "--source-model",
        SRC,
        "--destination-model-id",
        "target-resume",
        "--request-id",
        "resume-1",
        "--wait",
        "--timeout",
        "2s",
    ];
    let run = publish_cli(&app, &publish, None, &[]).await;
    assert_eq!(run.code, 3, "{}\n{}", run.stdout, run.stderr);
    let summary = run.summary();
    let kept = summary["subscription"].as_str().unwrap().to_owned();
    let resume = summary["resume"].as_str().unwrap().to_owned();
    assert!(run.stderr.contains(&resume), "{}", run.stderr);
    // The copy ends, and its event is published, while nobody waits.
    app.completion_of("resume-1", 1, 60).await;
    let mut args: Vec<&str> = resume
        .strip_prefix("copy-worker wait ")
        .expect("a wait command")
        .split(' ')
        .collect();
    // The emulator keeps the first waiter's stream alive after its process exits, and that
    // stream takes the event (once, the CI's resumed wait saw nothing in 120 s); the real
    // service hands it to the next reader when the 10 s lease runs out. End that stream the
    // way testkit documents (docs/reliability.md), so the test is about the resume.
    app.topology.release_closed_streams(&kept).await.unwrap();
    args.extend(["--timeout", "60s"]);
    let run = cli(&app, "wait", &args, None, &[]).await;
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let events = run.events();
    assert_eq!(events.len(), 1, "{}", run.stdout);
    assert_eq!(
        (&events[0]["request_id"], &events[0]["status"]),
        (&Value::from("resume-1"), &Value::from("succeeded"))
    );
    assert_eq!(run.summary()["outcome"], "succeeded");
    assert!(
        !app.subscriptions().await.contains(&kept),
        "the kept subscription is deleted once every request has its event"
    );
    // Without ids there is nothing to wait for: a usage error that says what to give.
    let run = cli(&app, "wait", &[], None, &[]).await;
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("--request-id"), "{}", run.stderr);
}

/// Every client of a command shares the credentials checked at its start, so a command
/// fetches one token, not one per client: under workload identity federation each fetch is an
/// STS exchange. A local token endpoint (an `authorized_user` file's `token_uri`) counts the
/// fetches. Pub/Sub itself is out of reach here, so each command ends with exit 4 once its
/// retries (20 s) run out, and says that Pub/Sub was out of reach.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_fetches_one_token_for_all_its_clients() {
    // `events` checks, then creates its subscription (an admin client); `publish` checks,
    // then looks the topic up (an admin client) and publishes (a publisher).
    let events = ["events", "--idle-timeout", "1s"];
    let publish = [
        "publish",
        "--source-model",
        SRC,
        "--destination-project",
        "dst-proj",
    ];
    let (events, publish) = tokio::join!(token_fetches(&events), token_fetches(&publish));
    for (args, (code, fetches, stderr)) in [("events", events), ("publish", publish)] {
        assert_eq!(code, Some(4), "{args}: {stderr}");
        assert_eq!(fetches, 1, "{args} fetched one token: {stderr}");
        assert!(stderr.contains("out of reach"), "{args}: {stderr}");
    }
}

/// Runs `copy-worker args` against the real service's endpoints with credentials from a
/// local token endpoint; returns its exit code, the number of token fetches and its stderr.
async fn token_fetches(args: &[&str]) -> (Option<i32>, usize, String) {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let fetches = Arc::new(AtomicUsize::new(0));
    let counter = fetches.clone();
    let app = axum::Router::new().route(
        "/token",
        axum::routing::post(move || {
            counter.fetch_add(1, Ordering::SeqCst);
            async {
                axum::Json(serde_json::json!({
                    "access_token": "local-token",
                    "expires_in": 3600,
                    "token_type": "Bearer",
                }))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let file = std::env::temp_dir().join(format!("cw-adc-{}-{port}.json", std::process::id()));
    let adc = serde_json::json!({
        "type": "authorized_user",
        "client_id": "local",
        "client_secret": "local",
        "refresh_token": "local",
        "token_uri": format!("http://127.0.0.1:{port}/token"),
    });
    std::fs::write(&file, adc.to_string()).unwrap();
    let out = tokio::time::timeout(
        Duration::from_secs(90),
        bin::command(args)
            .env_remove("PUBSUB_EMULATOR_HOST")
            .env("GOOGLE_APPLICATION_CREDENTIALS", &file)
            .env("GOOGLE_CLOUD_PROJECT", "my-proj-123")
            .output(),
    )
    .await
    .expect("the command ends")
    .unwrap();
    let _ = std::fs::remove_file(&file);
    (
        out.status.code(),
        fetches.load(Ordering::SeqCst),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A broken credentials file is a setup problem: every Pub/Sub command stops at once (no
/// 20 s of retries), exit 2, with the file, the innermost cause and the fix (DESIGN.md §6,
/// "Credentials are checked first"). No emulator: the commands talk to the real service's
/// credentials chain.
#[tokio::test]
async fn broken_credentials_fail_at_once_naming_the_file_the_cause_and_the_fix() {
    let dir = std::env::temp_dir().join(format!("cw-creds-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("wif.json");
    std::fs::write(&file, r#"{"type":"external_account"}"#).unwrap();
    for args in [
        &[
            "publish",
            "--source-model",
            SRC,
            "--destination-project",
            "dst-proj",
        ][..],
        &["replay", "--dry-run"][..],
        &["events", "--idle-timeout", "1s"][..],
        &["wait", "--request-id", "r1"][..],
    ] {
        let started = std::time::Instant::now();
        let out = bin::command(args)
            .env_remove("PUBSUB_EMULATOR_HOST")
            .env("GOOGLE_APPLICATION_CREDENTIALS", &file)
            .env("GOOGLE_CLOUD_PROJECT", "my-proj-123")
            .output()
            .await
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains("no usable Google credentials")
                && stderr.contains(&format!(
                    "GOOGLE_APPLICATION_CREDENTIALS={}",
                    file.display()
                ))
                && stderr.contains("missing field `audience`")
                && stderr.contains("gcloud auth application-default login"),
            "{args:?}: {stderr}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{args:?} took {:?}",
            started.elapsed()
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// `--completions-subscription` must exist before the publish: a missing one stops the
/// command before anything is published (DESIGN.md §6).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_on_a_missing_shared_subscription_publishes_nothing() {
    let app = spawn_app("pub-nosub", Knobs::default()).await;
    let args = [
        "--source-model",
        SRC,
        "--request-id",
        "nosub-1",
        "--wait",
        "--completions-subscription",
        "nope-not-here",
    ];
    let run = publish_cli(&app, &args, None, &[]).await;
    assert_eq!(run.code, 4, "{}\n{}", run.stdout, run.stderr);
    assert!(run.stdout.is_empty(), "nothing published: {}", run.stdout);
    assert!(
        run.stderr.contains("nope-not-here")
            && run.stderr.contains("does not exist")
            && run.stderr.contains("nothing was published"),
        "{}",
        run.stderr
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        app.vertex.copies_started(),
        0,
        "no request reached the worker"
    );
}

/// `publish --wait` of one copy against `app`, its output piped.
fn spawn_publish_and_wait(app: &TestApp) -> tokio::process::Child {
    bin::command_for(
        app,
        [
            "publish",
            "--source-model",
            SRC,
            "--destination-model-id",
            "target-ctrlc",
            "--request-id",
            "ctrlc-1",
            "--wait",
            "--timeout",
            "5m",
        ],
    )
    .spawn()
    .unwrap()
}

/// Ctrl-C while waiting: exit 3, and the summary still comes, with the pending ids and the
/// command that carries on (DESIGN.md §6).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_during_wait_prints_a_partial_summary_and_exits_3() {
    let app = spawn_app("pub-ctrlc", Knobs::default()).await;
    app.copies_take(Duration::from_secs(600));
    let mut child = spawn_publish_and_wait(&app);
    let mut stdout = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let first = bin::next_line(&mut stdout, "the publish line").await;
    assert!(first.contains("ctrlc-1"), "{first}");
    // The copy is running: the waiter now waits on it.
    while app.vertex.copies_started() == 0 {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    bin::signal(child.id().unwrap(), "INT");
    let rest = tokio::time::timeout(Duration::from_secs(30), async {
        let mut lines = Vec::new();
        while let Some(l) = stdout.next_line().await.unwrap() {
            lines.push(l);
        }
        lines
    })
    .await
    .expect("the waiter exits within 30 s of Ctrl-C");
    let status = child.wait().await.unwrap();
    assert_eq!(status.code(), Some(3), "{rest:?}");
    let summary: Value = serde_json::from_str(rest.last().expect("a summary line")).unwrap();
    let s = &summary["summary"];
    assert_eq!(s["outcome"], "interrupted", "{summary}");
    assert_eq!(s["pending"], serde_json::json!(["ctrlc-1"]));
    assert!(
        s["resume"]
            .as_str()
            .unwrap()
            .starts_with("copy-worker wait --subscription "),
        "{summary}"
    );
}
