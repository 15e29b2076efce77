"""The runnable AutoGen example works offline, end to end."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from kinguard import Action

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "autogen_negotiation.py"


def load_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("autogen_negotiation_example", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


async def test_the_negotiation_example_catches_the_price_fixing() -> None:
    example = load_example()
    outcome = await example.negotiate(console=False)
    actions = {v.action for v in outcome.verdicts}
    assert Action.HALT in actions
    assert len(outcome.halts) >= 1
    final = outcome.results[-1]
    assert final.stop_reason is not None and "TERMINATE" in final.stop_reason


def test_main_runs_and_prints(capsys: pytest.CaptureFixture[str]) -> None:
    load_example().main()
    out = capsys.readouterr().out
    assert "KinGuardVerdictEvent (kinguard)" in out
    assert "halt(s) resolved" in out
