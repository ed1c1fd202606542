"""Shift notes: an operator's free-text note becomes an `operator.note` event (op `note.add`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from agent.daemon.api import CommandError

if TYPE_CHECKING:
    from agent.daemon.runtime import Context, Service

MAX_NOTE = 500


def check_note(request: dict[str, Any]) -> dict[str, str]:
    """The payload of a note request; raise CommandError with one sentence when it is bad."""
    text = request.get("text")
    if not isinstance(text, str) or not text.strip():
        raise CommandError("a note needs some text, for example --text 'scale 1 recalibrated'")
    text = text.strip()
    if len(text) > MAX_NOTE:
        raise CommandError(f"a note has at most {MAX_NOTE} characters, not {len(text)}")
    operator = request.get("operator", "")
    if not isinstance(operator, str) or len(operator) > 64:
        raise CommandError("operator must be a name of at most 64 characters")
    return {"text": text, "operator": operator.strip()}


def build(ctx: Context) -> list[Service]:
    """Register `note.add {text, operator?}` → `{"seq", "at"}`; no service of its own."""

    async def add(request: dict[str, Any]) -> dict[str, Any]:
        ev = await ctx.writer.append("operator.note", check_note(request))
        return {"seq": ev.seq, "at": ev.at}

    ctx.api.register("note.add", add)
    return []
