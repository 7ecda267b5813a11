#!/usr/bin/env python3
"""Static checks of the copy-worker Terraform module, without terraform init.

`terraform validate` needs the provider plugins, which cannot be downloaded
here (and should not have to be in CI). This checker covers what can be
checked without them:

1. Every .tf file under the given root parses (python-hcl2).
2. In every directory with .tf files (the module and each example), every
   reference resolves to a declaration of that directory:
   var.X, local.X, module.X(.OUTPUT), data.TYPE.NAME, TYPE.NAME (resources of
   the declared providers). Instances are addressed correctly: a resource
   with count/for_each is indexed before an attribute is read, one without is
   never indexed. Duplicate declarations, unused variables and locals are
   errors.
3. Module calls with a local source: every argument is a variable of the
   called module, every variable without a default is passed, and every
   module.X.OUTPUT exists in the called module.
4. Contract checks of the module against DESIGN.md §2 and §5 (every variable the
   worker gets is in DESIGN.md §5's table and read by src/config/, none of the
   removed ones is) and the classic Pub/Sub misconfigurations (the README's
   pre-flight checklist, statically);
   the Vertex AI grants copies need (service agent on source projects, on by
   default; KMS keys; the worker's aiplatform.models.get on sources; the
   plan-time preconditions); the monitoring (alerts on the dead-letter
   backlog, the oldest unacked message of both push subscriptions and each
   queue's failing dispatches within 15 minutes; a dashboard);
   and that docs/ec2.md and the README's EC2 section name the same pool,
   provider, attribute mapping and impersonation as wif.tf; issue #27: the two
   queues (copy-starts at vertex_copy_rate, copy-polls at what the starts'
   reads leave of vertex_read_rate, a precondition when nothing is left), the
   variables that name them, the tasks account (its invoker role, the
   worker's actAs on it and on no other account), and the upgrade
   (copy-operations only while drained, moved blocks, no removed setting
   outside the README's upgrade section); and issue #23: the ingress rule, the
   replay account's grants, and the waiter role (permissions, no condition
   Pub/Sub would ignore, docs that agree).

What the Rust tests hold is not checked here: the names, routes, ack
deadlines, backoffs and dead-letter policies of the topics, subscriptions and
queues, READS_PER_START and DISPATCH_DEADLINE (src/topology/terraform.rs,
against src/topology.rs), and the log lines and fields the log-based metrics
and the failed-copies alert count (src/telemetry/events/tests.rs).

Usage: verify_refs.py [--summary FILE] TERRAFORM_DIR
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from _tfcheck import copy_tree, data_blocks, expression_text, load, self_test as run_self_test, tf_files, unquote

# Providers whose resource types may appear as bare TYPE.NAME references, in
# addition to the required_providers of each directory.
BUILTIN_PROVIDERS = {"terraform"}

# Module call arguments that are meta-arguments, not variables.
MODULE_META_ARGS = {"source", "version", "count", "for_each", "providers", "depends_on"}

# The worker's environment is read from docs/DESIGN.md §5 (its table) and from the flags
# of src/config/ (`env = "NAME"`): the module may set a variable only when both name it.

# Issue #27: settings of the watch-message release that are gone. No variable, output,
# environment variable or text of the module names them, except the README's section
# "Upgrading from the watch-message release"; DESIGN.md §5 no longer lists them.
REMOVED_ENV = ("COPY_OPERATIONS_TOPIC", "WATCH_HOLD", "COPY_OPERATIONS_ACK_DEADLINE", "WORKER_INSTANCES",
               "VERTEX_COPY_RATE", "VERTEX_READ_RATE", "COPY_START_URL", "COPY_START_SERVICE_ACCOUNT")
REMOVED_VARIABLES = ("watch_hold_seconds", "operations_ack_deadline_seconds", "operations_min_backoff_seconds",
                     "operations_max_backoff_seconds", "alert_operations_oldest_unacked_seconds", "copy_start_url")
UPGRADE_SECTION = "Upgrading from the watch-message release"

# The waiter's custom role (DESIGN.md §6): its own subscriptions, and the sweep of
# abandoned ones (list, and update to move their `expires` label).
WAITER_PERMISSIONS = {"pubsub.subscriptions.create", "pubsub.subscriptions.get", "pubsub.subscriptions.consume",
                      "pubsub.subscriptions.delete", "pubsub.subscriptions.list", "pubsub.subscriptions.update"}

# DESIGN.md §2 defaults the module's variables must carry. The names, ack deadline,
# backoffs and delivery attempts of the subscriptions and queues are held by the Rust tests
# of src/topology/terraform.rs against src/topology.rs; these are what no Rust test reads.
DESIGN_DEFAULTS = {
    "vertex_copy_rate": 30,
    "vertex_read_rate": 300,
    "drain_copy_operations": False,
}
# The tasks account's name (names.tasks_service_account): no constant of src/topology.rs.
DESIGN_NAMES = {"tasks_service_account": "copy-worker-tasks"}
# The queues' longest retry backoff the failing-dispatch alert allows for (variables.tf).
MAX_TASK_BACKOFF_SECONDS = 300

NAME = r"[A-Za-z_][A-Za-z0-9_-]*"
# Identifiers may contain '-', so a reference is not preceded by a word
# character, '.', or '-'.
RE_REF = re.compile(rf"(?<![\w.-])(var|local|module|data)\.({NAME})(?:\.({NAME}))?")
RE_RES = re.compile(rf"(?<![\w.-])([a-z][a-z0-9]*_[a-z0-9_]+)\.({NAME})")


def strip_meta(node):
    """Drop python-hcl2's bookkeeping keys (__comments__, __is_block__)."""
    if isinstance(node, dict):
        return {k: strip_meta(v) for k, v in node.items() if not k.startswith("__")}
    if isinstance(node, list):
        return [strip_meta(v) for v in node]
    return node


def flatten(node) -> str:
    """All keys and string values of a parsed block, one per line, unescaped."""
    if isinstance(node, dict):
        return "\n".join(f"{k} = {flatten(v)}" for k, v in node.items())
    if isinstance(node, list):
        return "\n".join(flatten(v) for v in node)
    return str(node)


@dataclass
class Decl:
    file: str
    counted: bool = False  # count or for_each


@dataclass
class Ref:
    file: str
    where: str
    kind: str  # var, local, module, data, resource
    name: str  # X, or TYPE.NAME
    attr: str | None
    following: str  # the character after the reference ('' at end)


@dataclass
class ModuleDir:
    path: Path
    files: dict[str, dict] = field(default_factory=dict)
    providers: set[str] = field(default_factory=set)
    variables: dict[str, Decl] = field(default_factory=dict)
    variable_defaults: dict[str, object] = field(default_factory=dict)
    variable_has_default: dict[str, bool] = field(default_factory=dict)
    locals: dict[str, Decl] = field(default_factory=dict)
    local_values: dict[str, object] = field(default_factory=dict)
    resources: dict[str, Decl] = field(default_factory=dict)
    resource_bodies: dict[str, dict] = field(default_factory=dict)
    data: dict[str, Decl] = field(default_factory=dict)
    modules: dict[str, Decl] = field(default_factory=dict)
    module_bodies: dict[str, dict] = field(default_factory=dict)
    outputs: dict[str, Decl] = field(default_factory=dict)
    refs: list[Ref] = field(default_factory=list)


class Checker:
    def __init__(self, root: Path):
        self.root = root.resolve()
        self.errors: list[str] = []
        self.warnings: list[str] = []
        self.files_parsed = 0
        self.references_checked = 0
        self.contract_checks = 0
        self.dirs: dict[Path, ModuleDir] = {}

    # --- loading ----------------------------------------------------------------

    def err(self, msg: str) -> None:
        self.errors.append(msg)

    def rel(self, p: Path) -> str:
        try:
            return str(p.resolve().relative_to(self.root.parent))
        except ValueError:
            return str(p)

    def load(self) -> None:
        files = tf_files(self.root)
        if not files:
            self.err(f"no .tf files under {self.root}")
        for p in files:
            d = self.dirs.setdefault(p.parent.resolve(), ModuleDir(p.parent.resolve()))
            try:
                d.files[self.rel(p)] = strip_meta(load(p))
                self.files_parsed += 1
            except Exception as e:  # noqa: BLE001 - report any parser failure
                self.err(f"{self.rel(p)}: does not parse: {type(e).__name__}: {e}")

    def declare(self, table: dict, key: str, decl: Decl, what: str) -> None:
        if key in table:
            self.err(f"{decl.file}: duplicate {what} {key!r} (also in {table[key].file})")
        else:
            table[key] = decl

    def index(self, d: ModuleDir) -> None:
        for fname, doc in d.files.items():
            for tf in doc.get("terraform", []):
                for rp in tf.get("required_providers", []):
                    d.providers.update(rp)
            for block in doc.get("variable", []):
                for name, body in block.items():
                    name = unquote(name)
                    self.declare(d.variables, name, Decl(fname), "variable")
                    d.variable_has_default[name] = "default" in body
                    d.variable_defaults[name] = body.get("default")
            for block in doc.get("locals", []):
                for name, value in block.items():
                    self.declare(d.locals, name, Decl(fname), "local")
                    d.local_values[name] = value
            for block in doc.get("resource", []):
                for rtype, named in block.items():
                    for rname, body in named.items():
                        key = f"{unquote(rtype)}.{unquote(rname)}"
                        counted = "count" in body or "for_each" in body
                        self.declare(d.resources, key, Decl(fname, counted), "resource")
                        d.resource_bodies[key] = body
            for block in data_blocks(doc):
                for dtype, named in block.items():
                    for dname, body in named.items():
                        key = f"{unquote(dtype)}.{unquote(dname)}"
                        counted = "count" in body or "for_each" in body
                        self.declare(d.data, key, Decl(fname, counted), "data source")
            for block in doc.get("module", []):
                for mname, body in block.items():
                    mname = unquote(mname)
                    counted = "count" in body or "for_each" in body
                    self.declare(d.modules, mname, Decl(fname, counted), "module")
                    d.module_bodies[mname] = body
            for block in doc.get("output", []):
                for oname in block:
                    self.declare(d.outputs, unquote(oname), Decl(fname), "output")
        d.providers |= BUILTIN_PROVIDERS
        if not d.providers - BUILTIN_PROVIDERS:
            # A directory without required_providers (none here) would still
            # use the google provider implicitly.
            d.providers.add("google")

    # --- reference collection ------------------------------------------------------

    def collect(self, d: ModuleDir) -> None:
        for fname, doc in d.files.items():
            for top, blocks in doc.items():
                for block in blocks if isinstance(blocks, list) else [blocks]:
                    if top == "moved" and isinstance(block, dict):
                        # `from` names an address of an earlier configuration, which is
                        # gone by definition; `to` must resolve like any reference.
                        block = {k: v for k, v in block.items() if k != "from"}
                    self.walk(d, fname, top, block, skip_type=(top == "variable"))

    def walk(self, d: ModuleDir, fname: str, where: str, node, skip_type: bool = False) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                # A variable's type constraint is not an expression with references.
                if skip_type and k == "type":
                    continue
                self.walk(d, fname, f"{where}.{unquote(k)}", v, skip_type)
        elif isinstance(node, list):
            for item in node:
                self.walk(d, fname, where, item, skip_type)
        elif isinstance(node, str):
            self.scan(d, fname, where, node)

    def scan(self, d: ModuleDir, fname: str, where: str, value: str) -> None:
        text = expression_text(value)
        taken: list[tuple[int, int]] = []
        for m in RE_REF.finditer(text):
            kind, a, b = m.group(1), m.group(2), m.group(3)
            if kind == "data":
                if b is None:
                    self.err(f"{fname}: {where}: malformed data reference {m.group(0)!r}")
                    continue
                name, attr, end = f"{a}.{b}", None, m.end()
            elif kind == "module":
                name, attr, end = a, b, m.end()
            else:
                name, attr, end = a, None, m.end(2)
            following = text[end:end + 1]
            d.refs.append(Ref(fname, where, kind, name, attr, following))
            taken.append((m.start(), m.end()))
        for m in RE_RES.finditer(text):
            if any(s <= m.start() < e for s, e in taken):
                continue
            rtype = m.group(1)
            if rtype.split("_", 1)[0] not in d.providers:
                continue  # an iterator or object attribute such as push_config.value
            following = text[m.end():m.end() + 1]
            d.refs.append(Ref(fname, where, "resource", f"{rtype}.{m.group(2)}", None, following))

    # --- resolution ---------------------------------------------------------------------

    def resolve(self, d: ModuleDir) -> None:
        used_vars: set[str] = set()
        used_locals: set[str] = set()
        used_data: set[str] = set()
        for r in d.refs:
            self.references_checked += 1
            loc = f"{r.file}: {r.where}"
            if r.kind == "var":
                used_vars.add(r.name)
                if r.name not in d.variables:
                    self.err(f"{loc}: var.{r.name} is not declared")
            elif r.kind == "local":
                used_locals.add(r.name)
                if r.name not in d.locals:
                    self.err(f"{loc}: local.{r.name} is not declared")
            elif r.kind == "data":
                used_data.add(r.name)
                self.check_instance(loc, f"data.{r.name}", d.data.get(r.name), r.following)
            elif r.kind == "resource":
                self.check_instance(loc, r.name, d.resources.get(r.name), r.following)
            elif r.kind == "module":
                decl = d.modules.get(r.name)
                if decl is None:
                    self.err(f"{loc}: module.{r.name} is not declared")
                    continue
                if decl.counted and r.attr is not None:
                    self.err(f"{loc}: module.{r.name} has count/for_each; index it before reading .{r.attr}")
                if r.attr is not None:
                    target = self.module_target(d, r.name)
                    if target is not None and r.attr not in target.outputs:
                        self.err(f"{loc}: module.{r.name}.{r.attr}: the module has no output {r.attr!r}")
        for name, decl in d.variables.items():
            if name not in used_vars:
                self.err(f"{decl.file}: variable {name!r} is declared but never used")
        for name, decl in d.locals.items():
            if name not in used_locals:
                self.err(f"{decl.file}: local {name!r} is declared but never used")
        for name, decl in d.data.items():
            if name not in used_data:
                self.warnings.append(f"{decl.file}: data.{name} is never used")

    def check_instance(self, loc: str, label: str, decl: Decl | None, following: str) -> None:
        if decl is None:
            self.err(f"{loc}: {label} is not declared")
        elif decl.counted and following == ".":
            self.err(f"{loc}: {label} has count/for_each; index it before reading an attribute")
        elif not decl.counted and following == "[":
            self.err(f"{loc}: {label} has no count/for_each and cannot be indexed")

    def module_target(self, d: ModuleDir, name: str) -> ModuleDir | None:
        source = unquote(str(d.module_bodies[name].get("source", "")))
        if not source.startswith(("./", "../")):
            return None  # registry or git module: not checkable offline
        target = (d.path / source).resolve()
        return self.dirs.get(target)

    def check_module_calls(self, d: ModuleDir) -> None:
        for name, body in d.module_bodies.items():
            source = unquote(str(body.get("source", "")))
            loc = f"{d.modules[name].file}: module.{name}"
            target = self.module_target(d, name)
            if target is None:
                if source.startswith(("./", "../")):
                    self.err(f"{loc}: source {source!r} is not a directory with .tf files under {self.root}")
                continue
            args = set(body) - MODULE_META_ARGS
            for a in sorted(args - set(target.variables)):
                self.err(f"{loc}: argument {a!r} is not a variable of {source}")
            for v, has_default in sorted(target.variable_has_default.items()):
                if not has_default and v not in args:
                    self.err(f"{loc}: required variable {v!r} of {source} is not set")
            self.references_checked += len(args)

    # --- contract checks (DESIGN.md, pre-flight checklist) -------------------------------

    def contract(self, cond: bool, msg: str) -> None:
        self.contract_checks += 1
        if not cond:
            self.err(f"contract: {msg}")

    def check_contracts(self, d: ModuleDir) -> None:
        subs = {k: v for k, v in d.resource_bodies.items() if k.startswith("google_pubsub_subscription.")}
        if not subs:
            return  # an example: only the module itself carries the topology

        def first(body, key):
            v = body.get(key)
            return v[0] if isinstance(v, list) and v and isinstance(v[0], dict) else None

        def refs_in(v) -> str:
            return expression_text(v) if isinstance(v, str) else ""

        def base(v) -> str:
            # '${google_x.y["k"].id}' -> 'google_x.y["k"]' (raw text: the key matters)
            t = v.strip() if isinstance(v, str) else ""
            if t.startswith("${") and t.endswith("}"):
                t = t[2:-1].strip()
            return re.sub(r"\.(id|name|email|member)$", "", t)

        iam = {k: v for k, v in d.resource_bodies.items() if "_iam_member." in k}
        agent = "local.pubsub_agent_member"

        # Design defaults.
        for var, want in DESIGN_DEFAULTS.items():
            self.contract(d.variable_defaults.get(var) == want,
                          f"variable {var} defaults to {d.variable_defaults.get(var)!r}, DESIGN.md §2 says {want!r}")
        names_type = ""
        for doc in d.files.values():
            for block in doc.get("variable", []):
                if '"names"' in block:
                    names_type = block['"names"'].get("type", "")
        for attr, want in DESIGN_NAMES.items():
            self.contract(re.search(rf'\b{attr}\s*=\s*optional\(string,\s*"{re.escape(want)}"\)', names_type) is not None,
                          f"names.{attr} must default to {want!r} (DESIGN.md §2)")
        dflt = d.variable_defaults
        # local.task_dispatch_deadline_seconds equals DISPATCH_DEADLINE of src/topology.rs: the
        # Rust test terraform_derives_the_poll_rate_and_the_dispatch_deadline_as_the_topology_does.
        dispatch = d.local_values.get("task_dispatch_deadline_seconds")
        self.contract(isinstance(dflt.get("request_timeout_seconds"), (int, float)) and isinstance(dispatch, int) and
                      dflt["request_timeout_seconds"] > max(dflt.get("requests_ack_deadline_seconds", 0), dispatch),
                      "default request_timeout_seconds must exceed the requests' default ack deadline and the "
                      f"tasks' dispatch deadline (local.task_dispatch_deadline_seconds = {dispatch})")
        self.contract(any(re.search(r"var\.request_timeout_seconds\s*>", c) and "var.requests_ack_deadline_seconds" in c
                          and re.search(rf"\(\s*{dispatch}\s*\)", c) for c in self.preconditions(d)),
                      "a precondition must keep request_timeout_seconds above requests_ack_deadline_seconds and the "
                      "tasks' dispatch deadline (local.task_dispatch_deadline_seconds)")

        for key, body in subs.items():
            # Subscriptions must never expire (a quiet dead-letter subscription would vanish).
            exp = first(body, "expiration_policy")
            self.contract(exp is not None and exp.get("ttl") in ('""', ""),
                          f"{key} needs expiration_policy {{ ttl = \"\" }}")
            push = first(body, "push_config")
            if push is not None:
                oidc = first(push, "oidc_token")
                self.contract(oidc is not None, f"{key}: push without oidc_token")
                if oidc is None:
                    continue
                self.contract(bool(refs_in(oidc.get("audience", "")).strip()),
                              f"{key}: oidc_token.audience must be explicit and equal PUSH_AUDIENCE")
                sa = base(oidc.get("service_account_email", ""))
                self.contract(any(k.startswith("google_service_account_iam_member.") and
                                  base(b.get("service_account_id")) == sa and
                                  "serviceAccountTokenCreator" in str(b.get("role")) and
                                  agent in refs_in(b.get("member"))
                                  for k, b in iam.items()),
                              f"{key}: the Pub/Sub service agent needs token creator on {sa}")
                self.contract(any(k.startswith("google_cloud_run_v2_service_iam_member.") and
                                  "run.invoker" in str(b.get("role")) and base(b.get("member")) == sa
                                  for k, b in iam.items()),
                              f"{key}: {sa} needs roles/run.invoker on the service")
            dlp = first(body, "dead_letter_policy")
            if dlp is not None:
                # That the dead-letter topic has a subscription (copy-dead-letter-replay) is the
                # Rust tests' (each_push_subscription_is_deployed_as_the_topology_says,
                # the_replay_subscription_is_a_pull_subscription_on_the_dead_letter_topic).
                topic = base(dlp.get("dead_letter_topic"))
                self.contract(any(k.startswith("google_pubsub_topic_iam_member.") and base(b.get("topic")) == topic
                                  and "pubsub.publisher" in str(b.get("role")) and agent in refs_in(b.get("member"))
                                  for k, b in iam.items()),
                              f"{key}: the Pub/Sub service agent needs publisher on {topic}")
                self.contract(any(k.startswith("google_pubsub_subscription_iam_member.") and base(b.get("subscription")) == key
                                  and "pubsub.subscriber" in str(b.get("role")) and agent in refs_in(b.get("member"))
                                  for k, b in iam.items()),
                              f"{key}: the Pub/Sub service agent needs subscriber on it")
        # The routes the push subscriptions deliver to are held by the Rust test
        # each_push_subscription_is_deployed_as_the_topology_says (src/topology/terraform.rs).

        # Only the push and tasks accounts (and explicit direct callers) may invoke;
        # nothing public, and Cloud Run's invoker check stays on: with PUSH_AUTH=cloud-run
        # it is what verifies the tokens' signatures (issue #23).
        for fname, doc in d.files.items():
            self.contract("allUsers" not in json.dumps(doc) and "allAuthenticatedUsers" not in json.dumps(doc),
                          f"{fname}: grants to allUsers/allAuthenticatedUsers are not allowed")
        for key, body in self.bodies(d, "google_cloud_run_v2_service").items():
            self.contract(str(body.get("invoker_iam_disabled", "false")).strip('"${} ') in ("false", "False"),
                          f"{key}: invoker_iam_disabled must stay false (Cloud Run's invoker check verifies the push tokens)")
        allowed_invokers = {"${google_service_account.push.member}", "${google_service_account.tasks.member}",
                            "${google_service_account.publisher.member}", '"serviceAccount:${each.value}"'}
        for key, body in self.bodies(d, "google_cloud_run_v2_service_iam_member").items():
            member = str(body.get("member"))
            # Issue #28: the worker reads its own service (roles/run.viewer), nothing more.
            if str(body.get("role")).strip('"') == "roles/run.viewer":
                self.contract(member == "${google_service_account.worker.member}",
                              f"{key}: roles/run.viewer on the service only for the worker account, not {member}")
                continue
            self.contract(member in allowed_invokers and
                          (member != '"serviceAccount:${each.value}"' or "var.http_invoker_service_accounts" in flatten(body.get("for_each", ""))),
                          f"{key}: roles/run.invoker only for the push and tasks accounts, the publisher and "
                          f"var.http_invoker_service_accounts, not {member}")

        # Environment names are those of DESIGN.md §5, and PORT is left to Cloud Run.
        env_keys: set[str] = set()
        for doc in d.files.values():
            for block in doc.get("locals", []):
                env = block.get("worker_env")
                if isinstance(env, str):
                    env_keys |= set(re.findall(r"\b([A-Z][A-Z0-9_]+)\s*=", expression_text(env)))
        self.contract(bool(env_keys), "local.worker_env (the worker's environment) not found")
        design_env = self.design_env()
        self.contract(bool(design_env), "docs/DESIGN.md §5 (\"## 5. Configuration\") has no table of variables")
        unknown = env_keys - design_env
        self.contract(not unknown, f"worker env sets names that docs/DESIGN.md §5 does not list: {sorted(unknown)}")
        config = self.root.parent / "src" / "config"
        config_rs = "".join(f.read_text(encoding="utf-8") for f in sorted(config.glob("*.rs")))
        for name in sorted(env_keys):
            self.contract(f'env = "{name}"' in config_rs,
                          f"worker env sets {name}, which `copy-worker serve` does not read (no env = \"{name}\" in {config})")
        self.contract("PORT" not in env_keys, "worker env must not set PORT (Cloud Run sets it)")
        for name in REMOVED_ENV:
            self.contract(name not in env_keys, f"worker env sets {name}, which issue #27 removed")
            self.contract(name not in design_env, f"docs/DESIGN.md §5 still lists {name}, which issue #27 removed")

        push_auth = re.findall(r'\bPUSH_AUTH\s*=\s*"([^"]*)"', flatten(d.local_values.get("worker_env", "")))
        self.contract(push_auth == ["cloud-run"],
                      f"worker env must set PUSH_AUTH = \"cloud-run\" (Cloud Run verifies the token signature), not {push_auth}")

        self.check_vertex_iam(d)
        self.check_first_apply(d)
        self.check_monitoring(d)
        self.check_ec2_docs(d)
        self.check_task_queues(d)
        self.check_drain(d)
        self.check_ingress(d)
        self.check_replay(d)
        self.check_waiter(d)

    # --- helpers for the checks below ------------------------------------------------------

    def design_env(self) -> set[str]:
        """Every variable docs/DESIGN.md §5 lists: the backticked names in the first
        column of its table ("| `SOURCE_PROJECT`, `TARGET_PROJECT`, `LOCATION` | ...")."""
        design = self.root.parent / "docs" / "DESIGN.md"
        text = design.read_text(encoding="utf-8") if design.is_file() else ""
        m = re.search(r"^## 5\. Configuration.*?(?=^## )", text, re.M | re.S)
        names: set[str] = set()
        for line in (m.group(0) if m else "").splitlines():
            cells = line.split("|")
            if line.startswith("|") and len(cells) > 2:
                names |= set(re.findall(r"`([A-Z][A-Z0-9_]+)`", cells[1]))
        return names

    def alert_entries(self, d: ModuleDir) -> list[dict]:
        """The entries of the alert tables (locals) that an alert policy's for_each reads."""
        out = []
        for body in self.bodies(d, "google_monitoring_alert_policy").values():
            names = set(re.findall(r"local\.(\w+)", flatten(body.get("for_each", ""))))
            for n in list(names):
                names |= set(re.findall(r"local\.(\w+)", flatten(d.local_values.get(n, ""))))
            for n in sorted(names):
                table = d.local_values.get(n)
                if isinstance(table, dict):
                    out += [e for e in table.values() if isinstance(e, dict)]
        return out

    def seconds(self, d: ModuleDir, value) -> int | None:
        """A duration such as "600s", written out or through a local."""
        m = re.search(r'"(\d+)s"', self.expand(d, value if value is not None else ""))
        return int(m.group(1)) if m else None

    def env_values(self, d: ModuleDir) -> dict[str, str]:
        """KEY -> the expression text of each variable set in the first object of
        local.worker_env (the variables the module always sets)."""
        text = str(d.local_values.get("worker_env", ""))
        start = text.find("{", text.find("merge(") + 1) if "merge(" in text else -1
        if start < 0:
            return {}
        out, depth, i, item_start = {}, 0, start, start + 1
        in_str = False
        while i < len(text):
            c = text[i]
            if in_str:
                if c == "\\":
                    i += 1
                elif c == '"':
                    in_str = False
            elif c == '"':
                in_str = True
            elif c in "{([":
                depth += 1
            elif c in "})]":
                depth -= 1
            if not in_str and ((c == "," and depth == 1) or depth == 0):
                m = re.match(r"\s*([A-Z][A-Z0-9_]*)\s*=\s*(.*)$", text[item_start:i], re.S)
                if m:
                    out[m.group(1)] = m.group(2).strip()
                item_start = i + 1
                if depth == 0:
                    break
            i += 1
        return out

    def expand(self, d: ModuleDir, value, depth: int = 6) -> str:
        """Text of `value` with every local.X(.key) replaced by the local's own text.

        local.X.key descends into an object local, so that e.g.
        local.subscription_ids.dead_letter expands to the one subscription it
        names, not to the whole map. Literal text is kept (log filters are
        literals); nesting is bounded by `depth`.
        """
        text = flatten(value)
        if depth == 0:
            return text

        def sub(m: re.Match) -> str:
            name, path = m.group(1), m.group(2) or ""
            if name not in d.local_values:
                return m.group(0)
            v, rest = d.local_values[name], path
            while True:
                step = re.match(r"\.([A-Za-z_][A-Za-z0-9_-]*)|\[\\?\"([^\"\\]+)\\?\"\]", rest)
                if step is None or not isinstance(v, dict) or (step.group(1) or step.group(2)) not in v:
                    break
                v, rest = v[step.group(1) or step.group(2)], rest[step.end():]
            # A key that cannot be followed (the local is an expression) stays
            # visible after the expansion, e.g. (...)["completions"].
            return " (" + self.expand(d, v, depth - 1) + ")" + rest + " "

        text = re.sub(r"local\.([A-Za-z_][A-Za-z0-9_]*)((?:\.[A-Za-z_][A-Za-z0-9_-]*|\[\\?\"[^\"\\]+\\?\"\])*)", sub, text)
        # time_sleep.X.triggers[...] passes its triggers' values on (the chaining
        # hashicorp/time documents): show what they are made of.
        return re.sub(r"time_sleep\.(\w+)\.triggers",
                      lambda m: " (" + flatten(d.resource_bodies.get(f"time_sleep.{m.group(1)}", {}).get("triggers", ""))
                      + ") ", text)

    def bodies(self, d: ModuleDir, rtype: str) -> dict[str, dict]:
        return {k: v for k, v in d.resource_bodies.items() if k.startswith(rtype + ".")}

    def preconditions(self, d: ModuleDir) -> list[str]:
        out = []
        for body in d.resource_bodies.values():
            for lc in body.get("lifecycle", []) or []:
                for pc in lc.get("precondition", []) if isinstance(lc, dict) else []:
                    out.append(self.expand(d, pc.get("condition", "")))
        return out

    # --- Vertex AI grants (issue #14: IAM that works the first time) ---------------------------

    def check_vertex_iam(self, d: ModuleDir) -> None:
        dflt = d.variable_defaults
        self.contract(dflt.get("grant_vertex_service_agent_on_sources") is True,
                      "grant_vertex_service_agent_on_sources must default to true: without the grant every "
                      "cross-project copy fails with PERMISSION_DENIED")
        project_grants = self.bodies(d, "google_project_iam_member")
        kms_grants = self.bodies(d, "google_kms_crypto_key_iam_member")

        def full(body) -> str:
            return self.expand(d, body)

        # The destination projects' Vertex AI service agents, created by
        # google_project_service_identity.vertex (issue #21: an agent that
        # does not exist yet cannot be granted anything).
        agent = "google_project_service_identity.vertex"
        identity = self.bodies(d, "google_project_service_identity").get("google_project_service_identity.vertex", {})
        self.contract('"aiplatform.googleapis.com"' in flatten(identity) and "var.destination_projects" in flatten(identity),
                      "google_project_service_identity.vertex must create the aiplatform.googleapis.com agent of each "
                      "of var.destination_projects")
        self.contract(any("aiplatform.serviceAgent" in str(b.get("role")) and agent in full(b)
                          and "var.source_projects" in full(b) and "var.grant_vertex_service_agent_on_sources" in full(b)
                          for b in project_grants.values()),
                      "no roles/aiplatform.serviceAgent grant of the destination Vertex AI service agents on "
                      "var.source_projects (gated by var.grant_vertex_service_agent_on_sources)")
        self.contract(any("cryptoKeyEncrypterDecrypter" in str(b.get("role")) and agent in full(b)
                          and "var.kms_keys" in full(b) for b in kms_grants.values()),
                      "no roles/cloudkms.cryptoKeyEncrypterDecrypter grant of the Vertex AI service agents driven by var.kms_keys")
        self.contract(unquote(str(dflt.get("source_model_reader_role"))) == "roles/aiplatform.viewer",
                      "source_model_reader_role must default to roles/aiplatform.viewer (aiplatform.models.get)")
        self.contract(any("google_service_account.worker" in full(b) and
                          re.search(r"for (\w+) in var\.source_projects\s*:(?:(?!\bfor\b).)*?var\.source_model_reader_role", full(b), re.S)
                          for b in project_grants.values()),
                      "the worker account needs source_model_reader_role (aiplatform.models.get) on var.source_projects")
        conds = self.preconditions(d)
        self.contract(any("var.grant_vertex_service_agent_on_sources" in c and "var.source_projects" in c for c in conds),
                      "no precondition fails the plan when cross-project copies lack the service-agent grant")
        self.contract(any("var.vertex_cmek_enabled" in c and "var.kms_keys" in c for c in conds),
                      "no precondition fails the plan when vertex_cmek_enabled is set without kms_keys")

    # --- Monitoring (issue #16) ------------------------------------------------------------------

    def check_monitoring(self, d: ModuleDir) -> None:
        self.contract(d.variable_defaults.get("monitoring_enabled") is True, "monitoring_enabled must default to true")
        metrics = {k: self.expand(d, b) for k, b in self.bodies(d, "google_logging_metric").items()}
        dashboards = {k: self.expand(d, b) for k, b in self.bodies(d, "google_monitoring_dashboard").items()}
        # Texts that each describe one alert: condition filters written out in
        # a policy, and the object entries of the locals a policy's for_each
        # reads (an alert table), so that a subscription named by one alert
        # never counts for another.
        alert_filters = [self.expand(d, e) for e in self.alert_entries(d)]
        for body in self.bodies(d, "google_monitoring_alert_policy").values():
            for cond in body.get("conditions", []) or []:
                for thr in cond.get("condition_threshold", []) or []:
                    if "each." not in str(thr.get("filter", "")):
                        alert_filters.append(self.expand(d, thr.get("filter", "")))

        def alert_on(metric: str, subscription: str) -> bool:
            return any(metric in t and f"google_pubsub_subscription.{subscription}." in t for t in alert_filters)

        self.contract(alert_on("num_undelivered_messages", "dead_letter_replay"),
                      "no alert policy on num_undelivered_messages of the dead-letter subscription")
        for sub in ("requests_push", "callbacks_push"):
            self.contract(alert_on("oldest_unacked_message_age", sub),
                          f"no alert policy on oldest_unacked_message_age of {sub}")
        # Issue #27: no alert on the previous release's copy-operations-push (it exists only
        # while an upgrade drains it); an alert on each queue's failing dispatches that fires
        # within 15 minutes, and keeps firing for a single task that keeps failing.
        self.contract(not any("operations_drain" in t or "operations_push" in t for t in alert_filters),
                      "an alert policy watches copy-operations-push, which exists only while an upgrade drains it")
        queues = {k: self.expand(d, v) for k, v in (d.local_values.get("queue_ids") or {}).items()} \
            if isinstance(d.local_values.get("queue_ids"), dict) else {}
        self.contract(set(queues) == {"starts", "polls"}, "monitoring.tf: local.queue_ids must name the two queues, starts and polls")
        for key, qid in sorted(queues.items()):
            failing = [e for e in self.alert_entries(d) if "task_attempt_count" in self.expand(d, e.get("filter", ""))
                       and f"queue_ids.{key}" in flatten(e.get("filter", ""))
                       and re.search(r'response_code\s*!=\s*\\"ok\\"', self.expand(d, e.get("filter", ""))) is not None]
            self.contract(bool(failing), f"no alert policy on failing dispatches of the {key} queue ({qid}): "
                                         "queue/task_attempt_count with response_code != \"ok\"")
            for e in failing:
                period, duration = self.seconds(d, e.get("period")), self.seconds(d, e.get("duration"))
                self.contract(period is not None and duration is not None and period + duration <= 900,
                              f"the failing-dispatch alert of the {key} queue must fire within 15 minutes "
                              f"(alignment period + duration = {period} + {duration} s)")
                self.contract(period is not None and period > MAX_TASK_BACKOFF_SECONDS,
                              f"the failing-dispatch alert of the {key} queue: its window ({period} s) must be longer than the "
                              f"queues' longest backoff ({MAX_TASK_BACKOFF_SECONDS} s), or a task that keeps failing can "
                              "fall between two windows")
        for q in ("copy_start_queue", "copy_poll_queue"):
            caps = re.findall(rf"var\.{q}\.max_backoff_seconds\s*<=\s*(\d+)", json.dumps([doc.get("variable", []) for doc in d.files.values()]))
            self.contract(any(int(c) <= MAX_TASK_BACKOFF_SECONDS for c in caps),
                          f"variable {q} must keep max_backoff_seconds at most {MAX_TASK_BACKOFF_SECONDS} "
                          "(the failing-dispatch alert's window counts on it)")
        completion_metric = [k for k, t in metrics.items()
                             if 'jsonPayload.message=\\"completion published\\"' in t and "jsonPayload.status" in t]
        self.contract(bool(completion_metric),
                      "no log-based metric on the worker's \"completion published\" line with its status label")
        # The alert on failed completions (status="failed") and that every message and field the
        # log-based metrics filter on is written by an event: the Rust tests of
        # src/telemetry/events/tests.rs (the_alert_on_failed_copies_counts_completion_events,
        # monitoring_counts_each_event_by_its_message_and_fields,
        # no_other_filter_of_the_module_names_a_message_no_event_writes).
        self.contract(any(all(w in t for w in ("copies_started", "completions", "vertex_resource_exhausted",
                                               "num_undelivered_messages", "requests_push", "dead_letter_replay",
                                               "callbacks_push", "cloudtasks.googleapis.com/queue/depth",
                                               "cloudtasks.googleapis.com/queue/task_attempt_count",
                                               "copy_start_queue", "copy_poll_queue"))
                          for t in dashboards.values()),
                      "the dashboard must show copies started/ended, 429s, every backlog, and both queues' depth "
                      "(copy-polls: the copies being followed) and dispatches")

    # --- A first apply that works in one go (issue #21) ---------------------------------------

    def check_first_apply(self, d: ModuleDir) -> None:
        # 1. Alert policies on a log-based metric wait (time_sleep) until Cloud Monitoring
        #    knows the metric: depends_on orders, it does not wait, and the provider does not
        #    retry the 404 (hashicorp/terraform-provider-google#11102).
        sleeps = self.bodies(d, "time_sleep")
        for key, body in self.bodies(d, "google_monitoring_alert_policy").items():
            if "google_logging_metric." not in self.expand(d, body):
                continue
            waits = [s for s in re.findall(r"time_sleep\.(\w+)", flatten(body.get("depends_on", "")))]
            self.contract(any("google_logging_metric." in flatten(sleeps.get(f"time_sleep.{s}", {}))
                              and sleeps[f"time_sleep.{s}"].get("create_duration") for s in waits),
                          f"{key} filters on a log-based metric: it must depend on a time_sleep with a create_duration "
                          "that is triggered by the google_logging_metric (the metric takes minutes to reach Monitoring)")

        # 3. Service agents are created (google_project_service_identity) before they are
        #    granted anything, never addressed by a hand-built service-N@gcp-sa-... email.
        text = json.dumps([d.resource_bodies, d.local_values])
        self.contract("@gcp-sa-" not in text,
                      "a service agent is named by a hand-built service-NUMBER@gcp-sa-... address; grant to the "
                      "`member` of a google_project_service_identity, which creates the agent first")
        identities = " ".join(self.expand(d, b) for b in self.bodies(d, "google_project_service_identity").values())
        for service in ("pubsub.googleapis.com", "artifactregistry.googleapis.com", "aiplatform.googleapis.com",
                        "cloudtasks.googleapis.com"):
            self.contract(service in identities, f"no google_project_service_identity for {service}")
        # An agent created on request gets no role by itself (cloud.google.com/iam/docs/create-service-agents).
        project_grants = self.bodies(d, "google_project_iam_member").values()
        self.contract(any("google_project_service_identity.agents" in self.expand(d, b) and "serviceAgent" in self.expand(d, b)
                          for b in project_grants),
                      "the service agents created on request need their roles/*.serviceAgent grant on project_id")
        self.contract(any("google_project_service_identity.vertex" in self.expand(d, b) and "roles/aiplatform.serviceAgent" in flatten(b)
                          and "each.key" in str(b.get("project")) for b in project_grants),
                      "the Vertex AI agents created on request need roles/aiplatform.serviceAgent in their own project")
        for key, body in self.bodies(d, "google_project_service_identity").items():
            self.contract("google-beta" in str(body.get("provider")),
                          f"{key}: google_project_service_identity is a google-beta resource in provider 6.x")

        # 4. Every resource in project_id waits for the APIs it needs, directly
        #    (depends_on google_project_service.enabled) or through a reference to a
        #    resource that does.
        waits: dict[str, bool] = {}

        def wait_for_apis(key: str, seen: frozenset = frozenset()) -> bool:
            if key in waits:
                return waits[key]
            body = d.resource_bodies[key]
            text = flatten(body)
            ok = "google_project_service.enabled" in flatten(body.get("depends_on", ""))
            if not ok:
                for m in RE_RES.finditer(expression_text(text) + " " + expression_text(self.expand(d, body))):
                    other = f"{m.group(1)}.{m.group(2)}"
                    if other in d.resource_bodies and other not in seen and other != key and \
                            wait_for_apis(other, seen | {key}):
                        ok = True
                        break
            waits[key] = ok
            return ok

        for key, body in d.resource_bodies.items():
            if key.startswith(("google_project_service.", "terraform_data.", "time_sleep.")):
                continue
            # local.waiter_project is project_id unless waiter_project is set.
            if str(body.get("project")) not in ("${var.project_id}", "${local.waiter_project}"):
                continue
            self.contract(wait_for_apis(key), f"{key} is created in project_id but does not wait for the APIs "
                                              "(depends_on = [google_project_service.enabled])")

        # 5. A push fan-out subscription carries a token and dead-letters.
        completions = d.resource_bodies.get("google_pubsub_subscription.completions", {})
        dynamic = [next(iter(b)) for b in completions.get("dynamic", []) if isinstance(b, dict)]
        self.contract('"dead_letter_policy"' in dynamic,
                      "google_pubsub_subscription.completions: a push subscription needs a dead_letter_policy, or "
                      "every message a gone receiver does not take is retried for the whole retention")

        # 6. The webhook stage is monitored and listed like the other push stages.
        outputs = json.dumps([doc.get("output", []) for doc in d.files.values()])
        self.contract("google_pubsub_subscription.callbacks_push" in outputs,
                      "output subscriptions must list copy-callbacks-push")

        # 7. Push accounts are found by email in any project, and the comments are true.
        token = d.resource_bodies.get("google_service_account_iam_member.pubsub_agent_token_creator_completions", {})
        self.contract(str(token.get("service_account_id", "")).startswith('"projects/-/serviceAccounts/'),
                      "the completion push accounts live in any project: service_account_id = projects/-/serviceAccounts/EMAIL")
        for f in sorted(d.files):
            raw = (self.root.parent / f).read_text(encoding="utf-8")
            for phrase, why in (("the Pub/Sub maximum", "Pub/Sub keeps messages up to 31 days"),
                                ("five topics", "the topology has four topics (copy-operations only while an upgrade drains it)"),
                                ("# data.google_project, project IAM grants",
                                 "enabling cloudresourcemanager cannot help the first plan's data.google_project read")):
                self.contract(phrase not in raw, f"{f}: {phrase!r} is wrong: {why}")

        # The README's manual service-agent step is gone: the module creates the agents.
        readme = self.root / "README.md"
        self.contract(readme.is_file() and "services identity create" not in readme.read_text(encoding="utf-8"),
                      "terraform/README.md: no manual `gcloud beta services identity create` step; the module "
                      "creates the service agents (google_project_service_identity)")

    def check_examples(self, d: ModuleDir) -> None:
        """2 and 5 of issue #21: an example plans only against real projects, and
        creates nothing that pushes to a made-up endpoint."""
        for name, default in d.variable_defaults.items():
            if re.search(r"(^|_)project(_id)?$", name):
                self.contract(not d.variable_has_default.get(name),
                              f"example variable {name} has a default ({default!r}): a made-up project fails the "
                              "plan; make it required")
        text = json.dumps(d.files)
        self.contract("example.com" not in text,
                      "an example pushes to example.com: make the push consumer opt-in (no default endpoint)")

    # --- EC2 documentation agrees with wif.tf --------------------------------------------------

    def check_ec2_docs(self, d: ModuleDir) -> None:
        wif_type = ""
        for doc in d.files.values():
            for block in doc.get("variable", []):
                if '"aws_wif"' in block:
                    wif_type = block['"aws_wif"'].get("type", "")
        ids = {}
        for key in ("pool_id", "provider_id"):
            m = re.search(rf'\b{key}\s*=\s*optional\(string,\s*"([^"]+)"\)', wif_type)
            ids[key] = m.group(1) if m else None
            self.contract(m is not None, f"aws_wif.{key} has no default")
        providers = self.bodies(d, "google_iam_workload_identity_pool_provider")
        mapping: dict[str, str] = {}
        for body in providers.values():
            for k, v in (body.get("attribute_mapping") or {}).items():
                mapping[unquote(k)] = unquote(str(v))
        self.contract(bool(mapping), "wif.tf: no attribute_mapping on the AWS provider")
        impersonates = any("workloadIdentityUser" in str(b.get("role")) and "google_service_account.publisher" in str(b.get("service_account_id"))
                           and "principalSet://" in str(b.get("member"))
                           for b in self.bodies(d, "google_service_account_iam_member").values())
        self.contract(impersonates, "wif.tf: the AWS principalSet must impersonate the publisher service account")

        repo = self.root.parent
        ec2 = repo / "docs" / "ec2.md"
        readme = repo / "README.md"
        docs = {}
        if ec2.is_file():
            docs["docs/ec2.md"] = ec2.read_text(encoding="utf-8")
        self.contract("docs/ec2.md" in docs, f"{ec2} not found")
        if readme.is_file():
            text = readme.read_text(encoding="utf-8")
            m = re.search(r"^## EC2.*?(?=^## |\Z)", text, re.M | re.S)
            if m:
                docs["README.md (EC2 section)"] = m.group(0)

        for name, text in docs.items():
            # One shell command per logical line (backslash continuations joined).
            commands = re.sub(r"\\\n\s*", " ", text).splitlines()
            pools = set(re.findall(r"workloadIdentityPools/([^/\s\"'`]+)", text))
            pools |= set(re.findall(r"--workload-identity-pool[= ]([^\s\\\"'`]+)", text))
            pools |= {m.group(1) for c in commands for m in [re.search(r"workload-identity-pools create ([^\s\\]+)", c)] if m}
            provs = set(re.findall(r"workloadIdentityPools/[^/\s]+/providers/([^/\s\"'`]+)", text))
            provs |= {m.group(1) for c in commands for m in [re.search(r"providers create-aws ([^\s\\]+)", c)] if m}
            for p in sorted(pools - {ids["pool_id"]}):
                self.contract(False, f"{name} names workload identity pool {p!r}; the module creates {ids['pool_id']!r} (wif.tf)")
            for p in sorted(provs - {ids["provider_id"]}):
                self.contract(False, f"{name} names provider {p!r}; the module creates {ids['provider_id']!r} (wif.tf)")
            for c in commands:
                if "add-iam-policy-binding" in c and re.search(r"pubsub (topics|subscriptions) add-iam-policy-binding", c):
                    self.contract("principal" not in c,
                                  f"{name} grants a federated principal Pub/Sub rights directly; the module has it "
                                  f"impersonate the publisher service account: {c.strip()[:120]}")
                if "create-cred-config" in c:
                    self.contract("--service-account" in c,
                                  f"{name}: create-cred-config without --service-account (the module's principals "
                                  "only impersonate the publisher account)")
            if name == "docs/ec2.md":
                self.contract(ids["pool_id"] in pools and ids["provider_id"] in provs,
                              f"{name} must name the module's pool {ids['pool_id']!r} and provider {ids['provider_id']!r}")
                self.contract("roles/iam.workloadIdentityUser" in text,
                              f"{name} must grant roles/iam.workloadIdentityUser on the publisher account, as wif.tf does")
                flags = [m.group(1) for m in re.finditer(r'--attribute-mapping="([^"]*)"', text)]
                self.contract(bool(flags), f"{name}: no --attribute-mapping for the by-hand setup")
                for flag in flags:
                    given = dict(kv.split("=", 1) for kv in flag.split(",") if "=" in kv)
                    self.contract(given == mapping,
                                  f"{name}: --attribute-mapping differs from wif.tf: {sorted(set(given.items()) ^ set(mapping.items()))}")

    # --- Issue #23: the copy-start queue, one deadline per delivery, least privilege ----------

    def check_task_queues(self, d: ModuleDir) -> None:
        """Issue #27, items 2, 3 and 6: two Cloud Tasks queues pace every Vertex AI call of the
        deployment. copy-starts runs at vertex_copy_rate, copy-polls at what the starts' reads
        leave of vertex_read_rate, and a plan where nothing is left fails naming both rates.
        The worker may queue in both and attach the tasks account's token, and no other; the
        tasks account may invoke the service, and the worker's environment names all of it."""
        queues = self.bodies(d, "google_cloud_tasks_queue")
        want = {"google_cloud_tasks_queue.copy_starts", "google_cloud_tasks_queue.copy_polls"}
        self.contract(set(queues) == want, f"exactly the two queues {sorted(want)}, found {sorted(queues)}")
        service = d.resource_bodies.get("google_cloud_run_v2_service.worker", {})
        for qkey, q in sorted(queues.items()):
            rate = (q.get("rate_limits") or [{}])[0]
            self.contract(bool(str(rate.get("max_concurrent_dispatches", "")).strip()),
                          f"{qkey}: rate_limits.max_concurrent_dispatches must be set")
            retry = (q.get("retry_config") or [{}])[0]
            self.contract(retry.get("max_attempts") == -1,
                          f"{qkey}: retry_config.max_attempts must be -1 (unlimited: a task that cannot reach the worker is "
                          "retried until the cause is fixed; the worker bounds a copy by COPY_MAX_DURATION)")
            self.contract(bool(retry.get("min_backoff")) and bool(retry.get("max_backoff")),
                          f"{qkey}: retry_config needs min_backoff and max_backoff")
            self.contract(str(q.get("location")) == str(service.get("location")) == "${var.region}",
                          f"{qkey}: the queue lives in the worker's region (location = var.region, as the service)")

        def rate_of(qkey: str) -> str:
            rate = ((queues.get(qkey) or {}).get("rate_limits") or [{}])[0]
            return re.sub(r"\s+", " ", re.sub(r"[${}]", " ", self.expand(d, rate.get("max_dispatches_per_second", ""))))

        starts = rate_of("google_cloud_tasks_queue.copy_starts")
        self.contract(re.fullmatch(r"\s*\(\s*var\.vertex_copy_rate\s*\)\s*/\s*60\s*", starts) is not None,
                      f"copy_starts: max_dispatches_per_second must be vertex_copy_rate / 60 (a minute's rate, a "
                      f"second), not {starts.strip()!r}")
        polls = rate_of("google_cloud_tasks_queue.copy_polls")
        self.contract(re.fullmatch(r"\s*\(\s*var\.vertex_read_rate\s*-\s*\(\s*(\d+)\s*\)\s*\*\s*var\.vertex_copy_rate\s*\)\s*/\s*60\s*",
                                   polls) is not None,
                      "copy_polls: max_dispatches_per_second must be (vertex_read_rate - READS_PER_START x vertex_copy_rate) "
                      f"/ 60, the reads the starts leave, not {polls.strip()!r}")
        # local.reads_per_start and local.copy_poll_rate_per_minute against READS_PER_START of
        # src/topology.rs: the Rust test
        # terraform_derives_the_poll_rate_and_the_dispatch_deadline_as_the_topology_does.
        polls_body = queues.get("google_cloud_tasks_queue.copy_polls", {})
        pcs = [pc for lc in polls_body.get("lifecycle", []) or [] for pc in (lc.get("precondition", []) if isinstance(lc, dict) else [])]
        self.contract(any(re.search(r"var\.vertex_read_rate\s*-.*var\.vertex_copy_rate.*>\s*0", self.expand(d, pc.get("condition", "")), re.S)
                          and "vertex_read_rate" in str(pc.get("error_message")) and "vertex_copy_rate" in str(pc.get("error_message"))
                          for pc in pcs),
                      "copy_polls needs a precondition that fails the plan when vertex_read_rate - READS_PER_START x "
                      "vertex_copy_rate <= 0, with a message naming vertex_read_rate and vertex_copy_rate")
        tasks_tf = (d.path / "tasks.tf").read_text(encoding="utf-8") if (d.path / "tasks.tf").is_file() else ""
        for cite in ("cloud.google.com/vertex-ai/docs/quotas", "Job or long-running operation (LRO) submission requests",
                     "Resource management (CRUD) requests"):
            self.contract(cite in tasks_tf, f"tasks.tf must say how the rates are derived, citing {cite!r}")

        env = self.env_values(d)
        self.contract(bool(env), "cannot read the variables of local.worker_env")
        task_queues = d.local_values.get("task_queues")
        self.contract(isinstance(task_queues, dict) and
                      flatten(task_queues.get("starts", "")) == "${google_cloud_tasks_queue.copy_starts}" and
                      flatten(task_queues.get("polls", "")) == "${google_cloud_tasks_queue.copy_polls}",
                      "local.task_queues must map starts and polls to their queues")
        names = self.expand(d, "${local.task_queue_names}")
        self.contract(re.search(r"projects/.*/locations/.*/queues/", names) is not None,
                      "local.task_queue_names must spell each queue's full name, projects/P/locations/L/queues/Q")
        for var, key in (("COPY_START_QUEUE", "starts"), ("COPY_POLL_QUEUE", "polls")):
            self.contract(env.get(var) == f'local.task_queue_names["{key}"]',
                          f"{var} must be the full name of the {key} queue (local.task_queue_names[\"{key}\"]), not {env.get(var)!r}")
        url_env = self.expand(d, env.get("TASKS_URL", ""), depth=1)
        self.contract("local.deterministic_url" in url_env,
                      f"TASKS_URL must be the service URL the module derives (local.deterministic_url), not {env.get('TASKS_URL')!r}")
        self.contract(env.get("TASKS_SERVICE_ACCOUNT") == "google_service_account.tasks.email",
                      f"TASKS_SERVICE_ACCOUNT must be the tasks account (google_service_account.tasks.email), not "
                      f"{env.get('TASKS_SERVICE_ACCOUNT')!r}")
        self.contract(env.get("PUSH_SERVICE_ACCOUNTS") == "google_service_account.push.email",
                      "PUSH_SERVICE_ACCOUNTS must be the push account alone: one allow-list per route")

        worker = "google_service_account.worker.member"
        enqueuers = [b for b in self.bodies(d, "google_cloud_tasks_queue_iam_member").values()
                     if unquote(str(b.get("role"))) == "roles/cloudtasks.enqueuer" and worker in str(b.get("member"))]
        for qkey in sorted(want):
            self.contract(any(qkey in self.expand(d, b.get("for_each", "")) + self.expand(d, b.get("name", ""))
                              for b in enqueuers),
                          f"the worker needs roles/cloudtasks.enqueuer on {qkey} (queue-level IAM)")
        self.contract(not any("cloudtasks" in unquote(str(b.get("role"))) for b in self.bodies(d, "google_project_iam_member").values()
                              if "google_project_service_identity" not in self.expand(d, b)),
                      "no project-level roles/cloudtasks.* grant: the worker queues in its two queues only")
        # The worker's roles on service accounts: (account, role).
        on_accounts = [(str(b.get("service_account_id", "")).strip("${}"), unquote(str(b.get("role"))))
                       for b in self.bodies(d, "google_service_account_iam_member").values() if worker in str(b.get("member"))]
        self.contract(on_accounts == [("google_service_account.tasks.name", "roles/iam.serviceAccountUser")],
                      "the worker needs roles/iam.serviceAccountUser (iam.serviceAccounts.actAs) on the tasks account, whose "
                      f"OIDC token its tasks carry, and no role on any other account (found {on_accounts})")
        self.contract(any(unquote(str(b.get("role"))) == "roles/run.invoker" and "google_service_account.tasks.member" in str(b.get("member"))
                          for b in self.bodies(d, "google_cloud_run_v2_service_iam_member").values()),
                      "the tasks account (the tasks' identity) needs roles/run.invoker on the service")
        apis = flatten(d.local_values.get("required_apis", ""))
        self.contract("cloudtasks.googleapis.com" in apis, "cloudtasks.googleapis.com must be among the required APIs")
        agents = flatten(d.local_values.get("service_agent_roles", ""))
        self.contract(re.search(r"cloudtasks\.googleapis\.com\"?\s*=\s*\"?roles/cloudtasks\.serviceAgent", agents) is not None,
                      "the Cloud Tasks service agent (mints the tasks' tokens) must be created and granted roles/cloudtasks.serviceAgent")
        for o in ("copy_start_queue", "copy_poll_queue", "tasks_url", "tasks_service_account"):
            self.contract(o in d.outputs, f"an output must give {o}")

    def check_drain(self, d: ModuleDir) -> None:
        """Issue #27, items 1 and 6: copy-operations and its subscription exist only while
        var.drain_copy_operations is true, keep the previous release's objects (moved blocks,
        the same names), and the worker drains them (COPY_OPERATIONS_DRAIN); no variable,
        output or text of the module names a removed setting except the upgrade section."""
        topic = d.resource_bodies.get("google_pubsub_topic.operations_drain", {})
        sub = d.resource_bodies.get("google_pubsub_subscription.operations_drain", {})
        for key, body in (("google_pubsub_topic.operations_drain", topic), ("google_pubsub_subscription.operations_drain", sub)):
            self.contract(re.fullmatch(r"\$\{var\.drain_copy_operations \? 1 : 0\}", str(body.get("count", ""))) is not None,
                          f"{key} must exist only while var.drain_copy_operations is true (count), not {body.get('count')!r}")
        self.contract(self.expand(d, topic.get("name", ""), depth=1).strip(" ()${}") == "local.names.operations_topic" and
                      self.expand(d, sub.get("name", ""), depth=1).strip(" ()${}") == "local.names.operations_subscription",
                      "the drained topic and subscription must keep the previous release's names "
                      "(names.operations_topic, names.operations_subscription)")
        self.contract("google_pubsub_topic.operations_drain" in str(sub.get("topic")),
                      "the drained subscription must stay on the drained topic")
        self.contract(not sub.get("dead_letter_policy"),
                      "the drained subscription must have no dead-letter policy (it could dead-letter a running copy's only watch)")
        push = (sub.get("push_config") or [{}])[0]
        self.contract(str(push.get("push_endpoint", "")).endswith('/pubsub/copy-operations"'),
                      "the drained subscription must push to /pubsub/copy-operations, the route that drains it")
        self.contract("google_service_account.push." in str(((push.get("oidc_token") or [{}])[0]).get("service_account_email")),
                      "the drained subscription's pushes carry the push account's token (accepted on /pubsub/*)")
        moved = [{k: str(v).strip().removeprefix("${").removesuffix("}") for k, v in b.items()}
                 for doc in d.files.values() for b in doc.get("moved", [])]
        for frm, to in (('google_pubsub_topic.topic["operations"]', "google_pubsub_topic.operations_drain[0]"),
                        ("google_pubsub_subscription.operations_push", "google_pubsub_subscription.operations_drain[0]"),
                        ("google_cloud_tasks_queue_iam_member.worker_enqueuer", 'google_cloud_tasks_queue_iam_member.worker_enqueuer["starts"]')):
            self.contract(any(m.get("from") == frm and m.get("to") == to for m in moved),
                          f"a moved block must keep the previous release's {frm} as {to}, or the upgrade destroys and "
                          "recreates it")
        worker_env = flatten(d.local_values.get("worker_env", ""))
        self.contract(re.search(r'var\.drain_copy_operations \? \{\s*COPY_OPERATIONS_DRAIN = "true"\s*\} : \{\}', worker_env) is not None,
                      "COPY_OPERATIONS_DRAIN = \"true\" must be set exactly while var.drain_copy_operations is true")
        publisher = flatten(d.local_values.get("worker_publishes_to", ""))
        self.contract("google_pubsub_topic.operations_drain" in publisher and 'topic[k]' in publisher
                      and '"operations"' not in re.sub(r'"operations" =>', "", publisher),
                      "the worker may publish to copy-operations only while it is drained (local.worker_publishes_to)")

        # No variable, output, environment variable or text names a removed setting, except
        # the README's upgrade section.
        for fname in sorted(d.files):
            raw = (self.root.parent / fname).read_text(encoding="utf-8")
            for name in REMOVED_ENV + REMOVED_VARIABLES:
                self.contract(re.search(rf"\b{name}\b", raw) is None,
                              f"{fname} names {name}, which issue #27 removed (only the README's upgrade section may)")
        for path in (self.root / "README.md",):
            text = path.read_text(encoding="utf-8") if path.is_file() else ""
            m = re.search(rf"^## [^\n]*{re.escape(UPGRADE_SECTION)}.*?(?=^## |\Z)", text, re.M | re.S)
            self.contract(m is not None, f"terraform/README.md needs a section \"{UPGRADE_SECTION}\"")
            if m:
                for w in (r"drain_copy_operations\s*=\s*true", r"drain_copy_operations\s*=\s*false", r"num_undelivered_messages",
                          r"has moved to"):
                    self.contract(re.search(w, m.group(0)) is not None,
                                  f"terraform/README.md, \"{UPGRADE_SECTION}\": must say {w!r}")
            rest = text[:m.start()] + text[m.end():] if m else text
            for name in REMOVED_ENV + REMOVED_VARIABLES:
                self.contract(re.search(rf"\b{name}\b", rest) is None,
                              f"terraform/README.md names {name} outside \"{UPGRADE_SECTION}\"")

    def check_ingress(self, d: ModuleDir) -> None:
        """Items 4 and 8: ingress internal-only unless there are direct callers."""
        self.contract("ingress" in d.variable_defaults and d.variable_defaults.get("ingress") is None,
                      f"variable ingress must default to null (chosen from the callers), not {d.variable_defaults.get('ingress')!r}")
        service = d.resource_bodies.get("google_cloud_run_v2_service.worker", {})
        chosen = self.expand(d, service.get("ingress", ""))
        self.contract("var.ingress" in chosen, "the service's ingress must honour var.ingress when it is set")
        self.contract(re.search(r'length\(\s*\(.*var\.http_invoker_service_accounts.*\)\s*\)\s*==\s*0\s*\?\s*'
                                r'"INGRESS_TRAFFIC_INTERNAL_ONLY"\s*:\s*"INGRESS_TRAFFIC_ALL"', chosen, re.S) is not None,
                      "without var.ingress, the service's ingress must be INGRESS_TRAFFIC_INTERNAL_ONLY when there are no "
                      "direct callers (local.http_invokers, from var.http_invoker_service_accounts) and INGRESS_TRAFFIC_ALL otherwise")
        # Internal ingress admits Pub/Sub and Cloud Tasks only at the default run.app URL.
        for key, body in d.resource_bodies.items():
            if not key.startswith("google_pubsub_subscription."):
                continue
            push = (body.get("push_config") or [None])[0]
            if isinstance(push, dict) and "/pubsub/" in str(push.get("push_endpoint", "")):
                self.contract(str(push.get("push_endpoint")).startswith('"${google_cloud_run_v2_service.worker.uri}/'),
                              f"{key}: push to the service's own URL (google_cloud_run_v2_service.worker.uri), the run.app URL "
                              "internal ingress admits Pub/Sub at")

    def check_replay(self, d: ModuleDir) -> None:
        """Items 4 and 8: replay runs as its own account, which may read
        copy-dead-letter-replay and publish to copy-requests and copy-callbacks, nothing else."""
        replay = "google_service_account.replay"
        self.contract(f"{replay}" in d.resource_bodies, "no google_service_account.replay: replay must run as its own account")
        grants = {k: b for k, b in d.resource_bodies.items()
                  if "_iam_" in k and f"{replay}." in str(b.get("member", ""))}
        allowed = 0
        for key, body in grants.items():
            role = unquote(str(body.get("role")))
            if key.startswith("google_pubsub_subscription_iam_member."):
                ok = role == "roles/pubsub.subscriber" and "google_pubsub_subscription.dead_letter_replay." in str(body.get("subscription"))
            elif key.startswith("google_pubsub_topic_iam_member."):
                keys = set(re.findall(r'"(\w+)"', flatten(body.get("for_each", ""))))
                ok = role == "roles/pubsub.publisher" and keys == {"requests", "callbacks"} and \
                    'google_pubsub_topic.topic[each.key]' in str(body.get("topic"))
            else:
                ok = False
            allowed += ok
            self.contract(ok, f"{key}: the replay account may only subscribe to copy-dead-letter-replay and publish to "
                              f"copy-requests and copy-callbacks, not {role} there")
        self.contract(allowed == 2, "the replay account needs exactly two grants: roles/pubsub.subscriber on "
                                    "copy-dead-letter-replay and roles/pubsub.publisher on copy-requests and copy-callbacks")
        self.contract(not any("google_service_account.worker." in str(b.get("member"))
                              and "google_pubsub_subscription.dead_letter_replay" in str(b.get("subscription"))
                              for b in self.bodies(d, "google_pubsub_subscription_iam_member").values()),
                      "the worker account must not read copy-dead-letter-replay: replay has its own account")
        outputs = json.dumps([doc.get("output", []) for doc in d.files.values()])
        self.contract(f"{replay}.email" in outputs, "an output must give the replay account's email")
        readme = self.root / "README.md"
        text = readme.read_text(encoding="utf-8") if readme.is_file() else ""
        self.contract(re.search(r"--impersonate-service-account[= ]\"?\$\(terraform output -raw replay_service_account\)", text) is not None,
                      "terraform/README.md must show replay impersonating the replay account "
                      "(--impersonate-service-account \"$(terraform output -raw replay_service_account)\")")

    def check_waiter(self, d: ModuleDir) -> None:
        """Items 4 and 7: the waiter role holds what `publish --wait` and its sweep need, no
        more; it is not scoped by a condition Pub/Sub does not evaluate; and the docs agree."""
        roles = {k: b for k, b in self.bodies(d, "google_project_iam_custom_role").items()}
        waiter = roles.get("google_project_iam_custom_role.completions_waiter")
        self.contract(waiter is not None, "no google_project_iam_custom_role.completions_waiter")
        if waiter is None:
            return
        perms = set(re.findall(r"pubsub\.[a-zA-Z]+\.[a-zA-Z]+", flatten(waiter.get("permissions", ""))))
        self.contract(perms == WAITER_PERMISSIONS,
                      f"the waiter role must hold exactly {sorted(WAITER_PERMISSIONS)}; "
                      f"missing {sorted(WAITER_PERMISSIONS - perms)}, extra {sorted(perms - WAITER_PERMISSIONS)}")
        # IAM Conditions' resource attributes (resource.name, .type, .service) are recognised
        # only by the services cloud.google.com/iam/docs/conditions-resource-attributes lists;
        # pubsub.googleapis.com is not among them (pubsublite.googleapis.com is). A
        # resource.name condition on a Pub/Sub grant would not confine it.
        for key, body in d.resource_bodies.items():
            if "_iam_member." not in key:
                continue
            cond = flatten(body.get("condition", ""))
            role = self.expand(d, body.get("role", ""))
            if "resource." in cond and ("pubsub" in role or "completions_waiter" in role):
                self.contract(False, f"{key}: a resource-attribute condition on a Pub/Sub grant; Pub/Sub does not evaluate "
                                     "resource attributes in IAM Conditions (conditions-resource-attributes), so it confines nothing")
        docs = {"terraform/README.md": self.root / "README.md", "docs/ec2.md": self.root.parent / "docs" / "ec2.md"}
        for name, path in docs.items():
            text = path.read_text(encoding="utf-8") if path.is_file() else ""
            self.contract("conditions-resource-attributes" in text,
                          f"{name} must say why the waiter role is project-wide (Pub/Sub does not evaluate IAM Conditions' "
                          "resource attributes, cloud.google.com/iam/docs/conditions-resource-attributes) and what it reaches")
        ec2 = docs["docs/ec2.md"].read_text(encoding="utf-8") if docs["docs/ec2.md"].is_file() else ""
        for m in re.finditer(r"gcloud iam roles create \S+.*?--permissions=(\S+)", re.sub(r"\\\n\s*", " ", ec2)):
            given = set(m.group(1).split(","))
            self.contract(given == perms, f"docs/ec2.md creates the waiter role by hand with {sorted(given)}; "
                                          f"Terraform's has {sorted(perms)}")

    # --- driver ----------------------------------------------------------------------

    def run(self) -> int:
        self.load()
        for d in self.dirs.values():
            self.index(d)
        for d in self.dirs.values():
            self.collect(d)
            self.resolve(d)
            self.check_module_calls(d)
            self.check_contracts(d)
            if d.path != self.root:
                self.check_examples(d)
        for w in self.warnings:
            print(f"warning: {w}", file=sys.stderr)
        for e in self.errors:
            print(f"error: {e}", file=sys.stderr)
        return 1 if self.errors else 0


# Self-test: each mutation of a copy of the module must be caught. Proves the
# checker is not vacuous (a checker that finds nothing also "passes").
MUTATIONS = [
    ("undeclared variable", "run.tf", "var.concurrency", "var.concurency"),
    ("undeclared local", "run.tf", "local.longest_delivery_deadline", "local.longest_delivery"),
    ("for_each resource read without index", "pubsub.tf",
     'topic   = google_pubsub_topic.topic["requests"].id', "topic   = google_pubsub_topic.topic.id"),
    ("single resource indexed", "run.tf", "google_service_account.worker.email", "google_service_account.worker[0].email"),
    ("undeclared resource", "iam.tf", "google_service_account.push.name", "google_service_account.pusher.name"),
    ("missing module output", "examples/basic/main.tf", "module.copy_worker.topics", "module.copy_worker.topicz"),
    ("unknown module argument", "examples/basic/main.tf", "max_instances ", "max_instancez "),
    ("unparsable file", "wif.tf", 'resource "google_iam_workload_identity_pool" "aws" {',
     'resource "google_iam_workload_identity_pool" "aws" {{'),
    ("subscription that can expire", "pubsub.tf", 'expiration_policy {\n    ttl = ""\n  }', ""),
    ("service agent not subscriber on the request subscription", "iam.tf",
     "subscription = google_pubsub_subscription.requests_push.name",
     "subscription = google_pubsub_subscription.callbacks_push.name"),
    ("push without explicit audience", "pubsub.tf", "audience              = local.push_audience", "audience = null"),
    ("env name not in DESIGN.md", "run.tf", "LOG_FORMAT ", "LOG_FORMATS"),
    ("public invoker", "run.tf", "member   = google_service_account.push.member", 'member   = "allUsers"'),
    # Issue #14: Vertex AI grants.
    ("service-agent grants on sources default off", "variables.tf",
     '(the plan fails otherwise)."\n  type        = bool\n  default     = true',
     '(the plan fails otherwise)."\n  type        = bool\n  default     = false'),
    ("KMS grant not driven by kms_keys", "iam.tf",
     "distinct(concat(var.kms_keys, values(var.default_kms_keys)))", "distinct(concat([], values(var.default_kms_keys)))"),
    ("28: default KMS keys under a name serve does not read", "run.tf",
     "COPY_DEFAULT_KMS_KEYS = join", "COPY_DEFAULT_KMS_KEY = join"),
    ("worker cannot read source models", "iam.tf",
     '{ for p in var.source_projects : "${p}|${var.source_model_reader_role}"',
     '{ for p in [] : "${p}|${var.source_model_reader_role}"'),
    ("no plan-time check for a disabled service-agent grant", "iam.tf",
     "var.grant_vertex_service_agent_on_sources || var.vertex_grants_managed_externally ||", "true ||"),
    # Issue #14: EC2 documentation agrees with wif.tf.
    ("EC2 doc names another pool", "../docs/ec2.md",
     "--workload-identity-pool=copy-worker-aws", "--workload-identity-pool=ec2-pool"),
    ("EC2 doc with another attribute mapping", "../docs/ec2.md",
     "attribute.account=assertion.account,", ""),
    ("EC2 doc grants the topic to the federated principal", "../docs/ec2.md",
     '--role=roles/pubsub.publisher --member="serviceAccount:$PUBLISHER"',
     '--role=roles/pubsub.publisher --member="principalSet://iam.googleapis.com/x"'),
    # Issue #23: Cloud Run verifies the push tokens.
    ("PUSH_AUTH back to oidc", "run.tf", 'PUSH_AUTH             = "cloud-run"', 'PUSH_AUTH             = "oidc"'),
    ("invoker check switched off", "run.tf", "  custom_audiences    = local.custom_audiences\n",
     "  custom_audiences    = local.custom_audiences\n  invoker_iam_disabled = true\n"),
    ("invoker granted to an arbitrary member", "run.tf", "member   = google_service_account.publisher.member",
     'member   = "group:everyone@example.org"'),
    # Issue #21: the old text of each of the seven points.
    ("1: alert policy only ordered after the log-based metric", "monitoring.tf",
     "depends_on = [google_project_service.enabled, time_sleep.log_metrics_visible]",
     "depends_on = [google_project_service.enabled, google_logging_metric.worker]"),
    ("2: example with a made-up destination project", "examples/basic/main.tf",
     'description = "Project the models are copied to (a real project id, Vertex AI enabled)."\n  type        = string\n',
     'description = "Project the models are copied to (a real project id, Vertex AI enabled)."\n  type        = string\n  default     = "dst-proj"\n'),
    ("3: Pub/Sub agent by a hand-built address", "main.tf",
     'pubsub_agent_member            = time_sleep.service_agents_visible.triggers["pubsub.googleapis.com"]',
     'pubsub_agent_member            = "serviceAccount:service-${local.project_number}@gcp-sa-pubsub.iam.gserviceaccount.com"'),
    ("3: Vertex AI agents read from the project number", "iam.tf",
     'for p in var.destination_projects : p => time_sleep.service_agents_visible.triggers["vertex|${p}"]',
     'for p in var.destination_projects : p => "serviceAccount:service-${p}@gcp-sa-aiplatform.iam.gserviceaccount.com"'),
    ("3: service identity on the google provider", "iam.tf",
     '  provider = google-beta\n  for_each = local.service_agent_roles', '  for_each = local.service_agent_roles'),
    ("3: agent created on request left without its service-agent role", "iam.tf",
     "  member  = time_sleep.service_agents_visible.triggers[each.key]", '  member  = "user:someone@example.org"'),
    ("3: Vertex AI agent created on request left without its role", "iam.tf",
     '  role    = "roles/aiplatform.serviceAgent"\n  member  = local.vertex_agents[each.key]',
     '  role    = "roles/aiplatform.user"\n  member  = local.vertex_agents[each.key]'),
    ("4: custom role without the API", "iam.tf",
     "  # Custom roles are an IAM API resource: wait for iam.googleapis.com.\n  depends_on = [google_project_service.enabled, google_project_service.waiter_pubsub]\n", ""),
    ("5: example pushes to example.com by default", "examples/basic/main.tf",
     'description = "HTTPS endpoint of a downstream service notified of successful copies; null: no push consumer."\n  type        = string\n  default     = null',
     'description = "HTTPS endpoint of a downstream service notified of successful copies; null: no push consumer."\n  type        = string\n  default     = "https://model-registry-sync.example.com/pubsub/copy-completions"'),
    ("5: push fan-out without a dead-letter policy", "pubsub.tf", 'dynamic "dead_letter_policy" {', 'dynamic "dead_letter_policies" {'),
    ("6: callbacks not alerted on", "monitoring.tf", "subscription = local.subscription_ids.callbacks",
     "subscription = local.subscription_ids.requests"),
    ("6: callbacks not in the outputs", "outputs.tf",
     "    callbacks_push     = google_pubsub_subscription.callbacks_push.id\n", ""),
    ("7: push accounts only in the project of their email", "iam.tf",
     'service_account_id = "projects/-/serviceAccounts/${each.value}"',
     'service_account_id = "projects/${var.project_id}/serviceAccounts/${each.value}"'),
    ("7: retention comment", "pubsub.tf", "# 7 days (Pub/Sub allows up to 31)", "# 7 days, the Pub/Sub maximum"),
    ("7: topic count", "main.tf", "the four topics", "the five topics"),
    ("3: the README's manual service-agent step", "README.md", "No manual step is needed.",
     "In a fresh project first run `gcloud beta services identity create --service=aiplatform.googleapis.com --project=DST`."),
    # Issue #16: monitoring.
    ("monitoring off by default", "variables.tf",
     'dashboard of monitoring.tf in project_id."\n  type        = bool\n  default     = true',
     'dashboard of monitoring.tf in project_id."\n  type        = bool\n  default     = false'),
    ("dead-letter alert on the wrong subscription", "monitoring.tf",
     "subscription = local.subscription_ids.dead_letter", "subscription = local.subscription_ids.requests"),
    # Issue #27, items 2, 3 and 6: two queues pace every Vertex AI call of the deployment.
    ("27: start rate split per instance", "tasks.tf", "copy_start_rate_per_minute = var.vertex_copy_rate",
     "copy_start_rate_per_minute = var.vertex_copy_rate / var.max_instances"),
    ("27: poll rate ignores the starts' reads", "tasks.tf",
     "max_dispatches_per_second = local.copy_poll_rate_per_minute / 60", "max_dispatches_per_second = var.vertex_read_rate / 60"),
    ("27: no plan-time check of a poll rate <= 0", "tasks.tf",
     "condition     = local.copy_poll_rate_per_minute > 0", "condition     = true"),
    ("27: poll rate check names neither rate", "tasks.tf",
     'error_message = "vertex_read_rate (${var.vertex_read_rate} a minute) leaves no reads for the copy-poll queue: each copy start '
     'may take ${local.reads_per_start} reads, so vertex_copy_rate (${var.vertex_copy_rate} a minute) uses '
     '${local.reads_per_start * var.vertex_copy_rate} of them. Raise vertex_read_rate above ${local.reads_per_start} x '
     'vertex_copy_rate, or lower vertex_copy_rate; otherwise copies start but are never followed to their end."',
     'error_message = "No reads are left for polls."'),
    ("27: poll queue gives up", "tasks.tf",
     'max_attempts = -1\n    min_backoff  = "${var.copy_poll_queue.min_backoff_seconds}s"',
     'max_attempts = 100\n    min_backoff  = "${var.copy_poll_queue.min_backoff_seconds}s"'),
    ("27: start queue gives up", "tasks.tf", "max_attempts = -1", "max_attempts = 10"),
    ("27: rate derivation without Google's quotas", "tasks.tf", "(cloud.google.com/vertex-ai/docs/quotas", "(Vertex AI docs"),
    ("27: COPY_POLL_QUEUE is not the queue's full name", "run.tf",
     'COPY_POLL_QUEUE       = local.task_queue_names["polls"]', 'COPY_POLL_QUEUE       = "copy-polls"'),
    ("27: queues swapped in the environment", "run.tf",
     'COPY_START_QUEUE      = local.task_queue_names["starts"]', 'COPY_START_QUEUE      = local.task_queue_names["polls"]'),
    ("27: TASKS_URL is not the service URL", "tasks.tf",
     "tasks_url = coalesce(var.tasks_url, local.deterministic_url)", 'tasks_url = coalesce(var.tasks_url, "https://copy-worker.internal")'),
    ("27: tasks carry the push account's token", "run.tf",
     "TASKS_SERVICE_ACCOUNT = google_service_account.tasks.email", "TASKS_SERVICE_ACCOUNT = google_service_account.push.email"),
    ("27: pushes accepted from the tasks account too", "run.tf",
     "PUSH_SERVICE_ACCOUNTS = google_service_account.push.email",
     'PUSH_SERVICE_ACCOUNTS = "${google_service_account.push.email},${google_service_account.tasks.email}"'),
    ("27: the worker may not queue polls", "tasks.tf", "  for_each = local.task_queues\n",
     "  for_each = { starts = google_cloud_tasks_queue.copy_starts }\n"),
    ("27: the worker may not queue", "tasks.tf", 'role     = "roles/cloudtasks.enqueuer"', 'role     = "roles/cloudtasks.viewer"'),
    ("27: the worker acts as the push account", "tasks.tf",
     "service_account_id = google_service_account.tasks.name", "service_account_id = google_service_account.push.name"),
    ("27: the worker may not attach the tasks account's token", "tasks.tf",
     'role               = "roles/iam.serviceAccountUser"', 'role               = "roles/iam.serviceAccountTokenCreator"'),
    ("27: the tasks account may not invoke", "run.tf", "member   = google_service_account.tasks.member",
     "member   = google_service_account.publisher.member"),
    ("27: Cloud Tasks agent not created", "iam.tf", '    "cloudtasks.googleapis.com" = "roles/cloudtasks.serviceAgent"\n', ""),
    ("27: WORKER_INSTANCES back", "run.tf", '      LOG_FORMAT          = "json"\n',
     '      LOG_FORMAT          = "json"\n      WORKER_INSTANCES    = tostring(var.max_instances)\n'),
    # Issue #27, items 1 and 6: the upgrade drains copy-operations and keeps its objects.
    ("27: copy-operations kept after the drain", "pubsub.tf",
     "  count = var.drain_copy_operations ? 1 : 0\n\n  project = var.project_id\n  name    = local.drained.subscription",
     "  count = 1\n\n  project = var.project_id\n  name    = local.drained.subscription"),
    ("27: the upgrade recreates copy-operations-push", "pubsub.tf",
     "moved {\n  from = google_pubsub_subscription.operations_push\n  to   = google_pubsub_subscription.operations_drain[0]\n}\n", ""),
    ("27: the upgrade re-adds the enqueuer grant", "tasks.tf",
     'moved {\n  from = google_cloud_tasks_queue_iam_member.worker_enqueuer\n  to   = google_cloud_tasks_queue_iam_member.worker_enqueuer["starts"]\n}\n', ""),
    ("27: drained subscription renamed", "pubsub.tf", "subscription = local.names.operations_subscription",
     'subscription = "copy-operations-push"'),
    ("27: drained subscription dead-letters a watch", "pubsub.tf",
     '  push_config {\n    push_endpoint = "${google_cloud_run_v2_service.worker.uri}/pubsub/copy-operations"',
     '  dead_letter_policy {\n    dead_letter_topic     = google_pubsub_topic.topic["dead_letter"].id\n    max_delivery_attempts = 5\n  }\n\n'
     '  push_config {\n    push_endpoint = "${google_cloud_run_v2_service.worker.uri}/pubsub/copy-operations"'),
    ("27: the drain is always on", "run.tf", 'var.drain_copy_operations ? { COPY_OPERATIONS_DRAIN = "true" } : {}',
     '{ COPY_OPERATIONS_DRAIN = "true" }'),
    ("27: a removed variable in the README's tuning table", "README.md",
     "| `requests_ack_deadline_seconds` | 60 | 10-600 |", "| `requests_ack_deadline_seconds` | 60 | 10-600 |\n| `watch_hold_seconds` | 240 | |"),
    ("27: no upgrade section", "README.md", "## 11. Upgrading from the watch-message release", "## 11. Upgrading"),
    ("27: DESIGN.md lists a removed variable", "../docs/DESIGN.md", "| `COPY_START_QUEUE` |",
     "| `WORKER_INSTANCES` | removed | `1` |\n| `COPY_START_QUEUE` |"),
    ("27: DESIGN.md does not list COPY_POLL_QUEUE", "../docs/DESIGN.md", "| `COPY_POLL_QUEUE` |", "| `COPY_POLL_QUEUES` |"),
    ("27: alert still on copy-operations-push", "monitoring.tf", "  subscription_alerts = {\n",
     '  subscription_alerts = {\n    drain_oldest_unacked = {\n      subscription = local.charted_subscription_ids.operations_drain\n'
     '      metric       = "oldest_unacked_message_age"\n      threshold    = 3600\n      duration     = "300s"\n'
     '      severity     = "WARNING"\n      what         = "watches"\n      todo         = "drain"\n    }\n'),
    ("27: no alert on failing polls", "monitoring.tf", 'AND resource.labels.queue_id=\\"${local.queue_ids.polls}\\""',
     'AND resource.labels.queue_id=\\"${local.queue_ids.starts}\\""'),
    ("27: failing dispatches alerted after 30 minutes", "monitoring.tf", 'duration  = "300s"\n    period    = "600s"',
     'duration  = "1800s"\n    period    = "600s"'),
    ("27: failing-dispatch window shorter than the backoff", "monitoring.tf", 'duration  = "300s"\n    period    = "600s"',
     'duration  = "300s"\n    period    = "300s"'),
    ("27: OK dispatches counted as failing", "monitoring.tf",
     ' AND metric.labels.response_code!=\\"ok\\" AND metric.labels.response_code!=\\"OK\\"', ""),
    ("27: poll backoff beyond the alert's window", "variables.tf",
     "var.copy_poll_queue.max_backoff_seconds <= 300", "var.copy_poll_queue.max_backoff_seconds <= 3600"),
    # Items 4 and 8: ingress.
    ("8: ingress open to the internet by default", "run.tf",
     'ingress = coalesce(var.ingress, length(local.http_invokers) == 0 ? "INGRESS_TRAFFIC_INTERNAL_ONLY" : "INGRESS_TRAFFIC_ALL")',
     'ingress = coalesce(var.ingress, "INGRESS_TRAFFIC_ALL")'),
    ("8: ingress variable defaults to all", "variables.tf",
     'type        = string\n  default     = null\n\n  validation {\n    condition     = var.ingress == null',
     'type        = string\n  default     = "INGRESS_TRAFFIC_ALL"\n\n  validation {\n    condition     = var.ingress == null'),
    # Items 4 and 8: replay under its own account.
    ("8: replay reads the dead letters as the worker", "iam.tf",
     "subscription = google_pubsub_subscription.dead_letter_replay.name\n  role         = \"roles/pubsub.subscriber\"\n  member       = google_service_account.replay.member",
     "subscription = google_pubsub_subscription.dead_letter_replay.name\n  role         = \"roles/pubsub.subscriber\"\n  member       = google_service_account.worker.member"),
    ("8: replay may publish to every topic", "iam.tf", 'for_each = toset(["requests", "callbacks"])',
     'for_each = toset(["requests", "callbacks", "completions"])'),
    ("8: replay with more than publisher", "iam.tf",
     '  role    = "roles/pubsub.publisher"\n  member  = google_service_account.replay.member',
     '  role    = "roles/pubsub.editor"\n  member  = google_service_account.replay.member'),
    ("8: replay docs impersonate the worker", "README.md",
     '--impersonate-service-account "$(terraform output -raw replay_service_account)"',
     '--impersonate-service-account "$(terraform output -raw worker_service_account)"'),
    # Item 4 (and 7): the waiter role.
    ("4: waiter cannot sweep (no list/update)", "iam.tf",
     '    "pubsub.subscriptions.list",\n    "pubsub.subscriptions.update",\n', ""),
    ("4: waiter fenced by a condition Pub/Sub ignores", "iam.tf",
     "  role    = google_project_iam_custom_role.completions_waiter[0].name\n  member  = google_service_account.publisher.member\n",
     "  role    = google_project_iam_custom_role.completions_waiter[0].name\n  member  = google_service_account.publisher.member\n"
     "  condition {\n    title      = \"waiters only\"\n    expression = \"resource.name.startsWith('projects/p/subscriptions/copy-worker-wait-')\"\n  }\n"),
    ("4: EC2 doc's by-hand waiter role without the sweep", "../docs/ec2.md",
     ",pubsub.subscriptions.list,pubsub.subscriptions.update", ""),
]


def self_test(root: Path) -> int:
    """Copies the module, plus what its contract checks read beside it (the EC2
    documentation, DESIGN.md, the README and the worker's flags in src/config/), and
    seeds each of MUTATIONS into a fresh copy."""
    repo = root.resolve().parent
    with tempfile.TemporaryDirectory(prefix="verify-refs-selftest-") as tmp:
        tmp = Path(tmp)
        for extra in ("docs/ec2.md", "docs/DESIGN.md", "README.md"):
            if (repo / extra).is_file():
                (tmp / extra).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(repo / extra, tmp / extra)
        if (repo / "src" / "config").is_dir():
            shutil.copytree(repo / "src" / "config", tmp / "src" / "config")

        def fresh() -> Path:
            # The docs beside the module are mutated too: restore them.
            for extra in ("docs/ec2.md", "docs/DESIGN.md", "README.md"):
                if (repo / extra).is_file():
                    shutil.copy(repo / extra, tmp / extra)
            copy_tree(root, tmp / "terraform")
            return tmp / "terraform"

        def passes(copy: Path) -> tuple[bool, list[str]]:
            c = Checker(copy)
            return c.run() == 0, c.errors

        return run_self_test("verify_refs", MUTATIONS, fresh, passes)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("root", type=Path, help="the terraform/ directory")
    ap.add_argument("--summary", type=Path, help="write counts as JSON to this file")
    ap.add_argument("--self-test", action="store_true", help="check that seeded mistakes are caught")
    args = ap.parse_args()
    if args.self_test:
        return self_test(args.root)
    c = Checker(args.root)
    rc = c.run()
    summary = {
        "files": c.files_parsed,
        "directories": len(c.dirs),
        "references": c.references_checked,
        "contract_checks": c.contract_checks,
        "errors": len(c.errors),
    }
    if args.summary:
        args.summary.write_text(json.dumps(summary))
    status = "OK" if rc == 0 else f"FAILED ({len(c.errors)} errors)"
    print(f"verify_refs {status}: {c.files_parsed} files in {len(c.dirs)} directories, "
          f"{c.references_checked} references, {c.contract_checks} contract checks")
    return rc


if __name__ == "__main__":
    sys.exit(main())
