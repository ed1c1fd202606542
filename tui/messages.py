"""The messages of the operator UI, each named as a fact the connection worker observed."""

from __future__ import annotations

from typing import Any

from textual.message import Message


class StateReceived(Message):
    """The daemon published a topic's new state."""

    def __init__(self, topic: str, state: Any) -> None:
        super().__init__()
        self.topic = topic
        self.state = state


class DaemonFound(Message):
    """A daemon answered on the socket and the subscription started."""


class DaemonLost(Message):
    """No daemon answers (never started, stopped or crashed)."""

    def __init__(self, reason: str) -> None:
        super().__init__()
        self.reason = reason


class CommandAnswered(Message):
    """The daemon accepted an operator command."""

    def __init__(self, op: str, result: Any, what: str) -> None:
        super().__init__()
        self.op = op
        self.result = result
        self.what = what


class CommandRefused(Message):
    """The daemon refused an operator command; `sentence` says why."""

    def __init__(self, op: str, sentence: str) -> None:
        super().__init__()
        self.op = op
        self.sentence = sentence
