"""Packers and bulk loaders: bag tallies, stops and live rates from the Modbus driver's readings."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import replace
from datetime import UTC, datetime, time, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from agent.config import PackerConfig
from agent.daemon.api import CommandError
from agent.daemon.runtime import Context, Service
from agent.domain.attendance import is_handover
from agent.domain.counters import (
    Anomaly,
    Discontinuity,
    Output,
    PackerState,
    Progress,
    Rates,
    Settings,
    Started,
    Stopped,
    Tally,
    close,
    give_reason,
    interval_end,
    observe,
    point_key,
    tick,
)
from agent.domain.events import format_at, parse_at

if TYPE_CHECKING:
    from drivers.modbus import Device

log = logging.getLogger("tally.packers")

STATE_PREFIX = "packer."
REASON_MAX = 200
REPAIR_MAX_MIN = 7 * 24 * 60
# The loop wakes for a reading or when the next tally interval ends, and at least this often:
# interval ends are wall times, so after a step of the wall clock a tally closes this late at most.
MAX_WAIT_S = 30.0
_DUE = "due"  # queued by the loop's timer: a tally interval ended (or MAX_WAIT_S passed)
_DRIVER_ENDED = "driver ended"  # queued when the driver's task ends, failed or not


def state_key(name: str) -> str:
    """The state table key holding a packer's core state."""
    return STATE_PREFIX + name


def modbus_device(p: PackerConfig) -> Device:
    """What the Modbus driver needs of a `[[packer]]`: its bus, unit id, poll and points by key."""
    from drivers.modbus import Device, Link

    if p.transport == "tcp":
        link = Link("tcp", host=p.host, port=p.port, timeout_s=p.timeout_s)
    else:
        link = Link(
            "rtu",
            serial_port=p.serial_port,
            baudrate=p.baudrate,
            parity=p.parity,
            stopbits=p.stopbits,
            timeout_s=p.timeout_s,
        )
    points = tuple((point_key(pt, i), pt.point()) for i, pt in enumerate(p.points))
    return Device(p.name, link, p.device_id, p.poll_s, points, p.span_gaps)


def build(ctx: Context) -> list[Service]:
    """The packing-line service when any `[[packer]]` is configured."""
    if not ctx.config.packers:
        return []
    return [PackersService(ctx)]


class PackersService:
    """Reads every packer through the Modbus driver and turns readings into events."""

    name = "packers"

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.configs: dict[str, PackerConfig] = {p.name: p for p in ctx.config.packers}
        self.settings = {n: Settings.from_config(p) for n, p in self.configs.items()}
        self.tz = ctx.config.terminal.timezone
        self.states: dict[str, PackerState] = {}
        self.rates: dict[str, Rates] = {}
        self.online: dict[str, bool] = {n: False for n in self.configs}
        self.faults: dict[str, dict[str, str]] = {n: {} for n in self.configs}
        self.anomaly_open: dict[str, bool] = {n: False for n in self.configs}
        self.lock = asyncio.Lock()
        now = datetime.now(UTC)
        for n in self.configs:
            stored = ctx.store.get_state(state_key(n))
            self.states[n] = PackerState.from_json(stored) if stored else PackerState()
            self.rates[n] = self._seed_rates(n, now)
            self._publish(n, now)
        ctx.api.register("packer.reason", self.reason)

    # --- start-up ---------------------------------------------------------------------------

    def _seed_rates(self, name: str, now: datetime) -> Rates:
        """Today's tallies (and the open interval) as the starting point of the live rates."""
        tz = ZoneInfo(self.tz)
        midnight = datetime.combine(now.astimezone(tz).date(), time(0), tz).astimezone(UTC)
        tallies = self.ctx.store.events_since(
            "packer.tally", format_at(midnight - timedelta(hours=1))
        )
        rates = Rates(self.tz)
        for ev in tallies:
            d = ev.data
            if d.get("packer") != name:
                continue
            end = parse_at(d["to"])
            if end <= midnight:
                continue
            rates = rates.add(
                Progress(
                    end,
                    int(d["bags"]),
                    int(d["returned"]),
                    int(d["broken"]),
                    round(float(d["running_s"]) * 1000),
                )
            )
        st = self.states[name]
        if st.seen and st.prev_at is not None:
            rates = rates.add(Progress(st.prev_at, st.bags, st.returned, st.broken, st.running_ms))
        return rates

    # --- the loop ---------------------------------------------------------------------------

    async def run(self) -> None:
        """Run the driver and handle what it reports; on cancel, write the open intervals."""
        from drivers.modbus import ModbusDriver

        queue: asyncio.Queue[Any] = asyncio.Queue()
        driver = ModbusDriver([modbus_device(p) for p in self.configs.values()])
        task = asyncio.create_task(driver.run(queue.put_nowait), name="modbus driver")
        task.add_done_callback(lambda _: queue.put_nowait(_DRIVER_ENDED))
        loop = asyncio.get_running_loop()
        # One timer for the next tally interval's end, put in the queue as an item when due,
        # instead of a timeout around each wait for a reading (each left in the loop's heap
        # until its time, 30 s ahead, four of them a second). A reading's own packer is ticked
        # by `observe`; the others wait for the timer. One `_DUE` is queued or timed at a time.
        timer = loop.call_soon(queue.put_nowait, _DUE)
        try:
            while True:
                item = await queue.get()
                if item is _DRIVER_ENDED:
                    task.result()  # a failed driver fails the service, which is restarted
                    raise RuntimeError("the Modbus driver ended")
                if item is not _DUE:
                    await self._handle(item)
                    continue
                await self._tick(datetime.now(UTC))  # the first opens every packer's interval
                delay = self._until_due(datetime.now(UTC))
                timer = loop.call_at(loop.time() + delay, queue.put_nowait, _DUE)
        except asyncio.CancelledError:
            timer.cancel()
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
            await self.flush(datetime.now(UTC))
            raise
        finally:
            timer.cancel()
            if not task.done():
                task.cancel()

    async def _handle(self, item: Any) -> None:
        from drivers.modbus import ConfigFault, Reading, Status

        if isinstance(item, Reading):
            async with self.lock:
                s = self.settings[item.unit]
                state, outs = observe(s, self.states[item.unit], item.values, item.at)
                await self._commit(item.unit, state, outs)
            self._publish(item.unit, item.at)
        elif isinstance(item, Status):
            self.online[item.unit] = item.online
            await self.ctx.device_state(item.unit, item.online, item.reason, "packer")
            self._publish(item.unit, datetime.now(UTC))
        elif isinstance(item, ConfigFault):
            await self._config_fault(item)

    async def _config_fault(self, fault: Any) -> None:
        faults = self.faults[fault.unit]
        if fault.cleared:
            faults.pop(fault.points, None)
        else:
            faults[fault.points] = fault.detail
        alert = f"modbus_config.{fault.unit}"
        if faults:
            first = next(iter(faults.values()))
            await self.ctx.alerts.raise_(alert, f"packer {fault.unit}: {first}")
        else:
            await self.ctx.alerts.clear(alert, f"packer {fault.unit} reads every point again")

    def _until_due(self, now: datetime) -> float:
        """Seconds until the first open tally interval ends (0: a packer has none open yet)."""
        due = now + timedelta(seconds=MAX_WAIT_S)
        for name, st in self.states.items():
            if st.start is None:
                return 0.0
            due = min(due, interval_end(st.start, self.settings[name].tally_s))
        return max(0.0, (due - now).total_seconds()) + 0.005  # past the end, not just short

    async def _tick(self, now: datetime) -> None:
        for name, s in self.settings.items():
            async with self.lock:
                state, outs = tick(s, self.states[name], now)
                await self._commit(name, state, outs)

    async def flush(self, now: datetime) -> None:
        """Write every packer's open interval (a clean stop)."""
        for name, s in self.settings.items():
            state, tally = close(s, self.states[name], now)
            await self._commit(name, state, [tally] if tally else [])

    # --- events -----------------------------------------------------------------------------

    async def _commit(self, name: str, state: PackerState, outs: list[Output]) -> None:
        """Write the events of one step, each with the step's final state in its transaction.

        A crash between two of them loses at most a later event of the step, never counts a
        bag twice: the stored raw values always match the stored totals. The state is
        serialised only for a step that writes an event (most polls and ticks write none).
        """
        self.states[name] = state
        writes = any(isinstance(o, Tally | Discontinuity | Stopped | Started) for o in outs)
        stored = {state_key(name): state.to_json()} if writes else {}
        for out in outs:
            if isinstance(out, Progress):
                self.rates[name] = self.rates[name].add(out)
            elif isinstance(out, Tally):
                data = out.data()
                if self.configs[name].kind == "bulk":
                    data["kind"] = "bulk"  # running time only: not in the packers' rates
                await self.ctx.writer.append("packer.tally", data, state=stored)
                if self.anomaly_open[name]:
                    self.anomaly_open[name] = False
                elif f"packer_anomaly.{name}" in self.ctx.alerts.active:
                    await self.ctx.alerts.clear(f"packer_anomaly.{name}", "counting normally")
            elif isinstance(out, Discontinuity):
                data = {
                    "device": name,
                    "point": out.point,
                    "previous": out.previous,
                    "current": out.current,
                    "cause": out.cause,
                }
                await self.ctx.writer.append("counter.discontinuity", data, state=stored)
            elif isinstance(out, Stopped):
                data = {
                    "packer": name,
                    "reason": out.reason,
                    "expected_repair_min": out.expected_repair_min,
                    "since": format_at(out.since),
                    **self._stop_flags(name, out.since),
                }
                await self.ctx.writer.append("packer.stopped", data, state=stored)
            elif isinstance(out, Started):
                await self.ctx.writer.append("packer.started", {"packer": name}, state=stored)
            elif isinstance(out, Anomaly):
                self.anomaly_open[name] = True
                await self.ctx.alerts.raise_(
                    f"packer_anomaly.{name}",
                    f"packer {name}: counter {out.point} went from {out.previous} to "
                    f"{out.current} ({out.delta} counts, more than the {out.limit} possible); "
                    "not counted, check the counter and max_bags_per_s",
                )

    def _stop_flags(self, name: str, since: datetime) -> dict[str, Any]:
        """A bulk loader's stop says so; a stop at a shift change is a handover stop."""
        checks = self.ctx.config.checks
        flags: dict[str, Any] = {}
        if self.configs[name].kind == "bulk":
            flags["kind"] = "bulk"
        if is_handover(since, checks.shift_starts, ZoneInfo(self.tz), checks.handover_window_min):
            flags["handover"] = True
        return flags

    # --- the operator's reason --------------------------------------------------------------

    async def reason(self, req: dict[str, Any]) -> Any:
        """`packer.reason {packer, reason, expected_repair_min}`: why a packer is stopped."""
        name = req.get("packer")
        if not isinstance(name, str) or name not in self.configs:
            known = ", ".join(sorted(self.configs))
            raise CommandError(f"there is no packer {name!r}; the packers are: {known}")
        text = req.get("reason")
        if not isinstance(text, str) or not text.strip():
            raise CommandError("reason must be a short text saying why the packer stopped")
        text = text.strip()
        if len(text) > REASON_MAX:
            raise CommandError(f"reason is {len(text)} characters; keep it to {REASON_MAX}")
        minutes = req.get("expected_repair_min")
        if isinstance(minutes, bool) or not isinstance(minutes, int):
            raise CommandError("expected_repair_min must be a whole number of minutes")
        if not 0 <= minutes <= REPAIR_MAX_MIN:
            raise CommandError(
                f"expected_repair_min must be between 0 and {REPAIR_MAX_MIN}, not {minutes}"
            )
        now = datetime.now(UTC)
        async with self.lock:
            state = self.states[name]
            if not self.online[name]:
                # An unreachable packer's last running flag is stale; take the operator's word.
                state = replace(state, running=False)
            try:
                state, stopped = give_reason(state, text, minutes, now)
            except ValueError:
                raise CommandError(
                    f"packer {name} is running; a reason can only be given while it is stopped"
                ) from None
            await self._commit(name, state, [stopped])
        self._publish(name, now)
        return {
            "packer": name,
            "reason": text,
            "expected_repair_min": minutes,
            "since": format_at(stopped.since),
        }

    # --- live state -------------------------------------------------------------------------

    def _publish(self, name: str, now: datetime) -> None:
        st = self.states[name]
        p = self.configs[name]
        stopped = None
        if st.stopped:
            stopped = {
                "reason": st.reason,
                "expected_repair_min": st.repair_min,
                "since": format_at(st.stop_since) if st.stop_since else None,
                **(self._stop_flags(name, st.stop_since) if st.stop_since else {}),
            }
        self.ctx.hub.publish(
            f"packer.{name}",
            {
                "name": name,
                "kind": p.kind,
                "online": self.online[name],
                "running": st.running and self.online[name],
                "stopped": stopped,
                "bag_kg": p.bag_kg,
                **self.rates[name].view(now, p.bag_kg),
                "points": dict(st.raw),
                "loaded": st.loaded,
            },
        )
