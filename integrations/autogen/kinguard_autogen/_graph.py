"""GraphFlow: after a halt, the graph goes on from the message as the person decided it.

A ``GraphFlow``'s manager routes each node's message along the edges whose conditions it
meets, and ends the graph when no node is left to run. A halted message reaches it as
kinguard's notice, which it routes at once: an edge whose condition the notice meets fires
(``lambda m: "APPROVE" not in m.to_model_text()``), and a notice from a last node ends the
graph, so that the next run starts it afresh. The message a person then released came into a
graph that had gone on without it: both branches ran, or the whole graph ran again.

So the manager's routing state is kept from before the first halt notice of a run, with each
node's message routed from there on. A run on released messages puts the routing back and
routes those messages again, each released message in the place of its notice (a rejected
one's notice keeps its place, routed as a blocked message's notice is). The thread, which is
what the team has said, is left as it is.
"""

from __future__ import annotations

import copy
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from autogen_agentchat.messages import BaseAgentEvent, BaseChatMessage
from autogen_agentchat.teams import GraphFlow
from autogen_agentchat.teams._group_chat._base_group_chat_manager import BaseGroupChatManager

from kinguard import Action
from kinguard_autogen._events import META_RESOLVED, kinguard_action
from kinguard_autogen._participant import TeamGuard

__all__ = ["resuming_where_halted"]

_Update = Callable[[Sequence[BaseAgentEvent | BaseChatMessage]], Awaitable[None]]
# Messages routed after a halt notice: the team stops within the step, so a few at most. More
# means the team went on without stopping (no longer guarded): nothing to resume then.
_MAX_ROUTED = 256


class _Pause:
    """A halt in one run: the manager's routing before it, and what it routed from there on."""

    __slots__ = ("before", "routed", "run")

    def __init__(self, run: int, before: Mapping[str, Any]) -> None:
        self.run = run
        self.before = before
        self.routed: list[BaseChatMessage] = []


def resuming_where_halted(
    team: GraphFlow, tg: TeamGuard
) -> Callable[..., Callable[[], BaseGroupChatManager]]:
    """The team's ``_create_group_chat_manager_factory``, whose manager routes released
    messages as described above. ``tg``: the guard of the team's agents."""
    create = team._create_group_chat_manager_factory

    def factory(*args: Any, **kwargs: Any) -> Callable[[], BaseGroupChatManager]:
        make = create(*args, **kwargs)

        def manager() -> BaseGroupChatManager:
            made = make()
            _resume_where_halted(made, set(team._graph.nodes), tg)
            return made

        return manager

    return factory


def _resume_where_halted(manager: BaseGroupChatManager, nodes: set[str], tg: TeamGuard) -> None:
    update: _Update = manager.update_message_thread
    reset = manager.reset
    load_state = manager.load_state
    pause: _Pause | None = None

    async def update_message_thread(messages: Sequence[BaseAgentEvent | BaseChatMessage]) -> None:
        nonlocal pause
        if pause is not None and pause.run != tg.runs:
            # The first update of a later run: its task, on a resume (none on a rejection).
            halted, pause = pause, None
            released = {
                m.source: m
                for m in messages
                if isinstance(m, BaseChatMessage) and META_RESOLVED in m.metadata
            }
            if released and halted.run == tg.runs - 1:
                rerouted = await _reroute(manager, update, load_state, halted, released)
                if messages[-1].id in rerouted:
                    # Routed in its notice's place already: into the thread, not routed twice.
                    await BaseGroupChatManager.update_message_thread(manager, messages)
                    return
        last = messages[-1] if messages else None
        if isinstance(last, BaseChatMessage) and last.source in nodes and tg in TeamGuard.live:
            if pause is None and kinguard_action(last) is Action.HALT:
                # A deep copy: the state shares the manager's own dicts, which routing changes.
                pause = _Pause(tg.runs, copy.deepcopy(await manager.save_state()))
            if pause is not None:
                pause.routed.append(last)
                if len(pause.routed) > _MAX_ROUTED:
                    pause = None
        await update(messages)

    async def forget_and_reset() -> None:
        nonlocal pause
        pause = None
        await reset()

    async def forget_and_load(state: Mapping[str, Any]) -> None:
        nonlocal pause
        pause = None
        await load_state(state)

    # Instance attributes of the manager kinguard's factory made: the class is untouched.
    manager.update_message_thread = update_message_thread  # type: ignore[method-assign]
    manager.reset = forget_and_reset  # type: ignore[method-assign]
    manager.load_state = forget_and_load  # type: ignore[method-assign]


async def _reroute(
    manager: BaseGroupChatManager,
    update: _Update,
    load_state: Callable[[Mapping[str, Any]], Awaitable[None]],
    halted: _Pause,
    released: Mapping[str, BaseChatMessage],
) -> set[str]:
    """Put back the routing from before the halt and route what followed again, ``released``
    (by sender) in the place of their notices. The ids of those routed so (none: no notice of
    theirs was routed there, and nothing changed)."""
    notices = {m.source for m in halted.routed if kinguard_action(m) is Action.HALT}
    if not notices & released.keys():
        return set()
    now = await manager.save_state()
    # The routing as it was; the thread and the turn count as they are.
    keep = {"message_thread": now["message_thread"], "current_turn": now["current_turn"]}
    await load_state({**halted.before, **keep})
    thread = manager._message_thread
    said = len(thread)
    rerouted: set[str] = set()
    for message in halted.routed:
        if message.source in released and kinguard_action(message) is Action.HALT:
            message = released[message.source]
            rerouted.add(message.id)
        await update([message])
    del thread[said:]  # routed again, not said again
    return rerouted
