"""Tool calls: their arguments are read before the tool runs.

An ``AssistantAgent`` runs its own tools inside its turn, before kinguard sees the turn's result;
a tool such as ``post_to_board(text)`` can carry words to the other agents from there. So each
participant's workbenches are wrapped: the string arguments of every call are inspected as a
message from that agent, and a call the verdict would change (block, halt, redact, conceal)
does not run: the agent gets kinguard's notice as the tool's error result instead. A call
cannot wait for a person, so a halt blocks it.

``AssistantAgent`` streams a tool's events only from a ``StaticStreamWorkbench`` (it checks the
type), which is what ``tools=[...]`` builds; that one is wrapped by a subclass of it, so the
agent keeps streaming them.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping
from typing import Any, cast

from autogen_agentchat.agents import ApprovalFuncType, ApprovalRequest, ApprovalResponse
from autogen_core import CancellationToken, ComponentModel
from autogen_core.tools import (
    StaticStreamWorkbench,
    TextResultContent,
    ToolResult,
    ToolSchema,
    Workbench,
)

from kinguard_autogen._participant import TeamGuard

__all__ = ["GuardedStreamWorkbench", "GuardedWorkbench", "guarded_approval", "guarded_workbench"]


class _Checked:
    """What both wrappers do: check each call, hand everything else to the agent's workbench."""

    _tg: TeamGuard
    _agent: str
    inner: Workbench

    def _wrap(self, tg: TeamGuard, agent: str, inner: Workbench) -> None:
        self._tg = tg
        self._agent = agent
        self.inner = inner

    async def _refusal(
        self, name: str, arguments: Mapping[str, Any] | None, call_id: str | None
    ) -> ToolResult | None:
        notice = await self._tg.check_tool_call(self._agent, name, arguments, call_id)
        if notice is None:
            return None
        return ToolResult(name=name, result=[TextResultContent(content=notice)], is_error=True)

    async def call_tool(
        self,
        name: str,
        arguments: Mapping[str, Any] | None = None,
        cancellation_token: CancellationToken | None = None,
        call_id: str | None = None,
    ) -> ToolResult:
        refusal = await self._refusal(name, arguments, call_id)
        if refusal is not None:
            return refusal
        return await self.inner.call_tool(name, arguments, cancellation_token, call_id)

    async def list_tools(self) -> list[ToolSchema]:
        return await self.inner.list_tools()

    async def start(self) -> None:
        await self.inner.start()

    async def stop(self) -> None:
        await self.inner.stop()

    async def reset(self) -> None:
        await self.inner.reset()

    async def save_state(self) -> Mapping[str, Any]:
        return await self.inner.save_state()

    async def load_state(self, state: Mapping[str, Any]) -> None:
        await self.inner.load_state(state)

    def dump_component(self) -> ComponentModel:
        # The agent's configuration names the app's own workbench, not kinguard's wrapper.
        return self.inner.dump_component()


class GuardedWorkbench(_Checked, Workbench):
    """Any workbench of a participant, with each tool call's arguments inspected first."""

    def __init__(self, tg: TeamGuard, agent: str, inner: Workbench) -> None:
        self._wrap(tg, agent, inner)


class GuardedStreamWorkbench(_Checked, StaticStreamWorkbench):
    """A ``StaticStreamWorkbench`` of a participant, checked the same way, still streaming."""

    def __init__(self, tg: TeamGuard, agent: str, inner: StaticStreamWorkbench) -> None:
        # Not StaticStreamWorkbench.__init__: every method is handed to the agent's own one.
        self._wrap(tg, agent, inner)

    async def call_tool_stream(
        self,
        name: str,
        arguments: Mapping[str, Any] | None = None,
        cancellation_token: CancellationToken | None = None,
        call_id: str | None = None,
    ) -> AsyncGenerator[Any | ToolResult, None]:
        refusal = await self._refusal(name, arguments, call_id)
        if refusal is not None:
            yield refusal
            return
        streamer = cast(StaticStreamWorkbench, self.inner)  # what __init__ was given
        async for item in streamer.call_tool_stream(name, arguments, cancellation_token, call_id):
            yield item


def guarded_workbench(tg: TeamGuard, agent: str, workbench: Workbench) -> Workbench:
    if isinstance(workbench, StaticStreamWorkbench):
        return GuardedStreamWorkbench(tg, agent, workbench)
    return GuardedWorkbench(tg, agent, workbench)


def guarded_approval(
    tg: TeamGuard, agent: str, own: ApprovalFuncType | None
) -> Callable[[ApprovalRequest], Awaitable[ApprovalResponse]]:
    """A ``CodeExecutorAgent``'s approval step with kinguard's check first: code its model
    wrote runs inside its turn and can carry words to the other agents (a file they read, a
    post), so it is read like a tool call's arguments before it runs; then the app's own
    approval, if it set one."""

    async def approve(request: ApprovalRequest) -> ApprovalResponse:
        notice = await tg.check_tool_call(agent, "code_execution", {"code": request.code})
        if notice is not None:
            return ApprovalResponse(approved=False, reason=notice)
        if own is None:
            return ApprovalResponse(approved=True, reason="kinguard: nothing flagged")
        answer = own(request)
        return await answer if inspect.isawaitable(answer) else answer

    return approve
