"""Who is acting: the operator of the local API request being handled, for the events it writes.

The API server sets `CURRENT` around each operation (the request's `operator`, else the one
signed in on the terminal); the writer adds it as `operator` to every operator event written in
that operation's task (see OPERATOR_KINDS), so no service has to remember to pass it on. With
nobody named or signed in, events stay as they were (no `operator` field is added).
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

from agent.domain.kinds import OPERATOR_KINDS

CURRENT: ContextVar[str | None] = ContextVar("tally_operator", default=None)


def stamp(kind: str, data: dict[str, Any]) -> dict[str, Any]:
    """`data` with the acting operator added when `kind` is an operator event written by an op."""
    who = CURRENT.get()
    if not who or kind not in OPERATOR_KINDS or data.get("operator"):
        return data
    return {**data, "operator": who}
