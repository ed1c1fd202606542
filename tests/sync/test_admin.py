"""The admin page of a real `tally serve`: only an admin reads it and changes users (with the form
token), a reader gets 403 and the signed-out the sign-in; each token's terminal status is shown
and no answer ever carries a token."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from sync.receiver.admin import form_problem, token_rows
from sync.receiver.users import UserError, UserTable, add_user, remove_user, set_role
from sync.tokens import Entry, parse_entries
from tests.agent.timeline import Timeline
from tests.sync.helpers import Receiver
from tests.sync.month import READER_TOKEN, tokens_file
from tests.sync.test_server import post

PASSWORD = "睡莲-pass-2026"
CSRF = re.compile(r'name="csrf" value="([0-9a-f]{64})"')


def sign_in(url: str, name: str, password: str = PASSWORD) -> httpx.Client:
    client = httpx.Client(base_url=url, timeout=30)
    r = client.post("/login", data={"user": name, "password": password})
    assert (r.status_code, r.headers["location"]) == (303, "/day"), r.text
    return client


@pytest.fixture(params=["sqlite", "postgresql"])
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Receiver, Path]]:
    url = request.getfixturevalue("pg_cluster").new_database() if request.param != "sqlite" else ""
    users = tmp_path / "users"
    add_user(str(users), "wang", "admin", "", PASSWORD)
    add_user(str(users), "li", "reader", "north", PASSWORD)
    with Receiver(tmp_path / "r", tokens_file(), db_url=url, extra=("--users", str(users))) as r:
        yield r, users


def test_only_an_admin_manages_users_and_sees_token_status_never_a_token(
    server: tuple[Receiver, Path],
) -> None:
    r, users = server
    secrets = [e.token for e in parse_entries(tokens_file(), "tokens")]
    assert len(secrets) == 4
    answers: list[httpx.Response] = []
    # wb1 posts seqs 1-3, then 6-7: acknowledged through 3, two seqs missing below 7.
    t = Timeline(terminal="wb1")
    events = [t.advance(1).event("note.added", text=f"n{i}") for i in range(7)]
    for batch in (events[:3], events[5:]):
        assert post(r.url, "wb1", batch).status_code == 200

    signed_out = httpx.Client(base_url=r.url, timeout=30)
    answers.append(signed_out.get("/admin"))
    answers.append(signed_out.post("/admin/users", data={"action": "remove", "name": "li"}))
    assert [(a.status_code, a.headers["location"]) for a in answers] == [(303, "/login")] * 2

    li = sign_in(r.url, "li")
    refused = li.get("/admin")
    answers.append(refused)
    assert refused.status_code == 403
    assert re.findall(r'id="forbidden">([^<]*)<', refused.text) == [
        "只有管理员可以管理用户和查看终端令牌状态。"
    ]
    assert 'id="admin"' not in li.get("/day?day=2026-10-01").text  # no admin link for a reader
    answers.append(li.post("/admin/users", data={"action": "remove", "name": "wang"}))
    answers.append(httpx.get(f"{r.url}/admin", headers={"Authorization": f"Bearer {READER_TOKEN}"}))
    assert [a.status_code for a in answers[-2:]] == [403, 403]

    wang = sign_in(r.url, "wang")
    page = wang.get("/admin?lang=en")
    answers.append(page)
    assert page.status_code == 200 and 'id="admin" href="/admin"' in page.text
    assert re.findall(r'<tr data-user="([^"]+)" data-role="([^"]+)"', page.text) == [
        ("li", "reader"),
        ("wang", "admin"),
    ]
    wb1 = re.search(r'<tr data-holder="wb1">(.*?)</tr>', page.text)
    assert wb1 is not None
    cells = re.findall(r"<td>([^<]*)</td>", wb1.group(1))
    # #, holder, plant, scopes, last posted, stream, acked through, highest seq, missing
    assert cells[1:4] == ["wb1", "north", "push,read"] and cells[5:] == ["e1", "3", "7", "2"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", cells[4])
    reader_row = re.search(r'<tr data-holder="@kaoping">(.*?)</tr>', page.text)
    assert reader_row is not None and "<td>read</td>" in reader_row.group(1)
    never = re.search(r'<tr data-holder="wb2">(.*?)</tr>', page.text)
    assert never is not None and "never posted" in never.group(1)
    csrf = CSRF.findall(page.text)[0]

    # Without the form's token, or from another site's page, nothing changes.
    before = users.read_text()
    for data, headers in (
        ({"action": "remove", "name": "li"}, {}),
        ({"action": "remove", "name": "li", "csrf": "0" * 64}, {}),
        ({"action": "remove", "name": "li", "csrf": csrf}, {"Origin": "http://evil.example"}),
    ):
        answers.append(wang.post("/admin/users?lang=en", data=data, headers=headers))
        assert answers[-1].status_code == 403
        assert "The form has expired; reload the page and try again." in answers[-1].text
    assert users.read_text() == before

    def change(headers: dict[str, str] | None = None, **data: str) -> httpx.Response:
        answers.append(wang.post("/admin/users", data={"csrf": csrf, **data}, headers=headers))
        return answers[-1]

    added = change(action="add", name="zhao", role="reader", plant="", password=PASSWORD)
    assert (added.status_code, added.headers["location"]) == (303, "/admin?done=add&user=zhao")
    assert "Added the user zhao." in wang.get(added.headers["location"]).text
    assert "已添加用户 zhao。" in wang.get(added.headers["location"] + "&lang=zh").text
    zhao = sign_in(r.url, "zhao")
    assert zhao.get("/day?day=2026-10-01").status_code == 200
    table = UserTable.load(str(users))
    assert table.users["zhao"].created and table.check("zhao", PASSWORD) is not None

    again = change(action="add", name="li", role="admin", plant="", password=PASSWORD)
    assert again.status_code == 409 and "用户 li 已存在；请修改其角色或先删除。" in again.text
    short = change(action="add", name="zhou", role="reader", plant="", password="short")
    assert short.status_code == 400 and "密码至少 8 个字符，且只能一行。" in short.text

    # A new role ends li's session; a removed user's session ends at once.
    # Behind a proxy that rewrites Host, the browser's origin is the forwarded host.
    proxied = {"Origin": "https://tally.example", "X-Forwarded-Host": "tally.example"}
    assert change(proxied, action="role", name="li", role="admin", plant="").status_code == 303
    assert li.get("/day").status_code == 303
    assert change(action="remove", name="zhao").status_code == 303
    assert zhao.get("/day").headers["location"] == "/login"
    assert set(UserTable.load(str(users)).users) == {"li", "wang"}
    assert change(action="role", name="li", role="reader", plant="north").status_code == 303
    last = change(action="role", name="wang", role="reader", plant="")
    assert last.status_code == 409 and "至少要保留一名管理员" in last.text

    for a in answers:
        for secret in secrets:
            assert secret not in a.text, a.request.url
        assert "scrypt$" not in a.text


def test_token_rows_show_each_token_and_orphan_streams_without_the_token() -> None:
    entries = [
        Entry("wb1", "tok-wb1-aaaaaaaa", "north"),
        Entry("wb1", "tok-wb1-bbbbbbbb", "north", scopes=("push",)),
        Entry("kaoping", "tok-reader-cccc", reader=True, scopes=("read",)),
    ]
    streams = [
        {"terminal": "wb1", "epoch": "e1", "last_at": "2026-10-01T01:00:00.000Z"},
        {"terminal": "wb1", "epoch": "e2", "last_at": "2026-10-02T01:00:00.000Z"},
        {"terminal": "old", "epoch": "e1", "last_at": "2026-09-01T01:00:00.000Z"},
    ]
    rows = token_rows(entries, streams)
    assert [(r["n"], r["holder"], r["scopes"]) for r in rows] == [
        (1, "wb1", ["push", "read"]),
        (2, "wb1", ["push"]),
        (3, "@kaoping", ["read"]),
        (None, "old", []),
    ]
    assert [r["stream"] and r["stream"]["epoch"] for r in rows] == ["e2", "e2", None, "e1"]
    assert "tok-" not in repr(rows)


def test_admin_form_problems_and_user_file_changes(tmp_path: Path) -> None:
    ok = {"name": "zhao", "role": "reader", "plant": "north", "password": PASSWORD}
    assert form_problem("add", ok) is None
    assert form_problem("grant", ok) == "bad_action"
    assert form_problem("add", ok | {"name": "Zhao!"}) == "bad_name"
    assert form_problem("role", ok | {"role": "root"}) == "bad_role"
    assert form_problem("role", ok | {"plant": "North"}) == "bad_plant"
    assert form_problem("add", ok | {"password": "a\nb-long-enough"}) == "bad_password"
    assert form_problem("remove", {"name": "zhao"}) is None

    path = str(tmp_path / "users")
    add_user(path, "wang", "admin", "", PASSWORD)
    created = UserTable.load(path).users["wang"].created
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", created)
    add_user(path, "wang", "admin", "", "another-pass")  # the command line replaces
    assert UserTable.load(path).users["wang"].created == created
    with pytest.raises(UserError, match="already exists") as exists:
        add_user(path, "wang", "reader", "", PASSWORD, replace=False)
    assert exists.value.code == "exists"
    with pytest.raises(UserError, match="at least one admin must remain"):
        remove_user(path, "wang")
    with pytest.raises(UserError, match="there is no user 'li'"):
        set_role(path, "li", "admin", "")
    # A line written before `created` was kept still reads.
    hashed = UserTable.load(path).users["wang"].hashed
    Path(path).write_text(f"li:reader:north:{hashed}\n")
    assert UserTable.load(path).users["li"].created == ""
