"""`tally kpi --events`: JSON lines from several terminals in, the report or a table out."""

from __future__ import annotations

import json
from pathlib import Path

from agent.config import KpiConfig
from agent.domain.kpis import compute
from tests.agent.test_kpis import DAY, TZ, bagged_day, bulk_events, tallies
from tests.agent.timeline import Timeline
from tests.daemon import tally


def write_events(path: Path) -> list[str]:
    wb, pk = Timeline(terminal="wb1"), Timeline(terminal="pk1", epoch="e2", boot="b9")
    events = bagged_day(wb) + bulk_events(wb) + tallies(pk)
    lines = [ev.to_json() for ev in reversed(events)]  # any order
    path.write_text("\n".join(lines) + "\n\n", encoding="utf-8")
    return lines


def test_json_report(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    write_events(path)
    r = tally("kpi", "--events", str(path), "--day", "2026-11-29", "--json")
    assert (r.returncode, r.stderr) == (0, "")
    from agent.domain.events import Event

    events = [Event.from_dict(json.loads(line)) for line in path.read_text().split("\n") if line]
    assert json.loads(r.stdout) == compute(events, DAY, TZ, KpiConfig())


def test_table(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    write_events(path)
    r = tally("kpi", "--events", str(path), "--day", "2026-11-29")
    assert (r.returncode, r.stderr) == (0, "")
    rows = [
        ("KPI", "MEASURED", "STATUS", "TARGET"),
        (
            "Weighbridge wait",
            "2 of 3 in time (66.7 %), longest 12.0 min",
            "NOT MET",
            "each ≤ 10 min",
        ),
        ("Bagged loading wait", "1 of 2 in time (50.0 %)", "NOT MET", "≥ 90 % within 120 min"),
        ("Bulk turnaround", "mean 64.0 min over 2 trucks", "NOT MET", "mean ≤ 60 min"),
        ("Bulk seal lag", "1 of 2 in time (50.0 %), longest 12.0 min", "NOT MET", "each ≤ 10 min"),
        ("Returned bags", "150 of 3000 bags (5.00 %)", "met", "≤ 5.00 %"),
        ("Broken bags", "9 of 3000 bags (0.30 %)", "met", "≤ 0.30 %"),
        ("Packer rate", "150.0 t in 1.00 h = 150.0 t/h", "met", "≥ 100 t/h"),
        ("Daily completion", "50.0 of 50.0 t planned (100.0 %)", "met", "the whole plan"),
    ]
    table = [f"{a:<19}  {b:<41}  {c:<7}  {d}" for a, b, c, d in rows]
    assert r.stdout.split("\n") == [
        "Service standard for 2026-11-29 (Asia/Shanghai)",
        "",
        *table,
        "",
        "Weighing exceptions: tare_fluctuation 0, underloaded 0, bagged_overweight 0",
        "",
    ]


def test_month_over_a_generated_month_is_the_sum_of_its_days(tmp_path: Path) -> None:
    from tests.agent.test_kpis_standard import generated_month

    path = tmp_path / "month.jsonl"
    path.write_text("\n".join(ev.to_json() for ev in generated_month()) + "\n", encoding="utf-8")
    r = tally("kpi", "--events", str(path), "--month", "2026-11", "--json")
    assert (r.returncode, r.stderr) == (0, "")
    m = json.loads(r.stdout)
    assert len(m["days"]) == 30
    for section, key in [
        ("weigh_wait", "count"),
        ("weigh_wait", "within_target"),
        ("bag_load_wait", "count"),
        ("bag_load_wait", "within_target"),
        ("return_rate", "returned"),
        ("broken_rate", "broken"),
        ("packer_rate", "running_ms"),
    ]:
        assert m["totals"][section][key] == sum(d[section][key] for d in m["days"]), key
    for key in ("planned_t", "completed_t"):
        days = sum(d["daily_completion"][key] for d in m["days"])
        assert m["totals"]["daily_completion"][key] == round(days, 3)
    table = tally("kpi", "--events", str(path), "--month", "2026-11")
    assert table.returncode == 0
    first = [line for line in table.stdout.split("\n") if line.startswith("2026-11-01")]
    assert first == ["2026-11-01  " + ", ".join(m["missed"]["2026-11-01"])]
    bad = tally("kpi", "--events", str(path), "--month", "2026-13")
    assert (bad.returncode, bad.stderr.strip().splitlines()[-1]) == (
        2,
        "tally: --month '2026-13' is not a month like 2026-11",
    )


def test_bad_input(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    lines = write_events(path)
    broken = json.loads(lines[2])
    del broken["boot"]
    path.write_text("\n".join([lines[0], lines[1], json.dumps(broken), "{"]), encoding="utf-8")
    cases = [
        (
            ["--events", str(path), "--day", "2026-11-29"],
            f"tally: {path} line 3 is not an event envelope (event has no 'boot' field);"
            " fix or remove that line",
        ),
        (
            ["--events", str(tmp_path / "none.jsonl"), "--day", "2026-11-29"],
            f"tally: cannot read {tmp_path / 'none.jsonl'} (No such file or directory);"
            " check the path",
        ),
        (
            ["--events", str(path), "--day", "29/11/2026"],
            "tally: --day '29/11/2026' is not a date like 2026-11-29",
        ),
        (
            ["--events", str(path), "--day", "2026-11-29", "--timezone", "Mars/Base"],
            "tally: --timezone 'Mars/Base' is not a known IANA time zone (for example"
            " 'Asia/Shanghai')",
        ),
    ]
    for args, message in cases:
        r = tally("kpi", *args)
        assert (r.returncode, r.stdout, r.stderr.strip()) == (2, "", message)
    path.write_text(lines[0] + "\n[1]\n", encoding="utf-8")
    r = tally("kpi", "--events", str(path), "--day", "2026-11-29")
    assert (r.returncode, r.stderr.strip()) == (
        2,
        f"tally: {path} line 2 is not an event envelope (it is not a JSON object);"
        " fix or remove that line",
    )


def test_a_month_by_operator_from_a_terminal_store(tmp_path: Path) -> None:
    """`tally kpi --config --month --by operator` over a store the real Writer wrote: the sales
    window's events of tests/agent/test_by_operator.py; a day without any is said so."""
    from agent.daemon.store import Store, Writer
    from agent.domain import by_operator
    from agent.domain.events import Stamp
    from tests.agent.test_by_operator import scripted
    from tests.daemon import write_config

    config = write_config(tmp_path, terminal="w1")
    writer = Writer(str(tmp_path / "tally.db"), "w1")
    try:
        for ev in scripted():
            if ev.terminal == "w1":
                writer.append_sync(ev.kind, ev.data, stamp=Stamp(ev.when, ev.mono_ns))
    finally:
        writer.close()
    store = Store(str(tmp_path / "tally.db"))
    try:
        stored = list(store.iter_events())
    finally:
        store.close()
    args = ["kpi", "--config", str(config), "--month", "2026-11", "--by", "operator"]
    r = tally(*args, "--json")
    assert (r.returncode, r.stderr) == (0, "")
    expected = by_operator.month(stored, 2026, 11, TZ, KpiConfig())
    assert json.loads(r.stdout) == expected
    assert [(x["operator"], x["served"], x["served_in_time"]) for x in expected["rows"]] == [
        ("李娜", 2, 1)
    ]
    r = tally(*args)
    assert (r.returncode, r.stderr) == (0, "")
    assert r.stdout.split("\n") == [
        "Operators and posts for 2026-11 (Asia/Shanghai)",
        "",
        "OPERATOR  POST   SHIFTS  DAYS  VISIT STAGES  SERVED  IN TIME  CHECKS  REASONS"
        "  CORRECTIONS  NOTES  OTHER",
        "李娜      sales       2     2             0       2        1       0        0"
        "            0      0      0",
        "",
    ]
    r = tally("kpi", "--config", str(config), "--day", "2026-11-03", "--by", "operator")
    assert (r.returncode, r.stdout.split("\n")[2:]) == (0, ["nobody recorded anything", ""])
