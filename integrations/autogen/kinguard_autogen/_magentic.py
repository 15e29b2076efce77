"""MagenticOneGroupChat: after a halt, the orchestrator goes on where it stopped.

The orchestrator treats every run's task as a new request: it gathers facts, plans, resets
every agent and starts its inner loop afresh. A run on a message a person released after a
halt would make that message the user's request (and wipe the agents' memory of the task), and
a run without a task (after a rejection) fails AgentChat's own check (``AssertionError``).

So a run that starts right after a halt notice (the last message in the orchestrator's thread)
with nothing but released messages, or with none, goes on instead: the released messages reach
the others and the thread as a participant's reply would, the team's termination condition
reads them, and the orchestrator's inner loop picks the next speaker from its progress ledger.
A run with any other task is a new request, as without kinguard. The check reads the thread,
which the orchestrator's saved state keeps, so a team built afresh and given it resumes too.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, cast

from autogen_agentchat.messages import BaseAgentEvent, BaseChatMessage
from autogen_agentchat.teams import MagenticOneGroupChat
from autogen_agentchat.teams._group_chat._events import GroupChatStart
from autogen_agentchat.teams._group_chat._magentic_one._magentic_one_orchestrator import (
    MagenticOneOrchestrator,
)
from autogen_core import DefaultTopicId, MessageContext
from autogen_core._routed_agent import MessageHandler

from kinguard import Action
from kinguard.logs import get_logger
from kinguard_autogen._events import META_RESOLVED, kinguard_action
from kinguard_autogen._managers import Patch, with_manager
from kinguard_autogen._participant import TeamGuard

__all__ = ["resume_orchestrator"]

_log = get_logger("kinguard.autogen")

_Start = Callable[[MagenticOneOrchestrator, GroupChatStart, MessageContext], Awaitable[None]]


def resume_orchestrator(team: MagenticOneGroupChat, tg: TeamGuard, patch: Patch) -> None:
    """Make the team's orchestrator go on after a halt as described above."""
    if not with_manager(
        team, MagenticOneOrchestrator, lambda made: _install(made, tg, patch), patch
    ):
        _log.warning(
            "kinguard.autogen.orchestrator_unguarded",
            team=tg.team_name,
            detail="this MagenticOneGroupChat's orchestrator is out of kinguard's reach "
            "(another runtime): a run after a halt starts the task afresh; guard it before its "
            "first run",
        )


def _install(orchestrator: MagenticOneOrchestrator, tg: TeamGuard, patch: Patch) -> None:
    # AgentChat routes a message through the handler table each agent builds at construction
    # (class functions, called with the agent): this orchestrator's own table gets the wrapper.
    handlers = type(orchestrator._handlers)(list, orchestrator._handlers)
    handlers[GroupChatStart] = [
        # A plain function with the handler's attributes (``functools.wraps`` copies them).
        cast(MessageHandler[Any, Any, Any], _resuming(start, tg))
        for start in handlers[GroupChatStart]
    ]
    patch(orchestrator, "_handlers", handlers)


def _resuming(start: _Start, tg: TeamGuard) -> _Start:
    @functools.wraps(start)  # keeps the handler's routing attributes (router, target types)
    async def handle_start(
        orchestrator: MagenticOneOrchestrator, message: GroupChatStart, ctx: MessageContext
    ) -> None:
        try:
            resumes = _after_halt(orchestrator._message_thread) and _released_only(message)
        except Exception as exc:  # kinguard's own failure: the run starts as it would
            tg.adapter_failed(exc)
            resumes = False
        if resumes and not _terminated(orchestrator):
            await _go_on(orchestrator, message, ctx)
        else:
            await start(orchestrator, message, ctx)

    return handle_start


def _after_halt(thread: Sequence[BaseAgentEvent | BaseChatMessage]) -> bool:
    last = next((m for m in reversed(thread) if isinstance(m, BaseChatMessage)), None)
    return last is not None and kinguard_action(last) is Action.HALT


def _released_only(message: GroupChatStart) -> bool:
    return all(
        isinstance(m, BaseChatMessage) and META_RESOLVED in m.metadata
        for m in message.messages or ()
    )


def _terminated(orchestrator: MagenticOneOrchestrator) -> bool:
    # AgentChat's own start stops such a run at once ("already terminated"): left to it.
    condition = orchestrator._termination_condition
    return condition is not None and condition.terminated


async def _go_on(
    orchestrator: MagenticOneOrchestrator, message: GroupChatStart, ctx: MessageContext
) -> None:
    """What AgentChat's base manager does with a run's task, then the orchestrator's next step
    as after any participant's reply."""
    released = message.messages
    if released:
        start = GroupChatStart(messages=released)
        await orchestrator.publish_message(
            start, topic_id=DefaultTopicId(type=orchestrator._output_topic_type)
        )
        if message.output_task_messages:
            for each in released:
                await orchestrator._output_message_queue.put(each)
        # To the participants: kinguard keeps each message from its own sender.
        await orchestrator.publish_message(
            start,
            topic_id=DefaultTopicId(type=orchestrator._group_topic_type),
            cancellation_token=ctx.cancellation_token,
        )
        await orchestrator.update_message_thread(released)
        condition = orchestrator._termination_condition
        if condition is not None:
            stop = await condition(released)
            if stop is not None:
                await condition.reset()
                await orchestrator._signal_termination(stop)
                return
    await orchestrator._orchestrate_step(ctx.cancellation_token)
