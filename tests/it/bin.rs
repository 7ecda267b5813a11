//! The one way the tests run the built `copy-worker` binary, and signal it.
//!
//! Every command starts with stdin closed, stdout and stderr piped, and is killed when its
//! handle drops, so a failed assertion leaves no process behind; a test changes what it needs
//! after the call.

use std::ffi::OsStr;
use std::process::Stdio;

use tokio::io::{AsyncBufRead, Lines};
use tokio::process::Command;

use crate::helpers::{TestApp, emulator};

/// Settings a developer's shell may export that would send a command elsewhere than the test
/// says (DESIGN.md §6: the environment fills in flags).
const SHELL_SETTINGS: &[&str] = &[
    "TRACEPARENT",
    "COPY_REQUESTS_TOPIC",
    "COPY_COMPLETIONS_TOPIC",
    "COPY_COMPLETIONS_SUBSCRIPTION",
    "SOURCE_PROJECT",
    "LOCATION",
];

/// `copy-worker ARGS`.
pub fn command<I, S>(args: I) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_copy-worker"));
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    cmd
}

/// `copy-worker ARGS` against `project` on the shared emulator, none of [`SHELL_SETTINGS`]
/// inherited, `TARGET_PROJECT=dst-proj` (the fake's destination project).
pub fn command_in<I, S>(project: &str, args: I) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut cmd = command(args);
    cmd.env("PUBSUB_EMULATOR_HOST", emulator().host())
        .env("GOOGLE_CLOUD_PROJECT", project)
        .env("TARGET_PROJECT", "dst-proj");
    for name in SHELL_SETTINGS {
        cmd.env_remove(name);
    }
    cmd
}

/// [`command_in`] the project of `app`.
pub fn command_for<I, S>(app: &TestApp, args: I) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    command_in(&app.topology.project, args)
}

/// `copy-worker ARGS`' stdout, for commands that only print (`--help`); it must exit 0.
pub fn stdout_of(args: &[&str]) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_copy-worker"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run copy-worker");
    assert!(out.status.success(), "copy-worker {args:?}: {out:?}");
    String::from_utf8(out.stdout).expect("UTF-8")
}

/// Sends `SIG` (`TERM`, `INT`, `KILL`) to process `pid`, as `kill -SIG pid` does.
pub fn signal(pid: u32, sig: &str) {
    let ok = std::process::Command::new("kill")
        .args([format!("-{sig}"), pid.to_string()])
        .status()
        .expect("run kill")
        .success();
    assert!(ok, "kill -{sig} {pid}");
}

/// The next line a command prints, within 30 s; `what` says what the line is, for the panic.
/// An ended stream gives "".
pub async fn next_line<R: AsyncBufRead + Unpin>(lines: &mut Lines<R>, what: &str) -> String {
    tokio::time::timeout(std::time::Duration::from_secs(30), lines.next_line())
        .await
        .unwrap_or_else(|_| panic!("{what} within 30 s"))
        .expect("read the command's output")
        .unwrap_or_default()
}
