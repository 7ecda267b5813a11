//! Runs the official Google Cloud Pub/Sub emulator as a child process for tests and the demo.
//!
//! The emulator is a Java program shipped with the Google Cloud CLI. DESIGN.md §9 forbids a
//! home-made Pub/Sub fake, so tests that need Pub/Sub fail (never skip) when it is missing.
//!
//! Two guarantees matter more than anything else here:
//! 1. **No orphaned JVMs.** The emulator runs in its own process group, and [`Emulator::stop`] /
//!    `Drop` kill the whole group. A process-wide [`Emulator::shared`] instance is never dropped,
//!    so every emulator is also started with `PR_SET_PDEATHSIG = SIGKILL` from one long-lived
//!    spawner thread: when the test binary exits, the kernel kills the JVM.
//! 2. **Quiet consoles.** The JVM's output goes to a temporary log file; its tail is quoted in
//!    errors so that a failed start is still explained.

use anyhow::{Context, bail};
use std::fs::File;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock, mpsc};
use std::time::{Duration, Instant};

/// Environment variable that overrides where the emulator's launcher script lives.
pub const EMULATOR_PATH_ENV: &str = "COPY_WORKER_PUBSUB_EMULATOR";

/// Where the Google Cloud CLI puts the emulator on the project's machines (DESIGN.md §9).
pub const DEFAULT_EMULATOR_PATH: &str =
    "/usr/lib/google-cloud-sdk/platform/pubsub-emulator/bin/cloud-pubsub-emulator";

/// Other cheap-to-check SDK roots (Docker images, manual installs).
const OTHER_SDK_ROOTS: &[&str] = &[
    "/google-cloud-sdk",
    "/usr/local/google-cloud-sdk",
    "/opt/google-cloud-sdk",
    "/usr/share/google-cloud-sdk",
];

const LAUNCHER_IN_SDK: &str = "platform/pubsub-emulator/bin/cloud-pubsub-emulator";

const INSTALL_HINT: &str = "install it with `apt-get install google-cloud-cli-pubsub-emulator \
     openjdk-17-jre-headless` or `gcloud components install pubsub-emulator`, or set \
     COPY_WORKER_PUBSUB_EMULATOR to the path of `cloud-pubsub-emulator`";

/// How long a JVM may take to answer its first HTTP request.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// A running Pub/Sub emulator, killed (with its whole process group) on drop.
#[derive(Debug)]
pub struct Emulator {
    /// `None` once stopped; makes [`Emulator::stop`] idempotent.
    child: Option<Child>,
    port: u16,
    /// Combined stdout and stderr of the JVM; removed when the emulator stops.
    log_path: PathBuf,
}

impl Emulator {
    /// Starts the emulator found at [`EMULATOR_PATH_ENV`] or the usual SDK locations on a free
    /// port of 127.0.0.1 and waits until it answers HTTP (at most 60 s).
    ///
    /// Fails with an install hint when the emulator or `java` is missing.
    pub async fn start() -> anyhow::Result<Emulator> {
        tokio::task::spawn_blocking(Self::start_blocking)
            .await
            .context("emulator start task panicked")?
    }

    /// Like [`Emulator::start`], with an explicit path to the `cloud-pubsub-emulator` launcher.
    pub async fn start_at(launcher: impl Into<PathBuf>) -> anyhow::Result<Emulator> {
        let launcher = launcher.into();
        tokio::task::spawn_blocking(move || Self::launch(&launcher))
            .await
            .context("emulator start task panicked")?
    }

    /// Blocking variant of [`Emulator::start`], for non-async callers such as `OnceLock`s.
    pub fn start_blocking() -> anyhow::Result<Emulator> {
        let launcher = find_launcher()?;
        Self::launch(&launcher)
    }

    /// One emulator for the whole process, started on first use.
    ///
    /// Integration tests share it (a fresh project id per test keeps them apart). It is never
    /// dropped; the JVM dies with the process thanks to `PR_SET_PDEATHSIG`, and its log file stays
    /// in the temp directory. Not tied to any tokio runtime, so tests with their own runtimes may
    /// all use it. Blocks for the few seconds the JVM needs on first use.
    pub fn shared() -> anyhow::Result<&'static Emulator> {
        static SHARED: OnceLock<Result<Emulator, String>> = OnceLock::new();
        SHARED
            .get_or_init(|| Self::start_blocking().map_err(|e| format!("{e:#}")))
            .as_ref()
            .map_err(|e| anyhow::anyhow!("{e}"))
    }

    /// `127.0.0.1:PORT`, the value for `PUBSUB_EMULATOR_HOST`.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `http://127.0.0.1:PORT`, for the clients' `with_endpoint`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.host())
    }

    /// Process id of the JVM (also its process group id), or `None` once stopped.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Path of the file that receives the JVM's output.
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// The last lines the JVM logged, for test diagnostics.
    pub fn log_tail(&self) -> String {
        log_tail(&self.log_path)
    }

    /// Kills the emulator and its whole process group now. Calling it again does nothing.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        // The child is the leader of its own group (process_group(0)), so the group id is its
        // pid. Killing the group also reaches anything the launcher script may have forked.
        let pgid = child.id() as libc::pid_t;
        // SAFETY: kill(2) with a negative pid signals that process group; no memory is touched.
        unsafe {
            libc::kill(-pgid, libc::SIGKILL);
        }
        let _ = child.wait();
        let _ = std::fs::remove_file(&self.log_path);
    }

    fn launch(launcher: &Path) -> anyhow::Result<Emulator> {
        if !launcher.is_file() {
            bail!(
                "Pub/Sub emulator not found at {}: {INSTALL_HINT}",
                launcher.display()
            );
        }
        if find_java().is_none() {
            bail!(
                "`java` not found on PATH or in JAVA_HOME, the Pub/Sub emulator needs it: {INSTALL_HINT}"
            );
        }
        // The port is picked by binding :0 and releasing it; another process could grab it in
        // between, so a start that dies early is retried on a new port.
        let mut last_error = None;
        for _ in 0..3 {
            match Self::launch_once(launcher) {
                Ok(emulator) => return Ok(emulator),
                Err(e) => last_error = Some(e),
            }
        }
        Err(last_error.expect("at least one attempt"))
    }

    /// Stops the emulator and starts a new one on the same port (blocking). Everything the
    /// old one held (topics, subscriptions, messages) is gone: the emulator keeps no state.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.stop();
        let launcher = find_launcher()?;
        let mut last_error = None;
        for _ in 0..5 {
            match Self::launch_on(&launcher, self.port) {
                Ok(fresh) => {
                    *self = fresh;
                    return Ok(());
                }
                Err(e) => last_error = Some(e),
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        Err(last_error.expect("at least one attempt"))
    }

    fn launch_once(launcher: &Path) -> anyhow::Result<Emulator> {
        Self::launch_on(launcher, free_port()?)
    }

    fn launch_on(launcher: &Path, port: u16) -> anyhow::Result<Emulator> {
        let log_path = std::env::temp_dir().join(format!(
            "testkit-pubsub-emulator-{}-{port}.log",
            std::process::id()
        ));
        let log = File::create(&log_path)
            .with_context(|| format!("creating emulator log {}", log_path.display()))?;
        let mut command = Command::new(launcher);
        command
            .arg("--host=127.0.0.1")
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().context("duplicating log handle")?)
            .stderr(log)
            .process_group(0);
        // SAFETY: the closure runs between fork and exec and only calls prctl(2), which is
        // async-signal-safe.
        unsafe {
            command.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = spawn_from_long_lived_thread(command)
            .with_context(|| format!("spawning {}", launcher.display()))?;
        let mut emulator = Emulator {
            child: Some(child),
            port,
            log_path,
        };
        match emulator.wait_until_ready() {
            Ok(()) => Ok(emulator),
            Err(e) => {
                let tail = emulator.log_tail();
                emulator.stop();
                Err(e.context(format!("emulator log tail:\n{tail}")))
            }
        }
    }

    fn wait_until_ready(&mut self) -> anyhow::Result<()> {
        let deadline = Instant::now() + READY_TIMEOUT;
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        loop {
            if let Some(child) = self.child.as_mut()
                && let Some(status) = child.try_wait().context("polling emulator process")?
            {
                bail!("Pub/Sub emulator exited during start-up with {status}");
            }
            if answers_http(addr) {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("Pub/Sub emulator did not answer on {addr} within {READY_TIMEOUT:?}");
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The launcher to run: the override variable, else the first SDK location that has one.
fn find_launcher() -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os(EMULATOR_PATH_ENV) {
        return Ok(PathBuf::from(path));
    }
    let mut candidates = vec![PathBuf::from(DEFAULT_EMULATOR_PATH)];
    candidates.extend(
        OTHER_SDK_ROOTS
            .iter()
            .map(|root| Path::new(root).join(LAUNCHER_IN_SDK)),
    );
    if let Some(home) = std::env::var_os("HOME") {
        candidates.push(
            Path::new(&home)
                .join("google-cloud-sdk")
                .join(LAUNCHER_IN_SDK),
        );
    }
    if let Some(found) = candidates.iter().find(|p| p.is_file()) {
        return Ok(found.clone());
    }
    let tried: Vec<String> = candidates.iter().map(|p| p.display().to_string()).collect();
    bail!(
        "Pub/Sub emulator not found (tried {}): {INSTALL_HINT}",
        tried.join(", ")
    )
}

fn find_java() -> Option<PathBuf> {
    let from_home = std::env::var_os("JAVA_HOME").map(|h| Path::new(&h).join("bin/java"));
    let on_path = std::env::var_os("PATH")
        .map(|p| {
            std::env::split_paths(&p)
                .map(|dir| dir.join("java"))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    from_home.into_iter().chain(on_path).find(|p| p.is_file())
}

fn free_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(listener.local_addr()?.port())
}

/// True when something at `addr` answers a plain HTTP/1.1 GET (the emulator replies `Ok`).
fn answers_http(addr: SocketAddr) -> bool {
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_secs(1)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let request = format!("GET / HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.")
}

fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

type SpawnRequest = (Command, mpsc::Sender<std::io::Result<Child>>);

/// Spawns `command` from a thread that lives as long as the process.
///
/// `PR_SET_PDEATHSIG` fires when the *thread* that forked the child exits, not the process. Tokio
/// blocking-pool threads and test threads come and go, so forking from them would kill a shared
/// emulator in the middle of another test.
fn spawn_from_long_lived_thread(command: Command) -> std::io::Result<Child> {
    static SPAWNER: OnceLock<Mutex<mpsc::Sender<SpawnRequest>>> = OnceLock::new();
    let spawner = SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<SpawnRequest>();
        std::thread::Builder::new()
            .name("testkit-emulator-spawner".into())
            .spawn(move || {
                for (mut command, reply) in rx {
                    let _ = reply.send(command.spawn());
                }
            })
            .expect("spawning the emulator spawner thread");
        Mutex::new(tx)
    });
    let (reply_tx, reply_rx) = mpsc::channel();
    spawner
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .send((command, reply_tx))
        .map_err(|_| std::io::Error::other("emulator spawner thread is gone"))?;
    reply_rx
        .recv()
        .map_err(|_| std::io::Error::other("emulator spawner thread dropped the request"))?
}
