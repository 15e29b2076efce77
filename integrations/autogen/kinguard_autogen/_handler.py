"""The intervention handler that inspects every group-chat message before the others get it.

How AgentChat 0.7 moves one agent turn through its runtime (``_chat_agent_container.py``):
the participant's container publishes ``GroupChatMessage(chat_message)`` on the team's output
topic (what ``run_stream`` yields), then ``GroupChatAgentResponse`` on the group topic (what the
manager, the termination condition and every other participant buffer). The runtime passes each
publish through its intervention handlers first, in that order, from a single loop. So kinguard
inspects at the first sight, remembers the verdict by message id and applies the same rewrite
to both.

Two runtime facts shape the rest (``autogen_core/_single_threaded_agent_runtime.py``,
``_process_next``): a handler that returns ``DropMessage`` or raises loses the message *and*
skips ``task_done()``, so ``stop_when_idle()`` (which every embedded-runtime run awaits) waits
forever. This handler therefore never drops and never raises: blocked and halted messages are
replaced by a notice, and its own failures are contained.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from autogen_agentchat.messages import (
    BaseAgentEvent,
    BaseChatMessage,
    BaseTextChatMessage,
    ModelClientStreamingChunkEvent,
    StopMessage,
    TextMessage,
)
from autogen_agentchat.teams._group_chat._events import (
    GroupChatAgentResponse,
    GroupChatMessage,
    GroupChatReset,
    GroupChatStart,
    GroupChatTeamResponse,
)
from autogen_core import (
    AgentId,
    DefaultInterventionHandler,
    DropMessage,
    MessageContext,
    SingleThreadedAgentRuntime,
    TopicId,
)

from kinguard import Action, KinGuard, Message, Verdict
from kinguard.logs import get_logger
from kinguard_autogen._events import (
    KINGUARD_SOURCE,
    META_ACTION,
    META_REASONS,
    META_RESOLVED,
    META_SIGNALS,
    KinGuardVerdictEvent,
)
from kinguard_autogen._output import OutputGate

__all__ = ["EventMode", "KinGuardInterventionHandler", "TeamGuard"]

_log = get_logger("kinguard.autogen")

EventMode = Literal["none", "flagged", "all"]
_CACHE_SIZE = 1024
_ALLOW = Action.ALLOW
_HALT = Action.HALT
_STATE_VERSION = 1


@dataclasses.dataclass(frozen=True, slots=True)
class TeamTopics:
    """The runtime addresses of one team, copied from its (private) attributes once."""

    team_id: str
    team_name: str
    participants: tuple[str, ...]
    participant_topics: Mapping[str, str]
    group_topic: str
    manager_topic: str


class TeamGuard:
    """Everything kinguard keeps for one guarded team; the handler's state."""

    def __init__(
        self,
        guard: KinGuard,
        runtime: SingleThreadedAgentRuntime,
        topics: TeamTopics,
        *,
        conversation_id: str,
        events: EventMode,
        gate: OutputGate,
    ) -> None:
        self.guard = guard
        self.runtime = runtime
        self.topics = topics
        self.conversation_id = conversation_id
        self.events = events
        self.turn = 0
        self.pending_halt: Verdict | None = None
        # Identity blocks for participants without a system message, sent as their first message.
        self.identity_messages: dict[str, str] = {}
        self.identity_delivered: set[str] = set()
        # Resolved halts to deliver to everyone but their sender: message id -> sender.
        self.private_deliveries: dict[str, str] = {}
        # Verdicts by message id, from the first sight (output topic) to the second (group
        # topic); insertion-ordered, so the oldest is evicted if a second sight never comes.
        self._verdicts: dict[str, tuple[Verdict, BaseChatMessage]] = {}
        self.gate = gate
        """The hook on the team's output queue: verdict events and token chunks."""
        # Each sender's recipients: the participants are fixed, so each tuple is built once.
        self._recipients: dict[str, tuple[str, ...]] = {}

    # -- persistence ----------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        return {
            "version": _STATE_VERSION,
            "guard": self.guard.state_dict(),
            "turn": self.turn,
            "pending_halt": (
                None if self.pending_halt is None else self.pending_halt.model_dump(mode="json")
            ),
            "identity_delivered": sorted(self.identity_delivered),
        }

    def load_state(self, state: Mapping[str, Any]) -> None:
        self.guard.load_state(state.get("guard", {}))
        self.turn = int(state.get("turn", 0))
        halt = state.get("pending_halt")
        self.pending_halt = None if halt is None else Verdict.model_validate(halt)
        self.identity_delivered = {str(name) for name in state.get("identity_delivered", ())}
        self._verdicts.clear()
        self.gate.clear()

    # -- inspection and rewriting ---------------------------------------------------------

    def inspectable(self, message: BaseChatMessage) -> bool:
        """Agents' messages not yet inspected (kinguard's own and resolved halts are not)."""
        return (
            message.source != KINGUARD_SOURCE
            and not isinstance(message, StopMessage)
            and META_ACTION not in message.metadata
            and META_RESOLVED not in message.metadata
        )

    async def inspect(self, message: BaseChatMessage) -> tuple[Verdict, BaseChatMessage]:
        sender = message.source
        recipients = self._recipients.get(sender)
        if recipients is None:
            recipients = self._recipients[sender] = tuple(
                name for name in self.topics.participants if name != sender
            )
        text = message.to_model_text()
        verdict = await self.guard.ainspect(
            Message(
                conversation_id=self.conversation_id,
                sender=sender,
                recipients=recipients,
                text=text,
                turn=self.turn,
                metadata={
                    "framework": "autogen",
                    "autogen.team": self.topics.team_name,
                    "autogen.message_id": message.id,
                    "autogen.message_type": type(message).__name__,
                },
            )
        )
        self.turn += 1
        if verdict.action is _ALLOW and not verdict.modified and verdict.error is None:
            # Most messages: delivered as the very same object, unstamped, and no event unless
            # every verdict is streamed.
            delivered: BaseChatMessage = message
            streamed = self.events == "all"
        else:
            delivered = rewrite(message, verdict, text)
            streamed = self.events == "all" or (
                self.events == "flagged"
                and (verdict.action is not _ALLOW or verdict.error is not None)
            )
        verdicts = self._verdicts
        verdicts[message.id] = (verdict, delivered)
        if len(verdicts) > _CACHE_SIZE:
            del verdicts[next(iter(verdicts))]
        if streamed:
            self.gate.expect_event(delivered.id, KinGuardVerdictEvent.from_verdict(verdict))
        return verdict, delivered

    def known(self, message_id: str) -> tuple[Verdict, BaseChatMessage] | None:
        """The verdict and delivered message of a message inspected on first sight, once."""
        return self._verdicts.pop(message_id, None)

    async def verdict_for(self, message: BaseChatMessage) -> tuple[Verdict | None, BaseChatMessage]:
        """The verdict reached when the message was first seen, or a fresh inspection."""
        known = self.known(message.id)
        if known is not None:
            return known
        if not self.inspectable(message):
            return None, message
        return await self.inspect(message)

    async def deliver_to(self, agent: str, messages: Sequence[BaseChatMessage]) -> None:
        """Put messages into one participant's buffer: it sees them on its next turn."""
        topic = self.topics.participant_topics.get(agent)
        if topic is None:
            return
        await self.runtime.publish_message(
            GroupChatStart(messages=list(messages)),
            topic_id=TopicId(type=topic, source=self.topics.team_id),
        )

    async def after_delivery(self, verdict: Verdict) -> None:
        """Side effects of a verdict once its message is on its way: reminder, pending halt."""
        if verdict.nudge is not None and verdict.sender in self.topics.participant_topics:
            text = self.guard.pop_nudge(verdict.sender, verdict.conversation_id) or verdict.nudge
            await self.deliver_to(
                verdict.sender, [TextMessage(source=KINGUARD_SOURCE, content=text)]
            )
        if verdict.action is Action.HALT:
            self.pending_halt = verdict

    def already_delivered(self, message: BaseChatMessage) -> BaseChatMessage | None:
        known = self._verdicts.get(message.id)
        return None if known is None else known[1]

    def contained(self, sender: str, exc: BaseException) -> str | None:
        """After an adapter failure: the notice to deliver (fail closed) or None (fail open)."""
        _log.error(
            "kinguard.autogen.adapter_failed",
            team=self.topics.team_name,
            sender=sender,
            error=repr(exc),
            error_mode=self.guard.policy.error_mode,
        )
        if self.guard.policy.error_mode == "closed":
            return f"[kinguard blocked a message from {sender}: inspection failure]"
        return None


def rewrite(message: BaseChatMessage, verdict: Verdict, text: str) -> BaseChatMessage:
    """The message as the other agents should get it, stamped with kinguard's verdict.

    ``text`` is the message as kinguard read it (``to_model_text()``), passed in rather than
    rendered again. A message kinguard lets through untouched is delivered as the very same
    object, unstamped: most messages are benign and copying each one would be the adapter's main
    cost.
    """
    if verdict.action is Action.ALLOW and not verdict.modified and verdict.error is None:
        return message
    if verdict.action is Action.HALT or verdict.delivered_text is None:
        # A halted message is withheld like a blocked one: the others have it buffered before the
        # team stops, so anything else would leak it when the team resumes.
        delivered = verdict.notice or f"[kinguard withheld a message from {message.source}]"
    else:
        delivered = verdict.delivered_text
    metadata = {**message.metadata, META_ACTION: verdict.action.value}
    if verdict.signals:
        metadata[META_SIGNALS] = ",".join(verdict.signal_names)
    if verdict.reasons:
        metadata[META_REASONS] = "; ".join(verdict.reasons)
    return replace_text(message, delivered, metadata, text)


def replace_text(
    message: BaseChatMessage, text: str, metadata: dict[str, str], original: str
) -> BaseChatMessage:
    """``message`` saying ``text``; ``original`` is what it says now (its model text)."""
    if text == original:
        return message.model_copy(update={"metadata": metadata})
    if isinstance(message, BaseTextChatMessage):
        # Keeps the type, so a Swarm HandoffMessage still hands off; only its words change.
        return message.model_copy(update={"content": text, "metadata": metadata})
    # Multimodal or structured content cannot hold the rewrite: deliver the text instead.
    return TextMessage(
        id=message.id,
        source=message.source,
        content=text,
        metadata=metadata,
        models_usage=message.models_usage,
        created_at=message.created_at,
    )


# What on_publish does with each message type, resolved by isinstance once per type: the runtime
# passes every publish of every team through the handler, and most need nothing from it.
_PASS, _OUTPUT, _AGENT_RESPONSE, _TEAM_RESPONSE, _START = range(5)
_ROUTES: dict[type, int] = {}


def _route(cls: type) -> int:
    if issubclass(cls, GroupChatMessage):
        route = _OUTPUT
    elif issubclass(cls, GroupChatAgentResponse):
        route = _AGENT_RESPONSE
    elif issubclass(cls, GroupChatTeamResponse):
        route = _TEAM_RESPONSE
    elif issubclass(cls, GroupChatStart):
        route = _START
    else:
        route = _PASS
    _ROUTES[cls] = route
    return route


class KinGuardInterventionHandler(DefaultInterventionHandler):
    """Runs kinguard on the traffic of each guarded team in its runtime; ignores the rest.

    One per runtime, shared by every team guarded on it. The runtime hands each of its handlers
    the message as it was published and keeps the *last* handler's answer (``_process_next``),
    so with one handler per team the later one, passing another team's message on unchanged,
    would undo the earlier one's rewrite.
    """

    def __init__(self, team_guard: TeamGuard | None = None) -> None:
        self._teams: dict[str, TeamGuard] = {}
        if team_guard is not None:
            self.add(team_guard)

    @property
    def teams(self) -> Mapping[str, TeamGuard]:
        """The guarded teams on this runtime, by team id."""
        return self._teams

    def add(self, team_guard: TeamGuard) -> None:
        self._teams[team_guard.topics.team_id] = team_guard

    def remove(self, team_id: str) -> None:
        self._teams.pop(team_id, None)

    async def on_publish(
        self, message: Any, *, message_context: MessageContext
    ) -> Any | type[DropMessage]:
        # The runtime calls this for every publish of every team on it, three per agent turn:
        # the message's type settles most (a speaker request, another team's event) at once.
        route = _ROUTES.get(type(message))
        if route is None:
            route = _route(type(message))
        if route == _PASS:
            return message
        topic = message_context.topic_id
        if topic is None:
            return message
        tg = self._teams.get(topic.source)
        if tg is None:  # a team kinguard does not guard
            return message
        if route == _START:
            if topic.type == tg.topics.group_topic:
                return self._without_private(tg, message)
            return message
        # Contained: a handler that raises loses the message and hangs the team (module doc).
        try:
            if route == _OUTPUT:
                # First sight of an agent's message: inspect it now, before anyone gets it.
                chat = message.message
                if isinstance(chat, BaseChatMessage):
                    if tg.inspectable(chat):
                        _, delivered = await tg.inspect(chat)
                        if delivered is not chat:
                            return GroupChatMessage(message=delivered)
                elif isinstance(chat, ModelClientStreamingChunkEvent):
                    # Part of a message not yet inspected: the output gate holds it (_output).
                    tg.gate.expect_chunks()
                return message
            if route == _AGENT_RESPONSE:
                # Second sight: the verdict reached on the first one decides.
                response = message.response
                chat = response.chat_message
                known = tg.known(chat.id)
                if (
                    known is not None
                    and known[1] is chat
                    and not response.inner_messages
                    and known[0].nudge is None
                    and known[0].action is not _HALT
                ):
                    return message  # let through untouched: nothing to copy, nothing to follow
                return await self._on_agent_response(tg, message, known)
            return await self._on_team_response(tg, message)
        except Exception as exc:
            return self._fallback(tg, message, exc)

    async def on_send(
        self, message: Any, *, message_context: MessageContext, recipient: AgentId
    ) -> Any | type[DropMessage]:
        tg = self._teams.get(recipient.key)
        if tg is None or recipient.type != tg.topics.manager_topic:
            return message
        try:
            if isinstance(message, GroupChatStart):
                await self._on_run_start(tg, message)
            elif isinstance(message, GroupChatReset):
                tg.identity_delivered.clear()
                tg.gate.clear()
                tg.pending_halt = None
        except Exception as exc:
            tg.contained("<team>", exc)
        return message

    async def on_response(
        self, message: Any, *, sender: AgentId, recipient: AgentId | None
    ) -> Any | type[DropMessage]:
        return message

    # -- one handler per event type --------------------------------------------------------

    async def _on_agent_response(
        self,
        tg: TeamGuard,
        message: GroupChatAgentResponse,
        known: tuple[Verdict, BaseChatMessage] | None,
    ) -> GroupChatAgentResponse:
        response = message.response
        chat = response.chat_message
        verdict, delivered = known if known is not None else await tg.verdict_for(chat)
        original = response.inner_messages
        inner = original
        if original:
            rewritten: list[BaseAgentEvent | BaseChatMessage] = []
            changed = False
            for item in original:
                if isinstance(item, BaseChatMessage):
                    _, replaced = await tg.verdict_for(item)
                    changed = changed or replaced is not item
                    item = replaced
                rewritten.append(item)
            if changed:
                inner = rewritten
        if verdict is not None:
            await tg.after_delivery(verdict)
        if delivered is chat and inner is original:
            return message
        return GroupChatAgentResponse(
            response=dataclasses.replace(response, chat_message=delivered, inner_messages=inner),
            name=message.name,
        )

    async def _on_team_response(
        self, tg: TeamGuard, message: GroupChatTeamResponse
    ) -> GroupChatTeamResponse:
        rewritten: list[BaseAgentEvent | BaseChatMessage] = []
        verdicts: list[Verdict] = []
        changed = False
        for item in message.result.messages:
            if isinstance(item, BaseChatMessage):
                verdict, replaced = await tg.verdict_for(item)
                if verdict is not None:
                    verdicts.append(verdict)
                changed = changed or replaced is not item
                item = replaced
            rewritten.append(item)
        for verdict in verdicts:
            await tg.after_delivery(verdict)
        if not changed:
            return message
        result = message.result.model_copy(update={"messages": rewritten})
        return GroupChatTeamResponse(result=result, name=message.name)

    async def _on_run_start(self, tg: TeamGuard, start: GroupChatStart) -> None:
        tg.gate.clear()
        for name, block in tg.identity_messages.items():
            if name not in tg.identity_delivered:
                await tg.deliver_to(name, [TextMessage(source=KINGUARD_SOURCE, content=block)])
                tg.identity_delivered.add(name)
        resolved = False
        for item in start.messages or ():
            sender = tg.private_deliveries.get(item.id)
            if sender is None:
                continue
            resolved = True
            for name in tg.topics.participants:
                if name != sender:
                    await tg.deliver_to(name, [item])
        if tg.pending_halt is not None and not resolved:
            _log.warning(
                "kinguard.autogen.halt_unresolved",
                team=tg.topics.team_name,
                sender=tg.pending_halt.sender,
                detail="the team was run again without resolve_halt(); the message stays withheld",
            )
        tg.pending_halt = None

    def _without_private(self, tg: TeamGuard, start: GroupChatStart) -> GroupChatStart:
        """A resolved halt reaches the others privately; its sender already knows what it said."""
        if not start.messages or not any(m.id in tg.private_deliveries for m in start.messages):
            return start
        kept = [m for m in start.messages if tg.private_deliveries.pop(m.id, None) is None]
        return GroupChatStart(
            messages=kept or None, output_task_messages=start.output_task_messages
        )

    def _fallback(self, tg: TeamGuard, message: Any, exc: BaseException) -> Any:
        """The adapter itself failed: deliver as the error mode says, never drop, never raise."""
        try:
            chat: BaseChatMessage | None = None
            if isinstance(message, GroupChatMessage) and isinstance(
                message.message, BaseChatMessage
            ):
                chat = message.message
            elif isinstance(message, GroupChatAgentResponse):
                chat = message.response.chat_message
                known = tg.already_delivered(chat)
                if known is not None:  # inspected fine on first sight: keep that outcome
                    tg.contained(chat.source, exc)
                    return GroupChatAgentResponse(
                        response=dataclasses.replace(message.response, chat_message=known),
                        name=message.name,
                    )
            notice = tg.contained(chat.source if chat is not None else "<unknown>", exc)
            if chat is None or notice is None:
                return message
            blocked = replace_text(
                chat,
                notice,
                {**chat.metadata, META_ACTION: Action.BLOCK.value},
                chat.to_model_text(),
            )
            if isinstance(message, GroupChatMessage):
                return GroupChatMessage(message=blocked)
            assert isinstance(message, GroupChatAgentResponse)
            return GroupChatAgentResponse(
                response=dataclasses.replace(message.response, chat_message=blocked),
                name=message.name,
            )
        except Exception as second:
            _log.error("kinguard.autogen.fallback_failed", error=repr(second))
            return message
