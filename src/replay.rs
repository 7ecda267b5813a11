//! `copy-worker replay` (placeholder being replaced by the replay implementation).

/// Flags of `copy-worker replay`.
#[derive(Debug, Clone, clap::Args)]
pub struct ReplayArgs {}

/// Runs the command; returns the process exit code.
pub async fn run(_args: ReplayArgs) -> u8 {
    eprintln!("copy-worker replay: not built yet");
    2
}
