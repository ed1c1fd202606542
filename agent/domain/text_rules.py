"""The one rule for every text and number that enters Tally, and for every ledger cell that leaves.

Text is valid Unicode (no lone surrogates), holds no control character (a multi-line field may
hold line breaks and tabs) and is at most its field's length; a number is finite and within its
field's range; a JSON value nests at most MAX_DEPTH deep. The local API checks each request with
`request_problem`, the store's writer and the receiver check each event's data with
`data_problem`, and the ledger writers pass every cell through `csv_cell` / `xlsx_cell`.
Pure: no I/O.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

MAX_DEPTH = 16  # nesting of a request or of an event's data
MAX_KEY = 64  # a JSON object's key
MAX_NUMBER = 10**15  # any number: exact in a double, far above any weight or count
MAX_ITEMS = 1000  # items of one list or object
FIRST_YEAR, LAST_YEAR = 1970, 2199  # an event's timestamp; later years overflow local dates


@dataclass(frozen=True, slots=True)
class Field:
    """The rule of one named text field: its maximum length and whether it may span lines.

    `numbers` lets an id that clients may send as a number (a visit id) be one.
    """

    max_len: int
    multiline: bool = False
    numbers: bool = False


# The documented limits of named fields, in requests and in events' data alike.
FIELDS: dict[str, Field] = {
    "text": Field(500, multiline=True),  # a shift note
    "note": Field(500, multiline=True),  # a print-code check's note
    "operator": Field(64),
    "reason": Field(200),
    "order": Field(64),
    "product": Field(64),
    "plate": Field(64),
    "visit": Field(64, numbers=True),
    "weighing": Field(64),
    "ticket": Field(32),
    "window": Field(32),
    "service": Field(32),
    "packer": Field(32),
    "scale": Field(32),
    "point": Field(64),
    "load": Field(16),
    "role": Field(16),
    "result": Field(16),
    "field": Field(64),
    "target_event": Field(200),
    "kind": Field(64),
    "day": Field(32),
    "op": Field(64),
}
OTHER = Field(200)  # any other text in a request
OTHER_DATA = Field(4000, multiline=True)  # any other text in an event's data

# Fields of events' data that count things: whole, never negative.
COUNTS = frozenset(
    {
        "bags",
        "returned",
        "returned_over",
        "broken",
        "running_s",
        "planned_kg",
        "bag_kg",
        "seq",
        "expected_repair_min",
    }
)

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_CONTROL_MULTILINE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u2028\u2029]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")
_XLSX_ILLEGAL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def show(text: str, limit: int = 40) -> str:
    """A short, printable, encodable rendering of `text` for a sentence."""
    safe = repr(text.encode("utf-8", "backslashreplace").decode("ascii", "backslashreplace"))
    return safe if len(safe) <= limit else safe[: limit - 4] + "...'"


def text_problem(value: str, name: str, rule: Field) -> str | None:
    """The sentence saying what is wrong with the text `value` of field `name`, or None."""
    if _SURROGATE.search(value):
        return (
            f"{name} is not valid Unicode text (it holds a lone surrogate or undecodable bytes);"
            " type it again as UTF-8"
        )
    pattern = _CONTROL_MULTILINE if rule.multiline else _CONTROL
    found = pattern.search(value)
    if found:
        where = "" if rule.multiline else "; it must be one line"
        return f"{name} holds the control character U+{ord(found.group()):04X}{where}; remove it"
    if len(value) > rule.max_len:
        return f"{name} has {len(value)} characters; keep it to at most {rule.max_len}"
    return None


def number_problem(
    value: float, name: str, lo: float = -MAX_NUMBER, hi: float = MAX_NUMBER
) -> str | None:
    """The sentence saying what is wrong with the number `value` of field `name`, or None."""
    if isinstance(value, float) and not math.isfinite(value):
        return f"{name} must be a finite number, not {value!r}"
    if not lo <= value <= hi:
        return f"{name} must be a number from {lo:g} to {hi:g}"
    return None


def _walk(value: Any, name: str, rule: Field, depth: int, strict: bool, data: bool) -> str | None:
    """Check a JSON value under field `name`; `strict`: the field must be text (or null)."""
    if depth > MAX_DEPTH:
        return f"{name} nests deeper than {MAX_DEPTH} levels; send a flatter value"
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, str):
        return text_problem(value, name, rule)
    if isinstance(value, int | float):
        if strict and not rule.numbers:
            return f"{name} must be text, not a number"
        base = name.rsplit(".", 1)[-1].split("[", 1)[0]
        return number_problem(value, name, 0 if data and base in COUNTS else -MAX_NUMBER)
    if strict:
        what = "a list" if isinstance(value, list) else "an object"
        return f"{name} must be text, not {what}"
    if isinstance(value, list):
        if len(value) > MAX_ITEMS:
            return f"{name} has {len(value)} items; send at most {MAX_ITEMS}"
        for i, item in enumerate(value):
            problem = _walk(item, f"{name}[{i}]", rule, depth + 1, False, data)
            if problem:
                return problem
        return None
    if isinstance(value, dict):
        return _walk_object(value, name, depth + 1, data)
    return f"{name} is not a JSON value"


def _walk_object(obj: Mapping[Any, Any], prefix: str, depth: int, data: bool) -> str | None:
    if depth > MAX_DEPTH:
        return f"{prefix or 'the value'} nests deeper than {MAX_DEPTH} levels; send a flatter value"
    if len(obj) > MAX_ITEMS:
        return f"{prefix or 'the object'} has {len(obj)} keys; send at most {MAX_ITEMS}"
    for key, value in obj.items():
        if not isinstance(key, str):
            return f"{prefix or 'the object'} has a key that is not text"
        problem = text_problem(key, f"a key of {prefix or 'the object'}", Field(MAX_KEY))
        if problem:
            return problem
        name = f"{prefix}.{key}" if prefix else key
        known = FIELDS.get(key)
        rule = known or (OTHER_DATA if data else OTHER)
        # Named text fields must be text in a request; an event's data may hold old shapes.
        strict = known is not None and not data and depth == 1
        problem = _walk(value, name, rule, depth, strict, data)
        if problem:
            return problem
    return None


def request_problem(request: Mapping[str, Any]) -> str | None:
    """The sentence saying what is wrong with a local API request (or ctl body), or None.

    Named fields (FIELDS) must be text of at most their length; any other text at most
    OTHER.max_len characters on one line; numbers finite and within ±MAX_NUMBER.
    """
    return _walk_object(request, "", 1, data=False)


def data_problem(data: Mapping[str, Any]) -> str | None:
    """The sentence saying what is wrong with an event's data (writer and receiver), or None.

    Named fields keep their limits; other text may span lines up to OTHER_DATA.max_len
    characters; counts (COUNTS) are never negative.
    """
    return _walk_object(data, "data", 1, data=True)


def at_problem(at: datetime) -> str | None:
    """The sentence saying what is wrong with an event's time, or None."""
    if not FIRST_YEAR <= at.year <= LAST_YEAR:
        return f"at must be a time between the years {FIRST_YEAR} and {LAST_YEAR}"
    return None


def clean_text(value: str) -> str:
    """`value` with what no spreadsheet can hold (lone surrogates, C0 controls but tab and
    line breaks, U+FFFE/U+FFFF) replaced by U+FFFD."""
    return _XLSX_ILLEGAL.sub("\ufffd", value)


def csv_cell(value: Any) -> Any:
    """A ledger cell made safe for CSV: text that a spreadsheet would read as a formula (it
    starts with = + - @ tab or CR) gets a leading apostrophe; unholdable characters go."""
    if not isinstance(value, str):
        return value
    value = clean_text(value)
    return "'" + value if value.startswith(_FORMULA_START) else value


def xlsx_cell(value: Any) -> Any:
    """A ledger cell made safe for .xlsx: unholdable characters go (the writer stores every
    text cell as text, so `=` never becomes a formula)."""
    return clean_text(value) if isinstance(value, str) else value
