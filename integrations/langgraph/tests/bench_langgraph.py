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

``test_agents_guarded_over_bare`` does the same for the shape LangGraph's docs give a
multi-agent app: each agent a ``create_agent`` agent (its own system prompt, no tools), added
as a node of a parent graph routed by the same script. It is guarded either with
``guard_graph`` around the parent (``guarded``, and ``adapter_only`` as above) or with a
``KinGuardMiddleware`` inside each agent and the parent left bare (``middleware``,
``middleware_adapter_only``), the two ways the README gives to guard such agents. No tools:
the replies are the same ``LINES`` as the first scenario and call none, and a tool the model
never calls would only add a node that never runs, while one it does call would change the
turns being compared.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

# Imported before any guard is built: a guard imports structlog on a background thread
# (``kinguard.logs.warm_up``), which would otherwise share the GIL with the timed rounds of
# whichever variant runs first. The benchmarks measure the steady state; start-up has its own.
import structlog  # noqa: F401
from kinguard_langgraph import KinGuardMiddleware, guard_graph
from kinguard_langgraph._scripted import ScriptedChatModel, script_graph, start
from langchain.agents import create_agent
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import HumanMessage
from langgraph.graph import END, START, MessagesState, StateGraph

from kinguard import AgentProfile, KinGuard
from kinguard.detectors import StatisticalDetector, default_detectors
from kinguard.testing import PassThroughGuard, interleaved_medians

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
AGENT_VARIANTS = ("bare", "guarded", "adapter_only", "middleware", "middleware_adapter_only")


def make_guard(variant: str) -> KinGuard:
    """The guard of ``variant``: its detectors (none if unnamed here), or a pass-through."""
    guard_type = PassThroughGuard if variant.endswith("adapter_only") else KinGuard
    detectors = {
        "guarded": None,
        "middleware": None,
        "lexical": default_detectors(statistical=False),
    }
    return guard_type(
        [AgentProfile(name=n, model="openai:gpt-4o", principal=f"{n} corp") for n in NAMES],
        identity="disassociate",
        detectors=detectors.get(variant, []),
    )


def models() -> dict[str, BaseChatModel]:
    return {name: ScriptedChatModel(replies=LINES[name], record_inputs=False) for name in NAMES}


ORDER = [NAMES[i % len(NAMES)] for i in range(TURNS)]
PROMPTS = {n: f"You negotiate for {n}." for n in NAMES}
CONFIG: Any = {"recursion_limit": 4 * TURNS}


def build(variant: str) -> Callable[[], Any]:
    builder = script_graph(ORDER, models(), PROMPTS)
    if variant == "bare":
        graph: Any = builder.compile()
    else:
        graph = guard_graph(builder, make_guard(variant)).compile()

    def run() -> Any:
        out = graph.invoke(start(), CONFIG)
        assert out["turn"] == TURNS
        return out

    return run


def build_agents(variant: str) -> Callable[[], Any]:
    """The script on ``create_agent`` agents, each a node of a parent graph."""
    guard = None if variant == "bare" else make_guard(variant)
    in_agents = variant.startswith("middleware")
    builder: StateGraph[Any, Any, Any, Any] = StateGraph(MessagesState)
    for name, model in models().items():
        middleware = [KinGuardMiddleware(guard, agent_name=name)] if guard and in_agents else []
        agent = create_agent(
            model, tools=[], system_prompt=PROMPTS[name], name=name, middleware=middleware
        )
        builder.add_node(name, agent)

    def route(state: MessagesState) -> str:
        # Each turn adds one message (an agent's reply) after the task.
        turn = len(state["messages"]) - 1
        return ORDER[turn] if turn < TURNS else END

    destinations = [*NAMES, END]
    builder.add_conditional_edges(START, route, destinations)
    for name in NAMES:
        builder.add_conditional_edges(name, route, destinations)
    graph = (builder if guard is None or in_agents else guard_graph(builder, guard)).compile()

    def run() -> Any:
        out = graph.invoke({"messages": [HumanMessage("Begin.")]}, CONFIG)
        assert [m.name for m in out["messages"][1:]] == ORDER
        return out

    return run


def interleave(
    benchmark: Any, capsys: pytest.CaptureFixture[str], runs: dict[str, Callable[[], Any]]
) -> None:
    """Time ``runs`` interleaved, report each over ``bare``; then time ``guarded`` for the table."""
    medians = interleaved_medians(runs, rounds=40)
    ratios = {variant: medians[variant] / medians["bare"] for variant in runs if variant != "bare"}
    for variant in runs:
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
    interleave(benchmark, capsys, {variant: build(variant) for variant in VARIANTS})


@pytest.mark.benchmark(group="langgraph-ratio")
def test_agents_guarded_over_bare(benchmark: Any, capsys: pytest.CaptureFixture[str]) -> None:
    interleave(benchmark, capsys, {variant: build_agents(variant) for variant in AGENT_VARIANTS})
