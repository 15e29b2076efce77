"""kinguard's adapter conformance suite, run on a real LangGraph graph of scripted models."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from kinguard_langgraph import guard_graph
from kinguard_langgraph._scripted import (
    ScriptedChatModel,
    delivered,
    script_graph,
    start,
    streamed,
)
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Command

from kinguard import HumanDecision, KinGuard
from kinguard.scenarios import Scenario
from kinguard.testing import AdapterConformance, AdapterHarness, RunResult


class LangGraphHarness(AdapterHarness):
    """One ``StateGraph`` node per agent, each a hand-written node calling its scripted model."""

    def __init__(self) -> None:
        self.graph: Any = None
        self.config: dict[str, Any] = {}
        self.models: dict[str, ScriptedChatModel] = {}

    def _build(self, scenario: Scenario, guard: KinGuard | None, *, use_async: bool) -> None:
        self.models = {
            agent.name: ScriptedChatModel(replies=scenario.lines_of(agent.name) or ["(nothing)"])
            for agent in scenario.agents
        }
        builder = script_graph(
            [turn.sender for turn in scenario.turns],
            dict(self.models),
            dict(scenario.system_prompts),
            use_async=use_async,
        )
        self.builder, self.saver = builder, InMemorySaver()
        if guard is None:
            self.graph = builder.compile(checkpointer=self.saver)
        else:
            self.graph = guard_graph(builder, guard).compile(checkpointer=self.saver)
        self.config = {"configurable": {"thread_id": uuid.uuid4().hex}}
        self.task = scenario.task

    def _result(self, output: dict[str, Any], tokens: Any = ()) -> RunResult:
        values = self.graph.get_state(self.config).values
        return RunResult(
            delivered=delivered(values.get("messages", [])[1:]),
            model_inputs={name: m.rendered_inputs() for name, m in self.models.items()},
            halted="__interrupt__" in output,
            stop_reason="interrupt" if "__interrupt__" in output else None,
            streamed=streamed(tokens),
        )

    def _streamed_result(self, parts: list[Any]) -> RunResult:
        halted = bool(self.graph.get_state(self.config).interrupts)
        return self._result({"__interrupt__": ()} if halted else {}, parts)

    def run(self, scenario: Scenario, guard: KinGuard | None) -> RunResult:
        self._build(scenario, guard, use_async=False)
        return self._result(self.graph.invoke(start(scenario.task), self.config))

    async def arun(self, scenario: Scenario, guard: KinGuard | None) -> RunResult:
        self._build(scenario, guard, use_async=True)
        return self._result(await self.graph.ainvoke(start(scenario.task), self.config))

    def stream(self, scenario: Scenario, guard: KinGuard | None) -> RunResult:
        self._build(scenario, guard, use_async=False)
        parts = list(self.graph.stream(start(scenario.task), self.config, stream_mode="messages"))
        return self._streamed_result(parts)

    async def astream(self, scenario: Scenario, guard: KinGuard | None) -> RunResult:
        self._build(scenario, guard, use_async=True)
        stream = self.graph.astream(start(scenario.task), self.config, stream_mode="messages")
        return self._streamed_result([part async for part in stream])

    def restart(self, guard: KinGuard) -> None:
        # The same checkpointer and thread: what a new process would find. The scripted models
        # go on from their next reply, as a new process's would (the halted reply is kept).
        self.graph = guard_graph(self.builder, guard).compile(checkpointer=self.saver)

    def resume(self, decision: HumanDecision) -> RunResult:
        value = decision.model_dump(exclude_none=True)
        return self._result(self.graph.invoke(Command(resume=value), self.config))

    async def aresume(self, decision: HumanDecision) -> RunResult:
        value = decision.model_dump(exclude_none=True)
        return self._result(await self.graph.ainvoke(Command(resume=value), self.config))


class TestLangGraphConformance(AdapterConformance):
    @pytest.fixture
    def harness(self) -> AdapterHarness:
        return LangGraphHarness()
