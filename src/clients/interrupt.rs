//! Ctrl-C and SIGTERM as one request to stop, for the CLI's long-running commands
//! (`publish --wait`, `wait`, `events`): CI cancellation and `timeout` send SIGTERM, and the
//! command must end as it does on Ctrl-C (summary, resume command, exit code, subscription
//! deleted or kept), not die with 143 and leave its subscription behind.
//!
//! [`listen`] is called first thing, before any subscription exists: from then on neither
//! signal ends the process, and one that arrives while the command is still creating its
//! subscription or publishing is remembered until the reading loop ([`stopped`]) sees it.
//! A command that never calls [`listen`] (`replay`) keeps Ctrl-C only, as before.

use std::sync::OnceLock;

use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;

/// The first stop request's name (`Ctrl-C`, `SIGTERM`), once there is one.
static STOP: OnceLock<watch::Receiver<Option<&'static str>>> = OnceLock::new();

/// Takes over SIGINT and SIGTERM for the rest of the process. Call it inside the runtime,
/// before creating anything that must be cleaned up.
pub fn listen() {
    STOP.get_or_init(|| {
        let (tx, rx) = watch::channel(None);
        // Registering replaces the default action (end the process) at once.
        let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
        let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
        tokio::spawn(async move {
            loop {
                let which = tokio::select! {
                    _ = int.recv() => "Ctrl-C",
                    _ = term.recv() => "SIGTERM",
                };
                // The first one counts; later ones change nothing (clean-up is bounded).
                tx.send_if_modified(|first| {
                    let new = first.is_none();
                    first.get_or_insert(which);
                    new
                });
            }
        });
        rx
    });
}

/// The stop request received so far, if any (only after [`listen`]).
pub fn requested() -> Option<&'static str> {
    STOP.get().and_then(|rx| *rx.borrow())
}

/// Resolves once a stop is requested: Ctrl-C or SIGTERM after [`listen`], Ctrl-C alone
/// without it.
pub async fn stopped() {
    match STOP.get() {
        Some(rx) => {
            let mut rx = rx.clone();
            if rx.wait_for(Option::is_some).await.is_err() {
                // The listener is gone with its runtime: nothing can be requested any more.
                std::future::pending::<()>().await;
            }
        }
        None => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
