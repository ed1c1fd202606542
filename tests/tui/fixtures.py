"""Fixed live states in the shapes of the BRIEF contract, and a frozen clock, for TUI tests."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

NOW = datetime(2026, 11, 29, 2, 30, 0, tzinfo=UTC)  # 10:30 in Asia/Shanghai


def frozen() -> datetime:
    """The tests' clock."""
    return NOW


def _visit(n: int, plate: str, stage: str, since: str, **more: Any) -> dict[str, Any]:
    v: dict[str, Any] = {
        "visit": f"0190a000-0000-7000-8000-00000000000{n}",
        "plate": plate,
        "order": f"SO{n}",
        "product": "P.O 42.5",
        "load": "bagged",
        "planned_kg": 30000,
        "stage": stage,
        "stage_since": since,
        "arrived_at": "2026-11-29T01:50:00.000Z",
        "tare_kg": None,
        "gross_kg": None,
        "net_kg": None,
        "bags": None,
        "point": None,
        "seals": [],
        "flags": [],
        "waits": {},
    }
    v.update(more)
    return v


V1 = _visit(
    1,
    "苏A12345",
    "scale_queue",
    "2026-11-29T02:18:00.000Z",
    flags=[{"check": "tare_fluctuation", "detail": "tare 15,400 kg vs reference 15,020 kg"}],
)
V2 = _visit(
    2, "苏B67890", "scale_queue", "2026-11-29T02:26:30.000Z", load="bulk", product="P.O 52.5"
)
V3 = _visit(
    3, "鲁C11111", "loading", "2026-11-29T02:10:00.000Z", point="line1", bags=420, tare_kg=15020
)
V4 = _visit(4, "皖D22222", "gated_in", "2026-11-29T00:20:00.000Z")
V5 = _visit(
    5,
    "沪E33333",
    "arrived",
    "2026-11-29T02:25:00.000Z",
    arrived_at="2026-11-29T02:25:00.000Z",
    waits={"expected_min": 35},
)

STATES: dict[str, Any] = {
    "scale.scale1": {
        "name": "scale1",
        "online": True,
        "weight": 43120,
        "unit": "kg",
        "stable": True,
        "state": "captured",
        "last_weighing": {"weighing": "w-1", "weight_kg": 43120, "at": "2026-11-29T02:29:40.000Z"},
        "frames": 1200,
        "corrupt": 2,
        "resyncs": 1,
    },
    "scale.bags1": {  # a bag scale sorts before scale1: the weighbridge must not pick it
        "name": "bags1",
        "role": "bags",
        "online": True,
        "weight": 50.31,
        "unit": "kg",
        "stable": True,
        "state": "captured",
        "last_weighing": None,
        "frames": 300,
        "corrupt": 0,
        "resyncs": 0,
        "packer": "line1",
        "last_sample": {"packer": "line1", "weight_kg": 50.31, "at": "2026-11-29T02:29:50.000Z"},
    },
    "packer.line1": {
        "name": "line1",
        "online": True,
        "running": True,
        "stopped": None,
        "bag_kg": 50,
        "last15": {"bags_h": 2400, "t_h": 120.0, "return_rate": 0.012, "broken_rate": 0.004},
        "day": {
            "bags": 9000,
            "returned": 90,
            "broken": 30,
            "running_h": 4.0,
            "t_h": 112.5,
            "return_rate": 0.01,
            "broken_rate": 0.0033,
        },
        "points": {"bags": 9000},
        "loaded": 420,
    },
    "packer.line2": {
        "name": "line2",
        "online": True,
        "running": False,
        "stopped": {
            "reason": "belt torn",
            "expected_repair_min": 45,
            "since": "2026-11-29T02:05:00.000Z",
        },
        "bag_kg": 50,
        "last15": {"bags_h": 0, "t_h": 80.0, "return_rate": 0.061, "broken_rate": 0.02},
        "day": {},
        "points": {},
        "loaded": 0,
    },
    "visits": {
        "open": [V1, V2, V3, V4],
        "queue": [V5],
        "scale_queue": [V1, V2],
        "unassigned": [
            {
                "weighing": "w-1",
                "weight_kg": 43120,
                "at": "2026-11-29T02:29:40.000Z",
                "scale": "scale1",
            }
        ],
    },
    "kpi": {
        "day": "2026-11-29",
        "weigh_wait": {
            "count": 12,
            "within_target": 11,
            "share": 0.9167,
            "max_min": 14.2,
            "target_min": 10.0,
        },
        "seal_lag": {
            "count": 3,
            "within_target": 3,
            "share": 1.0,
            "max_min": 6.0,
            "target_min": 10.0,
        },
        "bag_load_wait": {
            "count": 8,
            "within_target": 7,
            "share": 0.875,
            "target_min": 120.0,
            "target_share": 0.9,
            "met": False,
        },
        "bulk_turnaround": {"count": 3, "mean_min": 48.5, "target_min": 60.0, "met": True},
        "return_rate": {"bags": 9000, "returned": 90, "value": 0.01, "target": 0.05, "met": True},
        "broken_rate": {"bags": 9000, "broken": 30, "value": 0.0033, "target": 0.03, "met": True},
        "packer_rate": {
            "tonnes": 450.0,
            "running_h": 4.0,
            "t_per_h": 112.5,
            "target": 100.0,
            "met": True,
        },
        "daily_completion": {"planned_t": 600.0, "completed_t": 450.0, "value": 0.75, "met": False},
        "flags": {"tare_fluctuation": 1, "underloaded": 0, "bagged_overweight": 0},
        "window_wait": {
            "plan_order": {
                "count": 4,
                "within_target": 3,
                "share": 0.75,
                "max_min": 7.5,
                "target_min": 5.0,
            },
            "payment": {
                "count": 0,
                "within_target": 0,
                "share": None,
                "max_min": None,
                "target_min": 5.0,
            },
        },
    },
    "checks": {
        "due": [
            {
                "packer": "line1",
                "check": "bag_weight",
                "reason": "after_start",
                "due_at": "2026-11-29T02:00:00+00:00",
                "overdue": True,
            },
            {
                "packer": "line2",
                "check": "print_code",
                "reason": "interval",
                "due_at": "2026-11-29T02:25:00+00:00",
                "overdue": False,
            },
        ],
        "collecting": {
            "line1": {
                "samples": 3,
                "needed": 10,
                "scale": "bags1",
                "samples_kg": [50.12, 49.94, 50.31],
            },
            "line2": {"samples": 0, "needed": 10, "scale": "bags2", "samples_kg": []},
        },
    },
    "windows": {
        "open": [
            {
                "ticket": "sales-0007",
                "window": "sales",
                "service": "payment",
                "arrived_at": "2026-11-29T02:27:00.000Z",
            }
        ]
    },
    "alerts": {
        "active": [
            {
                "alert": "queue_long",
                "detail": "11 vehicles at the gate",
                "since": "2026-11-29T02:20:00.000Z",
            }
        ]
    },
    "devices": {
        "scale1": {
            "online": True,
            "reason": "",
            "since": "2026-11-29T00:00:05.000Z",
            "kind": "scale",
        },
        "line2": {
            "online": False,
            "reason": "connection refused",
            "since": "2026-11-29T02:05:00.000Z",
            "kind": "packer",
        },
    },
    "sync": {
        "enabled": True,
        "backlog": 14,
        "oldest_unsent_s": 3.2,
        "acked_through": 2210,
        "last_ack_at": "2026-11-29T02:29:58.000Z",
        "last_error": None,
        "dead_letters": 0,
        "state": "sending",
    },
    "health": {
        "version": "0.1.0",
        "uptime_s": 9000,
        "last_seq": 2224,
        "disk_free_mb": 51234,
        "disk_full": False,
        "clock_offset_ms": 12,
        "last_weighing_at": "2026-11-29T02:29:40.000Z",
    },
}
