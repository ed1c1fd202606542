"""The daemon's composition: the static table of service factories `tally run` starts."""

from __future__ import annotations

from agent.daemon.runtime import ServiceFactory


def factories() -> list[ServiceFactory]:
    """Every capability's service factory, devices first, sync last."""
    from agent.daemon import health
    from agent.daemon.services import (
        attendance,
        displays,
        notes,
        operators,
        packers,
        plans,
        plant,
        scales,
        spotchecks,
        tickets,
        visits,
        window_services,
    )
    from sync.replica import service as replica
    from sync.sender import forwarder

    return [
        scales.build,
        packers.build,
        visits.build,
        attendance.build,
        health.build,
        window_services.build,
        spotchecks.build,
        notes.build,
        operators.build,
        tickets.build,
        displays.build,
        plant.build,
        plans.build,
        forwarder.build,
        replica.build,
    ]
