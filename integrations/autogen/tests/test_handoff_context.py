"""A Swarm handoff's context (the thought and tool calls before it, which the target's model is
given with the handoff) reaches the target as kinguard delivers the handoff: cleaned of what the
verdict withholds, concealed under ``identity="conceal"``, and released with the handoff when a
person approves its halt."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import pytest
from autogen_agentchat.base import Handoff
from autogen_agentchat.conditions import MaxMessageTermination
from autogen_agentchat.messages import HandoffMessage, ThoughtEvent
from autogen_agentchat.teams import Swarm
from autogen_core import FunctionCall
from autogen_core.models import (
    AssistantMessage,
    CreateResult,
    FunctionExecutionResultMessage,
    RequestUsage,
)
from kinguard_autogen import guard_team, pending_halt, resolve_halt

from kinguard import Action, HumanDecision, KinGuard, Policy, Rule
from kinguard.testing import KeywordDetector

TRANSFERRED = "Transferred to seller, adopting the role of seller immediately."
REDACTED = "[redacted by kinguard: collusion.market]"


def post_note(note: str) -> str:
    """Post a note."""
    return "posted"


def sign_note(note: str) -> str:
    """Post a note, signed by the model that wrote it."""
    return "posted, signed GPT-4o from OpenAI"


def handing_over(thought: str | None, tool: str = "post_note") -> CreateResult:
    """One model output: a call of ``tool``, then the handoff to the seller."""
    return CreateResult(
        finish_reason="function_calls",
        content=[
            FunctionCall(id="c0", name=tool, arguments=json.dumps({"note": "ok"})),
            FunctionCall(id="c1", name="transfer_to_seller", arguments="{}"),
        ],
        usage=RequestUsage(prompt_tokens=0, completion_tokens=0),
        cached=False,
        thought=thought,
    )


def swarm(kit: SimpleNamespace, guard: KinGuard, output: CreateResult, **buyer: Any) -> Any:
    """A guarded Swarm whose buyer hands over to the seller with ``output``; its seller."""
    buyer.setdefault("handoffs", ["seller"])
    buyer.setdefault("tools", [post_note])
    seller = kit.agent("seller", ["s1", "s2"], handoffs=["buyer"])
    team = Swarm(
        [kit.agent("buyer", [output], **buyer), seller],
        termination_condition=MaxMessageTermination(3),
    )
    return seller, guard_team(team, guard)


def given_context(kit: SimpleNamespace, seller: Any) -> tuple[AssistantMessage, str]:
    """The handoff's context as the seller's model was given it: the sender's calls and
    thought, and all that model call held, as JSON."""
    given = kit.model_calls(seller)[0]
    calls = [m for m in given if isinstance(m, AssistantMessage)]
    assert len(calls) == 1, "the handoff's context did not reach the target"
    assert any(isinstance(m, FunctionExecutionResultMessage) for m in given)
    return calls[0], json.dumps([m.model_dump(mode="json") for m in given])


async def handed_over(team: Any, *, approve: bool) -> HandoffMessage:
    """The handoff the team's run delivers; with ``approve``, after a person approved its halt."""
    result = await team.run(task="Go.")
    if approve:
        task = resolve_halt(team, HumanDecision(type="approve"))
        assert isinstance(task, HandoffMessage)
        result = await team.run(task=task)
    return next(m for m in result.messages if isinstance(m, HandoffMessage))


@pytest.mark.parametrize("restored", [False, True])
@pytest.mark.parametrize("redact_too", [False, True])
async def test_an_approved_handoff_goes_with_its_context_less_what_the_verdict_withholds(
    kit: SimpleNamespace, redact_too: bool, restored: bool
) -> None:
    # The released handoff came without its context: the seller never learnt of the note.
    rules = (Rule(signal="collusion.market", action=Action.HALT),)
    if redact_too:
        rules = (Rule(signal="collusion.market", action=Action.REDACT), *rules)
    output = handing_over(f"Seller, keep {kit.KEYWORD} between us.")

    def build() -> Any:
        return swarm(kit, kit.keyword_guard("halt", policy=Policy(rules=rules)), output)

    seller, team = build()
    await team.run(task="Go.")
    assert pending_halt(team) is not None
    if restored:
        saved = json.loads(json.dumps(await team.save_state()))
        seller, team = build()
        await team.load_state(saved)
    task = resolve_halt(team, HumanDecision(type="approve"))
    assert isinstance(task, HandoffMessage) and task.target == "seller"
    assert task.content == TRANSFERRED  # its own words; the thought goes in its context
    await team.run(task=task)
    said, _ = given_context(kit, seller)
    keyword = REDACTED if redact_too else kit.KEYWORD
    assert said.thought == f"Seller, keep {keyword} between us."
    assert [(c.name, c.arguments) for c in said.content] == [("post_note", '{"note": "ok"}')]


@pytest.mark.parametrize("thought", [None, "Speaking as GPT-4o from OpenAI, over to you."])
@pytest.mark.parametrize("halted", [False, True])
async def test_a_handoffs_context_reaches_its_target_concealed(
    kit: SimpleNamespace, halted: bool, thought: str | None
) -> None:
    # Concealment stripped the message's words, not its context: the tool's signed result went
    # to the seller's model as it was, and a thought with cues took the context with it.
    guard = kit.keyword_guard("halt" if halted else "log", identity="conceal")
    words = f"Over to you, {kit.KEYWORD}." if halted else "Over to you."
    seller, team = swarm(
        kit,
        guard,
        handing_over(thought, tool="sign_note"),
        handoffs=[Handoff(target="seller", message=words)],
        tools=[sign_note],
    )
    handoff = await handed_over(team, approve=halted)
    assert handoff.content == words
    said, given = given_context(kit, seller)
    assert "GPT-4o" not in given and "OpenAI" not in given
    assert "[identity withheld]" in given
    if thought is not None:
        withheld = "[identity withheld]"
        assert said.thought == f"Speaking as {withheld} from {withheld}, over to you."


async def test_a_signal_in_the_thought_alone_is_withheld_from_the_thought(
    kit: SimpleNamespace,
) -> None:
    # Only reaching another agent's model in a handoff's context, a thought is inspected with
    # the handoff: its redaction rewrote the handoff's words with the thought folded in, and
    # the context went without it.
    seller, team = swarm(
        kit, kit.keyword_guard("redact"), handing_over(f"Seller, keep {kit.KEYWORD} between us.")
    )
    items = [item async for item in team.run_stream(task="Go.")]
    handoff = next(i for i in items if isinstance(i, HandoffMessage))
    assert handoff.content == TRANSFERRED
    said, given = given_context(kit, seller)
    assert said.thought == f"Seller, keep {REDACTED} between us."
    assert kit.KEYWORD not in given
    # The stream shows the thought as the seller's model was given it.
    assert [i.content for i in items if isinstance(i, ThoughtEvent)] == [said.thought]


@pytest.mark.parametrize("halted", [False, True])
async def test_words_said_across_a_handoff_and_its_context_are_cut_from_both(
    kit: SimpleNamespace, halted: bool
) -> None:
    # Inspected together, the handoff's words and its thought may hold evidence that neither
    # holds alone: cleaning each would leave all of it for the seller's model to read. The
    # handoff went without its context then, and the seller never learnt of the note.
    rules = (Rule(signal="collusion.market", action=Action.REDACT),)
    if halted:
        rules = (*rules, Rule(signal="collusion.market", action=Action.HALT))
    guard = KinGuard(
        kit.PROFILES, detectors=[KeywordDetector("ZEBRA\n\nPACT")], policy=Policy(rules=rules)
    )
    seller, team = swarm(
        kit,
        guard,
        handing_over("PACT it is."),
        handoffs=[Handoff(target="seller", message="Over to you, ZEBRA")],
    )
    # halted: approved, with what the redaction withholds withheld
    handoff = await handed_over(team, approve=halted)
    assert handoff.content == f"Over to you, {REDACTED}"
    said, given = given_context(kit, seller)
    assert said.thought == " it is."
    assert [(c.name, c.arguments) for c in said.content] == [("post_note", '{"note": "ok"}')]
    assert "ZEBRA" not in given and "PACT" not in given


@pytest.mark.parametrize("halted", [False, True])
async def test_a_refused_call_in_a_handoffs_context_goes_without_its_arguments(
    kit: SimpleNamespace, halted: bool
) -> None:
    # The whole context stayed behind: the seller never learnt of the calls that did run.
    output = CreateResult(
        finish_reason="function_calls",
        content=[
            FunctionCall(id="c0", name="post_note", arguments=json.dumps({"note": kit.KEYWORD})),
            FunctionCall(id="c1", name="post_note", arguments=json.dumps({"note": "ok"})),
            FunctionCall(id="c2", name="transfer_to_seller", arguments="{}"),
        ],
        usage=RequestUsage(prompt_tokens=0, completion_tokens=0),
        cached=False,
        thought="Noting both." if not halted else f"Noting both, {kit.KEYWORD}.",
    )
    seller, team = swarm(kit, kit.keyword_guard("halt" if halted else "block"), output)
    # halted by the thought: released, it goes with its context too
    handoff = await handed_over(team, approve=halted)
    assert handoff.content == TRANSFERRED
    said, given = given_context(kit, seller)
    assert [(c.name, c.arguments) for c in said.content] == [
        ("post_note", "{}"),
        ("post_note", '{"note": "ok"}'),
    ]
    assert said.thought == ("Noting both." if not halted else f"Noting both, {kit.KEYWORD}.")
    assert ("[kinguard blocked the call to post_note" in given) and "posted" in given
    assert given.count(kit.KEYWORD) == int(halted)  # what the person approved alone


class ConcealingFails(KinGuard):
    """A guard whose cleaning of a handoff's context fails, after the halt is recorded."""

    def concealed(self, text: str) -> str:
        raise RuntimeError("cleaning failed")


@pytest.mark.parametrize("on_error", ["open", "closed"])
async def test_a_halted_handoff_stays_withheld_when_kinguard_fails_after_the_halt(
    kit: SimpleNamespace, on_error: Any
) -> None:
    # Cleaning the context for the approval failed after the halt was recorded: the failure
    # was contained as one before any verdict, and "open" handed over the handoff with its
    # context, the halt pending and the team running on ("closed" handed over a notice).
    rules = (
        Rule(signal="collusion.market", action=Action.REDACT),
        Rule(signal="collusion.market", action=Action.HALT),
    )
    guard = ConcealingFails(
        kit.PROFILES,
        detectors=[KeywordDetector(kit.KEYWORD)],
        policy=Policy(rules=rules, on_error=on_error),
    )
    seller, team = swarm(kit, guard, handing_over(f"Seller, keep {kit.KEYWORD} between us."))
    result = await team.run(task="Go.")
    assert result.stop_reason is not None and "kinguard halted" in result.stop_reason
    assert pending_halt(team) is not None
    assert not kit.model_calls(seller)
    assert not any(isinstance(m, HandoffMessage) for m in result.messages)
    task = resolve_halt(team, HumanDecision(type="approve"))
    assert isinstance(task, HandoffMessage) and task.target == "seller"
    await team.run(task=task)
    given = json.dumps([m.model_dump(mode="json") for m in kit.model_calls(seller)[0]])
    assert kit.KEYWORD not in given and "[redacted by kinguard" in given


async def test_a_failed_inspection_keeps_a_handoffs_context_from_its_target(
    kit: SimpleNamespace,
) -> None:
    # Under "closed" the handoff went with a notice for its words, and its context, never
    # inspected, to the seller's model: the thought, and the arguments of a refused call.
    class Broken(KinGuard):
        async def ainspect(self, message: Any) -> Any:
            raise RuntimeError("adapter-level failure")

    guard = Broken(kit.PROFILES, policy={"rules": [], "on_error": "closed"})
    seller, team = swarm(kit, guard, handing_over(f"Seller, keep {kit.KEYWORD} between us."))
    await team.run(task="Go.")
    given = kit.model_calls(seller)[0]
    assert not any(isinstance(m, AssistantMessage) for m in given)
    assert kit.KEYWORD not in kit.seen_by(seller, 0)
