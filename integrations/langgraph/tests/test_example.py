"""The LangGraph example runs offline and shows every intervention it promises."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from kinguard import Action

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "langgraph_negotiation.py"


@pytest.fixture
def example() -> Iterator[ModuleType]:
    spec = importlib.util.spec_from_file_location("langgraph_negotiation", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve annotations through sys.modules
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop(spec.name, None)


def test_example_main_runs_and_intervenes(
    example: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    outcome = example.main()
    printed = capsys.readouterr().out
    assert "kinguard acted on" in printed
    actions = {v.action for v in outcome.verdicts}
    assert {Action.NUDGE, Action.BLOCK, Action.REDACT, Action.HALT} <= actions
    assert len(outcome.halts) == 1
    blocked = next(v for v in outcome.verdicts if v.action is Action.BLOCK)
    halted = next(v for v in outcome.verdicts if v.action is Action.HALT)
    delivered_texts = [text for _, text in outcome.transcript]
    # neither the blocked nor the rejected message reached the other agent or the token stream
    for line in (example.SELLER_LINES[1], example.BUYER_LINES[2]):
        assert line not in delivered_texts
        assert line not in outcome.streamed
    assert "\u200b" not in outcome.streamed  # the covert channel was redacted before streaming
    assert blocked.sender == "seller" and halted.sender == "buyer"
    assert outcome.halts[0]["verdict"]["signals"] == list(halted.signal_names)
