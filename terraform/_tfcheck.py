"""What verify_refs.py and verify_schema.py share: reading the .tf files with
python-hcl2, the expression text of a value, and the self-test driver that
seeds mistakes into a copy of the module and expects each to be caught."""

from __future__ import annotations

import contextlib
import copy
import functools
import io
import shutil
import sys
from pathlib import Path
from typing import Callable, Iterator

import hcl2


def unquote(label: str) -> str:
    if len(label) >= 2 and label[0] == '"' and label[-1] == '"':
        return label[1:-1]
    return label


def tf_files(root: Path) -> list[Path]:
    """Every .tf file under root (the module and its examples), sorted."""
    return sorted(p for p in root.rglob("*.tf") if ".terraform" not in p.parts)


_PARSED: dict[str, dict] = {}


def load(path: Path) -> dict:
    """One .tf file as python-hcl2 parses it (with its __is_block__ marks).

    Parses are kept by text: a self-test changes one file per mutation, and
    parsing is most of a check's time."""
    text = path.read_text(encoding="utf-8")
    if text not in _PARSED:
        _PARSED[text] = hcl2.loads(text)
    return copy.deepcopy(_PARSED[text])


def data_blocks(doc: dict) -> list[dict]:
    """The data blocks of a file, including those scoped inside check blocks."""
    out = list(doc.get("data", []))
    for chk in doc.get("check", []):
        for body in chk.values():
            if isinstance(body, dict):
                out.extend(body.get("data", []))
    return out


def named_blocks(blocks: list[dict]) -> Iterator[tuple[str, str, dict]]:
    """(type, name, body) of each `resource "TYPE" "NAME"` (or data) block."""
    for block in blocks:
        for rtype, named in block.items():
            if rtype.startswith("__"):
                continue
            for rname, body in named.items():
                if not rname.startswith("__"):
                    yield unquote(rtype), unquote(rname), body


@functools.lru_cache(maxsize=None)
def expression_text(value: str) -> str:
    """Return only the expression parts of a python-hcl2 value string.

    python-hcl2 renders an expression as "${expr}" and a string literal as
    '"text ${interpolation}"'. Literal text (inside quotes, outside ${...})
    is dropped, so that e.g. a CEL string "assertion.arn" or a URL is never
    mistaken for a reference. Nested strings inside expressions are handled
    with a small state machine: T = template text, E = expression.
    """
    out: list[str] = []
    # Stack entries: ("T", quoted) or ("E", brace_depth).
    stack: list[list] = [["T", False]]
    i, n = 0, len(value)
    while i < n:
        mode = stack[-1]
        c = value[i]
        if mode[0] == "T":
            if c == "\\" and mode[1]:
                i += 2
                continue
            if value.startswith("$${", i) or value.startswith("%%{", i):
                i += 3
                continue
            if value.startswith("${", i) or value.startswith("%{", i):
                stack.append(["E", 0])
                out.append(" ")
                i += 2
                continue
            if c == '"' and mode[1]:
                stack.pop()
                out.append(" ")
            i += 1
            continue
        # Expression mode.
        if c == '"':
            stack.append(["T", True])
            out.append(" ")
        elif c == "{":
            mode[1] += 1
            out.append(c)
        elif c == "}":
            if mode[1] == 0:
                stack.pop()
                out.append(" ")
            else:
                mode[1] -= 1
                out.append(c)
        else:
            out.append(c)
        i += 1
    return "".join(out)


def self_test(name: str, mutations: list[tuple[str, str, str, str]], fresh: Callable[[], Path],
              passes: Callable[[Path], tuple[bool, list[str]]], show: bool = False) -> int:
    """Seeds each mutation (what, file under the copy, old text, new text) into a
    fresh copy of the module; `passes(copy)` -> (ok, errors) must fail for each,
    and pass for the unmutated copy (or every mutation would be "detected").
    With show, prints the first error each mutation produced."""
    with contextlib.redirect_stderr(io.StringIO()):
        ok, errors = passes(fresh())
    if not ok:
        print(f"{name} self-test: the unmutated copy fails; fix the module first:\n  " + "\n  ".join(errors),
              file=sys.stderr)
        return 1
    failures = 0
    for what, fname, old, new in mutations:
        copy = fresh()
        target = (copy / fname).resolve()
        text = target.read_text(encoding="utf-8")
        if old not in text:
            print(f"{name} self-test: {what}: pattern not found in {fname} (update MUTATIONS)", file=sys.stderr)
            failures += 1
            continue
        target.write_text(text.replace(old, new, 1), encoding="utf-8")
        with contextlib.redirect_stderr(io.StringIO()):
            ok, errors = passes(copy)
        if ok:
            print(f"{name} self-test: {what}: NOT detected", file=sys.stderr)
            failures += 1
        elif show:
            print(f"  {what}: {errors[0]}")
    print(f"{name} self-test: {len(mutations) - failures}/{len(mutations)} mutations detected")
    return 1 if failures else 0


def copy_tree(src: Path, dst: Path) -> None:
    """dst becomes a copy of src (without .terraform caches)."""
    if dst.exists():
        shutil.rmtree(dst)
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns(".terraform", "__pycache__"))
