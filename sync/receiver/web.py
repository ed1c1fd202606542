"""The evaluation group's pages: a day's and a month's KPIs per plant and for the group.

Server-rendered HTML (Chinese by default, English with ?lang=en), one local stylesheet, no
script. Readers sign in with a token of the tokens file (`@reader:token`, or a terminal's); the
session is a signed cookie whose key derives from the tokens, so every receiver process on the
same tokens file accepts it and changing a token signs everyone out.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import json
import time as clock
from datetime import date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode
from zoneinfo import ZoneInfo

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from agent.config import KpiConfig
from agent.domain import text_rules
from sync.receiver import reports
from sync.receiver.engine import ReceiverDb
from sync.tokens import TokenTable

COOKIE = "tally_session"
LANG_COOKIE = "tally_lang"
SESSION_S = 12 * 3600
REPORT_PATH = "/api/v1/report"
STATIC = Path(__file__).with_name("static")

TEXT: dict[str, dict[str, str]] = {
    "zh": {
        "title": "考评看板",
        "day": "日报",
        "month": "月报",
        "group": "集团",
        "unplaced": "未分配",
        "kpi": "指标",
        "target": "目标",
        "met": "达标",
        "missed": "未达标",
        "none": "无数据",
        "show": "查看",
        "plants": "各厂及集团",
        "terminals": "各终端",
        "total": "月合计",
        "date": "日期",
        "scope": "范围",
        "login": "登录",
        "logout": "退出",
        "token": "访问令牌",
        "bad_token": "令牌无效，请核对后重试。",
        "bad_day": "日期格式应为 YYYY-MM-DD。",
        "bad_month": "月份格式应为 YYYY-MM。",
        "flags": "异常标记",
        "weigh_wait": "过磅等候（≤{t} 分钟）",
        "bag_load_wait": "袋装 2 小时内装车率（≥{s}）",
        "bulk_turnaround": "散装厂内周转（≤{t} 分钟）",
        "seal_lag": "散装封签时差（≤{t} 分钟）",
        "return_rate": "返包率（≤{r}）",
        "broken_rate": "破包率（≤{r}）",
        "packer_rate": "包装机台时产量（≥{p} t/h）",
        "daily_completion": "日计划完成率（≥{c}）",
    },
    "en": {
        "title": "Evaluation board",
        "day": "Day",
        "month": "Month",
        "group": "Group",
        "unplaced": "Unassigned",
        "kpi": "KPI",
        "target": "Target",
        "met": "met",
        "missed": "missed",
        "none": "no data",
        "show": "Show",
        "plants": "Plants and group",
        "terminals": "Terminals",
        "total": "Month total",
        "date": "Date",
        "scope": "Scope",
        "login": "Sign in",
        "logout": "Sign out",
        "token": "Access token",
        "bad_token": "The token is not valid; check it and try again.",
        "bad_day": "The day must be YYYY-MM-DD.",
        "bad_month": "The month must be YYYY-MM.",
        "flags": "Flags",
        "weigh_wait": "Scale wait (≤{t} min)",
        "bag_load_wait": "Bagged trucks loaded within 2 h (≥{s})",
        "bulk_turnaround": "Bulk turnaround (≤{t} min)",
        "seal_lag": "Bulk seal lag (≤{t} min)",
        "return_rate": "Return rate (≤{r})",
        "broken_rate": "Broken rate (≤{r})",
        "packer_rate": "Packer output (≥{p} t/h)",
        "daily_completion": "Daily plan completion (≥{c})",
    },
}


def _pct(x: float) -> str:
    return f"{x * 100:.1f}%"


def kpi_label(kpi: str, lang: str, cfg: KpiConfig) -> str:
    """A KPI's name with its target, in the page's language."""
    targets = {
        "weigh_wait": {"t": f"{cfg.weigh_wait_min:g}"},
        "bag_load_wait": {"s": _pct(cfg.bag_load_share)},
        "bulk_turnaround": {"t": f"{cfg.bulk_turnaround_min:g}"},
        "seal_lag": {"t": f"{cfg.seal_lag_min:g}"},
        "return_rate": {"r": _pct(cfg.return_rate_max)},
        "broken_rate": {"r": _pct(cfg.broken_rate_max)},
        "packer_rate": {"p": f"{cfg.packer_rate_tph:g}"},
        "daily_completion": {"c": _pct(cfg.daily_completion)},
    }
    return TEXT[lang][kpi].format(**targets[kpi])


def shown(v: float | None, unit: str) -> str:
    """A KPI value as the page shows it."""
    if v is None:
        return "—"
    if unit in ("share", "ratio"):
        return _pct(v)
    if unit == "min":
        return f"{v:.2f}"
    return f"{v:.2f}"


def _sign(key: bytes, name: str, until: int) -> str:
    body = base64.urlsafe_b64encode(f"{name}\n{until}".encode()).decode()
    mac = hmac.new(key, body.encode(), hashlib.sha256).hexdigest()
    return f"{body}.{mac}"


def _check(key: bytes, cookie: str) -> str | None:
    body, _, mac = cookie.partition(".")
    good = hmac.new(key, body.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(good, mac):
        return None
    try:
        name, _, until = base64.urlsafe_b64decode(body.encode()).decode().partition("\n")
        return name if int(until) > clock.time() else None
    except (ValueError, UnicodeDecodeError):
        return None


def mount(
    app: Starlette, db: ReceiverDb, tokens: TokenTable, *, timezone: str, kpi: KpiConfig
) -> None:
    """Add the pages, the report endpoint and the stylesheet to the receiver's app."""

    def who(request: Request) -> str | None:
        tokens.refresh()
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return tokens.reader_of(token.strip())
        cookie = request.cookies.get(COOKIE, "")
        name = _check(tokens.secret(), cookie) if cookie else None
        return name

    def lang_of(request: Request) -> str:
        lang = request.query_params.get("lang") or request.cookies.get(LANG_COOKIE, "zh")
        return lang if lang in TEXT else "zh"

    def page(request: Request, lang: str, title: str, body: str, *, nav: bool = True) -> Response:
        t = TEXT[lang]
        other = "en" if lang == "zh" else "zh"
        query = dict(request.query_params) | {"lang": other}
        switch = f'<a id="lang" href="?{html.escape(urlencode(query))}">' + (
            "English</a>" if lang == "zh" else "中文</a>"
        )
        links = ""
        if nav:
            links = (
                f'<a href="/day">{t["day"]}</a><a href="/month">{t["month"]}</a>'
                f'<form method="post" action="/logout"><button>{t["logout"]}</button></form>'
            )
        doc = (
            f'<!doctype html><html lang="{"zh-CN" if lang == "zh" else "en"}"><head>'
            '<meta charset="utf-8"><meta name="viewport" content="width=device-width,'
            ' initial-scale=1"><link rel="stylesheet" href="/static/tally.css">'
            f"<title>{html.escape(title)} · {t['title']}</title></head><body>"
            f"<header><h1>{t['title']}</h1>{links}{switch}</header>"
            f"<main>{body}</main></body></html>"
        )
        response = HTMLResponse(doc)
        response.set_cookie(LANG_COOKIE, lang, max_age=365 * 86400, samesite="strict")
        return response

    def scopes() -> list[tuple[str, tuple[str, ...] | None]]:
        plants = tokens.plants()
        out: list[tuple[str, tuple[str, ...] | None]] = [(reports.GROUP, None)]
        out += [(f"plant:{p}", ts) for p, ts in plants.items()]
        return out

    def scope_name(scope: str, lang: str) -> str:
        if scope == reports.GROUP:
            return TEXT[lang]["group"]
        name = scope.partition(":")[2]
        return name or TEXT[lang]["unplaced"]

    def cell(report: dict[str, Any], k: str, unit: str, scope: str, lang: str) -> str:
        v = reports.value(report, k)
        ok = reports.met(report, k)
        cls, badge = (
            ("none", TEXT[lang]["none"])
            if ok is None
            else ("met", TEXT[lang]["met"])
            if ok
            else ("missed", TEXT[lang]["missed"])
        )
        raw = "" if v is None else json.dumps(v)
        met_attr = "" if ok is None else str(ok).lower()
        return (
            f'<td class="{cls}" data-kpi="{k}" data-scope="{html.escape(scope)}"'
            f' data-value="{raw}" data-met="{met_attr}">{shown(v, unit)}'
            f'<span class="badge">{badge}</span></td>'
        )

    def day_table(columns: list[tuple[str, str, dict[str, Any]]], lang: str, cls: str) -> str:
        t = TEXT[lang]
        head = "".join(f"<th>{html.escape(label)}</th>" for _, label, _ in columns)
        rows = []
        for k, _, unit in reports.HEADLINE:
            cells = "".join(cell(r, k, unit, s, lang) for s, _, r in columns)
            rows.append(
                f'<tr><td class="kpi">{html.escape(kpi_label(k, lang, kpi))}</td>{cells}</tr>'
            )
        flags = "".join(
            f'<td data-kpi="flags" data-scope="{html.escape(s)}">'
            f"{sum(int(n) for n in r['flags'].values())}</td>"
            for s, _, r in columns
        )
        rows.append(f'<tr><td class="kpi">{t["flags"]}</td>{flags}</tr>')
        return (
            f'<table class="{cls}"><thead><tr><th class="kpi">{t["kpi"]}</th>{head}</tr></thead>'
            f"<tbody>{''.join(rows)}</tbody></table>"
        )

    def today(zone: str) -> date:
        return datetime.now(ZoneInfo(zone)).date()

    async def login_form(request: Request) -> Response:
        lang = lang_of(request)
        return _login_page(request, lang, "")

    def _login_page(request: Request, lang: str, error: str) -> Response:
        t = TEXT[lang]
        err = f'<p class="error" id="error">{error}</p>' if error else ""
        body = (
            f'<form class="login" method="post" action="/login"><h2>{t["login"]}</h2>{err}'
            f'<label for="token">{t["token"]}</label>'
            '<input id="token" name="token" type="password" autocomplete="current-password">'
            f'<button id="sign-in" type="submit">{t["login"]}</button></form>'
        )
        response = page(request, lang, t["login"], body, nav=False)
        if error:
            response.status_code = 401
        return response

    async def login(request: Request) -> Response:
        lang = lang_of(request)
        raw = await request.body()
        if len(raw) > 4096:
            return _login_page(request, lang, TEXT[lang]["bad_token"])
        token = parse_qs(raw.decode("utf-8", "replace")).get("token", [""])[0].strip()
        tokens.refresh()
        name = tokens.reader_of(token) if token else None
        if name is None:
            return _login_page(request, lang, TEXT[lang]["bad_token"])
        response = RedirectResponse("/day", status_code=303)
        response.set_cookie(
            COOKIE,
            _sign(tokens.secret(), name, int(clock.time()) + SESSION_S),
            max_age=SESSION_S,
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )
        return response

    async def logout(request: Request) -> Response:
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(COOKIE)
        return response

    async def home(request: Request) -> Response:
        return RedirectResponse("/day", status_code=303)

    async def day_page(request: Request) -> Response:
        if who(request) is None:
            return RedirectResponse("/login", status_code=303)
        lang = lang_of(request)
        t = TEXT[lang]
        text = request.query_params.get("day") or today(timezone).isoformat()
        try:
            day = date.fromisoformat(text)
            if not text_rules.FIRST_YEAR <= day.year <= text_rules.LAST_YEAR:
                raise ValueError(text)
        except ValueError:
            return page(request, lang, t["day"], f'<p class="error">{t["bad_day"]}</p>')

        def compute() -> tuple[list[Any], list[Any]]:
            plants = [
                (s, scope_name(s, lang), reports.day_report(db, day, timezone, kpi, s, ts))
                for s, ts in scopes()
            ]
            terms = [
                (
                    f"terminal:{term}",
                    term,
                    reports.day_report(db, day, timezone, kpi, f"terminal:{term}", (term,)),
                )
                for ts in tokens.plants().values()
                for term in ts
            ]
            return plants, terms

        plants, terms = await run_in_threadpool(compute)
        body = (
            f'<form class="pick" method="get" action="/day"><label>{t["date"]}'
            f' <input type="date" name="day" value="{day.isoformat()}"></label>'
            f"<button>{t['show']}</button></form>"
            f'<h2 id="heading">{t["day"]} {day.isoformat()}</h2>'
            f"<h3>{t['plants']}</h3>{day_table(plants, lang, 'plants')}"
            f"<h3>{t['terminals']}</h3>{day_table(terms, lang, 'terminals')}"
        )
        return page(request, lang, f"{t['day']} {day.isoformat()}", body)

    async def month_page(request: Request) -> Response:
        if who(request) is None:
            return RedirectResponse("/login", status_code=303)
        lang = lang_of(request)
        t = TEXT[lang]
        month = request.query_params.get("month") or today(timezone).strftime("%Y-%m")
        scope = request.query_params.get("scope", reports.GROUP)
        known = dict(scopes())
        try:
            reports.month_days(month)
        except ValueError:
            return page(request, lang, t["month"], f'<p class="error">{t["bad_month"]}</p>')
        if scope not in known:
            scope = reports.GROUP
        result = await run_in_threadpool(
            reports.month_report,
            db,
            month,
            timezone,
            kpi,
            scope,
            known[scope],
            today(timezone),
        )
        options = "".join(
            f'<option value="{html.escape(s)}"{" selected" if s == scope else ""}>'
            f"{html.escape(scope_name(s, lang))}</option>"
            for s in known
        )
        head = "".join(
            f"<th>{html.escape(kpi_label(k, lang, kpi))}</th>" for k, _, _ in reports.HEADLINE
        )
        rows = []
        for r in result["days"]:
            cells = "".join(cell(r, k, u, r["day"], lang) for k, _, u in reports.HEADLINE)
            rows.append(
                f'<tr><td class="kpi"><a href="/day?day={r["day"]}">{r["day"]}</a></td>{cells}</tr>'
            )
        if result["total"]:
            cells = "".join(
                cell(result["total"], k, u, "total", lang) for k, _, u in reports.HEADLINE
            )
            rows.append(f'<tr class="total"><th class="kpi">{t["total"]}</th>{cells}</tr>')
        body = (
            f'<form class="pick" method="get" action="/month"><label>{t["month"]}'
            f' <input type="month" name="month" value="{month}"></label>'
            f'<label>{t["scope"]} <select name="scope">{options}</select></label>'
            f"<button>{t['show']}</button></form>"
            f'<h2 id="heading">{t["month"]} {month} · {html.escape(scope_name(scope, lang))}</h2>'
            f'<table class="month"><thead><tr><th class="kpi">{t["date"]}</th>{head}</tr>'
            f"</thead><tbody>{''.join(rows)}</tbody></table>"
        )
        return page(request, lang, f"{t['month']} {month}", body)

    async def report_json(request: Request) -> Response:
        if who(request) is None:
            return JSONResponse(
                {"error": "send a reader's or terminal's token as `Authorization: Bearer TOKEN`"},
                status_code=401,
                headers={"WWW-Authenticate": 'Bearer realm="tally"'},
            )
        known = dict(scopes())
        plant = request.query_params.get("plant")
        scope = reports.GROUP if plant is None else f"plant:{plant}"
        if scope not in known:
            names = ", ".join(repr(s.partition(":")[2]) for s in known if s != reports.GROUP)
            return JSONResponse(
                {"error": f"plant {plant!r} is not in the tokens file; known: {names}"},
                status_code=400,
            )
        zone = timezone
        if "month" in request.query_params:
            month = request.query_params["month"]
            try:
                reports.month_days(month)
            except ValueError:
                return JSONResponse({"error": "pass the month as ?month=YYYY-MM"}, status_code=400)
            result = await run_in_threadpool(
                reports.month_report, db, month, zone, kpi, scope, known[scope]
            )
            return JSONResponse(result)
        try:
            day = date.fromisoformat(request.query_params.get("day", ""))
        except ValueError:
            return JSONResponse(
                {"error": "pass ?day=YYYY-MM-DD or ?month=YYYY-MM"}, status_code=400
            )
        if not text_rules.FIRST_YEAR <= day.year <= text_rules.LAST_YEAR:
            return JSONResponse(
                {
                    "error": f"day must be between the years {text_rules.FIRST_YEAR} and"
                    f" {text_rules.LAST_YEAR}"
                },
                status_code=400,
            )
        result = await run_in_threadpool(
            reports.day_report, db, day, zone, kpi, scope, known[scope]
        )
        return JSONResponse(result)

    app.router.routes.extend(
        [
            Route("/", home, methods=["GET"]),
            Route("/login", login_form, methods=["GET"]),
            Route("/login", login, methods=["POST"]),
            Route("/logout", logout, methods=["POST"]),
            Route("/day", day_page, methods=["GET"]),
            Route("/month", month_page, methods=["GET"]),
            Route(REPORT_PATH, report_json, methods=["GET"]),
            Mount("/static", StaticFiles(directory=STATIC), name="static"),
        ]
    )
