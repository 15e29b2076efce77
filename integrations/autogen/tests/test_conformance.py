"""The shared adapter conformance suite, on real AgentChat teams with replayed model outputs."""

from __future__ import annotations

import asyncio

import pytest
from kinguard_autogen import ScriptedTeam
from kinguard_autogen._scripted import TeamKind

from kinguard import HumanDecision, KinGuard
from kinguard.scenarios import RunResult, Scenario
from kinguard.testing import AdapterConformance, AdapterHarness


class AutoGenHarness(AdapterHarness):
    """AgentChat is async-only: the sync entry points just drive the async ones."""

    supports_sync = False

    def __init__(self, kind: TeamKind) -> None:
        self.kind = kind
        self.scripted: ScriptedTeam | None = None

    async def arun(self, scenario: Scenario, guard: KinGuard | None) -> RunResult:
        self.scripted = ScriptedTeam(scenario, guard, kind=self.kind)
        return await self.scripted.run()

    async def aresume(self, decision: HumanDecision) -> RunResult:
        assert self.scripted is not None, "resume() before run()"
        return await self.scripted.resume(decision)

    async def astream(self, scenario: Scenario, guard: KinGuard | None) -> RunResult:
        self.scripted = ScriptedTeam(scenario, guard, kind=self.kind, stream=True)
        return await self.scripted.run()

    def restart(self, guard: KinGuard) -> None:
        assert self.scripted is not None, "restart() before run()"
        self.scripted.restart(guard)

    def run(self, scenario: Scenario, guard: KinGuard | None) -> RunResult:
        return asyncio.run(self.arun(scenario, guard))

    def stream(self, scenario: Scenario, guard: KinGuard | None) -> RunResult:
        return asyncio.run(self.astream(scenario, guard))

    def resume(self, decision: HumanDecision) -> RunResult:
        return asyncio.run(self.aresume(decision))


class TestSelectorGroupChatConformance(AdapterConformance):
    @pytest.fixture
    def harness(self) -> AdapterHarness:
        return AutoGenHarness("selector")


class TestRoundRobinGroupChatConformance(AdapterConformance):
    @pytest.fixture
    def harness(self) -> AdapterHarness:
        return AutoGenHarness("round_robin")


class TestMagenticOneGroupChatConformance(AdapterConformance):
    @pytest.fixture
    def harness(self) -> AdapterHarness:
        return AutoGenHarness("magentic_one")
