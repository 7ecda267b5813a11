//! Ctrl-C and SIGTERM as one request to stop, for the CLI's long-running commands
//! (`publish --wait`, `wait`, `status`, `events`, `replay`): CI cancellation and `timeout` send SIGTERM,
//! and the command must end as it does on Ctrl-C (summary, resume command, exit code,
//! subscription deleted or kept), not die with 143 and leave its subscription behind.
//!
//! [`listen`] is called first thing, before any subscription exists: from then on neither
//! signal ends the process, and one that arrives while the command is still creating its
//! subscription or publishing is kept by the signal stream until the reading loop
//! ([`stopped`]) or a check ([`requested`]) looks. Nothing runs in the background (no task
//! is spawned): the streams are polled only by whoever asks. A process that never calls
//! [`listen`] keeps both signals' default actions.

use std::sync::{Mutex, OnceLock};
use std::task::{Context, Poll};

use tokio::signal::unix::{Signal, SignalKind, signal};

/// The two signal streams, registered by [`listen`].
struct Listeners {
    int: Signal,
    term: Signal,
}

static LISTENERS: OnceLock<Mutex<Listeners>> = OnceLock::new();
/// The first stop request's name (`Ctrl-C`, `SIGTERM`), once one was seen.
static FIRST: OnceLock<&'static str> = OnceLock::new();

/// Takes over SIGINT and SIGTERM for the rest of the process. Call it inside the runtime,
/// before creating anything that must be cleaned up.
pub fn listen() {
    LISTENERS.get_or_init(|| {
        // Registering replaces the default action (end the process) at once.
        Mutex::new(Listeners {
            int: signal(SignalKind::interrupt()).expect("SIGINT handler"),
            term: signal(SignalKind::terminate()).expect("SIGTERM handler"),
        })
    });
}

/// Whether a signal is waiting on either stream; records the first one.
fn poll_stop(cx: &mut Context<'_>) -> Poll<&'static str> {
    if let Some(first) = FIRST.get() {
        return Poll::Ready(first);
    }
    let Some(listeners) = LISTENERS.get() else {
        return Poll::Pending;
    };
    let mut l = listeners.lock().unwrap_or_else(|e| e.into_inner());
    let which = if let Poll::Ready(Some(())) = l.int.poll_recv(cx) {
        "Ctrl-C"
    } else if let Poll::Ready(Some(())) = l.term.poll_recv(cx) {
        "SIGTERM"
    } else {
        return Poll::Pending;
    };
    Poll::Ready(FIRST.get_or_init(|| which))
}

/// The stop request received so far, if any (only after [`listen`]).
pub fn requested() -> Option<&'static str> {
    match poll_stop(&mut Context::from_waker(std::task::Waker::noop())) {
        Poll::Ready(which) => Some(which),
        Poll::Pending => None,
    }
}

/// Resolves once a stop is requested: Ctrl-C or SIGTERM after [`listen`], Ctrl-C alone
/// without it.
pub async fn stopped() {
    if LISTENERS.get().is_none() {
        let _ = tokio::signal::ctrl_c().await;
        return;
    }
    std::future::poll_fn(|cx| poll_stop(cx).map(|_| ())).await;
}
