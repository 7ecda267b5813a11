#!/usr/bin/env python3
"""Offline provider-schema check of every resource and data block in terraform/.

`terraform validate` needs the provider plugins, which cannot be downloaded
here. The CDK for Terraform provider packages (@cdktf/provider-google and
@cdktf/provider-google-beta on npm) are generated from the providers' own
schema (`terraform providers schema -json`) and ship it, as jsii metadata
(package/.jsii), with every resource's and data source's arguments, nested
blocks, which are required, which are computed-only, and the "Possible values"
that the provider's documentation lists for enum fields. This tool turns that
metadata into a compact schema (`extract`) and checks the module and its
examples against it (`check`):

  * an argument or block the schema does not have (a misspelling, or one
    written at the wrong nesting level);
  * an attribute that is computed-only (set by the provider, never by you);
  * a required argument or block that is missing;
  * a block written as an argument (`x = {...}`) or an argument written as a
    block (`x { ... }`), and a single-item block written twice;
  * a literal string outside the enum values the schema documents;
  * a resource type that exists only in google-beta used without
    `provider = google-beta` (and one that exists in neither);
  * hashicorp/time's `time_sleep`, whose schema is hard-coded below (there is
    no maintained schema package for hashicorp/time 0.13; the four arguments are those
    of registry.terraform.io/providers/hashicorp/time/latest/docs/resources/sleep
    and of @cdktf/provider-time 11.0.1, generated from time 0.13.1).

Usage:
  verify_schema.py extract OUT.json NAME=PACKAGE_DIR...    (NAME: google, google-beta)
  verify_schema.py check [--summary FILE] SCHEMA.json TERRAFORM_DIR
  verify_schema.py self-test SCHEMA.json TERRAFORM_DIR
"""

from __future__ import annotations

import argparse
import difflib
import json
import re
import shutil
import sys
import tempfile
from pathlib import Path

# --- extract ---------------------------------------------------------------------

# Members of cdktf's generated classes that are not schema attributes.
NOT_ATTRIBUTES = {"fqn", "tfResourceType", "internalValue", "creationStack", "terraformResourceType",
                  "terraformGeneratorMetadata", "node", "friendlyUniqueId"}

RE_SNAKE = re.compile(r"#([a-z0-9_]+)\}\s*$")
RE_ENUM = re.compile(r"Possible values: \[([^\]]*)\]")


def camel_to_snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name).lower()


def struct_of(ty: dict) -> tuple[str | None, bool]:
    """(struct fqn, is a list) of a jsii type reference, or (None, False) for an attribute."""
    if "fqn" in ty and not ty["fqn"].startswith("cdktf."):
        return ty["fqn"], False
    for u in ty.get("union", {}).get("types", []):
        coll = u.get("collection")
        if coll and coll.get("kind") == "array":
            el = coll.get("elementtype", {})
            if "fqn" in el and not el["fqn"].startswith("cdktf."):
                return el["fqn"], True
    return None, False


class Extractor:
    def __init__(self, types: dict):
        self.t = types
        self.structs: dict[str, dict] = {}

    def block(self, config_fqn: str, output_fqn: str | None) -> dict:
        config = self.t[config_fqn]
        args: dict[str, dict] = {}
        camel_names = set()
        for p in config.get("properties", []):
            camel_names.add(p["name"])
            docs = p.get("docs", {})
            remarks = docs.get("remarks", "")
            m = RE_SNAKE.search(remarks)
            name = m.group(1) if m else camel_to_snake(p["name"])
            entry: dict = {}
            if not p.get("optional"):
                entry["required"] = True
            fqn, is_list = struct_of(p["type"])
            if fqn is not None:
                entry["block"] = self.struct(fqn)
                if not is_list:
                    entry["max_one"] = True
            e = RE_ENUM.search(docs.get("summary", "") + "\n" + remarks)
            if e:
                values = re.findall(r'"([^"]*)"', e.group(1))
                if values:
                    entry["enum"] = values
            args[name] = entry
        computed = []
        out = self.t.get(output_fqn) if output_fqn else None
        if out:
            props = {p["name"] for p in out.get("properties", []) if not p.get("static")}
            for n in sorted(props):
                if n in NOT_ATTRIBUTES or n.endswith("Input") or n in camel_names or f"{n}Input" in props:
                    continue
                computed.append(camel_to_snake(n))
        return {"args": args, "computed": computed}

    def struct(self, fqn: str) -> str:
        if fqn not in self.structs:
            self.structs[fqn] = {}  # recursion guard
            self.structs[fqn] = self.block(fqn, fqn + "OutputReference")
        return fqn

    def run(self) -> tuple[dict, str | None]:
        blocks: dict[str, dict] = {}
        version = None
        for fqn, ty in self.t.items():
            if ty.get("kind") == "class" and ty.get("base") == "cdktf.TerraformProvider":
                blocks["provider"] = self.block(fqn + "Config", None)
                continue
            if ty.get("kind") != "class" or ty.get("base") not in ("cdktf.TerraformResource", "cdktf.TerraformDataSource"):
                continue
            m = re.search(r"/providers/hashicorp/[\w-]+/([0-9.]+)/docs/(resources|data-sources)/\w+ (\w+)\}",
                          ty.get("docs", {}).get("summary", ""))
            if not m:
                continue
            version = version or m.group(1)
            kind = "resource" if m.group(2) == "resources" else "data"
            blocks[f"{kind}.{m.group(3)}"] = self.block(fqn + "Config", fqn)
        return blocks, version


def extract(out: Path, packages: list[str]) -> int:
    schema: dict = {"providers": {}, "structs": {}}
    for spec in packages:
        name, _, pkg = spec.partition("=")
        pkg_dir = Path(pkg)
        meta = json.loads((pkg_dir / "package.json").read_text())
        types = json.loads((pkg_dir / ".jsii").read_text())["types"]
        ex = Extractor(types)
        blocks, version = ex.run()
        provider = meta.get("cdktf", {}).get("provider", {})
        schema["providers"][name] = {
            "package": f"{meta['name']}@{meta['version']}",
            "source": provider.get("name"),
            "version": provider.get("version") or version,
            "blocks": blocks,
        }
        # Struct names are unique per package (they carry the package name).
        schema["structs"].update(ex.structs)
    schema["providers"]["time"] = TIME_SCHEMA
    out.write_text(json.dumps(schema, separators=(",", ":")))
    for name, p in schema["providers"].items():
        print(f"schema {name}: {p['package']} = {p['source']} {p['version']}, {len(p['blocks'])} resources and data sources")
    return 0


# hashicorp/time's time_sleep (registry docs, resources/sleep): all optional;
# `triggers` forces replacement; `id` is computed.
TIME_SCHEMA = {
    "package": "hard-coded (registry.terraform.io/providers/hashicorp/time/0.13.1/docs/resources/sleep)",
    "source": "registry.terraform.io/hashicorp/time",
    "version": "0.13.1",
    "blocks": {
        "resource.time_sleep": {
            "args": {"create_duration": {}, "destroy_duration": {}, "triggers": {}},
            "computed": ["id"],
        },
    },
}

# --- check -----------------------------------------------------------------------

META_ARGS = {"count", "for_each", "depends_on", "provider", "lifecycle", "provisioner", "connection"}


def unquote(s: str) -> str:
    return s[1:-1] if len(s) >= 2 and s[0] == '"' and s[-1] == '"' else s


def literal(v) -> str | None:
    """The text of a plain string literal ("DELTA"), None for any expression or template."""
    if isinstance(v, str) and len(v) >= 2 and v[0] == '"' and v[-1] == '"' and "${" not in v and "%{" not in v:
        return v[1:-1]
    return None


def is_block(v) -> bool:
    return isinstance(v, list) and bool(v) and all(isinstance(x, dict) and x.get("__is_block__") for x in v)


class SchemaChecker:
    def __init__(self, schema: dict, root: Path):
        self.schema = schema
        self.root = root.resolve()
        self.errors: list[str] = []
        self.blocks_checked = 0
        self.arguments_checked = 0

    def err(self, msg: str) -> None:
        self.errors.append(msg)

    def provider_blocks(self, name: str) -> dict:
        return self.schema["providers"].get(name, {}).get("blocks", {})

    def lookup(self, kind: str, rtype: str, provider: str | None) -> tuple[dict | None, str]:
        """The schema of a resource (kind=resource) or data source, and where it was found."""
        key = f"{kind}.{rtype}"
        if provider is None:
            provider = rtype.split("_", 1)[0]
        provider = provider.split(".", 1)[0]  # google-beta.alias
        s = self.provider_blocks(provider).get(key)
        return s, provider

    def run(self) -> int:
        import hcl2

        for p in sorted(self.root.rglob("*.tf")):
            if ".terraform" in p.parts:
                continue
            rel = p.relative_to(self.root.parent)
            try:
                with p.open(encoding="utf-8") as fh:
                    doc = hcl2.load(fh)
            except Exception as e:  # noqa: BLE001 - verify_refs.py reports parse errors in detail
                self.err(f"{rel}: does not parse: {e}")
                continue
            data_blocks = list(doc.get("data", []))
            for chk in doc.get("check", []):
                for body in chk.values():
                    if isinstance(body, dict):
                        data_blocks.extend(body.get("data", []))
            for tf in doc.get("terraform", []):
                for rp in tf.get("required_providers", []):
                    for pname, req in rp.items():
                        if not pname.startswith("__") and isinstance(req, dict):
                            self.check_version(str(rel), pname, str(req.get("version", "")))
            for block in doc.get("provider", []):
                for pname, body in block.items():
                    if not pname.startswith("__"):
                        self.check_provider(str(rel), unquote(pname), body)
            for kind, blocks in (("resource", doc.get("resource", [])), ("data", data_blocks)):
                for block in blocks:
                    for rtype, named in block.items():
                        if rtype.startswith("__"):
                            continue
                        for rname, body in named.items():
                            if rname.startswith("__"):
                                continue
                            self.check_top(str(rel), kind, unquote(rtype), unquote(rname), body)
        return 1 if self.errors else 0

    def check_top(self, fname: str, kind: str, rtype: str, rname: str, body: dict) -> None:
        if rtype.startswith("terraform_"):
            return  # built into Terraform (terraform_data)
        self.blocks_checked += 1
        addr = f"{fname}: {'data.' if kind == 'data' else ''}{rtype}.{rname}"
        prov = body.get("provider")
        prov = prov.strip("${}") if isinstance(prov, str) else None
        s, provider = self.lookup(kind, rtype, prov)
        if s is None:
            if provider not in self.schema["providers"]:
                self.err(f"{addr}: provider {provider!r} has no schema here (add it to verify_schema.py)")
            elif provider == "google" and self.provider_blocks("google-beta").get(f"{kind}.{rtype}"):
                self.err(f"{addr}: {rtype} exists only in google-beta "
                         f"{self.schema['providers']['google-beta']['version']}: set provider = google-beta")
            else:
                near = difflib.get_close_matches(f"{kind}.{rtype}", self.provider_blocks(provider), n=1)
                hint = f" (did you mean {near[0].split('.', 1)[1]}?)" if near else ""
                self.err(f"{addr}: {provider} {self.schema['providers'][provider]['version']} has no "
                         f"{'data source' if kind == 'data' else 'resource'} {rtype}{hint}")
            return
        self.check_body(addr, s, body, top=True)

    def check_version(self, fname: str, name: str, constraint: str) -> None:
        """The module may only allow provider versions up to the one its schema is from."""
        if name not in ("google", "google-beta"):
            return
        self.blocks_checked += 1
        want = self.schema["providers"][name]["version"]
        if f"<= {want}" not in constraint:
            self.err(f"{fname}: required_providers.{name}.version = {constraint!r} must end at <= {want}, the "
                     f"version the checked schema is from ({self.schema['providers'][name]['package']})")

    def check_provider(self, fname: str, name: str, body: dict) -> None:
        s = self.provider_blocks(name).get("provider")
        if s is None:
            self.err(f"{fname}: provider {name!r} has no schema here")
            return
        self.blocks_checked += 1
        self.check_body(f"{fname}: provider {name}", s, {k: v for k, v in body.items() if k != "alias"})

    def check_body(self, where: str, s: dict, body: dict, top: bool = False) -> None:
        args = s["args"]
        present: set[str] = set()
        for key, value in body.items():
            if key.startswith("__"):
                continue
            if top and key in META_ARGS:
                continue
            if key == "dynamic":
                for dyn in value:
                    for label, dbody in dyn.items():
                        if label.startswith("__"):
                            continue
                        label = unquote(label)
                        present.add(label)
                        spec = args.get(label)
                        if spec is None or "block" not in spec:
                            self.unknown(where, label, s, dynamic=True)
                            continue
                        for content in dbody.get("content", []):
                            self.check_body(f"{where}.{label}", self.schema["structs"][spec["block"]], content)
                continue
            present.add(key)
            self.arguments_checked += 1
            spec = args.get(key)
            if spec is None:
                self.unknown(where, key, s)
                continue
            if "block" in spec:
                if not is_block(value):
                    self.err(f"{where}: {key} is a block: write `{key} {{ ... }}`, not `{key} = ...`")
                    continue
                if spec.get("max_one") and len(value) > 1:
                    self.err(f"{where}: {key} is a single block, written {len(value)} times")
                for item in value:
                    self.check_body(f"{where}.{key}", self.schema["structs"][spec["block"]], item)
            else:
                if is_block(value):
                    self.err(f"{where}: {key} is an argument: write `{key} = ...`, not a block")
                    continue
                lit = literal(value)
                if lit is not None and "enum" in spec and lit not in spec["enum"]:
                    self.err(f"{where}: {key} = {lit!r} is not one of {spec['enum']}")
        for name, spec in args.items():
            if spec.get("required") and name not in present:
                self.err(f"{where}: required {'block' if 'block' in spec else 'argument'} {name!r} is missing")

    def unknown(self, where: str, key: str, s: dict, dynamic: bool = False) -> None:
        what = "dynamic block" if dynamic else "argument"
        if key in s.get("computed", []):
            self.err(f"{where}: {key} is computed-only (set by the provider, not by configuration)")
            return
        near = difflib.get_close_matches(key, list(s["args"]), n=1)
        hint = f" (did you mean {near[0]}?)" if near else ""
        nested = [n for n, spec in s["args"].items() if "block" in spec and
                  key in self.schema["structs"][spec["block"]]["args"]]
        if nested:
            hint += f" ({key} belongs inside the {nested[0]} block)"
        self.err(f"{where}: unsupported {what} {key!r}{hint}")


# --- self-test -------------------------------------------------------------------

# Each mutation of a copy of terraform/ must be caught; the unmutated copy must pass.
MUTATIONS = [
    ("misspelled argument", "pubsub.tf", "ack_deadline_seconds       = var.requests_ack_deadline_seconds",
     "ack_deadline_second        = var.requests_ack_deadline_seconds"),
    ("argument at the wrong nesting (outside its block)", "pubsub.tf",
     "  dead_letter_policy {\n    dead_letter_topic     = google_pubsub_topic.topic[\"dead_letter\"].id\n    max_delivery_attempts = var.max_delivery_attempts\n  }\n\n  push_config {\n    push_endpoint = \"${google_cloud_run_v2_service.worker.uri}/pubsub/copy-requests\"",
     "  max_delivery_attempts = var.max_delivery_attempts\n  dead_letter_policy {\n    dead_letter_topic     = google_pubsub_topic.topic[\"dead_letter\"].id\n  }\n\n  push_config {\n    push_endpoint = \"${google_cloud_run_v2_service.worker.uri}/pubsub/copy-requests\""),
    ("block nested one level too deep", "run.tf", "    scaling {\n", "    containers {\n      scaling {\n      }\n    }\n    scaling {\n"),
    ("missing required argument", "main.tf", "  format        = \"DOCKER\"\n", ""),
    ("missing required block", "monitoring.tf", "  metric_descriptor {\n    metric_kind  = \"DELTA\"",
     "  metric_descriptorx {\n    metric_kind  = \"DELTA\""),
    ("computed-only attribute set", "pubsub.tf", "  labels  = local.labels\n\n  ack_deadline_seconds       = var.requests_ack_deadline_seconds",
     "  labels  = local.labels\n  effective_labels = local.labels\n\n  ack_deadline_seconds       = var.requests_ack_deadline_seconds"),
    ("bad enum value", "monitoring.tf", 'metric_kind  = "DELTA"', 'metric_kind  = "COUNTER"'),
    ("bad enum value (nested)", "main.tf", 'action = "KEEP"', 'action = "RETAIN"'),
    ("block written as an argument", "pubsub.tf", "expiration_policy {\n    ttl = \"\"\n  }",
     "expiration_policy = {\n    ttl = \"\"\n  }"),
    ("argument written as a block", "main.tf", "  labels        = local.labels\n  kms_key_name  = var.artifact_registry_kms_key_name",
     "  labels        = local.labels\n  kms_key_name {\n  }"),
    ("single block written twice", "pubsub.tf", "  expiration_policy {\n    ttl = \"\"\n  }\n\n  retry_policy {\n    minimum_backoff = \"${var.requests_min_backoff_seconds}s\"",
     "  expiration_policy {\n    ttl = \"\"\n  }\n  expiration_policy {\n    ttl = \"\"\n  }\n\n  retry_policy {\n    minimum_backoff = \"${var.requests_min_backoff_seconds}s\""),
    ("misspelled dynamic block", "pubsub.tf", 'dynamic "message_storage_policy"', 'dynamic "message_storage_policies"'),
    ("misspelled argument in a dynamic block's content", "run.tf", "          value = env.value\n",
     "          val = env.value\n"),
    ("google-beta resource without provider = google-beta", "iam.tf", "  provider = google-beta\n", ""),
    ("misspelled google-beta argument", "iam.tf", "  service = each.key\n\n  depends_on", "  services = each.key\n\n  depends_on"),
    ("misspelled time_sleep argument", "monitoring.tf", "create_duration", "create_durations"),
    ("unknown resource type", "wif.tf", 'resource "google_iam_workload_identity_pool" "aws"',
     'resource "google_iam_workload_identity_pools" "aws"'),
    ("misspelled argument of a data source", "main.tf", "  project_id = var.project_id\n}",
     "  project = var.project_id\n}"),
    ("provider bound beyond the checked schema", "examples/basic/main.tf",
     'source  = "hashicorp/google-beta"\n      version = ">= 6.12, <= 6.50.0"',
     'source  = "hashicorp/google-beta"\n      version = ">= 6.12, < 7.0"'),
    ("misspelled provider argument in the example", "examples/basic/main.tf",
     'provider "google-beta" {\n  project = var.project_id\n  region  = var.region',
     'provider "google-beta" {\n  project = var.project_id\n  regoin  = var.region'),
]


def self_test(schema: dict, root: Path) -> int:
    failures = 0
    with tempfile.TemporaryDirectory(prefix="verify-schema-selftest-") as tmp:
        def fresh() -> Path:
            copy = Path(tmp) / "terraform"
            if copy.exists():
                shutil.rmtree(copy)
            shutil.copytree(root, copy, ignore=shutil.ignore_patterns(".terraform", "__pycache__"))
            return copy

        c = SchemaChecker(schema, fresh())
        if c.run() != 0:
            print("self-test: the unmutated copy fails:\n  " + "\n  ".join(c.errors), file=sys.stderr)
            return 1
        for what, fname, old, new in MUTATIONS:
            copy = fresh()
            target = copy / fname
            text = target.read_text(encoding="utf-8")
            if old not in text:
                print(f"self-test: {what}: pattern not found in {fname} (update MUTATIONS)", file=sys.stderr)
                failures += 1
                continue
            target.write_text(text.replace(old, new, 1), encoding="utf-8")
            c = SchemaChecker(schema, copy)
            if c.run() == 0:
                print(f"self-test: {what}: NOT detected", file=sys.stderr)
                failures += 1
    print(f"verify_schema self-test: {len(MUTATIONS) - failures}/{len(MUTATIONS)} mutations detected")
    return 1 if failures else 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("extract")
    e.add_argument("out", type=Path)
    e.add_argument("packages", nargs="+", help="NAME=DIR with DIR/package.json and DIR/.jsii")
    c = sub.add_parser("check")
    c.add_argument("--summary", type=Path)
    c.add_argument("schema", type=Path)
    c.add_argument("root", type=Path)
    t = sub.add_parser("self-test")
    t.add_argument("schema", type=Path)
    t.add_argument("root", type=Path)
    args = ap.parse_args()
    if args.cmd == "extract":
        return extract(args.out, args.packages)
    schema = json.loads(args.schema.read_text())
    if args.cmd == "self-test":
        return self_test(schema, args.root)
    ch = SchemaChecker(schema, args.root)
    rc = ch.run()
    for e in ch.errors:
        print(f"error: {e}", file=sys.stderr)
    versions = ", ".join(f"{n} {p['version']}" for n, p in schema["providers"].items())
    status = "OK" if rc == 0 else f"FAILED ({len(ch.errors)} errors)"
    print(f"verify_schema {status}: {ch.blocks_checked} resource and data blocks, "
          f"{ch.arguments_checked} arguments against {versions}")
    if args.summary:
        args.summary.write_text(json.dumps({"blocks": ch.blocks_checked, "arguments": ch.arguments_checked,
                                            "errors": len(ch.errors)}))
    return rc


if __name__ == "__main__":
    sys.exit(main())
