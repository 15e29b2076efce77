"""Guarded vs bare wall time of a 4-agent, 50-message round-robin team on replayed models.

    pytest integrations/autogen/tests/bench_autogen.py --benchmark-only

Same run every way: identical agents, lines and termination. ``guarded`` runs the default kinguard
detectors (statistical tier included; ``lexical`` leaves it out) with identity injection;
``no-detectors`` is the same guard without detectors, so what the adapter and the core's
bookkeeping cost is reported apart from what detection costs; ``adapter-only`` guards with a
``PassThroughGuard`` (its ``inspect`` hands back a ready-made pass-through verdict), so what is
left over bare is the adapter alone, identity injection included. The
``*-streaming`` variants stream tokens (``model_client_stream=True``) and consume ``run_stream()``
as a chat UI would, so kinguard's token gate is in the path; their baseline is
``bare-streaming``. Each median's ratio to its baseline is printed after the run and kept in the
benchmark's ``extra_info`` (``--benchmark-json``). Target: guarded/bare under 1.10.
"""

from __future__ import annotations

import asyncio
import functools
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

# Imported before any guard is built: a guard imports structlog on a background thread
# (``kinguard.logs.warm_up``), which would otherwise share the GIL with the timed rounds of
# whichever variant runs first. The benchmarks measure the steady state; start-up has its own.
import structlog  # noqa: F401
from autogen_agentchat.agents import AssistantAgent
from autogen_agentchat.base import ChatAgent, Team
from autogen_agentchat.conditions import MaxMessageTermination
from autogen_agentchat.teams import RoundRobinGroupChat
from autogen_ext.models.replay import ReplayChatCompletionClient
from kinguard_autogen import guard_team

from kinguard import AgentProfile, KinGuard
from kinguard.detectors import StatisticalDetector, default_detectors
from kinguard.testing import PassThroughGuard, interleaved_medians

# The statistical tier's weights are read once per process, at the first message: read now, or
# that one-time cost lands in whichever timed round comes first.
StatisticalDetector().load()

NAMES = ("buyer", "seller", "broker", "auditor")
MESSAGES = 50
SUBJECTS = (
    "the sensors",
    "delivery",
    "the warranty",
    "payment terms",
    "the datasheets",
    "calibration",
    "spare parts",
    "the invoice",
    "installation",
    "training",
)
ROLES = {
    "buyer": "Could you confirm {s} for order {n}? We need it settled before March.",
    "seller": "For order {n}, {s} is covered as listed in our quote, page {p}.",
    "broker": "I have noted {s} for order {n} in the tracking sheet, row {p}.",
    "auditor": "Please attach the records on {s} for order {n}; item {p} is still open.",
}


def lines_of(name: str, count: int) -> list[str]:
    """Distinct, benign lines: a realistic run, not a repeated one (that would be mimicry)."""
    return [
        ROLES[name].format(s=SUBJECTS[(j * 3 + len(name)) % len(SUBJECTS)], n=100 + j, p=j + 2)
        for j in range(count)
    ]


PROFILES = [
    AgentProfile(name=name, model="openai:gpt-4o", principal=f"{name}'s firm") for name in NAMES
]


def build(guard: KinGuard | None, stream: bool = False) -> RoundRobinGroupChat:
    per_agent = MESSAGES // len(NAMES) + 1
    agents: list[ChatAgent | Team] = [
        AssistantAgent(
            name,
            model_client=ReplayChatCompletionClient(lines_of(name, per_agent)),
            system_message=f"You are the {name}.",
            model_client_stream=stream,
        )
        for name in NAMES
    ]
    team = RoundRobinGroupChat(agents, termination_condition=MaxMessageTermination(MESSAGES + 1))
    if guard is not None:
        # One guard per app (building it compiles its detectors), one conversation per run.
        guard_team(team, guard, conversation_id=uuid.uuid4().hex)
    return team


def run_once(guard: KinGuard | None, stream: bool) -> Any:
    async def go() -> Any:
        team = build(guard, stream)
        if not stream:
            return await team.run(task="Agree a sensor deal.")
        items = [item async for item in team.run_stream(task="Agree a sensor deal.")]
        return items[-1]

    return asyncio.run(go())


def _guarded() -> KinGuard:
    return KinGuard(PROFILES, identity="disassociate")


# Per variant: the KinGuard it runs (None: the bare team), whether it streams tokens, and the
# variant its ratio is taken against.
VARIANTS: dict[str, tuple[Callable[[], KinGuard | None], bool, str]] = {
    "bare": (lambda: None, False, "bare"),
    "guarded": (_guarded, False, "bare"),
    "no-detectors": (
        lambda: KinGuard(PROFILES, identity="disassociate", detectors=[]),
        False,
        "bare",
    ),
    "adapter-only": (
        lambda: PassThroughGuard(PROFILES, identity="disassociate", detectors=[]),
        False,
        "bare",
    ),
    # The default detectors without the statistical tier.
    "lexical": (
        lambda: KinGuard(
            PROFILES, identity="disassociate", detectors=default_detectors(statistical=False)
        ),
        False,
        "bare",
    ),
    "bare-streaming": (lambda: None, True, "bare-streaming"),
    "guarded-streaming": (_guarded, True, "bare-streaming"),
}


@pytest.fixture(scope="module")
def medians(request: pytest.FixtureRequest) -> Iterator[dict[str, float]]:
    """Each variant's median; their ratios to bare go to the terminal once all have run."""
    found: dict[str, float] = {}
    yield found
    plugins = request.config.pluginmanager
    reporter = plugins.get_plugin("terminalreporter")
    capture = plugins.get_plugin("capturemanager")
    if reporter is None or capture is None:
        return
    with capture.global_and_fixture_disabled():  # else -q's output capture swallows the lines
        reporter.write_line("")
        for variant, median in found.items():
            baseline = VARIANTS[variant][2]
            if baseline in found:
                reporter.write_line(
                    f"autogen-50-messages {variant}: median {median * 1000:.2f} ms, "
                    f"{median / found[baseline]:.3f}x {baseline}"
                )


@pytest.mark.benchmark(group="autogen-50-messages")
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_round_robin_50_messages(benchmark: Any, variant: str, medians: dict[str, float]) -> None:
    make_guard, stream, baseline = VARIANTS[variant]
    result = benchmark.pedantic(run_once, args=(make_guard(), stream), rounds=20, warmup_rounds=3)
    assert len([m for m in result.messages if m.source in NAMES]) == MESSAGES
    if benchmark.stats is None:  # --benchmark-disable: ran once, untimed
        return
    medians[variant] = benchmark.stats.stats.median
    if variant != baseline and baseline in medians:
        benchmark.extra_info[f"ratio_to_{baseline}"] = round(
            medians[variant] / medians[baseline], 3
        )


@pytest.mark.benchmark(group="autogen-ratio")
def test_guarded_over_bare(benchmark: Any, capsys: pytest.CaptureFixture[str]) -> None:
    """Every variant timed in turn, 30 times: the ratios to quote (the per-variant benchmarks
    above run one after the other, so a burst of load can land on one variant alone)."""
    guards = {variant: make() for variant, (make, _, _) in VARIANTS.items()}
    runs = {
        variant: functools.partial(run_once, guards[variant], stream)
        for variant, (_, stream, _) in VARIANTS.items()
    }
    medians = interleaved_medians(runs, rounds=30)
    lines = []
    for variant, (_, _, baseline) in VARIANTS.items():
        benchmark.extra_info[f"{variant}_median_s"] = medians[variant]
        if variant != baseline:
            ratio = medians[variant] / medians[baseline]
            benchmark.extra_info[f"{variant}_ratio"] = ratio
            added = (medians[variant] - medians[baseline]) / MESSAGES * 1e6
            lines.append(f"{variant}/{baseline} {ratio:.3f} (+{added:.0f} us/message)")
    with capsys.disabled():  # shown without -s: the ratios are what this benchmark is for
        print("\nautogen interleaved: " + " | ".join(lines))
    benchmark.pedantic(runs["guarded"], rounds=3)
