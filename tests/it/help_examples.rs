//! Every `--help` example, run against the local stack (DESIGN.md §6: "Every command has
//! `--help` with examples"; issue 29): each subcommand's Examples section is read from the
//! built binary, and each example (the lines between two blank lines, comments and `\`
//! continuations included) runs in bash against `demo --keep` with the environment its export
//! line sets, as the README's blocks do (`readme::Demo`), and must end as it says.
//!
//! The examples are written for the reader's deployment, so a few placeholders stand for the
//! stack's own values ([`as_run`]): the project `my-proj` is the demo's project, and the
//! local addresses a reader starts the tools on (the emulator's default `127.0.0.1:8085`,
//! `fake-vertex --port 9090`, `fake-tasks --port 9191`, `serve --port 8080`) are the stack's
//! ports, since fixed ports collide with other tests, and an idle timeout of minutes is a few
//! seconds. What an example relies on exists first
//! ([`World::prepare`]): `requests.jsonl` and `requests.json` in the working directory, the
//! kept waiting subscription and the shared `copy-completions-ci` that the `wait` examples
//! name, the other project's topic `replay` moves to, and the directories the `completions`
//! examples say the shells read.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};

use crate::bin;
use crate::child::free_port;
use crate::readme::Demo;

/// The source model of the demo's Vertex AI fake (version 1; copies take 5 s).
const SOURCE: &str = "projects/ml-finetune/locations/us-central1/models/7704127342733426688@1";
/// The request ids the examples name.
const NIGHTLY: [&str; 2] = ["nightly-2026-11-22", "nightly-2026-11-23"];
/// The waiting subscription `wait --help` resumes, kept as a timed-out `publish --wait` keeps it.
const KEPT: &str = "copy-worker-wait-3f2a9c1e0b7d4a58";
/// How long an example may run.
const LIMIT: Duration = Duration::from_secs(300);

/// How an example ends, as its text implies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ends {
    /// It runs to its end and exits 0.
    Exits0,
    /// It serves until stopped: `/healthz` answers on the port, then SIGTERM, and exit 0.
    ServesUntilSigterm,
    /// "Ctrl-C to stop": it reads until Ctrl-C, then exits 0.
    FollowsUntilCtrlC,
}

/// The examples that do not simply run to exit 0, by a piece of their text.
const NOT_EXIT_0: &[(&str, Ends)] = &[
    ("copy-worker serve", Ends::ServesUntilSigterm),
    ("--follow", Ends::FollowsUntilCtrlC),
];

/// What an example's stdout shows, by a piece of its text: what its comment promises.
const SHOWS: &[(&str, &str)] = &[
    (
        "--destination-model-id target-model-260213",
        "\"published_at\"",
    ),
    ("--wait --timeout 45m", r#""outcome":"succeeded""#),
    ("wait --subscription", r#""outcome":"succeeded""#),
    ("--file published.jsonl", r#""outcome":"succeeded""#),
    ("--completions-subscription", r#""outcome":"succeeded""#),
    ("status --project", r#""succeeded":2"#),
    ("replay --dry-run", r#""dry_run""#),
    ("doctor --publisher", "topic copy-requests"),
];

/// The subcommands `copy-worker --help` lists (but `help`).
fn subcommands(help: &str) -> Vec<String> {
    let section = help
        .split("Commands:\n")
        .nth(1)
        .expect("a Commands section");
    section
        .lines()
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .map(str::to_owned)
        .collect()
}

/// The examples of a `--help` text: each run of indented lines after `Examples:` between
/// blank lines, unindented, that holds a command (not only comments).
fn examples(help: &str) -> Vec<String> {
    let Some((_, section)) = help.split_once("\nExamples:\n") else {
        return vec![];
    };
    let mut out = Vec::new();
    let mut group = String::new();
    for line in section.lines() {
        if !line.is_empty() && !line.starts_with("  ") {
            break;
        }
        if line.trim().is_empty() {
            out.push(std::mem::take(&mut group));
            continue;
        }
        group.push_str(&line[2..]);
        group.push('\n');
    }
    out.push(group);
    out.retain(|g| g.lines().any(|l| !l.trim_start().starts_with('#')));
    out
}

/// The example with its placeholders replaced by the stack's values (see the module doc).
fn as_run(example: &str, demo: &Demo, port: u16) -> String {
    let replace = [
        ("my-proj", demo.var("GOOGLE_CLOUD_PROJECT").to_owned()),
        (
            "127.0.0.1:8085",
            demo.var("PUBSUB_EMULATOR_HOST").to_owned(),
        ),
        (
            "http://127.0.0.1:9090",
            demo.var("VERTEX_ENDPOINT").to_owned(),
        ),
        (
            "http://127.0.0.1:9191",
            demo.var("CLOUD_TASKS_ENDPOINT").to_owned(),
        ),
        ("127.0.0.1:8080", format!("127.0.0.1:{port}")),
        ("--port 8080", format!("--port {port}")),
        // Minutes of idle time only wait for nothing: the stack's events come within
        // seconds, and the example ends the same way, when nothing more comes.
        ("--idle-timeout 2m", "--idle-timeout 5s".to_owned()),
    ];
    let mut text = example.to_owned();
    for (from, to) in replace {
        text = text.replace(from, &to);
    }
    text
}

fn ends(example: &str) -> Ends {
    NOT_EXIT_0
        .iter()
        .find(|(key, _)| example.contains(key))
        .map_or(Ends::Exits0, |(_, e)| *e)
}

/// The working directory, and what the examples rely on.
struct World {
    dir: PathBuf,
    home: PathBuf,
    /// The port `serve` listens on (`PORT`, and the examples' 8080).
    port: u16,
}

impl World {
    async fn prepare(demo: &Demo) -> World {
        let dir = std::env::temp_dir().join(format!("cw-help-{}", std::process::id()));
        let home = dir.join("home");
        for d in [".zfunc", ".config/fish/completions"] {
            std::fs::create_dir_all(home.join(d)).unwrap();
        }
        let requests: Vec<String> = NIGHTLY
            .iter()
            .map(|id| {
                serde_json::json!({
                    "request_id": id,
                    "source_model": SOURCE,
                    "destination": {"location": "europe-west4", "model_id": format!("help-{id}")},
                    "context": {"pipeline": "nightly"},
                })
                .to_string()
            })
            .collect();
        std::fs::write(dir.join("requests.jsonl"), requests.join("\n") + "\n").unwrap();
        std::fs::write(
            dir.join("requests.json"),
            format!("[{}]", requests.join(",")),
        )
        .unwrap();
        let emulator = format!("http://{}/v1", demo.var("PUBSUB_EMULATOR_HOST"));
        let project = demo.var("GOOGLE_CLOUD_PROJECT");
        let topic = format!("projects/{project}/topics/copy-completions");
        let http = reqwest::Client::new();
        for sub in [KEPT, "copy-completions-ci"] {
            let url = format!("{emulator}/projects/{project}/subscriptions/{sub}");
            let body = serde_json::json!({ "topic": topic, "ackDeadlineSeconds": 10 });
            let r = http.put(url).json(&body).send().await.unwrap();
            assert!(r.status().is_success(), "{sub}: {r:?}");
        }
        let url = format!("{emulator}/projects/other-proj/topics/copy-requests");
        let r = http.put(url).send().await.unwrap();
        assert!(r.status().is_success(), "other-proj: {r:?}");
        World {
            dir,
            home,
            port: free_port(),
        }
    }

    /// Runs one example to its end; panics, naming it, unless it ends as it says.
    async fn run(&self, demo: &Demo, example: &str) {
        let script = as_run(example, demo, self.port);
        let mut cmd = demo.shell(&script, &self.dir);
        cmd.env("HOME", &self.home)
            .env("PORT", self.port.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("bash");
        let stderr = drain(child.stderr.take().unwrap());
        match ends(example) {
            Ends::Exits0 => {}
            Ends::ServesUntilSigterm => {
                self.until_healthy(&mut child, example).await;
                signal_command(&child, "TERM");
            }
            Ends::FollowsUntilCtrlC => {
                // Once it reads (its subscription exists): Ctrl-C then ends it as a user's would.
                let t0 = std::time::Instant::now();
                while !stderr.lock().unwrap().contains("reading") {
                    assert!(
                        t0.elapsed() < Duration::from_secs(60),
                        "not reading:\n{script}"
                    );
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                signal_command(&child, "INT");
            }
        }
        let out = tokio::time::timeout(LIMIT, child.wait_with_output())
            .await
            .unwrap_or_else(|_| panic!("ran past {LIMIT:?}:\n{script}"))
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "exited {:?}:\n{script}\nstdout:\n{stdout}\nstderr:\n{}",
            out.status.code(),
            stderr.lock().unwrap()
        );
        for (key, shown) in SHOWS.iter().filter(|(k, _)| example.contains(k)) {
            assert!(stdout.contains(shown), "{key}: shows {shown}:\n{stdout}");
        }
    }

    /// Waits until `serve` answers `/healthz` on the port (or fails if it exits first).
    async fn until_healthy(&self, child: &mut tokio::process::Child, example: &str) {
        let url = format!("http://127.0.0.1:{}/healthz", self.port);
        for _ in 0..300 {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("exited {status} before serving:\n{example}");
            }
            if reqwest::get(&url)
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("no /healthz within 30 s:\n{example}");
    }
}

/// Collects a child's stderr as it comes, so that a test can look at it while the child runs
/// (and the child never blocks on a full pipe).
fn drain(stderr: tokio::process::ChildStderr) -> Arc<Mutex<String>> {
    let text = Arc::new(Mutex::new(String::new()));
    let sink = text.clone();
    tokio::spawn(async move {
        let mut lines = BufReader::new(stderr).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            let mut t = sink.lock().unwrap();
            t.push_str(&line);
            t.push('\n');
        }
    });
    text
}

/// Sends `sig` to the command bash runs: its children, or bash itself when it replaced
/// itself with the command (one simple command). bash then exits with the command's status.
fn signal_command(bash: &tokio::process::Child, sig: &str) {
    let pid = bash.id().expect("running");
    let children =
        std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
    let mut targets: Vec<String> = children.split_whitespace().map(str::to_owned).collect();
    if targets.is_empty() {
        targets.push(pid.to_string());
    }
    for target in targets {
        bin::signal(target.parse().expect("a pid"), sig);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_help_example_runs_as_printed_against_demo_keep() {
    let mut by_command = Vec::new();
    for command in subcommands(&bin::stdout_of(&["--help"])) {
        let examples = examples(&bin::stdout_of(&[&command, "--help"]));
        assert!(!examples.is_empty(), "`{command} --help` has no example");
        by_command.push((command, examples));
    }
    let all: Vec<&String> = by_command.iter().flat_map(|(_, e)| e).collect();
    for key in NOT_EXIT_0
        .iter()
        .map(|(k, _)| k)
        .chain(SHOWS.iter().map(|(k, _)| k))
    {
        assert!(all.iter().any(|e| e.contains(key)), "no example has {key}");
    }
    let demo = Demo::start().await;
    let world = World::prepare(&demo).await;
    // `publish` first: the `wait` and `status` examples look for what it published.
    let (first, rest): (Vec<_>, Vec<_>) = by_command.iter().partition(|(c, _)| c == "publish");
    for (_, examples) in &first {
        for e in examples {
            world.run(&demo, e).await;
        }
    }
    // Then each command's examples in order, the commands side by side.
    let (w, d) = (&world, &demo);
    let runs = rest.iter().map(|(_, examples)| async move {
        for e in examples {
            w.run(d, e).await;
        }
    });
    futures::future::join_all(runs).await;
    let _ = std::fs::remove_dir_all(&world.dir);
    demo.stop().await;
}

#[test]
fn examples_are_the_indented_groups_after_the_examples_heading() {
    let help = "Usage: x\n\nExamples:\n  # one\n  a \\\n    b\n\n  # only a comment\n\n  c\n  d\n\nExit codes: 0\n  not an example\n";
    assert_eq!(examples(help), ["# one\na \\\n  b\n", "c\nd\n"]);
    assert!(examples("Usage: x\n").is_empty());
    let top = "Commands:\n  serve  Run\n  help   Print\n\nOptions:\n";
    assert_eq!(subcommands(top), ["serve"]);
}

#[test]
fn a_long_running_example_is_stopped_as_its_text_says() {
    assert_eq!(ends("copy-worker events --follow"), Ends::FollowsUntilCtrlC);
    assert_eq!(
        ends("X=1 copy-worker serve --port 8080"),
        Ends::ServesUntilSigterm
    );
    assert_eq!(ends("copy-worker replay --dry-run"), Ends::Exits0);
}
