# syntax=docker/dockerfile:1
#
# Production image for copy-worker (Cloud Run), and the CLI for hosts without a Rust
# toolchain (docs/ec2.md, "Install").
#
#   docker build --platform linux/amd64 -t copy-worker:dev .
#   docker run --rm -p 8080:8080 -e PUSH_AUTH=none -e GOOGLE_CLOUD_PROJECT=copy-worker-demo \
#     -e COPY_START_QUEUE=projects/copy-worker-demo/locations/us-central1/queues/copy-starts \
#     -e COPY_POLL_QUEUE=projects/copy-worker-demo/locations/us-central1/queues/copy-polls \
#     -e TASKS_URL=http://127.0.0.1:8080 copy-worker:dev
#   docker run --rm --entrypoint /usr/local/bin/copy-worker copy-worker:dev publish --help
#
# --platform linux/amd64: Cloud Run runs linux/amd64 images; built on an ARM laptop (Apple
# silicon, Graviton) without it, the image is arm64 and Cloud Run cannot start it.
# tests/it/examples.rs runs the `docker run` line above through `serve`.
#
# Two stages:
#   build   - rust on Debian trixie: compiles the release binary with the
#             committed Cargo.lock (--locked), dependencies in their own layer.
#   runtime - distroless cc on Debian 13 (trixie): glibc, libgcc, CA
#             certificates, a non-root user, no shell, no package manager.
# Both stages MUST use the same Debian release: the binary links glibc
# dynamically, and a binary built against a newer glibc does not start on an
# older one ("GLIBC_2.xx not found"). Change the two FROM lines together.
# For fully reproducible builds pin both by digest (image:tag@sha256:...).
#
# Expected size: about 50 MB uncompressed (distroless cc is about 25 MB, the
# stripped binary 20-30 MB), about 20 MB compressed in Artifact Registry.
# Much larger means debug symbols or a wrong base image.

########################################################################
FROM rust:1.95-slim-trixie AS build

# Strip symbols from the release binary without touching Cargo.toml, and
# keep cargo's output plain in CI logs.
ENV CARGO_PROFILE_RELEASE_STRIP=symbols \
    CARGO_INCREMENTAL=0 \
    CARGO_TERM_COLOR=never \
    CARGO_NET_RETRY=5

WORKDIR /app

# --- Layer 1: dependencies only ------------------------------------------------
# Only the manifests and the lockfile go in, so this layer (and the slow compile
# of ~300 crates) is reused until Cargo.toml or Cargo.lock change.
# Cargo reads every workspace member's manifest and checks that every declared
# target exists, so stub files stand in for the real sources:
#   src/main.rs, src/lib.rs       the copy-worker package (bin + lib)
#   testkit/src/lib.rs            workspace member "testkit"
#   tests/it/main.rs              the explicit [[test]] "it" target
#   examples/demo.rs              the demo example (harmless if undeclared)
# If a build.rs or another explicit target path is added to a manifest, add
# a stub for it here too.
COPY Cargo.toml Cargo.lock ./
COPY testkit/Cargo.toml testkit/Cargo.toml
RUN mkdir -p src testkit/src tests/it examples \
 && echo 'fn main() {}' > src/main.rs \
 && touch src/lib.rs testkit/src/lib.rs \
 && echo 'fn main() {}' > tests/it/main.rs \
 && echo 'fn main() {}' > examples/demo.rs \
 && cargo build --release --locked --bin copy-worker \
 && rm -rf src

# --- Layer 2: the application ----------------------------------------------------
# COPY keeps the files' original modification times, which can be older than
# the stub build above; touching them makes cargo rebuild our crate (and only
# our crate) instead of silently reusing the stub binary.
COPY src ./src
RUN find src -name '*.rs' -exec touch {} + \
 && cargo build --release --locked --bin copy-worker \
 && install -D -m 0755 target/release/copy-worker /out/copy-worker \
 && /out/copy-worker --help > /dev/null

########################################################################
FROM gcr.io/distroless/cc-debian13:nonroot AS runtime

LABEL org.opencontainers.image.title="copy-worker" \
      org.opencontainers.image.description="Event-driven worker that copies Vertex AI models between projects and regions" \
      org.opencontainers.image.licenses="Apache-2.0"

COPY --from=build /out/copy-worker /usr/local/bin/copy-worker

# distroless "nonroot" is uid/gid 65532; stated numerically so that Kubernetes'
# runAsNonRoot check can verify it without an /etc/passwd lookup.
USER 65532:65532

# Cloud Run sets PORT itself (to the container port, 8080 by default); the
# default here is for `docker run`.
ENV PORT=8080
EXPOSE 8080

# No HEALTHCHECK: distroless has no shell or curl to run one, and Cloud Run
# ignores Docker HEALTHCHECK anyway - it uses the startup and liveness probes
# on GET /healthz configured in terraform/run.tf.
# checkov:skip=CKV_DOCKER_2:Cloud Run ignores HEALTHCHECK; probes on /healthz are set in terraform/run.tf and distroless has no shell to run one
ENTRYPOINT ["/usr/local/bin/copy-worker", "serve"]
