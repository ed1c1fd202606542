"""The evaluation group's pages: a day's and a month's KPIs per plant and for the group, their
charts, the plant now, the day's exceptions and its ledgers to download.

Server-rendered HTML (Chinese by default, English with ?lang=en), one local stylesheet and the
charts' two local scripts (no inline code). Readers sign in with a user's name and password
(`tally serve user add`) or a token of the tokens file (`@reader:token`, or a terminal's); the
session is a signed cookie whose key derives from the tokens, so every receiver process on the
same tokens file accepts it and changing a token signs everyone out.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import json
import logging
import time as clock
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
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
from agent.domain import ledgers, text_rules
from agent.domain.events import Event, format_at, parse_at
from sync.receiver import admin, charts, plant_view, reports
from sync.receiver.days import LOOKBACK
from sync.receiver.engine import ReceiverDb
from sync.receiver.users import User, UserTable
from sync.tokens import TokenTable

log = logging.getLogger("tally.receiver")

COOKIE = "tally_session"
LANG_COOKIE = "tally_lang"
SESSION_S = 12 * 3600
REPORT_PATH = "/api/v1/report"
STATIC = Path(__file__).with_name("static")
NOW_WINDOW = timedelta(hours=48)  # the "plant now" page folds the events of the last two days

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
        "now": "厂内实况",
        "user": "用户名",
        "password": "密码",
        "or_token": "或使用访问令牌",
        "bad_user": "用户名或密码不对，请核对后重试。",
        "forbidden": "您的账号无权查看该范围。",
        "waits_title": "等候时长与目标（分钟；散装为平均周转）",
        "target_word": "目标",
        "exceptions": "当日异常",
        "no_exceptions": "当日无异常。",
        "visit": "车次",
        "plate": "车牌",
        "order": "订单",
        "what": "类别",
        "check": "项目",
        "detail": "详情",
        "flag": "标记",
        "miss": "超时",
        "ledgers": "台账下载",
        "inside": "厂内车辆",
        "stage": "环节",
        "count": "数量",
        "queue": "门口排队",
        "scale_queue": "过磅排队",
        "packers": "包装机",
        "terminal": "终端",
        "state": "状态",
        "running": "运行",
        "stopped": "停机",
        "reason": "原因",
        "repair": "预计修复（分钟）",
        "since": "起始",
        "alerts": "报警",
        "offline": "离线设备",
        "nothing": "无",
        "window": "统计范围：最近 48 小时的事件。",
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
        "now": "Plant now",
        "user": "User name",
        "password": "Password",
        "or_token": "or an access token",
        "bad_user": "The user name or password is wrong; check them and try again.",
        "forbidden": "Your account may not read this scope.",
        "waits_title": "Waits against their targets (min; bulk: mean turnaround)",
        "target_word": "Target",
        "exceptions": "The day's exceptions",
        "no_exceptions": "No exceptions this day.",
        "visit": "Visit",
        "plate": "Plate",
        "order": "Order",
        "what": "Kind",
        "check": "Check",
        "detail": "Detail",
        "flag": "flag",
        "miss": "over target",
        "ledgers": "Ledgers",
        "inside": "Trucks inside",
        "stage": "Stage",
        "count": "Count",
        "queue": "Gate queue",
        "scale_queue": "Scale queue",
        "packers": "Packers",
        "terminal": "Terminal",
        "state": "State",
        "running": "running",
        "stopped": "stopped",
        "reason": "Reason",
        "repair": "Expected repair (min)",
        "since": "Since",
        "alerts": "Alerts",
        "offline": "Devices offline",
        "nothing": "none",
        "window": "From the events of the last 48 hours.",
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


@dataclass(frozen=True, slots=True)
class Viewer:
    """Who reads the pages: a user or a token's owner, their role and the plant they may read
    (None: every plant and the group)."""

    name: str
    role: str = "reader"
    plant: str | None = None


# Writes a ledger's headings and rows as a file: (format "csv" or "xlsx", title, headings,
# rows) → bytes. `tally serve` passes the ledger writers of the command line.
LedgerFile = Callable[[str, str, list[str], list[list[Any]]], bytes]


def _sign(key: bytes, body_text: str, until: int) -> str:
    body = base64.urlsafe_b64encode(f"{body_text}\n{until}".encode()).decode()
    mac = hmac.new(key, body.encode(), hashlib.sha256).hexdigest()
    return f"{body}.{mac}"


def _check(key: bytes, cookie: str) -> str | None:
    body, _, mac = cookie.partition(".")
    good = hmac.new(key, body.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(good, mac):
        return None
    try:
        text, _, until = base64.urlsafe_b64decode(body.encode()).decode().rpartition("\n")
        return text if int(until) > clock.time() else None
    except (ValueError, UnicodeDecodeError):
        return None


def _user_mark(user: User) -> str:
    """A short digest of a user's stored hash: a new password or role ends their sessions."""
    return hashlib.sha256(user.line().encode()).hexdigest()[:16]


def _cell(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def _table(cls: str, heads: list[str], rows: list[list[Any]], empty: str) -> str:
    if not rows:
        return f'<p class="empty {cls}">{html.escape(empty)}</p>'
    head = "".join(f"<th>{html.escape(h)}</th>" for h in heads)
    body = "".join("<tr>" + "".join(f"<td>{_cell(v)}</td>" for v in r) + "</tr>" for r in rows)
    return f'<table class="{cls} list"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def mount(
    app: Starlette,
    db: ReceiverDb,
    tokens: TokenTable,
    *,
    timezone: str,
    kpi: KpiConfig,
    users: UserTable | None = None,
    ledger_file: LedgerFile | None = None,
) -> None:
    """Add the pages, the report endpoint and the static files to the receiver's app."""

    def viewer_of_token(token: str) -> Viewer | None:
        name = tokens.reader_of(token)
        if name is None:
            return None
        if name.startswith("@"):
            return Viewer(name)
        plant = tokens.plant_of(name)
        return Viewer(name, plant=plant or None)  # a terminal reads its own plant

    def who(request: Request) -> Viewer | None:
        tokens.refresh()
        if users is not None:
            problem = users.refresh()
            if problem:
                log.warning("%s", problem)
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return viewer_of_token(token.strip())
        cookie = request.cookies.get(COOKIE, "")
        text = _check(tokens.secret(), cookie) if cookie else None
        if text is None:
            return None
        kind, _, rest = text.partition("\n")
        if kind == "t":
            # The token's owner must still be in the tokens file with the read scope.
            for e in tokens.entries:
                if (f"@{e.name}" if e.reader else e.name) == rest and e.may("read"):
                    return Viewer(rest) if e.reader else Viewer(rest, plant=e.plant or None)
            return None
        if kind == "u" and users is not None:
            name, _, mark = rest.partition("\n")
            user = users.users.get(name)
            if user is not None and _user_mark(user) == mark:
                return Viewer(name, user.role, None if user.role == "admin" else user.plant or None)
        return None

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
            viewer = who(request)
            manage = viewer is not None and viewer.role == "admin"
            links = (
                f'<a href="/day">{t["day"]}</a><a href="/month">{t["month"]}</a>'
                f'<a href="/now">{t["now"]}</a>'
                + (f'<a id="admin" href="/admin">{admin.TEXT[lang]["admin"]}</a>' if manage else "")
                + f'<form method="post" action="/logout"><button>{t["logout"]}</button></form>'
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

    def scopes(viewer: Viewer) -> list[tuple[str, tuple[str, ...] | None]]:
        """The scopes a viewer may read: the group and every plant, or their plant alone."""
        plants = tokens.plants()
        if viewer.plant is not None:
            return [(f"plant:{viewer.plant}", plants.get(viewer.plant, ()))]
        out: list[tuple[str, tuple[str, ...] | None]] = [(reports.GROUP, None)]
        out += [(f"plant:{p}", ts) for p, ts in plants.items()]
        return out

    def scope_name(scope: str, lang: str) -> str:
        if scope == reports.GROUP:
            return TEXT[lang]["group"]
        name = scope.partition(":")[2]
        return name or TEXT[lang]["unplaced"]

    def pick_scope(
        request: Request, viewer: Viewer
    ) -> tuple[str, tuple[str, ...] | None, dict[str, tuple[str, ...] | None]]:
        known = dict(scopes(viewer))
        scope = request.query_params.get("scope", "")
        if scope not in known:
            scope = next(iter(known))
        return scope, known[scope], known

    def scope_select(known: dict[str, Any], scope: str, lang: str) -> str:
        options = "".join(
            f'<option value="{html.escape(s)}"{" selected" if s == scope else ""}>'
            f"{html.escape(scope_name(s, lang))}</option>"
            for s in known
        )
        return f'<label>{TEXT[lang]["scope"]} <select name="scope">{options}</select></label>'

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

    def chart_labels(lang: str) -> dict[str, str]:
        t = TEXT[lang]
        labels = {k: kpi_label(k, lang, kpi) for k, _, _ in reports.HEADLINE}
        return labels | {"waits_title": t["waits_title"], "target": t["target_word"]}

    def today(zone: str) -> date:
        return datetime.now(ZoneInfo(zone)).date()

    def events_of(start: datetime, end: datetime, terminals: tuple[str, ...] | None) -> list[Event]:
        found = db.day_events(format_at(start), format_at(end), format_at(start - LOOKBACK))
        if terminals is None:
            return found
        wanted = set(terminals)
        return [e for e in found if e.terminal in wanted]

    def parse_day(text: str) -> date | None:
        try:
            day = date.fromisoformat(text)
        except ValueError:
            return None
        return day if text_rules.FIRST_YEAR <= day.year <= text_rules.LAST_YEAR else None

    async def login_form(request: Request) -> Response:
        lang = lang_of(request)
        return _login_page(request, lang, "")

    def _login_page(request: Request, lang: str, error: str) -> Response:
        t = TEXT[lang]
        err = f'<p class="error" id="error">{error}</p>' if error else ""
        account = ""
        if users is not None:
            account = (
                f'<label for="user">{t["user"]}</label>'
                '<input id="user" name="user" autocomplete="username">'
                f'<label for="password">{t["password"]}</label>'
                '<input id="password" name="password" type="password"'
                ' autocomplete="current-password">'
                f'<p class="hint">{t["or_token"]}</p>'
            )
        body = (
            f'<form class="login" method="post" action="/login"><h2>{t["login"]}</h2>{err}'
            f'{account}<label for="token">{t["token"]}</label>'
            '<input id="token" name="token" type="password" autocomplete="off">'
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
        form = parse_qs(raw.decode("utf-8", "replace"))
        token = form.get("token", [""])[0].strip()
        name = form.get("user", [""])[0].strip()
        password = form.get("password", [""])[0]
        tokens.refresh()
        if token or users is None or not name:
            owner = tokens.reader_of(token) if token else None
            if owner is None:
                return _login_page(request, lang, TEXT[lang]["bad_token"])
            session = f"t\n{owner}"
        else:
            users.refresh()
            user = await run_in_threadpool(users.check, name, password)
            if user is None:
                return _login_page(request, lang, TEXT[lang]["bad_user"])
            session = f"u\n{user.name}\n{_user_mark(user)}"
        response = RedirectResponse("/day", status_code=303)
        response.set_cookie(
            COOKIE,
            _sign(tokens.secret(), session, int(clock.time()) + SESSION_S),
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

    async def no_icon(request: Request) -> Response:
        return Response(status_code=204)  # browsers ask; the pages have no icon

    def ledger_links(day: date, scope: str, lang: str) -> str:
        if ledger_file is None:
            return ""
        links = []
        for name in ledgers.BUILDERS:
            for fmt in ("csv", "xlsx"):
                q = urlencode({"day": day.isoformat(), "ledger": name, "format": fmt,
                               "scope": scope, "lang": lang})  # fmt: skip
                links.append(
                    f'<a class="ledger" href="/ledger?{html.escape(q)}"'
                    f' data-ledger="{name}" data-format="{fmt}">{name}.{fmt}</a>'
                )
        return f'<h3>{TEXT[lang]["ledgers"]}</h3><p class="ledgers">{" ".join(links)}</p>'

    def exceptions_table(found: list[dict[str, Any]], lang: str) -> str:
        t = TEXT[lang]
        rows = [
            [
                r["plate"],
                r["order"],
                r["visit"],
                t[r["what"]],
                kpi_label(r["check"], lang, kpi) if r["what"] == "miss" else r["check"],
                r["detail"],
            ]
            for r in found
        ]
        heads = [t["plate"], t["order"], t["visit"], t["what"], t["check"], t["detail"]]
        return f"<h3>{t['exceptions']}</h3>" + _table("exceptions", heads, rows, t["no_exceptions"])

    async def day_page(request: Request) -> Response:
        viewer = who(request)
        if viewer is None:
            return RedirectResponse("/login", status_code=303)
        lang = lang_of(request)
        t = TEXT[lang]
        day = parse_day(request.query_params.get("day") or today(timezone).isoformat())
        if day is None:
            return page(request, lang, t["day"], f'<p class="error">{t["bad_day"]}</p>')
        mine = scopes(viewer)

        def compute() -> tuple[list[Any], list[Any], list[dict[str, Any]]]:
            plants = [
                (s, scope_name(s, lang), reports.day_report(db, day, timezone, kpi, s, ts))
                for s, ts in mine
            ]
            terms = [
                (
                    f"terminal:{term}",
                    term,
                    reports.day_report(db, day, timezone, kpi, f"terminal:{term}", (term,)),
                )
                for s, ts in mine
                if s != reports.GROUP
                for term in ts or ()
            ]
            found = reports.day_exceptions(db, day, timezone, kpi, mine[0][1])
            return plants, terms, found

        plants, terms, found = await run_in_threadpool(compute)
        chart = charts.day_chart([(n, r) for _, n, r in plants], chart_labels(lang), kpi)
        body = (
            f'<form class="pick" method="get" action="/day"><label>{t["date"]}'
            f' <input type="date" name="day" value="{day.isoformat()}"></label>'
            f"<button>{t['show']}</button></form>"
            f'<h2 id="heading">{t["day"]} {day.isoformat()}</h2>'
            f"<h3>{t['plants']}</h3>{day_table(plants, lang, 'plants')}"
            f"{charts.embed(lang, [chart])}"
            f"<h3>{t['terminals']}</h3>{day_table(terms, lang, 'terminals')}"
            f"{exceptions_table(found, lang)}"
            f"{ledger_links(day, mine[0][0], lang)}"
        )
        return page(request, lang, f"{t['day']} {day.isoformat()}", body)

    async def month_page(request: Request) -> Response:
        viewer = who(request)
        if viewer is None:
            return RedirectResponse("/login", status_code=303)
        lang = lang_of(request)
        t = TEXT[lang]
        month = request.query_params.get("month") or today(timezone).strftime("%Y-%m")
        scope, terminals, known = pick_scope(request, viewer)
        try:
            reports.month_days(month)
        except ValueError:
            return page(request, lang, t["month"], f'<p class="error">{t["bad_month"]}</p>')
        result = await run_in_threadpool(
            reports.month_report, db, month, timezone, kpi, scope, terminals, today(timezone)
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
        drawn = charts.month_charts(result["days"], chart_labels(lang), kpi)
        body = (
            f'<form class="pick" method="get" action="/month"><label>{t["month"]}'
            f' <input type="month" name="month" value="{month}"></label>'
            f"{scope_select(known, scope, lang)}"
            f"<button>{t['show']}</button></form>"
            f'<h2 id="heading">{t["month"]} {month} · {html.escape(scope_name(scope, lang))}</h2>'
            f'<table class="month"><thead><tr><th class="kpi">{t["date"]}</th>{head}</tr>'
            f"</thead><tbody>{''.join(rows)}</tbody></table>"
            f"{charts.embed(lang, drawn)}"
        )
        return page(request, lang, f"{t['month']} {month}", body)

    async def now_page(request: Request) -> Response:
        viewer = who(request)
        if viewer is None:
            return RedirectResponse("/login", status_code=303)
        lang = lang_of(request)
        t = TEXT[lang]
        scope, terminals, known = pick_scope(request, viewer)
        end = datetime.now(UTC) + timedelta(minutes=1)

        def compute() -> dict[str, Any]:
            events = events_of(end - NOW_WINDOW, end, terminals)
            return plant_view.plant_now(events, kpi, ZoneInfo(timezone))

        now = await run_in_threadpool(compute)
        inside = [[stage, len(vs), " ".join(v["plate"] for v in vs)]
                  for stage, vs in now["inside"].items()]  # fmt: skip
        queue = [[i, v["plate"], v["order"], v["waits"].get("expected_min")]
                 for i, v in enumerate(now["queue"], 1)]  # fmt: skip
        scale_queue = [[i, v["plate"], v["order"], v.get("scale")]
                       for i, v in enumerate(now["scale_queue"], 1)]  # fmt: skip

        def local(at: str | None) -> str:
            if not at:
                return ""
            return parse_at(at).astimezone(ZoneInfo(timezone)).strftime("%m-%d %H:%M")

        packers = [
            [p["terminal"], p["packer"], t["running"] if p["running"] else t["stopped"],
             p.get("reason") or "", p.get("expected_repair_min"), local(p.get("since"))]
            for p in now["packers"]
        ]  # fmt: skip
        alerts = [
            [a["terminal"], a["alert"], a["detail"], local(a["since"])] for a in now["alerts"]
        ]
        offline = [
            [o["terminal"], o["device"], o["reason"], local(o["since"])] for o in now["offline"]
        ]
        body = (
            f'<form class="pick" method="get" action="/now">{scope_select(known, scope, lang)}'
            f"<button>{t['show']}</button></form>"
            f'<h2 id="heading">{t["now"]} · {html.escape(scope_name(scope, lang))}</h2>'
            f'<p class="hint">{t["window"]}</p>'
            f'<h3>{t["inside"]} <span id="inside-count">{now["inside_count"]}</span></h3>'
            + _table("inside", [t["stage"], t["count"], t["plate"]], inside, t["nothing"])
            + f"<h3>{t['queue']}</h3>"
            + _table("queue", ["#", t["plate"], t["order"], "min"], queue, t["nothing"])
            + f"<h3>{t['scale_queue']}</h3>"
            + _table(
                "scale-queue", ["#", t["plate"], t["order"], "scale"], scale_queue, t["nothing"]
            )
            + f"<h3>{t['packers']}</h3>"
            + _table(
                "packers",
                [t["terminal"], t["packers"], t["state"], t["reason"], t["repair"], t["since"]],
                packers,
                t["nothing"],
            )
            + f"<h3>{t['alerts']}</h3>"
            + _table(
                "alerts",
                [t["terminal"], t["alerts"], t["detail"], t["since"]],
                alerts,
                t["nothing"],
            )
            + f"<h3>{t['offline']}</h3>"
            + _table(
                "offline",
                [t["terminal"], t["offline"], t["reason"], t["since"]],
                offline,
                t["nothing"],
            )
        )
        return page(request, lang, t["now"], body)

    async def ledger_download(request: Request) -> Response:
        viewer = who(request)
        if viewer is None:
            return JSONResponse({"error": "sign in first"}, status_code=401)
        q = request.query_params
        day = parse_day(q.get("day", ""))
        name, fmt, lang = q.get("ledger", ""), q.get("format", "csv"), q.get("lang", "zh")
        known = dict(scopes(viewer))
        scope = q.get("scope", next(iter(known)))
        problem = (
            "pass the day as ?day=YYYY-MM-DD"
            if day is None
            else f"the ledger must be one of {', '.join(ledgers.BUILDERS)}"
            if name not in ledgers.BUILDERS
            else "the format must be csv or xlsx"
            if fmt not in ("csv", "xlsx")
            else "the language must be zh or en"
            if lang not in ("zh", "en")
            else f"you may not read the scope {scope!r}"
            if scope not in known
            else "this server has no ledger writer"
            if ledger_file is None
            else None
        )
        if problem or day is None or ledger_file is None:
            return JSONResponse({"error": problem}, status_code=400)
        tz = ZoneInfo(timezone)
        start = datetime.combine(day, time(), tz)
        writer = ledger_file

        def build() -> bytes:
            events = events_of(start, start + timedelta(days=1), known[scope])
            rows = ledgers.build(name, events, day, tz)
            heads, body = ledgers.table(name, rows, lang)
            return writer(fmt, f"{name} {day.isoformat()}", heads, body)

        data = await run_in_threadpool(build)
        media = (
            "text/csv; charset=utf-8"
            if fmt == "csv"
            else "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
        )
        filename = f"{name}-{day.isoformat()}.{fmt}"
        return Response(
            data,
            media_type=media,
            headers={"Content-Disposition": f'attachment; filename="{filename}"'},
        )

    async def report_json(request: Request) -> Response:
        viewer = who(request)
        if viewer is None:
            return JSONResponse(
                {"error": "send a reader's or terminal's token as `Authorization: Bearer TOKEN`"},
                status_code=401,
                headers={"WWW-Authenticate": 'Bearer realm="tally"'},
            )
        known = dict(scopes(viewer))
        plant = request.query_params.get("plant")
        if plant is None and viewer.plant is not None:
            plant = viewer.plant
        scope = reports.GROUP if plant is None else f"plant:{plant}"
        if scope not in known:
            if viewer.plant is not None:
                return JSONResponse(
                    {"error": f"this token reads only the plant {viewer.plant!r}"},
                    status_code=403,
                )
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
            Route("/favicon.ico", no_icon, methods=["GET"]),
            Route("/login", login_form, methods=["GET"]),
            Route("/login", login, methods=["POST"]),
            Route("/logout", logout, methods=["POST"]),
            Route("/day", day_page, methods=["GET"]),
            Route("/month", month_page, methods=["GET"]),
            Route("/now", now_page, methods=["GET"]),
            Route("/ledger", ledger_download, methods=["GET"]),
            Route(REPORT_PATH, report_json, methods=["GET"]),
            *admin.routes(
                db,
                tokens,
                users,
                timezone=timezone,
                cookie_name=COOKIE,
                who=who,
                lang_of=lang_of,
                page=page,
            ),
            Mount("/static", StaticFiles(directory=STATIC), name="static"),
        ]
    )
