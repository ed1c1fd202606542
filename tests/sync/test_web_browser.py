"""The evaluation pages in a real browser (Debian's chromium driven by Playwright): sign in,
read a day and a month of a generated month, compare the figures with the pure KPI engine,
switch language. Screenshots are kept in the test's folder."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from agent.config import KpiConfig
from agent.domain import kpis
from sync.receiver import reports
from tests.sync.helpers import Receiver
from tests.sync.month import FIRST, PLANTS, READER_TOKEN, month_events, tokens_file
from tests.sync.test_server import post_all

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
TZ = ZoneInfo("Asia/Shanghai")
DAYS = 4


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        raise RuntimeError(
            "chromium is not installed; run `apt-get install chromium` (.ci/run does)"
        )
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Receiver, dict[str, Any]]]:
    streams = month_events(FIRST, DAYS)
    with Receiver(
        tmp_path_factory.mktemp("web"), tokens_file(), extra=("--timezone", "Asia/Shanghai")
    ) as r:
        post_all(r.url, streams)
        yield r, streams


def sign_in(page: Page, url: str, token: str) -> None:
    page.goto(f"{url}/day")
    assert page.url.endswith("/login")
    page.fill("#token", token)
    page.click("#sign-in")


def figures(page: Page, table: str) -> dict[tuple[str, str], tuple[str, str]]:
    """(kpi, scope) → (data-value, data-met) of every KPI cell of a table."""
    cells = page.eval_on_selector_all(
        f"table.{table} td[data-kpi][data-value]",
        "els => els.map(e => [e.dataset.kpi, e.dataset.scope, e.dataset.value, e.dataset.met])",
    )
    return {(k, s): (v, m) for k, s, v, m in cells}


def expected(report: dict[str, Any], scope: str) -> dict[tuple[str, str], tuple[str, str]]:
    out = {}
    for k, _, _ in reports.HEADLINE:
        v = reports.value(report, k)
        ok = reports.met(report, k)
        out[(k, scope)] = (
            "" if v is None else json.dumps(v),
            "" if ok is None else str(ok).lower(),
        )
    return out


def test_sign_in_day_month_and_language(
    browser: Browser, server: tuple[Receiver, dict[str, Any]], tmp_path: Path
) -> None:
    r, streams = server
    everything = [e for es in streams.values() for e in es]
    cfg = KpiConfig()
    context = browser.new_context(locale="zh-CN", viewport={"width": 1366, "height": 768})
    page = context.new_page()
    try:
        page.goto(f"{r.url}/login")
        page.fill("#token", "not-a-token-at-all")
        page.click("#sign-in")
        assert page.text_content("#error") == "令牌无效，请核对后重试。"
        sign_in(page, r.url, READER_TOKEN)
        day = FIRST.date() + timedelta(days=1)
        page.goto(f"{r.url}/day?day={day.isoformat()}")
        assert page.text_content("#heading") == f"日报 {day.isoformat()}"
        want = expected(kpis.compute(everything, day, TZ, cfg), "*")
        for plant, terminals in PLANTS.items():
            mine = [e for e in everything if e.terminal in terminals]
            want |= expected(kpis.compute(mine, day, TZ, cfg), f"plant:{plant}")
        assert figures(page, "plants") == want
        assert page.locator("table.plants td.missed").count() > 0
        assert "未达标" in page.inner_text("table.plants")
        page.screenshot(path=str(tmp_path / "day-zh.png"), full_page=True)

        page.click("#lang")
        assert page.text_content("#heading") == f"Day {day.isoformat()}"
        assert "missed" in page.inner_text("table.plants")
        assert figures(page, "plants") == want
        page.screenshot(path=str(tmp_path / "day-en.png"), full_page=True)

        month = FIRST.strftime("%Y-%m")
        page.goto(f"{r.url}/month?month={month}&scope=plant:north")
        assert page.text_content("#heading") == f"Month {month} · north"  # the language stays
        north = [e for e in everything if e.terminal in PLANTS["north"]]
        days = [kpis.compute(north, FIRST.date().replace(day=n), TZ, cfg) for n in range(1, 32)]
        got = figures(page, "month")
        for d in days:
            assert {k: v for k, v in got.items() if k[1] == d["day"]} == expected(d, d["day"])
        total = reports.month_total(days, cfg)
        assert {k: v for k, v in got.items() if k[1] == "total"} == expected(total, "total")
        page.screenshot(path=str(tmp_path / "month-en.png"), full_page=True)

        page.click("text=Sign out")
        page.goto(f"{r.url}/month")
        assert page.url.endswith("/login")
    finally:
        context.close()


def test_pages_without_a_session_go_to_sign_in(
    browser: Browser, server: tuple[Receiver, Any]
) -> None:
    r, _ = server
    page = browser.new_page()
    try:
        for path in ("/", "/day", "/month?month=2026-10"):
            page.goto(f"{r.url}{path}")
            assert page.url.endswith("/login"), path
        assert page.locator("link[rel=stylesheet]").get_attribute("href") == "/static/tally.css"
        css = page.request.get(f"{r.url}/static/tally.css")
        assert css.ok and "table" in css.text()
    finally:
        page.close()
