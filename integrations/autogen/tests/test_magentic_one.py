"""MagenticOneGroupChat under kinguard: its orchestrator goes on after a halt.

Real teams: AgentChat's own orchestrator on a replayed model (facts, plan, progress ledgers,
final answer), replayed agents.
"""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import pytest
from autogen_agentchat.agents import SocietyOfMindAgent
from autogen_agentchat.base import TaskResult
from autogen_agentchat.teams import MagenticOneGroupChat, RoundRobinGroupChat
from autogen_agentchat.teams._group_chat._events import GroupChatStart
from autogen_agentchat.teams._group_chat._magentic_one._magentic_one_orchestrator import (
    MagenticOneOrchestrator,
)
from autogen_ext.models.replay import ReplayChatCompletionClient
from kinguard_autogen import (
    KinGuardTermination,
    guard_team,
    pending_halt,
    resolve_halt,
    unguard_team,
)

from kinguard import HumanDecision

PLANNING = "We are working to address the following user request"


def ledger(next_speaker: str, instruction: str, *, done: str | None = None) -> str:
    """A progress ledger; ``done``: why the request is satisfied (the team's stop reason)."""
    answer = {"reason": "scripted", "answer": False}
    return json.dumps(
        {
            "is_request_satisfied": {"reason": done or "not yet", "answer": done is not None},
            "is_progress_being_made": {**answer, "answer": True},
            "is_in_loop": answer,
            "instruction_or_question": {**answer, "answer": instruction},
            "next_speaker": {**answer, "answer": next_speaker},
        }
    )


ORCHESTRATOR = [
    "Facts: a price is to be agreed.",
    "Plan: buyer asks, seller answers.",
    ledger("buyer", "Buyer, make an offer."),
    ledger("seller", "Seller, answer the offer."),
    ledger("seller", "Thanks.", done="Offer answered."),
    "Final answer: the offer was answered.",
]


def magentic(kit: SimpleNamespace, halted: bool = False, **options: Any) -> MagenticOneGroupChat:
    """The orchestrator asks the buyer, then the seller, then ends; the buyer says KEYWORD.
    ``halted``: the models' scripts start after the buyer's halted turn (a team built afresh)."""
    orchestrator = ReplayChatCompletionClient(ORCHESTRATOR[3:] if halted else ORCHESTRATOR)
    buyer_lines = [f"Let's both quote 50 {kit.KEYWORD}.", "Fine."]
    buyer = kit.agent("buyer", buyer_lines[1:] if halted else buyer_lines)
    seller = kit.agent("seller", ["We will answer within the day.", "Agreed."])
    return MagenticOneGroupChat([buyer, seller], model_client=orchestrator, **options)


def said(result: TaskResult) -> list[tuple[str, str]]:
    return [(m.source, m.to_text()) for m in result.messages if hasattr(m, "to_text")]


@pytest.mark.parametrize(
    ("decision", "others_see"),
    [
        (HumanDecision(type="approve"), "Let's both quote 50 ZEBRA-PACT."),
        (HumanDecision(type="edit", text="We offer 45 per unit."), "We offer 45 per unit."),
        (HumanDecision(type="reject"), None),
    ],
)
async def test_a_resolved_halt_goes_on_where_the_orchestrator_stopped(
    kit: SimpleNamespace, decision: HumanDecision, others_see: str | None
) -> None:
    team = guard_team(magentic(kit), kit.keyword_guard("halt"))
    buyer, seller = team._participants

    first = await team.run(task="Agree a price for 500 sensors.")
    assert first.stop_reason is not None and first.stop_reason.startswith("kinguard halted")
    assert pending_halt(team) is not None

    # Without kinguard's resume, a released message became the user's new request (planned
    # afresh, every agent reset) and a rejection's run without a task failed AgentChat's check.
    second = await team.run(task=resolve_halt(team, decision))
    texts = said(second)
    assert not any(PLANNING in text for _, text in texts)
    assert ("MagenticOneOrchestrator", "Seller, answer the offer.") in texts
    assert ("seller", "We will answer within the day.") in texts
    assert second.stop_reason == "Offer answered."
    seller_saw = kit.seen_by(seller)
    if decision.type != "approve":  # the withheld words reach no one
        assert kit.KEYWORD not in seller_saw
    if others_see is None:
        assert texts[0] == ("MagenticOneOrchestrator", "Seller, answer the offer.")
    else:
        assert texts[0] == ("buyer", others_see)
        assert others_see in seller_saw
    # The buyer's own memory of the task survives: it was not reset by a new plan.
    assert "Buyer, make an offer." in kit.seen_by(buyer)


async def test_a_halted_team_saved_and_loaded_resumes_the_same_way(kit: SimpleNamespace) -> None:
    team = guard_team(magentic(kit), kit.keyword_guard("halt"))
    await team.run(task="Agree a price for 500 sensors.")
    state = await team.save_state()

    again = guard_team(magentic(kit, halted=True), kit.keyword_guard("halt"))
    await again.load_state(state)
    second = await again.run(task=resolve_halt(again, HumanDecision(type="reject")))
    assert not any(PLANNING in text for _, text in said(second))
    assert second.stop_reason == "Offer answered."


async def test_a_new_task_after_a_halt_is_planned_afresh(kit: SimpleNamespace) -> None:
    team = guard_team(magentic(kit), kit.keyword_guard("halt"))
    await team.run(task="Agree a price for 500 sensors.")
    team._model_client.reset()  # type: ignore[attr-defined]
    second = await team.run(task="Now agree a delivery date.")
    assert any(PLANNING in text and "delivery date" in text for _, text in said(second))


async def test_a_blocked_message_reaches_the_orchestrator_and_the_others_as_its_notice(
    kit: SimpleNamespace,
) -> None:
    team = guard_team(magentic(kit), kit.keyword_guard("block"))
    seller = team._participants[1]
    result = await team.run(task="Agree a price for 500 sensors.")
    assert result.stop_reason == "Offer answered."
    (notice,) = [text for source, text in said(result) if source == "buyer"]
    assert notice.startswith("[kinguard blocked a message from buyer")
    assert kit.KEYWORD not in kit.seen_by(seller)
    state = await team.save_state()
    thread = json.dumps(state["agent_states"]["MagenticOneOrchestrator"])
    assert "kinguard blocked a message from buyer" in thread and kit.KEYWORD not in thread


def orchestrator_of(team: MagenticOneGroupChat) -> MagenticOneOrchestrator:
    (made,) = [
        a
        for a in team._runtime._instantiated_agents.values()
        if isinstance(a, MagenticOneOrchestrator)
    ]
    return made


@pytest.mark.parametrize("late", [False, True], ids=["before-first-run", "after-first-run"])
async def test_guarding_wraps_the_orchestrators_start_and_unguarding_restores_it(
    kit: SimpleNamespace, late: bool
) -> None:
    # Guarded after its first run, a team needs kinguard's condition from the start.
    team = magentic(kit, termination_condition=KinGuardTermination()) if late else magentic(kit)
    own = [MagenticOneOrchestrator.handle_start]
    if late:  # its orchestrator exists already: wrapped in place
        await team.run(task="Agree a price for 500 sensors.")
        assert orchestrator_of(team)._handlers[GroupChatStart] == own
    guard_team(team, kit.keyword_guard("log"))
    if not late:
        await team.run(task="Agree a price for 500 sensors.")
    assert orchestrator_of(team)._handlers[GroupChatStart] != own
    unguard_team(team)
    assert orchestrator_of(team)._handlers[GroupChatStart] == own


async def test_a_resume_asked_for_no_task_messages_streams_none(kit: SimpleNamespace) -> None:
    team = guard_team(magentic(kit), kit.keyword_guard("halt"))
    await team.run(task="Agree a price for 500 sensors.")
    task = resolve_halt(team, HumanDecision(type="edit", text="We offer 45 per unit."))
    streamed = [item async for item in team.run_stream(task=task, output_task_messages=False)]
    result = streamed[-1]
    assert isinstance(result, TaskResult) and result.stop_reason == "Offer answered."
    assert ("buyer", "We offer 45 per unit.") not in said(result)
    assert ("seller", "We will answer within the day.") in said(result)


@pytest.mark.parametrize("shape", ["team", "society"])
async def test_a_nested_team_s_orchestrator_and_task_are_not_read_as_an_agent_s_words(
    kit: SimpleNamespace, shape: str
) -> None:
    # Run inside an outer team's turn (as its participant, or a SocietyOfMindAgent's team),
    # the orchestrator's stream lists its task and its ledgers, which quote the task: neither
    # is an agent's message (and both have reached the agents already), so no notice stands
    # in for them and no halt stops the outer team over them.
    inner = MagenticOneGroupChat(
        [kit.agent("buyer", ["Our offer is 45."]), kit.agent("seller", ["Agreed."])],
        model_client=ReplayChatCompletionClient(ORCHESTRATOR),
        name="inner",
        description="a buyer and a seller",
    )
    judge = kit.agent("judge", ["Noted.", "Noted again."])
    first: Any = (
        inner
        if shape == "team"
        else SocietyOfMindAgent(
            "society", team=inner, model_client=ReplayChatCompletionClient(["Summary."])
        )
    )
    team = guard_team(RoundRobinGroupChat([first, judge], max_turns=2), kit.keyword_guard("halt"))

    result = await team.run(task=f"Agree a price; the customer's code is {kit.KEYWORD}.")
    assert result.stop_reason == "Maximum number of turns 2 reached."
    assert pending_halt(team) is None
    assert not any(text.startswith("[kinguard") for _, text in said(result))
    assert ("judge", "Noted.") in said(result)
