"""guard_team on real RoundRobin, Selector and Swarm teams of AssistantAgents (replayed models)."""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, Callable, Sequence
from types import SimpleNamespace
from typing import Any, Literal

import PIL.Image
import pytest
from autogen_agentchat.agents import (
    ApprovalRequest,
    ApprovalResponse,
    BaseChatAgent,
    CodeExecutorAgent,
    MessageFilterAgent,
    MessageFilterConfig,
    PerSourceFilter,
    SocietyOfMindAgent,
    UserProxyAgent,
)
from autogen_agentchat.base import Handoff, Response, TaskResult, TerminationCondition
from autogen_agentchat.conditions import (
    FunctionCallTermination,
    HandoffTermination,
    MaxMessageTermination,
    TextMentionTermination,
)
from autogen_agentchat.messages import (
    BaseAgentEvent,
    BaseChatMessage,
    HandoffMessage,
    MultiModalMessage,
    StopMessage,
    StructuredMessage,
    TextMessage,
    ToolCallExecutionEvent,
    ToolCallRequestEvent,
    ToolCallSummaryMessage,
)
from autogen_agentchat.teams import (
    DiGraphBuilder,
    GraphFlow,
    RoundRobinGroupChat,
    SelectorGroupChat,
    Swarm,
)
from autogen_agentchat.teams._group_chat._events import GroupChatMessage
from autogen_agentchat.tools import AgentTool, TeamTool
from autogen_agentchat.ui import Console
from autogen_core import (
    AgentId,
    CancellationToken,
    DefaultInterventionHandler,
    FunctionCall,
    Image,
    MessageContext,
    SingleThreadedAgentRuntime,
)
from autogen_core.models import (
    AssistantMessage,
    CreateResult,
    FunctionExecutionResult,
    FunctionExecutionResultMessage,
    RequestUsage,
    UserMessage,
)
from autogen_core.tools import FunctionTool, StaticStreamWorkbench, StaticWorkbench
from autogen_ext.code_executors.local import LocalCommandLineCodeExecutor
from autogen_ext.models.replay import ReplayChatCompletionClient
from kinguard_autogen import (
    META_ACTION,
    KinGuardTermination,
    KinGuardVerdictEvent,
    guard_team,
    kinguard_action,
    pending_halt,
    resolve_halt,
    team_guard,
    unguard_team,
)
from kinguard_autogen._graph import _Resuming
from kinguard_autogen._team import _installed
from kinguard_autogen._termination import HaltOrTermination
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from pydantic import BaseModel
from structlog.testing import capture_logs

from kinguard import Action, AgentProfile, HumanDecision, KinGuard, Policy, Rule
from kinguard.identity import IDENTITY_MARKER
from kinguard.testing import KeywordDetector, capture_verdicts, halt_beside


def pair(kit: SimpleNamespace, buyer: Sequence[str], seller: Sequence[str]) -> list[Any]:
    return [
        kit.agent("buyer", buyer, "You buy for ACME."),
        kit.agent("seller", seller, "You sell for Globex."),
    ]


def round_robin(kit: SimpleNamespace, n: int = 4, **kwargs: Any) -> RoundRobinGroupChat:
    agents = pair(
        kit,
        ["b1 opening", f"b2 let us agree {kit.KEYWORD}", "b3", "b4", "b5", "b6"],
        ["s1 list price 42", "s2", "s3", "s4", "s5", "s6"],
    )
    return RoundRobinGroupChat(agents, termination_condition=MaxMessageTermination(n + 1), **kwargs)


def guarded_trio(agents: list[Any], guard: KinGuard) -> RoundRobinGroupChat:
    """A guarded round robin of ``agents`` that stops after the task and two messages."""
    return guard_team(
        RoundRobinGroupChat(agents, termination_condition=MaxMessageTermination(3)), guard
    )


# -- each team type, each action --------------------------------------------------------


@pytest.mark.parametrize("kind", ["round_robin", "selector", "swarm"])
async def test_redact_reaches_every_other_agent_and_the_result(
    kit: SimpleNamespace, kind: str
) -> None:
    guard = kit.keyword_guard("redact")
    flagged = f"I propose {kit.KEYWORD} on price."
    if kind == "swarm":
        buyer = kit.agent(
            "buyer", [flagged, kit.handoff("seller", "c1")], "You buy.", handoffs=["seller"]
        )
        seller = kit.agent("seller", ["s1", "s2"], "You sell.", handoffs=["buyer"])
        team: Any = Swarm([buyer, seller], termination_condition=MaxMessageTermination(5))
    else:
        buyer, seller = pair(kit, [flagged, "b2"], ["s1", "s2"])
        if kind == "selector":
            order = iter(["buyer", "seller", "buyer", "seller"])
            team = SelectorGroupChat(
                [buyer, seller],
                model_client=ReplayChatCompletionClient([]),
                selector_func=lambda _thread: next(order),
                termination_condition=MaxMessageTermination(4),
            )
        else:
            team = RoundRobinGroupChat(
                [buyer, seller], termination_condition=MaxMessageTermination(4)
            )
    guard_team(team, guard)

    result = await team.run(task="Negotiate.")

    texts = [m.to_text() for m in result.messages if isinstance(m, BaseChatMessage)]
    assert not any(kit.KEYWORD in t for t in texts)
    assert any("[redacted by kinguard: collusion.market]" in t for t in texts)
    assert kit.KEYWORD not in kit.seen_by(seller, 0)
    assert "[redacted by kinguard: collusion.market]" in kit.seen_by(seller, 0)
    # The sender keeps its own words: only what others receive is rewritten.
    assert kit.KEYWORD in kit.seen_by(buyer, -1)


async def test_swarm_block_keeps_the_handoff_working(kit: SimpleNamespace) -> None:
    buyer = kit.agent(
        "buyer", [kit.handoff("seller", "c1"), "b2 thanks"], "You buy.", handoffs=["seller"]
    )
    seller = kit.agent(
        "seller",
        [f"quote {kit.KEYWORD}", kit.handoff("buyer", "c2")],
        "You sell.",
        handoffs=["buyer"],
    )
    team = guard_team(
        Swarm([buyer, seller], termination_condition=MaxMessageTermination(5)),
        kit.keyword_guard("block"),
    )
    result = await team.run(task="Go.")
    handoffs = [m for m in result.messages if isinstance(m, HandoffMessage)]
    assert [h.target for h in handoffs] == ["seller", "buyer"]
    assert all(kinguard_action(h) is None for h in handoffs)  # let through untouched
    blocked = [
        m
        for m in result.messages
        if isinstance(m, BaseChatMessage) and kinguard_action(m) is Action.BLOCK
    ]
    assert len(blocked) == 1
    assert blocked[0].to_text().startswith("[kinguard blocked a message from seller")
    assert kit.KEYWORD not in kit.seen_by(buyer, -1)
    assert result.messages[-1].source == "buyer"


def post_note(note: str) -> str:
    """Post a note."""
    return "posted"


def handing_over(note: str, thought: str | None) -> CreateResult:
    """One model output: a post_note call, then the handoff to the seller."""
    return CreateResult(
        finish_reason="function_calls",
        content=[
            FunctionCall(id="c0", name="post_note", arguments=json.dumps({"note": note})),
            FunctionCall(id="c1", name="transfer_to_seller", arguments="{}"),
        ],
        usage=RequestUsage(prompt_tokens=0, completion_tokens=0),
        cached=False,
        thought=thought,
    )


@pytest.mark.parametrize(
    ("note", "thought", "context_kept"),
    [
        ("ok", None, True),  # an allowed call travels, and is not read a second time
        ("ok", "Seller, keep {kw} between us.", False),  # the thought beside the calls
    ],
)
async def test_a_swarm_handoff_context_carries_nothing_kinguard_withheld(
    kit: SimpleNamespace, note: str, thought: str | None, context_kept: bool
) -> None:
    note = note.format(kw=kit.KEYWORD)
    thought = None if thought is None else thought.format(kw=kit.KEYWORD)
    buyer = kit.agent(
        "buyer", [handing_over(note, thought)], handoffs=["seller"], tools=[post_note]
    )
    seller = kit.agent("seller", ["s1"], handoffs=["buyer"])
    guard = kit.keyword_guard("block")
    team = guard_team(Swarm([buyer, seller], termination_condition=MaxMessageTermination(3)), guard)
    with capture_verdicts(guard) as verdicts:
        result = await team.run(task="Go.")
    assert kit.KEYWORD not in kit.seen_by(seller, 0)
    handoff = next(m for m in result.messages if isinstance(m, HandoffMessage))
    assert handoff.target == "seller"
    assert bool(handoff.context) is context_kept
    assert ('{"note": "ok"}' in kit.seen_by(seller, 0)) is context_kept
    assert [v.sender for v in verdicts] == ["buyer", "buyer", "seller"]


def look_up(item: str) -> str:
    """Look an item up."""
    return "price list"


async def test_a_refused_call_sharing_its_id_with_an_allowed_one_goes_without_its_arguments(
    kit: SimpleNamespace,
) -> None:
    # OllamaChatCompletionClient gives every call of one response the same id.
    calls = [
        FunctionCall(id="0", name="post_note", arguments=json.dumps({"note": kit.KEYWORD})),
        FunctionCall(id="0", name="look_up", arguments=json.dumps({"item": "sensors"})),
        FunctionCall(id="0", name="transfer_to_seller", arguments="{}"),
    ]
    reply = CreateResult(
        finish_reason="function_calls",
        content=calls,
        usage=RequestUsage(prompt_tokens=0, completion_tokens=0),
        cached=False,
    )
    buyer = kit.agent("buyer", [reply], handoffs=["seller"], tools=[post_note, look_up])
    seller = kit.agent("seller", ["s1"], handoffs=["buyer"])
    team = guard_team(
        Swarm([buyer, seller], termination_condition=MaxMessageTermination(3)),
        kit.keyword_guard("block"),
    )
    result = await team.run(task="Go.")
    handoff = next(m for m in result.messages if isinstance(m, HandoffMessage))
    assert handoff.target == "seller"
    assert kit.KEYWORD not in kit.seen_by(seller, 0)
    # Told apart by their names: the refused call alone lost its arguments.
    said = [m for m in kit.model_calls(seller)[0] if isinstance(m, AssistantMessage)]
    assert [(c.name, c.arguments) for c in said[0].content] == [
        ("post_note", "{}"),
        ("look_up", '{"item": "sensors"}'),
    ]


async def test_nudge_reaches_only_the_flagged_agent_on_its_next_call(kit: SimpleNamespace) -> None:
    team = round_robin(kit, n=6)
    buyer, seller = team._participants
    guard_team(team, kit.keyword_guard("nudge"))
    result = await team.run(task="Negotiate.")
    assert [kinguard_action(m) for m in result.messages if isinstance(m, BaseChatMessage)][3] is (
        Action.NUDGE
    )
    assert "[kinguard reminder]" not in kit.seen_by(buyer, 1)
    assert "[kinguard reminder]" in kit.seen_by(buyer, 2)
    assert all("[kinguard reminder]" not in kit.seen_by(seller, i) for i in range(3))
    assert kit.KEYWORD in kit.seen_by(seller, 1)  # a nudge delivers the message as it was


async def test_block_replaces_the_message_with_a_notice(kit: SimpleNamespace) -> None:
    team = round_robin(kit)
    seller = team._participants[1]
    guard_team(team, kit.keyword_guard("block"))
    result = await team.run(task="Negotiate.")
    assert [s for s, _ in kit.chat(result)] == ["user", "buyer", "seller", "buyer", "seller"]
    notice = kit.chat(result)[3][1]
    assert notice.startswith("[kinguard blocked a message from buyer")
    assert kit.KEYWORD not in kit.seen_by(seller, 1)
    assert notice in kit.seen_by(seller, 1)


_BLOCKED = "[kinguard blocked {what}: collusion.market]"


@pytest.mark.parametrize(
    ("word", "sender", "says", "action", "notice"),
    [
        # The notice names the agent, and the signal, and must say no more.
        ("TERMINATE", "TERMINATE_bot", "b1 {kw}", "block", "a message from TERMINATE_bot"),
        ("TERMINATE", "TERMINATE_bot", "b1 {kw}", "halt", None),
        ("market", "buyer", "b1 {kw}", "block", "a message from buyer"),
        ("market", "buyer", "call", "block", "the call to post_note"),  # a refused call's
        ("TERMINATE", "buyer", "b1 {kw} TERMINATE", "block", "a message from buyer"),
        ("TERMINATE", "buyer", "b1 {kw} TERMINATE", "redact", None),  # the word is delivered
    ],
)
async def test_a_text_mention_termination_ends_the_run_only_on_words_delivered(
    kit: SimpleNamespace, word: str, sender: str, says: str, action: str, notice: str | None
) -> None:
    first: str | CreateResult = says.format(kw=kit.KEYWORD)
    if says == "call":
        first = kit.tool_call("post_note", "c1", json.dumps({"note": kit.KEYWORD}))
    agents = [
        kit.agent(sender, [first, "b2"], tools=[post_note]),
        kit.agent("seller", ["s1"]),
    ]
    stop = TextMentionTermination(word) | MaxMessageTermination(4)
    team = guard_team(
        RoundRobinGroupChat(agents, termination_condition=stop), kit.keyword_guard(action)
    )
    result = await team.run(task="Go.")
    ends = action == "redact"
    assert (f"Text '{word}' mentioned" in (result.stop_reason or "")) is ends
    if notice is not None:
        # It still reads as it did, to a person's eye and an agent's.
        said = kit.chat(result)[1][1]
        assert word not in said
        assert said.replace("\u2060", "") == _BLOCKED.format(what=notice)


async def test_a_notice_keeps_clear_of_the_words_of_a_name_inside_another_name(
    kit: SimpleNamespace,
) -> None:
    # The sender's name is part of the signal's: made safe first, it hid the signal's name
    # from its own turn, which left "collusion" in the notice.
    agents = [kit.agent("market", [f"b1 {kit.KEYWORD}", "b2"]), kit.agent("seller", ["s1"])]
    stop = (
        TextMentionTermination("market")
        | TextMentionTermination("collusion")
        | MaxMessageTermination(4)
    )
    team = guard_team(
        RoundRobinGroupChat(agents, termination_condition=stop), kit.keyword_guard("block")
    )
    result = await team.run(task="Go.")
    assert "mentioned" not in (result.stop_reason or "")
    said = kit.chat(result)[1][1]
    assert said.replace("\u2060", "") == _BLOCKED.format(what="a message from market")


async def test_a_nested_teams_notice_keeps_clear_of_the_words_the_team_around_it_watches_for(
    kit: SimpleNamespace,
) -> None:
    bot = kit.agent("TERMINATE_bot", [f"a1 {kit.KEYWORD}", "a2"])
    inner = RoundRobinGroupChat(
        [bot, kit.agent("checker", ["c1", "c2"])],
        termination_condition=MaxMessageTermination(3),
        name="desk",
    )
    guard_team(inner, kit.keyword_guard("block", conversation_id="inner"))
    stop = TextMentionTermination("TERMINATE") | MaxMessageTermination(5)
    outer = RoundRobinGroupChat(
        [kit.agent("lead", ["l1", "l2"]), inner], termination_condition=stop
    )
    guard_team(outer, kit.keyword_guard("log", conversation_id="outer"))
    result = await outer.run(task="Go.")
    # Neither the notice nor the verdict event (both reach the outer team's condition).
    assert "Text 'TERMINATE' mentioned" not in (result.stop_reason or "")
    assert any(source == "TERMINATE_bot" for source, _ in kit.chat(result))


# -- halt and human decisions -----------------------------------------------------------


@pytest.mark.parametrize(
    ("decision", "others_see"),
    [
        (HumanDecision(type="reject"), None),
        (HumanDecision(type="approve"), "b2 let us agree ZEBRA-PACT"),
        (HumanDecision(type="edit", text="b2 (edited by a person)"), "b2 (edited by a person)"),
    ],
)
async def test_halt_stops_withholds_and_resumes_on_a_decision(
    kit: SimpleNamespace, decision: HumanDecision, others_see: str | None
) -> None:
    team = round_robin(kit, n=6)
    buyer, seller = team._participants
    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    guard_team(team, kit.keyword_guard("halt", tracer_provider=provider))

    first = await team.run(task="Negotiate.")
    assert first.stop_reason is not None
    assert first.stop_reason.startswith("kinguard halted: message from buyer")
    assert isinstance(first.messages[-1], KinGuardVerdictEvent)
    assert first.messages[-1].verdict.action is Action.HALT
    halted = pending_halt(team)
    assert halted is not None and halted.sender == "buyer"
    assert kit.KEYWORD not in "".join(t for _, t in kit.chat(first))

    task = resolve_halt(team, decision)
    assert pending_halt(team) is None
    # The ruling leaves the same audit trail as in every adapter: a kinguard.decide span.
    (ruling,) = [s for s in spans.get_finished_spans() if s.name == "kinguard.decide"]
    assert ruling.attributes["kinguard.decision"] == decision.type
    assert ruling.attributes["kinguard.message.id"] == halted.message_id
    second = await team.run(task=task)

    after = kit.seen_by(seller, 1)
    # Whatever the decision, the withheld original never leaks through the resumed team.
    if others_see is None:
        assert task is None
        assert kit.KEYWORD not in after
    else:
        assert task is not None and task.source == "buyer"
        assert others_see in after
        assert kit.chat(second)[0] == ("buyer", others_see)
        # The sender is not handed its own message back as if someone else had said it.
        assert not any(
            type(m).__name__ == "UserMessage" and getattr(m, "source", None) == "buyer"
            for m in kit.model_calls(buyer)[-1]
        )
    assert second.stop_reason is not None and "Maximum number of messages" in second.stop_reason


async def test_resolve_halt_needs_a_halt(kit: SimpleNamespace) -> None:
    team = guard_team(round_robin(kit), kit.keyword_guard("log"))
    with pytest.raises(ValueError, match="no halted message"):
        resolve_halt(team, HumanDecision(type="approve"))
    with pytest.raises(ValueError, match="not guarded"):
        resolve_halt(round_robin(kit), HumanDecision(type="approve"))


async def test_running_again_without_a_decision_keeps_the_message_withheld(
    kit: SimpleNamespace,
) -> None:
    team = round_robin(kit, n=6)
    seller = team._participants[1]
    guard_team(team, kit.keyword_guard("halt"))
    await team.run(task="Negotiate.")
    await team.run()
    assert pending_halt(team) is None
    assert kit.KEYWORD not in kit.seen_by(seller, -1)


# -- streaming --------------------------------------------------------------------------


async def test_run_stream_yields_verdict_events_after_their_message(kit: SimpleNamespace) -> None:
    team = guard_team(round_robin(kit), kit.keyword_guard("redact"))
    items: list[BaseAgentEvent | BaseChatMessage | TaskResult] = [
        item async for item in team.run_stream(task="Negotiate.")
    ]
    assert isinstance(items[-1], TaskResult)
    events = [i for i, item in enumerate(items) if isinstance(item, KinGuardVerdictEvent)]
    assert len(events) == 1
    event = items[events[0]]
    flagged = items[events[0] - 1]
    assert isinstance(event, KinGuardVerdictEvent) and isinstance(flagged, BaseChatMessage)
    assert event.verdict.action is Action.REDACT
    assert event.verdict.sender == flagged.source == "buyer"
    assert flagged.metadata[META_ACTION] == "redact"
    assert "collusion.market" in event.to_text()
    assert event in items[-1].messages
    # The event survives AgentChat's own serialisation of results.
    assert KinGuardVerdictEvent.load(event.dump()).verdict == event.verdict


async def test_an_agent_run_on_its_own_still_ends_its_stream_with_its_result(
    kit: SimpleNamespace,
) -> None:
    buyer = kit.agent("buyer", [f"alone {kit.KEYWORD}"])
    guard_team(
        RoundRobinGroupChat([buyer, kit.agent("seller", ["s1"])]), kit.keyword_guard("redact")
    )
    items = [item async for item in buyer.run_stream(task="On your own.")]
    # AgentChat's contract: the result comes last; the verdict event still follows nothing
    # the app was not shown, coming right before the message it is about.
    assert isinstance(items[-1], TaskResult)
    assert [type(item) for item in items[1:3]] == [KinGuardVerdictEvent, TextMessage]
    assert kit.KEYWORD not in items[2].to_text()  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("action", "capture"), [("block", False), ("halt", False), ("redact", False), ("halt", True)]
)
async def test_verdict_events_quote_withheld_words_only_when_content_is_captured(
    kit: SimpleNamespace, action: str, capture: bool
) -> None:
    guard = kit.keyword_guard(action, capture_content=capture)
    team = guard_team(round_robin(kit), guard)
    result = await team.run(task="Negotiate.")
    events = [m for m in result.messages if isinstance(m, KinGuardVerdictEvent)]
    assert events and events[0].verdict.signals[0].evidence  # offsets stay
    assert (kit.KEYWORD in events[0].model_dump_json()) is capture
    if action == "redact":  # what the others were given may be shown
        assert events[0].verdict.delivered_text == (
            "b2 let us agree [redacted by kinguard: collusion.market]"
        )
    if action == "halt":  # the reviewer still has the whole verdict
        halted = pending_halt(team)
        assert halted is not None and kit.KEYWORD in (halted.delivered_text or "")


@pytest.mark.parametrize("events", ["all", "none"])
async def test_event_modes(kit: SimpleNamespace, events: Any) -> None:
    team = guard_team(round_robin(kit), kit.keyword_guard("log"), events=events)
    result = await team.run(task="Negotiate.")
    streamed = [m for m in result.messages if isinstance(m, KinGuardVerdictEvent)]
    assert len(streamed) == (4 if events == "all" else 0)


async def test_console_prints_verdicts(
    kit: SimpleNamespace, capsys: pytest.CaptureFixture[str]
) -> None:
    team = guard_team(round_robin(kit), kit.keyword_guard("block"))
    result = await Console(team.run_stream(task="Negotiate."))
    out = capsys.readouterr().out
    assert "KinGuardVerdictEvent (kinguard)" in out
    assert "kinguard block · buyer → seller · collusion.market 0.90" in out
    assert result.stop_reason is not None


async def test_streamed_model_chunks_still_end_in_a_guarded_message(kit: SimpleNamespace) -> None:
    buyer = kit.agent("buyer", [f"b1 {kit.KEYWORD}", "b2"], model_client_stream=True)
    seller = kit.agent("seller", ["s1", "s2"])
    team = guarded_trio([buyer, seller], kit.keyword_guard("block"))
    result = await Console(team.run_stream(task="Go."))
    assert kit.chat(result)[1][1].startswith("[kinguard blocked")
    assert kit.KEYWORD not in kit.seen_by(seller, 0)


# -- identity ---------------------------------------------------------------------------


@pytest.mark.parametrize("identity", ["disclose", "disassociate", "conceal", "none"])
async def test_identity_goes_into_each_system_message(kit: SimpleNamespace, identity: str) -> None:
    team = round_robin(kit, n=2)
    buyer, seller = team._participants
    guard = kit.keyword_guard("log", identity=identity)
    guard_team(team, guard)
    await team.run(task="Negotiate.")
    for a, base in ((buyer, "You buy for ACME."), (seller, "You sell for Globex.")):
        system = kit.model_calls(a)[0][0].content
        assert system.startswith(base)
        block = guard.identity_block(a.name)
        if identity == "none":
            assert block is None and IDENTITY_MARKER not in system
        else:
            assert block is not None and system.count(IDENTITY_MARKER) == 1
            assert block in system


async def test_conceal_strips_identity_cues_between_agents(kit: SimpleNamespace) -> None:
    buyer, seller = pair(kit, ["Speaking as GPT-4o from OpenAI, hello.", "b2"], ["s1", "s2"])
    team = guarded_trio([buyer, seller], kit.keyword_guard("log", identity="conceal"))
    result = await team.run(task="Go.")
    assert "GPT-4o" not in kit.chat(result)[1][1]
    assert "GPT-4o" not in kit.seen_by(seller, 0)


class Scripted(BaseChatAgent):
    """An agent that is not an AssistantAgent: no system message, answers from a list, in
    messages of ``kind`` (a StopMessage is an agent's words too, when an agent says it)."""

    def __init__(
        self,
        name: str,
        lines: Sequence[str],
        kind: type[TextMessage | StopMessage] = TextMessage,
    ) -> None:
        super().__init__(name, description=f"scripted {name}")
        self.lines = list(lines)
        self.kind = kind
        self.received: list[list[str]] = []

    @property
    def produced_message_types(self) -> Sequence[type[BaseChatMessage]]:
        return (self.kind,)

    async def on_messages(
        self, messages: Sequence[BaseChatMessage], cancellation_token: CancellationToken
    ) -> Response:
        self.received.append([f"{m.source}: {m.to_text()}" for m in messages])
        return Response(chat_message=self.kind(source=self.name, content=self.lines.pop(0)))

    async def on_reset(self, cancellation_token: CancellationToken) -> None:
        self.received.clear()

    async def on_messages_stream(
        self, messages: Sequence[BaseChatMessage], cancellation_token: CancellationToken
    ) -> AsyncGenerator[BaseAgentEvent | BaseChatMessage | Response, None]:
        yield await self.on_messages(messages, cancellation_token)


class Announcing(Scripted):
    """Yields its message as soon as it has it, then ends the turn with it as the response."""

    async def on_messages_stream(
        self, messages: Sequence[BaseChatMessage], cancellation_token: CancellationToken
    ) -> AsyncGenerator[BaseAgentEvent | BaseChatMessage | Response, None]:
        response = await self.on_messages(messages, cancellation_token)
        yield response.chat_message
        yield response


async def test_a_message_yielded_and_then_returned_is_inspected_once(
    kit: SimpleNamespace,
) -> None:
    guard = kit.keyword_guard("redact")
    team = guard_team(
        RoundRobinGroupChat(
            [Announcing("buyer", [f"b1 {kit.KEYWORD}"]), Announcing("seller", ["s1"])],
            termination_condition=MaxMessageTermination(3),
        ),
        guard,
    )
    with capture_verdicts(guard) as verdicts:
        result = await team.run(task="Go.")
    assert [v.sender for v in verdicts] == ["buyer", "seller"]
    assert sum(isinstance(m, KinGuardVerdictEvent) for m in result.messages) == 1
    assert not any(kit.KEYWORD in text for _, text in kit.chat(result))


async def test_any_base_chat_agent_is_guarded(kit: SimpleNamespace) -> None:
    buyer = Scripted("buyer", ["b1", f"b2 {kit.KEYWORD}", "b3"])
    seller = Scripted("seller", ["s1", "s2", "s3"])
    guard = kit.keyword_guard("redact", identity="disassociate")
    team = guard_team(
        RoundRobinGroupChat([buyer, seller], termination_condition=MaxMessageTermination(6)), guard
    )
    await team.run(task="Go.")
    block = guard.identity_block("seller")
    assert block is not None
    assert seller.received[0][0] == f"kinguard: {block}"  # identity first, once
    assert sum(block in line for turn in seller.received for line in turn) == 1
    assert any("[redacted by kinguard" in line for line in seller.received[1])
    assert not any(kit.KEYWORD in line for turn in seller.received for line in turn)


# -- installation -----------------------------------------------------------------------


async def test_guard_team_is_idempotent_and_reversible(kit: SimpleNamespace) -> None:
    team = round_robin(kit)
    buyer: Any = team._participants[0]
    runtime: Any = team._runtime
    original_system = list(buyer._system_messages)
    original_termination = team._termination_condition
    guard = kit.keyword_guard("redact", identity="disassociate")
    assert guard_team(guard_team(team, guard), guard) is team
    assert team_guard(team) is guard
    assert "on_messages_stream" in vars(buyer)  # kinguard stands in for the agent's turn
    assert not runtime._intervention_handlers  # and needs nothing from the runtime
    assert buyer._system_messages[0].content.count(IDENTITY_MARKER) == 1
    with pytest.raises(ValueError, match="another KinGuard"):
        guard_team(team, kit.keyword_guard("log"))
    with pytest.raises(ValueError, match="conversation_id='test', events='flagged'"):
        guard_team(team, guard, conversation_id="another")  # not silently ignored
    with pytest.raises(ValueError, match="unguard_team\\(\\) it first to change them"):
        guard_team(team, guard, events="all")

    unguard_team(team)
    assert team_guard(team) is None
    assert "on_messages_stream" not in vars(buyer)
    assert not {"run_stream", "reset", "save_state", "load_state"} & set(vars(team))
    assert buyer._system_messages == original_system
    assert team._termination_condition is original_termination
    result = await team.run(task="Negotiate.")
    assert any(kit.KEYWORD in text for _, text in kit.chat(result))


async def test_guard_team_refuses_what_it_cannot_guard(kit: SimpleNamespace) -> None:
    with pytest.raises(TypeError, match="group chat"):
        guard_team(kit.agent("solo", ["x"]), kit.keyword_guard("log"))
    with pytest.raises(TypeError, match="takes a KinGuard as guard, not NoneType"):
        guard_team(round_robin(kit, n=1), None)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="takes a KinGuard as guard, not str"):
        KinGuardTermination(guard="kinguard.toml")  # type: ignore[arg-type]
    team = round_robin(kit, n=1)
    await team.run(task="Go.")
    with pytest.raises(ValueError, match="before the first run"):
        guard_team(team, kit.keyword_guard("log"))


async def test_a_team_that_already_has_the_termination_can_be_guarded_late(
    kit: SimpleNamespace,
) -> None:
    agents = pair(kit, ["b1", f"b2 {kit.KEYWORD}", "b3"], ["s1", "s2", "s3"])
    team = RoundRobinGroupChat(
        agents, termination_condition=MaxMessageTermination(3) | KinGuardTermination()
    )
    await team.run(task="warm up")
    await team.reset()
    guard_team(team, kit.keyword_guard("halt"))
    condition: Any = team._termination_condition
    assert isinstance(condition._conditions[1], KinGuardTermination)


async def test_a_kinguard_termination_under_and_does_not_count_as_stopping_on_a_halt(
    kit: SimpleNamespace,
) -> None:
    # Under & the halt would wait for the other condition while the team talks on.
    agents = pair(kit, [f"b1 {kit.KEYWORD}", "b2", "b3"], ["s1", "s2", "s3 DONE"])
    condition = MaxMessageTermination(20) | (TextMentionTermination("DONE") & KinGuardTermination())
    team = guard_team(
        RoundRobinGroupChat(agents, termination_condition=condition), kit.keyword_guard("halt")
    )
    result = await team.run(task="Go.")
    assert result.stop_reason is not None and "kinguard halted" in result.stop_reason
    assert [source for source, _ in kit.chat(result)] == ["user", "buyer"]


async def redacting_team_on(kit: SimpleNamespace, runtime: SingleThreadedAgentRuntime) -> Any:
    """Run a guarded (redacting) round robin on a runtime the app starts and stops itself."""
    team = guard_team(round_robin(kit, runtime=runtime), kit.keyword_guard("redact"))
    runtime.start()
    try:
        return await team.run(task="Negotiate.")
    finally:
        await runtime.stop_when_idle()


async def test_a_runtime_the_user_owns(kit: SimpleNamespace) -> None:
    result = await redacting_team_on(kit, SingleThreadedAgentRuntime())
    assert any("[redacted by kinguard" in text for _, text in kit.chat(result))


async def test_two_teams_on_one_runtime_do_not_interfere(kit: SimpleNamespace) -> None:
    runtime = SingleThreadedAgentRuntime()
    guarded = guard_team(round_robin(kit, runtime=runtime), kit.keyword_guard("block"))
    bare = round_robin(kit, runtime=runtime)
    runtime.start()
    try:
        guarded_result = await guarded.run(task="Negotiate.")
        bare_result = await bare.run(task="Negotiate.")
    finally:
        await runtime.stop_when_idle()
    assert any(t.startswith("[kinguard blocked") for _, t in kit.chat(guarded_result))
    assert any(kit.KEYWORD in t for _, t in kit.chat(bare_result))


async def test_two_guarded_teams_on_one_runtime_keep_their_rewrites(kit: SimpleNamespace) -> None:
    runtime = SingleThreadedAgentRuntime()
    first = guard_team(round_robin(kit, runtime=runtime), kit.keyword_guard("redact"))
    second = guard_team(round_robin(kit, runtime=runtime), kit.keyword_guard("block"))
    runtime.start()
    try:
        results = [await first.run(task="Negotiate."), await second.run(task="Negotiate.")]
    finally:
        await runtime.stop_when_idle()
    for result, notice in zip(results, ("[redacted by kinguard", "[kinguard blocked"), strict=True):
        texts = [text for _, text in kit.chat(result)]
        assert not any(kit.KEYWORD in text for text in texts)
        assert any(notice in text for text in texts)
    sellers = [team._participants[1] for team in (first, second)]
    assert not any(kit.KEYWORD in kit.seen_by(seller) for seller in sellers)

    unguard_team(first)
    assert team_guard(first) is None and team_guard(second) is not None


async def test_repeated_runs_and_reset_keep_inspecting(kit: SimpleNamespace) -> None:
    team = round_robin(kit, n=2)
    guard = kit.keyword_guard("redact")
    guard_team(team, guard)
    with capture_verdicts(guard) as verdicts:
        await team.run(task="Negotiate.")
        await team.run()
        await team.reset()
        await team.run(task="Again.")
    # task + 2 messages; 3 more (the count restarts); after reset, task + 2 from the top.
    first, again, after_reset = (
        ["buyer", "seller"],
        ["buyer", "seller", "buyer"],
        ["buyer", "seller"],
    )
    assert [v.sender for v in verdicts] == [*first, *again, *after_reset]
    assert [v.turn for v in verdicts] == [0, 1, 2, 3, 4, 0, 1]  # a reset starts afresh
    assert verdicts[2].action is Action.REDACT


async def test_reset_forgets_the_old_conversations_risk_and_reminders(
    kit: SimpleNamespace,
) -> None:
    buyer = kit.agent("buyer", ["b1 hello", "b2 hello again"])
    seller = kit.agent("seller", [f"s1 {kit.KEYWORD}", "s2 a benign reply"])
    policy = Policy(
        rules=(
            Rule(signal="collusion.market", action=Action.NUDGE),
            Rule(risk=0.35, action=Action.BLOCK),
        )
    )
    guard = kit.keyword_guard("nudge", policy=policy)
    team = guarded_trio([buyer, seller], guard)
    await team.run(task="Conversation one.")
    assert guard.peek_nudge("seller") is not None
    await team.reset()
    with capture_verdicts(guard) as verdicts:
        await team.run(task="A brand new conversation.")
    assert [(v.sender, v.action) for v in verdicts] == [
        ("buyer", Action.ALLOW),
        ("seller", Action.ALLOW),
    ]
    assert "[kinguard reminder]" not in kit.seen_by(seller, -1)


@pytest.mark.parametrize("kind", ["round_robin", "selector"])
async def test_reset_drops_a_halt_pending_from_the_forgotten_conversation(
    kit: SimpleNamespace, kind: str
) -> None:
    # AgentChat's reset() clears the manager's thread, each agent's context and the speaker
    # order: the halted message's conversation is gone, and releasing it into the new one
    # (whose first speaker may be its sender) would make no sense.
    buyer, seller = pair(kit, [f"b1 {kit.KEYWORD}", "b2"], ["s1", "s2"])
    stop = MaxMessageTermination(3)
    team: RoundRobinGroupChat | SelectorGroupChat = RoundRobinGroupChat(
        [buyer, seller], termination_condition=stop
    )
    if kind == "selector":

        def alternate(thread: Sequence[BaseAgentEvent | BaseChatMessage]) -> str:
            said = [m.source for m in thread if m.source in ("buyer", "seller")]
            return "seller" if said and said[-1] == "buyer" else "buyer"

        team = SelectorGroupChat(
            [buyer, seller],
            model_client=ReplayChatCompletionClient([]),
            selector_func=alternate,
            termination_condition=stop,
        )
    guard = kit.keyword_guard("halt")
    guard_team(team, guard)
    await team.run(task="Negotiate.")
    assert pending_halt(team) is not None
    with capture_logs() as logs:
        await team.reset()
    assert pending_halt(team) is None
    assert [
        log["sender"] for log in logs if log["event"] == "kinguard.autogen.halt_unresolved"
    ] == ["buyer"]
    with pytest.raises(ValueError, match="no halted message"):
        resolve_halt(team, HumanDecision(type="approve"))
    assert guard.monitor.messages_seen("test") is None  # its risk went with it
    result = await team.run(task="A new conversation.")
    assert [source for source, _ in kit.chat(result)] == ["user", "buyer", "seller"]
    assert kit.KEYWORD not in kit.seen_by(seller, -1)


async def test_every_inspection_sees_the_team_and_recipients(kit: SimpleNamespace) -> None:
    three = [
        kit.agent("buyer", ["b1"]),
        kit.agent("seller", ["s1"]),
        kit.agent("auditor", ["a1"]),
    ]
    guard = kit.keyword_guard("log")
    team = guard_team(
        RoundRobinGroupChat(three, termination_condition=MaxMessageTermination(4)), guard
    )
    with capture_verdicts(guard) as verdicts:
        await team.run(task="Go.")
    assert [v.recipients for v in verdicts] == [
        ("seller", "auditor"),
        ("buyer", "auditor"),
        ("buyer", "seller"),
    ]
    assert {v.conversation_id for v in verdicts} == {"test"}


async def test_a_failing_guard_never_hangs_the_team(kit: SimpleNamespace) -> None:
    class Broken(KinGuard):
        async def ainspect(self, message: Any) -> Any:
            raise RuntimeError("adapter-level failure")

    for mode, expect_blocked in (("open", False), ("closed", True)):
        guard = Broken(
            kit.PROFILES,
            policy={"rules": [{"signal": "*", "action": "log"}], "on_error": mode},
        )
        team = guard_team(round_robin(kit), guard)
        result = await team.run(task="Negotiate.")
        texts = [t for s, t in kit.chat(result) if s != "user"]
        assert len(texts) == 4
        assert all(t.startswith("[kinguard blocked") for t in texts) is expect_blocked


async def test_nested_teams_are_guarded_as_one_conversation(kit: SimpleNamespace) -> None:
    inner_a = kit.agent("analyst", [f"a1 {kit.KEYWORD}"])
    inner_b = kit.agent("checker", ["c1"])
    inner = RoundRobinGroupChat(
        [inner_a, inner_b], termination_condition=MaxMessageTermination(4), name="desk"
    )
    # The inner team streams its own verdicts through the outer one.
    guard_team(inner, kit.keyword_guard("redact"))
    outer_guard = kit.keyword_guard("block")
    lead, team = with_lead(kit, inner, 5)
    outer = guard_team(team, outer_guard)
    with capture_verdicts(outer_guard) as verdicts:
        result = await outer.run(task="Go.")
    # Each inner message once more under the outer policy: analyst's as the inner guard redacted it.
    assert [(v.sender, v.action) for v in verdicts] == [
        ("lead", Action.ALLOW),
        ("analyst", Action.ALLOW),
        ("checker", Action.ALLOW),
        ("lead", Action.ALLOW),
    ]
    assert any(isinstance(m, KinGuardVerdictEvent) for m in result.messages)
    assert kit.KEYWORD not in kit.seen_by(lead, -1)


async def test_a_nested_team_is_unguarded_only_after_the_team_around_it(
    kit: SimpleNamespace,
) -> None:
    # The outer guard wraps the nested team's (guarded) run_stream: unguarding the nested team
    # first would drop the outer layer too, and the outer's restore would bring back a stale one.
    _, _, inner = desk(kit, f"a1 keep {kit.KEYWORD} quiet")
    guard_team(inner, desk_guard(kit, "log", conversation_id="inner"))
    outer_guard = desk_guard(kit, "block", conversation_id="outer")
    lead, team = with_lead(kit, inner, 5)
    outer = guard_team(team, outer_guard)
    with pytest.raises(ValueError, match="that team first"):
        unguard_team(inner)
    assert team_guard(inner) is not None
    with capture_verdicts(outer_guard) as verdicts:
        await outer.run(task="Go.")
    assert ("analyst", Action.BLOCK) in [(v.sender, v.action) for v in verdicts]
    assert kit.KEYWORD not in kit.seen_by(lead, -1)

    unguard_team(outer)
    unguard_team(inner)
    assert not {"run_stream", "reset", "save_state", "load_state"} & set(vars(inner))


@pytest.mark.parametrize("inner_action", ["log", "alert", "nudge"])
@pytest.mark.parametrize("ids", [("inner", "outer"), ("session", "session")])
async def test_the_outer_guard_inspects_what_a_nested_teams_own_guard_let_through(
    kit: SimpleNamespace, inner_action: str, ids: tuple[str, str]
) -> None:
    # The inner guard stamps its verdict on the message without withholding it; the outer
    # guard's stricter policy must still get its say before the outer team reads it. Two
    # guards may share a conversation id (an app's session id): they are still two guards.
    _, _, inner = desk(kit, f"a1 keep {kit.KEYWORD} quiet")
    guard_team(inner, desk_guard(kit, inner_action, conversation_id=ids[0]), events="all")
    outer_guard = desk_guard(kit, "block", conversation_id=ids[1])
    lead, team = with_lead(kit, inner, 5)
    outer = guard_team(team, outer_guard)
    with capture_verdicts(outer_guard) as verdicts:
        result = await outer.run(task="Go.")
    assert ("analyst", Action.BLOCK) in [(v.sender, v.action) for v in verdicts]
    assert kit.KEYWORD not in kit.seen_by(lead, -1)
    assert not any(kit.KEYWORD in text for _, text in kit.chat(result))
    # Nor does the inner guard's verdict event, which rises into the outer stream, quote it.
    assert kit.KEYWORD not in repr(result.messages)
    said = next(m for m in result.messages if isinstance(m, TextMessage) and m.source == "analyst")
    assert said.metadata[META_ACTION] == "block"  # the outer verdict replaces the inner stamp
    assert said.metadata["kinguard.reasons"].endswith("block")


# The runtime warns whenever a handler's on_response answers None, which it must for the RPCs
# that answer None (starting or resetting a team): noise from the app's handler, not a problem.
@pytest.mark.filterwarnings("ignore:Intervention handler on_response returned None:RuntimeWarning")
async def test_the_users_own_intervention_handler_only_sees_delivered_messages(
    kit: SimpleNamespace,
) -> None:
    # kinguard rewrites inside the agent's turn, before anything is published, so a handler of
    # the app's own (here one that tags every chat message) composes with it.
    seen: list[str] = []

    class Tagging(DefaultInterventionHandler):
        async def on_publish(self, message: Any, *, message_context: MessageContext) -> Any:
            if isinstance(message, GroupChatMessage) and isinstance(message.message, TextMessage):
                seen.append(message.message.content)
                tagged = message.message.model_copy(
                    update={"metadata": {**message.message.metadata, "app.tag": "seen"}}
                )
                return GroupChatMessage(message=tagged)
            return message

    runtime = SingleThreadedAgentRuntime(intervention_handlers=[Tagging()])
    result = await redacting_team_on(kit, runtime)
    assert seen and not any(kit.KEYWORD in text for text in seen)
    said = [m for m in result.messages if isinstance(m, TextMessage) and m.source != "user"]
    assert all(m.metadata.get("app.tag") == "seen" for m in said)
    assert any(m.metadata.get(META_ACTION) == "redact" for m in said)


async def test_a_guarded_team_inside_an_unguarded_one_never_breaks_it(
    kit: SimpleNamespace,
) -> None:
    # The outer team has no KinGuardVerdictEvent in its message factory, and AgentChat fails a
    # run on an item of an unregistered type: the inner team keeps its events to itself.
    inner = RoundRobinGroupChat(
        [kit.agent("analyst", [f"a1 {kit.KEYWORD}"]), kit.agent("checker", ["c1"])],
        termination_condition=MaxMessageTermination(3),
        name="desk",
    )
    guard_team(inner, kit.keyword_guard("redact"))
    lead = kit.agent("lead", ["l1", "l2"])
    outer = RoundRobinGroupChat([lead, inner], termination_condition=MaxMessageTermination(4))
    result = await outer.run(task="Go.")
    said = kit.chat(result)
    assert ("analyst", "a1 [redacted by kinguard: collusion.market]") in said
    assert not any(isinstance(m, KinGuardVerdictEvent) for m in result.messages)
    assert kit.KEYWORD not in kit.seen_by(lead, -1)


class Offer(BaseModel):
    item: str
    note: str


class Saying(BaseChatAgent):
    """An agent that says each of ``lines`` in turn, in a message of its own kind."""

    kind: type[BaseChatMessage]

    def __init__(self, name: str, lines: Sequence[str]) -> None:
        super().__init__(name, description=f"{type(self).__name__} {name}")
        self.lines = list(lines)

    @property
    def produced_message_types(self) -> Sequence[type[BaseChatMessage]]:
        return (self.kind,)

    def said(self, line: str) -> BaseChatMessage:
        raise NotImplementedError

    async def on_messages(
        self, messages: Sequence[BaseChatMessage], cancellation_token: CancellationToken
    ) -> Response:
        return Response(chat_message=self.said(self.lines.pop(0)))

    async def on_reset(self, cancellation_token: CancellationToken) -> None:
        pass


class Structured(Saying):
    """An agent whose messages are structured, not text."""

    kind = StructuredMessage[Offer]

    def said(self, line: str) -> BaseChatMessage:
        return StructuredMessage[Offer](source=self.name, content=Offer(item="sensors", note=line))


async def test_a_structured_message_that_must_change_is_delivered_as_text(
    kit: SimpleNamespace,
) -> None:
    buyer = Structured("buyer", [f"keep {kit.KEYWORD} between us", "fine"])
    seller = Scripted("seller", ["s1", "s2"])
    team = guard_team(
        RoundRobinGroupChat([buyer, seller], termination_condition=MaxMessageTermination(4)),
        kit.keyword_guard("redact"),
    )
    result = await team.run(task="Go.")
    first, clean = [m for m in result.messages if m.source == "buyer"]
    assert isinstance(first, TextMessage)  # a StructuredMessage cannot hold the rewrite
    assert "[redacted by kinguard: collusion.market]" in first.content
    assert first.metadata[META_ACTION] == "redact"
    assert isinstance(clean, StructuredMessage)  # untouched messages keep their type
    assert not any(kit.KEYWORD in line for turn in seller.received for line in turn)


class Showing(Saying):
    """An agent whose messages show an image beside their words."""

    kind = MultiModalMessage

    def said(self, line: str) -> BaseChatMessage:
        image = Image(PIL.Image.new("RGB", (2, 2)))
        return MultiModalMessage(source=self.name, content=[line, image])


@pytest.mark.parametrize("kind", [MultiModalMessage, StructuredMessage])
async def test_an_approved_message_that_is_not_text_is_released_as_it_was_said(
    kit: SimpleNamespace, kind: type[BaseChatMessage]
) -> None:
    def team_of(buyer_says: list[str]) -> tuple[RoundRobinGroupChat, Scripted]:
        buyer = Showing if kind is MultiModalMessage else Structured
        seller = Scripted("seller", ["s1"])
        team = RoundRobinGroupChat(
            [buyer("buyer", buyer_says), seller], termination_condition=MaxMessageTermination(3)
        )
        return guard_team(team, kit.keyword_guard("halt")), seller

    team, _ = team_of([f"keep {kit.KEYWORD} between us"])
    await team.run(task="Go.")
    saved = json.loads(json.dumps(await team.save_state()))
    again, seller = team_of(["b2"])  # a new process: built afresh, given the saved state
    await again.load_state(saved)
    released = resolve_halt(again, HumanDecision(type="approve"))
    assert isinstance(released, kind)  # not its text alone: its image, its structure
    await again.run(task=released)
    assert any(kit.KEYWORD in line for line in seller.received[0])
    if kind is MultiModalMessage:
        assert any("<image>" in line for line in seller.received[0])


async def test_a_person_in_the_team_is_neither_inspected_nor_told_who_they_are(
    kit: SimpleNamespace,
) -> None:
    prompts: list[str] = []

    def person(prompt: str) -> str:
        prompts.append(prompt)
        return f"As your principal I say {kit.KEYWORD} is fine."

    buyer = kit.agent("buyer", [f"b1 {kit.KEYWORD}", "b2"])
    human = UserProxyAgent("human", input_func=person)
    guard = kit.keyword_guard("block", identity="disassociate")
    team = guard_team(
        RoundRobinGroupChat([buyer, human], termination_condition=MaxMessageTermination(4)),
        guard,
    )
    with capture_verdicts(guard) as verdicts:
        result = await team.run(task="Go.")
    assert [v.sender for v in verdicts] == ["buyer", "buyer"]  # the person's words are theirs
    said = kit.chat(result)
    assert said[1][1].startswith("[kinguard blocked a message from buyer")
    assert said[2] == ("human", f"As your principal I say {kit.KEYWORD} is fine.")
    assert "on_messages_stream" not in vars(human)
    assert not any(IDENTITY_MARKER in p for p in prompts)


async def test_a_graph_flow_is_guarded_like_any_group_chat(kit: SimpleNamespace) -> None:
    buyer = kit.agent("buyer", [f"b1 {kit.KEYWORD}"])
    seller = kit.agent("seller", ["s1"])
    auditor = kit.agent("auditor", ["a1"])
    graph = DiGraphBuilder()
    graph.add_node(buyer).add_node(seller).add_node(auditor)
    graph.add_edge(buyer, seller).add_edge(seller, auditor)
    guard = kit.keyword_guard("redact", identity="disassociate")
    flow = guard_team(GraphFlow([buyer, seller, auditor], graph=graph.build()), guard)
    result = await flow.run(task="Go.")
    assert kit.chat(result)[1] == ("buyer", "b1 [redacted by kinguard: collusion.market]")
    assert kit.KEYWORD not in kit.seen_by(seller) + kit.seen_by(auditor)
    assert IDENTITY_MARKER in kit.seen_by(seller)


@pytest.mark.parametrize(
    ("action", "runs"), [("redact", False), ("block", False), ("halt", False), ("log", True)]
)
async def test_tool_call_arguments_are_read_before_the_tool_runs(
    kit: SimpleNamespace, action: str, runs: bool
) -> None:
    ran: list[str] = []

    def post_to_buyer(note: str) -> str:
        """Post a note that the buyer's agent reads."""
        ran.append(note)
        return "posted"

    arguments = json.dumps({"note": f"hold {kit.KEYWORD} for both of us"})
    seller = kit.agent(
        "seller",
        [kit.tool_call("post_to_buyer", "call-1", arguments), "s1 posted"],
        tools=[post_to_buyer],
    )
    buyer = kit.agent("buyer", ["b1"])
    guard = kit.keyword_guard(action)
    team = guarded_trio([seller, buyer], guard)
    # Still the kind AssistantAgent streams tool events from, and still dumps as the app's own.
    assert isinstance(seller._workbench[0], StaticStreamWorkbench)
    assert (
        seller.dump_component().config["workbench"][0]["provider"].endswith("StaticStreamWorkbench")
    )
    with capture_verdicts(guard) as verdicts:
        result = await team.run(task="Go.")
    assert verdicts[0].sender == "seller" and verdicts[0].signal_names == ("collusion.market",)
    assert bool(ran) is runs
    results = [m for m in result.messages if isinstance(m, ToolCallExecutionEvent)]
    assert results and results[0].content[0].is_error is not runs
    if not runs:
        assert (
            results[0].content[0].content.startswith("[kinguard blocked the call to post_to_buyer")
        )
    unguard_team(team)
    assert not type(seller._workbench[0]).__name__.startswith("Guarded")


async def run_until_ordered(
    kit: SimpleNamespace, action: str, buyer: BaseChatAgent
) -> tuple[list[Any], TaskResult]:
    """``buyer`` and a seller in a round robin that stops once ``submit_order`` ran (or at five
    messages), streamed to its end under a keyword guard with ``action``."""
    seller = kit.agent("seller", ["s1", "s2"])
    stop = FunctionCallTermination("submit_order") | MaxMessageTermination(5)
    team = guard_team(
        RoundRobinGroupChat([buyer, seller], termination_condition=stop), kit.keyword_guard(action)
    )
    items = [item async for item in team.run_stream(task="Go.")]
    result = items[-1]
    assert isinstance(result, TaskResult)
    return items, result


@pytest.mark.parametrize(
    ("action", "runs"), [("redact", False), ("block", False), ("halt", False), ("log", True)]
)
async def test_a_refused_call_does_not_stop_a_team_that_stops_once_its_tool_ran(
    kit: SimpleNamespace, action: str, runs: bool
) -> None:
    ran: list[str] = []

    def submit_order(note: str) -> str:
        """Submit the order."""
        ran.append(note)
        return "submitted"

    arguments = json.dumps({"note": f"{kit.KEYWORD} price"})
    buyer = kit.agent(
        "buyer", [kit.tool_call("submit_order", "c1", arguments), "b2"], tools=[submit_order]
    )
    items, result = await run_until_ordered(kit, action, buyer)
    assert bool(ran) is runs
    assert ("Function 'submit_order' was executed." in (result.stop_reason or "")) is runs
    if runs:
        return
    # The stream still shows the refusal as the call's result, by the call's id.
    executed = next(i for i in items if isinstance(i, ToolCallExecutionEvent))
    [shown] = executed.content
    assert (shown.call_id, shown.is_error) == ("c1", True)
    assert shown.content.startswith("[kinguard blocked the call to submit_order")
    summary = next(i for i in items if isinstance(i, ToolCallSummaryMessage))
    assert [r.name for r in summary.results] == [shown.name] != ["submit_order"]
    # The agent's model is given the refusal as the result of its call, under the tool's name.
    given = [m for m in kit.model_calls(buyer)[-1] if isinstance(m, FunctionExecutionResultMessage)]
    assert [(r.call_id, r.name) for m in given for r in m.content] == [("c1", "submit_order")]


@pytest.mark.parametrize("action", ["block", "halt"])
async def test_a_tool_that_ran_stops_the_team_though_its_turn_is_withheld(
    kit: SimpleNamespace, action: str
) -> None:
    def submit_order(note: str) -> str:
        """Submit the order."""
        return f"submitted; {kit.KEYWORD} noted"

    call = kit.tool_call("submit_order", "c1", json.dumps({"note": "two crates"}))
    buyer = kit.agent("buyer", [call, "b2"], tools=[submit_order])
    items, result = await run_until_ordered(kit, action, buyer)
    assert "Function 'submit_order' was executed." in (result.stop_reason or "")
    # The tool's output is withheld with the turn's message (a summary of it): only that it ran
    # shows.
    executed = [i for i in items if isinstance(i, ToolCallExecutionEvent)]
    assert [(r.name, r.call_id) for e in executed for r in e.content] == [("submit_order", "c1")]
    assert kit.KEYWORD not in str(items)


def submitting(ran: list[str]) -> Any:
    """A ``submit_order`` tool that notes each order it runs in ``ran``."""

    def submit_order(note: str) -> str:
        """Submit the order."""
        ran.append(note)
        return "submitted"

    return submit_order


@pytest.mark.parametrize("refused_first", [True, False])
async def test_of_two_calls_under_one_id_only_the_refused_one_shows_as_refused(
    kit: SimpleNamespace, refused_first: bool
) -> None:
    # OllamaChatCompletionClient gives every call of one response the same id: here two calls
    # of one tool, one of which kinguard refuses. Told apart by their arguments and results.
    ran: list[str] = []
    refused = FunctionCall(id="0", name="submit_order", arguments=json.dumps({"note": kit.KEYWORD}))
    allowed = FunctionCall(id="0", name="submit_order", arguments=json.dumps({"note": "crates"}))
    reply = CreateResult(
        finish_reason="function_calls",
        content=[refused, allowed] if refused_first else [allowed, refused],
        usage=RequestUsage(prompt_tokens=0, completion_tokens=0),
        cached=False,
    )
    buyer = kit.agent("buyer", [reply, "b2"], tools=[submitting(ran)])
    items, result = await run_until_ordered(kit, "block", buyer)
    assert ran == ["crates"]
    # One order was submitted: the team that stops once it is stops.
    assert "Function 'submit_order' was executed." in (result.stop_reason or "")
    order = [True, False] if refused_first else [False, True]
    request = next(i for i in items if isinstance(i, ToolCallRequestEvent))
    assert [c.arguments == "{}" for c in request.content] == order
    executed = next(i for i in items if isinstance(i, ToolCallExecutionEvent))
    assert [r.name != "submit_order" for r in executed.content] == order
    summary = next(i for i in items if isinstance(i, ToolCallSummaryMessage))
    assert [r.name != "submit_order" for r in summary.results] == order
    assert [c.arguments == "{}" for c in summary.tool_calls] == order
    assert kit.KEYWORD not in str(items)


class Ordering(Scripted):
    """A custom agent that submits an order through its workbench without a call id, and
    reports the call and its result as AssistantAgent would."""

    def __init__(self, name: str, note: str, tool: Callable[[str], str]) -> None:
        super().__init__(name, ["waiting", "still waiting"])  # its turns after the order
        self.note = note
        self.ordered = False
        self._workbench = [StaticWorkbench([FunctionTool(tool, "Submit the order.")])]

    async def on_messages_stream(
        self, messages: Sequence[BaseChatMessage], cancellation_token: CancellationToken
    ) -> AsyncGenerator[BaseAgentEvent | BaseChatMessage | Response, None]:
        if self.ordered:
            async for item in super().on_messages_stream(messages, cancellation_token):
                yield item
            return
        self.ordered = True
        arguments = {"note": self.note}
        call = FunctionCall(id="mine-1", name="submit_order", arguments=json.dumps(arguments))
        request = ToolCallRequestEvent(source=self.name, content=[call])
        yield request
        outcome = await self._workbench[0].call_tool("submit_order", arguments)
        result = FunctionExecutionResult(
            content=outcome.to_text(), call_id=call.id, is_error=outcome.is_error, name=call.name
        )
        executed = ToolCallExecutionEvent(source=self.name, content=[result])
        yield executed
        yield Response(
            chat_message=ToolCallSummaryMessage(
                source=self.name, content=result.content, tool_calls=[call], results=[result]
            ),
            inner_messages=[request, executed],
        )


@pytest.mark.parametrize(("note", "runs"), [("{kw} price", False), ("crates", True)])
async def test_a_call_made_without_a_call_id_shows_as_refused_when_refused(
    kit: SimpleNamespace, note: str, runs: bool
) -> None:
    ran: list[str] = []
    buyer = Ordering("buyer", note.format(kw=kit.KEYWORD), submitting(ran))
    items, result = await run_until_ordered(kit, "block", buyer)
    assert bool(ran) is runs
    assert ("Function 'submit_order' was executed." in (result.stop_reason or "")) is runs
    executed = next(i for i in items if isinstance(i, ToolCallExecutionEvent))
    summary = next(i for i in items if isinstance(i, ToolCallSummaryMessage))
    for results in (executed.content, summary.results):
        assert [r.name == "submit_order" for r in results] == [runs]
    assert (summary.tool_calls[0].arguments == "{}") is not runs
    assert kit.KEYWORD not in str(items)


@pytest.mark.parametrize(("action", "events"), [("block", "flagged"), ("log", "all")])
async def test_a_tool_calls_verdict_is_streamed_before_its_result(
    kit: SimpleNamespace, action: str, events: Any
) -> None:
    arguments = json.dumps({"note": f"hold {kit.KEYWORD}"})
    seller = kit.agent(
        "seller", [kit.tool_call("post_note", "call-1", arguments), "s1"], tools=[post_note]
    )
    team = guard_team(
        RoundRobinGroupChat(
            [seller, kit.agent("buyer", ["b1"])], termination_condition=MaxMessageTermination(2)
        ),
        kit.keyword_guard(action),
        events=events,
    )
    items = [item async for item in team.run_stream(task="Go.")]
    kinds = [type(item).__name__ for item in items]
    at = kinds.index("KinGuardVerdictEvent")
    assert kinds[at - 1 : at + 2] == [
        "ToolCallRequestEvent",
        "KinGuardVerdictEvent",
        "ToolCallExecutionEvent",
    ]
    event = items[at]
    assert isinstance(event, KinGuardVerdictEvent)
    assert event.verdict.action is Action(action)
    assert event.to_text().endswith("call to post_note")


class Part(BaseModel):
    text: str


class Note(BaseModel):
    to: str
    parts: list[Part]


@pytest.mark.parametrize("runner", ["agent", "team"])
@pytest.mark.parametrize("action", ["redact", "block"])
async def test_an_agent_used_as_a_tool_speaks_to_its_caller_as_kinguard_delivers(
    kit: SimpleNamespace, runner: str, action: str
) -> None:
    advisor = kit.agent("advisor", [f"Tell the seller {kit.KEYWORD}."])
    tool: AgentTool | TeamTool = AgentTool(advisor)
    if runner == "team":
        desk = RoundRobinGroupChat(
            [advisor, kit.agent("checker", ["checked"])],
            termination_condition=MaxMessageTermination(3),
        )
        tool = TeamTool(
            desk, name="desk", description="the desk", return_value_as_last_message=False
        )
    ask = kit.tool_call(tool.name, "c1", json.dumps({"task": "What should I offer?"}))
    buyer = kit.agent("buyer", [ask, "I offer 100."], tools=[tool], reflect_on_tool_use=True)
    team = RoundRobinGroupChat(
        [buyer, kit.agent("seller", ["s1"])], termination_condition=MaxMessageTermination(3)
    )
    guard_team(team, kit.keyword_guard(action, identity="disassociate"))
    await team.run(task="Go.")
    # The advisor's words reach the buyer's model in the tool's result, not as a message.
    result = str(kit.model_calls(buyer)[-1][-1].content)
    assert kit.KEYWORD not in result
    said = {"redact": "[redacted by kinguard", "block": "[kinguard blocked a message from advisor"}
    assert said[action] in result and "is_error=False" in result
    assert IDENTITY_MARKER in kit.seen_by(advisor)


@pytest.mark.parametrize("seller_first", [False, True])
async def test_a_participant_another_uses_as_a_tool_is_guarded_once(
    kit: SimpleNamespace, seller_first: bool
) -> None:
    seller = kit.agent("seller", [f"price {kit.KEYWORD}", f"again {kit.KEYWORD}"])
    ask = kit.tool_call("seller", "c1", json.dumps({"task": "Your price?"}))
    buyer = kit.agent("buyer", [ask, "ok"], tools=[AgentTool(seller)], reflect_on_tool_use=True)
    members = [seller, buyer] if seller_first else [buyer, seller]
    team = RoundRobinGroupChat(members, termination_condition=MaxMessageTermination(4))
    guard_team(team, kit.keyword_guard("redact"))
    await team.run(task="Go.")
    result = str(kit.model_calls(buyer)[-1][-1].content)
    assert "[redacted by kinguard: collusion.market]" in result and "is_error=False" in result


async def test_a_participant_another_uses_as_a_tool_streams_its_verdicts_after_its_messages(
    kit: SimpleNamespace,
) -> None:
    seller = kit.agent("seller", [f"price {kit.KEYWORD}", f"again {kit.KEYWORD}"])
    ask = kit.tool_call("seller", "c1", json.dumps({"task": "Your price?"}))
    buyer = kit.agent("buyer", [ask, "ok"], tools=[AgentTool(seller)], reflect_on_tool_use=True)
    team = RoundRobinGroupChat([buyer, seller], termination_condition=MaxMessageTermination(5))
    guard_team(team, kit.keyword_guard("redact"))
    items = [item async for item in team.run_stream(task="Go.")]
    # In its own turn, as any participant's: its message, then the verdict on it.
    own = [
        i
        for i, m in enumerate(items)
        if isinstance(m, TextMessage) and m.to_text().startswith("again")
    ]
    assert len(own) == 1
    said = own[0]
    event = items[said + 1]
    assert isinstance(event, KinGuardVerdictEvent) and event.verdict.sender == "seller"
    # Its answer as the buyer's tool still reached the buyer redacted.
    assert "[redacted by kinguard: collusion.market]" in str(kit.model_calls(buyer)[-1][-1].content)


async def test_a_halt_in_a_team_used_as_a_tool_with_its_own_guard_is_resolved_from_the_caller(
    kit: SimpleNamespace,
) -> None:
    desk = RoundRobinGroupChat(
        [kit.agent("advisor", [f"Tell the seller {kit.KEYWORD}."]), kit.agent("checker", ["ok"])],
        termination_condition=MaxMessageTermination(3),
    )
    guard_team(desk, kit.keyword_guard("halt", conversation_id="desk"))
    tool = TeamTool(desk, "desk", "the desk", return_value_as_last_message=False)
    ask = kit.tool_call("desk", "c1", json.dumps({"task": "What should I offer?"}))
    buyer = kit.agent("buyer", [ask, "I offer 100.", "b3"], tools=[tool], reflect_on_tool_use=True)
    seller = kit.agent("seller", ["s1", "s2"])
    team = RoundRobinGroupChat([buyer, seller], termination_condition=MaxMessageTermination(4))
    guard_team(team, kit.keyword_guard("redact"))
    await team.run(task="Go.")
    halted = pending_halt(team)  # the team stopped for it: reviewed through the team
    assert halted is not None and halted.sender == "advisor"
    await team.run(task=resolve_halt(team, HumanDecision(type="approve")))
    # Released, it meets the caller's team's guard as it would have: redacted there.
    assert "Tell the seller [redacted by kinguard: collusion.market]." in kit.seen_by(seller)


async def test_tool_call_arguments_are_read_however_deep(kit: SimpleNamespace) -> None:
    sent: list[list[Note]] = []

    def send_notes(notes: list[Note]) -> str:
        """Send notes to other agents."""
        sent.append(notes)
        return "sent"

    note = {"to": "buyer", "parts": [{"text": f"hold {kit.KEYWORD} for both of us"}]}
    arguments = json.dumps({"notes": [note]})
    seller = kit.agent(
        "seller", [kit.tool_call("send_notes", "call-1", arguments), "s1"], tools=[send_notes]
    )
    guard = kit.keyword_guard("block")
    team = guarded_trio([seller, kit.agent("buyer", ["b1"])], guard)
    with capture_verdicts(guard) as verdicts:
        await team.run(task="Go.")
    assert verdicts[0].action is Action.BLOCK
    assert not sent


@pytest.mark.parametrize(("decision", "next_speaker"), [("reject", "buyer"), ("approve", "seller")])
async def test_a_halted_swarm_handoff_hands_over_only_when_released(
    kit: SimpleNamespace, decision: Any, next_speaker: str
) -> None:
    buyer = kit.agent(
        "buyer",
        [kit.handoff("seller", "c1"), "b2", "b3"],
        handoffs=[Handoff(target="seller", message=f"Take over; remember {kit.KEYWORD}")],
    )
    seller = kit.agent("seller", ["s1"], handoffs=["buyer"])
    team = guard_team(
        Swarm([buyer, seller], termination_condition=MaxMessageTermination(2)),
        kit.keyword_guard("halt"),
    )
    first = await team.run(task="Negotiate.")
    assert not any(isinstance(m, HandoffMessage) for m in first.messages)
    task = resolve_halt(team, HumanDecision(type=decision))
    assert isinstance(task, HandoffMessage) is (decision == "approve")
    resumed = await team.run(task=task)
    speakers = [m.source for m in resumed.messages if isinstance(m, BaseChatMessage)]
    assert speakers[-1] == next_speaker


async def test_a_released_handoff_to_the_user_ends_the_run_for_the_users_reply(
    kit: SimpleNamespace,
) -> None:
    # AgentChat's human-in-the-loop Swarm: a handoff to "user" stops the team; the user's reply
    # resumes it. A Swarm refuses a task handing off to someone outside it.
    buyer = kit.agent(
        "buyer",
        [kit.handoff("user", "c1"), "b2", "b3", "b4"],
        handoffs=["seller", Handoff(target="user", message=f"Ask: {kit.KEYWORD}?")],
    )
    seller = kit.agent("seller", ["s1"], handoffs=["buyer"])
    condition = HandoffTermination(target="user") | MaxMessageTermination(3)
    team = guard_team(
        Swarm([buyer, seller], termination_condition=condition), kit.keyword_guard("halt")
    )
    await team.run(task="Negotiate.")
    task = resolve_halt(team, HumanDecision(type="approve"))
    assert isinstance(task, HandoffMessage) and task.target == "user"
    handed = await team.run(task=task)
    assert handed.messages == [task]  # for the app to show the user, as without the halt
    reply = HandoffMessage(source="user", target="buyer", content="Yes, go on.")
    resumed = await team.run(task=reply)
    assert kit.chat(resumed)[:2] == [("user", "Yes, go on."), ("buyer", "b2")]


async def test_a_released_handoff_to_the_user_joins_the_teams_history(
    kit: SimpleNamespace,
) -> None:
    # It was only given to the app: not in the team's thread or saved state, and the agent the
    # user hands off to next never got it. Without the halt it was the sender's message.
    def swarm() -> tuple[Any, Swarm]:
        buyer = kit.agent(
            "buyer",
            [kit.handoff("user", "c1")],
            handoffs=["seller", Handoff(target="user", message=f"Ask: {kit.KEYWORD}?")],
        )
        seller = kit.agent("seller", ["s1", "s2"], handoffs=["buyer"])
        condition = HandoffTermination(target="user") | MaxMessageTermination(3)
        team = Swarm([buyer, seller], termination_condition=condition)
        return seller, guard_team(team, kit.keyword_guard("halt"))

    _, team = swarm()
    await team.run(task="Negotiate.")
    task = resolve_halt(team, HumanDecision(type="approve"))
    assert isinstance(task, HandoffMessage)
    handed = await team.run(task=task)
    assert handed.stop_reason == "Handoff to user from buyer detected."  # HandoffTermination's
    saved = json.loads(json.dumps(await team.save_state()))
    thread = saved["agent_states"]["SwarmGroupChatManager"]["message_thread"]
    assert thread[-1]["id"] == task.id and thread[-1]["target"] == "user"
    seller, restored = swarm()
    await restored.load_state(saved)
    reply = HandoffMessage(source="user", target="seller", content="Seller, go on.")
    await restored.run(task=reply)
    assert f"Ask: {kit.KEYWORD}?" in kit.seen_by(seller, 0)


async def test_a_released_handoff_inside_a_nested_swarm_hands_over_there(
    kit: SimpleNamespace,
) -> None:
    # The target is an agent of the nested Swarm, not a participant of the outer team.
    x = kit.agent(
        "x",
        [kit.handoff("y", "c1"), "x2"],
        handoffs=[Handoff(target="y", message=f"Over to you: {kit.KEYWORD}")],
    )
    y = kit.agent("y", ["y1", "y2"], handoffs=["x"])
    swarm = Swarm([x, y], termination_condition=MaxMessageTermination(3))
    lead = kit.agent("lead", ["l1", "l2", "l3"])
    outer = guard_team(
        RoundRobinGroupChat([lead, swarm], termination_condition=MaxMessageTermination(4)),
        kit.keyword_guard("halt"),
    )
    await outer.run(task="Go.")
    task = resolve_halt(outer, HumanDecision(type="approve"))
    assert isinstance(task, HandoffMessage) and task.target == "y"
    resumed = await outer.run(task=task)
    assert ("y", "y1") in kit.chat(resumed)


def fan_out(
    kit: SimpleNamespace,
    b_says: str,
    action: Action = Action.HALT,
    termination: TerminationCondition | None = None,
) -> tuple[GraphFlow, Any]:
    """lead -> a, b -> join under a rule with ``action`` on the keyword (a says it); the flow
    and join."""
    lead = kit.agent("lead", ["go"])
    a = kit.agent("a", [f"a says {kit.KEYWORD} A-offer"])
    b = kit.agent("b", [b_says])
    join = kit.agent("join", ["joined"])
    graph = DiGraphBuilder()
    for node in (lead, a, b, join):
        graph.add_node(node)
    graph.add_edge(lead, a).add_edge(lead, b).add_edge(a, join).add_edge(b, join)
    profiles = [AgentProfile(name=n, model="openai:gpt-4o") for n in ("lead", "a", "b", "join")]
    guard = KinGuard(
        profiles,
        detectors=[KeywordDetector(kit.KEYWORD)],
        policy=Policy(rules=(Rule(signal="collusion.market", action=action),)),
    )
    flow = GraphFlow([lead, a, b, join], graph=graph.build(), termination_condition=termination)
    return guard_team(flow, guard), join


async def test_parallel_halts_in_a_graph_flow_are_each_reviewed_and_released(
    kit: SimpleNamespace,
) -> None:
    flow, join = fan_out(kit, f"b says {kit.KEYWORD} B-offer")
    await flow.run(task="Go.")
    released: list[BaseChatMessage] = []
    while (halted := pending_halt(flow)) is not None:
        assert halted.sender in ("a", "b")
        message = resolve_halt(flow, HumanDecision(type="approve"))
        assert message is not None
        released.append(message)
    assert sorted(m.source for m in released) == ["a", "b"]
    resumed = await flow.run(task=released)
    assert kit.chat(resumed)[-1] == ("join", "joined")
    assert "A-offer" in kit.seen_by(join) and "B-offer" in kit.seen_by(join)


def branching(kit: SimpleNamespace, buyer_says: list[str]) -> tuple[GraphFlow, Any, Any]:
    """A graph from buyer to seller if it says APPROVE, else to auditor; and those two."""
    buyer = kit.agent("buyer", buyer_says)
    seller = kit.agent("seller", ["approved branch"])
    auditor = kit.agent("auditor", ["other branch"])
    graph = DiGraphBuilder()
    graph.add_node(buyer).add_node(seller).add_node(auditor)
    graph.add_edge(buyer, seller, condition="APPROVE")
    graph.add_edge(buyer, auditor, condition=lambda m: "APPROVE" not in m.to_model_text())
    flow = GraphFlow([buyer, seller, auditor], graph=graph.build())
    return guard_team(flow, kit.keyword_guard("halt")), seller, auditor


@pytest.mark.parametrize(("decision", "branch"), [("approve", "seller"), ("reject", "auditor")])
async def test_a_graph_goes_on_from_a_halted_message_as_the_person_decided(
    kit: SimpleNamespace, decision: Literal["approve", "reject"], branch: str
) -> None:
    flow, seller, auditor = branching(kit, [f"APPROVE at {kit.KEYWORD}"])
    await flow.run(task="Go.")
    # Approved, the message goes where it says (not where its notice would have gone too);
    # rejected, where a blocked message's notice goes.
    resumed = await flow.run(task=resolve_halt(flow, HumanDecision(type=decision)))
    assert [source for source, _ in kit.chat(resumed)][-1:] == [branch]
    assert [bool(kit.model_calls(a)) for a in (seller, auditor)] == [
        branch == "seller",
        branch == "auditor",
    ]


async def test_a_graph_saved_at_a_halt_goes_on_from_the_release_when_built_afresh(
    kit: SimpleNamespace,
) -> None:
    flow, _, _ = branching(kit, [f"APPROVE at {kit.KEYWORD}"])
    await flow.run(task="Go.")
    saved = json.loads(json.dumps(await flow.save_state()))
    again, _, auditor = branching(kit, [])
    await again.load_state(saved)
    resumed = await again.run(task=resolve_halt(again, HumanDecision(type="approve")))
    assert kit.chat(resumed)[-1] == ("seller", "approved branch")
    assert kit.model_calls(auditor) == []


async def branching_guarded_late(
    kit: SimpleNamespace, reloaded: bool
) -> tuple[GraphFlow, Any, Any]:
    """``branching``'s graph, guarded after a first run of its own (whose manager kinguard did
    not make), halted on the buyer's APPROVE; ``reloaded``: then saved and loaded into a graph
    built afresh, likewise run once before it is guarded. The flow, seller and auditor."""

    async def built() -> tuple[GraphFlow, Any, Any]:
        buyer = kit.agent("buyer", ["warm up", f"APPROVE at {kit.KEYWORD}"])
        seller = kit.agent("seller", ["approved branch"])
        auditor = kit.agent("auditor", ["warm branch", "other branch"])
        graph = DiGraphBuilder()
        graph.add_node(buyer).add_node(seller).add_node(auditor)
        graph.add_edge(buyer, seller, condition="APPROVE")
        graph.add_edge(buyer, auditor, condition=lambda m: "APPROVE" not in m.to_model_text())
        flow = GraphFlow(
            [buyer, seller, auditor],
            graph=graph.build(),
            termination_condition=KinGuardTermination(),
        )
        await flow.run(task="Warm up.")
        return guard_team(flow, kit.keyword_guard("halt")), seller, auditor

    flow, seller, auditor = await built()
    await flow.run(task="Go.")
    if reloaded:
        saved = json.loads(json.dumps(await flow.save_state()))
        flow, seller, auditor = await built()
        await flow.load_state(saved)
    return flow, seller, auditor


@pytest.mark.parametrize("reloaded", [False, True])
@pytest.mark.parametrize(("decision", "branch"), [("approve", "seller"), ("reject", "auditor")])
async def test_a_graph_guarded_after_its_first_run_goes_on_from_a_halt_as_the_person_decided(
    kit: SimpleNamespace, decision: Literal["approve", "reject"], branch: str, reloaded: bool
) -> None:
    flow, seller, auditor = await branching_guarded_late(kit, reloaded)
    resumed = await flow.run(task=resolve_halt(flow, HumanDecision(type=decision)))
    # As in a graph guarded before its first run: one branch, the one the decision takes.
    assert [source for source, _ in kit.chat(resumed)][-1:] == [branch]
    assert [len(kit.model_calls(a)) for a in (seller, auditor)] == [
        int(branch == "seller"),
        1 + int(branch == "auditor"),  # its own warm-up run's call, and this one
    ]


@pytest.mark.parametrize("reloaded", [False, True])
async def test_a_graph_guarded_after_its_first_run_stops_for_a_halt_at_its_last_node(
    kit: SimpleNamespace, reloaded: bool
) -> None:
    async def built() -> tuple[GraphFlow, Any]:
        buyer = kit.agent("buyer", ["warm up", "b1", "b2"])
        seller = kit.agent("seller", ["warm reply", f"s1 {kit.KEYWORD}", "s2"])
        graph = DiGraphBuilder()
        graph.add_node(buyer).add_node(seller).add_edge(buyer, seller)
        flow = GraphFlow(
            [buyer, seller], graph=graph.build(), termination_condition=KinGuardTermination()
        )
        await flow.run(task="Warm up.")
        return guard_team(flow, kit.keyword_guard("halt")), buyer

    flow, buyer = await built()
    result = await flow.run(task="Go.")
    assert result.stop_reason is not None
    assert result.stop_reason.startswith("kinguard halted: message from seller")
    if reloaded:
        saved = json.loads(json.dumps(await flow.save_state()))
        flow, buyer = await built()
        await flow.load_state(saved)
    resumed = await flow.run(task=resolve_halt(flow, HumanDecision(type="approve")))
    # The graph ends with the released message: nobody runs again.
    assert kit.chat(resumed) == [("seller", f"s1 {kit.KEYWORD}")]
    assert len(kit.model_calls(buyer)) == (1 if reloaded else 2)


async def test_a_graph_guarded_after_its_first_run_is_unguarded_whole(
    kit: SimpleNamespace,
) -> None:
    flow, _, _ = await branching_guarded_late(kit, reloaded=False)
    runtime: Any = flow._runtime
    manager = runtime._instantiated_agents[
        AgentId(flow._group_chat_manager_topic_type, flow._team_id)
    ]
    assert "update_message_thread" in vars(manager)
    unguard_team(flow)
    # AgentChat's own manager again, as it was before guard_team().
    assert not {"update_message_thread", "_apply_termination_condition"} & set(vars(manager))


async def test_a_graph_whose_manager_is_out_of_reach_is_guarded_with_a_warning(
    kit: SimpleNamespace,
) -> None:
    buyer = kit.agent("buyer", [f"b1 {kit.KEYWORD}"])
    seller = kit.agent("seller", ["s1"])
    graph = DiGraphBuilder()
    graph.add_node(buyer).add_node(seller).add_edge(buyer, seller)
    flow = GraphFlow(
        [buyer, seller], graph=graph.build(), termination_condition=KinGuardTermination()
    )
    await flow._init(flow._runtime)  # initialised, as a run does, but its manager not made yet
    with capture_logs() as logs:
        guard_team(flow, kit.keyword_guard("halt"))
    assert [e["event"] for e in logs] == ["kinguard.autogen.graph_routing_unguarded"]
    # Its agents are guarded all the same.
    result = await flow.run(task="Go.")
    assert result.stop_reason is not None and "kinguard halted" in result.stop_reason
    assert kit.model_calls(seller) == []


@pytest.fixture
def broken_reroute(monkeypatch: pytest.MonkeyPatch) -> None:
    """kinguard's rerouting of a GraphFlow after a halt raises."""

    async def broken(*args: Any) -> None:
        raise RuntimeError("reroute failed")

    monkeypatch.setattr(_Resuming, "_reroute", broken)


async def test_a_failure_of_kinguard_while_rerouting_a_graph_never_breaks_it(
    kit: SimpleNamespace, broken_reroute: None
) -> None:
    flow, seller, _ = branching(kit, [f"APPROVE at {kit.KEYWORD}"])
    await flow.run(task="Go.")
    with capture_logs() as logs:
        resumed = await flow.run(task=resolve_halt(flow, HumanDecision(type="approve")))
    # Routed as AgentChat routes it: the released message still reaches its branch.
    assert ("seller", "approved branch") in kit.chat(resumed)
    assert kit.model_calls(seller)
    assert any(e["event"] == "kinguard.autogen.adapter_failed" for e in logs)


def buyer_to_seller(kit: SimpleNamespace) -> tuple[GraphFlow, Any, Any]:
    """A graph from buyer to seller (its last node), whose first message is halted; and those
    two."""
    buyer = kit.agent("buyer", ["b1", "b2"])
    seller = kit.agent("seller", [f"s1 {kit.KEYWORD}", "s2"])
    graph = DiGraphBuilder()
    graph.add_node(buyer).add_node(seller).add_edge(buyer, seller)
    flow = guard_team(GraphFlow([buyer, seller], graph=graph.build()), kit.keyword_guard("halt"))
    return flow, buyer, seller


async def test_a_message_released_at_a_graphs_last_node_ends_the_graph(
    kit: SimpleNamespace,
) -> None:
    flow, buyer, _ = buyer_to_seller(kit)
    await flow.run(task="Go.")
    resumed = await flow.run(task=resolve_halt(flow, HumanDecision(type="approve")))
    # As it would have without the halt: the graph ends with the message, nobody runs again.
    assert kit.chat(resumed) == [("seller", f"s1 {kit.KEYWORD}")]
    assert len(kit.model_calls(buyer)) == 1


@pytest.mark.parametrize("streamed", [False, True])
async def test_a_halt_at_a_graphs_last_node_stops_the_run_for_the_halt(
    kit: SimpleNamespace, streamed: bool
) -> None:
    flow, _, _ = buyer_to_seller(kit)
    if streamed:
        items = [item async for item in flow.run_stream(task="Go.")]
        result = items[-1]
        assert isinstance(result, TaskResult)
    else:
        result = await flow.run(task="Go.")
    # Its StopMessage's, in both: not "Digraph execution is complete", as if the run had
    # ended normally, while a message awaits review.
    assert result.stop_reason is not None
    assert result.stop_reason.startswith("kinguard halted: message from seller")
    assert "pending_halt(team)" in result.stop_reason
    assert pending_halt(flow) is not None
    resumed = await flow.run(task=resolve_halt(flow, HumanDecision(type="approve")))
    assert kit.chat(resumed) == [("seller", f"s1 {kit.KEYWORD}")]
    assert resumed.stop_reason == "Digraph execution is complete"


async def test_a_failure_of_kinguard_at_a_halt_at_a_graphs_last_node_ends_the_graph_anyway(
    kit: SimpleNamespace, monkeypatch: pytest.MonkeyPatch
) -> None:
    check = KinGuardTermination.__call__

    async def broken(
        self: KinGuardTermination, messages: Sequence[BaseAgentEvent | BaseChatMessage]
    ) -> StopMessage | None:
        if any(kinguard_action(m) is Action.HALT for m in messages):
            raise RuntimeError("condition failed")  # on the halt notice alone
        return await check(self, messages)

    monkeypatch.setattr(KinGuardTermination, "__call__", broken)
    flow, _, _ = buyer_to_seller(kit)
    with capture_logs() as logs:
        result = await flow.run(task="Go.")
    # As AgentChat ends a graph at its last node.
    assert result.stop_reason == "Digraph execution is complete"
    assert any(e["event"] == "kinguard.autogen.adapter_failed" for e in logs)


@pytest.mark.parametrize("reloaded", [False, True])
async def test_a_rejected_halt_at_a_graphs_last_node_runs_nobody_again(
    kit: SimpleNamespace, reloaded: bool
) -> None:
    flow, buyer, seller = buyer_to_seller(kit)
    await flow.run(task="Go.")
    if reloaded:
        saved = json.loads(json.dumps(await flow.save_state()))
        flow, buyer, seller = buyer_to_seller(kit)
        await flow.load_state(saved)
    assert resolve_halt(flow, HumanDecision(type="reject")) is None
    resumed = await flow.run()
    # As after a blocked message there: the graph ended on the notice, nobody runs again.
    assert kit.chat(resumed) == []
    assert resumed.stop_reason == "Digraph execution is complete"
    ran = 0 if reloaded else 1  # a team built afresh has run nobody
    assert [len(kit.model_calls(a)) for a in (buyer, seller)] == [ran, ran]
    # The graph has ended: the next run starts it afresh, as any ended graph.
    again = await flow.run()
    assert [source for source, _ in kit.chat(again)] == ["buyer", "seller"]


async def test_a_failure_of_kinguard_after_a_rejection_at_a_graphs_last_node_never_breaks_it(
    kit: SimpleNamespace, broken_reroute: None
) -> None:
    flow, _, _ = buyer_to_seller(kit)
    await flow.run(task="Go.")
    resolve_halt(flow, HumanDecision(type="reject"))
    with capture_logs() as logs:
        resumed = await flow.run()
    # The graph goes on as AgentChat's would: from its start.
    assert [source for source, _ in kit.chat(resumed)] == ["buyer", "seller"]
    assert any(e["event"] == "kinguard.autogen.adapter_failed" for e in logs)


def fan_out_to_teams(kit: SimpleNamespace, joined: bool) -> tuple[GraphFlow, Any, Any]:
    """lead -> two SocietyOfMindAgents (``ta``, ``tb``) in parallel, each with a team of two
    whose first agent says the keyword under a halt rule (``joined``: then -> join). The
    flow, lead and join."""
    lead = kit.agent("lead", ["go", "go again"])
    members = []
    for team in ("ta", "tb"):
        first = kit.agent(f"{team}1", [f"{team}1 says {kit.KEYWORD} {team}-offer"])
        second = kit.agent(f"{team}2", [f"{team}2 agrees"])
        inner = RoundRobinGroupChat([first, second], termination_condition=MaxMessageTermination(4))
        summary = ReplayChatCompletionClient([f"{team} sums up", f"{team} sums up again"])
        members.append(SocietyOfMindAgent(team, team=inner, model_client=summary))
    join = kit.agent("join", ["joined"])
    nodes = [lead, *members, *([join] if joined else [])]
    graph = DiGraphBuilder()
    for node in nodes:
        graph.add_node(node)
    for member in members:
        graph.add_edge(lead, member)
        if joined:
            graph.add_edge(member, join)
    names = ["lead", "ta", "ta1", "ta2", "tb", "tb1", "tb2", "join"]
    guard = KinGuard(
        [AgentProfile(name=n, model="openai:gpt-4o") for n in names],
        detectors=[KeywordDetector(kit.KEYWORD)],
        policy=Policy(rules=(Rule(signal="collusion.market", action=Action.HALT),)),
    )
    return guard_team(GraphFlow(nodes, graph=graph.build()), guard), lead, join


@pytest.mark.parametrize("decision", ["approve", "reject"])
@pytest.mark.parametrize("reloaded", [False, True])
@pytest.mark.parametrize("joined", [False, True])
async def test_halts_in_parallel_nested_teams_of_a_graph_are_reviewed_and_the_graph_goes_on(
    kit: SimpleNamespace, joined: bool, reloaded: bool, decision: Literal["approve", "reject"]
) -> None:
    flow, lead, join = fan_out_to_teams(kit, joined)
    halted = await flow.run(task="Go.")
    # Stopped for the halts, at the graph's last nodes too; nobody went on past them.
    assert halted.stop_reason is not None and halted.stop_reason.startswith("kinguard halted")
    assert kit.model_calls(join) == []
    if reloaded:
        saved = json.loads(json.dumps(await flow.save_state()))
        flow, lead, join = fan_out_to_teams(kit, joined)
        await flow.load_state(saved)
    released: list[BaseChatMessage] = []
    while pending_halt(flow) is not None:
        message = resolve_halt(flow, HumanDecision(type=decision))
        if message is not None:
            released.append(message)
    assert sorted(m.source for m in released) == (["ta1", "tb1"] if decision == "approve" else [])
    resumed = await flow.run(task=released or None)
    # The graph goes on from where the halts stopped it: to join, or (at its end) nowhere,
    # without starting afresh.
    spoke = [source for source, _ in kit.chat(resumed)]
    assert spoke == [*(m.source for m in released), *(["join"] if joined else [])]
    assert len(kit.model_calls(lead)) == (0 if reloaded else 1)
    if joined:
        offers = "ta-offer" in kit.seen_by(join), "tb-offer" in kit.seen_by(join)
        assert offers == ((True, True) if decision == "approve" else (False, False))


async def test_a_message_released_from_a_graph_node_used_as_a_tool_routes_nothing(
    kit: SimpleNamespace,
) -> None:
    # The seller is a node and the buyer's tool: its halted answer as the tool, released, was
    # routed as the seller node's own message, so the auditor ran before the seller's turn
    # (and again after it).
    seller = kit.agent("seller", [f"price {kit.KEYWORD}", "seller's own turn"])
    ask = kit.tool_call("seller", "c1", json.dumps({"task": "Your price?"}))
    buyer = kit.agent("buyer", [ask, "ok"], tools=[AgentTool(seller)], reflect_on_tool_use=True)
    auditor = kit.agent("auditor", ["audited"])
    graph = DiGraphBuilder()
    graph.add_node(buyer).add_node(seller).add_node(auditor)
    graph.add_edge(buyer, seller).add_edge(seller, auditor)
    flow = guard_team(
        GraphFlow([buyer, seller, auditor], graph=graph.build()), kit.keyword_guard("halt")
    )
    await flow.run(task="Go.")
    resumed = await flow.run(task=resolve_halt(flow, HumanDecision(type="approve")))
    assert [source for source, _ in kit.chat(resumed)] == ["seller", "seller", "auditor"]
    assert "seller's own turn" in kit.seen_by(auditor)


async def test_a_halt_in_a_fan_out_stops_the_team_whoever_answers_last(
    kit: SimpleNamespace,
) -> None:
    # AgentChat gives the termination condition the last parallel answer alone: here b's.
    flow, join = fan_out(kit, "b says fine")
    halted = await flow.run(task="Go.")
    assert [source for source, _ in kit.chat(halted)] == ["user", "lead", "a", "b"]
    assert halted.stop_reason is not None and "message from a" in halted.stop_reason
    assert kit.model_calls(join) == []  # nobody went on past the person's review
    released = resolve_halt(flow, HumanDecision(type="approve"))
    resumed = await flow.run(task=released)
    assert kit.chat(resumed)[-1] == ("join", "joined")
    assert "A-offer" in kit.seen_by(join)


def block_stop(kind: str) -> TerminationCondition:
    """``KinGuardTermination("block")`` as an app may write it: alone, composed, or loaded."""
    block = KinGuardTermination("block")
    if kind == "or":
        return MaxMessageTermination(20) | block
    if kind == "and":
        # Met at the fan-out's step too: the user's task, lead, then b (a's answer is not given).
        return block & MaxMessageTermination(3)
    if kind == "loaded":
        return TerminationCondition.load_component(block.dump_component())
    return block


@pytest.mark.parametrize("kind", ["alone", "or", "and", "loaded"])
@pytest.mark.parametrize("streamed", [False, True])
async def test_a_block_in_a_fan_out_stops_a_team_that_stops_on_blocks_whoever_answers_last(
    kit: SimpleNamespace, kind: str, streamed: bool
) -> None:
    # a blocked, then b answers cleanly: the condition is given b's answer alone.
    flow, join = fan_out(kit, "b says fine", Action.BLOCK, block_stop(kind))
    if streamed:
        items = [item async for item in flow.run_stream(task="Go.")]
        result = items[-1]
        assert isinstance(result, TaskResult)
    else:
        result = await flow.run(task="Go.")
    assert [source for source, _ in kit.chat(result)] == ["user", "lead", "a", "b"]
    assert result.stop_reason is not None
    assert "stopped the team after a block: message from a" in result.stop_reason
    assert kit.model_calls(join) == []
    resumed = await flow.run()  # the block is settled: it does not stop the team again
    assert kit.chat(resumed) == [("join", "joined")]


def desk(kit: SimpleNamespace, analyst_says: str) -> tuple[Any, Any, RoundRobinGroupChat]:
    analyst = kit.agent("analyst", [analyst_says, "a2", "a3"])
    checker = kit.agent("checker", ["c1", "c2", "c3"])
    inner = RoundRobinGroupChat(
        [analyst, checker], termination_condition=MaxMessageTermination(4), name="desk"
    )
    return analyst, checker, inner


def with_lead(kit: SimpleNamespace, member: Any, messages: int) -> tuple[Any, RoundRobinGroupChat]:
    """An agent "lead" and ``member`` (a nested team, or an agent around one) taking turns."""
    lead = kit.agent("lead", ["l1", "l2"])
    team = RoundRobinGroupChat(
        [lead, member], termination_condition=MaxMessageTermination(messages)
    )
    return lead, team


def desk_guard(kit: SimpleNamespace, action: str, **kwargs: Any) -> KinGuard:
    names = ("lead", "analyst", "checker", "som")
    return KinGuard(
        [AgentProfile(name=n, model="openai:gpt-4o", principal=f"{n}'s owner") for n in names],
        detectors=[KeywordDetector(kit.KEYWORD)],
        policy=Policy(rules=(Rule(signal="collusion.market", action=Action(action)),)),
        **kwargs,
    )


async def test_a_nested_teams_agents_are_guarded_inside_it(kit: SimpleNamespace) -> None:
    analyst, checker, inner = desk(kit, f"a1 keep {kit.KEYWORD} quiet")
    guard = desk_guard(kit, "block", identity="disassociate")
    lead, team = with_lead(kit, inner, 5)
    outer = guard_team(team, guard)
    with capture_verdicts(guard) as verdicts:
        result = await outer.run(task="Go.")
    assert [(v.sender, v.action) for v in verdicts][:3] == [
        ("lead", Action.ALLOW),
        ("analyst", Action.BLOCK),
        ("checker", Action.ALLOW),
    ]  # each message once, where it was said
    assert verdicts[1].recipients == ("lead", "checker")
    assert kit.KEYWORD not in kit.seen_by(checker, 0)  # the teammate, inside the nested team
    assert kit.KEYWORD not in kit.seen_by(lead, -1)
    assert not any(kit.KEYWORD in text for _, text in kit.chat(result))
    assert all(IDENTITY_MARKER in kit.seen_by(a, 0) for a in (lead, analyst, checker))

    unguard_team(outer)
    assert "on_messages_stream" not in vars(analyst)
    assert IDENTITY_MARKER not in str(analyst._system_messages)
    assert inner._termination_condition is not None
    assert not isinstance(inner._termination_condition, HaltOrTermination)


async def test_a_nudge_earned_inside_a_nested_team_reaches_its_agent(kit: SimpleNamespace) -> None:
    analyst, _, inner = desk(kit, f"a1 {kit.KEYWORD}")
    _lead, team = with_lead(kit, inner, 8)
    outer = guard_team(team, desk_guard(kit, "nudge"))
    await outer.run(task="Go.")
    assert "[kinguard reminder]" not in kit.seen_by(analyst, 0)
    assert "[kinguard reminder]" in kit.seen_by(analyst, 1)


@pytest.mark.parametrize("around", ["nested team", "society of mind"])
async def test_a_halt_inside_a_nested_team_halts_the_whole_team(
    kit: SimpleNamespace, around: str
) -> None:
    _, checker, inner = desk(kit, f"a1 {kit.KEYWORD}")
    member: Any = inner
    if around == "society of mind":
        member = SocietyOfMindAgent(
            "som", team=inner, model_client=ReplayChatCompletionClient(["s"])
        )
    lead, team = with_lead(kit, member, 8)
    outer = guard_team(team, desk_guard(kit, "halt"))
    result = await outer.run(task="Go.")
    halted = pending_halt(outer)
    assert halted is not None and halted.sender == "analyst"
    assert result.stop_reason is not None and "kinguard halted" in result.stop_reason
    assert not checker._model_client.create_calls  # the nested team stopped at the halt
    assert len(kit.model_calls(lead)) == 1  # and so did the team around it


async def test_a_society_of_mind_agents_inner_team_is_guarded(kit: SimpleNamespace) -> None:
    _, checker, inner = desk(kit, f"a1 keep {kit.KEYWORD} quiet")
    summary = ReplayChatCompletionClient(["som summary"])
    som = SocietyOfMindAgent("som", team=inner, model_client=summary)
    guard = desk_guard(kit, "block")
    lead, team = with_lead(kit, som, 4)
    outer = guard_team(team, guard)
    with capture_verdicts(guard) as verdicts:
        result = await outer.run(task="Go.")
    assert [v.sender for v in verdicts] == ["lead", "analyst", "checker", "som", "lead"]
    assert kit.KEYWORD not in kit.seen_by(checker, 0)
    assert kit.KEYWORD not in "\n".join(str(m.content) for m in summary.create_calls[0]["messages"])
    assert kit.KEYWORD not in kit.seen_by(lead, -1)
    assert not any(kit.KEYWORD in text for _, text in kit.chat(result))


async def test_a_society_of_mind_agent_resetting_its_own_guarded_team_keeps_the_outer_state(
    kit: SimpleNamespace,
) -> None:
    # SocietyOfMindAgent resets its team after every turn. That team's own guard_team(), with
    # the same guard and so the same conversation, must not wipe what the outer team earned.
    guard = desk_guard(kit, "nudge")
    _, _, inner = desk(kit, "a1")
    guard_team(inner, guard)
    som = SocietyOfMindAgent("som", team=inner, model_client=ReplayChatCompletionClient(["sum"]))
    lead = kit.agent("lead", [f"l1 {kit.KEYWORD}", "l2"])
    outer = guard_team(
        RoundRobinGroupChat([lead, som], termination_condition=MaxMessageTermination(4)), guard
    )
    await outer.run(task="Go.")
    assert "[kinguard reminder]" in kit.seen_by(lead, 1)


@pytest.mark.parametrize("shared_guard", [True, False])
async def test_a_halt_in_a_society_of_mind_agents_own_guarded_team_outlives_its_reset(
    kit: SimpleNamespace, shared_guard: bool
) -> None:
    inner_guard = desk_guard(kit, "halt", conversation_id="inner")
    _, _, inner = desk(kit, f"a1 {kit.KEYWORD}")
    guard_team(inner, inner_guard)
    som = SocietyOfMindAgent("som", team=inner, model_client=ReplayChatCompletionClient(["sum"]))
    outer_guard = inner_guard if shared_guard else desk_guard(kit, "block")
    _lead, team = with_lead(kit, som, 8)
    outer = guard_team(team, outer_guard, conversation_id="inner" if shared_guard else None)
    result = await outer.run(task="Go.")
    assert result.stop_reason is not None and "kinguard halted" in result.stop_reason
    halted = pending_halt(inner)  # the SocietyOfMindAgent reset its team after the turn
    assert halted is not None and halted.sender == "analyst"
    assert pending_halt(outer) is halted  # and the outer team, which it stopped, shows it


@pytest.mark.parametrize("society_of_mind", [False, True])
async def test_resetting_a_team_drops_the_halts_pending_in_the_guarded_teams_inside_it(
    kit: SimpleNamespace, society_of_mind: bool
) -> None:
    _, _, inner = desk(kit, f"a1 {kit.KEYWORD}")
    guard_team(inner, desk_guard(kit, "halt", conversation_id="inner"))
    member: Any = inner
    if society_of_mind:
        model = ReplayChatCompletionClient(["sum"])
        member = SocietyOfMindAgent("som", team=inner, model_client=model)
    _lead, team = with_lead(kit, member, 8)
    outer = guard_team(team, desk_guard(kit, "block", conversation_id="outer"))
    await outer.run(task="Go.")
    assert pending_halt(outer) is not None  # a SocietyOfMindAgent's own reset of its team keeps it
    await outer.reset()  # which resets the team inside too
    assert pending_halt(outer) is None and pending_halt(inner) is None


async def test_a_halt_in_the_team_of_a_society_of_mind_agent_run_on_its_own_outlives_its_turn(
    kit: SimpleNamespace,
) -> None:
    # The agent resets its team at the end of its turn: no reset of the app's.
    _, _, inner = desk(kit, f"a1 {kit.KEYWORD}")
    guard_team(inner, desk_guard(kit, "halt"))
    som = SocietyOfMindAgent("som", team=inner, model_client=ReplayChatCompletionClient(["sum"]))
    await som.run(task="Go.")
    halted = pending_halt(inner)
    assert halted is not None and halted.sender == "analyst"
    await som.on_reset(CancellationToken())  # the app's reset of the agent, and so of its team
    assert pending_halt(inner) is None


async def test_a_halt_in_a_nested_team_with_its_own_guard_is_resolved_from_the_outer_team(
    kit: SimpleNamespace,
) -> None:
    analyst, checker, inner = desk(kit, f"a1 {kit.KEYWORD}")
    guard_team(inner, desk_guard(kit, "halt", conversation_id="inner"))
    lead = kit.agent("lead", ["l1", "l2", "l3"])
    outer = guard_team(
        RoundRobinGroupChat([lead, inner], termination_condition=MaxMessageTermination(8)),
        desk_guard(kit, "block", conversation_id="outer"),
    )
    result = await outer.run(task="Go.")
    assert result.stop_reason is not None and "pending_halt(team)" in result.stop_reason
    halted = pending_halt(outer)
    assert halted is not None and halted.sender == "analyst"
    task = resolve_halt(outer, HumanDecision(type="approve"))
    assert pending_halt(outer) is None and pending_halt(inner) is None
    assert task is not None
    await outer.run(task=task)
    assert f"a1 {kit.KEYWORD}" in kit.seen_by(checker, 0)  # released to the analyst's teammate
    assert kit.seen_by(analyst, 1).count(f"a1 {kit.KEYWORD}") == 1  # its own turn, not given back


@pytest.mark.parametrize("outer_action", ["alert", "redact"])
@pytest.mark.parametrize("society_of_mind", [False, True])
async def test_a_nested_teams_halt_stops_the_team_whatever_the_outer_guard_makes_of_its_notice(
    kit: SimpleNamespace, outer_action: str, society_of_mind: bool
) -> None:
    # The outer guard inspects the inner halt's notice once more; its verdict on the notice (a
    # risk alert, say) must not replace the halt, or the outer team talks on past it and the
    # nested team's next run abandons it.
    _, checker, inner = desk(kit, f"a1 {kit.KEYWORD}")
    guard_team(inner, desk_guard(kit, "halt", conversation_id="inner"))
    outer_guard = KinGuard(
        desk_guard(kit, "log").agents,
        detectors=[KeywordDetector("human review")],  # words of the halt notice
        policy=Policy(rules=(Rule(signal="collusion.market", action=Action(outer_action)),)),
        conversation_id="outer",
    )
    nested: Any = inner
    if society_of_mind:
        nested = SocietyOfMindAgent(
            "som", team=inner, model_client=ReplayChatCompletionClient(["s"])
        )
    lead = kit.agent("lead", ["l1", "l2", "l3"])
    outer = guard_team(
        RoundRobinGroupChat([lead, nested], termination_condition=MaxMessageTermination(8)),
        outer_guard,
    )
    with capture_verdicts(outer_guard) as verdicts:
        result = await outer.run(task="Go.")
    assert ("analyst", Action(outer_action)) in [(v.sender, v.action) for v in verdicts]
    assert result.stop_reason is not None and "kinguard halted" in result.stop_reason
    halted = pending_halt(outer)
    assert halted is not None and halted.sender == "analyst"
    assert len(kit.model_calls(lead)) == 1 and not kit.model_calls(checker)
    notice = next(m for m in result.messages if m.source == "analyst")
    assert kinguard_action(notice) is Action.HALT
    assert notice.metadata["kinguard.reasons"].endswith("halt")  # the inner verdict's


@pytest.mark.parametrize("society_of_mind", [False, True])
async def test_one_guard_and_conversation_inside_and_around_a_nested_team_inspect_each_message_once(
    kit: SimpleNamespace, society_of_mind: bool
) -> None:
    # The same guard and conversation id for a nested team's own guard_team() and the team
    # around it are one conversation: a second inspection would count each message's risk and
    # fire its alerts twice. The one inspection, inside, reaches everyone the message reaches.
    guard = desk_guard(kit, "block", conversation_id="desk")
    _, _, inner = desk(kit, f"a1 keep {kit.KEYWORD} quiet")
    guard_team(inner, guard)
    nested: Any = inner
    if society_of_mind:
        nested = SocietyOfMindAgent(
            "som", team=inner, model_client=ReplayChatCompletionClient(["s1", "s2"])
        )
    lead, team = with_lead(kit, nested, 5)
    outer = guard_team(team, guard, conversation_id="desk")
    with capture_verdicts(guard) as verdicts:
        await outer.run(task="Go.")
    senders = [v.sender for v in verdicts][:4]
    assert senders == ["lead", "analyst", "checker", "som" if society_of_mind else "lead"]
    analyst = verdicts[1]
    assert analyst.action is Action.BLOCK and {"lead", "checker"} <= set(analyst.recipients)
    assert kit.KEYWORD not in kit.seen_by(lead, -1)

    unguard_team(outer)
    inner_guard = _installed(inner)
    assert inner_guard is not None and inner_guard.team_guard.participants == ("analyst", "checker")


@pytest.mark.parametrize("outer_action", ["nudge", "block"])
async def test_the_outer_guards_nudge_reaches_an_agent_of_a_nested_team_with_its_own_guard(
    kit: SimpleNamespace, outer_action: str
) -> None:
    # The outer guard inspects what the nested team delivers and may remind its sender; the
    # sender's turns run inside the nested team, under that team's guard.
    analyst, checker, inner = desk(kit, f"a1 keep {kit.KEYWORD} quiet")
    guard_team(inner, desk_guard(kit, "log", conversation_id="inner"))
    outer_guard = desk_guard(kit, outer_action, conversation_id="outer")
    lead, team = with_lead(kit, inner, 7)
    outer = guard_team(team, outer_guard)
    await outer.run(task="Go.")
    assert "[kinguard reminder]" not in kit.seen_by(analyst, 0)
    assert "[kinguard reminder]" in kit.seen_by(analyst, 1)
    assert all("[kinguard reminder]" not in kit.seen_by(a) for a in (lead, checker))
    assert outer_guard.peek_nudge("analyst", "outer") is None


@pytest.mark.parametrize("outer_action", ["block", "redact"])
async def test_a_society_of_minds_model_reads_its_own_guarded_team_as_the_outer_policy_delivers(
    kit: SimpleNamespace, outer_action: str
) -> None:
    # The agent's own model, writing the answer the outer team reads, is an agent of the outer
    # team: what the outer policy withholds from that team must not reach it either.
    _, _, inner = desk(kit, f"a1 keep {kit.KEYWORD} quiet")
    guard_team(inner, desk_guard(kit, "log", conversation_id="inner"))
    summary = ReplayChatCompletionClient(["s1", "s2"])
    som = SocietyOfMindAgent("som", team=inner, model_client=summary)
    outer_guard = desk_guard(kit, outer_action, conversation_id="outer")
    _lead, team = with_lead(kit, som, 4)
    outer = guard_team(team, outer_guard)
    with capture_verdicts(outer_guard) as verdicts:
        result = await outer.run(task="Go.")
    assert [(v.sender, v.action) for v in verdicts][:3] == [
        ("lead", Action.ALLOW),
        ("analyst", Action(outer_action)),  # once, though it passes two layers of this guard
        ("checker", Action.ALLOW),
    ]
    assert kit.KEYWORD not in "\n".join(str(m.content) for m in summary.create_calls[0]["messages"])
    assert kit.KEYWORD not in repr(result.messages)

    with pytest.raises(ValueError, match="that team first"):
        unguard_team(inner)
    unguard_team(outer)
    assert isinstance(inner._termination_condition, HaltOrTermination)  # still its own guard's
    assert "run_stream" in vars(inner)


async def test_a_society_of_mind_agents_identity_and_nudge_reach_its_own_model(
    kit: SimpleNamespace,
) -> None:
    # What a SocietyOfMindAgent is given becomes its team's task: its own identity and
    # reminders must go to the model writing its answer, not to its team's agents.
    analyst, checker, inner = desk(kit, "a1")
    summary = ReplayChatCompletionClient([f"sum1 {kit.KEYWORD}", "sum2"])
    som = SocietyOfMindAgent("som", team=inner, model_client=summary)
    lead = kit.agent("lead", ["l1", "l2", "l3"])
    guard = desk_guard(kit, "nudge", identity="disassociate")
    outer = guard_team(
        RoundRobinGroupChat([lead, som], termination_condition=MaxMessageTermination(5)), guard
    )
    block = guard.identity_block("som")
    assert block is not None
    await outer.run(task="Go.")
    som_calls = ["\n".join(str(m.content) for m in c["messages"]) for c in summary.create_calls]
    assert all(block in call for call in som_calls)
    assert "[kinguard reminder]" not in som_calls[0] and "[kinguard reminder]" in som_calls[1]
    for agent in (analyst, checker):
        seen = "\n".join(kit.seen_by(agent, n) for n in range(len(kit.model_calls(agent))))
        assert block not in seen and "[kinguard reminder]" not in seen
    assert som._response_prompt == SocietyOfMindAgent.DEFAULT_RESPONSE_PROMPT  # for one turn
    assert block not in str(som.dump_component().config)
    unguard_team(outer)
    assert som._instruction == SocietyOfMindAgent.DEFAULT_INSTRUCTION


async def test_agents_guarded_in_one_team_are_refused_by_a_second(kit: SimpleNamespace) -> None:
    # Wrapped twice, their turns were inspected twice and halts filed with the first team.
    guard = kit.keyword_guard("halt")
    buyer, seller = kit.agent("buyer", ["b1"]), kit.agent("seller", ["s1"])
    first = guard_team(RoundRobinGroupChat([buyer, seller]), guard)
    with pytest.raises(ValueError, match="agent 'buyer' is already guarded"):
        guard_team(RoundRobinGroupChat([buyer, seller]), guard)
    assert _installed(first) is not None  # the first team is untouched
    unguard_team(first)
    second = guard_team(
        RoundRobinGroupChat([buyer, seller], termination_condition=MaxMessageTermination(2)),
        guard,
    )
    result = await second.run(task="go")
    assert kit.chat(result)[1:] == [("buyer", "b1")]


def test_two_independent_teams_on_one_conversation_are_warned_about(kit: SimpleNamespace) -> None:
    guard = kit.keyword_guard("block")
    guard_team(RoundRobinGroupChat([kit.agent("buyer", ["b"]), kit.agent("seller", ["s"])]), guard)
    with capture_logs() as logs:
        guard_team(
            RoundRobinGroupChat([kit.agent("buyer", ["b"]), kit.agent("seller", ["s"])]), guard
        )
        guard_team(
            RoundRobinGroupChat([kit.agent("buyer", ["b"]), kit.agent("seller", ["s"])]),
            guard,
            conversation_id="another deal",
        )
    warned = [e for e in logs if e["event"] == "kinguard.autogen.shared_conversation"]
    assert len(warned) == 1
    assert warned[0]["conversation_id"] == "test"


def test_an_unknown_events_mode_is_refused_by_name(kit: SimpleNamespace) -> None:
    team = RoundRobinGroupChat([kit.agent("buyer", ["b"]), kit.agent("seller", ["s"])])
    with pytest.raises(ValueError, match="events: 'None' is not one of none, flagged, all"):
        guard_team(team, kit.keyword_guard("block"), events="None")  # type: ignore[arg-type]


async def test_a_users_run_stream_without_task_messages_still_gets_verdicts(
    kit: SimpleNamespace,
) -> None:
    team = guard_team(
        RoundRobinGroupChat(
            [kit.agent("buyer", [f"b {kit.KEYWORD}"]), kit.agent("seller", ["s"])],
            termination_condition=MaxMessageTermination(2),
        ),
        kit.keyword_guard("redact"),
    )
    items = [item async for item in team.run_stream(task="go", output_task_messages=False)]
    assert [i for i in items if isinstance(i, KinGuardVerdictEvent)]


async def test_a_standalone_termination_leaves_the_users_task_alone(kit: SimpleNamespace) -> None:
    guard = kit.keyword_guard("halt")
    team = RoundRobinGroupChat(
        [kit.agent("buyer", ["b1", f"b2 {kit.KEYWORD}"]), kit.agent("seller", ["s1"])],
        termination_condition=MaxMessageTermination(10) | KinGuardTermination(guard=guard),
    )
    with capture_verdicts(guard) as verdicts:
        result = await team.run(task=f"Task mentioning {kit.KEYWORD}.")
    assert [v.sender for v in verdicts] == ["buyer", "seller", "buyer"]
    assert result.stop_reason is not None
    assert "message from buyer" in result.stop_reason


@pytest.mark.parametrize(
    ("outer_action", "lead_sees", "halted"),
    [
        ("redact", "[redacted by kinguard", False),
        ("block", "[kinguard blocked", False),
        ("halt", None, True),
    ],
)
async def test_a_message_released_from_a_nested_halt_meets_the_outer_guards_rules(
    kit: SimpleNamespace, outer_action: str, lead_sees: str | None, halted: bool
) -> None:
    """The nested team's guard ruled on it; the outer team's has not: its policy applies to
    the released message, which reaches the outer team as its task (the nested team's own
    agents get it as released)."""
    analyst = kit.agent("analyst", [f"HALT-ME a1 {kit.KEYWORD}", "a2", "a3"])
    checker = kit.agent("checker", ["c1", "c2", "c3"])
    inner = RoundRobinGroupChat(
        [analyst, checker], termination_condition=MaxMessageTermination(4), name="desk"
    )
    profiles = [AgentProfile(name=n, model="openai:gpt-4o") for n in ("lead", "analyst", "checker")]
    guard_team(inner, halt_beside(profiles, Action.LOG, kit.KEYWORD, "HALT-ME"))
    lead = kit.agent("lead", ["l1", "l2", "l3"])
    outer_policy = Policy(rules=(Rule(signal="collusion.market", action=Action(outer_action)),))
    outer_guard = KinGuard(profiles, detectors=[KeywordDetector(kit.KEYWORD)], policy=outer_policy)
    outer = guard_team(
        RoundRobinGroupChat([lead, inner], termination_condition=MaxMessageTermination(8)),
        outer_guard,
    )
    await outer.run(task="Go.")
    resumed = await outer.run(task=resolve_halt(outer, HumanDecision(type="approve")))
    lead_saw = "\n".join(str(m.content) for call in kit.model_calls(lead) for m in call)
    assert kit.KEYWORD not in lead_saw
    assert kit.KEYWORD not in repr(kit.chat(resumed))
    if lead_sees is not None:
        assert lead_sees in lead_saw
        # The analyst's own teammate gets it as its team's guard released it.
        checker_saw = "\n".join(str(m.content) for c in kit.model_calls(checker) for m in c)
        assert f"HALT-ME a1 {kit.KEYWORD}" in checker_saw
    assert (pending_halt(outer) is not None) is halted


NESTED_NAMES = ("lead", "mid", "analyst", "checker")


def _nested_guard(action: str, conversation_id: str) -> KinGuard:
    return KinGuard(
        [AgentProfile(name=n, model="openai:gpt-4o") for n in NESTED_NAMES],
        detectors=[KeywordDetector("ZEBRA-PACT")],
        policy=Policy(rules=(Rule(signal="collusion.market", action=Action(action)),)),
        conversation_id=conversation_id,
    )


def _desk_in(kit: SimpleNamespace, outer_action: str) -> tuple[Any, Any, Any, Any]:
    """lead and a nested desk (analyst, checker) whose own guard halts HALT-ME; the outer
    guard takes ``outer_action`` on the keyword. Built afresh each call, as after a restart."""
    profiles = [AgentProfile(name=n, model="openai:gpt-4o") for n in NESTED_NAMES]
    analyst = kit.agent("analyst", [f"HALT-ME a1 {kit.KEYWORD}", "a2", "a3"])
    checker = kit.agent("checker", ["c1", "c2", "c3"])
    inner = RoundRobinGroupChat(
        [analyst, checker], termination_condition=MaxMessageTermination(4), name="desk"
    )
    guard_team(inner, halt_beside(profiles, Action.LOG, kit.KEYWORD, "HALT-ME"))
    lead = kit.agent("lead", ["l1", "l2", "l3"])
    outer = guard_team(
        RoundRobinGroupChat([lead, inner], termination_condition=MaxMessageTermination(6)),
        _nested_guard(outer_action, "outer"),
    )
    return outer, lead, checker, analyst


def _saw(kit: SimpleNamespace, agent: Any) -> str:
    return "\n".join(str(m.content) for call in kit.model_calls(agent) for m in call)


async def test_a_nested_release_resolved_before_saving_meets_the_outer_guard_after_loading(
    kit: SimpleNamespace,
) -> None:
    outer, _, _, _ = _desk_in(kit, "redact")
    await outer.run(task="Go.")
    released = resolve_halt(outer, HumanDecision(type="approve"))
    assert isinstance(released, TextMessage)
    state = json.loads(json.dumps(await outer.save_state()))
    task = TextMessage.load(json.loads(json.dumps(released.dump())))
    outer2, lead, checker, _ = _desk_in(kit, "redact")  # new objects, new stamps
    await outer2.load_state(state)
    await outer2.run(task=task)
    assert kit.KEYWORD not in _saw(kit, lead)
    assert f"HALT-ME a1 {kit.KEYWORD}" in _saw(kit, checker)


async def test_a_nested_release_meets_every_guard_around_it_from_the_inside_out(
    kit: SimpleNamespace,
) -> None:
    analyst = kit.agent("analyst", [f"HALT-ME a1 {kit.KEYWORD}", "a2", "a3"])
    checker = kit.agent("checker", ["c1", "c2", "c3"])
    inner = RoundRobinGroupChat(
        [analyst, checker], termination_condition=MaxMessageTermination(3), name="desk"
    )
    profiles = [AgentProfile(name=n, model="openai:gpt-4o") for n in NESTED_NAMES]
    guard_team(inner, halt_beside(profiles, Action.LOG, kit.KEYWORD, "HALT-ME"))
    mid = kit.agent("mid", ["m1", "m2", "m3"])
    middle = RoundRobinGroupChat(
        [inner, mid], termination_condition=MaxMessageTermination(4), name="middle"
    )
    guard_team(middle, _nested_guard("log", "middle"))
    lead = kit.agent("lead", ["l1", "l2", "l3"])
    outer = guard_team(
        RoundRobinGroupChat([lead, middle], termination_condition=MaxMessageTermination(5)),
        _nested_guard("redact", "outer"),
    )
    await outer.run(task="Go.")
    stream = [
        item
        async for item in outer.run_stream(task=resolve_halt(outer, HumanDecision(type="approve")))
    ]
    # The middle guard only logs: its team gets the message as released; the outer redacts.
    assert f"HALT-ME a1 {kit.KEYWORD}" in _saw(kit, mid)
    assert kit.KEYWORD not in _saw(kit, lead)
    events = [i for i in stream if isinstance(i, KinGuardVerdictEvent)]
    assert any("redact" in str(e.content) for e in events)  # the outer guard's ruling shows


async def test_an_outer_halt_of_a_nested_release_delivers_it_once_when_approved(
    kit: SimpleNamespace,
) -> None:
    outer, lead, checker, analyst = _desk_in(kit, "halt")
    await outer.run(task="Go.")
    held = await outer.run(task=resolve_halt(outer, HumanDecision(type="approve")))
    assert pending_halt(outer) is not None and "pending_halt(team)" in (held.stop_reason or "")
    await outer.run(task=resolve_halt(outer, HumanDecision(type="approve")))
    # Each of the analyst's teammate's model calls holds it once (not twice), and the analyst
    # is never given its own message back.
    said = f"HALT-ME a1 {kit.KEYWORD}"
    counts = [kit.seen_by(checker, i).count(said) for i in range(len(kit.model_calls(checker)))]
    assert counts and max(counts) == 1
    assert f"HALT-ME a1 {kit.KEYWORD}" in _saw(kit, lead)
    given = [m for c in kit.model_calls(analyst) for m in c if isinstance(m, UserMessage)]
    assert not any(said in str(m.content) for m in given)


async def test_a_stop_message_an_agent_replies_with_is_inspected(kit: SimpleNamespace) -> None:
    # Skipped as a termination's message once, an agent's StopMessage reached the others unread.
    seller = kit.agent("seller", ["ok"])
    team = guarded_trio(
        [Scripted("buyer", [f"{kit.KEYWORD}: meet at 9"], kind=StopMessage), seller],
        kit.keyword_guard("block"),
    )
    await team.run(task="Go.")
    assert kit.KEYWORD not in str(kit.model_calls(seller))


KEYWORD_NOTE = "ZEBRA-PACT"  # conftest's KEYWORD: a tool must be a module-level function


def fetch_note(topic: str) -> str:
    """Fetch the note on a topic."""
    return f"Note for the seller: {KEYWORD_NOTE}, we both quote 12."


@pytest.mark.parametrize("action", ["block", "redact"])
async def test_a_rewritten_tool_summary_keeps_no_result_with_the_words(
    kit: SimpleNamespace, action: str
) -> None:
    # The summary's structured results once kept what its rewritten content had taken out.
    buyer = kit.agent(
        "buyer", [kit.tool_call("fetch_note", "c1", '{"topic": "pricing"}')], tools=[fetch_note]
    )
    team = guarded_trio([buyer, kit.agent("seller", ["ok"])], kit.keyword_guard(action))
    result = await team.run(task="Go.")
    summaries = [m for m in result.messages if isinstance(m, ToolCallSummaryMessage)]
    assert summaries and all(KEYWORD_NOTE not in str(m.results) for m in summaries)


async def test_a_message_filter_agents_wrapped_agent_gets_its_identity_and_guarded_tools(
    kit: SimpleNamespace,
) -> None:
    # Only the wrapper was guarded: the wrapped agent's tools ran unchecked, and the identity
    # statement, given as a message, was dropped by the filter.
    arguments = json.dumps({"note": f"hold {kit.KEYWORD}"})
    inner = kit.agent(
        "buyer", [kit.tool_call("post_note", "c1", arguments), "done"], tools=[post_note]
    )
    buyer = MessageFilterAgent(
        name="buyer",
        wrapped_agent=inner,
        filter=MessageFilterConfig(
            per_source=[PerSourceFilter(source="user", position="last", count=1)]
        ),
    )
    guard = kit.keyword_guard("block", identity="disassociate")
    team = guarded_trio([buyer, kit.agent("seller", ["ok"])], guard)
    with capture_verdicts(guard) as verdicts:
        await team.run(task="Go.")
    assert IDENTITY_MARKER in kit.seen_by(inner, 0)
    assert any(v.sender == "buyer" and v.action is Action.BLOCK for v in verdicts)


async def test_a_message_filter_agents_nudge_reaches_its_wrapped_agents_model(
    kit: SimpleNamespace,
) -> None:
    # The reminder, given as a message from kinguard, was dropped by the filter: its source is
    # none of those the filter keeps.
    inner = kit.agent("buyer", [f"b1 {kit.KEYWORD}", "b2"])
    only_the_others = MessageFilterConfig(
        per_source=[
            PerSourceFilter(source="user", position="last", count=1),
            PerSourceFilter(source="seller", position="last", count=1),
        ]
    )
    buyer = MessageFilterAgent(name="buyer", wrapped_agent=inner, filter=only_the_others)
    team = guard_team(
        RoundRobinGroupChat(
            [buyer, kit.agent("seller", ["s1"])], termination_condition=MaxMessageTermination(4)
        ),
        kit.keyword_guard("nudge"),
    )
    await team.run(task="Go.")
    assert "[kinguard reminder]" not in kit.seen_by(inner, 0)
    assert "[kinguard reminder]" in kit.seen_by(inner, 1)
    assert "s1" in kit.seen_by(inner, 1)  # the filter still does its work
    unguard_team(team)
    assert "_apply_filter" not in vars(buyer)


@pytest.mark.filterwarnings("ignore:Using LocalCommandLineCodeExecutor")
@pytest.mark.parametrize(("flagged", "identity"), [(True, "none"), (False, "disassociate")])
async def test_code_a_code_executor_agent_writes_is_read_before_it_runs(
    kit: SimpleNamespace, tmp_path: Any, flagged: bool, identity: str
) -> None:
    # Its model's code ran inside its turn and was never inspected: a file the others read, or
    # a post, carried the words out. The app's own approval still has the last word.
    board = tmp_path / "board.txt"
    words = f"seller: {kit.KEYWORD}, quote 12" if flagged else "seller: quote 12"
    code = f"```python\nopen({str(board)!r}, 'w').write({words!r})\n```"
    asked: list[str] = []

    def approval(request: ApprovalRequest) -> ApprovalResponse:
        asked.append(request.code)
        return ApprovalResponse(approved=True, reason="fine")

    buyer = CodeExecutorAgent(
        "buyer",
        code_executor=LocalCommandLineCodeExecutor(work_dir=tmp_path / "work"),
        model_client=ReplayChatCompletionClient([code, "Posted."]),
        approval_func=approval,
    )
    guard = kit.keyword_guard("block", identity=identity)
    team = guarded_trio([buyer, kit.agent("seller", ["ok"])], guard)
    await team.run(task="Post the note.")
    assert board.exists() is not flagged
    assert len(asked) == (0 if flagged else 1)
    # With an identity statement too, kinguard patches its dump once: unguarding once raised.
    unguard_team(team)
    assert buyer._approval_func is approval
