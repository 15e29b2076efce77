"""Guarded vs bare wall time of a 4-agent, 50-message round-robin team on replayed models.

    pytest integrations/autogen/tests/bench_autogen.py --benchmark-only

Same run both ways: identical agents, lines and termination; the guarded team runs the default
kinguard detectors with identity injection. Target: guarded/bare under 1.10.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from autogen_agentchat.agents import AssistantAgent
from autogen_agentchat.base import ChatAgent, Team
from autogen_agentchat.conditions import MaxMessageTermination
from autogen_agentchat.teams import RoundRobinGroupChat
from autogen_ext.models.replay import ReplayChatCompletionClient
from kinguard_autogen import guard_team

from kinguard import AgentProfile, KinGuard

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


def build(guard: KinGuard | None) -> RoundRobinGroupChat:
    per_agent = MESSAGES // len(NAMES) + 1
    agents: list[ChatAgent | Team] = [
        AssistantAgent(
            name,
            model_client=ReplayChatCompletionClient(lines_of(name, per_agent)),
            system_message=f"You are the {name}.",
        )
        for name in NAMES
    ]
    team = RoundRobinGroupChat(agents, termination_condition=MaxMessageTermination(MESSAGES + 1))
    if guard is not None:
        # One guard per app (building it compiles its detectors), one conversation per run.
        guard_team(team, guard, conversation_id=uuid.uuid4().hex)
    return team


def run_once(guard: KinGuard | None) -> Any:
    async def go() -> Any:
        return await build(guard).run(task="Agree a sensor deal.")

    return asyncio.run(go())


@pytest.mark.benchmark(group="autogen-50-messages")
@pytest.mark.parametrize("guarded", [False, True], ids=["bare", "guarded"])
def test_round_robin_50_messages(benchmark: Any, guarded: bool) -> None:
    guard = KinGuard(PROFILES, identity="disassociate") if guarded else None
    result = benchmark.pedantic(run_once, args=(guard,), rounds=20, warmup_rounds=3)
    assert len([m for m in result.messages if m.source in NAMES]) == MESSAGES
