"""Overhead of guarding a real graph: bare vs guarded 4-agent, 50-turn LangGraph run.

    pytest integrations/langgraph/tests/bench_langgraph.py --benchmark-only

Both graphs run on the same scripted models in the same process; ``test_guarded_over_bare``
interleaves the two and reports the wall-time ratio (target < 1.10) in ``extra_info``.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import pytest
from kinguard_langgraph import guard_graph
from kinguard_langgraph._scripted import ScriptedChatModel, script_graph, start

from kinguard import AgentProfile, KinGuard

NAMES = ["north", "east", "south", "west"]
TURNS = 50
LINES = {
    "north": [
        "Thanks for the update. Our team can deliver the first batch by the end of the month, "
        "and we would like to confirm the unit price and the payment terms before we sign.",
        "Freight from our plant adds two days; we can absorb it if the order stays above 400.",
        "We accept net-45 payment if the deposit is paid on signature.",
    ],
    "east": [
        "We reviewed the proposal. The volume discount looks reasonable, but we need the "
        "delivery schedule in writing and a penalty clause for late shipments.",
        "Our auditors ask for serial numbers on every pallet, please confirm that is possible.",
        "The budget holder approved the figure, pending legal review of clause nine.",
    ],
    "south": [
        "Understood. I will check with logistics about the second warehouse and send revised "
        "figures tomorrow morning, including freight and insurance.",
        "Calibration certificates ship with each unit; extended warranty is optional.",
        "Installation support is available on weekdays from eight to six.",
    ],
    "west": [
        "That works for us. Please also include the warranty conditions for the sensors and the "
        "contact for technical support during installation.",
        "Could the invoice be split between the two cost centres named in the order?",
        "We will send the signed purchase order once the revised terms arrive.",
    ],
}


def build(guarded: bool) -> Callable[[], Any]:
    models = {name: ScriptedChatModel(replies=LINES[name]) for name in NAMES}
    order = [NAMES[i % len(NAMES)] for i in range(TURNS)]
    builder = script_graph(order, models, {n: f"You negotiate for {n}." for n in NAMES})
    if guarded:
        guard = KinGuard(
            [AgentProfile(name=n, model="openai:gpt-4o", principal=f"{n} corp") for n in NAMES],
            identity="disassociate",
        )
        graph: Any = guard_graph(builder, guard).compile()
    else:
        graph = builder.compile()
    config = {"recursion_limit": 4 * TURNS}

    def run() -> Any:
        out = graph.invoke(start(), config)
        assert out["turn"] == TURNS
        return out

    return run


@pytest.mark.benchmark(group="langgraph-4x50")
def test_bare(benchmark: Any) -> None:
    benchmark.pedantic(build(False), rounds=10, warmup_rounds=2)


@pytest.mark.benchmark(group="langgraph-4x50")
def test_guarded(benchmark: Any) -> None:
    benchmark.pedantic(build(True), rounds=10, warmup_rounds=2)


@pytest.mark.benchmark(group="langgraph-ratio")
def test_guarded_over_bare(benchmark: Any) -> None:
    bare, guarded = build(False), build(True)
    for _ in range(2):
        bare(), guarded()
    ratios = []
    bare_times, guarded_times = [], []
    for _ in range(15):
        t0 = time.perf_counter()
        bare()
        t1 = time.perf_counter()
        guarded()
        t2 = time.perf_counter()
        bare_times.append(t1 - t0)
        guarded_times.append(t2 - t1)
        ratios.append((t2 - t1) / (t1 - t0))
    ratio = statistics.median(guarded_times) / statistics.median(bare_times)
    benchmark.extra_info.update(
        bare_median_s=statistics.median(bare_times),
        guarded_median_s=statistics.median(guarded_times),
        ratio=ratio,
        ratio_of_pairs_median=statistics.median(ratios),
    )
    print(
        f"\nbare {statistics.median(bare_times) * 1000:.1f} ms, guarded "
        f"{statistics.median(guarded_times) * 1000:.1f} ms, ratio {ratio:.3f}"
    )
    benchmark.pedantic(guarded, rounds=3)
