"""The receiver's users: names, roles and passwords hashed with scrypt (salted), in a file that
only its owner may read. A password is never stored or logged in clear."""

from __future__ import annotations

import base64
import fcntl
import hashlib
import hmac
import os
import re
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

from sync.tokens import TERMINAL, TokenFileError, read_private, signature

ROLES = ("reader", "admin")
# scrypt's cost: 16 MiB and about 50 ms a check on an office PC (RFC 7914's interactive).
N, R, P = 2**14, 8, 1
MAXMEM = 64 << 20
MIN_PASSWORD = 8
NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,31}")
CREATED = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")
T = TypeVar("T")


class UserError(TokenFileError):
    """A users file or a user's input cannot be used; one sentence, never a password.

    `code` names the refusals a page translates: "exists", "unknown", "last_admin"."""

    def __init__(self, message: str, code: str = "") -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True)
class User:
    """One line of the users file: `name:role:plant:scrypt$N$r$p$salt$hash[:created]` (created:
    UTC, `YYYY-MM-DDTHH:MM:SSZ`; lines written before it was kept have none)."""

    name: str
    role: str
    plant: str
    hashed: str
    created: str = ""

    def line(self) -> str:
        """The user's line in the file."""
        tail = f":{self.created}" if self.created else ""
        return f"{self.name}:{self.role}:{self.plant}:{self.hashed}{tail}"


def hash_password(password: str, salt: bytes | None = None) -> str:
    """`scrypt$N$r$p$salt$hash` (base64) of a password with a fresh 16-byte salt."""
    salt = salt if salt is not None else secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=N, r=R, p=P, maxmem=MAXMEM, dklen=32)
    b64 = base64.b64encode
    return f"scrypt${N}${R}${P}${b64(salt).decode()}${b64(digest).decode()}"


def verify(password: str, hashed: str) -> bool:
    """Whether `password` is the one `hashed` was made from (constant-time comparison)."""
    try:
        scheme, n, r, p, salt, digest = hashed.split("$")
        if scheme != "scrypt":
            return False
        got = hashlib.scrypt(
            password.encode(),
            salt=base64.b64decode(salt),
            n=int(n),
            r=int(r),
            p=int(p),
            maxmem=MAXMEM,
            dklen=32,
        )
        return hmac.compare_digest(got, base64.b64decode(digest))
    except ValueError:
        return False


def password_problem(password: str) -> str | None:
    """One sentence when a new password cannot be used."""
    if len(password) < MIN_PASSWORD:
        return f"the password must be at least {MIN_PASSWORD} characters"
    if any(ch in password for ch in "\r\n\0"):
        return "the password must be one line"
    return None


def user_problem(name: str, role: str, plant: str) -> str | None:
    """One sentence when a user's name, role or plant cannot be used."""
    if not NAME.fullmatch(name):
        return (
            f"the user name {name!r} must be 1 to 32 characters of a-z, 0-9, '.', '_' and '-'"
            " starting with a letter or digit"
        )
    if role not in ROLES:
        return f"the role must be reader or admin, not {role!r}"
    if plant and not TERMINAL.fullmatch(plant):
        return f"the plant {plant!r} must be 1 to 32 characters of a-z, 0-9 and '-'"
    return None


def parse_users(text: str, path: str) -> dict[str, User]:
    """The users of a users file by name; raises UserError naming the bad line."""
    out: dict[str, User] = {}
    for n, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(":", 3)
        hashed, _, created = parts[3].partition(":") if len(parts) == 4 else ("", "", "")
        if (
            len(parts) != 4
            or user_problem(*parts[:3])
            or not hashed.startswith("scrypt$")
            or (created and not CREATED.fullmatch(created))
        ):
            raise UserError(
                f"line {n} of the users file {path} is not `name:role:plant:scrypt$...`;"
                " add users with `tally serve user add`"
            )
        if parts[0] in out:
            raise UserError(f"line {n} of the users file {path} repeats the user {parts[0]!r}")
        out[parts[0]] = User(parts[0], parts[1], parts[2], hashed, created)
    return out


@dataclass
class UserTable:
    """A receiver's users, reloaded when the file changes (a bad edit keeps the old table)."""

    path: str
    users: dict[str, User] = field(default_factory=dict)
    sig: tuple[int, int] | None = None

    @staticmethod
    def load(path: str) -> UserTable:
        """Read the file; raise UserError when it is missing, too open or malformed."""
        text, sig = read_private(path, "the users file")
        return UserTable(path, parse_users(text, path), sig)

    def refresh(self) -> str | None:
        """Reload when the file changed; return a sentence when the new file is unusable."""
        sig = signature(self.path)
        if sig == self.sig:
            return None
        try:
            fresh = UserTable.load(self.path)
        except TokenFileError as exc:
            self.sig = sig
            return f"{exc}; keeping the previous users"
        self.users, self.sig = fresh.users, fresh.sig
        return None

    def check(self, name: str, password: str) -> User | None:
        """The user when the password is right (slow on purpose: run it off the event loop)."""
        user = self.users.get(name)
        if user is None:
            verify(password, hash_password("", b"\0" * 16))  # the same cost for unknown names
            return None
        return user if verify(password, user.hashed) else None


def add_user(
    path: str, name: str, role: str, plant: str, password: str, *, replace: bool = True
) -> bool:
    """Add a user to the users file (created mode 0600), or replace their line (keeping when
    they were created); return whether the user was new. Raises UserError for a bad name, role,
    plant, password or file, and for a user who exists when `replace` is False."""
    problem = user_problem(name, role, plant) or password_problem(password)
    if problem:
        raise UserError(problem)
    hashed = hash_password(password)  # slow: before taking the file's lock

    def change(users: dict[str, User]) -> bool:
        old = users.get(name)
        if old is not None and not replace:
            raise UserError(
                f"the user {name!r} already exists; change their role or remove them", "exists"
            )
        created = old.created if old is not None else _now()
        users[name] = User(name, role, plant, hashed, created)
        return old is None

    return _rewrite(path, change)


def set_role(path: str, name: str, role: str, plant: str) -> None:
    """Give a user another role or plant (their password stays; their sessions end).

    Raises UserError for an unknown user, a bad role or plant, or when no admin would remain."""
    problem = user_problem(name, role, plant)
    if problem:
        raise UserError(problem)

    def change(users: dict[str, User]) -> None:
        old = users.get(name)
        if old is None:
            raise UserError(f"there is no user {name!r}", "unknown")
        users[name] = User(name, role, plant, old.hashed, old.created)
        _keep_an_admin(users)

    _rewrite(path, change)


def remove_user(path: str, name: str) -> None:
    """Remove a user from the users file (their sessions end at once).

    Raises UserError for an unknown user or when no admin would remain."""

    def change(users: dict[str, User]) -> None:
        if users.pop(name, None) is None:
            raise UserError(f"there is no user {name!r}", "unknown")
        _keep_an_admin(users)

    _rewrite(path, change)


def _keep_an_admin(users: dict[str, User]) -> None:
    if not any(u.role == "admin" for u in users.values()):
        raise UserError(
            "at least one admin must remain; make another user admin first", "last_admin"
        )


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@contextmanager
def _locked(path: str) -> Iterator[None]:
    """Hold `PATH.lock` (mode 0600): one writer of the users file at a time, across the
    processes of `--workers` and `tally serve user add`."""
    try:
        fd = os.open(f"{path}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise UserError(f"cannot lock the users file {path} ({exc.strerror})") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _rewrite(path: str, change: Callable[[dict[str, User]], T]) -> T:
    """Read the users file, apply `change` to its users and write it back atomically, under
    the file's lock; nothing is written when `change` raises."""
    with _locked(path):
        users: dict[str, User] = {}
        if Path(path).exists():
            text, _ = read_private(path, "the users file")
            users = parse_users(text, path)
        result = change(users)
        body = "# name:role:plant:scrypt$N$r$p$salt$hash:created (tally serve user add)\n"
        body += "".join(u.line() + "\n" for u in users.values())
        tmp = f"{path}.tmp"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(body)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except OSError as exc:
            raise UserError(f"cannot write the users file {path} ({exc.strerror})") from None
    return result
