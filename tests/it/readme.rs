//! The README's "Try it on your machine" section, run as printed against `demo --keep`
//! (DESIGN.md §9, "The demo"): every `sh` block there must exit 0 with the environment the
//! demo prints. [`Demo`] is that stack and that environment, for the other tests that run
//! documented commands as printed (`help_examples`).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::bin;

const SECTION: &str = "## Try it on your machine";

/// The `sh` blocks of the section, in order.
fn blocks(readme: &str) -> Vec<String> {
    let start = readme
        .find(SECTION)
        .unwrap_or_else(|| panic!("README.md has no {SECTION:?} section"));
    let rest = &readme[start + SECTION.len()..];
    let section = &rest[..rest.find("\n## ").unwrap_or(rest.len())];
    let mut out = Vec::new();
    let mut parts = section.split("```");
    parts.next();
    while let (Some(code), _) = (parts.next(), parts.next()) {
        if let Some(body) = code.strip_prefix("sh\n") {
            out.push(body.to_owned());
        }
    }
    out
}

/// `target/<profile>/examples/NAME`, which `cargo test` builds with the examples.
pub fn example_binary(name: &str) -> PathBuf {
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_copy-worker"));
    let path = bin.parent().unwrap().join("examples").join(name);
    assert!(
        path.is_file(),
        "{} is missing: `cargo test` builds it with the examples (or run `cargo build --example {name}`)",
        path.display()
    );
    path
}

/// `export A=1 B=2` as pairs.
fn exports(line: &str) -> Vec<(String, String)> {
    line.trim()
        .strip_prefix("export ")
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// `demo --keep`, running: the local stack, with the environment its export line sets.
pub struct Demo {
    child: Child,
    /// The `export A=1 B=2` pairs.
    pub env: Vec<(String, String)>,
}

impl Demo {
    /// Starts `demo --keep` and waits (at most 300 s) for its export line.
    pub async fn start() -> Demo {
        let mut child = Command::new(example_binary("demo"))
            .arg("--keep")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("start demo --keep");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut seen = String::new();
        let env = tokio::time::timeout(Duration::from_secs(300), async {
            while let Some(line) = lines.next_line().await.unwrap() {
                seen.push_str(&line);
                seen.push('\n');
                if line.starts_with("export ") {
                    return exports(&line);
                }
            }
            panic!("demo --keep ended without an export line:\n{seen}");
        })
        .await
        .expect("demo --keep prints its export line within 300 s");
        assert!(
            env.iter().any(|(k, _)| k == "PUBSUB_EMULATOR_HOST"),
            "{env:?}"
        );
        // Keep draining the demo's stdout so it never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Demo { child, env }
    }

    /// The exported value of `key`.
    pub fn var(&self, key: &str) -> &str {
        let found = self.env.iter().find(|(k, _)| k == key);
        found
            .map(|(_, v)| v.as_str())
            .unwrap_or_else(|| panic!("no {key} in {:?}", self.env))
    }

    /// `bash -euo pipefail -c script` in `dir`, as a reader runs it after pasting the export
    /// line: the CLI on `PATH`, and none of the caller's own Pub/Sub settings.
    pub fn shell(&self, script: &str, dir: &Path) -> Command {
        let bin_dir = PathBuf::from(env!("CARGO_BIN_EXE_copy-worker"))
            .parent()
            .unwrap()
            .to_owned();
        let path = format!(
            "{}:{}",
            bin_dir.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let mut cmd = Command::new("bash");
        cmd.args(["-euo", "pipefail", "-c", script])
            .current_dir(dir)
            .env("PATH", &path)
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env_remove("COPY_COMPLETIONS_SUBSCRIPTION")
            .env_remove("COPY_DEAD_LETTER_SUBSCRIPTION")
            .env_remove("GOOGLE_APPLICATION_CREDENTIALS")
            .stdin(Stdio::null())
            .kill_on_drop(true);
        cmd
    }

    /// Ctrl-C: the demo stops the emulator it started, and exits 0.
    pub async fn stop(mut self) {
        if let Some(pid) = self.child.id() {
            bin::signal(pid, "INT");
        }
        let stopped = tokio::time::timeout(Duration::from_secs(60), self.child.wait()).await;
        assert!(
            matches!(stopped, Ok(Ok(s)) if s.success()),
            "demo --keep stops cleanly on Ctrl-C: {stopped:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_local_stack_commands_work_as_printed_against_demo_keep() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    let blocks = blocks(&readme);
    assert!(
        blocks.len() >= 4,
        "the section has {} sh blocks",
        blocks.len()
    );
    let demo = Demo::start().await;
    let work = std::env::temp_dir().join(format!("cw-readme-{}", std::process::id()));
    std::fs::create_dir_all(&work).unwrap();
    for (i, block) in blocks.iter().enumerate() {
        let run = demo.shell(block, &work).output();
        let out = tokio::time::timeout(Duration::from_secs(240), run)
            .await
            .unwrap_or_else(|_| panic!("block {i} ran past 240 s:\n{block}"))
            .unwrap();
        assert!(
            out.status.success(),
            "README block {i} exited {:?}:\n{block}\nstdout:\n{}\nstderr:\n{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        // What the README says each block shows.
        let stdout = String::from_utf8_lossy(&out.stdout);
        let expected: &[&str] = match i {
            0 => &[r#""outcome":"succeeded""#],
            1 => &[r#""outcome":"failed""#, "exit code 1"],
            2 => &[r#""replayed":1"#],
            _ => &[],
        };
        for e in expected {
            assert!(
                stdout.contains(e),
                "block {i} shows {e}:\n{block}\n{stdout}"
            );
        }
    }
    let _ = std::fs::remove_dir_all(&work);
    demo.stop().await;
}

/// `cargo run --example fake-vertex -- --port P`: the Vertex AI fake on its own serves the
/// official client's REST paths, with the source model it announces (DESIGN.md §9).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fake_vertex_example_serves_its_source_model_until_ctrl_c() {
    let mut fake = Command::new(example_binary("fake-vertex"))
        .args(["--port", "0", "--copy-time", "1s"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start fake-vertex");
    let mut lines = BufReader::new(fake.stdout.take().unwrap()).lines();
    let endpoint = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(e) = line.strip_prefix("export VERTEX_ENDPOINT=") {
                return e.to_owned();
            }
        }
        panic!("fake-vertex printed no VERTEX_ENDPOINT");
    })
    .await
    .expect("fake-vertex starts within 30 s");
    let model = "projects/ml-finetune/locations/us-central1/models/7704127342733426688";
    let got: serde_json::Value = reqwest::get(format!("{endpoint}/v1/{model}"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(got["versionId"], "1", "{got}");
    assert_eq!(got["name"], testkit::vertex::numbered(model), "{got}");
    bin::signal(fake.id().unwrap(), "INT");
    let status = tokio::time::timeout(Duration::from_secs(10), fake.wait())
        .await
        .expect("fake-vertex stops on Ctrl-C")
        .unwrap();
    assert!(status.success(), "{status:?}");
}

#[test]
fn sh_blocks_of_the_section_only_are_extracted() {
    let text = "# x\n```sh\nno\n```\n## Try it on your machine\ntext\n```sh\na\nb\n```\n```text\nnot run\n```\n```sh\nc\n```\n## Next\n```sh\nno\n```\n";
    assert_eq!(blocks(text), ["a\nb\n", "c\n"]);
}
