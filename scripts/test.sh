#!/usr/bin/env bash
# The test command of the README: checks prerequisites, then runs every test of the
# workspace (unit tests, the testkit's own tests, and the integration tests against the
# real Pub/Sub emulator).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/prerequisites.sh
cargo test --workspace --locked "$@"
