"""Who is on duty at this terminal (挂牌上岗): sign in and out, and the `operator` topic.

The signed-in operator is the one acting on every local API request that names none
(agent/daemon/api.py), so each operator event they record carries their name.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from agent.daemon.api import CommandError
from agent.domain.events import format_at
from agent.domain.kinds import Kind

if TYPE_CHECKING:
    from agent.daemon.runtime import Context, Service

STATE_KEY = "operator.signed_in"
MAX_NAME = 64
MAX_POST = 32


class Operators:
    """Holds the signed-in operator (kept in the state table with each sign-in event)."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        stored = ctx.store.get_state(STATE_KEY)
        self.current: dict[str, str] = stored if isinstance(stored, dict) else {}
        ctx.api.signed_in = lambda: self.current.get("operator", "")
        ctx.api.register("operator.sign_in", self.sign_in)
        ctx.api.register("operator.sign_out", self.sign_out)
        ctx.api.register("operator.who", self.who)
        self._publish()

    def _publish(self) -> None:
        self.ctx.hub.publish("operator", dict(self.current))

    async def sign_in(self, req: dict[str, Any]) -> Any:
        """`operator.sign_in {name, post?}`: a name or badge number goes on duty here."""
        given = req.get("name")  # not `operator`: the API fills that with the signed-in one
        if not isinstance(given, str) or not given.strip():
            raise CommandError("sign in with a name or badge number, e.g. --name 张伟 or 0123")
        given = " ".join(given.split())
        if len(given) > MAX_NAME:
            raise CommandError(f"a name or badge number has at most {MAX_NAME} characters")
        post = req.get("post") or ""
        if not isinstance(post, str) or len(post.strip()) > MAX_POST:
            raise CommandError(f"post must be a short text of at most {MAX_POST} characters")
        post = post.strip()
        if self.current:
            await self._sign_out()
        data = {"operator": given, "post": post}
        current = {**data, "since": format_at(datetime.now(UTC))}
        await self.ctx.writer.append(Kind.OPERATOR_SIGNED_IN, data, state={STATE_KEY: current})
        self.current = current
        self._publish()
        return self.current

    async def _sign_out(self) -> None:
        data = {"operator": self.current["operator"], "post": self.current.get("post", "")}
        await self.ctx.writer.append(Kind.OPERATOR_SIGNED_OUT, data, state={STATE_KEY: {}})
        self.current = {}

    async def sign_out(self, req: dict[str, Any]) -> Any:
        """`operator.sign_out {}`: the signed-in operator goes off duty."""
        if not self.current:
            raise CommandError("nobody is signed in on this terminal")
        who = dict(self.current)
        await self._sign_out()
        self._publish()
        return who

    async def who(self, req: dict[str, Any]) -> Any:
        """`operator.who {}` → the signed-in operator `{operator, post, since}` or `{}`."""
        return dict(self.current)


def build(ctx: Context) -> list[Service]:
    """Register the sign-in ops; no service of its own."""
    Operators(ctx)
    return []
