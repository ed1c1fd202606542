"""Live state shared by the daemon's tasks and streamed, coalesced, to local API subscribers."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from agent.domain.events import Event

log = logging.getLogger("tally.hub")

# Topics published on the local API (each value is a JSON object):
#   scale.<name>   {"name", "weight", "unit", "stable", "online", "capture", "last_weighing", ...}
#   packer.<name>  {"name", "online", "running", "bags_h", "t_h", "return_rate", ...}
#   visits         {"open": [visit...], "queue": [visit...]}
#   alerts         {"active": [{"alert", "detail", "since"}]}
#   devices        {"<device>": {"online": bool, "reason": str, "since": str}}
#   sync           {"backlog", "oldest_unsent_s", "last_ack", "last_error", "dead_letters"}
#   health         {"disk_free_mb", "disk_full", "clock", "last_seq", "version", ...}
#   events         {"last": [envelope...]}  the most recent events, newest last
#   replicas       {"peers": [{"name", "state", "last_contact", "lag_s", "events_behind", ...}]}


def _tell(listener: Callable[..., None], *args: Any) -> None:
    """Call one listener; a fault in it is logged with its traceback and kept from the others
    (one service's bug must not keep the events or a topic from the rest of the daemon)."""
    try:
        listener(*args)
    except Exception:
        name = getattr(listener, "__qualname__", repr(listener))
        log.exception("%s failed; the other listeners were still told", name)


class Hub:
    """Topic → latest value, with per-subscriber coalescing (a slow reader sees the newest)."""

    def __init__(self) -> None:
        self.topics: dict[str, Any] = {}
        self._subs: set[_Subscriber] = set()
        self.event_listeners: list[Callable[[list[Event]], None]] = []
        # Told of other terminals' events once they are stored here (the plant timeline).
        self.foreign_listeners: list[Callable[[list[Event]], None]] = []
        self.watchers: list[Callable[[str, Any], None]] = []
        self._recent: list[dict[str, Any]] = []

    def publish(self, topic: str, value: Any) -> None:
        """Set a topic's value and wake every subscriber."""
        self.topics[topic] = value
        for watcher in list(self.watchers):
            _tell(watcher, topic, value)
        for sub in self._subs:
            sub.mark(topic)

    def get(self, topic: str, default: Any = None) -> Any:
        """The latest value of a topic."""
        return self.topics.get(topic, default)

    def on_events(self, events: list[Event]) -> None:
        """Called on the loop after each commit: feeds projections, then the `events` topic."""
        for listener in list(self.event_listeners):
            _tell(listener, events)
        self._recent.extend(ev.to_dict() for ev in events)
        del self._recent[:-50]
        self.publish("events", {"last": list(self._recent[-20:])})

    def on_foreign(self, events: list[Event]) -> None:
        """Called on the loop after foreign events were stored: feeds the plant projections."""
        for listener in list(self.foreign_listeners):
            _tell(listener, events)

    def subscribe(self) -> _Subscriber:
        """A new subscriber that starts with every topic marked."""
        sub = _Subscriber(self)
        self._subs.add(sub)
        for topic in self.topics:
            sub.mark(topic)
        return sub

    def unsubscribe(self, sub: _Subscriber) -> None:
        """Forget a subscriber."""
        self._subs.discard(sub)


class _Subscriber:
    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.dirty: dict[str, None] = {}
        self.wake = asyncio.Event()

    def mark(self, topic: str) -> None:
        self.dirty[topic] = None
        self.wake.set()

    async def next(self) -> list[tuple[str, Any]]:
        """Wait for changes; return (topic, latest value) for each changed topic."""
        await self.wake.wait()
        self.wake.clear()
        topics = list(self.dirty)
        self.dirty.clear()
        return [(t, self.hub.topics.get(t)) for t in topics]
