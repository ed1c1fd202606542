"""The gate's exit checks end to end through `tally ctl` against one real daemon: each refused
with one sentence and exit code 2, let out with a reason, the reason in the gate ledger."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from agent.daemon.client import AsyncClient
from tests.daemon import Daemon, tally, wait_for, write_config
from tests.e2e.test_tui_actions import Indicator

TARE, GROSS = 15000, 45000


@dataclass
class Gate:
    """The real daemon with a weighbridge indicator the test loads by hand."""

    config: Path
    daemon: Daemon
    scale: Indicator

    def ctl(self, *args: str) -> dict[str, Any]:
        r = tally("ctl", "--config", str(self.config), "--json", *args)
        assert r.returncode == 0, r.stderr
        return dict(json.loads(r.stdout))

    def refused(self, *args: str) -> str:
        """The one-sentence refusal of a ctl command that must fail with exit code 2."""
        r = tally("ctl", "--config", str(self.config), *args)
        assert (r.returncode, r.stdout) == (2, ""), r
        return r.stderr

    def weigh(self, kg: int) -> str:
        """A truck of `kg` drives on and off the scale; return the unassigned weighing."""
        seen = {w["weighing"] for w in self.daemon.request("visits.list")["unassigned"]}
        self.scale.kg = kg

        def captured() -> str | None:
            return next(
                (
                    w["weighing"]
                    for w in self.daemon.request("visits.list")["unassigned"]
                    if w["weighing"] not in seen and w["weight_kg"] == kg
                ),
                None,
            )

        w = str(wait_for(captured, timeout=30))
        self.scale.kg = 0
        wait_for(lambda: asyncio.run(self._scale_state()) == "armed", timeout=30)
        return w

    async def _scale_state(self) -> Any:
        client = AsyncClient(self.daemon.socket)
        await client.connect()
        try:
            async with asyncio.timeout(10):
                async for topic, state in client.states():
                    if topic == "scale.scale1":
                        return state.get("state")
        finally:
            await client.close()
        return None

    def truck(self, plate: str, load: str, planned: int, *, weighed: bool = True) -> str:
        """A truck through the gate, loaded, and (when `weighed`) with its tare and gross.

        Set up through the local API; the exits under test go through `tally ctl`.
        """
        d = self.daemon
        vid = str(
            d.request(
                "visit.arrive",
                plate=plate,
                order=f"SO-{plate[-3:]}",
                product="P.O 42.5",
                load=load,
                planned_kg=planned,
            )["visit"]
        )
        d.request("visit.gate_in", visit=vid, reason="test")
        if weighed:
            d.request("visit.weigh", visit=vid, weighing=self.weigh(TARE), role="tare")
        d.request("visit.loading_start", visit=vid, point="line1" if load == "bagged" else "bulk1")
        if load == "bagged":
            d.request("visit.loading_finish", visit=vid, bags=(GROSS - TARE) // 50)
        else:
            d.request("visit.loading_finish", visit=vid)
        if weighed:
            d.request("visit.weigh", visit=vid, weighing=self.weigh(GROSS), role="gross")
        return vid

    def gate_row(self, plate: str) -> dict[str, str]:
        """The truck's row of today's gate ledger, by English heading."""
        day = datetime.now(ZoneInfo("Asia/Shanghai")).date().isoformat()
        r = tally(
            "export",
            "--config",
            str(self.config),
            "--day",
            day,
            "--ledger",
            "gate",
            "--language",
            "en",
        )
        assert r.returncode == 0, r.stderr
        rows = list(csv.DictReader(io.StringIO(r.stdout)))
        return next(row for row in rows if row["Plate"] == plate)


@pytest.fixture(scope="module")
def gate(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gate]:
    folder = tmp_path_factory.mktemp("exit-checks")
    scale = Indicator()
    config = write_config(
        folder,
        f'[[scale]]\nname = "scale1"\nport = "{scale.path}"\nprotocol = "xk3190"\n'
        "hold_s = 0.5\nmin_samples = 3\nclear_s = 0.3\n\n[kpi]\nexit_tolerance_pct = 5.0\n",
    )
    try:
        with Daemon(config) as d:
            yield Gate(config, d, scale)
    finally:
        scale.close()


def let_out(
    gate: Gate, vid: str, plate: str, refusal: str, reason: str, check: str
) -> dict[str, str]:
    """Refused with `refusal`; let out with `reason`, which the visit and the ledger show."""
    assert gate.refused("exit", "--visit", vid) == (
        f"tally: {plate} (visit {vid}) {refusal};"
        " put it right or give the gate's reason to let it out\n"
    )
    v = gate.ctl("exit", "--visit", vid, "--reason", reason)
    assert (v["stage"], v["exit_reason"]) == ("exited", reason)
    assert [f["check"] for f in v["flags"]] == [f"exit_{check}"]
    row = gate.gate_row(plate)
    assert (row["Status"], row["Exit checks let through"], row["Exit reason"]) == (
        "exited",
        check,
        reason,
    )
    return row


def test_a_truck_never_weighed(gate: Gate) -> None:
    vid = gate.truck("苏A10001", "bagged", 30000, weighed=False)
    let_out(
        gate, vid, "苏A10001", "has no gross weighing", "scale down, weighed at depot", "no_gross"
    )


def test_an_unsealed_bulk_truck(gate: Gate) -> None:
    vid = gate.truck("苏B10002", "bulk", 30000)
    let_out(
        gate, vid, "苏B10002", "is a bulk truck that was never sealed", "seals ran out", "unsealed"
    )


def test_a_net_outside_the_orders_tolerance(gate: Gate) -> None:
    vid = gate.truck("苏A10003", "bagged", 20000)  # 30 t loaded on a 20 t order
    let_out(
        gate,
        vid,
        "苏A10003",
        "has a net of 30000 kg, outside the order's 20000 kg ± 5 %",
        "second order SO-999 on the same truck",
        "net_off_order",
    )


def test_broken_bags_not_replaced(gate: Gate) -> None:
    vid = gate.truck("苏A10004", "bagged", 30000)
    v = gate.ctl("broken-bags", "--visit", vid, "--found", "3", "--replaced", "1")
    assert v["broken_bags"] == {"found": 3, "replaced": 1}
    row = let_out(
        gate, vid, "苏A10004", "has 2 broken bags not replaced", "no spare bags", "broken_bags"
    )
    assert row["Broken bags (found/replaced)"] == "3/1"
