"""The catalogue of event kinds: every kind the code writes is in it, and docs/events.md shows it."""

from __future__ import annotations

import ast
import dataclasses
import re
from pathlib import Path

from agent.domain.events import Event
from agent.domain.kinds import CATALOGUE, Kind, markdown_table

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("agent", "drivers", "sync", "tui")
WRITES = {"append", "append_sync", "submit"}  # the store writer's ways to append an event
# Call sites whose kind is a variable: the visits service appends the domain's Commands (found
# below as tuples), and the test hook appends only kinds starting with `test.`.
DYNAMIC = {"agent/daemon/services/visits.py"}
KIND = re.compile(r"[a-z_]+\.[a-z_]+")
BEGIN, END = "<!-- kinds:begin -->\n", "<!-- kinds:end -->\n"


def _kinds(node: ast.expr) -> list[str] | None:
    """The kinds an expression can be (a literal, Kind.X, or a conditional of those)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if _is_kind(node) and isinstance(node, ast.Attribute):
        return [Kind[node.attr].value]
    if isinstance(node, ast.IfExp):
        a, b = _kinds(node.body), _kinds(node.orelse)
        return None if a is None or b is None else a + b
    return None


def _is_kind(node: ast.expr) -> bool:
    """Whether an expression is Kind.X or a dotted literal like a kind (a Command's first part)."""
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
        return node.value.id == "Kind"
    return isinstance(node, ast.Constant) and bool(KIND.fullmatch(str(node.value)))


def written_kinds() -> tuple[dict[str, set[str]], set[str]]:
    """Kind → the files that write it, and the files that append a kind held in a variable.

    Writes are calls of the store writer's append methods and the domain's Commands: tuples
    `(kind, data)` that the visits service appends.
    """
    found: dict[str, set[str]] = {}
    dynamic: set[str] = set()
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), rel)):
                kind: ast.expr | None = None
                if (
                    isinstance(node, ast.Call)
                    and isinstance(node.func, ast.Attribute)
                    and node.func.attr in WRITES
                    and ast.unparse(node.func.value).endswith("writer")
                    and node.args
                ):
                    kind = node.args[0]
                elif (
                    isinstance(node, ast.Tuple)
                    and len(node.elts) == 2
                    and rel.startswith("agent/domain/")
                    and _is_kind(node.elts[0])
                ):
                    kind = node.elts[0]
                if kind is None:
                    continue
                kinds = _kinds(kind)
                if kinds is None:
                    dynamic.add(rel)
                    continue
                for k in kinds:
                    found.setdefault(k, set()).add(rel)
    return found, dynamic


def test_every_kind_written_is_in_the_catalogue_and_every_entry_is_written() -> None:
    found, dynamic = written_kinds()
    unknown = {k: sorted(where) for k, where in found.items() if k not in set(Kind)}
    assert unknown == {}, "add these kinds to agent/domain/kinds.py (Kind and CATALOGUE)"
    assert set(found) == set(Kind), "these catalogue entries are written nowhere"
    assert dynamic == DYNAMIC
    assert found["operator.note"] == {"agent/daemon/services/notes.py"}
    assert found["check.bag_sample"] == {"agent/daemon/services/scales.py"}


def test_every_kind_has_a_doc_a_writer_and_payload_fields() -> None:
    assert set(CATALOGUE) == set(Kind)
    for kind, spec in CATALOGUE.items():
        assert kind.value == kind.value.lower() and kind.value.count(".") == 1, kind
        assert spec.doc.endswith(".") and "\n" not in spec.doc, kind
        assert spec.writer and spec.payload, kind
        assert all(name.rstrip("?").isidentifier() for name in spec.payload), kind


def test_docs_events_md_shows_the_envelope_and_the_whole_catalogue() -> None:
    text = (ROOT / "docs" / "events.md").read_text(encoding="utf-8")
    assert BEGIN in text and END in text
    table = text.split(BEGIN, 1)[1].split(END, 1)[0]
    assert table == markdown_table(), (
        "docs/events.md's kind table differs from agent/domain/kinds.py; replace it with the"
        " output of: python -c 'from agent.domain.kinds import markdown_table as t;"
        ' print(t(), end="")\''
    )
    envelope = text.split(BEGIN, 1)[0]
    fields = [f.name for f in dataclasses.fields(Event) if f.init] + ["id"]
    assert [f for f in fields if f"| `{f}` |" not in envelope] == []
