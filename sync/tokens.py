"""Bearer tokens from files readable by their owner alone; a token's text is never echoed."""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path

from agent.errors import TallyError

TERMINAL = re.compile(r"[a-z0-9-]{1,32}")
TOKEN = re.compile(r"[\x21-\x7e]{8,512}")  # visible ASCII, as an HTTP header value allows
SCOPES = ("push", "read")
WITH_SCOPES = re.compile(r"(?P<name>[^\[\]]*)(?:\[(?P<scopes>[a-z,]*)\])?")


class TokenFileError(TallyError):
    """A token file is missing, too open or malformed; the message never contains a token."""


def expand(path: str) -> str:
    """`path` with `$CREDENTIALS_DIRECTORY` (systemd `LoadCredential=`) and `~` expanded."""
    return os.path.expanduser(os.path.expandvars(path))


def read_private(path: str, what: str) -> tuple[str, tuple[int, int]]:
    """The text of a file that only its owner may read, and its (mtime_ns, size) signature.

    Raises TokenFileError when the file is missing, unreadable, not a regular file, or
    readable or writable by group or others.
    """
    p = Path(path)
    try:
        st = p.stat()
    except FileNotFoundError:
        raise TokenFileError(f"{what} {path} does not exist; create it (mode 0600)") from None
    except OSError as exc:
        raise TokenFileError(f"{what} {path} cannot be read ({exc.strerror})") from None
    if not stat.S_ISREG(st.st_mode):
        raise TokenFileError(f"{what} {path} is not a regular file")
    if st.st_mode & 0o077:
        raise TokenFileError(
            f"{what} {path} is open to group or others (mode {stat.S_IMODE(st.st_mode):04o});"
            f" run `chmod 600 {path}`"
        )
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise TokenFileError(f"{what} {path} cannot be read ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise TokenFileError(f"{what} {path} is not UTF-8 text") from None
    return text, (st.st_mtime_ns, st.st_size)


def signature(path: str) -> tuple[int, int] | None:
    """(mtime_ns, size) of a file, or None when it cannot be seen: cheap change detection."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size)


def parse_token(text: str, path: str) -> str:
    """The single token of an agent's token file (surrounding blank space ignored)."""
    token = text.strip()
    if not token:
        raise TokenFileError(f"the sync token file {path} is empty; put the token in it")
    if not TOKEN.fullmatch(token):
        raise TokenFileError(
            f"the sync token file {path} must hold one token of 8 to 512 visible ASCII"
            " characters and nothing else"
        )
    return token


@dataclass(frozen=True, slots=True)
class Entry:
    """One line of a receiver's tokens file.

    `terminal:token` (no plant), `plant/terminal:token` (the terminal belongs to that plant)
    or `@reader:token` (a person of the evaluation group: reads reports, never posts events).
    A terminal's name may end in its scopes, `wb1[push]` or `wb1[read]` (default: both).
    """

    name: str
    token: str
    plant: str = ""
    reader: bool = False
    scopes: tuple[str, ...] = ("push", "read")

    def may(self, scope: str) -> bool:
        """Whether this token carries `scope` (push: post its own streams; read: reports,
        pages and the pull feed of its plant's streams)."""
        return scope in self.scopes


def parse_entries(text: str, path: str) -> list[Entry]:
    """The entries of a receiver's tokens file, one a line.

    Blank lines and lines starting with `#` are skipped; a terminal or reader may have several
    tokens (for rotation), and a terminal belongs to one plant.
    """
    entries: list[Entry] = []
    owner: dict[str, tuple[str, int]] = {}  # token → (who, line)
    plant_of: dict[str, tuple[str, int]] = {}  # terminal → (plant, line)
    for n, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        head, sep, token = line.partition(":")
        reader = head.startswith("@")
        found = WITH_SCOPES.fullmatch(head.lstrip("@"))
        plant, slash, name = (found["name"] if found else "").rpartition("/")
        listed = found["scopes"] if found else None
        scopes = tuple(sorted(set(listed.split(",")))) if listed is not None else SCOPES
        ok = (
            sep
            and TERMINAL.fullmatch(name)
            and TOKEN.fullmatch(token)
            and (not slash or (TERMINAL.fullmatch(plant) and not reader))
        )
        if not ok:
            raise TokenFileError(
                f"line {n} of the tokens file {path} is not `terminal:token`,"
                " `plant/terminal:token` or `@reader:token` (names of a-z, 0-9 and '-',"
                " token of 8 to 512 visible ASCII characters)"
            )
        if not scopes or any(x not in SCOPES for x in scopes) or (reader and listed is not None):
            raise TokenFileError(
                f"line {n} of the tokens file {path} gives the scopes [{listed}]; a terminal's"
                " scopes are [push], [read] or [push,read], and a reader only reads"
            )
        if reader:
            scopes = ("read",)
        who = f"reader {name!r}" if reader else f"terminal {name!r}"
        first = owner.setdefault(token, (who, n))
        if first[0] != who:
            raise TokenFileError(
                f"line {n} of the tokens file {path} gives {who} the token of"
                f" {first[0]} (line {first[1]}); give each terminal its own token"
                + ("" if "reader" not in who + first[0] else " and each reader their own")
            )
        if not reader:
            seen = plant_of.setdefault(name, (plant, n))
            if seen[0] != plant:
                raise TokenFileError(
                    f"line {n} of the tokens file {path} puts terminal {name!r} in plant"
                    f" {plant!r}, line {seen[1]} in {seen[0]!r}; a terminal belongs to one plant"
                )
        entries.append(Entry(name, token, plant, reader, scopes))
    if not any(not e.reader for e in entries):
        raise TokenFileError(f"the tokens file {path} has no `terminal:token` line")
    return entries


def parse_table(text: str, path: str) -> list[tuple[str, str]]:
    """The (terminal, token) pairs of a receiver's tokens file (readers left out)."""
    return [(e.name, e.token) for e in parse_entries(text, path) if not e.reader]


@dataclass
class TokenTable:
    """A receiver's tokens, reloaded when the file changes (a bad edit keeps the old table)."""

    path: str
    pairs: list[tuple[str, str]]
    sig: tuple[int, int] | None
    entries: list[Entry] = field(default_factory=list)

    @staticmethod
    def load(path: str) -> TokenTable:
        """Read the file; raise TokenFileError when it is missing, too open or malformed."""
        text, sig = read_private(path, "the tokens file")
        entries = parse_entries(text, path)
        pairs = [(e.name, e.token) for e in entries if e.may("push")]
        return TokenTable(path, pairs, sig, entries)

    def refresh(self) -> str | None:
        """Reload when the file changed; return a sentence when the new file is unusable."""
        sig = signature(self.path)
        if sig == self.sig:
            return None
        try:
            fresh = TokenTable.load(self.path)
        except TokenFileError as exc:
            self.sig = sig
            return f"{exc}; keeping the previous tokens"
        self.pairs, self.sig, self.entries = fresh.pairs, fresh.sig, fresh.entries
        return None

    def terminal_for(self, token: str, scope: str) -> str | None:
        """The terminal whose token this is, when the token carries `scope` (constant time
        against every entry)."""
        found: str | None = None
        given = token.encode("utf-8", "replace")
        for e in self.entries:
            if hmac.compare_digest(given, e.token.encode("utf-8")) and not e.reader:
                found = e.name if e.may(scope) else None
        return found

    def plant_of(self, terminal: str) -> str:
        """The plant a terminal belongs to ("" when unplaced or unknown)."""
        return next((e.plant for e in self.entries if e.name == terminal and not e.reader), "")

    def terminal_of(self, token: str) -> str | None:
        """The terminal a token lets post its events (scope push), compared in constant time
        against every entry."""
        found: str | None = None
        given = token.encode("utf-8", "replace")
        for terminal, candidate in self.pairs:
            if hmac.compare_digest(given, candidate.encode("utf-8")):
                found = terminal
        return found

    def reader_of(self, token: str) -> str | None:
        """Who a token belongs to for reading reports: `@reader` or a terminal's name.

        Compared in constant time against every entry.
        """
        found: str | None = None
        given = token.encode("utf-8", "replace")
        for e in self.entries:
            if hmac.compare_digest(given, e.token.encode("utf-8")):
                found = (f"@{e.name}" if e.reader else e.name) if e.may("read") else None
        return found

    def plants(self) -> dict[str, tuple[str, ...]]:
        """Each plant's terminals, plants and terminals sorted (plant "" holds the unplaced)."""
        out: dict[str, set[str]] = {}
        for e in self.entries:
            if not e.reader:
                out.setdefault(e.plant, set()).add(e.name)
        return {p: tuple(sorted(out[p])) for p in sorted(out)}

    def secret(self) -> bytes:
        """A key derived from every token: signs web sessions, the same in every process that
        reads this file, and changed (signing everyone out) when a token changes."""
        h = hashlib.sha256(b"tally-web-session\0")
        for token in sorted(e.token for e in self.entries):
            h.update(token.encode("utf-8") + b"\0")
        return h.digest()
