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
one's notice keeps its place, routed as a blocked message's notice is). A run without a task
(a rejection) routes the notices again so: a graph that ended on one (a halt at its last node)
ends that run at once, as it would have after a blocked message, instead of starting afresh.
The thread, which is what the team has said, is left as it is. A halt said inside a node's
turn (a SocietyOfMindAgent's team, an agent used as a tool) pauses it the same way; the node's
own message is routed again as it was, and the released message routes nothing (not even
from an agent that is a node too): at the graph's end, that run ends at once. The kept
routing rides in the manager's saved state, so a team built afresh and given it resumes the
same way. A run whose graph ends on a halt stops with the team's condition's stop (kinguard's
halt), not AgentChat's "Digraph execution is complete", which it gives a graph at its end
before asking the condition.
"""

from __future__ import annotations

import copy
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from autogen_agentchat.messages import BaseAgentEvent, BaseChatMessage
from autogen_agentchat.teams import GraphFlow
from autogen_agentchat.teams._group_chat._base_group_chat_manager import BaseGroupChatManager
from autogen_agentchat.teams._group_chat._graph._digraph_group_chat import GraphFlowManager
from autogen_core import CancellationToken

from kinguard import Action
from kinguard.logs import get_logger
from kinguard_autogen._events import META_RESOLVED, kinguard_action
from kinguard_autogen._managers import Patch, with_manager
from kinguard_autogen._participant import TeamGuard

__all__ = ["resume_where_halted"]

_log = get_logger("kinguard.autogen")

# Under this key in the manager's state (which AgentChat's GraphFlow ignores): a halt's pause.
_STATE_KEY = "kinguard_pause"

_Update = Callable[[Sequence[BaseAgentEvent | BaseChatMessage]], Awaitable[None]]
# Messages routed after a halt notice: the team stops within the step, so a few at most. More
# means the team went on without stopping (no longer guarded): nothing to resume then.
_MAX_ROUTED = 256


def _halt_notice(message: BaseAgentEvent | BaseChatMessage) -> bool:
    # Not a verdict event: a tool call's halt refused the call, and stopped nothing.
    return isinstance(message, BaseChatMessage) and kinguard_action(message) is Action.HALT


class _Pause:
    """A halt in one run: the manager's routing before it, and what it routed from there on."""

    __slots__ = ("before", "routed", "run")

    def __init__(self, run: int, before: Mapping[str, Any]) -> None:
        self.run = run
        self.before = before
        self.routed: list[BaseChatMessage] = []


def resume_where_halted(team: GraphFlow, tg: TeamGuard, patch: Patch) -> None:
    """Make the team's manager route released messages as described above. ``tg``: the guard
    of the team's agents."""
    nodes = set(team._graph.nodes)
    if not with_manager(
        team, GraphFlowManager, lambda made: _Resuming(made, nodes, tg).install(patch), patch
    ):
        _log.warning(
            "kinguard.autogen.graph_routing_unguarded",
            team=tg.team_name,
            detail="this GraphFlow's manager is out of kinguard's reach (another runtime): "
            "after a halt it routes the notice as any message; guard it before its first run",
        )


class _Resuming:
    """Stands in for one manager's thread updates, choice of speakers, reset and state
    (instance attributes of the manager kinguard's factory made: its class is untouched)."""

    def __init__(self, manager: GraphFlowManager, nodes: set[str], tg: TeamGuard) -> None:
        self.manager = manager
        self.nodes = nodes
        self.tg = tg
        self.update: _Update = manager.update_message_thread
        self.reset = manager.reset
        self.save = manager.save_state
        self.load = manager.load_state
        self.transition = manager._transition_to_next_speakers
        self.terminate = manager._apply_termination_condition
        self.pause: _Pause | None = None

    def install(self, patch: Patch) -> None:
        manager = self.manager
        patch(manager, "update_message_thread", self.update_message_thread)
        patch(manager, "reset", self.forget_and_reset)
        patch(manager, "save_state", self.save_state)
        patch(manager, "load_state", self.load_state)
        patch(manager, "_transition_to_next_speakers", self.transition_to_next_speakers)
        patch(manager, "_apply_termination_condition", self.apply_termination_condition)

    async def update_message_thread(
        self, messages: Sequence[BaseAgentEvent | BaseChatMessage]
    ) -> None:
        try:
            routed = await self._rerouted(messages)
        except Exception as exc:  # kinguard's own failure: the graph routes as it would
            self.pause = None
            routed = False
            self.tg.adapter_failed(exc)
        if routed:
            # Routed in its notice's place already: into the thread, not routed twice.
            await BaseGroupChatManager.update_message_thread(self.manager, messages)
        else:
            await self.update(messages)

    async def transition_to_next_speakers(self, cancellation_token: CancellationToken) -> None:
        try:
            ended = await self._ended_at_notice()
        except Exception as exc:  # kinguard's own failure: the graph goes on as it would
            ended = False
            self.tg.adapter_failed(exc)
        if ended:
            # Nothing is left to run: the graph ends as AgentChat ends one (its stop message,
            # its routing reset for the next run).
            await self.manager._apply_termination_condition([])
        else:
            await self.transition(cancellation_token)

    async def apply_termination_condition(
        self, delta: Sequence[BaseAgentEvent | BaseChatMessage], increment_turn_count: bool = False
    ) -> bool:
        manager = self.manager
        try:
            # A graph that completes on a halt of this run (at its last node) stops for the
            # halt: AgentChat checks completion before the team's condition, and its stop
            # reason would tell the app the run ended normally while a message awaits review.
            pause = self.pause
            if (
                not manager._ready
                and pause is not None
                and pause.run == self.tg.runs
                and await BaseGroupChatManager._apply_termination_condition(
                    manager, delta, increment_turn_count
                )
            ):
                manager._reset_execution_state()  # the graph has ended, as AgentChat ends it
                return True
        except Exception as exc:  # kinguard's own failure: the graph ends as it would
            self.tg.adapter_failed(exc)
        return await self.terminate(delta, increment_turn_count)

    async def _ended_at_notice(self) -> bool:
        """Whether a run without a task (after a rejection, or with the halt left undecided)
        follows a run whose graph ended at a halt notice (the halt was at its last node).

        The notice is the message the graph goes on from, as a blocked message's is; but the
        graph ended on it and reset its routing, which would start it afresh and run every
        agent again. So the routing is put back and the notices routed again, in their places."""
        pause = self.pause
        if pause is None or pause.run == self.tg.runs:
            return False
        self.pause = None  # settled by this run, whatever comes of it
        if pause.run != self.tg.runs - 1:
            return False
        await self._reroute(pause, {})
        return not self.manager._ready

    async def _rerouted(self, messages: Sequence[BaseAgentEvent | BaseChatMessage]) -> bool:
        """Whether ``messages`` (a run's task) released a halt of the run before, whose
        routing was done again with them, the last of them included."""
        tg = self.tg
        pause = self.pause
        rerouted: set[str] = set()
        if pause is not None and pause.run != tg.runs:
            # The first update of a later run: its task, on a resume (none on a rejection).
            self.pause = None
            released = {
                m.source: m
                for m in messages
                if isinstance(m, BaseChatMessage) and META_RESOLVED in m.metadata
            }
            if released and pause.run == tg.runs - 1:
                await self._reroute(pause, released)
                # Routed in their notices' places, or (said inside a node's turn: a
                # SocietyOfMindAgent's team, an agent used as a tool, a node or not) nowhere.
                rerouted = {m.id for m in released.values()}
        last = messages[-1] if messages else None
        if isinstance(last, BaseChatMessage) and last.source in self.nodes and tg in TeamGuard.live:
            # A node's turn halted: its own message, or one said inside it (listed before it).
            if self.pause is None and any(map(_halt_notice, messages)):
                state = await self.save()
                # A deep copy: the state shares dicts with the manager, which routing changes.
                # Not the thread, which a resume keeps as it is then.
                before = {k: copy.deepcopy(v) for k, v in state.items() if k != "message_thread"}
                self.pause = _Pause(tg.runs, before)
            if self.pause is not None:
                self.pause.routed.append(last)
                if len(self.pause.routed) > _MAX_ROUTED:
                    self.pause = None
        return last is not None and last.id in rerouted

    async def _reroute(self, pause: _Pause, released: Mapping[str, BaseChatMessage]) -> None:
        """Put back the routing from before the halt and route what followed again, ``released``
        (by sender) in the place of their notices."""
        manager = self.manager
        now = await self.save()
        # The routing as it was; the thread and the turn count as they are.
        keep = {"message_thread": now["message_thread"], "current_turn": now["current_turn"]}
        await self.load({**pause.before, **keep})
        thread = manager._message_thread
        said = len(thread)
        for message in pause.routed:
            if message.source in released and kinguard_action(message) is Action.HALT:
                message = released[message.source]
            await self.update([message])
        del thread[said:]  # routed again, not said again

    async def forget_and_reset(self) -> None:
        self.pause = None
        await self.reset()

    async def save_state(self) -> Mapping[str, Any]:
        state = await self.save()
        pause = self.pause
        if pause is None:
            return state
        # A halt awaiting a person: a team built afresh resumes it as this one would.
        routed = [message.dump() for message in pause.routed]
        return {**state, _STATE_KEY: {"before": pause.before, "routed": routed}}

    async def load_state(self, state: Mapping[str, Any]) -> None:
        await self.load(state)
        self.pause = None
        saved = state.get(_STATE_KEY)
        if not isinstance(saved, Mapping):
            return
        try:
            pause = _Pause(self.tg.runs, dict(saved["before"]))
            create = self.manager._message_factory.create
            made = [create(message) for message in saved["routed"]]
            pause.routed = [m for m in made if isinstance(m, BaseChatMessage)]
        except Exception as exc:  # the graph resumes as it would without kinguard
            self.tg.adapter_failed(exc)
            return
        self.pause = pause
