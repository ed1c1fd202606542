"""The admin page: the users (add, change a role, remove) and each token's terminal, plant,
scopes and sync status. A token's text or hash is never shown, sent or logged.

Only a signed-in admin (a user of the users file with the role admin) reads it; a reader gets
403 with one sentence. Its forms are protected like the sign-in: the session cookie is
`SameSite=Strict` (a browser never sends it with another site's request), and every form also
carries a token derived from the session, checked on each change, with the `Origin` header when
the browser sends one.
"""

from __future__ import annotations

import hashlib
import hmac
import html
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit
from zoneinfo import ZoneInfo

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from agent.domain.events import parse_at
from sync.receiver.engine import ReceiverDb
from sync.receiver.users import (
    MIN_PASSWORD,
    NAME,
    ROLES,
    UserError,
    UserTable,
    add_user,
    password_problem,
    remove_user,
    set_role,
)
from sync.tokens import TERMINAL, Entry, TokenTable

MAX_FORM = 4096  # bytes of an admin form
ACTIONS = ("add", "role", "remove")

TEXT: dict[str, dict[str, str]] = {
    "zh": {
        "admin": "管理",
        "forbidden": "只有管理员可以管理用户和查看终端令牌状态。",
        "no_users": "本服务器未指定用户文件（--users），无法在此管理用户。",
        "users": "用户",
        "name": "用户名",
        "role": "角色",
        "plant": "所属厂",
        "created": "创建时间",
        "change": "修改",
        "remove": "删除",
        "add": "添加用户",
        "password": "密码",
        "reader": "查看者",
        "role_admin": "管理员",
        "all_plants": "全部",
        "tokens": "终端令牌",
        "tokens_hint": "令牌本身从不显示；状态为该终端最近一次上传的数据流。",
        "number": "#",
        "holder": "终端 / 读者",
        "scopes": "权限",
        "last_posted": "最后上传",
        "epoch": "数据流",
        "acked": "已确认至",
        "max_seq": "最高序号",
        "missing": "缺少",
        "never": "从未上传",
        "no_token": "无令牌",
        "reader_row": "读者",
        "done_add": "已添加用户 {name}。",
        "done_role": "已修改用户 {name} 的角色。",
        "done_remove": "已删除用户 {name}。",
        "confirm_remove": "删除",
        "bad_form": "表单已过期，请刷新页面后重试。",
        "bad_action": "未知操作。",
        "bad_name": "用户名须为 1 到 32 个字符（a-z、0-9、'.'、'_'、'-'），以字母或数字开头。",
        "bad_role": "角色须为 reader（查看者）或 admin（管理员）。",
        "bad_plant": "厂名须为 1 到 32 个字符（a-z、0-9、'-'）。",
        "bad_password": f"密码至少 {MIN_PASSWORD} 个字符，且只能一行。",
        "exists": "用户 {name} 已存在；请修改其角色或先删除。",
        "unknown": "没有用户 {name}。",
        "last_admin": "至少要保留一名管理员；请先把另一用户设为管理员。",
        "not_saved": "未能保存：{why}",
    },
    "en": {
        "admin": "Admin",
        "forbidden": "Only an admin may manage users and see the terminals' tokens' status.",
        "no_users": "This server has no users file (--users); users cannot be managed here.",
        "users": "Users",
        "name": "User name",
        "role": "Role",
        "plant": "Plant",
        "created": "Created",
        "change": "Change",
        "remove": "Remove",
        "add": "Add a user",
        "password": "Password",
        "reader": "reader",
        "role_admin": "admin",
        "all_plants": "all",
        "tokens": "Terminals' tokens",
        "tokens_hint": "A token itself is never shown; the status is of the terminal's latest"
        " stream.",
        "number": "#",
        "holder": "Terminal / reader",
        "scopes": "Scopes",
        "last_posted": "Last posted",
        "epoch": "Stream",
        "acked": "Acked through",
        "max_seq": "Highest seq",
        "missing": "Missing",
        "never": "never posted",
        "no_token": "no token",
        "reader_row": "reader",
        "done_add": "Added the user {name}.",
        "done_role": "Changed the role of {name}.",
        "done_remove": "Removed the user {name}.",
        "confirm_remove": "Remove",
        "bad_form": "The form has expired; reload the page and try again.",
        "bad_action": "Unknown action.",
        "bad_name": "The user name must be 1 to 32 characters of a-z, 0-9, '.', '_' and '-'"
        " starting with a letter or digit.",
        "bad_role": "The role must be reader or admin.",
        "bad_plant": "The plant must be 1 to 32 characters of a-z, 0-9 and '-'.",
        "bad_password": f"The password must be at least {MIN_PASSWORD} characters on one line.",
        "exists": "The user {name} already exists; change their role or remove them first.",
        "unknown": "There is no user {name}.",
        "last_admin": "At least one admin must remain; make another user admin first.",
        "not_saved": "Not saved: {why}",
    },
}


def form_token(key: bytes, session: str) -> str:
    """The token every admin form carries: derived from the session cookie, so a page of
    another site can neither read nor forge it, and it ends with the session."""
    return hmac.new(key, b"tally-admin-form\0" + session.encode(), hashlib.sha256).hexdigest()


def form_problem(action: str, form: dict[str, str]) -> str | None:
    """The TEXT key of what is wrong with an admin form's fields, before touching the file."""
    if action not in ACTIONS:
        return "bad_action"
    if not NAME.fullmatch(form.get("name", "")):
        return "bad_name"
    if action == "remove":
        return None
    if form.get("role", "") not in ROLES:
        return "bad_role"
    plant = form.get("plant", "")
    if plant and not TERMINAL.fullmatch(plant):
        return "bad_plant"
    if action == "add" and password_problem(form.get("password", "")):
        return "bad_password"
    return None


def token_rows(entries: list[Entry], streams: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per token of the tokens file (in its order), with its terminal's latest stream;
    then one per terminal that has streams but no token left. No token text, no hash."""
    latest: dict[str, dict[str, Any]] = {}
    for s in streams:
        seen = latest.get(s["terminal"])
        if seen is None or (s["last_at"] or "") > (seen["last_at"] or ""):
            latest[s["terminal"]] = s
    rows: list[dict[str, Any]] = []
    for n, e in enumerate(entries, 1):
        holder = f"@{e.name}" if e.reader else e.name
        row: dict[str, Any] = {"n": n, "holder": holder, "reader": e.reader, "plant": e.plant}
        row["scopes"] = list(e.scopes)
        row["stream"] = None if e.reader else latest.get(e.name)
        rows.append(row)
    tokened = {e.name for e in entries if not e.reader}
    for terminal in sorted(set(latest) - tokened):
        rows.append(
            {"n": None, "holder": terminal, "reader": False, "plant": "", "scopes": [],
             "stream": latest[terminal]}
        )  # fmt: skip
    return rows


def routes(
    db: ReceiverDb,
    tokens: TokenTable,
    users: UserTable | None,
    *,
    timezone: str,
    cookie_name: str,
    who: Callable[[Request], Any],
    lang_of: Callable[[Request], str],
    page: Callable[..., Response],
) -> list[Route]:
    """GET /admin and POST /admin/users, for the receiver's web pages."""
    zone = ZoneInfo(timezone)

    def local(at: str | None) -> str:
        if not at:
            return ""
        return parse_at(at).astimezone(zone).strftime("%Y-%m-%d %H:%M:%S")

    def created(text: str) -> str:
        return local(text) if text else "—"

    def allowed(request: Request) -> Response | None:
        """None for an admin; the sign-in redirect or the 403 page for anyone else."""
        viewer = who(request)
        if viewer is None:
            return RedirectResponse("/login", status_code=303)
        if viewer.role != "admin":
            lang = lang_of(request)
            t = TEXT[lang]
            body = f'<p class="error" id="forbidden">{t["forbidden"]}</p>'
            response = page(request, lang, t["admin"], body)
            response.status_code = 403
            return response
        return None

    def role_select(role: str, lang: str) -> str:
        t = TEXT[lang]
        names = {"reader": t["reader"], "admin": t["role_admin"]}
        options = "".join(
            f'<option value="{r}"{" selected" if r == role else ""}>{names[r]}</option>'
            for r in ROLES
        )
        return f'<select name="role" aria-label="{t["role"]}">{options}</select>'

    def hidden(csrf: str, action: str) -> str:
        return (
            f'<input type="hidden" name="csrf" value="{csrf}">'
            f'<input type="hidden" name="action" value="{action}">'
        )

    def users_section(lang: str, csrf: str) -> str:
        t = TEXT[lang]
        if users is None:
            return f'<h3>{t["users"]}</h3><p class="hint" id="no-users">{t["no_users"]}</p>'
        rows = []
        for u in sorted(users.users.values(), key=lambda u: u.name):
            name = html.escape(u.name)
            plant = html.escape(u.plant)
            change = (
                f'<form class="inline" method="post" action="/admin/users">'
                f'{hidden(csrf, "role")}<input type="hidden" name="name" value="{name}">'
                f"{role_select(u.role, lang)}"
                f'<input name="plant" value="{plant}" size="8" aria-label="{t["plant"]}"'
                f' placeholder="{t["all_plants"]}">'
                f"<button>{t['change']}</button></form>"
            )
            remove = (
                f'<form class="inline" method="post" action="/admin/users">'
                f'{hidden(csrf, "remove")}<input type="hidden" name="name" value="{name}">'
                f'<button class="remove">{t["remove"]}</button></form>'
            )
            role = t["role_admin"] if u.role == "admin" else t["reader"]
            rows.append(
                f'<tr data-user="{name}" data-role="{u.role}"><td>{name}</td><td>{role}</td>'
                f"<td>{plant or t['all_plants']}</td><td>{created(u.created)}</td>"
                f"<td>{change}</td><td>{remove}</td></tr>"
            )
        heads = "".join(
            f"<th>{h}</th>"
            for h in (t["name"], t["role"], t["plant"], t["created"], t["change"], t["remove"])
        )
        add = (
            f'<form class="pick" id="add-user" method="post" action="/admin/users">'
            f'{hidden(csrf, "add")}<label>{t["name"]} <input name="name" size="12"'
            ' autocomplete="off"></label>'
            f"<label>{t['role']} {role_select('reader', lang)}</label>"
            f'<label>{t["plant"]} <input name="plant" size="8" placeholder="{t["all_plants"]}">'
            f'</label><label>{t["password"]} <input name="password" type="password"'
            ' autocomplete="new-password"></label>'
            f"<button>{t['add']}</button></form>"
        )
        return (
            f'<h3>{t["users"]}</h3><table class="users list"><thead><tr>{heads}</tr></thead>'
            f"<tbody>{''.join(rows)}</tbody></table><h3>{t['add']}</h3>{add}"
        )

    def tokens_section(lang: str, streams: list[dict[str, Any]]) -> str:
        t = TEXT[lang]
        rows = []
        for r in token_rows(tokens.entries, streams):
            s = r["stream"]
            status = (
                ["", "", "", "", ""]
                if r["reader"]
                else [t["never"], "", "", "", ""]
                if s is None
                else [local(s["last_at"]) or t["never"], s["epoch"], s["acked_through"],
                      s["max_seq"], s["missing"]]
            )  # fmt: skip
            holder = html.escape(r["holder"])
            scopes = ",".join(r["scopes"]) if r["n"] is not None else t["no_token"]
            cells = [r["n"] or "", holder, html.escape(r["plant"]) or "—", scopes, *status]
            tds = "".join(f"<td>{c}</td>" for c in cells)
            rows.append(f'<tr data-holder="{holder}">{tds}</tr>')
        heads = "".join(
            f"<th>{t[k]}</th>"
            for k in ("number", "holder", "plant", "scopes", "last_posted", "epoch", "acked",
                      "max_seq", "missing")
        )  # fmt: skip
        return (
            f'<h3>{t["tokens"]}</h3><p class="hint">{t["tokens_hint"]}</p>'
            f'<table class="tokens list"><thead><tr>{heads}</tr></thead>'
            f"<tbody>{''.join(rows)}</tbody></table>"
        )

    async def render(
        request: Request, lang: str, *, notice: str = "", error: str = "", status: int = 200
    ) -> Response:
        t = TEXT[lang]
        tokens.refresh()
        if users is not None:
            users.refresh()
        streams = await run_in_threadpool(db.streams)
        csrf = form_token(tokens.secret(), request.cookies.get(cookie_name, ""))
        note = f'<p class="notice" id="notice">{html.escape(notice)}</p>' if notice else ""
        err = f'<p class="error" id="error">{html.escape(error)}</p>' if error else ""
        body = (
            f'<h2 id="heading">{t["admin"]}</h2>{note}{err}'
            f"{users_section(lang, csrf)}{tokens_section(lang, streams)}"
        )
        response = page(request, lang, t["admin"], body)
        response.status_code = status
        return response

    async def admin_page(request: Request) -> Response:
        refused = allowed(request)
        if refused is not None:
            return refused
        lang = lang_of(request)
        done, name = request.query_params.get("done", ""), request.query_params.get("user", "")
        notice = ""
        if done in ACTIONS and NAME.fullmatch(name):
            notice = TEXT[lang][f"done_{done}"].format(name=name)
        return await render(request, lang, notice=notice)

    async def change_users(request: Request) -> Response:
        refused = allowed(request)
        if refused is not None:
            return refused
        lang = lang_of(request)
        t = TEXT[lang]
        raw = await request.body()
        fields = parse_qs(raw.decode("utf-8", "replace")) if len(raw) <= MAX_FORM else {}
        form = {k: v[0] for k, v in fields.items()}
        form = {k: v if k == "password" else v.strip() for k, v in form.items()}
        session = request.cookies.get(cookie_name, "")
        expected = form_token(tokens.secret(), session)
        origin = request.headers.get("origin")
        # Behind a proxy that rewrites Host, the browser's host arrives as X-Forwarded-Host.
        hosts = {request.url.netloc, request.headers.get("x-forwarded-host", "")} - {""}
        same_origin = origin is None or urlsplit(origin).netloc in hosts
        if (
            not session
            or not same_origin
            or not hmac.compare_digest(form.get("csrf", ""), expected)
        ):
            return await render(request, lang, error=t["bad_form"], status=403)
        if users is None:
            return await render(request, lang, error=t["no_users"], status=400)
        action, name = form.get("action", ""), form.get("name", "")
        problem = form_problem(action, form)
        if problem:
            return await render(request, lang, error=t[problem], status=400)
        role, plant = form.get("role", ""), form.get("plant", "")
        try:
            if action == "add":
                await run_in_threadpool(
                    add_user, users.path, name, role, plant, form["password"], replace=False
                )
            elif action == "role":
                await run_in_threadpool(set_role, users.path, name, role, plant)
            else:
                await run_in_threadpool(remove_user, users.path, name)
        except UserError as exc:
            text = t[exc.code].format(name=name) if exc.code else t["not_saved"].format(why=exc)
            return await render(request, lang, error=text, status=409 if exc.code else 400)
        query = urlencode({"done": action, "user": name})
        return RedirectResponse(f"/admin?{query}", status_code=303)

    async def back_to_page(request: Request) -> Response:
        # The language switch of a refused form's page links here.
        return RedirectResponse(f"/admin?{urlencode(dict(request.query_params))}", 303)

    return [
        Route("/admin", admin_page, methods=["GET"]),
        Route("/admin/users", back_to_page, methods=["GET"]),
        Route("/admin/users", change_users, methods=["POST"]),
    ]
