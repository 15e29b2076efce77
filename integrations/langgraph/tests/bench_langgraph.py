"""Overhead of guarding a real graph: bare vs guarded 4-agent, 50-turn LangGraph run.

    pytest integrations/langgraph/tests/bench_langgraph.py --benchmark-only

All graphs run on the same scripted models in the same process. ``no_detectors`` guards with
``detectors=[]``: what is left over the bare graph is the adapter plus the core's bookkeeping
(risk, telemetry, verdicts) without any detector, so the adapter's share can be told apart from
the detectors'. ``adapter_only`` guards with a guard whose ``inspect`` hands back a ready-made
pass-through verdict: what is left is the adapter alone (identity injection included).
``guarded`` runs the default detectors, statistical tier included; ``lexical`` leaves that tier
out (``default_detectors(statistical=False)``).
``test_guarded_over_bare`` interleaves them and reports the wall-time ratios over bare (target
< 1.10 for ``guarded``) in ``extra_info`` and on the terminal.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

# Imported before any guard is built: a guard imports structlog on a background thread
# (``kinguard.logs.warm_up``), which would otherwise share the GIL with the timed rounds of
# whichever variant runs first. The benchmarks measure the steady state; start-up has its own.
import structlog  # noqa: F401
from kinguard_langgraph import guard_graph
from kinguard_langgraph._scripted import ScriptedChatModel, script_graph, start

from kinguard import AgentProfile, KinGuard, Message, Verdict
from kinguard.detectors import StatisticalDetector, default_detectors
from kinguard.testing import interleaved_medians

# The statistical tier's weights are read once per process, at the first message: read now, or
# that one-time cost lands in whichever timed round comes first.
StatisticalDetector().load()

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


VARIANTS = ("bare", "guarded", "no_detectors", "adapter_only", "lexical")


class PassThroughGuard(KinGuard):
    """Lets every message through at no cost: measures the adapter without the core."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._verdicts: dict[tuple[str, str], Verdict] = {}

    def inspect(self, message: Message) -> Verdict:
        key = (message.sender, message.text)
        verdict = self._verdicts.get(key)
        if verdict is None:
            verdict = self._verdicts[key] = Verdict(
                message_id=message.id,
                conversation_id=message.conversation_id,
                sender=message.sender,
                recipients=message.recipients,
                delivered_text=message.text,
            )
        return verdict

    async def ainspect(self, message: Message) -> Verdict:
        return self.inspect(message)


def build(variant: str) -> Callable[[], Any]:
    models = {name: ScriptedChatModel(replies=LINES[name], record_inputs=False) for name in NAMES}
    order = [NAMES[i % len(NAMES)] for i in range(TURNS)]
    builder = script_graph(order, models, {n: f"You negotiate for {n}." for n in NAMES})
    if variant == "bare":
        graph: Any = builder.compile()
    else:
        guard_type = PassThroughGuard if variant == "adapter_only" else KinGuard
        detectors = {"guarded": None, "lexical": default_detectors(statistical=False)}
        guard = guard_type(
            [AgentProfile(name=n, model="openai:gpt-4o", principal=f"{n} corp") for n in NAMES],
            identity="disassociate",
            detectors=detectors.get(variant, []),
        )
        graph = guard_graph(builder, guard).compile()
    config = {"recursion_limit": 4 * TURNS}

    def run() -> Any:
        out = graph.invoke(start(), config)
        assert out["turn"] == TURNS
        return out

    return run


@pytest.mark.benchmark(group="langgraph-4x50")
def test_bare(benchmark: Any) -> None:
    benchmark.pedantic(build("bare"), rounds=10, warmup_rounds=2)


@pytest.mark.benchmark(group="langgraph-4x50")
def test_guarded(benchmark: Any) -> None:
    benchmark.pedantic(build("guarded"), rounds=10, warmup_rounds=2)


@pytest.mark.benchmark(group="langgraph-4x50")
def test_guarded_no_detectors(benchmark: Any) -> None:
    benchmark.pedantic(build("no_detectors"), rounds=10, warmup_rounds=2)


@pytest.mark.benchmark(group="langgraph-ratio")
def test_guarded_over_bare(benchmark: Any, capsys: pytest.CaptureFixture[str]) -> None:
    runs = {variant: build(variant) for variant in VARIANTS}
    medians = interleaved_medians(runs, rounds=40)
    ratios = {variant: medians[variant] / medians["bare"] for variant in VARIANTS[1:]}
    for variant in VARIANTS:
        benchmark.extra_info[f"{variant}_median_s"] = medians[variant]
    for variant, ratio in ratios.items():
        prefix = "" if variant == "guarded" else f"{variant}_"  # ``ratio``: guarded, as before
        benchmark.extra_info[f"{prefix}ratio"] = ratio
    added = {v: (medians[v] - medians["bare"]) / TURNS * 1e6 for v in ratios}
    with capsys.disabled():  # shown without -s: the ratios are what this benchmark is for
        print(
            f"\nbare {medians['bare'] * 1000:.1f} ms | "
            + " | ".join(
                f"{v} {medians[v] * 1000:.1f} ms, ratio {ratios[v]:.3f}, +{added[v]:.0f} us/turn"
                for v in ratios
            )
        )
    benchmark.pedantic(runs["guarded"], rounds=3)
