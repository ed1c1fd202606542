"""The operator's command forms: for each action its key, the op it sends, its fields and request."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import tzinfo
from typing import Any, Literal

from agent.daemon.client import split_weights
from tui import views
from tui.i18n import Words

Values = Mapping[str, str | int]
Target = Literal["none", "visit", "packer"]
Subject = tuple[Mapping[str, Any], str]  # what a command is about: its arguments, its name


@dataclass(frozen=True, slots=True)
class Field:
    """One entry of a form: the name sent to the daemon, its label (an i18n key) and its kind.

    `int` fields must hold a whole number; a `required` field may not be left empty; the label of
    each choice is an i18n key too, its value what is sent.
    """

    name: str
    label: str
    kind: Literal["text", "int", "choice"] = "text"
    required: bool = True
    default: str = ""
    choices: tuple[tuple[str, str], ...] = ()  # (i18n key of the label, value)


def split_list(text: str) -> list[str]:
    """Seal numbers typed as one text (spaces, commas, Chinese commas or semicolons between)."""
    return [s for s in re.split(r"[\s,，;；]+", text) if s]


def as_sent(values: Values) -> dict[str, Any]:
    """The entered values, sent as they are."""
    return dict(values)


def seals(values: Values) -> dict[str, Any]:
    """`seals` as a list of seal numbers."""
    return {"seals": split_list(str(values["seals"]))}


def seals_seen(values: Values) -> dict[str, Any]:
    """`seals_seen` as a list of seal numbers."""
    return {"seals_seen": split_list(str(values["seals_seen"]))}


def exit_checked(values: Values) -> dict[str, Any]:
    """The gate's exit: the seals and product it sees and its reason, each only when given."""
    out: dict[str, Any] = {}
    if str(values.get("seals_seen", "")).strip():
        out["seals_seen"] = split_list(str(values["seals_seen"]))
    for name in ("product_seen", "reason"):
        if str(values.get(name, "")).strip():
            out[name] = values[name]
    return out


def given(values: Values) -> dict[str, Any]:
    """Only the fields the operator filled in."""
    return {k: v for k, v in values.items() if str(v).strip()}


def bag_samples(values: Values) -> dict[str, Any]:
    """The typed bag weights as `samples_kg` (numbers as floats, anything else as typed)."""
    return {"samples_kg": split_weights(str(values["kg"]))}


@dataclass(frozen=True, slots=True)
class Form:
    """One operator command: the op it sends, what it applies to, the form it asks for.

    `target` is what the command is about: the selected visit, the selected packer, or nothing
    (the fields say it all; `names` is then the field that names it in the status line). A form
    without `title` is sent at once. `request` turns the entered values into the op's arguments;
    `fixed` arguments go with every request.
    """

    op: str
    target: Target = "visit"
    title: str = ""  # i18n key, filled in with {plate} or {packer}
    fields: tuple[Field, ...] = ()
    request: Callable[[Values], dict[str, Any]] = as_sent
    fixed: tuple[tuple[str, str], ...] = ()
    names: str = ""

    def arguments(self, subject: Mapping[str, Any], values: Values) -> dict[str, Any]:
        """The op's arguments for `subject` (e.g. `{"visit": id}`) and the entered values."""
        return {**subject, **dict(self.fixed), **self.request(values)}

    def what(self, subject: str) -> str:
        """How the status line names the command once the daemon accepted it."""
        return f"{self.op} {subject}"

    def with_defaults(self, **defaults: str) -> tuple[Field, ...]:
        """The fields, with the defaults known only when the form opens (e.g. the first packer)."""
        return tuple(
            replace(f, default=defaults[f.name]) if f.name in defaults else f for f in self.fields
        )


ARRIVE = Form(
    "visit.arrive",
    "none",
    "form.arrive",
    (
        Field("plate", "form.plate"),
        Field("order", "form.order"),
        Field("product", "form.product"),
        Field(
            "load",
            "form.load",
            "choice",
            choices=(("load.bagged", "bagged"), ("load.bulk", "bulk")),
        ),
        Field("planned_kg", "form.planned_kg", "int"),
    ),
    names="plate",
)
TARE = Form("visit.weigh", fixed=(("role", "tare"),))
GROSS = Form("visit.weigh", fixed=(("role", "gross"),))
GATE_IN = Form("visit.gate_in")
QUEUE = Form("visit.queue")
LOADING_START = Form(
    "visit.loading_start", title="form.loading_start", fields=(Field("point", "form.point"),)
)
LOADING_FINISH = Form(
    "visit.loading_finish",
    title="form.loading_finish",
    fields=(Field("bags", "form.bags", "int", required=False),),
)
SEAL = Form("visit.seal", title="form.seal", fields=(Field("seals", "form.seals"),), request=seals)
EXIT = Form("visit.exit")
EXIT_SEALED = Form(
    "visit.exit",
    title="form.exit_seals",
    fields=(Field("seals_seen", "form.seals_seen"),),
    request=seals_seen,
)
EXIT_CHECKED = Form(
    "visit.exit",
    title="form.exit_checked",
    fields=(
        Field("seals_seen", "form.seals_seen_opt", required=False),
        Field("product_seen", "form.product_seen", required=False),
        Field("reason", "form.exit_reason", required=False),
    ),
    request=exit_checked,
)
BROKEN_BAGS = Form(
    "visit.broken_bags",
    title="form.broken_bags",
    fields=(
        Field("found", "form.broken_found", "int", required=False),
        Field("replaced", "form.broken_replaced", "int", required=False),
    ),
    request=given,
)
CANCEL = Form("visit.cancel", title="form.cancel_visit", fields=(Field("reason", "form.reason"),))
PACKER_REASON = Form(
    "packer.reason",
    "packer",
    "form.packer_reason",
    (Field("reason", "form.reason"), Field("expected_repair_min", "form.repair", "int")),
)
BY = Field("by", "form.by", "choice", choices=(("by.crew", "crew"), ("by.qc", "qc")))
CHECK_BAGS = Form(
    "check.bag_weight",
    "packer",
    "form.check_bags",
    (Field("kg", "form.bag_weights"), BY),
    request=lambda values: {**bag_samples(values), "by": values.get("by", "crew")},
)
CHECK_PRINT = Form(
    "check.print_code",
    "packer",
    "form.check_print",
    (
        Field(
            "result",
            "form.result",
            "choice",
            choices=(("result.pass", "pass"), ("result.fail", "fail")),
        ),
        Field("note", "form.note", required=False),
        BY,
    ),
)
CALIBRATED = Form("packer.calibrated", "packer")  # sent at once for the selected packer
SIGN_IN = Form(
    "operator.sign_in",
    "none",
    "form.sign_in",
    (Field("name", "form.badge"), Field("post", "form.post", required=False)),
    names="name",
)
SIGN_OUT = Form("operator.sign_out", "none", names="operator")
WINDOW_SERVICES = ("plan_order", "payment", "transport_letter", "no_letter")
WINDOW_ARRIVE = Form(
    "window.arrive",
    "none",
    "form.window_arrive",
    (
        Field("window", "form.window", default="sales"),
        Field(
            "service",
            "form.service",
            "choice",
            choices=tuple((f"service.{s}", s) for s in WINDOW_SERVICES),
        ),
    ),
    names="window",
)
WINDOW_SERVE = Form("window.serve", "none")  # the ticket is picked from a list
TICKET_PRINT = Form("ticket.print")  # the truck is picked from the ones weighed
TICKET_REPRINT = Form("ticket.reprint")
PLAN = Form(
    "plan.set",
    "none",
    "form.plan",
    (
        Field("day", "form.day"),
        Field("tonnes", "form.tonnes"),
        Field("product", "form.plan_product", required=False),
    ),
    names="day",
)

FORMS: tuple[Form, ...] = (
    ARRIVE,
    TARE,
    GROSS,
    GATE_IN,
    QUEUE,
    LOADING_START,
    LOADING_FINISH,
    SEAL,
    EXIT,
    EXIT_SEALED,
    EXIT_CHECKED,
    BROKEN_BAGS,
    CANCEL,
    PACKER_REASON,
    CHECK_BAGS,
    CHECK_PRINT,
    CALIBRATED,
    SIGN_IN,
    SIGN_OUT,
    WINDOW_ARRIVE,
    WINDOW_SERVE,
    TICKET_PRINT,
    TICKET_REPRINT,
    PLAN,
)

# (pane, key, action): one key does the obvious thing on the pane in view; each action is a
# `TallyApp.action_<name>` method.
KEYS: tuple[tuple[str, str, str], ...] = (
    ("weighbridge", "a", "arrive"),
    ("weighbridge", "t", "tare"),
    ("weighbridge", "g", "gross"),
    ("weighbridge", "q", "pick_queue"),
    ("weighbridge", "p", "print_ticket"),
    ("weighbridge", "r", "reprint_ticket"),
    ("yard", "a", "arrive"),
    ("yard", "i", "gate_in"),
    ("yard", "q", "queue"),
    ("yard", "l", "loading_start"),
    ("yard", "f", "loading_finish"),
    ("yard", "s", "seal"),
    ("yard", "x", "exit"),
    ("yard", "X", "exit_checked"),
    ("yard", "d", "broken_bags"),
    ("loading", "d", "broken_bags"),
    ("yard", "c", "cancel"),
    ("loading", "r", "packer_reason"),
    ("loading", "b", "check_bags"),
    ("loading", "p", "check_print"),
    ("loading", "k", "calibrated"),
    ("today", "p", "plan"),
    *((pane, "w", "window") for pane in ("weighbridge", "loading", "yard", "today", "health")),
    *((pane, "o", "sign_in") for pane in ("weighbridge", "loading", "yard", "today", "health")),
    *((pane, "u", "sign_out") for pane in ("weighbridge", "loading", "yard", "today", "health")),
)


def panes_of(action: str) -> frozenset[str]:
    """The panes on which `action` has a key."""
    return frozenset(pane for pane, _key, name in KEYS if name == action)


# --- pick lists: the items (key, label) a command offers before its form ----------------------


def queue_candidates(states: Mapping[str, Any], w: Words) -> list[tuple[str, str, str]]:
    """Trucks in the plant not yet in the scale queue: (visit, plate, label) each."""
    queued = {v.get("visit") for v in views.visits(states, "scale_queue")}
    return [
        (
            str(v["visit"]),
            str(v.get("plate") or v["visit"]),
            f"{views.text(v.get('plate'))}  {views.stage_text(w, v.get('stage'))}",
        )
        for v in views.visits(states, "open")
        if v.get("visit") and v.get("visit") not in queued
    ]


def weighed_candidates(states: Mapping[str, Any], w: Words) -> list[tuple[str, str, str]]:
    """Trucks in the plant with a gross weighing, the one that moved last first:
    (visit, plate, label) each."""
    weighed = [
        v for v in views.visits(states, "open") if v.get("visit") and v.get("gross_kg") is not None
    ]
    weighed.sort(key=lambda v: str(v.get("stage_since") or ""), reverse=True)
    return [
        (
            str(v["visit"]),
            str(v.get("plate") or v["visit"]),
            f"{views.text(v.get('plate'))}  {w('col.net')} {views.kg(v.get('net_kg'))} kg"
            f"  {views.stage_text(w, v.get('stage'))}",
        )
        for v in weighed
    ]


def window_items(states: Mapping[str, Any], w: Words, tz: tzinfo) -> list[tuple[str, str]]:
    """The window key's list: someone new first (key ""), then each ticket waiting."""
    waiting = [t for t in views.list_of(states.get("windows"), "open") if isinstance(t, dict)]
    return [("", w("window.new"))] + [
        (
            str(t.get("ticket")),
            w(
                "window.waiting",
                ticket=views.text(t.get("ticket")),
                window=views.text(t.get("window")),
                service=w.maybe(f"service.{t.get('service')}", views.text(t.get("service"))),
                since=views.clock(t.get("arrived_at"), tz),
            ),
        )
        for t in waiting
    ]
