"""Plates: normalisation and the accepted forms, table-driven."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.domain.plates import PlateError, kind, normalise

ACCEPTED = [
    ("苏A12345", "苏A12345", "ordinary"),
    ("苏a12345", "苏A12345", "ordinary"),
    (" 苏A·12345 ", "苏A12345", "ordinary"),
    ("苏A-123 45", "苏A12345", "ordinary"),
    ("苏A.B1C2D", "苏AB1C2D", "ordinary"),
    ("苏Ａ１２３４５", "苏A12345", "ordinary"),  # full-width letter and digits
    ("京ｂ　８８８８８", "京B88888", "ordinary"),  # full-width space and lower case
    ("苏ＡＤ１２３４５", "苏AD12345", "new_energy"),
    ("粤BF12345", "粤BF12345", "new_energy"),
    ("沪A12345D", "沪A12345D", "new_energy"),
    ("浙AAB1234", "浙AAB1234", "new_energy"),
    ("鲁H1234挂", "鲁H1234挂", "trailer"),
    ("鲁h·12ab挂", "鲁H12AB挂", "trailer"),
]


@pytest.mark.parametrize(("text", "plate", "form"), ACCEPTED)
def test_accepted(text: str, plate: str, form: str) -> None:
    assert (normalise(text), kind(plate)) == (plate, form)


REFUSED = [
    ("", "the plate is empty; enter it like 苏A12345"),
    (" ·- ", "the plate is empty; enter it like 苏A12345"),
    (
        "AB12345",
        "plate 'AB12345' does not start with a province character such as 苏 or 京;"
        " enter it like 苏A12345",
    ),
    (
        "X苏A12345",
        "plate 'X苏A12345' does not start with a province character such as 苏 or 京;"
        " enter it like 苏A12345",
    ),
    (
        "苏A1234O",
        "plate '苏A1234O' contains the letter I or O, which plates never use; did you mean 1 or 0?",
    ),
    (
        "苏I12345",
        "plate '苏I12345' contains the letter I or O, which plates never use; did you mean 1 or 0?",
    ),
]
GENERIC = [
    "苏A1234",  # too short
    "苏A123456",  # 8 characters but not a new-energy form
    "苏1A2345",  # second character must be a letter
    "苏A12345挂",  # trailer plates have 4 characters before 挂
    "苏A12挂45",
    "苏AL12345",  # L is not an energy letter
    "苏A12345L",
    "苏A1234学",
    "苏A12$45",
]


@pytest.mark.parametrize(("text", "message"), REFUSED)
def test_refused_with_reason(text: str, message: str) -> None:
    with pytest.raises(PlateError) as info:
        normalise(text)
    assert str(info.value) == message


@pytest.mark.parametrize("text", GENERIC)
def test_refused_generic(text: str) -> None:
    with pytest.raises(PlateError) as info:
        normalise(text)
    assert str(info.value) == (
        f"plate {text!r} is not a plate: expected a province character, a letter and"
        " 5 letters or digits (苏A12345), an 8-character new-energy plate (苏AD12345)"
        " or a trailer plate ending in 挂 (苏A1234挂)"
    )


@given(st.text(max_size=12))
def test_any_text_is_a_plate_or_one_sentence(text: str) -> None:
    try:
        plate = normalise(text)
    except PlateError as exc:
        assert "\n" not in str(exc)
        return
    assert kind(plate) is not None
    assert normalise(plate) == plate
