"""save_state/load_state carry the guard; termination and guard config are AutoGen components."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import pytest
from autogen_agentchat.base import TerminationCondition
from autogen_agentchat.conditions import MaxMessageTermination, TextMentionTermination
from autogen_agentchat.messages import StopMessage, TextMessage
from autogen_agentchat.teams import RoundRobinGroupChat
from autogen_core.models import UserMessage
from kinguard_autogen import (
    STATE_KEY,
    KinGuardComponent,
    KinGuardConfig,
    KinGuardTermination,
    guard_team,
    pending_halt,
    resolve_halt,
)

from kinguard import Action, AgentProfile, HumanDecision, KinGuard, Policy, Rule
from kinguard.detectors import StatisticalDetector, default_detectors
from kinguard.identity import IDENTITY_MARKER


def team_of(kit: SimpleNamespace, buyer: list[str], seller: list[str], n: int) -> Any:
    return RoundRobinGroupChat(
        [kit.agent("buyer", buyer, "You buy."), kit.agent("seller", seller, "You sell.")],
        termination_condition=MaxMessageTermination(n),
    )


async def test_guard_state_survives_save_and_load_into_a_new_process(
    kit: SimpleNamespace,
) -> None:
    lines_b = ["b1", f"b2 {kit.KEYWORD}", "b3", "b4"]
    lines_s = ["s1", "s2", "s3", "s4"]
    guard = kit.keyword_guard("halt")
    team = guard_team(team_of(kit, lines_b, lines_s, 9), guard)
    first = await team.run(task="Negotiate.")
    assert pending_halt(team) is not None

    saved = json.loads(json.dumps(await team.save_state()))  # JSON all the way down
    assert saved[STATE_KEY]["turn"] == 3
    assert saved[STATE_KEY]["guard"] == json.loads(json.dumps(guard.state_dict()))
    assert [h["action"] for h in saved[STATE_KEY]["pending_halts"]] == ["halt"]

    # A new process: new agents, new guard, new team; the replay clients resume where they were.
    guard2 = kit.keyword_guard("halt")
    team2 = guard_team(team_of(kit, lines_b[2:], lines_s[1:], 5), guard2)
    await team2.load_state(saved)
    assert guard2.state_dict() == guard.state_dict()
    halted = pending_halt(team2)
    assert halted is not None and halted.sender == "buyer"

    resumed = await team2.run(task=resolve_halt(team2, HumanDecision(type="approve")))
    assert resumed.messages[0].source == "buyer"
    assert kit.KEYWORD in resumed.messages[0].to_text()
    assert first.stop_reason is not None and "kinguard halted" in first.stop_reason


async def test_a_halt_resolved_before_saving_is_still_not_given_back_to_its_sender(
    kit: SimpleNamespace,
) -> None:
    team = guard_team(
        team_of(kit, [f"b1 {kit.KEYWORD} deal"], ["s1"], 6), kit.keyword_guard("halt")
    )
    await team.run(task="Negotiate.")
    task = resolve_halt(team, HumanDecision(type="approve"))
    saved = json.loads(json.dumps(await team.save_state()))

    buyer, seller = kit.agent("buyer", ["b2"], "You buy."), kit.agent("seller", ["s2"], "You sell.")
    team2 = guard_team(
        RoundRobinGroupChat([buyer, seller], termination_condition=MaxMessageTermination(3)),
        kit.keyword_guard("halt"),
    )
    await team2.load_state(saved)
    await team2.run(task=task)
    assert kit.KEYWORD in kit.seen_by(seller, 0)  # the others receive the released message
    # The sender has it as its own words (restored context), never as something it was told.
    given = [m for m in kit.model_calls(buyer)[0] if isinstance(m, UserMessage)]
    assert given and not any(kit.KEYWORD in str(m.content) for m in given)


async def test_teams_sharing_a_guard_save_and_load_only_their_own_conversation(
    kit: SimpleNamespace,
) -> None:
    guard = kit.keyword_guard("nudge")
    team_a = guard_team(team_of(kit, ["a-b1"], ["a-s1"], 3), guard, conversation_id="conv-A")
    team_b = guard_team(
        team_of(kit, ["b-b1"], [f"b-s1 {kit.KEYWORD} private to B"], 3),
        guard,
        conversation_id="conv-B",
    )
    await team_a.run(task="A")
    saved_a = await team_a.save_state()
    await team_b.run(task="B")
    b_before = guard.state_dict("conv-B")
    assert b_before["nudges"]["conv-B"]  # the seller's pending reminder

    await team_a.load_state(saved_a)
    assert guard.state_dict("conv-B") == b_before
    assert "private to b" not in json.dumps(await team_a.save_state()).lower()


async def test_a_restored_team_continues_its_conversation_under_a_new_id(
    kit: SimpleNamespace,
) -> None:
    guard = kit.keyword_guard("nudge", conversation_id=None)  # a random id per process
    team = guard_team(team_of(kit, ["b1"], [f"s1 {kit.KEYWORD}"], 3), guard)
    await team.run(task="Go.")
    saved = json.loads(json.dumps(await team.save_state()))

    guard2 = kit.keyword_guard("nudge", conversation_id=None)
    team2 = guard_team(team_of(kit, ["b2"], ["s2"], 3), guard2)
    await team2.load_state(saved)
    assert guard2.conversation_id != guard.conversation_id
    assert guard2.state_dict()["monitor"]["conversations"][guard2.conversation_id]["risk"] > 0
    assert guard2.peek_nudge("seller") is not None


async def test_a_state_saved_without_its_conversation_id_keeps_its_risk_under_a_new_id(
    kit: SimpleNamespace,
) -> None:
    # Version-1 states held the whole guard's state, without naming the team's conversation.
    guard = kit.keyword_guard("nudge", conversation_id=None)
    team = guard_team(team_of(kit, ["b1"], [f"s1 {kit.KEYWORD}"], 3), guard)
    await team.run(task="Go.")
    saved = json.loads(json.dumps(await team.save_state()))
    old = saved[STATE_KEY]
    old["version"] = 1
    del old["conversation_id"]
    old["pending_halt"] = None
    del old["pending_halts"]

    guard2 = kit.keyword_guard("nudge", conversation_id=None)
    team2 = guard_team(team_of(kit, ["b2"], ["s2"], 3), guard2)
    await team2.load_state(saved)
    assert guard2.state_dict()["monitor"]["conversations"][guard2.conversation_id]["risk"] > 0
    assert guard2.peek_nudge("seller") is not None


async def test_an_unguarded_team_loads_a_guarded_state_and_back(kit: SimpleNamespace) -> None:
    guarded = guard_team(team_of(kit, ["b1"], ["s1"], 3), kit.keyword_guard("log"))
    await guarded.run(task="Go.")
    state = await guarded.save_state()
    bare = team_of(kit, ["b2"], ["s2"], 3)
    await bare.load_state(state)  # AgentChat ignores the extra key
    bare_state = await bare.save_state()
    guard3 = kit.keyword_guard("log")
    again = guard_team(team_of(kit, ["b2"], ["s2"], 3), guard3)
    await again.load_state(bare_state)  # no kinguard key: loads, guard untouched
    assert STATE_KEY not in bare_state


# -- components ---------------------------------------------------------------------------


async def test_kinguard_termination_round_trips_and_composes() -> None:
    condition = KinGuardTermination("block")
    loaded = TerminationCondition.load_component(condition.dump_component())
    assert isinstance(loaded, KinGuardTermination) and loaded.at_least is Action.BLOCK
    assert condition.dump_component().provider == "kinguard_autogen.KinGuardTermination"

    either = MaxMessageTermination(3) | KinGuardTermination()
    both = TextMentionTermination("DONE") & KinGuardTermination()
    for composed in (either, both):
        again = TerminationCondition.load_component(composed.dump_component())
        assert any(isinstance(c, KinGuardTermination) for c in again._conditions)  # type: ignore[attr-defined]

    halted = TextMessage(source="bo", content="[withheld]", metadata={"kinguard.action": "halt"})
    stop = await either([halted])
    assert isinstance(stop, StopMessage) and "kinguard halted" in stop.content
    await either.reset()
    assert await both([halted]) is None  # & waits for the other condition too
    done = TextMessage(source="bo", content="DONE", metadata={"kinguard.action": "log"})
    assert await both([done]) is not None


async def test_kinguard_termination_thresholds() -> None:
    at_block = KinGuardTermination(Action.BLOCK)
    redacted = TextMessage(source="a", content="x", metadata={"kinguard.action": "redact"})
    blocked = TextMessage(source="a", content="x", metadata={"kinguard.action": "block"})
    unstamped = TextMessage(source="a", content="x")
    assert await at_block([redacted, unstamped]) is None
    stop = await at_block([blocked])
    assert stop is not None and "after a block" in stop.content
    assert at_block.terminated
    await at_block.reset()
    assert not at_block.terminated
    with pytest.raises(ValueError, match="above 'allow'"):
        KinGuardTermination("allow")


async def test_a_guarded_team_dumps_and_loads_as_a_component(kit: SimpleNamespace) -> None:
    team = guard_team(team_of(kit, ["b1"], ["s1"], 3), kit.keyword_guard("log"))
    model = team.dump_component()
    loaded = RoundRobinGroupChat.load_component(model)
    condition = loaded._termination_condition
    assert condition is not None
    assert isinstance(condition._conditions[0], KinGuardTermination)  # type: ignore[attr-defined]


async def test_a_dump_holds_the_agents_own_system_messages_not_the_guards(
    kit: SimpleNamespace,
) -> None:
    team = guard_team(team_of(kit, ["b1"], ["s1"], 3), kit.keyword_guard("log", identity="conceal"))
    buyer: Any = team._participants[0]
    assert IDENTITY_MARKER in buyer._system_messages[0].content  # the live agent has it
    model = team.dump_component()
    assert IDENTITY_MARKER not in model.model_dump_json()
    assert IDENTITY_MARKER not in buyer.dump_component().model_dump_json()
    assert IDENTITY_MARKER in buyer._system_messages[0].content  # and keeps it

    loaded = guard_team(
        RoundRobinGroupChat.load_component(model), kit.keyword_guard("log", identity="none")
    )
    prompt = loaded._participants[0]._system_messages[0].content  # type: ignore[union-attr]
    assert prompt == "You buy."


def test_guard_config_round_trips() -> None:
    guard = KinGuard(
        [_profile("buyer"), _profile("seller")],
        identity="disassociate",
        policy=Policy(rules=(Rule(signal="collusion.*", action=Action.BLOCK),), on_error="open"),
        conversation_id="deal-7",
        identity_seed=42,
    )
    model = KinGuardComponent(guard).dump_component()
    assert model.provider == "kinguard_autogen.KinGuardComponent"
    assert model.component_type == "kinguard"
    rebuilt = KinGuardComponent.load_component(model).guard
    assert rebuilt.agents == guard.agents
    assert rebuilt.policy == guard.policy
    assert rebuilt.identity is guard.identity
    assert rebuilt.conversation_id == "deal-7"
    assert rebuilt.identity_block("buyer") == guard.identity_block("buyer")  # same seed
    assert any(isinstance(d, StatisticalDetector) for d in rebuilt.pipeline.detectors)


def test_guard_config_keeps_a_guard_without_the_statistical_tier() -> None:
    guard = KinGuard(
        [_profile("buyer"), _profile("seller")],
        detectors=default_detectors(statistical=False),
    )
    model = KinGuardComponent(guard).dump_component()
    assert model.config["statistical"] is False
    rebuilt = KinGuardComponent.load_component(model).guard
    assert [type(d) for d in rebuilt.pipeline.detectors] == [
        type(d) for d in guard.pipeline.detectors
    ]


def test_guard_config_keeps_the_statistical_tiers_min_score() -> None:
    guard = KinGuard(
        [_profile("buyer"), _profile("seller")],
        detectors=default_detectors(statistical_min_score=0.99),
    )
    model = KinGuardComponent(guard).dump_component()
    rebuilt = KinGuardComponent.load_component(model).guard
    (statistical,) = [d for d in rebuilt.pipeline.detectors if isinstance(d, StatisticalDetector)]
    assert statistical.min_score_override == 0.99
    with pytest.raises(ValueError, match="statistical_min_score: set, but statistical is false"):
        KinGuardConfig(statistical=False, statistical_min_score=0.9)


async def test_standalone_termination_with_its_own_guard(kit: SimpleNamespace) -> None:
    guard = kit.keyword_guard("halt")
    observer = KinGuardTermination(guard=guard)
    team = RoundRobinGroupChat(
        [
            kit.agent("buyer", ["b1", f"b2 {kit.KEYWORD}", "b3"]),
            kit.agent("seller", ["s1", "s2", "s3"]),
        ],
        termination_condition=MaxMessageTermination(10) | observer,
    )
    result = await team.run(task="Go.")
    assert result.stop_reason is not None
    assert result.stop_reason.startswith("kinguard halted: message from buyer")
    assert [m.source for m in result.messages][-1] == "buyer"
    loaded = TerminationCondition.load_component(observer.dump_component())
    assert isinstance(loaded, KinGuardTermination)
    assert loaded.guard is not None and loaded.guard.conversation_id == "test"


def _profile(name: str) -> AgentProfile:
    return AgentProfile(name=name, model="openai:gpt-4o", principal=f"{name}'s firm")
