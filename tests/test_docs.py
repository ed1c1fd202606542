"""The documents point only at files that are in the repository, and at sections that exist."""

from __future__ import annotations

import os
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md")])

# Written on another branch at the same time as these docs; checked like any other file as soon as
# it exists. Drop the entry once it has landed.
PENDING: set[str] = set()

# What a backticked repo path starts with: a top-level folder or file of the repository.
TOP_LEVEL = ("agent/", "drivers/", "sync/", "tui/", "tests/", "bench/", "systemd/", "docs/", ".ci/")
TOP_FILES = ("README.md", "CHANGELOG.md", "Makefile", "pyproject.toml")
# Reference files the repository never held; a document or message naming one sends readers nowhere.
NEVER_HERE = re.compile(r"\b(DESIGN\.md|SCALES\.md|MODBUS\.md|protocols/)")
SOURCE_SUFFIXES = {".py", ".toml", ".service", ".sysusers", ".tmpfiles", ".tcss"}
SKIP_DIRS = {".git", ".venv", "build", "__pycache__", ".mypy_cache", ".ruff_cache", ".hypothesis"}

LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")
CODE = re.compile(r"`([^`\n]+)`")
FENCE = re.compile(r"^(```|~~~)")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")


def slug(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = heading.replace("`", "").strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def split_prose(text: str) -> tuple[list[str], list[str]]:
    """(prose lines, heading texts) of a Markdown text; fenced code blocks are left out."""
    prose: list[str] = []
    headings: list[str] = []
    fenced = False
    for line in text.splitlines():
        if FENCE.match(line.lstrip()):
            fenced = not fenced
            continue
        if fenced:
            continue
        prose.append(line)
        m = HEADING.match(line)
        if m:
            headings.append(m.group(2))
    return prose, headings


def anchors(text: str) -> set[str]:
    """Every anchor of a Markdown text, with GitHub's -1, -2 suffixes for repeated headings."""
    seen: dict[str, int] = {}
    out: set[str] = set()
    for heading in split_prose(text)[1]:
        base = slug(heading)
        n = seen.get(base, 0)
        seen[base] = n + 1
        out.add(base if n == 0 else f"{base}-{n}")
    return out


def repo_path(token: str) -> str | None:
    """The repository path a backticked token names, or None when it names no repo file."""
    token = token.strip()
    if " " in token or token.startswith(("/", "$", "~")):
        return None
    if token in TOP_FILES or token.startswith(TOP_LEVEL):
        return token.rstrip("/") or None
    return None


def exists(rel: str, root: Path) -> bool:
    """Whether a repository path (a glob when it holds `*`) names at least one file or folder."""
    if "*" in rel:
        return any(root.glob(rel))
    return (root / rel).exists()


def problems(doc: Path, text: str, root: Path = ROOT, pending: set[str] = PENDING) -> list[str]:
    """One line per link or repo path in `text` (the document `doc`) that leads nowhere."""
    out: list[str] = []
    name = doc.relative_to(root).as_posix()
    prose, _ = split_prose(text)
    body = "\n".join(prose)
    for target in LINK.findall(body):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:, file:
            continue
        path_part, _, anchor = target.partition("#")
        if not path_part:
            if anchor not in anchors(text):
                out.append(f"{name}: link {target}: there is no such section here")
            continue
        dest = (doc.parent / path_part).resolve()
        try:
            rel = dest.relative_to(root).as_posix()
        except ValueError:
            out.append(f"{name}: link {target} leaves the repository")
            continue
        if not dest.exists():
            if rel not in pending:
                out.append(f"{name}: link {target} names {rel}, which is not in the repository")
            continue
        if (
            anchor
            and dest.suffix == ".md"
            and anchor not in anchors(dest.read_text(encoding="utf-8"))
        ):
            out.append(f"{name}: link {target}: {rel} has no section #{anchor}")
    for token in CODE.findall(body):
        rel = repo_path(token)
        if rel is not None and not exists(rel, root) and rel not in pending:
            out.append(f"{name}: `{token}` is not a file or folder of the repository")
    for n, line in enumerate(text.splitlines(), 1):
        if NEVER_HERE.search(line):
            out.append(f"{name}:{n}: names a file that is not in the repository: {line.strip()}")
    return out


def sources(root: Path) -> list[Path]:
    """The repository's code and configuration files (not tests, which may quote anything)."""
    found = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = [
            d for d in dirs if d not in SKIP_DIRS and d != "tests" and not d.endswith(".egg-info")
        ]
        for f in files:
            path = Path(folder, f)
            if path.suffix in SOURCE_SUFFIXES or f in ("Makefile", "run"):
                found.append(path)
    return sorted(found)


def test_the_documents_exist() -> None:
    names = [d.relative_to(ROOT).as_posix() for d in DOCS]
    for expected in (
        "README.md",
        "docs/install.md",
        "docs/devices.md",
        "docs/visits-and-kpis.md",
        "docs/sync.md",
        "docs/operator-keys.zh.md",
        "docs/development.md",
    ):
        assert expected in names


def test_every_link_and_repo_path_in_the_documents_exists() -> None:
    found = [p for doc in DOCS for p in problems(doc, doc.read_text(encoding="utf-8"))]
    assert found == []


def test_code_and_messages_name_only_documents_that_exist() -> None:
    found = []
    for path in sources(ROOT):
        rel = path.relative_to(ROOT).as_posix()
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if NEVER_HERE.search(line):
                found.append(f"{rel}:{n}: {line.strip()}")
            for doc in re.findall(r"\b(docs/[\w.-]+\.md|README\.md|CHANGELOG\.md)", line):
                if not (ROOT / doc).exists() and doc not in PENDING:
                    found.append(f"{rel}:{n}: {doc} is not in the repository")
    assert found == []


def test_the_checker_catches_what_leads_nowhere(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "agent").mkdir()
    (tmp_path / "agent" / "config.py").write_text("")
    (tmp_path / "docs" / "b.md").write_text("# B\n\n## The receiver's HTTP API\n")
    doc = tmp_path / "docs" / "a.md"
    text = "\n".join(
        [
            "# A",
            "[ok](b.md#the-receivers-http-api) [web](https://example.com) [self](#a) [nope](#z)",
            "[gone](missing.md) [bad section](b.md#nowhere) [pending](events.md)",
            "`agent/config.py` `agent/` `agent/nothing.py` `/etc/tally/tally.toml` `tally.toml`",
            "see protocols/SCALES.md",
            "```",
            "[in a code block](ignored.md) `agent/ignored.py`",
            "```",
        ]
    )
    assert problems(doc, text, tmp_path, {"docs/events.md"}) == [
        "docs/a.md: link #z: there is no such section here",
        "docs/a.md: link missing.md names docs/missing.md, which is not in the repository",
        "docs/a.md: link b.md#nowhere: docs/b.md has no section #nowhere",
        "docs/a.md: `agent/nothing.py` is not a file or folder of the repository",
        "docs/a.md:5: names a file that is not in the repository: see protocols/SCALES.md",
    ]


def test_slugs_follow_github() -> None:
    assert slug("The central receiver, `tally serve`") == "the-central-receiver-tally-serve"
    assert slug("Tools: decode, weighings, detect, simulate") == (
        "tools-decode-weighings-detect-simulate"
    )
    assert slug("切换页面（任何页面）") == "切换页面任何页面"
