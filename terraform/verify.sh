#!/usr/bin/env bash
# Static verification of the deploy artefacts (terraform/ and the Dockerfile),
# without cloud access and without Terraform providers.
#
#   terraform/verify.sh
#
# Self-installing and idempotent: the Python tools live in pinned virtualenvs
# under ${XDG_CACHE_HOME:-$HOME/.cache}/copy-worker-tfverify (override with
# TFVERIFY_CACHE) and are reinstalled only when a pin changes. The provider
# schemas are extracted once per pair of pins into the same cache. Needs python3
# (>= 3.9) with venv and PyPI (npm, where present, fetches the schema packages;
# else pip does). First run a few minutes, later runs about 50 seconds.
#
# Steps:
#   1. terraform fmt -check (Terraform's own parser), if a terraform binary is
#      on PATH. `terraform validate` is NOT run: it needs `terraform init`,
#      which downloads the google provider from the Terraform registry.
#   2. verify_refs.py: every .tf file parses (python-hcl2); every var., local.,
#      module., data. and resource reference resolves; module calls match the
#      module's variables and outputs; contract checks against DESIGN.md (§2
#      defaults no Rust test reads, §5's table of variables) and src/config/
#      (the flags the worker's environment names), the Vertex AI grants, the
#      monitoring, the EC2 documentation (docs/ec2.md, README.md), issue #27
#      (the two queues and how their rates are derived, the tasks account, the
#      upgrade's drain of copy-operations, no removed setting outside the
#      README's upgrade section) and issue #23 (ingress, replay account, waiter
#      role); then a self-test proving that seeded mistakes are caught. What
#      the Rust tests hold is theirs: the topology's names, routes, ack
#      deadlines, backoffs and dead-letter policies, READS_PER_START and
#      DISPATCH_DEADLINE (src/topology/terraform.rs), the log lines the
#      monitoring counts (src/telemetry/events/tests.rs).
#   3. verify_schema.py: every resource, data source and provider block of the
#      module and its examples against the providers' own schema, offline, at
#      both bounds of versions.tf: @cdktf/provider-google and
#      @cdktf/provider-google-beta (npm) are generated from that schema and
#      ship it as jsii metadata; 14.11.0 from hashicorp/google(-beta) 6.12.0,
#      16.12.1 from 6.50.0, and versions.tf must allow exactly
#      ">= 6.12, <= 6.50.0". time_sleep (hashicorp/time) is hard-coded in
#      verify_schema.py. Unknown or misplaced arguments and blocks (and those
#      6.12.0 lacks), computed-only attributes, missing required ones, literal
#      values outside a documented enum or duration format, and attribute
#      reads (TYPE.NAME.ATTR) of what the resource does not have fail; then a
#      self-test of seeded mistakes.
#   4. checkov on terraform/ (module + examples) and on the Dockerfile. Any
#      failed check fails the run; every skip must be an inline
#      `#checkov:skip=CKV_...:reason` with a reason.
set -euo pipefail

HCL2_VERSION="8.1.4"
CHECKOV_VERSION="3.3.30"
# The module is checked against both ends of the provider versions versions.tf
# allows (package.json "cdktf.provider" of each package):
# @cdktf/provider-google(-beta) 16.12.1 = hashicorp/google(-beta) 6.50.0, the upper
# bound, and 14.11.0 = 6.12.0, the lower bound. Keep versions.tf's bounds equal.
CDKTF_GOOGLE_VERSION="16.12.1"
CDKTF_GOOGLE_LOWER="14.11.0"

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
cache="${TFVERIFY_CACHE:-${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/copy-worker-tfverify}"
python="${PYTHON:-python3}"

export PYTHONDONTWRITEBYTECODE=1 PIP_DISABLE_PIP_VERSION_CHECK=1 CHECKPOINT_DISABLE=1

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'terraform verify FAILED: %s\n' "$*" >&2; exit 1; }

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

mkdir -p "$cache"
# Two runs at once (a developer and a hook, say) must not build the same venv
# concurrently.
if command -v flock >/dev/null 2>&1; then
  exec 9>"$cache/.lock"
  flock 9
fi

# ensure_venv NAME PIP-SPEC...: a virtualenv with exactly these pins.
# python-hcl2 and checkov get separate venvs on purpose: checkov depends on
# bc-python-hcl2, a fork that installs the same `hcl2` module name.
ensure_venv() {
  local name="$1"
  shift
  local dir="$cache/$name" want
  want="$("$python" -c 'import sys; print("py%d.%d" % sys.version_info[:2])') $*"
  if [[ -x "$dir/bin/python" && -f "$dir/.installed" && "$(cat "$dir/.installed")" == "$want" ]]; then
    return 0
  fi
  log "installing $* into $dir"
  rm -rf "$dir"
  "$python" -m venv "$dir" || die "python3 -m venv failed (install python3-venv)"
  "$dir/bin/pip" install --quiet "$@" || die "pip install $* failed"
  printf '%s' "$want" >"$dir/.installed"
}

ensure_venv "hcl2-$HCL2_VERSION" "python-hcl2==$HCL2_VERSION"
ensure_venv "checkov-$CHECKOV_VERSION" "checkov==$CHECKOV_VERSION"
hcl_py="$cache/hcl2-$HCL2_VERSION/bin/python"

# The providers' schemas, extracted from the pinned cdktf packages' .jsii (about
# 100 MB each, read once; each compact schema-PIN.json is 4-5 MB). Re-extracted when
# a pin or verify_schema.py changes.
schema_dir="$cache/provider-schema-$CDKTF_GOOGLE_VERSION+$CDKTF_GOOGLE_LOWER"

# extract_schema PIN: $schema_dir/schema-PIN.json from @cdktf/provider-google(-beta)@PIN.
extract_schema() {
  local pin="$1" pkg pack="$schema_dir/pack-$1"
  mkdir -p "$pack"
  for pkg in provider-google provider-google-beta; do
    # The npm package is the jsii tarball itself; the PyPI wheel
    # (cdktf-cdktf-provider-google...) embeds the same tarball, for machines
    # without npm (or with TFVERIFY_NO_NPM=1).
    if [[ "${TFVERIFY_NO_NPM:-}" != 1 ]] && command -v npm >/dev/null 2>&1; then
      log "fetching @cdktf/$pkg $pin with npm (provider schema)"
      (cd "$pack" && npm pack --silent "@cdktf/$pkg@$pin" >/dev/null) ||
        die "npm pack @cdktf/$pkg@$pin failed"
    else
      log "fetching cdktf-cdktf-$pkg $pin with pip (provider schema; no npm)"
      "$python" -m pip download --quiet --no-deps -d "$pack" "cdktf-cdktf-$pkg==$pin" ||
        die "pip download cdktf-cdktf-$pkg==$pin failed"
      "$python" - "$pack" "$pkg" "$pin" <<'PY' || die "no jsii tarball in the cdktf-cdktf-$pkg wheel"
import glob, sys, zipfile
pack, pkg, version = sys.argv[1:]
wheel = glob.glob(f"{pack}/cdktf_cdktf_{pkg.replace('-', '_')}-{version}-*.whl")[0]
inner = f"cdktf_cdktf_{pkg.replace('-', '_')}/_jsii/{pkg}@{version}.jsii.tgz"
with zipfile.ZipFile(wheel) as z, open(f"{pack}/cdktf-{pkg}-{version}.tgz", "wb") as out:
    out.write(z.read(inner))
PY
    fi
    mkdir -p "$pack/$pkg"
    tar -xzf "$pack/cdktf-$pkg-$pin.tgz" -C "$pack/$pkg" --strip-components=1 \
      package/package.json package/.jsii || die "unpacking @cdktf/$pkg@$pin failed"
  done
  "$hcl_py" "$here/verify_schema.py" extract "$schema_dir/schema-$pin.json" \
    "google=$pack/provider-google" "google-beta=$pack/provider-google-beta" >&2 ||
    die "extracting the provider schema of $pin failed"
  rm -rf "$pack"
}

ensure_schema() {
  local want pin
  want="$CDKTF_GOOGLE_VERSION $CDKTF_GOOGLE_LOWER $(sha256sum "$here/verify_schema.py" | cut -c1-16)"
  if [[ -f "$schema_dir/.installed" && "$(cat "$schema_dir/.installed")" == "$want" ]]; then
    return 0
  fi
  rm -rf "$schema_dir"
  mkdir -p "$schema_dir"
  for pin in "$CDKTF_GOOGLE_VERSION" "$CDKTF_GOOGLE_LOWER"; do
    extract_schema "$pin"
  done
  printf '%s' "$want" >"$schema_dir/.installed"
}
ensure_schema
schemas=("$schema_dir/schema-$CDKTF_GOOGLE_VERSION.json" "$schema_dir/schema-$CDKTF_GOOGLE_LOWER.json")
checkov="$cache/checkov-$CHECKOV_VERSION/bin/checkov"

# --- 1. terraform fmt ----------------------------------------------------------
if command -v terraform >/dev/null 2>&1; then
  log "terraform fmt -check -recursive"
  : >"$tmp/terraformrc"
  if ! TF_CLI_CONFIG_FILE="$tmp/terraformrc" terraform fmt -check -recursive -diff "$here" >"$tmp/fmt.out" 2>&1; then
    cat "$tmp/fmt.out" >&2
    die "terraform fmt found unformatted or unparsable files (run: terraform fmt -recursive terraform)"
  fi
else
  log "terraform fmt skipped: no terraform binary on PATH"
fi

# --- 2. references and contracts --------------------------------------------------
log "verify_refs.py (parse, references, contracts)"
"$hcl_py" "$here/verify_refs.py" --summary "$tmp/refs.json" "$here" || die "reference check failed"
"$hcl_py" "$here/verify_refs.py" --self-test "$here" || die "verify_refs.py self-test failed"

# --- 3. provider schema -------------------------------------------------------------
log "verify_schema.py (provider schemas at both bounds: arguments, blocks, required, computed, enums, formats, attribute reads)"
"$hcl_py" "$here/verify_schema.py" check --summary "$tmp/schema.json" "${schemas[@]}" "$here" || die "provider-schema check failed"
"$hcl_py" "$here/verify_schema.py" self-test "${schemas[@]}" "$here" || die "verify_schema.py self-test failed"

# --- 4. checkov ------------------------------------------------------------------
# Skips must carry a reason: "#checkov:skip=CKV_X_1:why".
if grep -rnE --include='*.tf' --include='Dockerfile' 'checkov:skip=[A-Z0-9_]+[[:space:]]*$' "$here" "$repo/Dockerfile"; then
  die "checkov skip without a reason (use #checkov:skip=CKV_...:reason)"
fi

# run_checkov LABEL ARGS...: runs checkov, prints failures, records counts.
run_checkov() {
  local label="$1"
  shift
  local out="$tmp/checkov-$label" rc=0
  mkdir -p "$out"
  log "checkov ($label)"
  "$checkov" "$@" --quiet --compact --skip-download \
    --output cli --output json --output-file-path "$out" >"$out/stdout" 2>"$out/stderr" || rc=$?
  if [[ ! -f "$out/results_json.json" ]]; then
    cat "$out/stdout" "$out/stderr" >&2
    die "checkov ($label) produced no results (exit $rc)"
  fi
  "$hcl_py" - "$out/results_json.json" "$label" >>"$tmp/checkov.counts" <<'PY' || { cat "$out/results_cli.txt" >&2; die "checkov ($label) failed"; }
import json, sys
data = json.load(open(sys.argv[1]))
reports = data if isinstance(data, list) else [data]
p = f = s = e = 0
for r in reports:
    summary = r.get("summary", r)
    p += summary.get("passed", 0)
    f += summary.get("failed", 0)
    s += summary.get("skipped", 0)
    e += summary.get("parsing_errors", 0)
print(sys.argv[2], p, f, s)
if f or e or p == 0:
    print(f"checkov {sys.argv[2]}: {p} passed, {f} failed, {s} skipped, {e} parsing errors", file=sys.stderr)
    sys.exit(1)
PY
  if [[ "$rc" -ne 0 ]]; then
    cat "$out/results_cli.txt" "$out/stderr" >&2
    die "checkov ($label) exited $rc"
  fi
}

run_checkov terraform -d "$here" --framework terraform
run_checkov dockerfile -f "$repo/Dockerfile" --framework dockerfile

# --- summary ---------------------------------------------------------------------
read -r schema_blocks schema_args schema_reads schema_versions < <("$hcl_py" -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["blocks"], d["arguments"], d["reads"], " and ".join(d["google"]))' "$tmp/schema.json")
read -r files refs contracts < <("$hcl_py" -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["files"], d["references"], d["contract_checks"])' "$tmp/refs.json")
read -r tf_pass tf_skip df_pass df_skip < <(awk '$1=="terraform"{tp=$2; ts=$4} $1=="dockerfile"{dp=$2; ds=$4} END{print tp, ts, dp, ds}' "$tmp/checkov.counts")
echo "terraform verify OK: ${files} files, ${refs} references, ${contracts} contract checks, ${schema_blocks} blocks / ${schema_args} arguments / ${schema_reads} attribute reads against the google ${schema_versions} schemas, checkov ${tf_pass} passed / ${tf_skip} skipped (Dockerfile ${df_pass} passed / ${df_skip} skipped)"
