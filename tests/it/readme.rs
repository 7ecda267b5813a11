//! The README's "Try it on your machine" section, run as printed against `demo --keep`
//! (DESIGN.md §9, "The demo"): every `sh` block there must exit 0 with the environment the
//! demo prints.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

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
fn example_binary(name: &str) -> PathBuf {
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

/// `demo --keep`, started, and the environment its export line prints.
async fn start_demo_keep() -> (tokio::process::Child, Vec<(String, String)>) {
    let mut demo = Command::new(example_binary("demo"))
        .arg("--keep")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("start demo --keep");
    let mut lines = BufReader::new(demo.stdout.take().unwrap()).lines();
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
    (demo, env)
}

/// Runs README block `i` in `work` with the demo's environment, within 240 s.
async fn run_block(
    i: usize,
    block: &str,
    work: &std::path::Path,
    path: &str,
    env: &[(String, String)],
) -> std::process::Output {
    let run = Command::new("bash")
        .args(["-euo", "pipefail", "-c", block])
        .current_dir(work)
        .env("PATH", path)
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env_remove("COPY_COMPLETIONS_SUBSCRIPTION")
        .env_remove("COPY_DEAD_LETTER_SUBSCRIPTION")
        .env_remove("GOOGLE_APPLICATION_CREDENTIALS")
        .stdin(Stdio::null())
        .output();
    tokio::time::timeout(Duration::from_secs(240), run)
        .await
        .unwrap_or_else(|_| panic!("block {i} ran past 240 s:\n{block}"))
        .unwrap()
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
    let (mut demo, env) = start_demo_keep().await;

    let bin_dir = PathBuf::from(env!("CARGO_BIN_EXE_copy-worker"))
        .parent()
        .unwrap()
        .to_owned();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let work = std::env::temp_dir().join(format!("cw-readme-{}", std::process::id()));
    std::fs::create_dir_all(&work).unwrap();
    for (i, block) in blocks.iter().enumerate() {
        let out = run_block(i, block, &work, &path, &env).await;
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
    // Ctrl-C: the demo stops the emulator it started.
    if let Some(pid) = demo.id() {
        let _ = Command::new("kill")
            .args(["-INT", &pid.to_string()])
            .status()
            .await;
    }
    let stopped = tokio::time::timeout(Duration::from_secs(60), demo.wait()).await;
    assert!(
        matches!(stopped, Ok(Ok(s)) if s.success()),
        "demo --keep stops cleanly on Ctrl-C: {stopped:?}"
    );
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
    let pid = fake.id().unwrap().to_string();
    Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .await
        .unwrap();
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
