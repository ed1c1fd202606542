"""The day's plan request: accepted as a plan.set payload, or refused with one sentence."""

from __future__ import annotations

from typing import Any

import pytest

from agent.daemon.api import CommandError
from agent.daemon.services.plans import check_plan


def test_a_plan_is_stored_as_an_exact_decimal() -> None:
    assert check_plan({"day": "2026-11-29", "tonnes": 1200.5, "product": " P.O 42.5 "}) == {
        "day": "2026-11-29",
        "tonnes": "1200.5",
        "product": "P.O 42.5",
        "operator": "",
    }
    assert check_plan({"day": "2026-11-29", "tonnes": "0"})["tonnes"] == "0"


@pytest.mark.parametrize(
    ("request_", "sentence"),
    [
        ({"day": "29.11.2026", "tonnes": 1}, "day '29.11.2026' is not a date like 2026-11-29"),
        (
            {"day": "2026-11-29", "tonnes": "lots"},
            "tonnes 'lots' is not a number; give the planned tonnes, for example --tonnes 1200",
        ),
        ({"day": "2026-11-29", "tonnes": -5}, "tonnes must be between 0 and 1000000, not -5"),
        ({"day": "2026-11-29", "tonnes": "nan"}, "tonnes must be between 0 and 1000000, not nan"),
        (
            {"day": "2026-11-29", "tonnes": "1.0001"},
            "tonnes 1.0001 has more than 3 decimals; give whole kilograms",
        ),
    ],
)
def test_bad_plans_are_refused_with_one_sentence(request_: dict[str, Any], sentence: str) -> None:
    with pytest.raises(CommandError) as err:
        check_plan(request_)
    assert str(err.value) == sentence
