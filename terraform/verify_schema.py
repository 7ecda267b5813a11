#!/usr/bin/env python3
"""Offline provider-schema check of every resource and data block in terraform/.

`terraform validate` needs the provider plugins, which cannot be downloaded
here. The CDK for Terraform provider packages (@cdktf/provider-google and
@cdktf/provider-google-beta on npm) are generated from the providers' own
schema (`terraform providers schema -json`) and ship it, as jsii metadata
(package/.jsii), with every resource's and data source's arguments, nested
blocks, which are required, which are computed-only, and the descriptions the
provider documents them with ("Possible values", duration formats). This tool
turns that metadata into a compact schema (`extract`) and checks the module
and its examples against one schema per bound of the provider versions that
versions.tf allows (`check`): what only the older schema rejects is reported as
missing from the lower bound. It fails on

  * an argument or block the schema does not have (a misspelling, or one
    written at the wrong nesting level);
  * an attribute that is computed-only (set by the provider, never by you);
  * a required argument or block that is missing;
  * a block written as an argument (`x = {...}`) or an argument written as a
    block (`x { ... }`), and a single-item block written twice;
  * a literal string outside the enum values the schema documents, or a
    duration outside the format it documents (and "${expr}UNIT" with another
    unit than that format's);
  * an attribute read, [data.]TYPE.NAME[index].ATTR (and on through nested
    blocks), of something the resource or data source does not have;
  * a resource type that exists only in google-beta used without
    `provider = google-beta` (and one that exists in neither);
  * versions.tf allowing other provider versions than the checked ones;
  * hashicorp/time's `time_sleep`, whose schema is hard-coded below (there is
    no maintained schema package for hashicorp/time 0.13; the four arguments are those
    of registry.terraform.io/providers/hashicorp/time/latest/docs/resources/sleep
    and of @cdktf/provider-time 11.0.1, generated from time 0.13.1).

Usage:
  verify_schema.py extract OUT.json NAME=PACKAGE_DIR...    (NAME: google, google-beta)
  verify_schema.py check [--summary FILE] SCHEMA.json... TERRAFORM_DIR
  verify_schema.py self-test [--show] SCHEMA.json... TERRAFORM_DIR
"""

from __future__ import annotations

import argparse
import difflib
import json
import re
import sys
import tempfile
from pathlib import Path

from _tfcheck import copy_tree, data_blocks, expression_text, load, named_blocks, self_test as run_self_test, tf_files, unquote

# --- extract ---------------------------------------------------------------------

# Members of cdktf's generated classes that are not schema attributes.
NOT_ATTRIBUTES = {"fqn", "tfResourceType", "internalValue", "creationStack", "terraformResourceType",
                  "terraformGeneratorMetadata", "node", "friendlyUniqueId"}

RE_SNAKE = re.compile(r"#([a-z0-9_]+)\}\s*$")
RE_ENUM = re.compile(r"Possible values: \[([^\]]*)\]")
# Google's duration fields (protobuf Duration in JSON) are documented, in the
# provider's own descriptions that the jsii metadata carries, as "A duration in
# seconds with up to nine fractional digits, ending with 's'. Example: "3.5s"."
# (also "terminated by 's'", and with line breaks): the API rejects "6m".
RE_DURATION_DOC = re.compile(r"duration in seconds with up to nine\s+fractional digits,\s+(?:ending with|terminated\s+by)\s+'+s'+")


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
            if RE_DURATION_DOC.search(remarks):
                # "If ttl is set to "", the associated resource never expires." (expiration_policy.ttl)
                entry["format"] = "duration+empty" if 'set to ""' in remarks else "duration"
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
# `triggers` forces replacement; `id` is computed. create_duration and
# destroy_duration are a "[Time duration](https://golang.org/pkg/time/#ParseDuration)
# ... For example, `30s` for 30 seconds or `5m` for 5 minutes" (the same page):
# Go's time.ParseDuration format ("go-duration" below), which "30 seconds" is not.
TIME_SCHEMA = {
    "package": "hard-coded (registry.terraform.io/providers/hashicorp/time/0.13.1/docs/resources/sleep)",
    "source": "registry.terraform.io/hashicorp/time",
    "version": "0.13.1",
    "blocks": {
        "resource.time_sleep": {
            "args": {"create_duration": {"format": "go-duration"}, "destroy_duration": {"format": "go-duration"},
                     "triggers": {}},
            "computed": ["id"],
        },
    },
}

# --- check -----------------------------------------------------------------------

META_ARGS = {"count", "for_each", "depends_on", "provider", "lifecycle", "provisioner", "connection"}

# The literal formats of "format" above. Google: a protobuf Duration in JSON, seconds
# with up to nine fractional digits and an "s" ("3.5s"). Go: time.ParseDuration
# (pkg.go.dev/time#ParseDuration): "a possibly signed sequence of decimal numbers, each
# with optional fraction and a unit suffix, such as "300ms", "-1.5h" or "2h45m"", units
# ns, us (µs), ms, s, m, h.
FORMATS = {
    "duration": (re.compile(r"-?\d+(\.\d{1,9})?s"),
                 'a duration in seconds with up to nine fractional digits ending in "s", e.g. "360s" or "3.5s" '
                 "(the provider's documentation of this field)"),
    "go-duration": (re.compile(r"[-+]?(0|((\d+(\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h))+)"),
                    'a Go duration such as "30s", "5m" or "1h30m" (hashicorp/time: '
                    "registry.terraform.io/providers/hashicorp/time/latest/docs/resources/sleep, pkg.go.dev/time#ParseDuration)"),
}
FORMATS["duration+empty"] = FORMATS["duration"]

NAME = r"[A-Za-z_][A-Za-z0-9_-]*"
INDEX = r"\[[^\[\]]*\]"
# An attribute read, in an expression's text (quoted keys blanked by expression_text):
# [data.]TYPE.NAME[index].ATTR[index].ATTR...
RE_READ = re.compile(rf"(?<![\w.-])(data\.)?([a-z][a-z0-9]*_[a-z0-9_]+)\.({NAME})((?:{INDEX})?)((?:\.{NAME}(?:{INDEX})?)*)")


def literal(v) -> str | None:
    """The text of a plain string literal ("DELTA"), None for any expression or template."""
    if isinstance(v, str) and len(v) >= 2 and v[0] == '"' and v[-1] == '"' and "${" not in v and "%{" not in v:
        return v[1:-1]
    return None


def unit_of(v) -> str | None:
    """"${expr}UNIT" -> "0UNIT": a template that only appends a unit to a number is
    checked as that number with the unit ("${var.x}m" is as wrong as "6m"). None for
    any other value."""
    m = re.fullmatch(r'"\$\{[^"{}]*\}([a-zµ]+)"', v) if isinstance(v, str) else None
    return f"0{m.group(1)}" if m else None


def is_block(v) -> bool:
    return isinstance(v, list) and bool(v) and all(isinstance(x, dict) and x.get("__is_block__") for x in v)


def version_key(v: str) -> tuple[int, ...]:
    return tuple(int(x) for x in (v.split(".") + ["0", "0"])[:3])


class SchemaChecker:
    """Checks terraform/ against one schema. Messages name no provider version, so
    that the runs against the lower and the upper bound can be told apart by them."""

    def __init__(self, schema: dict, root: Path, bounds: dict[str, tuple[str, str]] | None = None):
        self.schema = schema
        self.root = root.resolve()
        self.bounds = bounds  # provider -> (lowest, highest) version checked; None: skip the constraint check
        self.errors: list[tuple[str, str | None]] = []  # (message, provider the message depends on)
        self.blocks_checked = 0
        self.arguments_checked = 0
        self.reads_checked = 0
        self.lines: dict[str, list[str]] = {}

    def err(self, msg: str, provider: str | None = None) -> None:
        self.errors.append((msg, provider))

    def provider_blocks(self, name: str) -> dict:
        return self.schema["providers"].get(name, {}).get("blocks", {})

    def line(self, fname: str, *needles: str, after: int = 0) -> int | None:
        """The first line (1-based, from line `after` on) holding every needle."""
        for n, text in enumerate(self.lines.get(fname, [])[after:], start=after + 1):
            if all(x in text for x in needles):
                return n
        return None

    def at(self, fname: str, *needles: str, after: int = 0) -> str:
        n = self.line(fname, *needles, after=after)
        return f"{fname}:{n}" if n else fname

    def lookup(self, kind: str, rtype: str, provider: str | None) -> tuple[dict | None, str]:
        """The schema of a resource (kind=resource) or data source, and the provider searched."""
        if provider is None:
            provider = rtype.split("_", 1)[0]
        provider = provider.split(".", 1)[0]  # google-beta.alias
        return self.provider_blocks(provider).get(f"{kind}.{rtype}"), provider

    def run(self) -> int:
        docs = {}
        for p in tf_files(self.root):
            rel = str(p.relative_to(self.root.parent))
            self.lines[rel] = p.read_text(encoding="utf-8").splitlines()
            try:
                docs[rel] = load(p)
            except Exception as e:  # noqa: BLE001 - verify_refs.py reports parse errors in detail
                self.err(f"{rel}: does not parse: {e}")
        declared: dict[tuple[Path, str], tuple[dict, str]] = {}  # (dir, [data.]TYPE.NAME) -> (schema, provider)
        for rel, doc in docs.items():
            for tf in doc.get("terraform", []):
                for rp in tf.get("required_providers", []):
                    for pname, req in rp.items():
                        if not pname.startswith("__") and isinstance(req, dict):
                            self.check_version(rel, pname, str(req.get("version", "")))
            for block in doc.get("provider", []):
                for pname, body in block.items():
                    if not pname.startswith("__"):
                        self.check_provider(rel, unquote(pname), body)
            for kind, blocks in (("resource", doc.get("resource", [])), ("data", data_blocks(doc))):
                for rtype, rname, body in named_blocks(blocks):
                    found = self.check_top(rel, kind, rtype, rname, body)
                    if found:
                        prefix = "data." if kind == "data" else ""
                        declared[(Path(rel).parent, f"{prefix}{rtype}.{rname}")] = found
        for rel, doc in docs.items():
            self.check_reads(rel, doc, {k: v for (d, k), v in declared.items() if d == Path(rel).parent})
        return 1 if self.errors else 0

    def check_top(self, fname: str, kind: str, rtype: str, rname: str, body: dict) -> tuple[dict, str] | None:
        if rtype.startswith("terraform_"):
            return None  # built into Terraform (terraform_data)
        self.blocks_checked += 1
        start = self.line(fname, f'"{rtype}" "{rname}"') or 0
        addr = f"{fname}:{start}: {'data.' if kind == 'data' else ''}{rtype}.{rname}" if start else \
            f"{fname}: {'data.' if kind == 'data' else ''}{rtype}.{rname}"
        prov = body.get("provider")
        prov = prov.strip("${}") if isinstance(prov, str) else None
        s, provider = self.lookup(kind, rtype, prov)
        if s is None:
            what = "data source" if kind == "data" else "resource"
            if provider not in self.schema["providers"]:
                self.err(f"{addr}: provider {provider!r} has no schema here (add it to verify_schema.py)")
            elif provider == "google" and self.provider_blocks("google-beta").get(f"{kind}.{rtype}"):
                self.err(f"{addr}: {rtype} exists only in google-beta: set provider = google-beta", "google")
            else:
                near = difflib.get_close_matches(f"{kind}.{rtype}", self.provider_blocks(provider), n=1)
                hint = f" (did you mean {near[0].split('.', 1)[1]}?)" if near else ""
                self.err(f"{addr}: {provider} has no {what} {rtype}{hint}", provider)
            return None
        self.check_body(addr, s, body, provider, fname, start, top=True)
        return s, provider

    def check_version(self, fname: str, name: str, constraint: str) -> None:
        """The module may allow only provider versions from the lowest to the highest
        one whose schema is checked: `>= LOW, <= HIGH`."""
        if self.bounds is None or name not in self.bounds:
            return
        self.blocks_checked += 1
        low, high = self.bounds[name]
        m = re.search(r">=\s*([0-9.]+)", constraint)
        where = self.at(fname, "version", constraint.strip('"'))
        if f"<= {high}" not in constraint:
            self.err(f"{where}: required_providers.{name}.version = {constraint} must end at <= {high}, the newest "
                     "version whose schema verify.sh checks")
        if m is None or version_key(m.group(1)) != version_key(low):
            self.err(f"{where}: required_providers.{name}.version = {constraint} must start at >= {low}, the oldest "
                     "version whose schema verify.sh checks (or move verify.sh's lower pin with it)")

    def check_provider(self, fname: str, name: str, body: dict) -> None:
        s = self.provider_blocks(name).get("provider")
        if s is None:
            self.err(f"{fname}: provider {name!r} has no schema here")
            return
        self.blocks_checked += 1
        opening = f'provider "{name}"'
        start = self.line(fname, opening) or 0
        self.check_body(f"{self.at(fname, opening)}: provider {name}", s,
                        {k: v for k, v in body.items() if k != "alias"}, name, fname, start)

    def check_body(self, where: str, s: dict, body: dict, provider: str, fname: str, start: int,
                   top: bool = False) -> None:
        args = s["args"]
        present: set[str] = set()
        structs = self.schema["structs"]
        for key, value in body.items():
            if key.startswith("__") or (top and key in META_ARGS):
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
                            self.unknown(where, label, s, provider, dynamic=True)
                            continue
                        for content in dbody.get("content", []):
                            self.check_body(f"{where}.{label}", structs[spec["block"]], content, provider, fname, start)
                continue
            present.add(key)
            self.arguments_checked += 1
            spec = args.get(key)
            if spec is None:
                self.unknown(where, key, s, provider)
            elif "block" in spec:
                if not is_block(value):
                    self.err(f"{where}: {key} is a block: write `{key} {{ ... }}`, not `{key} = ...`")
                    continue
                if spec.get("max_one") and len(value) > 1:
                    self.err(f"{where}: {key} is a single block, written {len(value)} times")
                for item in value:
                    self.check_body(f"{where}.{key}", structs[spec["block"]], item, provider, fname, start)
            elif is_block(value):
                self.err(f"{where}: {key} is an argument: write `{key} = ...`, not a block")
            else:
                self.check_literal(where, key, spec, value, provider, fname, start)
        for name, spec in args.items():
            if spec.get("required") and name not in present:
                self.err(f"{where}: required {'block' if 'block' in spec else 'argument'} {name!r} is missing", provider)

    def check_literal(self, where: str, key: str, spec: dict, value, provider: str, fname: str,
                      start: int) -> None:
        """A literal against the enum or format the schema documents; "${expr}UNIT" against the format."""
        lit, written = literal(value), value
        if lit is None:
            lit = unit_of(value)
            if lit is None:
                return
        else:
            written = f'"{lit}"'
        line = self.line(fname, key, written, after=start)
        loc = f"{where} ({fname}:{line})" if line else where
        if "enum" in spec and lit not in spec["enum"]:
            self.err(f"{loc}: {key} = {written} is not one of {spec['enum']}", provider)
        fmt = spec.get("format")
        if fmt and not (lit == "" and fmt == "duration+empty"):
            pattern, what = FORMATS[fmt]
            if not pattern.fullmatch(lit):
                self.err(f"{loc}: {key} = {written} is not valid: write {what}", provider)

    def unknown(self, where: str, key: str, s: dict, provider: str, dynamic: bool = False) -> None:
        what = "dynamic block" if dynamic else "argument"
        if key in s.get("computed", []):
            self.err(f"{where}: {key} is computed-only (set by the provider, not by configuration)", provider)
            return
        near = difflib.get_close_matches(key, list(s["args"]), n=1)
        hint = f" (did you mean {near[0]}?)" if near else ""
        nested = [n for n, spec in s["args"].items() if "block" in spec and
                  key in self.schema["structs"][spec["block"]]["args"]]
        if nested:
            hint += f" ({key} belongs inside the {nested[0]} block)"
        self.err(f"{where}: unsupported {what} {key!r}{hint}", provider)

    # --- attribute reads -------------------------------------------------------------

    def check_reads(self, fname: str, doc: dict, declared: dict[str, tuple[dict, str]]) -> None:
        """Every [data.]TYPE.NAME[i].ATTR (and ATTR[i].NESTED, through blocks) reads an
        argument, block or computed attribute of the schema. TYPE.NAME itself is
        verify_refs.py's (declared, indexed as it should be)."""
        for text in self.values(doc):
            for m in RE_READ.finditer(expression_text(text)):
                target = f"{m.group(1) or ''}{m.group(2)}.{m.group(3)}"
                if target not in declared:
                    continue
                s, provider = declared[target]
                path = re.findall(rf"\.({NAME})", re.sub(INDEX, "", m.group(5)))
                self.reads_checked += 1
                read = target + ("[…]" if m.group(4) else "")
                for attr in path:
                    read += f".{attr}"
                    names = set(s["args"]) | set(s.get("computed", [])) | {"id"}
                    if attr not in names:
                        near = difflib.get_close_matches(attr, sorted(names), n=1, cutoff=0.5)
                        hint = f" (did you mean {near[0]}?)" if near else ""
                        self.err(f"{self.at(fname, target, '.' + attr)}: {read} reads {attr!r}, which "
                                 f"{m.group(2)} does not have{hint}: read one of its arguments or computed "
                                 "attributes", provider)
                        break
                    spec = s["args"].get(attr, {})
                    if "block" not in spec:
                        break  # an attribute: what follows is a map key or a nested value
                    s = self.schema["structs"][spec["block"]]

    def values(self, node, key: str = "") -> list[str]:
        """Every string of a parsed file where references may be: not a variable's
        type constraint, nor a moved block's addresses."""
        out: list[str] = []
        if isinstance(node, dict):
            for k, v in node.items():
                if k.startswith("__") or k == "moved" or (key == "variable" and k == "type"):
                    continue
                out += self.values(v, "variable" if k == "variable" or key == "variable" else k)
        elif isinstance(node, list):
            for v in node:
                out += self.values(v, key)
        elif isinstance(node, str):
            out.append(node)
        return out


def check(schemas: list[dict], root: Path) -> tuple[list[str], SchemaChecker]:
    """Checks root against every schema, newest first. A mistake only an older schema
    finds is reported as the lower bound's: the module uses something that version lacks."""
    schemas = sorted(schemas, key=lambda sc: version_key(sc["providers"]["google"]["version"]), reverse=True)
    bounds = {n: (schemas[-1]["providers"][n]["version"], schemas[0]["providers"][n]["version"])
              for n in ("google", "google-beta")}
    newest = SchemaChecker(schemas[0], root, bounds)
    newest.run()
    errors = [m for m, _ in newest.errors]
    for sc in schemas[1:]:
        older = SchemaChecker(sc, root)
        older.run()
        for msg, provider in older.errors:
            if (msg, provider) in newest.errors:
                continue
            if provider in sc["providers"]:
                low, high = sc["providers"][provider]["version"], schemas[0]["providers"][provider]["version"]
                fix = ("do without it, or raise the lower bound in versions.tf (and CDKTF_GOOGLE_LOWER in verify.sh) "
                       "to a version that has it")
                if re.search(r"unsupported|has no|does not have", msg):
                    msg += (f" -- it does not exist in {provider} {low}, the oldest version versions.tf allows "
                            f"(only later versions such as {high} have it): {fix}")
                else:
                    msg += (f" -- so says {provider} {low}, the oldest version versions.tf allows ({high} accepts it): "
                            "the module must work with both")
            errors.append(msg)
    return errors, newest


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
    # Issue 30, point 2: what a reviewer seeded that passed. (a) A block only google 6.50 has
    # (vulnerability_scanning_config came after 6.12, which versions.tf allows).
    ("a: block that google 6.12 (the lower bound) lacks", "main.tf", '  format        = "DOCKER"\n',
     '  format        = "DOCKER"\n  vulnerability_scanning_config {\n    enablement_config = "INHERITED"\n  }\n'),
    # (b) A Google duration not in seconds.
    ("b: Cloud Run timeout in minutes", "run.tf", 'timeout = "${var.request_timeout_seconds}s"', 'timeout = "6m"'),
    ("b: Cloud Run timeout template in minutes", "run.tf", 'timeout = "${var.request_timeout_seconds}s"',
     'timeout = "${var.request_timeout_seconds / 60}m"'),
    # (c) A time_sleep duration Go's time.ParseDuration rejects.
    ("c: time_sleep duration in words", "iam.tf", 'create_duration = "30s"', 'create_duration = "30 seconds"'),
    # (d) Misspelt attribute reads: plain, after an index, of a data source.
    ("d: misspelt attribute read", "outputs.tf", "value       = google_cloud_run_v2_service.worker.uri\n",
     "value       = google_cloud_run_v2_service.worker.uri_typo\n"),
    ("d: misspelt attribute read after an index", "iam.tf", 'topic   = google_pubsub_topic.topic["requests"].name',
     'topic   = google_pubsub_topic.topic["requests"].nmae'),
    ("d: misspelt attribute read after [each.key]", "iam.tf", "topic   = google_pubsub_topic.topic[each.key].name",
     "topic   = google_pubsub_topic.topic[each.key].nmae"),
    ("d: misspelt data source attribute", "main.tf", "project_number = data.google_project.this.number",
     "project_number = data.google_project.this.project_number"),
]


def self_test(schemas: list[dict], root: Path, show: bool = False) -> int:
    with tempfile.TemporaryDirectory(prefix="verify-schema-selftest-") as tmp:
        def fresh() -> Path:
            copy_tree(root, Path(tmp) / "terraform")
            return Path(tmp) / "terraform"

        def passes(copy: Path) -> tuple[bool, list[str]]:
            errors, _ = check(schemas, copy)
            return not errors, errors

        return run_self_test("verify_schema", MUTATIONS, fresh, passes, show)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("extract")
    e.add_argument("out", type=Path)
    e.add_argument("packages", nargs="+", help="NAME=DIR with DIR/package.json and DIR/.jsii")
    c = sub.add_parser("check")
    c.add_argument("--summary", type=Path)
    c.add_argument("schemas", type=Path, nargs="+", help="one schema per bound (extract's output)")
    c.add_argument("root", type=Path)
    t = sub.add_parser("self-test")
    t.add_argument("--show", action="store_true", help="print the message each seeded mistake produces")
    t.add_argument("schemas", type=Path, nargs="+")
    t.add_argument("root", type=Path)
    args = ap.parse_args()
    if args.cmd == "extract":
        return extract(args.out, args.packages)
    schemas = [json.loads(p.read_text()) for p in args.schemas]
    if args.cmd == "self-test":
        return self_test(schemas, args.root, args.show)
    errors, ch = check(schemas, args.root)
    for e in errors:
        print(f"error: {e}", file=sys.stderr)
    versions = {n: sorted({sc["providers"][n]["version"] for sc in schemas}, key=version_key)
                for n in schemas[0]["providers"]}
    against = ", ".join(f"{n} {' and '.join(v)}" for n, v in versions.items())
    status = "OK" if not errors else f"FAILED ({len(errors)} errors)"
    print(f"verify_schema {status}: {ch.blocks_checked} resource and data blocks, {ch.arguments_checked} "
          f"arguments, {ch.reads_checked} attribute reads against {against}")
    if args.summary:
        args.summary.write_text(json.dumps({"blocks": ch.blocks_checked, "arguments": ch.arguments_checked,
                                            "reads": ch.reads_checked, "google": versions["google"],
                                            "errors": len(errors)}))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
