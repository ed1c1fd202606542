"""One tree of "one clear sentence" errors: the API answers any refusal, the CLI maps any."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from agent import cli
from agent.cli.commands import status
from agent.daemon.api import ApiServer
from agent.daemon.client import RequestRefused, request
from agent.daemon.hub import Hub
from agent.domain import plates
from agent.errors import Refused, TallyError
from drivers.errors import SimulatorUsageError


async def test_the_api_answers_a_domain_refusal_with_its_sentence(tmp_path: Path) -> None:
    api = ApiServer(str(tmp_path / "api.sock"), Hub())

    async def arrive(req: dict[str, Any]) -> Any:
        return plates.normalise(str(req["plate"]))

    async def broken(req: dict[str, Any]) -> Any:
        raise KeyError("plate")

    api.register("arrive", arrive)
    api.register("broken", broken)
    await api.start()
    try:
        with pytest.raises(RequestRefused) as refused:
            await asyncio.to_thread(request, api.path, "arrive", plate="京")
        with pytest.raises(RequestRefused) as failed:
            await asyncio.to_thread(request, api.path, "broken")
    finally:
        await api.close()
    with pytest.raises(plates.PlateError) as direct:
        plates.normalise("京")
    assert str(refused.value) == str(direct.value)
    assert isinstance(direct.value, Refused)
    # anything else is a bug: a generic answer, and the trace goes to the log
    assert str(failed.value) == "the daemon failed to run 'broken' ('plate'); see its log"


def test_the_command_line_prints_any_tally_error_as_one_sentence(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def refuse(args: Any) -> int:
        raise plates.PlateError("the plate 京 is too short; type all 7 characters")

    def bad_option(args: Any) -> int:
        raise SimulatorUsageError("--speed must be above 0, not 0.0")

    for run, sentence in [
        (refuse, "the plate 京 is too short; type all 7 characters"),
        (bad_option, "--speed must be above 0, not 0.0"),
    ]:
        monkeypatch.setattr(status, "main", run)
        assert cli.main(["status"]) == 2
        assert capsys.readouterr().err == f"tally: {sentence}\n"
    assert issubclass(plates.PlateError, TallyError)
