"""The evaluation pages in a real browser (Debian's chromium driven by Playwright): sign in with a
user's password and with a token, read a day and a month of a generated month, compare the
figures, the exceptions and a downloaded ledger with the pure engine, see the charts drawn
without a console error, read the plant now, switch language. Screenshots are kept in the
test's folder (and copied to $TALLY_SCREENSHOTS when it is set)."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from agent.config import KpiConfig
from agent.domain import kpis, ledgers
from agent.domain.events import Event
from sync.receiver import plant_view, reports
from tests.agent.timeline import Timeline
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


PASSWORD = "睡莲-pass-2026"  # a Chinese passphrase: scrypt takes any length


def add_user(users: Path, name: str, *flags: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "agent.cli", "serve", "user", "add", name, "--users", str(users),
         *flags],
        input=PASSWORD + "\n", text=True, check=True, capture_output=True,
    )  # fmt: skip


def now_events(terminal: str, seq: int) -> list[Event]:
    """What is happening now at pk1: a truck inside being loaded, a packer stopped for repair,
    an alert raised."""
    t = Timeline(
        terminal=terminal, epoch="e1", boot="b9", start=datetime.now(UTC) - timedelta(minutes=10)
    )
    t.seq = seq
    return [
        t.event("visit.arrived", visit="now-1", plate="苏B00001", order="SO-now", product="P.O 42.5",
                load="bagged", planned_kg=30000),
        t.advance(1).event("visit.gate_in", visit="now-1"),
        t.advance(1).event("visit.loading_started", visit="now-1", point="line1"),
        t.advance(1).event("packer.stopped", packer="line1", reason="belt", expected_repair_min=25),
        t.advance(0.1).event("alert.raised", alert="queue_long", detail="12 trucks queue"),
    ]  # fmt: skip


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Receiver, dict[str, Any]]]:
    streams = month_events(FIRST, DAYS)
    folder = tmp_path_factory.mktemp("web")
    users = folder / "users"
    add_user(users, "kaoping", "--role", "reader")
    add_user(users, "li", "--role", "reader", "--plant", "north")
    add_user(users, "wang", "--role", "admin")
    with Receiver(
        folder, tokens_file(), extra=("--timezone", "Asia/Shanghai", "--users", str(users))
    ) as r:
        streams["pk1"] += now_events("pk1", len(streams["pk1"]))
        post_all(r.url, streams)
        yield r, streams


def shot(page: Page, folder: Path, name: str) -> None:
    page.screenshot(path=str(folder / name), full_page=True)
    keep = os.environ.get("TALLY_SCREENSHOTS")
    if keep:
        shutil.copy(folder / name, Path(keep) / f"server-{name}")


def sign_in_user(page: Page, url: str, name: str) -> None:
    page.goto(f"{url}/login")
    page.fill("#user", name)
    page.fill("#password", PASSWORD)
    page.click("#sign-in")


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
    context = browser.new_context(
        locale="zh-CN", viewport={"width": 1366, "height": 768}, accept_downloads=True
    )
    page = context.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    try:
        page.goto(f"{r.url}/login")
        page.fill("#token", "not-a-token-at-all")
        page.click("#sign-in")
        assert page.text_content("#error") == "令牌无效，请核对后重试。"
        page.fill("#user", "kaoping")
        page.fill("#password", "wrong-password")
        page.click("#sign-in")
        assert page.text_content("#error") == "用户名或密码不对，请核对后重试。"
        problems.clear()  # the two refusals above were answered 401, which the console logs
        sign_in_user(page, r.url, "kaoping")
        cookie = next(c for c in context.cookies() if c["name"] == "tally_session")
        assert (cookie["httpOnly"], cookie["sameSite"]) == (True, "Strict")
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
        page.wait_for_selector("body[data-charts-ready='1']")
        box = page.locator("#chart-waits svg").bounding_box()
        assert box is not None and box["height"] > 100 and box["width"] > 200
        assert "目标" in page.inner_text("#chart-waits")
        found = plant_view.exceptions(everything, day, TZ, cfg)
        cells = page.eval_on_selector_all(
            "table.exceptions tbody tr", "rows => rows.map(r => r.cells[2].textContent)"
        )
        assert cells == [x["visit"] for x in found] and found
        with page.expect_download() as download:
            page.click("a.ledger[data-ledger=gate][data-format=xlsx]")
        from openpyxl import load_workbook

        sheet = load_workbook(io.BytesIO(Path(download.value.path()).read_bytes())).active
        rows = ledgers.build("gate", everything, day, TZ)
        heads, body = ledgers.table("gate", rows, "zh")
        assert [c.value for c in sheet[1]] == heads
        assert sheet.max_row == len(body) + 1 and body
        shot(page, tmp_path, "day-zh.png")

        page.click("#lang")
        assert page.text_content("#heading") == f"Day {day.isoformat()}"
        assert "missed" in page.inner_text("table.plants")
        assert figures(page, "plants") == want
        shot(page, tmp_path, "day-en.png")

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
        page.wait_for_selector(f"body[data-charts-ready='{len(reports.HEADLINE)}']")
        for k, _, _ in reports.HEADLINE:
            box = page.locator(f"#chart-{k} svg").bounding_box()
            assert box is not None and box["height"] > 100, k
        shot(page, tmp_path, "month-en.png")

        page.click("text=Sign out")
        page.goto(f"{r.url}/month")
        assert page.url.endswith("/login")

        # A token still signs in; the plant now shows pk1's truck, stopped packer and alert.
        sign_in(page, r.url, READER_TOKEN)
        page.goto(f"{r.url}/now?scope=plant:north")
        assert page.text_content("#inside-count") == "1"
        assert "苏B00001" in page.inner_text("table.inside")
        packers = page.inner_text("table.packers")
        assert "stopped" in packers and "belt" in packers and "25" in packers
        assert "queue_long" in page.inner_text("table.alerts")
        shot(page, tmp_path, "now-en.png")
        page.click("text=Sign out")

        # A user of one plant reads that plant alone.
        sign_in_user(page, r.url, "li")
        page.goto(f"{r.url}/month?month={FIRST.strftime('%Y-%m')}&scope=*")
        assert page.text_content("#heading") == f"Month {month} · north"
        assert page.eval_on_selector_all("select[name=scope] option", "os => os.length") == 1
        assert page.locator("#admin").count() == 0  # no admin link for a reader
        page.click("text=Sign out")

        # An admin's page: the users and each token's status, never a token.
        sign_in_user(page, r.url, "wang")
        page.click("#admin")
        page.goto(f"{r.url}/admin?lang=zh")
        assert page.text_content("#heading") == "管理"
        users = page.eval_on_selector_all("table.users tr[data-user]", "rs => rs.length")
        assert users == 3
        posted = page.locator("table.tokens tr[data-holder=wb1] td").all_inner_texts()
        assert posted[5:7] == ["e1", str(len(streams["wb1"]))]
        assert "tok-" not in page.content() and READER_TOKEN not in page.content()
        shot(page, tmp_path, "admin-zh.png")
        assert problems == []
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
