"""Sync status from the agent's database: backlog, oldest unsent, acks, errors, dead letters."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from agent.daemon.store import Store
from agent.domain.events import parse_at

ACKED = "sync.acked_through"
LAST_ACK_AT = "sync.last_ack_at"
LAST_ERROR = "sync.last_error"


def read_status(store: Store, now: datetime, *, enabled: bool, state: str = "") -> dict[str, Any]:
    """The `sync` topic's value as the database tells it.

    Events are gapless and only acknowledged ones are ever pruned, so the backlog is the
    last seq minus the acknowledged one. `state` defaults to what the stored facts imply.
    """
    acked = int(store.get_state(ACKED, 0))
    last_error = store.get_state(LAST_ERROR)
    backlog = max(0, store.last_seq() - acked)
    oldest: float | None = None
    first_unsent = store.first_at_after(acked)
    if first_unsent is not None:
        oldest = round(max(0.0, (now - parse_at(first_unsent)).total_seconds()), 1)
    dead = store.dead_letter_count()
    if not state:
        state = "disabled" if not enabled else "failing" if last_error else "idle"
    return {
        "enabled": enabled,
        "backlog": backlog,
        "oldest_unsent_s": oldest,
        "acked_through": acked,
        "last_ack_at": store.get_state(LAST_ACK_AT),
        "last_error": last_error,
        "dead_letters": dead,
        "state": state,
    }


def recent_dead_letters(store: Store, limit: int = 10) -> list[dict[str, Any]]:
    """The newest dead letters: seq, the server's reason and when it was refused."""
    return [
        {"seq": s, "kind": k, "error": err, "at": at} for s, k, err, at in store.dead_letters(limit)
    ]
