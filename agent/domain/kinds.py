"""The catalogue of event kinds: every kind Tally writes, who writes it and its payload fields."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Kind(StrEnum):
    """Every event kind the agent writes (the `kind` of the envelope)."""

    AGENT_STARTED = "agent.started"
    AGENT_STOPPED = "agent.stopped"
    CLOCK_STEPPED = "clock.stepped"
    DEVICE_ONLINE = "device.online"
    DEVICE_OFFLINE = "device.offline"
    ALERT_RAISED = "alert.raised"
    ALERT_CLEARED = "alert.cleared"
    WEIGHING_CAPTURED = "weighing.captured"
    WEIGHING_ABANDONED = "weighing.abandoned"
    PACKER_TALLY = "packer.tally"
    PACKER_STOPPED = "packer.stopped"
    PACKER_STARTED = "packer.started"
    PACKER_CALIBRATED = "packer.calibrated"
    COUNTER_DISCONTINUITY = "counter.discontinuity"
    VISIT_ARRIVED = "visit.arrived"
    VISIT_GATE_IN = "visit.gate_in"
    VISIT_QUEUED_AT_SCALE = "visit.queued_at_scale"
    VISIT_WEIGHED = "visit.weighed"
    VISIT_LOADING_STARTED = "visit.loading_started"
    VISIT_LOADING_FINISHED = "visit.loading_finished"
    VISIT_SEALED = "visit.sealed"
    VISIT_EXITED = "visit.exited"
    VISIT_CANCELLED = "visit.cancelled"
    VISIT_FLAGGED = "visit.flagged"
    VISIT_BROKEN_BAGS = "visit.broken_bags"
    WINDOW_ARRIVED = "window.arrived"
    WINDOW_SERVED = "window.served"
    CHECK_BAG_SAMPLE = "check.bag_sample"
    CHECK_BAG_WEIGHT = "check.bag_weight"
    CHECK_PRINT_CODE = "check.print_code"
    OPERATOR_CORRECTED = "operator.corrected"
    OPERATOR_NOTE = "operator.note"
    OPERATOR_SIGNED_IN = "operator.signed_in"
    OPERATOR_SIGNED_OUT = "operator.signed_out"
    TICKET_ISSUED = "ticket.issued"
    TICKET_PRINT_REQUESTED = "ticket.print_requested"
    TICKET_REPRINTED = "ticket.reprinted"
    TICKET_PRINTED = "ticket.printed"
    PLAN_SET = "plan.set"


@dataclass(frozen=True, slots=True)
class Spec:
    """What one kind means: a one-line doc, who writes it, and its payload.

    `payload` maps each field of `data` to its type and meaning; a name ending in `?` is a field
    that is present only in some events of the kind. Weights are integer kilograms unless said.
    """

    doc: str
    writer: str
    payload: dict[str, str]


_UTC = "str, UTC time (ISO 8601, milliseconds, Z)"
_WHO = "str, the operator who recorded it (the request's, else the one signed in)"

CATALOGUE: dict[Kind, Spec] = {
    Kind.AGENT_STARTED: Spec(
        "The daemon started and owns the devices and the database.",
        "daemon runtime",
        {
            "version": "str, Tally's version",
            "config_sha256": "str, SHA-256 of the config file ('' when built in memory)",
            "pid": "int, the daemon's process id",
        },
    ),
    Kind.AGENT_STOPPED: Spec(
        "The daemon stopped on a signal (SIGTERM, SIGINT).",
        "daemon runtime",
        {"reason": "str, 'signal'"},
    ),
    Kind.CLOCK_STEPPED: Spec(
        "The wall clock jumped against the monotonic clock (NTP, an operator).",
        "daemon runtime",
        {"delta_ms": "int, the jump in ms (negative: backwards)"},
    ),
    Kind.DEVICE_ONLINE: Spec(
        "A scale indicator or Modbus unit answers again.",
        "scales and packers services",
        {"device": "str, the device's name", "reason": "str, usually ''"},
    ),
    Kind.DEVICE_OFFLINE: Spec(
        "A scale indicator or Modbus unit stopped answering.",
        "scales and packers services",
        {"device": "str, the device's name", "reason": "str, what failed"},
    ),
    Kind.ALERT_RAISED: Spec(
        "An alert became active (or its detail changed).",
        "alerts (any service, the sync sender)",
        {
            "alert": "str, the alert's name, e.g. queue_long or scale_frozen.scale1",
            "detail": "str, one sentence for the operator",
            "scale?": "str, the scale the alert is about",
            "level?": "str, late.* alerts: 'warning' (past kpi.warn_share of the target) or 'overdue'",
            "target?": "str, late.* alerts: scale_wait, bag_load_wait, bulk_turnaround, seal_lag"
            " or window.<service>",
            "subject?": "str, late.* alerts: the plate or window ticket",
            "target_min?": "number, late.* alerts: the target in minutes",
            "due_at?": _UTC + ", late.* alerts: when the target is missed",
            "visit?": "str, late.* alerts of a visit: the visit",
        },
    ),
    Kind.ALERT_CLEARED: Spec(
        "An active alert was cleared.",
        "alerts (any service, the sync sender)",
        {"alert": "str, the alert's name", "detail": "str, why it cleared"},
    ),
    Kind.WEIGHING_CAPTURED: Spec(
        "A truck scale captured one stable weighing.",
        "scales service (truck scales)",
        {
            "weighing": "str, UUIDv7 of the weighing",
            "scale": "str, the scale's name",
            "weight_kg": "int, the captured weight",
            "mode": "str, 'gross' or 'net' as the indicator reports it",
            "stable_ms": "int, how long the weight stood still",
            "samples": "int, readings in the stable window",
        },
    ),
    Kind.WEIGHING_ABANDONED: Spec(
        "A load left a truck scale (or timed out) without a stable weight.",
        "scales service (truck scales)",
        {
            "scale": "str, the scale's name",
            "reason": "str, 'left_unstable' or 'unstable_timeout'",
            "max_kg": "int, the highest weight seen",
        },
    ),
    Kind.PACKER_TALLY: Spec(
        "Bags counted on one packer over one tally interval (default 60 s).",
        "packers service",
        {
            "packer": "str, the packer's name",
            "from": _UTC + ", start of the interval",
            "to": _UTC + ", end of the interval",
            "bags": "int, bags filled",
            "returned": "int, bags returned for refilling",
            "returned_over?": "int, of those, overweight returns (a returned_over point)",
            "broken": "int, broken bags",
            "running_s": "number, seconds the packer ran",
            "bag_kg": "int, the nominal bag mass",
            "kind?": "str, 'bulk' for a bulk loader (running time only, no bags)",
        },
    ),
    Kind.PACKER_STOPPED: Spec(
        "A packer stopped, or the operator gave the reason of a stop (a new event each time).",
        "packers service (and op packer.reason)",
        {
            "packer": "str, the packer's name",
            "reason": "str or null, null until the operator gives one",
            "expected_repair_min": "int or null, the operator's estimate",
            "since": _UTC + ", when it stopped",
            "kind?": "str, 'bulk' for a bulk loader (absent for a packer)",
            "handover?": "bool, true when the stop began within handover_window_min of a shift "
            "change (劳务队交接班不停机)",
            "operator?": _WHO,
        },
    ),
    Kind.PACKER_STARTED: Spec(
        "A stopped packer runs again.",
        "packers service",
        {"packer": "str, the packer's name"},
    ),
    Kind.PACKER_CALIBRATED: Spec(
        "The crew calibrated a packer at start-up (开机校正): a bag-weight check is due.",
        "spot checks service (op packer.calibrated)",
        {"packer": "str, the packer's name", "operator": "str, who"},
    ),
    Kind.COUNTER_DISCONTINUITY: Spec(
        "A Modbus counter wrapped or was reset; the count carries on across it.",
        "packers service",
        {
            "device": "str, the packer's name",
            "point": "str, the counter point",
            "previous": "int, the raw value before",
            "current": "int, the raw value after",
            "cause": "str, 'wrap' or 'reset'",
        },
    ),
    Kind.VISIT_ARRIVED: Spec(
        "A truck arrived at the plant (a visit starts).",
        "visits service (op visit.arrive)",
        {
            "visit": "str, UUIDv7 of the visit",
            "plate": "str, the normalised plate, e.g. 京A12345",
            "order": "str, the sales order",
            "product": "str, the product",
            "load": "str, 'bagged' or 'bulk'",
            "planned_kg": "int, the planned quantity",
            "operator?": _WHO,
        },
    ),
    Kind.VISIT_GATE_IN: Spec(
        "The gate let the truck in.",
        "visits service (op visit.gate_in)",
        {
            "visit?": "str, the visit (absent when recorded by plate and order)",
            "plate?": "str, with order: the visit's plate, when its arrival was unknown here",
            "order?": "str, with plate: the visit's order, when its arrival was unknown here",
            "reason?": "str, why it was released out of arrival order",
            "ahead?": "[str], plates that arrived earlier and still wait",
            "operator?": _WHO,
        },
    ),
    Kind.VISIT_QUEUED_AT_SCALE: Spec(
        "The truck joined the queue of a truck scale.",
        "visits service (op visit.queue)",
        {
            "visit?": "str, the visit (absent when recorded by plate and order)",
            "plate?": "str, with order: the visit's plate, when its arrival was unknown here",
            "order?": "str, with plate: the visit's order, when its arrival was unknown here",
            "scale": "str, the scale's name",
            "operator?": _WHO,
        },
    ),
    Kind.VISIT_WEIGHED: Spec(
        "A captured weighing was assigned to the visit as its tare or gross.",
        "visits service (op visit.weigh, or automatic matching)",
        {
            "visit?": "str, the visit (absent when recorded by plate and order)",
            "plate?": "str, with order: the visit's plate, when its arrival was unknown here",
            "order?": "str, with plate: the visit's order, when its arrival was unknown here",
            "weighing": "str, the weighing.captured it takes",
            "role": "str, 'tare' or 'gross'",
            "weight_kg": "int, the weight",
            "operator?": _WHO,
        },
    ),
    Kind.VISIT_LOADING_STARTED: Spec(
        "Loading started at a packer or bulk loading point.",
        "visits service (op visit.loading_start)",
        {
            "visit?": "str, the visit (absent when recorded by plate and order)",
            "plate?": "str, with order: the visit's plate, when its arrival was unknown here",
            "order?": "str, with plate: the visit's order, when its arrival was unknown here",
            "point": "str, the loading point",
            "counter?": "{packer: str, from: int, bag_kg: int}, the packer's count at the start",
            "operator?": _WHO,
        },
    ),
    Kind.VISIT_LOADING_FINISHED: Spec(
        "Loading finished.",
        "visits service (op visit.loading_finish)",
        {
            "visit?": "str, the visit (absent when recorded by plate and order)",
            "plate?": "str, with order: the visit's plate, when its arrival was unknown here",
            "order?": "str, with plate: the visit's order, when its arrival was unknown here",
            "point": "str, the loading point",
            "bags?": "int, bags loaded (bagged loads)",
            "bag_kg?": "int, the bag mass (bagged loads)",
            "operator?": _WHO,
        },
    ),
    Kind.VISIT_SEALED: Spec(
        "The load was sealed.",
        "visits service (op visit.seal)",
        {
            "visit?": "str, the visit (absent when recorded by plate and order)",
            "plate?": "str, with order: the visit's plate, when its arrival was unknown here",
            "order?": "str, with plate: the visit's order, when its arrival was unknown here",
            "seals": "[str], the seal numbers",
            "operator?": _WHO,
        },
    ),
    Kind.VISIT_EXITED: Spec(
        "The truck left the plant (the visit ends).",
        "visits service (op visit.exit)",
        {
            "visit?": "str, the visit (absent when recorded by plate and order)",
            "plate?": "str, with order: the visit's plate, when its arrival was unknown here",
            "order?": "str, with plate: the visit's order, when its arrival was unknown here",
            "seals_seen?": "[str], the seal numbers the gate saw",
            "operator?": _WHO,
            "product_seen?": "str, the product the gate saw on the truck",
            "reason?": "str, why the gate let it out despite the exit checks (see exit_checks)",
            "exit_checks?": "[str], the exit checks the reason overrode",
        },
    ),
    Kind.VISIT_CANCELLED: Spec(
        "The visit was cancelled.",
        "visits service (op visit.cancel)",
        {"visit": "str, the visit", "reason": "str, why", "operator?": _WHO},
    ),
    Kind.VISIT_FLAGGED: Spec(
        "A check found something wrong with the visit.",
        "visits service (checks, op visit.exit)",
        {
            "visit": "str, the visit",
            "check": "str, tare_fluctuation, underloaded, bagged_overweight, seal_mismatch, or an"
            " exit check let through with a reason: exit_no_gross, exit_unsealed,"
            " exit_net_off_order, exit_product_mismatch, exit_broken_bags",
            "detail": "str, one sentence with the numbers",
            "weighing": "str, the weighing checked ('' for seal_mismatch and exit checks)",
        },
    ),
    Kind.VISIT_BROKEN_BAGS: Spec(
        "The loading crew found broken bags on a bagged truck and/or replaced them.",
        "visits service (op visit.broken_bags)",
        {
            "visit": "str, the visit",
            "found": "int, broken bags found now (0 when only recording replacements)",
            "replaced": "int, broken bags replaced now",
        },
    ),
    Kind.WINDOW_ARRIVED: Spec(
        "A customer took a ticket at a service window.",
        "window services service (op window.arrive)",
        {
            "window": "str, the window",
            "service": "str, plan_order, payment, transport_letter or no_letter",
            "ticket": "str, the ticket",
            "operator?": _WHO,
        },
    ),
    Kind.WINDOW_SERVED: Spec(
        "A window served a ticket.",
        "window services service (op window.serve)",
        {
            "window": "str, the window",
            "service": "str, the service",
            "ticket": "str, the ticket",
            "operator?": _WHO,
        },
    ),
    Kind.CHECK_BAG_SAMPLE: Spec(
        "A bag scale weighed one bag of a packer (a sample for the next bag-weight check).",
        "scales service (bag scales)",
        {
            "packer": "str, the packer the bag scale serves",
            "scale": "str, the bag scale's name",
            "weight_kg": "number, the bag's weight to 0.01 kg",
        },
    ),
    Kind.CHECK_BAG_WEIGHT: Spec(
        "A bag-weight spot check of a packer and its verdict.",
        "spot checks service (op check.bag_weight, or a bag scale's samples)",
        {
            "packer": "str, the packer",
            "samples_kg": "[number], the bag weights to 0.01 kg",
            "mean_kg": "number, their mean",
            "bag_kg": "int, the nominal bag mass",
            "result": "str, 'pass' or 'fail'",
            "under": "[number], the samples below the limit",
            "over": "[number], the samples above the limit",
            "operator": "str, who checked ('' for a bag scale)",
            "source": "str, 'typed' or 'scale'",
            "by?": "str, 'crew' (包装工段) or 'qc' (质控处); absent means crew",
            "scale?": "str, the bag scale (source 'scale')",
        },
    ),
    Kind.CHECK_PRINT_CODE: Spec(
        "A print-code spot check of a packer.",
        "spot checks service (op check.print_code)",
        {
            "packer": "str, the packer",
            "result": "str, 'pass' or 'fail'",
            "note": "str, what was seen",
            "operator": "str, who checked",
            "by?": "str, 'crew' (包装工段) or 'qc' (质控处); absent means crew",
        },
    ),
    Kind.OPERATOR_CORRECTED: Spec(
        "An operator corrected one field of an earlier visit event (facts are never edited).",
        "visits service (op visit.correct)",
        {
            "target_event": "str, the id terminal:epoch:seq of the corrected event",
            "visit": "str, the visit",
            "field": "str, the corrected field of the target's data",
            "old": "any, the value before",
            "new": "any, the value from now on",
            "reason": "str, why",
            "operator": "str, who",
        },
    ),
    Kind.OPERATOR_NOTE: Spec(
        "A free-text shift note.",
        "notes (op note.add)",
        {
            "text": "str, the note (at most 500 characters)",
            "operator": "str, who ('' if not given)",
        },
    ),
    Kind.OPERATOR_SIGNED_IN: Spec(
        "An operator signed in on the terminal (挂牌上岗); their name goes on what they record.",
        "operators (op operator.sign_in)",
        {
            "operator": "str, the name or badge number",
            "post": "str, the post, e.g. weighbridge, gate, packing, window, qc ('' if not given)",
        },
    ),
    Kind.OPERATOR_SIGNED_OUT: Spec(
        "The signed-in operator signed out (end of shift).",
        "operators (op operator.sign_out)",
        {"operator": "str, who signed out", "post": "str, their post"},
    ),
    Kind.TICKET_ISSUED: Spec(
        "A weigh ticket (磅单) was issued with the next gapless number of the terminal's local day.",
        "tickets (after a gross weighing, or op ticket.print)",
        {
            "number": "str, the printed number TERMINAL-YYYYMMDD-NNNN",
            "serial": "int, the number's place in its day, from 1, gapless",
            "day": "str, the plant-local day YYYY-MM-DD the number counts in",
            "visit": "str, the visit ('' for a single weighing)",
            "weighing": "str, the weighing the ticket is for",
            "plate": "str",
            "order": "str",
            "product": "str",
            "load": "str, bagged or bulk",
            "bags": "int | None",
            "bag_kg": "int | None",
            "tare_kg": "int | None",
            "tare_at": "str | None, " + _UTC,
            "gross_kg": "int | None",
            "gross_at": "str | None, " + _UTC,
            "net_kg": "int | None",
            "weight_kg": "int | None, a single weighing's weight",
            "weight_at": "str | None, " + _UTC,
            "scale": "str",
            "seals": "list[str]",
            "flags": "list[str], check names",
            "operator": "str",
            "print": "bool, whether it is to be printed now",
            "weighed_seq?": "int, seq of the visit.weighed event it follows",
        },
    ),
    Kind.TICKET_PRINT_REQUESTED: Spec(
        "An issued ticket was asked to print (it waits while the printer is offline).",
        "tickets (op ticket.print)",
        {"number": "str, the ticket", "operator": "str"},
    ),
    Kind.TICKET_REPRINTED: Spec(
        "A copy of a printed ticket was asked for (printed marked 副本).",
        "tickets (op ticket.reprint)",
        {"number": "str, the ticket", "copy": "int, the copy's number from 1", "operator": "str"},
    ),
    Kind.TICKET_PRINTED: Spec(
        "A ticket (or a copy) reached the printer.",
        "tickets",
        {
            "number": "str, the ticket",
            "job": "str, the print job",
            "copy": "int, 0 for the original",
            "printer": "str, the [[printer]] name",
            "ref": "str, the printer's job reference",
        },
    ),
    Kind.PLAN_SET: Spec(
        "The sales office's bagged dispatch plan of a day (a later one for the same day and"
        " product replaces it).",
        "plan (op plan.set)",
        {
            "day": "str, the plant-local day, YYYY-MM-DD",
            "tonnes": "str, the planned tonnes as a decimal, e.g. '1200.5'",
            "product": "str, the product ('' for the whole day)",
            "operator": "str, who ('' if not given)",
        },
    ),
}


def markdown_table() -> str:
    """The catalogue as the Markdown table of docs/events.md (one row per kind, in enum order)."""
    lines = ["| kind | meaning | written by | payload (`data`) |", "|---|---|---|---|"]
    for kind in Kind:
        spec = CATALOGUE[kind]
        fields = "<br>".join(f"`{name}` {what}" for name, what in spec.payload.items())
        lines.append(f"| `{kind}` | {spec.doc} | {spec.writer} | {fields} |")
    return "\n".join(lines) + "\n"


# Kinds an operator records through a local API op: the writer adds the acting operator to
# their data (agent/daemon/operator.py) when the op did not already.
OPERATOR_KINDS: frozenset[str] = frozenset(
    {
        Kind.PACKER_STOPPED,
        Kind.PACKER_CALIBRATED,
        Kind.VISIT_ARRIVED,
        Kind.VISIT_GATE_IN,
        Kind.VISIT_QUEUED_AT_SCALE,
        Kind.VISIT_WEIGHED,
        Kind.VISIT_LOADING_STARTED,
        Kind.VISIT_LOADING_FINISHED,
        Kind.VISIT_SEALED,
        Kind.VISIT_EXITED,
        Kind.VISIT_CANCELLED,
        Kind.WINDOW_ARRIVED,
        Kind.WINDOW_SERVED,
        Kind.CHECK_BAG_WEIGHT,
        Kind.CHECK_PRINT_CODE,
        Kind.OPERATOR_CORRECTED,
        Kind.OPERATOR_NOTE,
        Kind.TICKET_PRINT_REQUESTED,
        Kind.TICKET_REPRINTED,
        Kind.PLAN_SET,
    }
)
