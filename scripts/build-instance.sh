#!/usr/bin/env bash
# Builds the copy-worker binary for an instance (docs/ec2.md, "Install"): Linux on x86_64 (or,
# with TARGET=aarch64-unknown-linux-gnu, Graviton) against glibc 2.17, so it runs on Amazon
# Linux 2, RHEL 7/8 and Ubuntu 16.04 on, with the `dist` profile (LTO, one codegen unit,
# stripped). It links with zig through cargo-zigbuild, which picks the glibc version from the
# target suffix; the release binary built on this machine would need its glibc (2.34+).
#
#   bash scripts/build-instance.sh            # x86_64
#   TARGET=aarch64-unknown-linux-gnu bash scripts/build-instance.sh
#
# Needs: rustup, python3 with `pip install ziglang cargo-zigbuild` (both on PyPI; or
# `cargo install cargo-zigbuild --locked`), and objdump (binutils) or readelf.
# Prints the binary's path, size, sha256 and the newest GLIBC symbol it needs, and fails
# when that is newer than the baseline.
set -euo pipefail
cd "$(dirname "$0")/.."

TARGET=${TARGET:-x86_64-unknown-linux-gnu}
GLIBC=${GLIBC:-2.17}

command -v cargo-zigbuild >/dev/null || {
  echo "cargo-zigbuild is missing: pip install ziglang cargo-zigbuild" >&2
  exit 2
}
python3 -m ziglang version >/dev/null 2>&1 || command -v zig >/dev/null || {
  echo "zig is missing: pip install ziglang" >&2
  exit 2
}
rustup target add "$TARGET" >/dev/null

cargo zigbuild --locked --profile dist --bin copy-worker --target "$TARGET.$GLIBC"
bin="target/$TARGET/dist/copy-worker"

# The GLIBC_x.y versions of the dynamic symbols the binary needs, newest last.
if objdump -T "$bin" >/dev/null 2>&1; then
  versions=$(objdump -T "$bin" | grep -o 'GLIBC_[0-9][0-9.]*' | sort -u -V)
else
  versions=$(readelf -W --dyn-syms "$bin" | grep -o 'GLIBC_[0-9][0-9.]*' | sort -u -V)
fi
newest=$(tail -n 1 <<<"$versions")
newest=${newest:-none}
size=$(stat -c %s "$bin")
echo "binary:  $bin"
echo "target:  $TARGET, glibc baseline $GLIBC"
echo "size:    $size bytes ($(awk -v s="$size" 'BEGIN { printf "%.1f MiB", s / 1048576 }'))"
echo "glibc:   newest symbol version $newest"
echo "sha256:  $(sha256sum "$bin" | cut -d' ' -f1)"
if [[ $newest != none ]] && [[ $(printf '%s\n' "GLIBC_$GLIBC" "$newest" | sort -V | tail -n 1) != "GLIBC_$GLIBC" ]]; then
  echo "FAIL: $bin needs $newest, newer than the GLIBC_$GLIBC baseline:" >&2
  objdump -T "$bin" 2>/dev/null | grep -F "$newest" >&2 || true
  exit 1
fi
