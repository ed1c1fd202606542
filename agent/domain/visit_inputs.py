"""Validators of operator input to visit commands; each refusal is one clear sentence."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from agent.domain import plates
from agent.errors import Refused

PLANNED_KG = (1, 100_000)
WEIGHT_KG = (1, 200_000)
BAGS = (1, 10_000)
BAG_KG = (1, 5_000)
MAX_TEXT = 64
MAX_REASON = 200
MAX_SEALS = 20
SEAL = re.compile(r"[0-9A-Za-z][0-9A-Za-z_/-]{0,31}")


class Refusal(Refused):
    """An operator command cannot be accepted; the message is one clear sentence."""


def text(req: Mapping[str, Any], key: str, *, required: bool = False, limit: int = MAX_TEXT) -> str:
    """The one-line text `req[key]`, stripped ('' when absent and not required)."""
    value = req.get(key)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise Refusal(f"{key.replace('_', ' ')} is missing; give it")
        return ""
    if not isinstance(value, str):
        raise Refusal(f"{key.replace('_', ' ')} must be text, not {value!r}")
    value = value.strip()
    if len(value) > limit or any(c in value for c in "\r\n\t"):
        raise Refusal(f"{key.replace('_', ' ')} must be one line of at most {limit} characters")
    return value


def number(
    req: Mapping[str, Any], key: str, lo: int, hi: int, *, required: bool = False
) -> int | None:
    """The whole number `req[key]` within lo..hi (None when absent and not required)."""
    value = req.get(key)
    label = key.replace("_", " ")
    if value is None or value == "":
        if required:
            raise Refusal(f"{label} is missing; give it")
        return None
    whole = _whole(value)
    if whole is None or not lo <= whole <= hi:
        raise Refusal(f"{label} must be a whole number from {lo} to {hi}, not {value!r}")
    return whole


def plate(value: str) -> str:
    """The normalised plate."""
    try:
        return plates.normalise(value)
    except plates.PlateError as exc:
        raise Refusal(str(exc)) from None


def load(value: Any) -> str:
    """'bagged' or 'bulk'."""
    if value not in ("bagged", "bulk"):
        raise Refusal(f"load must be 'bagged' or 'bulk', not {value!r}")
    return str(value)


def role(value: Any) -> str:
    """'tare' or 'gross'."""
    if value not in ("tare", "gross"):
        raise Refusal(f"role must be 'tare' or 'gross', not {value!r}")
    return str(value)


def seals(value: Any) -> list[str]:
    """Seal numbers from a list or a comma-separated text: 1 to MAX_SEALS, none twice."""
    if isinstance(value, str):
        value = value.split(",")
    if not isinstance(value, list) or not value:
        raise Refusal("give at least one seal number")
    found = [str(s).strip() for s in value if str(s).strip()]
    if not found or len(found) > MAX_SEALS:
        raise Refusal(f"give 1 to {MAX_SEALS} seal numbers")
    for s in found:
        if not SEAL.fullmatch(s):
            raise Refusal(f"seal {s!r} is not a seal number (letters, digits, '-', '/', '_')")
    if len(set(found)) != len(found):
        raise Refusal("a seal number is given twice")
    return found


def corrected_value(name: str, value: Any) -> Any:
    """The new value of a correction of field `name`, checked as the original command would."""
    req = {name: value}
    if name == "plate":
        return plate(text(req, name, required=True))
    if name == "load":
        return load(value)
    if name == "role":
        return role(value)
    bounds = {"planned_kg": PLANNED_KG, "weight_kg": WEIGHT_KG, "bags": BAGS, "bag_kg": BAG_KG}
    if name in bounds:
        return number(req, name, *bounds[name], required=True)
    if name == "seals":
        return seals(value)
    limit = MAX_REASON if name == "reason" else MAX_TEXT
    return text(req, name, required=True, limit=limit)


def _whole(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and re.fullmatch(r"\s*\d{1,9}\s*", value):
        return int(value)
    return None
