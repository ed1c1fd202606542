"""The evaluation pages' chart data, pure: a day's waits against their targets and a month's
KPIs per day against theirs, as the JSON that `static/charts.js` hands to ECharts."""

from __future__ import annotations

import json
from typing import Any

from agent.config import KpiConfig
from sync.receiver import reports
from sync.receiver.plant_view import wait_target_min

# The waits of a day's chart: (KPI, the field holding its minutes); bulk turnaround is a mean.
WAITS: tuple[tuple[str, str], ...] = (
    ("weigh_wait", "max_min"),
    ("bag_load_wait", "max_min"),
    ("seal_lag", "max_min"),
    ("bulk_turnaround", "mean_min"),
)


def headline_target(kpi: str, cfg: KpiConfig) -> float:
    """A headline KPI's target in the unit the month chart draws (percent or the KPI's unit).

    The shares of samples within a time target (scale wait, seal lag) are met at 100 %.
    """
    return {
        "weigh_wait": 100.0,
        "bag_load_wait": cfg.bag_load_share * 100,
        "bulk_turnaround": cfg.bulk_turnaround_min,
        "seal_lag": 100.0,
        "return_rate": cfg.return_rate_max * 100,
        "broken_rate": cfg.broken_rate_max * 100,
        "packer_rate": cfg.packer_rate_tph,
        "daily_completion": cfg.daily_completion * 100,
    }[kpi]


def _drawn(v: float | None, unit: str) -> float | None:
    if v is None:
        return None
    return round(v * 100, 2) if unit in ("share", "ratio") else round(v, 2)


def day_chart(
    columns: list[tuple[str, dict[str, Any]]], labels: dict[str, str], cfg: KpiConfig
) -> dict[str, Any]:
    """One chart: per wait KPI the longest wait (bulk turnaround: the mean) of each scope in
    minutes, and the target. `columns` is (scope's name, its day report); `labels` names the
    KPIs and the word for the target."""
    return {
        "id": "chart-waits",
        "wide": True,
        "title": labels["waits_title"],
        "unit": "min",
        "x": [labels[k] for k, _ in WAITS],
        "series": [
            {
                "name": name,
                "type": "bar",
                "data": [_drawn(report.get(k, {}).get(f), "min") for k, f in WAITS],
            }
            for name, report in columns
        ]
        + [
            {
                "name": labels["target"],
                "type": "scatter",
                "target": True,
                "data": [wait_target_min(k, cfg) for k, _ in WAITS],
            }
        ],
    }


def month_charts(
    days: list[dict[str, Any]], labels: dict[str, str], cfg: KpiConfig
) -> list[dict[str, Any]]:
    """One chart per headline KPI: its value on each day of the month and the target."""
    x = [str(d["day"])[8:] for d in days]
    out = []
    for k, _, unit in reports.HEADLINE:
        drawn = "%" if unit in ("share", "ratio") else unit
        target = headline_target(k, cfg)
        out.append(
            {
                "id": f"chart-{k}",
                "title": labels[k],
                "unit": drawn,
                "x": x,
                "series": [
                    {
                        "name": labels[k],
                        "type": "line",
                        "data": [_drawn(reports.value(d, k), unit) for d in days],
                    },
                    {
                        "name": labels["target"],
                        "type": "line",
                        "target": True,
                        "data": [target] * len(days),
                    },
                ],
            }
        )
    return out


def embed(lang: str, charts: list[dict[str, Any]]) -> str:
    """The chart containers, the JSON block and the scripts for a page (no inline code)."""
    data = json.dumps({"lang": lang, "charts": charts}, ensure_ascii=False)
    # In a <script> block only `</` could end it early; escape every `<`, `>` and `&`.
    data = data.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    boxes = "".join(
        f'<div class="chart{" wide" if c.get("wide") else ""}" id="{c["id"]}"></div>'
        for c in charts
    )
    return (
        f'<div class="charts">{boxes}</div>'
        f'<script type="application/json" id="chart-data">{data}</script>'
        '<script src="/static/echarts.min.js"></script>'
        '<script src="/static/charts.js"></script>'
    )
