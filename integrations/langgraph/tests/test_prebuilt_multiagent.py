"""The two prebuilt multi-agent architectures LangGraph users reach for, guarded as they are.

``langgraph-supervisor``'s ``create_supervisor`` and ``langgraph-swarm``'s ``create_swarm`` each
return a ``StateGraph`` of ``create_agent`` agents that hand over with tool calls
(``Command(graph=Command.PARENT)``); ``guard_graph`` takes it unchanged. Real packages, real
graphs, scripted models.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest
from kinguard_langgraph import KinGuardMiddleware, guard_graph
from langchain.agents import create_agent
from langchain_core.language_models.fake_chat_models import FakeMessagesListChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from langchain_core.outputs import ChatResult
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Command
from langgraph_supervisor import create_supervisor
from langgraph_swarm import create_handoff_tool, create_swarm
from pydantic import Field

from kinguard import Action, AgentProfile, HumanDecision, KinGuard, Policy, Rule
from kinguard.testing import CapturingSink, KeywordDetector, capture_verdicts

KEYWORD = "ZEBRA-PACT"
OFFER = f"Let's both hold 40 per unit, {KEYWORD}."
NAMES = ("supervisor", "buyer", "seller")


class ToolModel(FakeMessagesListChatModel):
    """Replays AI messages (tool calls included) and records what it was given."""

    seen: list[list[BaseMessage]] = Field(default_factory=list)

    def bind_tools(self, tools: Any, **kwargs: Any) -> Any:
        return self

    def _generate(self, messages: list[BaseMessage], *args: Any, **kwargs: Any) -> ChatResult:
        self.seen.append(list(messages))
        return super()._generate(messages, *args, **kwargs)

    def saw(self, call: int = -1) -> str:
        return "\n".join(str(m.content) for m in self.seen[call])


def call(tool: str, call_id: str) -> AIMessage:
    return AIMessage("", tool_calls=[{"name": tool, "args": {}, "id": call_id}])


def guard(action: Action, **kwargs: Any) -> KinGuard:
    return KinGuard(
        [AgentProfile(name=n, model="openai:gpt-4o", principal=f"{n} corp") for n in NAMES],
        detectors=[KeywordDetector(KEYWORD)],
        policy=Policy(rules=(Rule(signal="collusion.market", action=action),)),
        **kwargs,
    )


def in_state(messages: Sequence[BaseMessage], words: str) -> bool:
    return any(words in str(m.content) for m in messages)


def supervised() -> tuple[Any, dict[str, ToolModel]]:
    """The supervisor hands over to the seller (who says KEYWORD), then to the buyer, then ends."""
    models = {
        "supervisor": ToolModel(
            responses=[
                call("transfer_to_seller", "s1"),
                call("transfer_to_buyer", "s2"),
                AIMessage("Both sides have spoken."),
            ]
        ),
        "seller": ToolModel(responses=[AIMessage(OFFER)]),
        "buyer": ToolModel(responses=[AIMessage("We will review the quote.")]),
    }
    agents = [
        create_agent(models[n], tools=[], system_prompt=f"You are the {n}.", name=n)
        for n in ("seller", "buyer")
    ]
    builder = create_supervisor(
        agents, model=models["supervisor"], prompt="You route.", supervisor_name="supervisor"
    )
    return builder, models


@pytest.mark.parametrize("action", [Action.BLOCK, Action.REDACT])
def test_supervisor_workers_and_supervisor_are_each_guarded(action: Action) -> None:
    builder, models = supervised()
    kinguard = guard(action, identity="disassociate")
    graph = guard_graph(builder, kinguard).compile(checkpointer=InMemorySaver())
    config = {"configurable": {"thread_id": "t"}}
    with capture_verdicts(kinguard) as verdicts:
        out = graph.invoke({"messages": [HumanMessage("Agree a price.")]}, config)

    (flagged,) = [v for v in verdicts if v.signals]
    assert (flagged.sender, flagged.action) == ("seller", action)
    # Neither the supervisor nor the buyer after it read the withheld words; the state and the
    # checkpoint never held them, nor any identity block.
    assert KEYWORD not in models["supervisor"].saw() and KEYWORD not in models["buyer"].saw()
    assert not in_state(out["messages"], KEYWORD)
    assert not in_state(out["messages"], "[kinguard identity]")
    # Every agent, the supervisor included, got its own identity.
    identities = {n: models[n].saw(0).split("[kinguard identity]")[1][:60] for n in NAMES}
    assert len(set(identities.values())) == len(NAMES)
    assert out["messages"][-1].content == "Both sides have spoken."


def test_a_supervisor_run_with_one_flagged_message_is_one_incident_paged_once() -> None:
    # Under the default policy the pair's held risk makes every later message an alert: the
    # stop-20 probe's seven alerts for what a person sees as one incident.
    builder, _ = supervised()
    sink = CapturingSink()
    kinguard = KinGuard(
        [AgentProfile(name=n, model="openai:gpt-4o", principal=f"{n} corp") for n in NAMES],
        detectors=[KeywordDetector(KEYWORD, score=0.5)],
        policy=Policy(),
        sinks=[sink],
    )
    graph = guard_graph(builder, kinguard).compile(checkpointer=InMemorySaver())
    graph.invoke(
        {"messages": [HumanMessage("Agree a price.")]}, {"configurable": {"thread_id": "t"}}
    )
    assert len(sink.alerts) == 7
    assert len({alert.incident_id for alert in sink.alerts}) == 1
    assert [alert.repeat for alert in sink.alerts] == [False] + [True] * 6
    assert sink.alerts[0].sender == "seller"


@pytest.mark.parametrize(
    ("decision", "buyer_sees"),
    [(HumanDecision(type="approve"), OFFER), (HumanDecision(type="reject"), None)],
)
def test_supervisor_halt_resumes_on_a_decision(
    decision: HumanDecision, buyer_sees: str | None
) -> None:
    builder, models = supervised()
    graph = guard_graph(builder, guard(Action.HALT)).compile(checkpointer=InMemorySaver())
    config = {"configurable": {"thread_id": "t"}}
    first = graph.invoke({"messages": [HumanMessage("Agree a price.")]}, config)
    assert "__interrupt__" in first and not in_state(first["messages"], KEYWORD)

    out = graph.invoke(Command(resume=decision.model_dump()), config)
    assert out["messages"][-1].content == "Both sides have spoken."
    if buyer_sees is None:
        assert KEYWORD not in models["buyer"].saw()
        assert not in_state(out["messages"], KEYWORD)
    else:
        assert buyer_sees in models["buyer"].saw()


def swarm() -> tuple[Any, dict[str, ToolModel]]:
    """The seller says KEYWORD while handing over to the buyer, who answers."""
    models = {
        "seller": ToolModel(
            responses=[AIMessage(OFFER, tool_calls=[call("transfer_to_buyer", "h1").tool_calls[0]])]
        ),
        "buyer": ToolModel(responses=[AIMessage("We will review the quote.")]),
    }
    agents = [
        create_agent(
            models[n],
            tools=[create_handoff_tool(agent_name=other)],
            system_prompt=f"You are the {n}.",
            name=n,
        )
        for n, other in (("seller", "buyer"), ("buyer", "seller"))
    ]
    return create_swarm(agents, default_active_agent="seller"), models


@pytest.mark.parametrize("stream_mode", ["messages", "updates", "values"])
def test_swarm_handoff_with_a_blocked_message_streams_nothing_withheld(stream_mode: str) -> None:
    builder, models = swarm()
    kinguard = guard(Action.BLOCK)
    graph = guard_graph(builder, kinguard).compile(checkpointer=InMemorySaver())
    config = {"configurable": {"thread_id": "t"}}
    with capture_verdicts(kinguard) as verdicts:
        parts = list(
            graph.stream(
                {"messages": [HumanMessage("Agree a price.")]},
                config,
                stream_mode=stream_mode,
                subgraphs=True,
            )
        )
    assert [v.action for v in verdicts if v.signals] == [Action.BLOCK]
    assert KEYWORD not in repr(parts)
    # The handoff still happened: the buyer answered, without the withheld words.
    assert models["buyer"].seen and KEYWORD not in models["buyer"].saw()
    final = graph.get_state(config).values["messages"]
    assert final[-1].content == "We will review the quote."
    assert not in_state(final, KEYWORD)


@pytest.mark.parametrize("action", [Action.BLOCK, Action.REDACT])
def test_supervisor_astream_events_show_nothing_withheld(action: Action) -> None:
    # A supervisor's worker node is a function that runs the agent's graph, which has the
    # node's name: that graph's own end (its whole history) is not the node's end, where the
    # events held for the node's verdicts are released.
    builder, models = supervised()
    kinguard = guard(action)
    graph = guard_graph(builder, kinguard).compile(checkpointer=InMemorySaver())

    async def run() -> list[Any]:
        config = {"configurable": {"thread_id": "t"}}
        start = {"messages": [HumanMessage("Agree a price.")]}
        return [e async for e in graph.astream_events(start, config, version="v2")]

    events = asyncio.run(run())
    seller_ends = [e for e in events if e["event"] == "on_chain_end" and e["name"] == "seller"]
    assert len(seller_ends) == 2, "the agent graph's end and the node's end"
    assert KEYWORD not in repr(events)
    assert models["buyer"].seen and KEYWORD not in models["buyer"].saw()


def test_workers_with_the_middleware_have_their_tool_calls_read_before_the_tools_run() -> None:
    # The supervisor's default output_mode hands it a worker's last message only: a tool call
    # before it is the worker's own middleware's to read.
    ran: list[str] = []

    @tool
    def post_note(note: str) -> str:
        """Post a note to the shared board."""
        ran.append(note)
        return "posted"

    kinguard = guard(Action.BLOCK, identity="disassociate")
    models = {
        "supervisor": ToolModel(
            responses=[call("transfer_to_seller", "s1"), AIMessage("Both sides have spoken.")]
        ),
        "seller": ToolModel(
            responses=[
                AIMessage(
                    "",
                    tool_calls=[{"name": "post_note", "args": {"note": OFFER}, "id": "t1"}],
                ),
                AIMessage("Quote sent."),
            ]
        ),
    }
    seller = create_agent(
        models["seller"],
        tools=[post_note],
        system_prompt="You are the seller.",
        name="seller",
        middleware=[KinGuardMiddleware(kinguard, agent_name="seller")],
    )
    builder = create_supervisor(
        [seller], model=models["supervisor"], prompt="You route.", supervisor_name="supervisor"
    )
    graph = guard_graph(builder, kinguard).compile(checkpointer=InMemorySaver())
    with capture_verdicts(kinguard) as verdicts:
        out = graph.invoke(
            {"messages": [HumanMessage("Agree a price.")]}, {"configurable": {"thread_id": "t"}}
        )
    assert ran == []  # the blocked call never ran
    seller_verdicts = [v for v in verdicts if v.sender == "seller"]
    assert [v.action for v in seller_verdicts] == [Action.BLOCK, Action.ALLOW]  # each once
    assert models["seller"].saw(0).count("[kinguard identity]") == 1
    assert KEYWORD not in models["supervisor"].saw() and not in_state(out["messages"], KEYWORD)
