#!/usr/bin/env bash
# Checks (and where it can, installs) what the tests and the demo need:
# the Rust toolchain, Java, and the official Google Cloud Pub/Sub emulator.
set -euo pipefail

EMULATOR="${COPY_WORKER_PUBSUB_EMULATOR:-/usr/lib/google-cloud-sdk/platform/pubsub-emulator/bin/cloud-pubsub-emulator}"

have() { command -v "$1" >/dev/null 2>&1; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; elif have sudo; then sudo "$@"; else return 1; fi; }

if ! have cargo; then
  echo "prerequisites: cargo is missing; install Rust from https://rustup.rs (1.91 or newer)" >&2
  exit 1
fi

missing=()
have java || missing+=(openjdk-17-jre-headless)
[ -x "$EMULATOR" ] || missing+=(google-cloud-cli-pubsub-emulator)
if [ ${#missing[@]} -gt 0 ]; then
  echo "prerequisites: installing ${missing[*]} with apt-get" >&2
  if ! { as_root apt-get update -qq && as_root apt-get install -y -qq "${missing[@]}"; }; then
    cat >&2 <<MSG
prerequisites: could not install ${missing[*]}.
  The Pub/Sub emulator ships with the Google Cloud CLI:
    apt-get install google-cloud-cli-pubsub-emulator openjdk-17-jre-headless
  (after adding https://packages.cloud.google.com/apt), or
    gcloud components install pubsub-emulator
  or set COPY_WORKER_PUBSUB_EMULATOR to the path of cloud-pubsub-emulator.
MSG
    exit 1
  fi
fi
echo "prerequisites: cargo $(cargo --version | cut -d' ' -f2), $(java -version 2>&1 | head -1), emulator at $EMULATOR" >&2
