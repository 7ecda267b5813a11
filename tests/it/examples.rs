//! Examples outside the README that must work as printed: the Dockerfile header's
//! `docker run` line, run through `copy-worker serve` with the same environment (the image's
//! entry point is `copy-worker serve`).

use std::process::Stdio;
use std::time::Duration;

use crate::bin;
use crate::child::free_port;

/// The `-e K=V` pairs of the Dockerfile header's `docker run … copy-worker:dev` command (its
/// lines continued with `\`).
fn docker_run_env(dockerfile: &str) -> Vec<(String, String)> {
    let mut lines = dockerfile
        .lines()
        .skip_while(|l| !(l.starts_with("#   docker run ") && l.contains(" -p ")));
    let mut command = lines
        .next()
        .expect("the Dockerfile header shows a docker run line")
        .to_owned();
    while command.ends_with('\\') {
        command.pop();
        let next = lines.next().expect("a continued line");
        command.push_str(next.trim_start_matches('#'));
    }
    let words: Vec<&str> = command.split_whitespace().collect();
    words
        .windows(2)
        .filter(|w| w[0] == "-e")
        .filter_map(|w| w[1].split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dockerfile_docker_run_line_starts_serve_and_answers_healthz() {
    let dockerfile = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Dockerfile"))
        .expect("Dockerfile");
    let env = docker_run_env(&dockerfile);
    assert!(
        env.iter().any(|(k, _)| k == "GOOGLE_CLOUD_PROJECT"),
        "{env:?}"
    );
    let port = free_port();
    let mut serve = bin::command(["serve"])
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env("PORT", port.to_string())
        .stdout(Stdio::null())
        .spawn()
        .expect("start serve");
    let url = format!("http://127.0.0.1:{port}/healthz");
    let mut healthy = false;
    for _ in 0..200 {
        if let Ok(Some(status)) = serve.try_wait() {
            let out = serve.wait_with_output().await.unwrap();
            panic!(
                "serve exited {status} with the Dockerfile's environment {env:?}:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        if reqwest::get(&url)
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            healthy = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(healthy, "serve answered /healthz with {env:?}");
    bin::signal(serve.id().unwrap(), "TERM");
    let status = tokio::time::timeout(Duration::from_secs(30), serve.wait())
        .await
        .expect("serve stops on SIGTERM")
        .unwrap();
    assert!(status.success(), "{status:?}");
}

#[test]
fn the_docker_run_env_is_read_from_the_header_line() {
    let text = "# x\n#   docker run --rm -p 8080:8080 -e A=1 -e B=two img\n";
    assert_eq!(
        docker_run_env(text),
        [("A".into(), "1".into()), ("B".into(), "two".into())]
    );
}
