//! `copy-worker publish` (placeholder being replaced by the publish implementation).

/// Flags of `copy-worker publish`.
#[derive(Debug, Clone, clap::Args)]
pub struct PublishArgs {}

/// Runs the command; returns the process exit code.
pub async fn run(_args: PublishArgs) -> u8 {
    eprintln!("copy-worker publish: not built yet");
    2
}
