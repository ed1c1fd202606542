"""Bearer tokens from files readable by their owner alone; a token's text is never echoed."""

from __future__ import annotations

import hmac
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path

from agent.errors import TallyError

TERMINAL = re.compile(r"[a-z0-9-]{1,32}")
TOKEN = re.compile(r"[\x21-\x7e]{8,512}")  # visible ASCII, as an HTTP header value allows


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


def parse_table(text: str, path: str) -> list[tuple[str, str]]:
    """The (terminal, token) pairs of a receiver's tokens file: `terminal:token` per line.

    Blank lines and lines starting with `#` are skipped; a terminal may have several tokens
    (for rotation).
    """
    pairs: list[tuple[str, str]] = []
    owner: dict[str, tuple[str, int]] = {}  # token → (terminal, line)
    for n, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        terminal, sep, token = line.partition(":")
        if not sep or not TERMINAL.fullmatch(terminal) or not TOKEN.fullmatch(token):
            raise TokenFileError(
                f"line {n} of the tokens file {path} is not `terminal:token` (terminal of"
                " a-z, 0-9 and '-', token of 8 to 512 visible ASCII characters)"
            )
        first = owner.setdefault(token, (terminal, n))
        if first[0] != terminal:
            raise TokenFileError(
                f"line {n} of the tokens file {path} gives terminal {terminal!r} the token of"
                f" terminal {first[0]!r} (line {first[1]}); give each terminal its own token"
            )
        pairs.append((terminal, token))
    if not pairs:
        raise TokenFileError(f"the tokens file {path} has no `terminal:token` line")
    return pairs


@dataclass
class TokenTable:
    """A receiver's tokens, reloaded when the file changes (a bad edit keeps the old table)."""

    path: str
    pairs: list[tuple[str, str]]
    sig: tuple[int, int] | None

    @staticmethod
    def load(path: str) -> TokenTable:
        """Read the file; raise TokenFileError when it is missing, too open or malformed."""
        text, sig = read_private(path, "the tokens file")
        return TokenTable(path, parse_table(text, path), sig)

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
        self.pairs, self.sig = fresh.pairs, fresh.sig
        return None

    def terminal_of(self, token: str) -> str | None:
        """The terminal a token belongs to, compared in constant time against every entry."""
        found: str | None = None
        given = token.encode("utf-8", "replace")
        for terminal, candidate in self.pairs:
            if hmac.compare_digest(given, candidate.encode("utf-8")):
                found = terminal
        return found
