//! `copy-worker publish` against the emulator (to be written).
