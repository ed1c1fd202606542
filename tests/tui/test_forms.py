"""The command forms' descriptions: their words exist, their keys reach an action, their requests."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from tui import forms, i18n
from tui.app import TallyApp

V = {"visit": "0190a000-0000-7000-8000-000000000001"}


def test_every_label_and_title_has_words_in_both_languages() -> None:
    used = {f.title for f in forms.FORMS if f.title} | {
        key
        for form in forms.FORMS
        for field in form.fields
        for key in (field.label, *(label for label, _value in field.choices))
    }
    assert sorted(used - set(i18n.keys())) == []


@pytest.mark.parametrize("language", ["zh", "en"])
def test_every_pane_names_each_of_its_keys_in_its_key_hints(language: str) -> None:
    """The bottom line of a pane (its own hints, then the global ones) names every key that works
    there, the sign-in and sign-out keys included ('o/u' names both)."""
    from tui.screens import PANE_CLASSES

    w = i18n.Words(language)
    missing = []
    for pane, cls in PANE_CLASSES.items():
        hints = (w(cls.keys) + "   " if cls.keys else "") + w("keys.global")
        named = {k for token in hints.split() for k in token.split("/")}
        missing += [(pane, key) for p, key, _action in forms.KEYS if p == pane and key not in named]
    assert missing == []


def test_every_key_reaches_an_action_of_the_app() -> None:
    actions = {action for _pane, _key, action in forms.KEYS}
    assert sorted(a for a in actions if not callable(getattr(TallyApp, f"action_{a}", None))) == []
    bound = {(b.key, b.action) for b in TallyApp.BINDINGS if not isinstance(b, tuple)}
    assert {(key, action) for _pane, key, action in forms.KEYS} <= bound


def test_one_key_per_pane() -> None:
    pairs = [(pane, key) for pane, key, _action in forms.KEYS]
    assert len(pairs) == len(set(pairs))


REQUESTS: list[tuple[forms.Form, Mapping[str, Any], dict[str, str | int], dict[str, Any]]] = [
    (forms.TARE, V, {}, {**V, "role": "tare"}),
    (forms.GROSS, {"plate": "苏A12345"}, {}, {"plate": "苏A12345", "role": "gross"}),
    (forms.SEAL, V, {"seals": "S1, S2；S3"}, {**V, "seals": ["S1", "S2", "S3"]}),
    (forms.EXIT_SEALED, V, {"seals_seen": " S2 S1 "}, {**V, "seals_seen": ["S2", "S1"]}),
    (
        forms.CHECK_BAGS,
        {"packer": "line1"},
        {"kg": "50.1，49.9 x", "by": "qc"},
        {"packer": "line1", "samples_kg": [50.1, 49.9, "x"], "by": "qc"},
    ),
    (forms.LOADING_FINISH, V, {"bags": 600}, {**V, "bags": 600}),
    (
        forms.EXIT_CHECKED,
        V,
        {"seals_seen": "S1，S2", "product_seen": "", "reason": "seals ran out"},
        {**V, "seals_seen": ["S1", "S2"], "reason": "seals ran out"},
    ),
    (
        forms.EXIT_CHECKED,
        V,
        {"seals_seen": "", "product_seen": "P.O 42.5"},
        {**V, "product_seen": "P.O 42.5"},
    ),
    (forms.BROKEN_BAGS, V, {"found": 3, "replaced": ""}, {**V, "found": 3}),
    (forms.WINDOW_SERVE, {"ticket": "sales-0007"}, {}, {"ticket": "sales-0007"}),
]


@pytest.mark.parametrize(("form", "subject", "values", "expected"), REQUESTS)
def test_requests(
    form: forms.Form,
    subject: Mapping[str, Any],
    values: dict[str, str | int],
    expected: dict[str, Any],
) -> None:
    assert form.arguments(subject, values) == expected


def test_defaults_known_when_the_form_opens() -> None:
    assert forms.LOADING_START.with_defaults(point="line2") == (
        forms.Field("point", "form.point", default="line2"),
    )
    assert forms.LOADING_START.fields == (forms.Field("point", "form.point"),)
