"""Inspection inside each participant's turn: nothing leaves an agent before kinguard has seen it.

How AgentChat 0.7 runs one turn (``_chat_agent_container.py``): the participant's container
iterates the agent's ``on_messages_stream`` (a nested team's ``run_stream``), publishes every
item it yields to the team's output topic (what ``run_stream`` of the team yields, ``Console``
prints), and then publishes the final ``Response`` on the group topic, where the manager, the
termination condition and every other participant take it from. So kinguard stands in for the
participant's ``on_messages_stream`` (an instance attribute; the agent's class and code are
untouched) and rewrites what the agent yields before the container sees any of it:

* the finished chat message (and any chat message among its inner messages) is inspected and
  replaced by what the verdict delivers: a redacted or concealed text, or a notice instead of a
  blocked or halted message;
* model token chunks (``model_client_stream=True``) are held until their message is inspected,
  then yielded as produced, cut from the delivered text, or not at all;
* from the turn's first thought, tool call request or generated code on, its events are held
  too, until the turn's chat message is inspected: they may quote what that message's verdict,
  or a refused tool call's, withholds. They are yielded (and listed in the response's inner
  messages, which the team's state keeps) less those words, or not at all beside a withheld
  message, whose notice says all the others may know (but each tool result, less its output:
  a termination condition must see that a tool ran);
* the verdict event follows its message;
* on the agent's next turn, its pending nudge (and, for agents without a system message, its
  identity statement) comes first among the messages it is given.

This costs a fraction of a runtime intervention handler, which every publish of every team on
the runtime would pass through. A failure of kinguard's own never breaks the turn: it is
logged and the message is delivered or withheld as the guard's error mode says.
"""

from __future__ import annotations

import dataclasses
import json
import re
import uuid
import weakref
from collections.abc import AsyncGenerator, Callable, Collection, Iterable, Mapping, Sequence
from contextvars import ContextVar
from typing import Any, ClassVar, Literal, TypeVar

from autogen_agentchat.agents import SocietyOfMindAgent
from autogen_agentchat.base import Response, TaskResult
from autogen_agentchat.messages import (
    BaseAgentEvent,
    BaseChatMessage,
    BaseTextChatMessage,
    CodeGenerationEvent,
    HandoffMessage,
    MessageFactory,
    ModelClientStreamingChunkEvent,
    StopMessage,
    TextMessage,
    ThoughtEvent,
    ToolCallExecutionEvent,
    ToolCallRequestEvent,
    ToolCallSummaryMessage,
)
from autogen_core import CancellationToken, FunctionCall, MessageHandlerContext
from autogen_core.models import (
    AssistantMessage,
    FunctionExecutionResult,
    FunctionExecutionResultMessage,
    LLMMessage,
    SystemMessage,
    UserMessage,
)

from kinguard import Action, KinGuard, Verdict
from kinguard.identity import IdentityPolicy
from kinguard.logs import get_logger
from kinguard.streaming import recut
from kinguard.text import REDACTION, argument_strings
from kinguard.types import agent_message
from kinguard_autogen._events import (
    KINGUARD_SOURCE,
    META_ACTION,
    META_GUARD,
    META_REASONS,
    META_SIGNALS,
    KinGuardVerdictEvent,
    kinguard_action,
)

__all__ = [
    "VERDICT_EVENTS_WELCOME",
    "EventMode",
    "GuardedParticipant",
    "GuardedSocietyOfMind",
    "GuardedTeamParticipant",
    "TeamGuard",
    "inside_a_team",
    "without_verdict_events",
]

_log = get_logger("kinguard.autogen")

EventMode = Literal["none", "flagged", "all"]
_ALLOW = Action.ALLOW
_WITHHELD = frozenset({Action.BLOCK.value, Action.HALT.value})
_HALT = Action.HALT.value
# A turn's events are held from the first of these on: they say the model's own words.
_HELD_FROM = (ThoughtEvent, ToolCallRequestEvent, CodeGenerationEvent)
# Held events whose text a model streams as token chunks: cleaned, the chunks are re-cut.
_STREAMED_EVENTS = (ThoughtEvent, CodeGenerationEvent)
# Fields of an event that name things rather than say them: never cleaned of words.
_NAMING_FIELDS = frozenset(
    {"id", "source", "type", "created_at", "metadata", "models_usage", "name", "call_id"}
)
_VERDICT_KEYS = frozenset({META_ACTION, META_GUARD, META_SIGNALS, META_REASONS})
# The name a refused call's result goes by outside its agent (see _as_refused); no tool's:
# AutoGen's model clients keep the name of a tool a model calls to [a-zA-Z0-9_-].
_REFUSED_RESULT = "{} (refused by kinguard)"
# Written into a name in kinguard's notice to break a word a termination condition watches for
# (see TeamGuard.defused): invisible, and the name reads as it did.
_WORD_JOINER = "\u2060"
# What stands in for text kinguard withholds without a signal to name.
_WITHHELD_TEXT = REDACTION.format("withheld")
_STATE_VERSION = 2
_MAX_PRIVATE = 1024
_MAX_TOOL_EVENTS = 64
# A tool call as inspected: its id (None: made without one), tool and arguments (_arguments_key).
_CallKey = tuple[str | None, str, str]
_K = TypeVar("_K")
_V = TypeVar("_V")


class TeamGuard:
    """Everything kinguard keeps for one guarded team."""

    # Every guarded team's, to tell whether a conversation in a guard is shared by two teams.
    live: ClassVar[weakref.WeakSet[TeamGuard]] = weakref.WeakSet()

    def __init__(
        self,
        guard: KinGuard,
        *,
        team_name: str,
        participants: Sequence[str],
        conversation_id: str,
        events: EventMode,
    ) -> None:
        self.guard = guard
        self.team_name = team_name
        self.participants = tuple(participants)
        self.conversation_id = conversation_id
        self.events = events
        # A guarded team nested in this one (or around it) with the same guard and conversation
        # is one conversation to the guard, where each message is inspected once: the two
        # share the stamp and the messages inspected.
        kin = next(
            (
                other
                for other in TeamGuard.live
                if other.guard is guard and other.conversation_id == conversation_id
            ),
            None,
        )
        # Stamped on the messages this team's guard acted on: it skips them when they pass
        # through another of its turns, a guarded team around it does not.
        self.stamp: str = uuid.uuid4().hex[:16] if kin is None else kin.stamp
        self.turn = 0
        self.runs = 0  # runs of the team started so far
        # The guarded teams around this one (each with a guard_team() of its own): their guards
        # inspect what this team delivers too, and their reminders are for its agents.
        self.enclosing: tuple[TeamGuard, ...] = ()
        # Halted messages awaiting a person, oldest first: agents running in parallel (a
        # GraphFlow fan-out) can each be halted in the same step.
        self.pending_halts: list[Verdict] = []
        # This run's verdicts that acted (any action but allow), by message id: a termination
        # condition is given one parallel answer's messages alone (see stopped_beside()).
        self.acted: dict[str, Verdict] = {}
        # Halted Swarm handoffs: verdict message id -> the target, handed control on release.
        self.handoff_targets: dict[str, str] = {}
        # Halted Swarm handoffs with a context: verdict message id -> the handoff an approval
        # releases, its words and context as the verdict's other rules deliver them.
        self.handoff_releases: dict[str, HandoffMessage] = {}
        # Halted messages that are not text (multimodal, structured) or stop messages: verdict
        # message id -> the message an approval releases as it was said (its images, its
        # structure, its type), kept when the verdict's other rules leave its words as they are.
        self.message_releases: dict[str, BaseChatMessage] = {}
        # What the team's (and the teams inside it guarded with it) TextMentionTerminations
        # watch for: kinguard's notices must not say it by accident (see defused()).
        self.termination_words: tuple[str, ...] = ()
        # Identity blocks for participants without a system message, given with their first turn.
        self.identity_messages: dict[str, str] = {}
        self.identity_delivered: set[str] = set()
        # Resolved halts: message id -> its sender, who must not be given its own message back.
        self.private_deliveries: dict[str, str] = {}
        # Resolved halts: message id -> the message as released here. An outer team's guard
        # may deliver it otherwise to its own participants; this team's get it as released.
        self.released: dict[str, BaseChatMessage] = {}
        # Each sender's recipients: the participants are fixed, so each tuple is built once.
        self._recipients: dict[str, tuple[str, ...]] = {}
        # Tool calls already inspected: (call id, tool, arguments) -> refused. A Swarm handoff
        # carries the sender's calls to the next agent in its context, where they must not be
        # read a second time. The call id is ``None`` for a call made without one (a custom
        # agent's); the tool and arguments are in the key because some clients (Ollama's) give
        # every call of a response the same id, and a workbench is not told which call it runs.
        self._checked_calls: dict[_CallKey, bool] = {}
        # Refused calls' results: (call id, tool, kinguard's notice). A refused call's result is
        # its notice, which tells it from the result of another call under the same id (or
        # none), whose tool ran. Empty until a call is refused: most teams never look further.
        self._refused_results: dict[tuple[str | None, str, str], None] = {}
        # Messages inspected lately, as delivered, by id: the messages of a team inside this one
        # pass through the turn of each agent above them (a nested team, a SocietyOfMindAgent)
        # and must be inspected once, where they were said.
        self._inspected: dict[str, BaseChatMessage] = {} if kin is None else kin._inspected
        # Verdict events of each agent's tool calls, streamed by that agent's turn: a call runs
        # inside the turn, where nothing can be yielded.
        self.tool_events: dict[str, list[KinGuardVerdictEvent]] = {}
        # Verdicts of each agent's refused tool calls (and code), for its turn to clean its
        # events of their words.
        self.refusals: dict[str, list[Verdict]] = {}
        TeamGuard.live.add(self)

    def retire(self) -> None:
        """The team is no longer guarded (``unguard_team``)."""
        TeamGuard.live.discard(self)

    # -- persistence ----------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        # Only this team's conversation: the guard may serve other teams and threads too.
        return {
            "version": _STATE_VERSION,
            "conversation_id": self.conversation_id,
            "guard": self.guard.state_dict(self.conversation_id),
            "turn": self.turn,
            "pending_halts": [verdict.model_dump(mode="json") for verdict in self.pending_halts],
            "identity_delivered": sorted(self.identity_delivered),
            "handoff_targets": dict(self.handoff_targets),
            "handoff_releases": {
                key: handoff.model_dump(mode="json")
                for key, handoff in self.handoff_releases.items()
            },
            "message_releases": {
                key: message.dump() for key, message in self.message_releases.items()
            },
            # A halt resolved before saving is released after loading: its sender must still
            # not be given its own message back.
            "private_deliveries": dict(self.private_deliveries),
        }

    def load_state(self, state: Mapping[str, Any], factory: MessageFactory | None = None) -> None:
        """``factory``: the team's, which makes the messages of the types its agents say."""
        saved = state.get("guard", {})
        saved_as = state.get("conversation_id")
        if saved_as is None:  # saved before states named their conversation
            saved_as = self._conversation_in(saved)
        guard_state = _renamed(saved, str(saved_as), self.conversation_id)
        self.guard.load_state(guard_state, self.conversation_id)
        self.turn = int(state.get("turn", 0))
        halts = state.get("pending_halts")
        if halts is None:  # version 1 kept one halt
            halts = [] if state.get("pending_halt") is None else [state["pending_halt"]]
        self.pending_halts = [Verdict.model_validate(halt) for halt in halts]
        self.identity_delivered = {str(name) for name in state.get("identity_delivered", ())}
        targets = state.get("handoff_targets", {})
        self.handoff_targets = {str(k): str(v) for k, v in dict(targets).items()}
        releases = state.get("handoff_releases", {})  # none in states saved before them
        self.handoff_releases = {
            str(k): HandoffMessage.model_validate(v) for k, v in dict(releases).items()
        }
        private = state.get("private_deliveries", {})
        self.private_deliveries = {str(k): str(v) for k, v in dict(private).items()}
        self.message_releases = {}
        for key, dumped in dict(state.get("message_releases", {})).items():
            try:
                made = (factory or MessageFactory()).create(dumped)
            except Exception as exc:  # an approval releases its text alone then
                _log.warning(
                    "kinguard.autogen.release_not_loaded",
                    team=self.team_name,
                    error=self.guard.describe_error(exc),
                )
                continue
            if isinstance(made, BaseChatMessage):
                self.message_releases[str(key)] = made

    def _conversation_in(self, saved: Mapping[str, Any]) -> str:
        """The team's conversation in a guard state saved without its id (the whole guard's):
        this team's id if it is there, else the only one there is."""
        monitor = saved.get("monitor", {})
        conversations = {
            str(c) for c in (*monitor.get("conversations", {}), *saved.get("nudges", {}))
        }
        if self.conversation_id not in conversations:
            if len(conversations) == 1:
                return next(iter(conversations))
            if conversations:
                _log.warning(
                    "kinguard.autogen.state_conversation_unknown",
                    team=self.team_name,
                    detail="a state saved without its conversation id holds several: none loaded",
                )
        return self.conversation_id

    # -- the team's life ------------------------------------------------------------------

    def on_run_start(self) -> None:
        """A run starts: a halt still pending (resolve_halt takes them off) is abandoned."""
        self.runs += 1
        self.abandon_halts("the team was run again without resolve_halt()")
        self.acted.clear()

    def abandon_halts(self, why: str) -> None:
        """Drop the halts still pending, and what their release would have needed: their
        messages stay withheld for good."""
        for verdict in self.pending_halts:
            _log.warning(
                "kinguard.autogen.halt_unresolved",
                team=self.team_name,
                sender=verdict.sender,
                detail=f"{why}; the message stays withheld",
            )
        self.pending_halts.clear()
        self.handoff_targets.clear()
        self.handoff_releases.clear()
        self.message_releases.clear()

    def on_reset(self) -> None:
        """The team starts a new conversation: nothing of the old one carries over, except
        what is not the team's to drop. A ``SocietyOfMindAgent`` resets its team after every
        turn, so a halt said in that turn must outlive the reset to be reviewed (the next run
        drops it if no one decides, and so does any other reset: ``guard_team``'s ``reset``
        calls :meth:`abandon_halts`), and a conversation another guarded team shares (one
        guard, one conversation id) goes on for that team."""
        shared = any(
            other is not self
            and other.guard is self.guard
            and other.conversation_id == self.conversation_id
            for other in TeamGuard.live
        )
        if not shared:
            self.guard.forget(self.conversation_id)
            self._inspected.clear()
        self.turn = 0
        self.identity_delivered.clear()
        self.private_deliveries.clear()
        self._checked_calls.clear()
        self._refused_results.clear()
        self.tool_events.clear()
        self.refusals.clear()

    def deliver_privately(self, message: BaseChatMessage, sender: str) -> None:
        _remember(self.private_deliveries, message.id, sender)
        self.remember_released(message)

    def remember_released(self, message: BaseChatMessage) -> None:
        """This team's own agents get ``message`` as it is here (see ``_team._as_released``)."""
        _remember(self.released, message.id, message)

    # -- one turn -------------------------------------------------------------------------

    def given(self, agent: str, messages: Sequence[BaseChatMessage]) -> Sequence[BaseChatMessage]:
        """What the agent is given this turn: kinguard's words for it first, then the rest."""
        first: list[BaseChatMessage] = []
        if agent in self.identity_messages and agent not in self.identity_delivered:
            first.append(TextMessage(source=KINGUARD_SOURCE, content=self.identity_messages[agent]))
            self.identity_delivered.add(agent)
        for nudge in self.pop_nudges(agent):
            first.append(TextMessage(source=KINGUARD_SOURCE, content=nudge))
        messages = self.not_its_own(agent, messages)
        return [*first, *messages] if first else messages

    def pop_nudges(self, agent: str) -> list[str]:
        """The agent's pending reminders, from this team's guard and those around it."""
        # Plain loops, here and in given(): asked before every turn and almost always empty,
        # where building generators costs several times the look-ups themselves.
        nudges = []
        for tg in (self, *self.enclosing):
            nudge = tg.guard.pop_nudge(agent, tg.conversation_id)
            if nudge:
                nudges.append(nudge)
        return nudges

    def not_its_own(
        self, agent: str, messages: Sequence[BaseChatMessage]
    ) -> Sequence[BaseChatMessage]:
        """``messages`` less the released halts the agent itself said."""
        private = self.private_deliveries
        if private and any(private.get(m.id) == agent for m in messages):
            return [m for m in messages if private.get(m.id) != agent]
        return messages

    def inspectable(self, message: BaseChatMessage) -> bool:
        """Agents' messages not yet inspected here (kinguard's own and resolved halts are not).

        A message another guarded team acted on (a nested team with its own ``guard_team()``)
        is inspected again: this team's policy and conversation have not seen it (unless that
        team has the same guard and conversation, and so the same stamp). So is a message a
        person released after another team's halt: ``resolve_halt`` stamps it with the stamp
        of the team whose guard ruled.
        """
        return (
            message.source != KINGUARD_SOURCE
            # A termination condition's stop message is the team's, not an agent's; one an
            # agent replies with goes to the others like any message. (The name first: it is
            # cheaper than the type check and almost always a participant's.)
            and not (message.source not in self.participants and isinstance(message, StopMessage))
            and message.metadata.get(META_GUARD) != self.stamp
        )

    def not_an_agent(self, message: BaseChatMessage) -> bool:
        """Whether a message a nested team's run lists is none of its agents' (nor of the
        teams' around it): a ``MagenticOneGroupChat`` lists its task (the app's words, or the
        outer agents', inspected in their turns) and its orchestrator's instructions, which
        quote the task and reached its agents as they were. kinguard guards the agents, not the
        app or the team's own coordinator, which speak for the app."""
        return message.source not in self.participants

    async def inspect(self, message: BaseChatMessage) -> tuple[Verdict | None, BaseChatMessage]:
        """The message as the other participants get it, and the verdict (None: not inspected).

        Never raises: a failure of kinguard's own follows the guard's error mode.
        """
        if not self.inspectable(message):
            return None, message
        known = self._inspected.get(message.id)
        if known is not None:
            return None, known
        try:
            verdict, delivered = await self._inspect(message)
        except Exception as exc:
            return None, self.contained(message, exc)
        _remember(self._inspected, message.id, delivered)
        return verdict, delivered

    async def _inspect(self, message: BaseChatMessage) -> tuple[Verdict, BaseChatMessage]:
        text = message.to_model_text()
        refused = False
        if isinstance(message, HandoffMessage) and message.context:
            # The target's model is given the handoff's context too (the sender's thought and
            # tool calls): its words are part of what this message says.
            words, refused = self._context_words(message.context)
            text = "\n\n".join([text, *words])
        verdict = await self._ainspect(
            message.source,
            text,
            {"autogen.message_id": message.id, "autogen.message_type": type(message).__name__},
        )
        if verdict.action is not Action.ALLOW:
            _remember(self.acted, verdict.message_id, verdict)
        if verdict.action is Action.HALT:
            self.pending_halts.append(verdict)
            if isinstance(message, HandoffMessage):
                self.handoff_targets[verdict.message_id] = message.target
        try:
            return verdict, self._delivered(message, verdict, text, refused)
        except Exception as exc:  # the verdict stands: what it withholds stays withheld
            return verdict, self.contained(message, exc, verdict)

    def _delivered(
        self, message: BaseChatMessage, verdict: Verdict, text: str, refused: bool
    ) -> BaseChatMessage:
        """The message as ``verdict`` delivers it; ``text`` and ``refused`` as inspected."""
        delivered = rewrite(message, verdict, text, self)
        if (
            verdict.action is Action.HALT
            and verdict.delivered_text == text
            and (isinstance(message, StopMessage) or not isinstance(message, BaseTextChatMessage))
        ):
            # Released as said on approval: a text would drop its images or structure, and a
            # stop message would no longer stop a team that stops on one.
            _remember(self.message_releases, verdict.message_id, message)
        if isinstance(message, HandoffMessage) and message.context:
            released = self._released_handoff(message, verdict, text, refused)
            if verdict.action is Action.HALT:
                if released is not None:  # what resolve_halt() hands over on approval
                    _remember(self.handoff_releases, verdict.message_id, released)
            elif released is None:  # blocked: the notice says all the others may know
                delivered = delivered.model_copy(update={"context": []})
            elif released is not message:
                delivered = delivered.model_copy(
                    update={"content": released.content, "context": released.context}
                )
        if isinstance(delivered, ToolCallSummaryMessage) and any(
            map(self.refused, delivered.tool_calls)
        ):
            # It lists the calls it sums up, and their results: shown as refused.
            calls = [
                dataclasses.replace(call, **_as_refused(call)) if self.refused(call) else call
                for call in delivered.tool_calls
            ]
            results = [
                result.model_copy(update=_as_refused(result)) if self.refused(result) else result
                for result in delivered.results
            ]
            delivered = delivered.model_copy(update={"tool_calls": calls, "results": results})
        return delivered

    def _released_handoff(
        self, message: HandoffMessage, verdict: Verdict, text: str, refused: bool
    ) -> HandoffMessage | None:
        """The handoff as ``verdict`` lets it through, or through once a person approves its
        halt (``None``: it delivers nothing). ``text``: the handoff as inspected, its words and
        its context's; ``refused``: its context holds a call kinguard refused.

        The target's model is given the context beside the words, so it goes as they do: less
        the words the verdict withheld (also those said across the words and the context), the
        identity cues concealment withholds and a refused call's arguments (its result is
        kinguard's notice already). The very same message when nothing changes. Without its
        context, saying the verdict's rewrite of all of it, when the context cannot be cleaned
        so: a signal about the whole text.
        """
        delivered = verdict.delivered_text
        if delivered is None:
            return None
        conceal = self.guard.identity is IdentityPolicy.CONCEAL
        if delivered == text and not refused and not conceal:
            return message
        # Concealment cleans all of it: the tool results in the context too, which inspection
        # leaves out (the tools' output, not the sender's words) but the target's model reads.
        words = {} if delivered == text else _withheld_words([verdict], approved=True)
        if words is not None:
            scrub = _scrubber(words)
            said: list[str] = []

            def clean(piece: str) -> str:
                cleaned = self.guard.concealed(piece if scrub is None else scrub(piece))
                said.append(cleaned)
                return cleaned

            content = clean(message.content)
            context = [_cleaned_context(item, clean, self.refused) for item in message.context]
            # What the pieces say together, checked: words said across two of them survive
            # the cleaning of each, and are cut from each of those.
            cut = _cut_across(said, words)
            if cut != said:
                pieces = iter(cut)
                content = next(pieces)
                context = [
                    _cleaned_context(item, lambda _: next(pieces), self.refused) for item in context
                ]
            joined = "\n\n".join(cut)
            folded = joined.lower()
            if not any(w in folded for w in words) and self.guard.concealed(joined) == joined:
                if content == message.content and context == message.context:
                    return message
                return message.model_copy(update={"content": content, "context": context})
        return message.model_copy(update={"content": delivered, "context": []})

    def _context_words(self, context: Sequence[LLMMessage]) -> tuple[list[str], bool]:
        """The words in a handoff's context not yet inspected, and whether it holds a call
        kinguard refused. Tool results are the tools' output, not the sender's words."""
        words: list[str] = []
        refused = False
        for item in context:
            if isinstance(item, (SystemMessage, UserMessage)):
                parts = [item.content] if isinstance(item.content, str) else item.content
                words.extend(p for p in parts if isinstance(p, str) and p.strip())
            elif isinstance(item, AssistantMessage):
                if item.thought and item.thought.strip():
                    words.append(item.thought)
                if isinstance(item.content, str):
                    words.append(item.content)
                    continue
                for call in item.content:
                    checked = self._checked(call)
                    if checked is None:
                        words.extend(_call_strings(call))
                    refused = refused or bool(checked)
        return words, refused

    async def _ainspect(self, sender: str, text: str, metadata: Mapping[str, str]) -> Verdict:
        """One inspection of ``text`` from ``sender`` to the other participants, this turn."""
        recipients = self._recipients.get(sender)
        if recipients is None:
            recipients = self._recipients[sender] = tuple(
                name for name in self.participants if name != sender
            )
        verdict = await self.guard.ainspect(
            agent_message(
                self.conversation_id,
                sender,
                recipients,
                text,
                self.turn,
                {"framework": "autogen", "autogen.team": self.team_name, **metadata},
            )
        )
        self.turn += 1
        return verdict

    async def check_tool_call(
        self,
        agent: str,
        tool: str,
        arguments: Mapping[str, Any] | None,
        call_id: str | None = None,
    ) -> str | None:
        """Inspect a tool call's string arguments as a message from ``agent``: the notice to
        return instead of running it, or None to run it."""
        notice = await self._tool_notice(agent, tool, arguments)
        key = (call_id, tool, _arguments_key(arguments))
        # The same call twice (one id, tool and arguments): a refusal of either holds for both.
        refused = notice is not None or self._checked_calls.get(key, False)
        _remember(self._checked_calls, key, refused)
        if notice is not None:
            _remember(self._refused_results, (call_id, tool, notice), None)
        return notice

    async def _tool_notice(
        self, agent: str, tool: str, arguments: Mapping[str, Any] | None
    ) -> str | None:
        text = "\n\n".join(argument_strings(arguments))
        if not text:
            return None
        try:
            verdict = await self._ainspect(agent, text, {"autogen.tool": tool})
        except Exception as exc:
            self.adapter_failed(exc, agent=agent, tool=tool)
            if self.guard.policy.error_mode == "closed":
                return self.defused(
                    f"[kinguard blocked the call to {tool}: inspection failure]", tool
                )
            return None
        self._queue_tool_event(agent, tool, verdict)
        if verdict.action in (Action.BLOCK, Action.HALT) or verdict.delivered_text != text:
            _bounded_append(self.refusals, agent, verdict)
            why = ", ".join(verdict.signal_names) or "policy"
            return self.defused(
                f"[kinguard blocked the call to {tool}: {why}]", tool, *verdict.signal_names
            )
        return None

    def refused(self, call: FunctionCall | FunctionExecutionResult) -> bool:
        """Whether kinguard refused ``call``, or the call of that result: a call by its id, tool
        and arguments, a result by its id, tool and content (kinguard's notice). Either made
        without an id to the workbench (by a custom agent) is found by the rest alone."""
        if not self._refused_results:
            return False
        if isinstance(call, FunctionCall):
            return bool(self._checked(call))
        # Not by ``is_error``: a custom agent may leave it unset.
        known = self._refused_results
        return any((each, call.name, call.content) in known for each in (call.call_id, None))

    def _checked(self, call: FunctionCall) -> bool | None:
        """Whether kinguard refused ``call`` (``None``: it never inspected it)."""
        try:
            arguments = _arguments_key(json.loads(call.arguments))
        except ValueError:
            return None  # not JSON: AssistantAgent never hands such a call to a workbench
        checked = self._checked_calls.get((call.id, call.name, arguments))
        if checked is None:
            checked = self._checked_calls.get((None, call.name, arguments))
        return checked

    def _queue_tool_event(self, agent: str, tool: str, verdict: Verdict) -> None:
        event = self.event_for(verdict, tool=tool)
        if event is not None:
            _bounded_append(self.tool_events, agent, event)

    def event_for(
        self, verdict: Verdict | None, tool: str | None = None
    ) -> KinGuardVerdictEvent | None:
        """The verdict's event for the stream, if it gets one (``tool``: the verdict is on a
        call to it); never raises."""
        if verdict is None or self.events == "none":
            return None
        if self.events == "all" or verdict.action is not _ALLOW or verdict.error is not None:
            capture = self.guard.telemetry.capture_content
            about = None if tool is None else f"call to {tool}"
            try:
                event = KinGuardVerdictEvent.from_verdict(
                    verdict, capture_content=capture, about=about
                )
                # A nested team's events reach the termination condition of the team around
                # it, among the nested team's messages.
                names = [verdict.sender, *verdict.recipients, *verdict.signal_names]
                if tool is not None:
                    names.append(tool)
                event.content = self.defused(event.content, *names)
            except Exception as exc:  # the verdict stands; only its event is lost
                self.adapter_failed(exc, sender=verdict.sender, about=about)
                return None
            event.metadata[META_GUARD] = self.stamp  # whose verdict: see _foreign_event
            return event
        return None

    def defused(self, notice: str, *names: str) -> str:
        """kinguard's ``notice`` (or a verdict event's text) with the ``names`` it echoes (agents',
        a tool's, signals') written so that none says what a ``TextMentionTermination`` of the
        team, or of a team around it, watches for. The notice says none of the withheld words,
        and must not end the run by accident ("[kinguard blocked a message from TERMINATE_bot:
        ...]"). A word
        joiner after the word's first character keeps the name as it reads. kinguard's own
        words ("kinguard", "blocked") stay as they are: a condition on those is the app's
        choice. A word of one character cannot be kept out."""
        words = self.termination_words
        for outer in self.enclosing:
            words += outer.termination_words
        if not words:  # most teams: nothing to do
            return notice
        # Longest first: a name inside another ("market" in "collusion.market") made safe first
        # would hide the longer one from its own turn, and leave its other words in.
        for name in sorted(names, key=len, reverse=True):
            safe = name
            for word in words:
                if len(word) > 1 and word in safe:
                    safe = safe.replace(word, f"{word[0]}{_WORD_JOINER}{word[1:]}")
            if safe != name:
                notice = notice.replace(name, safe)
        return notice

    def adapter_failed(self, exc: BaseException, **where: object) -> None:
        """Log a failure of kinguard's own adapter code in this team, which the caller contains
        (``where``: what it was doing, for the log line). Also for an agent the app runs on
        its own: ``team`` names the team that guards it, so one event has the same fields."""
        _log.error(
            "kinguard.autogen.adapter_failed",
            team=self.team_name,
            **where,
            error=self.guard.describe_error(exc),
        )

    def contained(
        self, message: BaseChatMessage, exc: BaseException, verdict: Verdict | None = None
    ) -> BaseChatMessage:
        """After a failure of kinguard's own: the message, or a notice (fail closed). Failing
        open never delivers what ``verdict``, reached before the failure, withholds."""
        self.adapter_failed(exc, sender=message.source, error_mode=self.guard.policy.error_mode)
        withholds = verdict is not None and (verdict.action.value in _WITHHELD or verdict.modified)
        if self.guard.policy.error_mode != "closed" and not withholds:
            return message
        # A halt's notice stops the team for the review of the halt the verdict recorded.
        halt = verdict.notice if verdict is not None and verdict.action is Action.HALT else None
        action = Action.BLOCK if halt is None else Action.HALT
        metadata = {META_ACTION: action.value, META_GUARD: self.stamp}
        try:
            if halt is not None:
                # A halted handoff must not hand control over either (see rewrite()).
                halt = self.defused(halt, message.source)
                return _as_text(message, halt, {**message.metadata, **metadata})
            blocked = replace_text(
                message,
                self.defused(
                    f"[kinguard blocked a message from {message.source}: inspection failure]",
                    message.source,
                ),
                {**message.metadata, **metadata},
                message.to_model_text(),
            )
            if isinstance(blocked, HandoffMessage):
                # Its context (the sender's thought and calls) goes to the target's model.
                blocked = blocked.model_copy(update={"context": []})
            return blocked
        except Exception as second:  # not even a notice can be made: nothing must leak
            _log.error("kinguard.autogen.fallback_failed", error=self.guard.describe_error(second))
            return TextMessage(
                source=message.source,
                content=f"[kinguard blocked a message from {message.source}]",
                metadata=metadata,
            )


def _renamed(state: Mapping[str, Any], source: str, target: str) -> dict[str, Any]:
    """A guard state of conversation ``source`` (``KinGuard.state_dict`` format) as ``target``'s.

    A team restored in a new process may run under another conversation id (a guard made
    without one gets a random id): it continues the conversation it saved all the same.
    """
    monitor = dict(state.get("monitor", {}))
    conversations = monitor.get("conversations", {})
    monitor["conversations"] = {target: conversations[source]} if source in conversations else {}
    nudges = state.get("nudges", {})
    return {"monitor": monitor, "nudges": {target: nudges[source]} if source in nudges else {}}


def _arguments_key(arguments: Any) -> str:
    """A tool call's arguments as one string, however their keys are ordered: as the workbench
    gets them (a mapping, or ``None``) and as the agent's ``FunctionCall`` says them (JSON)."""
    try:
        return json.dumps({} if arguments is None else arguments, sort_keys=True, default=str)
    except (TypeError, ValueError):  # keys that do not sort, a loop: a custom agent's objects
        return repr(arguments)


def _remember(bounded: dict[_K, _V], key: _K, value: _V) -> None:
    """``bounded[key] = value``, forgetting the oldest entry past ``_MAX_PRIVATE``."""
    bounded[key] = value
    if len(bounded) > _MAX_PRIVATE:
        del bounded[next(iter(bounded))]


def _bounded_append(lists: dict[str, list[_V]], agent: str, value: _V) -> None:
    """Append to ``agent``'s list, keeping the last ``_MAX_TOOL_EVENTS``: a workbench used
    outside any turn has no turn to take them."""
    values = lists.setdefault(agent, [])
    values.append(value)
    del values[:-_MAX_TOOL_EVENTS]


def _cleaned_context(
    item: LLMMessage, clean: Callable[[str], str], refused: Callable[[FunctionCall], bool]
) -> LLMMessage:
    """One message of a handoff's context with ``clean`` applied to all it says, and without
    the arguments of the calls kinguard ``refused`` (as a tool call summary goes)."""
    if isinstance(item, FunctionExecutionResultMessage):
        results = [r.model_copy(update={"content": clean(r.content)}) for r in item.content]
        return item.model_copy(update={"content": results})
    if isinstance(item, AssistantMessage):
        thought = None if item.thought is None else clean(item.thought)
        if isinstance(item.content, str):
            said: str | list[FunctionCall] = clean(item.content)
        else:
            said = [
                dataclasses.replace(c, arguments="{}" if refused(c) else clean(c.arguments))
                for c in item.content
            ]
        return item.model_copy(update={"content": said, "thought": thought})
    if isinstance(item.content, str):  # a system or user message
        return item.model_copy(update={"content": clean(item.content)})
    parts = [clean(p) if isinstance(p, str) else p for p in item.content]
    return item.model_copy(update={"content": parts})


def _as_refused(item: FunctionCall | FunctionExecutionResult) -> dict[str, str]:
    """The fields that show a refused call as refused where the team's stream, state and
    termination conditions see it. The call shows none of its arguments: it never ran, its
    result is kinguard's notice. The result is not named as the tool: AgentChat's
    ``FunctionCallTermination`` takes any result of that name for the tool having run. The
    agent's model is unaffected: it is given the result, under the tool's name and the call's
    id, from the agent's own context."""
    if isinstance(item, FunctionCall):
        return {"arguments": "{}"}
    return {"name": _REFUSED_RESULT.format(item.name)}


def _call_strings(call: FunctionCall) -> list[str]:
    """The strings in a call's JSON arguments (all of them when they are not JSON)."""
    try:
        arguments = json.loads(call.arguments)
    except ValueError:
        return [call.arguments] if call.arguments.strip() else []
    return argument_strings(arguments)


def rewrite(
    message: BaseChatMessage, verdict: Verdict, text: str, tg: TeamGuard
) -> BaseChatMessage:
    """The message as the other agents of ``tg``'s team should get it, stamped with kinguard's
    verdict.

    ``text`` is the message as kinguard read it (``to_model_text()``), passed in rather than
    rendered again. A message kinguard lets through untouched is delivered as the very same
    object, unstamped: most messages are benign and copying each one would cost every turn.
    """
    if verdict.action is _ALLOW and not verdict.modified and verdict.error is None:
        return message
    if verdict.action is Action.HALT or verdict.delivered_text is None:
        # A halted message is withheld like a blocked one until a person decides; anything
        # else would leak it to the others when the team resumes.
        notice = verdict.notice or f"[kinguard withheld a message from {message.source}]"
        delivered = tg.defused(notice, message.source, *verdict.signal_names)
    else:
        delivered = verdict.delivered_text
    # A nested team's guard may have stamped it already. The stricter of the two verdicts is
    # stamped: a halt said inside (this is its notice) must still stop this team and await a
    # person, whatever this guard makes of the notice; a weaker stamp is replaced.
    metadata = {k: v for k, v in message.metadata.items() if k not in _VERDICT_KEYS}
    earlier = kinguard_action(message)
    if earlier is not None and earlier.severity > verdict.action.severity:
        metadata.update((k, v) for k, v in message.metadata.items() if k in _VERDICT_KEYS)
    else:
        metadata[META_ACTION] = verdict.action.value
        if verdict.signals:
            metadata[META_SIGNALS] = ",".join(verdict.signal_names)
        if verdict.reasons:
            metadata[META_REASONS] = "; ".join(verdict.reasons)
    metadata[META_GUARD] = tg.stamp
    if verdict.action is Action.HALT and isinstance(message, HandoffMessage):
        # A withheld handoff must not hand control over either: resolve_halt() hands it over
        # if the person releases it.
        return _as_text(message, delivered, metadata)
    return replace_text(message, delivered, metadata, text)


def replace_text(
    message: BaseChatMessage, text: str, metadata: dict[str, str], original: str
) -> BaseChatMessage:
    """``message`` saying ``text``; ``original`` is what it says now (its model text)."""
    if text == original:
        return message.model_copy(update={"metadata": metadata})
    if isinstance(message, ToolCallSummaryMessage):
        # Its results hold the words the rewrite took out of the summary.
        return message.model_copy(update={"content": text, "metadata": metadata, "results": []})
    if isinstance(message, BaseTextChatMessage):
        # Keeps the type, so a Swarm HandoffMessage still hands off; only its words change.
        return message.model_copy(update={"content": text, "metadata": metadata})
    # Multimodal or structured content cannot hold the rewrite: deliver the text instead.
    return _as_text(message, text, metadata)


def _as_text(message: BaseChatMessage, text: str, metadata: dict[str, str]) -> TextMessage:
    """``message`` as a plain ``TextMessage`` saying ``text`` (same id, sender and time)."""
    return TextMessage(
        id=message.id,
        source=message.source,
        content=text,
        metadata=metadata,
        models_usage=message.models_usage,
        created_at=message.created_at,
    )


class _Chunks:
    """Token chunks held until the message they belong to has its verdict."""

    __slots__ = ("guard", "held")

    def __init__(self, guard: KinGuard) -> None:
        self.guard = guard
        self.held: dict[str | None, list[ModelClientStreamingChunkEvent]] = {}

    def hold(self, chunk: ModelClientStreamingChunkEvent) -> None:
        # Not setdefault(): a message's first chunk alone needs a new list, not every chunk.
        held = self.held.get(chunk.full_message_id)
        if held is None:
            self.held[chunk.full_message_id] = [chunk]
        else:
            held.append(chunk)

    def of_event(self, event: BaseAgentEvent) -> list[ModelClientStreamingChunkEvent]:
        """The chunks of an event (a ``ThoughtEvent`` with the text beside a tool call, a
        ``CodeGenerationEvent``): they say what the event says, which is not a message to the
        other agents."""
        if not self.held:
            return []
        chunks = self.held.pop(event.id, None)
        if chunks is None and isinstance(event, CodeGenerationEvent):
            # A CodeExecutorAgent streams the text it takes its code from naming no message:
            # left to the turn's message, they would show code kinguard refused to run.
            chunks = self.held.pop(None, None)
        return chunks or []

    def of_message(
        self, original: BaseChatMessage, delivered: BaseChatMessage
    ) -> list[ModelClientStreamingChunkEvent]:
        """The chunks of a message, as the stream may show them now that it has a verdict."""
        if not self.held:
            return []
        try:
            return self._of_message(original, delivered)
        except Exception as exc:  # never break the turn: show nothing uninspected instead
            _log.error(
                "kinguard.autogen.chunk_release_failed", error=self.guard.describe_error(exc)
            )
            self.held.clear()
            return []

    def _of_message(
        self, original: BaseChatMessage, delivered: BaseChatMessage
    ) -> list[ModelClientStreamingChunkEvent]:
        chunks = self.held.pop(original.id, None)
        if chunks is None:
            chunks = self.held.pop(None, None)  # chunks that name no message: this turn's
            if chunks is None:
                return []
        action = delivered.metadata.get(META_ACTION) if delivered is not original else None
        if action is None:
            return chunks
        if action in _WITHHELD:
            return []  # the notice, coming next, says all the others may know
        originals = [chunk.content for chunk in chunks]
        text = delivered.to_model_text()
        if "".join(originals) == text:
            return chunks
        stamp = {META_ACTION: action}
        return [
            chunk.model_copy(update={"content": piece, "metadata": {**chunk.metadata, **stamp}})
            for chunk, piece in zip(chunks, recut(text, originals), strict=True)
        ]

    def drop(self, where: str) -> None:
        if self.held:
            dropped = sum(len(chunks) for chunks in self.held.values())
            _log.debug("kinguard.autogen.chunks_dropped_uninspected", chunks=dropped, where=where)
            self.held.clear()


_Chunk = ModelClientStreamingChunkEvent


class _Held:
    """A turn's events held until its chat message has its verdict: see the module docstring.
    Each event is held with its token chunks (a thought's), which say what it says. ``agent``:
    the participant whose turn it is, whose refused calls count; ``None`` for a nested team's
    run, whose agents' messages each release the events before them (a guard of the nested
    team's own may have let through what this one withholds)."""

    __slots__ = ("agent", "events", "released", "tg")

    def __init__(self, tg: TeamGuard, agent: str | None) -> None:
        self.tg = tg
        self.agent = agent
        self.events: list[tuple[BaseAgentEvent, list[_Chunk]]] = []
        # Events released otherwise than held, by id (None: dropped): the turn's response
        # lists them among its inner messages.
        self.released: dict[str, BaseAgentEvent | None] = {}

    def takes(self, event: BaseAgentEvent) -> bool:
        # Once one is held, so is every later event: the stream keeps its order.
        return bool(self.events) or isinstance(event, _HELD_FROM)

    def hold(self, event: BaseAgentEvent, chunks: list[_Chunk]) -> None:
        self.events.append((event, chunks))

    def release(self, verdict: Verdict | None, delivered: BaseChatMessage) -> list[BaseAgentEvent]:
        """The held events as the stream may show them, now that ``delivered`` (the turn's
        message as delivered; ``verdict``: its verdict, if inspected just now) is known."""
        # This turn's, held events or not. A nested team's agents' are in its own TeamGuard.
        refusals = [] if self.agent is None else self.tg.refusals.pop(self.agent, [])
        if not self.events:
            return []
        held, self.events = self.events, []
        try:
            return self._release(held, verdict, delivered, refusals)
        except Exception as exc:  # never break the turn: show nothing unchecked instead
            _log.error(
                "kinguard.autogen.event_release_failed", error=self.tg.guard.describe_error(exc)
            )
            return self._dropped(held, None)

    def _release(
        self,
        held: list[tuple[BaseAgentEvent, list[_Chunk]]],
        verdict: Verdict | None,
        delivered: BaseChatMessage,
        refusals: list[Verdict],
    ) -> list[BaseAgentEvent]:
        withheld = kinguard_action(delivered)
        if withheld in (Action.BLOCK, Action.HALT):
            # The notice, coming next, says all the others may know.
            return self._dropped(held, withheld)
        # A message's verdict withholds words by redacting them (a concealment of identity cues
        # alone withholds none of what its signals found).
        redacted = [verdict] if verdict is not None and verdict.action is Action.REDACT else []
        verdicts = [*refusals, *redacted]
        calls = any(isinstance(event, ToolCallRequestEvent) for event, _ in held)
        if not verdicts and not calls:  # most turns: nothing withheld
            return [item for event, chunks in held for item in (*chunks, event)]
        words = _withheld_words(verdicts)
        if words is None:  # a rule on a whole text: none of the events can be cleaned of it
            return self._dropped(held, _strongest(verdicts))
        scrub = _scrubber(words)
        out: list[BaseAgentEvent] = []
        for event, chunks in held:
            cleaned = self._cleaned(event, scrub, verdicts)
            if cleaned is not event:
                self.released[event.id] = cleaned
            if isinstance(cleaned, _STREAMED_EVENTS) and cleaned is not event and chunks:
                pieces = recut(cleaned.content, [chunk.content for chunk in chunks])
                stamp = {META_ACTION: cleaned.metadata[META_ACTION]}
                chunks = [
                    c.model_copy(update={"content": p, "metadata": {**c.metadata, **stamp}})
                    for c, p in zip(chunks, pieces, strict=True)
                ]
            out.extend(chunks)
            out.append(cleaned)
        return out

    def _cleaned(
        self,
        event: BaseAgentEvent,
        scrub: Callable[[str], str] | None,
        verdicts: list[Verdict],
    ) -> BaseAgentEvent:
        """``event`` less the withheld words, and its refused calls shown as refused."""
        if isinstance(event, KinGuardVerdictEvent):
            return event  # kinguard's own: quotes only what its guard captures
        original = event.model_dump()
        cleaned = dict(original)
        calls: Sequence[FunctionCall | FunctionExecutionResult] = (
            event.content
            if isinstance(event, (ToolCallRequestEvent, ToolCallExecutionEvent))
            else ()
        )
        if any(map(self.tg.refused, calls)):
            cleaned["content"] = [
                {**dumped, **_as_refused(item)} if self.tg.refused(item) else dumped
                for item, dumped in zip(calls, original["content"], strict=True)
            ]
        if scrub is not None:
            cleaned = _scrubbed_fields(cleaned, scrub)
        if cleaned == original:
            return event
        cleaned["metadata"] = {**event.metadata, META_ACTION: _strongest(verdicts).value}
        return type(event).model_validate(cleaned)

    def _dropped(
        self, held: list[tuple[BaseAgentEvent, list[_Chunk]]], action: Action | None
    ) -> list[BaseAgentEvent]:
        """None of the held events but kinguard's own verdict events and, withheld by
        ``action`` (None: unchecked), each tool result less its output. Which tools ran or
        were refused says none of the turn's words, and a condition such as AgentChat's
        ``FunctionCallTermination`` must still stop the team once a tool ran."""
        kept: list[BaseAgentEvent] = []
        for event, _ in held:
            if isinstance(event, KinGuardVerdictEvent):
                kept.append(event)
                continue
            outcome = None
            if action is not None and isinstance(event, ToolCallExecutionEvent):
                outcome = self._outcome(event, action)
                kept.append(outcome)
            self.released[event.id] = outcome
        return kept

    def _outcome(self, event: ToolCallExecutionEvent, action: Action) -> ToolCallExecutionEvent:
        """``event`` with each tool's output withheld (a refused call's result, kinguard's
        notice, shown as refused)."""
        results = [
            result.model_copy(
                update=_as_refused(result)
                if self.tg.refused(result)
                else {"content": _WITHHELD_TEXT}
            )
            for result in event.content
        ]
        metadata = {**event.metadata, META_ACTION: action.value}
        return event.model_copy(update={"content": results, "metadata": metadata})

    def drop(self) -> None:
        """The turn ended without a message: its events were never checked, nor are shown."""
        if self.agent is not None:
            self.tg.refusals.pop(self.agent, None)
        if self.events:
            _log.debug("kinguard.autogen.events_dropped_unchecked", events=len(self.events))
            self.events.clear()


def _withheld_words(
    verdicts: Iterable[Verdict], *, approved: bool = False
) -> dict[str, str] | None:
    """The words the verdicts kept from the other agents (lower-cased), each with the marker
    that takes its place: evidence the delivered text no longer has (all of it when nothing
    was delivered; ``approved``: as a person's approval of a halt delivers it). ``None``: a
    signal with no located evidence is about its whole text, which no other text can be
    cleaned of."""
    words: dict[str, str] = {}
    for verdict in verdicts:
        withheld = not approved and verdict.action in (Action.BLOCK, Action.HALT)
        delivered = None if withheld else verdict.delivered_text
        for signal in verdict.signals:
            found = [e.text for e in signal.evidence if e.text.strip()]
            if not found:
                return None
            for text in found:
                if delivered is None or text not in delivered:
                    words.setdefault(text.lower(), REDACTION.format(signal.name))
    return words


def _strongest(verdicts: Iterable[Verdict]) -> Action:
    """The most severe of the verdicts' actions (block for none)."""
    return max((v.action for v in verdicts), key=lambda a: a.severity, default=Action.BLOCK)


def _scrubber(words: Mapping[str, str]) -> Callable[[str], str] | None:
    """A function replacing each of ``words`` (in any case) with its marker; None for none."""
    if not words:
        return None
    pattern = _words_pattern(words)

    def scrub(text: str) -> str:
        return pattern.sub(lambda m: _marker(words, m), text)

    return scrub


def _words_pattern(words: Mapping[str, str]) -> re.Pattern[str]:
    longest_first = sorted(words, key=len, reverse=True)
    return re.compile("|".join(map(re.escape, longest_first)), re.IGNORECASE)


def _marker(words: Mapping[str, str], match: re.Match[str]) -> str:
    # _WITHHELD_TEXT for a match whose case folds otherwise.
    return words.get(match.group().lower(), _WITHHELD_TEXT)


def _cut_across(pieces: list[str], words: Mapping[str, str]) -> list[str]:
    """``pieces`` (a handoff's words and its context's, in order, a blank line apart as
    inspection joins them) less the ``words`` said across two or more of them: each such
    word's marker where it starts, the rest of it cut from the pieces after. The very same
    list when there are none."""
    if not words:
        return pieces
    joined = "\n\n".join(pieces)
    spans = list(_words_pattern(words).finditer(joined))
    if not spans:
        return pieces
    cut: list[str] = []
    start = 0
    for piece in pieces:
        end = start + len(piece)
        kept: list[str] = []
        at = start
        for span in spans:
            if span.end() <= start or span.start() >= end:
                continue
            kept.append(joined[at : max(span.start(), start)])
            if span.start() >= start:
                kept.append(_marker(words, span))
            at = min(span.end(), end)
        kept.append(joined[at:end])
        cut.append("".join(kept))
        start = end + 2  # the blank line between two pieces
    return cut


def _scrubbed_fields(value: Any, scrub: Callable[[str], str]) -> Any:
    """An event's dump with ``scrub`` applied to every string it says (not those naming)."""
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, list):
        return [_scrubbed_fields(item, scrub) for item in value]
    if isinstance(value, dict):
        return {
            key: item if key in _NAMING_FIELDS else _scrubbed_fields(item, scrub)
            for key, item in value.items()
        }
    return value


async def _guarded(
    tg: TeamGuard,
    stream: AsyncGenerator[Any, None],
    agent: str | None = None,
    *,
    response_last: bool = False,
    lists_a_team: bool = False,
) -> AsyncGenerator[Any, None]:
    """``stream`` (a participant's turn) as the team may see it; see the module docstring.

    ``agent``: the participant whose turn it is, whose tool calls' verdict events it streams.
    ``response_last``: nothing may follow the turn's response, whose verdict event comes
    first then (see ``GuardedParticipant``). ``lists_a_team``: the stream lists the messages
    of a team's run (a nested team's, or a ``SocietyOfMindAgent``'s team's).
    """
    chunks = _Chunks(tg.guard)
    held = _Held(tg, agent)
    # Chat messages yielded this turn, as delivered: a nested team's result lists them again.
    delivered_ids: dict[str, BaseChatMessage] = {}
    tool_events = tg.tool_events
    capture = tg.guard.telemetry.capture_content
    try:
        async for item in stream:
            if tool_events and agent in tool_events:  # the calls ran before this item came
                for queued in tool_events.pop(agent):
                    if held.takes(queued):
                        held.hold(queued, [])
                    else:
                        yield queued
            if isinstance(item, ModelClientStreamingChunkEvent):
                chunks.hold(item)
            elif lists_a_team and isinstance(item, BaseChatMessage) and tg.not_an_agent(item):
                yield item  # a nested team's task or orchestrator: see not_an_agent()
            elif isinstance(item, (Response, BaseChatMessage)):
                chat = item.chat_message if isinstance(item, Response) else item
                # A message yielded already and then returned as the Response is known to
                # inspect() by its id: one verdict, one event.
                verdict, delivered = await tg.inspect(chat)
                for released in held.release(verdict, delivered):
                    yield released
                if isinstance(item, Response):
                    inner = item.inner_messages
                    if inner and any(isinstance(m, BaseChatMessage) for m in inner):
                        # Those yielded this turn are known to inspect(): back as delivered.
                        inner = [
                            (await tg.inspect(m))[1] if isinstance(m, BaseChatMessage) else m
                            for m in inner
                        ]
                    yielded = delivered_ids.values()
                    out: Any = _delivered_response(item, delivered, inner, yielded, held.released)
                else:
                    out = delivered_ids[item.id] = delivered
                for chunk in chunks.of_message(chat, delivered):
                    yield chunk
                event = tg.event_for(verdict)
                if event is not None and response_last and isinstance(item, Response):
                    yield event
                    event = None
                yield out
                if event is not None:
                    yield event
            elif isinstance(item, TaskResult):  # a nested team's result: what it delivered
                if delivered_ids or held.released or not capture:
                    listed = (
                        delivered_ids.get(m.id, m)
                        if isinstance(m, BaseChatMessage)
                        else _foreign_event(tg, held.released.get(m.id, m), capture)
                        for m in item.messages
                    )
                    messages = [m for m in listed if m is not None]
                    item = item.model_copy(update={"messages": messages})
                yield item
            elif isinstance(item, BaseAgentEvent):
                if isinstance(item, KinGuardVerdictEvent):  # a nested team's own guard's
                    item, own = _foreign_event(tg, item, capture), []
                else:
                    own = chunks.of_event(item)
                if held.takes(item):
                    held.hold(item, own)
                    continue
                for chunk in own:
                    yield chunk
                yield item
            else:
                yield item
    finally:
        chunks.drop("turn_ended")
        held.drop()
        close = getattr(stream, "aclose", None)
        if close is not None:
            await close()


def _foreign_event(tg: TeamGuard, item: Any, capture: bool) -> Any:
    """A nested team's own guard's verdict event, quoting nothing unless this guard captures
    content: this guard may withhold what that one let through."""
    if capture or not isinstance(item, KinGuardVerdictEvent):
        return item
    # Compared by the acting team's stamp: two guards may well share a conversation id.
    return item if item.metadata.get(META_GUARD) == tg.stamp else item.without_words()


def _delivered_response(
    response: Response,
    delivered: BaseChatMessage,
    inner: Sequence[BaseAgentEvent | BaseChatMessage] | None,
    yielded: Collection[BaseChatMessage],
    released: Mapping[str, BaseAgentEvent | None],
) -> Response:
    """The response with its chat message, and its inner messages, as delivered; the very
    same response when nothing changed. ``inner``: its inner messages with their chat messages
    as delivered; ``yielded``: the chat messages the turn yielded before it, as delivered;
    ``released``: its events released otherwise than the agent yielded them
    (``_Held.released``). Not a coroutine: most turns have nothing here to await."""
    if inner and released:
        # The team's manager keeps the inner messages in its thread, and so in its state.
        kept = (released.get(m.id, m) if isinstance(m, BaseAgentEvent) else m for m in inner)
        inner = [m for m in kept if m is not None]
    if yielded:
        # A halt in this turn (said inside a SocietyOfMindAgent's team, whose response lists
        # no inner messages) must reach the termination condition, which reads only the
        # response.
        listed = {m.id for m in inner or ()}
        halts = [m for m in yielded if m.metadata.get(META_ACTION) == _HALT and m.id not in listed]
        if halts:
            inner = [*(inner or ()), *halts]
    if delivered is response.chat_message and inner is response.inner_messages:
        return response
    return dataclasses.replace(response, chat_message=delivered, inner_messages=inner)


def inside_a_team() -> bool:
    """Whether this runs inside an AgentChat runtime's message handler (a team's participant)."""
    try:
        MessageHandlerContext.agent_id()
    except RuntimeError:
        return False
    return True


class GuardedParticipant:
    """Stands in for one agent's ``on_messages_stream``; ``original`` is the agent's own.

    An agent's own ``run_stream`` ends with its task result, yielded at its response: a
    verdict event after the response would come after the result, which must be last (an
    ``AgentTool`` takes the last item for the tool's output). So the event comes before the
    response wherever the agent's own ``run_stream`` runs it (the app runs it on its own, or
    another agent uses it as a tool, inside that agent's turn); in its turns in a team, after.
    """

    def __init__(
        self, tg: TeamGuard, name: str, original: Callable[..., AsyncGenerator[Any, None]]
    ) -> None:
        self.tg = tg
        self.name = name
        self.original = original
        self.turns: set[str] = set()
        """The runtime agent types of the team containers that run this agent's turns (its
        participant topic types): what runs it anywhere else runs its own ``run_stream``."""

    def response_last(self) -> bool:
        """Whether this run of the agent is its own ``run_stream``, not its turn in a team."""
        try:
            return MessageHandlerContext.agent_id().type not in self.turns
        except RuntimeError:  # in no runtime's message handler: the app runs it on its own
            return True

    def __call__(
        self, messages: Sequence[BaseChatMessage], cancellation_token: CancellationToken
    ) -> AsyncGenerator[Any, None]:
        try:
            given = self.tg.given(self.name, messages)
        except Exception as exc:  # kinguard's own failure: the agent still gets its messages
            self.tg.adapter_failed(exc, agent=self.name)
            given = messages
        stream = self.original(given, cancellation_token)
        return _guarded(self.tg, stream, self.name, response_last=self.response_last())


class GuardedSocietyOfMind(GuardedParticipant):
    """Stands in for a ``SocietyOfMindAgent``'s turn. The messages it is given become its
    team's task; its own model reads only its instruction (which has its identity block), its
    team's messages and its response prompt. So its reminder goes before its response prompt,
    for the one turn, not among the messages, where its team's agents would read it."""

    def __init__(self, tg: TeamGuard, agent: SocietyOfMindAgent) -> None:
        super().__init__(tg, agent.name, agent.on_messages_stream)
        self.agent = agent

    def __call__(
        self, messages: Sequence[BaseChatMessage], cancellation_token: CancellationToken
    ) -> AsyncGenerator[Any, None]:
        nudge: str | None = None
        given = messages
        try:
            nudge = "\n\n".join(self.tg.pop_nudges(self.name)) or None
            given = self.tg.not_its_own(self.name, messages)
        except Exception as exc:  # kinguard's own failure: the agent still gets its messages
            self.tg.adapter_failed(exc, agent=self.name)
        stream = self.original(given, cancellation_token)
        if nudge:
            stream = self._reminded(stream, nudge)
        return _guarded(
            self.tg, stream, self.name, response_last=self.response_last(), lists_a_team=True
        )

    async def _reminded(
        self, stream: AsyncGenerator[Any, None], nudge: str
    ) -> AsyncGenerator[Any, None]:
        agent = self.agent
        prompt = agent._response_prompt
        agent._response_prompt = f"{nudge}\n\n{prompt}"
        try:
            async for item in stream:
                yield item
        finally:
            agent._response_prompt = prompt
            await stream.aclose()


class GuardedTeamParticipant:
    """Stands in for a nested team's ``run_stream`` when the team is a participant, or for the
    team of a ``SocietyOfMindAgent`` (``welcome=False``: that team's own verdict events stay
    out of the agent's stream, as they did before this guard wrapped it)."""

    def __init__(
        self,
        tg: TeamGuard,
        original: Callable[..., AsyncGenerator[Any, None]],
        *,
        welcome: bool = True,
    ) -> None:
        self.tg = tg
        self.original = original
        self.welcome = welcome

    def __call__(self, *args: Any, **kwargs: Any) -> AsyncGenerator[Any, None]:
        token = VERDICT_EVENTS_WELCOME.set(self.welcome)  # this team registered the event type
        try:
            stream = self.original(*args, **kwargs)
        finally:
            VERDICT_EVENTS_WELCOME.reset(token)
        return _guarded(self.tg, stream, lists_a_team=True)


VERDICT_EVENTS_WELCOME: ContextVar[bool] = ContextVar(
    "kinguard_verdict_events_welcome", default=False
)
"""Set while a guarded team starts a nested team's run: the nested team's verdict events may
rise into it. A team kinguard does not guard has no ``KinGuardVerdictEvent`` in its message
factory, and AgentChat fails the whole run on an item of an unregistered type."""


async def without_verdict_events(stream: AsyncGenerator[Any, None]) -> AsyncGenerator[Any, None]:
    """``stream`` less kinguard's verdict events (the messages still carry the verdicts)."""
    try:
        async for item in stream:
            if not isinstance(item, KinGuardVerdictEvent):
                yield item
    finally:
        await stream.aclose()
