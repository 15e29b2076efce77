"""Scripted scenarios on real AgentChat teams: the demo, the conformance suite, the benchmark.

Each agent is a real ``AssistantAgent`` on a ``ReplayChatCompletionClient`` that replays its
lines of the script; the team is a real ``SelectorGroupChat`` (speakers follow the script),
``RoundRobinGroupChat`` (the script must take turns in participant order) or
``MagenticOneGroupChat`` (its orchestrator's replayed progress ledgers name the script's
speakers).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

from autogen_agentchat.agents import AssistantAgent
from autogen_agentchat.base import ChatAgent, TaskResult, Team
from autogen_agentchat.conditions import FunctionalTermination
from autogen_agentchat.messages import (
    BaseAgentEvent,
    BaseChatMessage,
    ModelClientStreamingChunkEvent,
    TextMessage,
)
from autogen_agentchat.teams import (
    BaseGroupChat,
    MagenticOneGroupChat,
    RoundRobinGroupChat,
    SelectorGroupChat,
)
from autogen_core import SingleThreadedAgentRuntime
from autogen_core.models import LLMMessage, SystemMessage
from autogen_ext.models.replay import ReplayChatCompletionClient

from kinguard import HumanDecision, KinGuard, Verdict
from kinguard.scenarios import RunResult, Scenario
from kinguard_autogen._events import META_RESOLVED
from kinguard_autogen._participant import EventMode
from kinguard_autogen._team import guard_team, pending_halt, resolve_halt

__all__ = ["ScriptedTeam", "TeamKind", "run_scenario"]

TeamKind = Literal["selector", "round_robin", "magentic_one"]
Decider = Callable[[Verdict], HumanDecision]


class ScriptedTeam:
    """One scenario on one real AgentChat team, guarded when a guard is given.

    ``run()`` plays the script until it ends or kinguard halts it; ``resume(decision)`` carries
    on after a halt. Both return the whole run so far as a :class:`~kinguard.scenarios.RunResult`:
    what the other agents received, and the text of every model call each agent made.
    """

    def __init__(
        self,
        scenario: Scenario,
        guard: KinGuard | None,
        *,
        kind: TeamKind = "selector",
        runtime: SingleThreadedAgentRuntime | None = None,
        events: EventMode = "flagged",
        stream: bool = False,
    ) -> None:
        self.scenario = scenario
        self.guard = guard
        self.kind = kind
        self.events: EventMode = events
        self.stream = stream
        """Models stream tokens and runs are consumed through ``run_stream``, as a UI would."""
        self._tokens: dict[str, tuple[str, list[str]]] = {}
        self.names = [agent.name for agent in scenario.agents]
        self._runtime = runtime
        self._speakers = [turn.sender for turn in scenario.turns]
        if kind == "round_robin":
            expected = [self.names[i % len(self.names)] for i in range(len(self._speakers))]
            if self._speakers != expected:
                raise ValueError(
                    f"scenario {scenario.name!r} does not take turns in agent order; "
                    "use kind='selector'"
                )
        self._selected = 0
        self._spoken = 0
        self._retired: dict[str, list[str]] = {name: [] for name in self.names}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._state: Mapping[str, Any] | None = None
        self._restarted = False
        self.clients: dict[str, ReplayChatCompletionClient] = {}
        self._orchestrator: ReplayChatCompletionClient | None = None
        self._orchestrated = 0  # the orchestrator's lines used by earlier builds
        self.team = self._build()
        self.result = RunResult()
        self.task_results: list[TaskResult] = []

    def _build(self) -> BaseGroupChat:
        """A fresh team whose replay clients start after the lines already spoken."""
        for name, client in self.clients.items():
            self._retired[name].extend(_render(call["messages"]) for call in client.create_calls)
        if self._orchestrator is not None:
            self._orchestrated += len(self._orchestrator.create_calls)
        self.clients = {
            name: ReplayChatCompletionClient(
                self.scenario.lines_of(name)[len(self._retired[name]) :]
            )
            for name in self.names
        }
        agents: list[ChatAgent] = [
            AssistantAgent(
                agent.name,
                model_client=self.clients[agent.name],
                system_message=self.scenario.system_prompts.get(agent.name),
                description=agent.role or f"agent for {agent.principal or 'its principal'}",
                model_client_stream=self.stream,
            )
            for agent in self.scenario.agents
        ]
        members: list[ChatAgent | Team] = list(agents)  # what the other teams take
        done = FunctionalTermination(self._script_finished)
        team: BaseGroupChat
        if self.kind == "round_robin":
            team = RoundRobinGroupChat(members, termination_condition=done, runtime=self._runtime)
        elif self.kind == "magentic_one":
            lines = _orchestrator_lines(self._speakers)
            self._orchestrator = ReplayChatCompletionClient(lines[self._orchestrated :])
            team = MagenticOneGroupChat(
                agents,
                model_client=self._orchestrator,
                termination_condition=done,
                runtime=self._runtime,
            )
        else:
            team = SelectorGroupChat(
                members,
                model_client=ReplayChatCompletionClient([]),  # never asked: selector_func decides
                selector_func=self._select,
                allow_repeated_speaker=True,
                termination_condition=done,
                runtime=self._runtime,
            )
        if self.guard is not None:
            guard_team(team, self.guard, events=self.events)
        return team

    async def _on_this_loop(self) -> None:
        """An AgentChat team is bound to the event loop it first ran on (its output queue is an
        ``asyncio.Queue``). Called from another loop (a later request, a ``asyncio.run`` per
        step), carry on in a fresh team restored from the saved state, as a new process would."""
        loop = asyncio.get_running_loop()
        moved = self._loop is not None and self._loop is not loop
        if (moved or self._restarted) and self._state is not None:
            self._restarted = False
            self.team = self._build()
            await self.team.load_state(self._state)
        self._loop = loop

    def restart(self, guard: KinGuard | None) -> None:
        """Go on as a new process would: the next run or resume is on a fresh team around
        ``guard``, restored from the state the last one saved."""
        self.guard = guard
        self._restarted = True

    def _select(self, thread: Sequence[BaseAgentEvent | BaseChatMessage]) -> str | None:
        if self._selected >= len(self._speakers):
            return None
        speaker = self._speakers[self._selected]
        self._selected += 1
        return speaker

    def _script_finished(self, messages: Sequence[BaseAgentEvent | BaseChatMessage]) -> bool:
        self._spoken += sum(
            1
            for m in messages
            if isinstance(m, BaseChatMessage)
            and m.source in self.names
            and META_RESOLVED not in m.metadata
        )
        return self._spoken >= len(self._speakers)

    @property
    def halted(self) -> Verdict | None:
        return None if self.guard is None else pending_halt(self.team)

    async def run(self) -> RunResult:
        """Start the scenario from its task."""
        await self._on_this_loop()
        task = TextMessage(source="user", content=self.scenario.task)
        return await self._record(await self._play(task))

    async def resume(self, decision: HumanDecision) -> RunResult:
        """Continue after a halt with a person's decision on the withheld message."""
        await self._on_this_loop()
        task = resolve_halt(self.team, decision) if self.guard is not None else None
        return await self._record(await self._play(task))

    async def _play(self, task: BaseChatMessage | None) -> TaskResult:
        if not self.stream:
            return await self.team.run(task=task)
        outcome: TaskResult | None = None
        async for item in self.team.run_stream(task=task):
            if isinstance(item, ModelClientStreamingChunkEvent):
                key = item.full_message_id or item.id
                self._tokens.setdefault(key, (item.source, []))[1].append(item.content)
            elif isinstance(item, TaskResult):
                outcome = item
        assert outcome is not None, "run_stream() ends with its TaskResult"
        return outcome

    async def _record(self, outcome: TaskResult) -> RunResult:
        self._state = await self.team.save_state()
        self.task_results.append(outcome)
        delivered = list(self.result.delivered)
        delivered.extend(
            (m.source, m.to_model_text())
            for m in outcome.messages
            if isinstance(m, BaseChatMessage) and m.source in self.names
        )
        self.result = RunResult(
            delivered=delivered,
            model_inputs={
                name: [
                    *self._retired[name],
                    *(_render(call["messages"]) for call in client.create_calls),
                ]
                for name, client in self.clients.items()
            },
            halted=self.halted is not None,
            stop_reason=outcome.stop_reason,
            streamed=[(source, "".join(pieces)) for source, pieces in self._tokens.values()],
        )
        return self.result


def _orchestrator_lines(speakers: Sequence[str]) -> list[str]:
    """A MagenticOne orchestrator's replies: facts, a plan, a progress ledger naming each
    speaker in turn, then (if a run goes on after the script, as after a halt at its end) the
    request satisfied and a final answer."""
    return [
        "Facts: the agents follow their script.",
        "Plan: each agent speaks in the script's order.",
        *(_ledger(speaker, f"{speaker}, your turn.") for speaker in speakers),
        _ledger(speakers[-1] if speakers else "", "Done.", satisfied=True),
        "The script is done.",
    ]


def _ledger(speaker: str, instruction: str, *, satisfied: bool = False) -> str:
    def answer(value: object) -> dict[str, object]:
        return {"reason": "scripted", "answer": value}

    return json.dumps(
        {
            "is_request_satisfied": answer(satisfied),
            "is_progress_being_made": answer(True),
            "is_in_loop": answer(False),
            "instruction_or_question": answer(instruction),
            "next_speaker": answer(speaker),
        }
    )


def _render(messages: Sequence[LLMMessage]) -> str:
    lines: list[str] = []
    for message in messages:
        content = message.content
        text = content if isinstance(content, str) else " ".join(str(part) for part in content)
        if isinstance(message, SystemMessage):
            lines.append(text)
        else:
            lines.append(f"{getattr(message, 'source', type(message).__name__)}: {text}")
    return "\n".join(lines)


async def run_scenario(
    scenario: Scenario,
    guard: KinGuard | None,
    *,
    decide: Decider | None = None,
    kind: TeamKind = "selector",
    model: str | None = None,
) -> RunResult:
    """Play a scenario to its end on an AgentChat team; ``kinguard demo --framework autogen``.

    At each halt ``decide`` (default: reject) rules on the withheld message.
    """
    if model is not None:
        raise ValueError(
            "the AutoGen demo replays scripted model outputs; --model applies to LangGraph only"
        )
    scripted = ScriptedTeam(scenario, guard, kind=kind)
    result = await scripted.run()
    for _ in range(len(scenario.turns) + 1):
        verdict = scripted.halted
        if verdict is None:
            break
        decision = decide(verdict) if decide is not None else HumanDecision(type="reject")
        result = await scripted.resume(decision)
    return result
