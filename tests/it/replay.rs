//! `copy-worker replay` against the emulator (to be written).
