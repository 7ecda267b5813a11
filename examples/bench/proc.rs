//! The worker and the CLI as child processes: spawning, `/healthz`, `/proc` memory, pinning.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use tokio::process::{Child, Command};

/// `target/release/copy-worker`, beside this example's own directory.
pub fn binary() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    let dir = exe.parent().and_then(|p| p.parent()).expect("target dir");
    dir.join("copy-worker")
}

/// Builds the release binary (a no-op when it is fresh): `cargo run --example` builds only
/// the example, and every process row measures the real binary.
pub fn build_binary() -> anyhow::Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let ok = std::process::Command::new(cargo)
        .args(["build", "--release", "--bin", "copy-worker"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .context("running cargo build")?
        .success();
    anyhow::ensure!(ok, "cargo build --release --bin copy-worker failed");
    Ok(())
}

pub fn has_taskset() -> bool {
    std::process::Command::new("taskset")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Sets the CPU list of every thread of `pid` (`taskset -a -p -c LIST PID`).
pub fn pin(pid: u32, cpus: &str) -> anyhow::Result<()> {
    let ok = std::process::Command::new("taskset")
        .args(["-a", "-p", "-c", cpus, &pid.to_string()])
        .stdout(Stdio::null())
        .status()?
        .success();
    anyhow::ensure!(ok, "taskset -a -p -c {cpus} {pid} failed");
    Ok(())
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// A `kB` field of `/proc/PID/status` (`VmRSS`, `VmHWM`), in MiB.
pub fn proc_mib(pid: u32, field: &str) -> anyhow::Result<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status
        .lines()
        .find(|l| l.starts_with(&format!("{field}:")))
        .with_context(|| format!("{field} in /proc/{pid}/status"))?;
    let kib: f64 = line.split_whitespace().nth(1).context("value")?.parse()?;
    Ok(kib / 1024.0)
}

/// A running `copy-worker serve`.
pub struct Worker {
    pub child: Child,
    pub port: u16,
    pub pid: u32,
}

impl Worker {
    /// Starts `copy-worker serve` with exactly `env` (plus `PORT`), stderr to `log`, pinned
    /// to `cpus` when given. Returns once the process exists, not once it answers.
    pub fn spawn(env: &[(String, String)], log: &str, cpus: Option<&str>) -> anyhow::Result<Self> {
        let port = free_port();
        let log = std::fs::File::create(std::env::temp_dir().join(log))?;
        let mut cmd = match cpus {
            Some(c) => {
                let mut cmd = Command::new("taskset");
                cmd.args(["-c", c]).arg(binary());
                cmd
            }
            None => Command::new(binary()),
        };
        let child = cmd
            .arg("serve")
            .env_clear()
            .envs(env.iter().cloned())
            .env("PORT", port.to_string())
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .context("spawning copy-worker serve")?;
        let pid = child.id().context("pid")?;
        Ok(Worker { child, port, pid })
    }

    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Polls `/healthz` every millisecond; returns when it first answers 200.
    pub async fn wait_healthy(&self, client: &reqwest::Client) -> anyhow::Result<()> {
        let url = format!("{}/healthz", self.base_url());
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(20) {
            if let Ok(r) = client.get(&url).send().await
                && r.status().is_success()
            {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        bail!("copy-worker serve did not answer /healthz within 20 s")
    }

    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

/// The environment of a worker against the local stack, without push authentication; the
/// queues' variables come from [`crate::queues::Queues::env`].
pub fn base_env(project: &str, emulator_host: &str, vertex: &str) -> Vec<(String, String)> {
    [
        ("GOOGLE_CLOUD_PROJECT", project),
        ("PUBSUB_EMULATOR_HOST", emulator_host),
        ("VERTEX_ENDPOINT", vertex),
        ("LOG_FORMAT", "json"),
        ("PUSH_AUTH", "none"),
        ("PATH", "/usr/bin:/bin"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

/// Sets (or replaces) one variable of `env`.
pub fn set_env(env: &mut Vec<(String, String)>, key: &str, value: &str) {
    env.retain(|(k, _)| k != key);
    env.push((key.to_owned(), value.to_owned()));
}

/// Pins every process of the process group `pgid` (the emulator's JVM and its launcher).
pub fn pin_group(pgid: u32, cpus: &str) -> anyhow::Result<()> {
    for entry in std::fs::read_dir("/proc")?.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // Fields after the `(comm)`: state ppid pgrp ...
        let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
        if rest.split_whitespace().nth(2) == Some(&pgid.to_string()) {
            pin(pid, cpus)?;
        }
    }
    Ok(())
}

/// User + system CPU time of `pid` so far, in seconds (`/proc/PID/stat`, 100 ticks a second).
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<f64> = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|s| s.parse().ok())
        .collect();
    f.iter().sum::<f64>() / 100.0
}
