"""What happens around each guarded node: identity in, inspection out, halts held for a human.

One :class:`GraphCore` per guarded graph holds the guard and the per-graph bookkeeping. The
node wrapper (:class:`GuardedNode`) is the only code that runs inside the user's node task:

1. before the node: the agent's identity block (and any pending nudge) is put in the node's
   input, inside the app's first system message (a copy with the same id) or, without one, in
   front as a ``SystemMessage`` with a fixed id, so every model call the node makes from
   ``state[messages_key]`` (a plain node, a ``create_agent`` subgraph) sees it; whatever the
   node writes back is given back as the app had it;
2. the user's node runs unchanged, with the same ``config`` (so ``runtime``/``context``/
   ``store``/``writer`` injection still works);
3. after the node: every new AI message in its update is inspected, in order, and the update is
   rewritten before LangGraph writes it: redacted copies keep the message id, blocked messages
   become a signed notice, and a halted message (with anything after it) is withheld in the
   private channel and the node's routing is diverted to its halt node, which calls
   ``interrupt()``. The halt lives in its own node so resuming never re-runs the user's node.

This runs on every turn, so the usual case is kept short: an update that every verdict lets
through is read in place and returned as it is (:meth:`GraphCore.fast_candidates`,
:meth:`GraphCore.finish_fast`), and a guard whose policy cannot halt gets no halt nodes,
routers or gated paths at all.
"""

from __future__ import annotations

import dataclasses
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from contextvars import Token
from dataclasses import dataclass
from functools import partial
from operator import attrgetter
from typing import TYPE_CHECKING, Any, cast

from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    HumanMessage,
    RemoveMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.messages.utils import convert_to_messages
from langchain_core.runnables import Runnable, RunnableConfig
from langchain_core.runnables.config import var_child_runnable_config
from langchain_core.tracers.event_stream import _AstreamEventsCallbackHandler
from langgraph._internal._config import recast_checkpoint_ns
from langgraph._internal._constants import PUSH
from langgraph.errors import ParentCommand
from langgraph.pregel._messages import StreamMessagesHandler
from langgraph.types import Command, Overwrite, Send, interrupt
from pydantic import BaseModel, ValidationError

from kinguard import Action, HumanDecision, KinGuard, Message, Verdict
from kinguard.logs import describe_error, get_logger
from kinguard.types import agent_message
from kinguard_langgraph._messages import (
    HELD_NOTICE,
    REASONING_KWARG,
    IdentityDict,
    IdentityPair,
    IdentityText,
    already_inspected,
    as_written,
    cut_identity,
    delivered_as,
    guard_token,
    held_stand_in,
    identity_message,
    inspected_text,
    is_identity_message,
    is_system_message,
    mark_inspected,
    message_text,
    notice_message,
    reasoning_texts,
    released_as,
    source_id,
    tool_call_ids,
    with_identity,
    without_identity,
    without_identity_text,
)
from kinguard_langgraph._state import GUARD_KEY, Revisions, import_state

if TYPE_CHECKING:
    from kinguard_langgraph._stream import TokenHold

__all__ = [
    "EVENTS_KEY",
    "GATE_KEY",
    "GraphCore",
    "GuardedNode",
    "HaltNode",
    "Passthrough",
    "TaggedPayload",
    "TaskVerdicts",
    "can_hold",
    "parse_decision",
    "unreviewable_halt",
    "warn_undeclared",
]

_log = get_logger("kinguard.langgraph")

GATE_KEY = "__kinguard_gate"
"""Set in ``configurable`` by a guarded stream: nodes then report their verdicts in-band."""
EVENTS_KEY = "__kinguard_events"
"""Set in ``configurable`` by guarded ``astream_events``: nodes leave verdicts with the core."""
_RUNTIME_KEY = "__pregel_runtime"  # langgraph's CONFIG_KEY_RUNTIME
_CHECKPOINTER_KEY = "__pregel_checkpointer"  # langgraph.constants.CONFIG_KEY_CHECKPOINTER
_READ_KEY = "__pregel_read"  # langgraph's CONFIG_KEY_READ: a task's read of the graph's channels
_NS_SEP = "|"
_NO_CHECKPOINTER_FIX = "compile with a checkpointer to review halts"
_BRANCH_TO = "branch:to:{}"  # langgraph.graph.state's trigger channel of a node
_MAX_HALTED = 4096
_HALT = Action.HALT
_NO_IDS: frozenset[Any] = frozenset()
_NO_CONF: Mapping[str, Any] = {}
_STREAMING_HANDLERS = (StreamMessagesHandler, _AstreamEventsCallbackHandler)
_REWRITE: Any = object()
"""From ``finish_fast``: a verdict changes the update, so it has to be rewritten."""
_get_id = attrgetter("id")


@dataclass(frozen=True, slots=True)
class TaggedPayload:
    """A custom-stream payload written by a guarded node, tagged with the task that wrote it."""

    task: str
    payload: Any


@dataclass(frozen=True, slots=True)
class TaskVerdicts:
    """In-band report from a guarded node to the stream gate, emitted as the node returns.

    ``replacements`` maps each inspected message id to the text the other agents get
    (``None``: nothing now, blocked or held for a human).
    """

    task: str
    replacements: Mapping[str, str | None]
    known_ids: frozenset[str]
    """Ids of the messages the node was given (not its output, so not inspected)."""
    modified: bool
    is_agent: bool
    hidden_calls: frozenset[str] = frozenset()
    """Tool calls of messages that were not delivered (blocked or held for a human). An agent
    subgraph (``create_react_agent``) may already have run them: streams show neither their
    arguments nor their results."""
    written: Mapping[str, str | None] = dataclasses.field(default_factory=dict)
    """Strings the node wrote to a channel of strings -> the text the other agents get. A
    string has no id, so the tokens of a model reply the node wrote as it is (``.content``)
    are known by their text."""
    identity: str | None = None
    """The identity text the node was given as a string of its input (a channel of strings):
    in the prompt it joined, which events show as a user message, it is known by its words."""


@dataclass(slots=True)
class _Unit:
    """One update dict (or object) that a node returned and where its messages are."""

    messages: list[Any]
    wrapper: Callable[[list[Any]], Any]
    """Rebuilds the messages value in its original form (list, single message, Overwrite)."""
    apply: Callable[[Any], None]
    """Stores a rebuilt messages value back in the unit."""
    parent: bool = False
    """The unit is a ``Command(graph=Command.PARENT)``: its messages go to the parent graph."""
    sent: bool = False
    """The unit is the state a ``Command``'s ``goto=Send(...)`` hands to a task, not an update."""
    raws: dict[Any, tuple[BaseMessage, Any]] = dataclasses.field(default_factory=dict)
    """Message id -> (the message read, the dict, pair or string the node wrote for it): the
    wrapper writes those back in that form (see :func:`_in_own_form`)."""


@dataclass(slots=True)
class Prepared:
    node: str
    agent: str
    state: Any
    config: RunnableConfig
    messages: Sequence[Any]
    """The state's messages as the node was given them (before the identity message)."""
    conversation_id: str
    gated: bool
    events: bool
    persist: bool
    """A checkpointer is attached (see ``can_hold``): the guard's state rides the checkpoint
    after each turn, and a halt can wait for its decision."""
    index: InputIds | None = None
    known: bool = False
    """The guard knew the node as an agent before it ran (its identity was injected)."""
    handoff: bool = False
    """The output is a ``Command(graph=Command.PARENT)`` raised from inside the node (see
    ``GuardedNode._own_command``): its messages leave the agent, whatever their kind."""
    writer: Callable[[Any], None] | None = None
    hold: TokenHold | None = None
    """Holds what an enclosing graph's token stream would show of this task (see _hold_tokens)."""
    nudge: str | None = None
    """The pending nudge put in the node's input, taken from the guard once the node has run."""
    identity: str | None = None
    """The text put in the node's input (identity block and nudge), taken out of its update."""
    as_text: bool = False
    """``identity`` went in as a string of its own (a channel of strings)."""
    merged: tuple[Any, Any] | None = None
    """The app's first system message and the copy with ``identity`` given in its place."""
    head: Any = None
    """The message put first in the node's input (the identity, or the app's first system
    message with it), followed there by ``messages[skipped:]``."""
    skipped: int = 0
    echoed: bool = False
    """The node's update starts with what it was given (see ``fast_candidates``)."""
    _input_ids: tuple[frozenset[Any], frozenset[Any]] | None = None
    _task_ns: str | None = None
    _given_by_id: dict[Any, Any] | None = None

    def restored(self, message: Any) -> Any:
        """``message`` (:func:`is_identity_message`) in the node's update as the app had it:
        ``None`` for the identity message, the app's own for the copy with the identity in it."""
        merged = self.merged
        if merged is not None and message is merged[1]:
            return merged[0]
        return without_identity(message, self.identity)

    @property
    def turn_base(self) -> int:
        return len(self.messages)

    @property
    def reports(self) -> bool:
        """Someone streams this task and waits for its verdicts."""
        return self.gated or self.events or self.hold is not None

    def _ids(self) -> tuple[frozenset[Any], frozenset[Any]]:
        ids = self._input_ids
        if ids is None:
            if self.index is not None:
                ids = self.index.ids(self.conversation_id, self.messages)
            else:
                ids = (_message_ids(self.messages), _NO_IDS)
            self._input_ids = ids
        return ids

    def given(self, message_id: Any) -> bool:
        """The node was given a message with this id (read on first use: it grows with history)."""
        base, recent = self._ids()
        return message_id in base or message_id in recent

    def revises(self, message: BaseMessage) -> bool:
        """``message`` has the id of a message the node was given but says something else:
        ``add_messages`` replaces the given one with it, so it is new to the other agents."""
        by_id = self._given_by_id
        if by_id is None:
            by_id = self._given_by_id = {getattr(m, "id", None): m for m in self.messages}
        given = by_id.get(message.id)
        return (
            given is not None
            and given is not message
            and (
                not isinstance(given, BaseMessage)
                or inspected_text(given) != inspected_text(message)
            )
        )

    @property
    def input_ids(self) -> frozenset[Any]:
        """Ids of the messages the node was given."""
        base, recent = self._ids()
        return base | recent if recent else base

    @property
    def task_ns(self) -> str:
        """The task's checkpoint namespace (read on first use: halts and streams need it)."""
        ns = self._task_ns
        if ns is None:
            ns = self._task_ns = _task_ns(self.config)
        return ns

    @property
    def nested(self) -> bool:
        """This graph runs inside another graph (as its node, or called from one), whose own
        guard would read the messages again unless they are marked as ruled on."""
        return _NS_SEP in self.task_ns

    @property
    def task(self) -> str:
        """The task's own segment of its namespace (how the stream gate names it)."""
        return self.task_ns.rsplit(_NS_SEP, 1)[-1]


class InputIds:
    """Ids of the messages nodes are given, per conversation, extended from turn to turn.

    A node's input is nearly always the previous node's input plus the messages added since.
    Checking that (a list comparison, in C, that short-cuts on identical items) and adding the
    new messages' ids costs a fraction of reading every message's id again, and a history
    that is not an extension of the last one is simply read in full.
    """

    _MAX_CONVERSATIONS = 256
    _MAX_RECENT = 16
    _MIN_LENGTH = 4
    """Shorter histories are read in full: cheaper than the bookkeeping. Past a few messages
    the bookkeeping wins (measured in a graph's turns, where a full read of a 20-message
    history costs several times the list comparison)."""

    def __init__(self) -> None:
        self._last: dict[str, tuple[list[Any], frozenset[Any], frozenset[Any]]] = {}

    def ids(
        self, conversation_id: str, messages: Sequence[Any]
    ) -> tuple[frozenset[Any], frozenset[Any]]:
        """The ids, as two sets: most of the history, and its recent messages."""
        if len(messages) < self._MIN_LENGTH or type(messages) is not list:
            return _message_ids(messages), _NO_IDS
        last = self._last.get(conversation_id)
        if last is not None:
            seen, base, recent = last
            known = len(seen)
            # Equal items are the same messages (same ids), identical or not.
            if len(messages) == known:
                if messages == seen:
                    return base, recent
            elif len(messages) > known:
                snapshot = messages[:known]  # a copy: a node may change its input in place
                if snapshot == seen:
                    added = messages[known:]
                    recent = recent | _message_ids(added)
                    if len(recent) > self._MAX_RECENT:
                        base, recent = base | recent, _NO_IDS
                    snapshot += added
                    self._remember(conversation_id, snapshot, base, recent)
                    return base, recent
        base = _message_ids(messages)
        self._remember(conversation_id, list(messages), base, _NO_IDS)
        return base, _NO_IDS

    def _remember(
        self,
        conversation_id: str,
        snapshot: list[Any],
        base: frozenset[Any],
        recent: frozenset[Any],
    ) -> None:
        if len(self._last) >= self._MAX_CONVERSATIONS and conversation_id not in self._last:
            self._last = {}
        self._last[conversation_id] = (snapshot, base, recent)


@dataclass(slots=True)
class _Candidate:
    unit: int
    index: int
    message: BaseMessage
    text: str
    """What kinguard reads: the visible text, then any tool-call arguments."""
    visible: int
    """How much of ``text`` is the visible text (what a token stream shows)."""

    @property
    def shown(self) -> str:
        return self.text if self.visible == len(self.text) else self.text[: self.visible]


def parse_decision(value: Any, *, quote: bool = False) -> HumanDecision:
    """Accept a ``HumanDecision``, a mapping ``{"type": "edit", "text": ...}`` or a bare type.

    An invalid one is logged, quoting it (an edit's text) only where content may be recorded.
    """
    if isinstance(value, HumanDecision):
        return value
    seen = repr(value)[:200] if quote else type(value).__name__
    try:
        if isinstance(value, str):
            return HumanDecision(type=value)  # type: ignore[arg-type]
        if isinstance(value, Mapping):
            return HumanDecision.model_validate(dict(value))
        if isinstance(value, BaseModel):
            return HumanDecision.model_validate(value.model_dump())
    except ValidationError as exc:
        # Without the input, pydantic's errors still say which field is wrong and why.
        error = str(exc) if quote else str(exc.errors(include_url=False, include_input=False))
        _log.error("kinguard.invalid_decision", value=seen, error=error)
        return HumanDecision(type="reject", reason="invalid resume value")
    _log.error("kinguard.invalid_decision", value=seen)
    return HumanDecision(type="reject", reason="invalid resume value")


class GraphCore:
    """Per-graph state shared by the node wrappers, halt nodes, routers and the stream gate."""

    def __init__(
        self,
        guard: KinGuard,
        *,
        agents: Mapping[str, str] | None,
        messages_key: str,
    ) -> None:
        self.guard = guard
        self.token = guard_token(guard)
        """Names this guard in the marks on what it ruled on (see ``mark_inspected``)."""
        self.explicit_agents: dict[str, str] | None = dict(agents) if agents is not None else None
        self.messages_key = messages_key
        self.revisions = Revisions(guard.policy.max_conversations)
        self.can_halt = any(rule.action is Action.HALT for rule in guard.policy.rules)
        """The guard's policy has a halt rule (it is fixed when the guard is built): only then
        does the graph get halt nodes and routers."""
        self.gated_nodes: set[str] = set()
        self.error_handlers: dict[str, str] = {}
        """Error handler node -> the node it answers for (its agent speaks through it)."""
        self.halt_nodes: dict[str, str] = {}
        """Node name -> its halt node's name."""
        self.replaces_by_id = False
        """The messages channel replaces a message by id (``add_messages``): a held tool result
        can answer its call with a stand-in that the decision's outcome replaces in place."""
        self.empty_form: type | None = dict
        """The form of the identity message in an empty history of a channel that keeps what
        nodes write (see :func:`_raw_form`): what the channel's type declares its items to be,
        a dict if it declares nothing a message could be read from."""
        self.appends = False
        """The messages channel's reducer is ``operator.add``: whatever a node writes there is
        new, none of it history handed back (which a channel without a reducer gets)."""
        self.overwrites = False
        """The messages channel has no reducer: what a node writes there is the whole history,
        so a halt node delivers the decided messages after the history it was given."""
        self._halted: OrderedDict[str, None] = OrderedDict()
        self._lock = threading.Lock()
        self._identity_cache: dict[tuple[str, str], SystemMessage] = {}
        self._merged_cache: dict[tuple[int, str], tuple[Any, Any, Any]] = {}
        """(id of the app's first system message, identity text) -> (that message, the copy
        with the identity, the content it was copied from)."""
        self.id_index = InputIds()
        self._event_verdicts: OrderedDict[str, TaskVerdicts] = OrderedDict()
        # Every node call needs the agents' names; they are rebuilt only when the guard has
        # registered another agent (see ``agent_names``), not on every call.
        self._explicit_names = (
            tuple(dict.fromkeys(self.explicit_agents.values()))
            if self.explicit_agents is not None
            else None
        )
        self._profile_names: tuple[str, ...] = ()
        self._recipients: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {}
        if self._explicit_names is not None:
            declared = {profile.name for profile in guard.agents}
            for name in self._explicit_names:
                if name not in declared:
                    warn_undeclared(name)

    # -- names ----------------------------------------------------------------------------

    def agent_for(self, node: str) -> str:
        node = self.error_handlers.get(node, node)
        if self.explicit_agents is not None:
            return self.explicit_agents.get(node, node)
        return node

    def agent_names(self) -> tuple[str, ...]:
        if self._explicit_names is not None:
            return self._explicit_names
        # The guard only ever adds profiles (in order, never removing or replacing one), so an
        # unchanged count means the cached names are still its agents.
        profiles = self.guard.agents
        names = self._profile_names
        if len(names) != len(profiles):
            names = self._profile_names = tuple(profile.name for profile in profiles)
        return names

    def is_known_agent(self, node: str) -> bool:
        node = self.error_handlers.get(node, node)
        if self.explicit_agents is not None:
            return node in self.explicit_agents
        return node in self.agent_names()

    def recipients(self, sender: str) -> tuple[str, ...]:
        # Cached per sender along with the names it was built from (a new tuple when they change).
        names = self.agent_names()
        cached = self._recipients.get(sender)
        if cached is None or cached[0] is not names:
            cached = self._recipients[sender] = (names, tuple(n for n in names if n != sender))
        return cached[1]

    # -- halted tasks (read by the routers in the same task, right after the node) -------------

    def mark_halted(self, task_ns: str) -> None:
        with self._lock:
            self._halted[task_ns] = None
            while len(self._halted) > _MAX_HALTED:
                self._halted.popitem(last=False)

    def is_halted(self, config: RunnableConfig | None) -> bool:
        # Halts are rare and the routers run after every guarded node: while nothing is halted
        # they skip reading the namespace (and, in ``take_halted``, the lock). A task's own halt
        # is marked in that task before its routers run, so the unlocked check cannot miss it.
        return bool(self._halted) and _task_ns(config) in self._halted

    def take_halted(self, config: RunnableConfig | None) -> bool:
        if not self._halted:
            return False
        with self._lock:
            return self._halted.pop(_task_ns(config), 0) is None

    def leave_verdicts(self, task_ns: str, verdicts: TaskVerdicts) -> None:
        with self._lock:
            self._event_verdicts[task_ns] = verdicts
            while len(self._event_verdicts) > _MAX_HALTED:
                self._event_verdicts.popitem(last=False)

    def take_verdicts(self, task_ns: str) -> TaskVerdicts | None:
        with self._lock:
            return self._event_verdicts.pop(task_ns, None)

    def forget_halted(self, task_ns: str) -> None:
        with self._lock:
            self._halted.pop(task_ns, None)

    def waits_outside_run(self, node: str, config: RunnableConfig | None, state: Any) -> bool:
        """``update_state`` re-runs a node's edges outside a run (there is no step): a halt of
        the node that still waits for its decision keeps the route to the halt node, which the
        halted-task mark only gives within the run that halted."""
        if _step(config) is not None:
            return False
        channel = _read_channel(config, state) or {}
        if not any(
            rec and rec.get("node") == node for rec in (channel.get("pending") or {}).values()
        ):
            return False
        # A record outlives the halt the app moved past (new input instead of a decision, or
        # ``update_state`` as the halt node): only a halt node still due to run is waited for.
        halt_node = self.halt_nodes.get(node)
        read = ((config or {}).get("configurable") or _NO_CONF).get(_READ_KEY)
        if halt_node is None or not callable(read):
            return True
        try:
            due = read([_BRANCH_TO.format(halt_node)], False)
        except Exception:  # another LangGraph's channels: keep the halt rather than drop it
            return True
        return not isinstance(due, Mapping) or bool(due)

    # -- before the node ----------------------------------------------------------------------

    def prepare(self, wrapper: GuardedNode, state: Any, config: RunnableConfig) -> Prepared:
        conf = config.get("configurable") or _NO_CONF
        messages = state.get(self.messages_key) if type(state) is dict else None
        if type(messages) is not list:
            messages = _get_messages(state, self.messages_key)
        prepared = Prepared(
            wrapper.node,
            wrapper.agent,
            state,
            config,
            messages,
            str(conf.get("thread_id") or self.guard.conversation_id),
            bool(conf.get(GATE_KEY)),
            bool(conf.get(EVENTS_KEY)),
            conf.get(_CHECKPOINTER_KEY) is not None,
            # Positional: a keyword to a dataclass goes through a dict, on every turn.
            self.id_index,
        )
        # Agents are only ever added to the guard, so a node known once stays known.
        if wrapper.known or self.is_known_agent(wrapper.node):
            wrapper.known = prepared.known = True
            prepared.state = self._inject(prepared, state, messages)
        if prepared.gated:
            runtime = conf.get(_RUNTIME_KEY)
            original = getattr(runtime, "stream_writer", None)
            if runtime is not None and callable(original) and hasattr(runtime, "override"):
                prepared.writer = original
                task = prepared.task

                def tagged(chunk: Any) -> None:
                    original(TaggedPayload(task, chunk))

                prepared.config = cast(
                    RunnableConfig,
                    {
                        **config,
                        "configurable": {
                            **conf,
                            _RUNTIME_KEY: runtime.override(stream_writer=tagged),
                        },
                    },
                )
        # A graph's own stream gate knows only the verdicts of its own nodes: a guarded graph
        # inside another holds its tokens itself, as inside an unguarded one. (The enclosing
        # guard may see nothing new to rule on: the same guard's marks, or only a notice.)
        if (not (prepared.gated or prepared.events) or prepared.nested) and config.get("callbacks"):
            self._hold_tokens(prepared, prepared.config)
        return prepared

    @staticmethod
    def _hold_tokens(prepared: Prepared, config: RunnableConfig) -> None:
        """Hold back this task's tokens and events from an enclosing graph's streams.

        When this graph runs as a subgraph of a graph that streams ``messages`` (with
        ``subgraphs=True``) or ``astream_events``, that graph's handler would pass on what this
        node's model calls produce before kinguard has seen the message (an enclosing guarded
        graph's gate holds it only for its own verdicts). For the node's run, the handler is
        swapped for a proxy that streams into a hold, which releases what the verdicts allow
        into the real handler, as the stream gate would.
        """
        callbacks = config["callbacks"]
        if callbacks is None:
            return
        handlers = callbacks if isinstance(callbacks, list) else callbacks.handlers
        for handler in handlers:
            if isinstance(handler, _STREAMING_HANDLERS):
                break
        else:
            return  # the usual case: nothing streams this run
        # Imported here: the stream module builds on this one.
        from kinguard_langgraph._stream import TokenHold

        try:
            installed = TokenHold.install(config)
        except Exception as exc:  # the message is still inspected; only its tokens go unheld
            _log.error(
                "kinguard.adapter_error",
                node=prepared.node,
                stage="hold",
                error=describe_error(exc, quote=True),
            )
            return
        if installed is not None:
            prepared.hold, prepared.config = installed

    def _inject(self, prepared: Prepared, state: Any, messages: Sequence[Any]) -> Any:
        node, agent = prepared.node, prepared.agent
        block = self.guard.identity_block(agent)
        # Read, not taken: a node that fails and is retried (``RetryPolicy``) must get it again.
        nudge = prepared.nudge = self.guard.peek_nudge(agent, prepared.conversation_id)
        if nudge:
            text = f"{block}\n\n{nudge}" if block else nudge
        elif block:
            text = block
        elif messages and is_identity_message(messages[0]):
            # An enclosing guarded graph's node gave another agent's nudge (see below): this
            # agent has none, and no identity block to give in its place.
            app = cut_identity(messages[0])
            return self._with_messages(state, [*([] if app is None else [app]), *messages[1:]])
        else:
            return state
        prepared.identity = text
        injected: list[Any] | None = None
        skipped = 0
        if messages and is_system_message(messages[0]):
            # Inside the app's first system message, not beside it: a node that windows its
            # history (``trim_messages(..., include_system=True)``) keeps only that one.
            first = messages[0]
            cached = self._merged_cache.get((id(first), text))
            # The same message with the same content: an app may edit its prompt in place.
            if cached is not None and cached[0] is first and cached[2] is first.content:
                merged = cached[:2]
            else:
                # This graph is (inside) a node of an enclosing guarded graph, whose node put
                # its agent's identity in: the node that runs the agent gives it once, its own
                # in place of the enclosing one. (Checked here only: a cached copy was checked.)
                app = cut_identity(first) if is_identity_message(first) else first
                merged = (first, None if app is None else with_identity(app, text))
                # A new dict or pair each time (the node may edit what it is given); a
                # LangChain message is copied, not edited, so its copy is kept for next turn.
                if isinstance(first, BaseMessage):
                    if len(self._merged_cache) > 1024:
                        self._merged_cache.clear()
                    self._merged_cache[(id(first), text)] = (*merged, first.content)
            skipped = 1
            if merged[1] is not None:
                prepared.merged = merged
                injected = [merged[1], *messages[1:]]
            else:  # the enclosing graph's own identity message: this graph's takes its place
                messages = messages[1:]
        if injected is None:
            system: Any
            # A channel that keeps what nodes write as it is (``operator.add``; ``add_messages``
            # converts) may hold OpenAI-format dicts or pairs, which its nodes send to an SDK or
            # unpack: a LangChain message there breaks the node. A new one each time: the node
            # may edit what it is given.
            form = None if self.replaces_by_id else _raw_form(messages, self.empty_form)
            if form is dict:
                system = IdentityDict(role="system", content=text)
            elif form is tuple:
                system = IdentityPair(("system", text))
            elif form is str:  # the first of the strings the node joins into its prompt
                system = IdentityText(text)
                prepared.as_text = True
            else:
                system = self._identity_cache.get((node, text))
                if system is None:
                    if len(self._identity_cache) > 1024:
                        self._identity_cache.clear()
                    system = self._identity_cache[(node, text)] = identity_message(node, text)
            injected = [system, *messages]
        prepared.head, prepared.skipped = injected[0], skipped
        return self._with_messages(state, injected)

    def _with_messages(self, state: Any, messages: list[Any]) -> Any:
        if type(state) is dict:
            return {**state, self.messages_key: messages}
        return _set_messages(state, self.messages_key, messages)

    # -- after the node -----------------------------------------------------------------------

    def nudged(self, prepared: Prepared) -> None:
        """The node ran with the nudge it was given: the guard no longer holds it for the agent
        (unless the agent has earned another meanwhile, in a parallel task)."""
        nudge, agent, conversation_id = prepared.nudge, prepared.agent, prepared.conversation_id
        if nudge is not None and self.guard.peek_nudge(agent, conversation_id) == nudge:
            self.guard.pop_nudge(agent, conversation_id)

    def collect(self, prepared: Prepared, output: Any) -> tuple[Any, list[_Unit], list[_Candidate]]:
        """An editable copy of the node's output, where its messages are, and which are new."""
        output = _editable(output)
        if prepared.identity is not None:
            self._scrub_others(prepared, output)
        units = self._units(output)
        candidates: list[_Candidate] = []
        # A message in both the update and a Send's state is one message: one verdict, keyed
        # by its id (or, without one, by the object, so both places get the same new id).
        seen: dict[Any, BaseMessage] = {}
        given = prepared.messages
        identity = prepared.identity
        for u, unit in enumerate(units):
            own = prepared.handoff or unit.parent
            # A dict, pair or string has no id to tell the history the node was given from
            # its own words. A node hands that history on in order (a channel without a
            # reducer, a Send's state), so it is matched in order, each given value once: an
            # agent repeating an earlier message word for word still said it again, and
            # ``operator.add`` appends all a node writes, so there nothing is handed on.
            raws = unit.raws
            handed = 0 if raws and (unit.sent or unit.parent or not self.appends) else -1
            for i, message in enumerate(unit.messages):
                raw = raws.get(getattr(message, "id", None)) if raws else None
                if raw is not None:
                    if type(raw[1]) is str and identity is not None and identity in raw[1]:
                        # A copy of the identity string (``str.strip``, ``str()``) or the prompt
                        # the node joined: a plain string carries no other sign of it.
                        written = without_identity_text(raw[1], identity)
                        if not written.strip():  # left out as the identity is
                            unit.messages[i] = IdentityText(raw[1])
                            continue
                        message = unit.messages[i] = message.model_copy(update={"content": written})
                        raw = raws[message.id] = (message, written)
                    at = _index(given, raw[1], handed) if handed >= 0 else -1
                    if at >= 0:
                        handed = at + 1
                        continue
                if self._is_candidate(prepared, message, own):
                    key = message.id if message.id is not None else id(message)
                    first = seen.get(key)
                    # The same message again (the same object, or an equal copy): one verdict.
                    # Another message under a used id is read too: it is what LangGraph keeps.
                    if first is not None and (message.id is None or first == message):
                        unit.messages[i] = first
                        continue
                    if message.id is None:
                        message = message.model_copy(update={"id": f"lc_{uuid.uuid4().hex}"})
                        unit.messages[i] = message
                    seen[key] = message
                    candidates.append(_Candidate(u, i, message, *inspected_text(message)))
        return output, units, candidates

    def _is_candidate(self, prepared: Prepared, message: Any, own: bool = False) -> bool:
        """A new message from the agent: an AI message, or a human one from a node the guard
        knows as an agent or in an agent's name. (An agent that plays the user, as in a chat
        simulation, hands its model's reply on as a user message, named or not.)

        With ``own``, any new message: in a handoff to the parent graph the agent's words may
        leave only as a tool's message or a ``Send``'s user message (the AI message that made
        the call stays in the agent's subgraph).
        """
        if own:
            if not isinstance(message, BaseMessage) or isinstance(message, RemoveMessage):
                return False
            if is_identity_message(message):
                return False
        elif not isinstance(message, AIMessage) and not (
            isinstance(message, HumanMessage)
            and (
                prepared.known
                or message.name == prepared.agent
                or message.name in self.agent_names()
            )
        ):
            return False  # (RemoveMessage and other kinds are neither)
        if message.id is not None and prepared.given(message.id):
            # Before the mark: a revision copied from a message kinguard ruled on carries it.
            return prepared.revises(message)
        return not already_inspected(message, self.token)

    def fast_candidates(self, prepared: Prepared, output: Any) -> list[_Candidate] | None:
        """The candidates of the usual update, read in place; ``None``: use :meth:`collect`.

        The usual update is a dict whose messages are new messages with ids and no identity
        message. It is left untouched (no copy) unless a verdict changes something, in which
        case :meth:`collect` and :meth:`finish` take over with the same verdicts.
        """
        if type(output) is not dict:
            return None
        key = self.messages_key
        if prepared.identity is not None and (len(output) > 1 or key not in output):
            for name, value in output.items():
                if name != key and _carries_identity(value, prepared.identity):
                    return None  # e.g. its input kept as ``history``: taken out by collect
        if key not in output:
            return []
        value = output[key]
        messages: Sequence[Any]
        if type(value) is list:
            messages = value
        elif isinstance(value, BaseMessage):
            messages = (value,)
        else:
            return None
        start = 0
        head, skipped, given = prepared.head, prepared.skipped, prepared.messages
        end = len(given) - skipped + 1
        if (
            head is not None
            and self.replaces_by_id
            and len(messages) >= end
            and messages[:end] == [head, *given[skipped:]]
        ):
            # A subgraph node (``create_agent``) hands back its whole history: what it was
            # given (equal items are the same messages, not revisions), the identity first,
            # then its new messages. Only those are read, and ``finish_fast`` takes the
            # identity out; ``add_messages`` keeps the others as they are in the state.
            # (Compared with the state's own list: the node may have changed its in place.)
            start = end
            prepared.echoed = True
        candidates: list[_Candidate] = []
        listed: set[Any] = set()  # one message listed twice shows as its id listed twice
        for index in range(start, len(messages)):
            message = messages[index]
            if isinstance(message, AIMessage):  # the usual message: _is_candidate, inlined
                message_id = message.id
                if message_id is None:
                    return None  # needs an id: a copy, so a rewrite
                if message_id in listed:
                    return None  # an id listed twice: collect decides which copies to read
                listed.add(message_id)
                ids = prepared._input_ids or prepared._ids()
                if message_id in ids[0] or message_id in ids[1]:
                    if not prepared.revises(message):
                        continue  # given to the node
                else:
                    meta = message.response_metadata
                    if meta and "kinguard" in meta and already_inspected(message, self.token):
                        continue
                content = message.content
                if type(content) is str and not (
                    message.tool_calls
                    or message.invalid_tool_calls
                    or REASONING_KWARG in message.additional_kwargs
                ):
                    candidates.append(_Candidate(0, index, message, content, len(content)))
                else:
                    candidates.append(_Candidate(0, index, message, *inspected_text(message)))
                continue
            if not isinstance(message, BaseMessage) or is_identity_message(message):
                return None
            if not self._is_candidate(prepared, message):
                continue
            if message.id is None or message.id in listed:
                return None
            listed.add(message.id)
            candidates.append(_Candidate(0, index, message, *inspected_text(message)))
        return candidates

    def finish_fast(
        self,
        prepared: Prepared,
        output: Any,
        candidates: list[_Candidate],
        verdicts: list[Verdict],
    ) -> Any:
        """:meth:`finish` for an update that every verdict lets through unchanged.

        Returns ``_REWRITE`` when a verdict changes something (then :meth:`finish` applies it).
        """
        for candidate, verdict in zip(candidates, verdicts, strict=True):
            if verdict.action is _HALT or verdict.delivered_text != candidate.text:
                return _REWRITE
        if candidates and prepared.nested:
            return _REWRITE  # marked copies for the enclosing graph
        if prepared.echoed:
            output = self._without_echoed_identity(prepared, output)
        if prepared.known and not (prepared.persist or prepared.reports):
            return output  # nothing to record: the usual turn of a graph run without a saver
        if not candidates:
            if prepared.reports:
                self._report(prepared, {}, modified=False, is_agent=False)
            return output
        if not prepared.known and self.explicit_agents is None:
            self.guard.profile(prepared.agent)  # a node that speaks is an agent from now on
        if prepared.persist:
            output = self._attach_channel(prepared, output, candidates, [])
        if prepared.reports:
            replacements: dict[str, str | None] = {str(c.message.id): c.shown for c in candidates}
            self._report(prepared, replacements, modified=False, is_agent=True)
        return output

    def _without_echoed_identity(self, prepared: Prepared, output: dict[str, Any]) -> Any:
        """The update of a node that handed back what it was given, without the identity
        (a new dict: the node's own is never changed)."""
        key = self.messages_key
        messages = output[key]
        app = prepared.restored(messages[0])
        return {**output, key: [*([] if app is None else [app]), *messages[1:]]}

    def to_message(self, prepared: Prepared, candidate: _Candidate, position: int) -> Message:
        if (
            not prepared.known
            and self.explicit_agents is None
            and prepared.agent not in self.agent_names()
        ):
            warn_undeclared(prepared.agent)  # before inspecting it makes it one of the agents
        return agent_message(
            prepared.conversation_id,
            prepared.agent,
            self.recipients(prepared.agent),
            candidate.text,
            prepared.turn_base + position,
            {
                "framework": "langgraph",
                "langgraph_node": prepared.node,
                "message_id": candidate.message.id,
            },
        )

    def inspect_all(self, prepared: Prepared, candidates: list[_Candidate]) -> list[Verdict]:
        """One verdict per candidate, in order (turns numbered by position)."""
        return [
            self.guard.inspect(self.to_message(prepared, c, n)) for n, c in enumerate(candidates)
        ]

    async def ainspect_all(self, prepared: Prepared, candidates: list[_Candidate]) -> list[Verdict]:
        return [
            await self.guard.ainspect(self.to_message(prepared, c, n))
            for n, c in enumerate(candidates)
        ]

    def finish(
        self,
        prepared: Prepared,
        output: Any,
        units: list[_Unit],
        candidates: list[_Candidate],
        verdicts: list[Verdict],
    ) -> Any:
        """Rewrite the node's update by the verdicts; return what LangGraph should write."""
        replacements: dict[str, str | None] = {}
        entries: list[dict[str, Any]] = []
        halted = False
        modified = False
        verdict_at = {(c.unit, c.index): (c, v) for c, v in zip(candidates, verdicts, strict=True)}
        halts_here = prepared.node in self.halt_nodes
        dropped_calls: set[str] = set()
        mark = prepared.nested
        settled: dict[Any, BaseMessage | None] = {}
        """Inspected message id -> what stands for it in a Send's state (units in that order);
        None: withheld for a human, so the Send is held with it until the decision."""
        for u, unit in enumerate(units):
            kept: list[Any] = []
            changed = False
            for i, message in enumerate(unit.messages):
                if is_identity_message(message):
                    restored = prepared.restored(message)
                    changed = changed or restored is not message
                    if restored is not None:
                        kept.append(restored)
                    continue
                found = verdict_at.get((u, i))
                if found is None:
                    message_id = getattr(message, "id", None)
                    if message_id is not None and message_id in settled:
                        # A copy of a message ruled on above stands as that ruling delivered it:
                        # kept as it was, the copy would overwrite the ruling in the state.
                        settled_as = settled[message_id]
                        if settled_as is None and not unit.sent:
                            changed = True  # withheld for a person: so is its copy
                            continue
                        changed = changed or (settled_as is not None and settled_as is not message)
                        kept.append(message if settled_as is None else settled_as)
                        continue
                    if isinstance(message, ToolMessage) and message.tool_call_id in dropped_calls:
                        changed = True
                        continue
                    if halted and not unit.sent:
                        changed = True
                        entry = _held_entry(unit, message, None)
                        message = self._hold(prepared, message, entry, kept)
                        entry["message"] = message
                        entries.append(entry)
                    else:
                        kept.append(message)
                    continue
                changed = True
                candidate, verdict = found
                msg_id = str(candidate.message.id)
                if isinstance(message, ToolMessage) and message.tool_call_id in dropped_calls:
                    replacements[msg_id] = None  # the result of a call that is not made
                    continue
                if (halted and not unit.sent) or (
                    verdict.action is Action.HALT
                    and not unit.parent
                    and halts_here
                    and prepared.persist
                ):
                    modified = True
                    replacements[msg_id] = None
                    settled[candidate.message.id] = None
                    entry = _held_entry(unit, candidate.message, verdict.model_dump(mode="json"))
                    if unit.sent:  # only in a Send: held there, with the goto, for the decision
                        entry["sent"] = True
                        kept.append(candidate.message)
                    else:
                        halted = True
                        self._hold(prepared, candidate.message, entry, kept)
                        if entry.get("stand_in"):
                            replacements[msg_id] = HELD_NOTICE  # what the streams show for it
                    entries.append(entry)
                    continue
                delivered = self._delivered(candidate, verdict)
                if (
                    delivered is None
                    and verdict.delivered_text is not None
                    and verdict.action is not Action.HALT  # its own line says why
                ):
                    calls_withheld(verdict, candidate.message, node=prepared.node)
                notice = verdict.notice
                if verdict.action is Action.HALT:
                    # A halt that cannot be held fails closed (a halt's delivered text is the
                    # original): an update for the parent graph ends this graph's run, so
                    # nothing here could wait for the decision; only a guard whose policy
                    # has no halt rule builds a graph without halt nodes (a guard subclass
                    # may halt anyway); and without a checkpointer (the graph's, or for a
                    # subgraph its parent's: only the task's config tells) LangGraph cannot
                    # resume an interrupt, so the decision could never be given.
                    if unit.parent or not halts_here:
                        reason = "parent update" if unit.parent else "no halt node"
                        _log.error("kinguard.halt_blocked", node=prepared.node, reason=reason)
                    else:
                        unreviewable_halt(self.guard, verdict, node=prepared.node)
                        notice = None  # a halt's says that a person reviews it: none does
                    delivered = None
                if delivered is None:
                    modified = True
                    replacements[msg_id] = None
                    dropped_calls.update(tool_call_ids(candidate.message))
                    delivered = notice_message(
                        candidate.message,
                        notice or f"[kinguard blocked a message from {prepared.agent}]",
                        sender=prepared.agent,
                        action=verdict.action.value,
                    )
                else:
                    if delivered is candidate.message:
                        replacements[msg_id] = candidate.shown
                    else:
                        modified = True
                        replacements[msg_id] = message_text(delivered)
                    if mark:
                        delivered = mark_inspected(delivered, verdict.action.value, self.token)
                settled[candidate.message.id] = delivered
                kept.append(delivered)
            if changed:
                unit.apply(unit.wrapper(kept))
        if candidates and self.explicit_agents is None:
            self.guard.profile(prepared.agent)  # a node that speaks is an agent from now on
        output = self._attach_channel(prepared, output, candidates, entries)
        if prepared.reports:
            hidden = {
                call
                for c in candidates
                if replacements.get(str(c.message.id), "") is None
                for call in tool_call_ids(c.message)
            }
            written = {
                raw: replacements.get(str(c.message.id))
                for c in candidates
                if isinstance(raw := units[c.unit].raws.get(c.message.id, (None, None))[1], str)
            }
            self._report(
                prepared,
                replacements,
                modified=modified,
                is_agent=bool(candidates),
                hidden_calls=frozenset(hidden),
                written=written,
            )
        return output

    def _hold(
        self, prepared: Prepared, message: Any, entry: dict[str, Any], kept: list[Any]
    ) -> Any:
        """Hold ``message`` for a human (``entry`` is its pending record). A tool result whose
        call is delivered is answered meanwhile by a stand-in (``entry["stand_in"]``) with the
        result's id, which the decision's outcome replaces. Returns the held message (given an
        id if it needs one for that)."""
        if not (
            self.replaces_by_id
            and isinstance(message, ToolMessage)
            and _is_delivered_call(message.tool_call_id, kept, prepared.messages)
        ):
            return message
        if message.id is None:
            message = message.model_copy(update={"id": f"lc_{uuid.uuid4().hex}"})
        kept.append(held_stand_in(message, sender=prepared.agent))
        entry["stand_in"] = True
        return message

    def _report(
        self,
        prepared: Prepared,
        replacements: dict[str, str | None],
        *,
        modified: bool,
        is_agent: bool,
        hidden_calls: frozenset[str] = frozenset(),
        written: Mapping[str, str | None] | None = None,
    ) -> None:
        """Tell a guarded stream (in-band), ``astream_events`` (via the core) or an enclosing
        graph's token stream (through the hold) the verdicts."""
        if not prepared.events and prepared.writer is None and prepared.hold is None:
            return
        report = TaskVerdicts(
            task=prepared.task,
            replacements=replacements,
            known_ids=prepared.input_ids,
            modified=modified,
            is_agent=is_agent,
            hidden_calls=hidden_calls,
            written=written or {},
            identity=prepared.identity if prepared.as_text else None,
        )
        if prepared.events:
            self.leave_verdicts(prepared.task_ns, report)
        if prepared.gated and prepared.writer is not None:
            try:
                prepared.writer(report)
            except Exception as exc:
                _log.warning("kinguard.stream_report_failed", error=self.guard.describe_error(exc))
        if prepared.hold is not None:
            try:
                prepared.hold.release(report)
            except Exception as exc:
                _log.warning("kinguard.stream_report_failed", error=self.guard.describe_error(exc))

    def _delivered(self, candidate: _Candidate, verdict: Verdict) -> BaseMessage | None:
        return delivered_as(
            candidate.message, verdict.delivered_text, (candidate.text, candidate.visible)
        )

    def _attach_channel(
        self,
        prepared: Prepared,
        output: Any,
        candidates: list[_Candidate],
        entries: list[dict[str, Any]],
    ) -> Any:
        if not candidates or not (entries or prepared.persist):
            return output
        rev, snapshot = self.revisions.snapshot(self.guard, prepared.conversation_id)
        channel: dict[str, Any] = {"rev": rev, "guard": snapshot}
        if entries:
            goto, output = _strip_goto(output)
            channel["pending"] = {
                prepared.task_ns: {
                    "node": prepared.node,
                    "agent": prepared.agent,
                    "conversation_id": prepared.conversation_id,
                    "entries": entries,
                    "goto": goto,
                    "step": _step(prepared.config),
                }
            }
            self.mark_halted(prepared.task_ns)
        if isinstance(output, dict):
            return {**output, GUARD_KEY: channel}
        if isinstance(output, Command) and output.graph is None and isinstance(output.update, dict):
            return dataclasses.replace(output, update={**output.update, GUARD_KEY: channel})
        if isinstance(output, (list, tuple)):
            return [*output, Command(update={GUARD_KEY: channel})]
        if output is None:
            return {GUARD_KEY: channel}
        return [output, Command(update={GUARD_KEY: channel})]

    def fail(self, prepared: Prepared, output: Any, error: BaseException) -> Any:
        """The adapter itself broke while inspecting: follow the guard's error mode."""
        _log.error(
            "kinguard.adapter_error",
            node=prepared.node,
            error=self.guard.describe_error(error),
            on_error=self.guard.policy.error_mode,
        )
        if self.guard.policy.error_mode != "closed":
            try:
                output = _editable(output)
                self._scrub_others(prepared, output)
                for unit in self._units(output):
                    kept = _without_identity(prepared, unit.messages)
                    if kept is not None:
                        unit.apply(unit.wrapper(kept))
            except Exception as exc:
                _log.error(
                    "kinguard.adapter_error",
                    node=prepared.node,
                    error=self.guard.describe_error(exc),
                )
            return output
        try:
            output, units, candidates = self.collect(prepared, output)
            # By id: a message in a Send's state as well as the update is one candidate.
            blocked = {c.message.id for c in candidates}
            for unit in units:
                kept = []
                clean = _without_identity(prepared, unit.messages)
                for message in unit.messages if clean is None else clean:
                    if getattr(message, "id", None) in blocked:
                        kept.append(
                            notice_message(
                                message,
                                f"[kinguard blocked a message from {prepared.agent}: "
                                "inspection failure]",
                                sender=prepared.agent,
                                action=Action.BLOCK.value,
                            )
                        )
                    else:
                        kept.append(message)
                unit.apply(unit.wrapper(kept))
            return output
        except Exception as exc:
            _log.error(
                "kinguard.adapter_error", node=prepared.node, error=self.guard.describe_error(exc)
            )
            return {}

    def _scrub_others(self, prepared: Prepared, output: Any) -> None:
        """Take the identity out of what the (editable) update writes under other keys than
        the messages (the node's input kept as ``history``, a scratchpad). Only the update's
        values are read, as lists, tuples or single messages: not data nested deeper."""
        key = self.messages_key
        for update in _updates(output):
            if isinstance(update, dict):
                for name, value in list(update.items()):
                    if name != key and _carries_identity(value, prepared.identity):
                        restored = _restored_value(prepared, value)
                        if restored is None:
                            del update[name]
                        else:
                            update[name] = restored
                continue
            if not isinstance(update, list):  # a Pydantic or dataclass state's: its fields
                for name, value in _fields(update):
                    if name != key and _carries_identity(value, prepared.identity):
                        _force_setattr(update, name, _restored_value(prepared, value))
                continue
            # A Command's (channel, value) pairs: last first, so that a deletion moves none
            # still to be read.
            for index in reversed(range(len(update))):
                pair = update[index]
                if (
                    _is_write(pair)
                    and pair[0] != key
                    and _carries_identity(pair[1], prepared.identity)
                ):
                    restored = _restored_value(prepared, pair[1])
                    if restored is None:
                        del update[index]
                    else:
                        update[index] = (pair[0], restored)

    # -- update shapes ------------------------------------------------------------------------

    def _units(self, output: Any) -> list[_Unit]:
        """Where the messages of an (editable) output are: its updates, then its Sends' states
        (so a message in both is ruled on where it enters the graph's state)."""
        units = self._output_units(output)
        if len(units) > 1:
            units.sort(key=attrgetter("sent"))  # stable: each kind keeps its order
        return units

    def _output_units(self, output: Any) -> list[_Unit]:
        key = self.messages_key
        # ``add_messages`` reads dicts and pairs as messages anyway: what kinguard writes there
        # keeps the ids and marks it gives them. Another reducer keeps what nodes write as it is.
        own_form = not self.replaces_by_id
        if isinstance(output, dict):  # first: the usual shape of a node's update
            if key in output:
                unit = _unit_for(output[key], partial(output.__setitem__, key), own_form)
                if unit is not None:
                    return [unit]
            return []
        if isinstance(output, Command):
            units: list[_Unit] = []
            update = output.update
            if isinstance(update, dict) and key in update:
                unit = _unit_for(update[key], partial(update.__setitem__, key), own_form)
                if unit is not None:
                    units.append(unit)
            elif isinstance(update, list):  # (channel, value) pairs, a form LangGraph accepts
                for index, pair in enumerate(update):
                    if _is_write(pair) and pair[0] == key:
                        unit = _unit_for(pair[1], partial(_set_pair, update, index, key), own_form)
                        if unit is not None:
                            units.append(unit)
            elif update is not None and not isinstance(update, (dict, tuple)):
                units.extend(self._object_units(update))
            if output.goto:
                units.extend(self._sent_units(output.goto))
            if output.graph is not None:
                for unit in units:
                    unit.parent = True
            return units
        if isinstance(output, (list, tuple)):
            return [unit for item in output for unit in self._output_units(item)]
        if output is not None:
            return self._object_units(output)
        return []

    def _sent_units(self, goto: Any) -> list[_Unit]:
        """The messages in the states that ``Send``s hand to their tasks (``goto`` editable)."""
        units: list[_Unit] = []
        for send in goto if isinstance(goto, (list, tuple)) else (goto,):
            if isinstance(send, Send) and not isinstance(send.arg, (list, tuple, Command)):
                for unit in self._output_units(send.arg):
                    unit.sent = True
                    units.append(unit)
        return units

    def _object_units(self, output: Any) -> list[_Unit]:
        key = self.messages_key
        if hasattr(output, key):
            setter = partial(_force_setattr, output, key)
            unit = _unit_for(getattr(output, key), setter, not self.replaces_by_id)
            if unit is not None:
                return [unit]
        return []

    # -- restoring guard state at the start of a run ------------------------------------------

    def restore(
        self,
        channel: Mapping[str, Any] | None,
        conversation_id: str,
        *,
        unless_behind: bool = False,
    ) -> None:
        """Load the guard's state for a run from the checkpoint it starts from.

        A checkpoint without kinguard's channel was taken before any message of the thread was
        inspected (time travel to a thread's start, a state set by ``update_state`` alone): the
        run starts with no risk, whatever a later, abandoned branch had earned.

        ``unless_behind`` (a subgraph's run): the subgraph's checkpoint is its own part of the
        thread, as of its last run; the live state may be ahead of it (the thread's other
        parts, with the same guard), so it only fills in what the guard has not seen (a new
        process), and its absence forgets nothing.
        """
        if not channel or channel.get("guard") is None:
            if not unless_behind:
                self.guard.forget(conversation_id)
            return
        import_state(self.guard, conversation_id, channel["guard"], unless_behind=unless_behind)
        self.revisions.seen(conversation_id, int(channel.get("rev", 0)))

    # -- halts --------------------------------------------------------------------------------

    def resolve_pending(self, node: str, state: Any, config: RunnableConfig | None = None) -> Any:
        """Body of a halt node: one ``interrupt()`` per halted message, then deliver.

        The node's newest halt (its tasks of one step) waits for the decisions. An older one
        was abandoned: the app sent new input instead of a decision, and the node halted
        again. Its message is never delivered or asked about again, and it is cleared. (The
        halt node's own step does not tell: ``update_state`` moves the step on while a halt
        waits, and the halt node then runs a step later.)
        """
        channel = _read_channel(config, state) or {}
        nested = _NS_SEP in _task_ns(config)
        own = [
            (task, rec)
            for task, rec in (channel.get("pending") or {}).items()
            if rec and rec.get("node") == node
        ]
        steps = [rec["step"] for _, rec in own if isinstance(rec.get("step"), int)]
        latest = max(steps) if steps else None
        records: list[tuple[str, Mapping[str, Any]]] = []
        abandoned: list[str] = []
        for task, rec in own:
            halted_at = rec.get("step")
            if latest is not None and isinstance(halted_at, int) and halted_at < latest:
                abandoned.append(task)
            else:
                records.append((task, rec))
        delivered: list[Any] = []
        history = _get_messages(state, self.messages_key)
        last_message = history[-1] if history else None
        goto: list[Any] = []
        outcomes: dict[Any, BaseMessage | None] = {}
        """Message id -> what the held Sends' states get instead (None: nothing)."""
        held: list[tuple[Any, Any]] = []
        """(form written, id) of the held messages that a node wrote as dicts or pairs."""
        decided: list[tuple[Verdict, HumanDecision]] = []
        for _task, record in records:
            dropped_calls: set[str] = set()
            for entry in record.get("entries", ()):
                message = entry["message"]
                if not isinstance(message, BaseMessage):
                    message = convert_to_messages([message])[0]
                outcome: BaseMessage | None
                if isinstance(message, ToolMessage) and message.tool_call_id in dropped_calls:
                    outcome = None  # the result of a call the delivered message does not make
                elif entry.get("verdict") is None:
                    outcome = message
                else:
                    verdict = Verdict.model_validate(entry["verdict"])
                    halted = verdict.action is Action.HALT
                    if halted:
                        decision = parse_decision(
                            interrupt(halt_payload(verdict, message, node, record)),
                            quote=self.guard.telemetry.capture_content,
                        )
                        decided.append((verdict, decision))
                        text = self.guard.resolve_halt(verdict, decision)
                        edited = decision.type == "edit"
                        outcome = released_as(message, text, edited=edited)
                    else:  # withheld behind a halt, ruled on like any message
                        outcome = delivered_as(message, verdict.delivered_text)
                    # Calls the delivered message no longer makes: their results go too.
                    dropped_calls.update(set(tool_call_ids(message)) - set(tool_call_ids(outcome)))
                    if outcome is not None:
                        if nested:
                            outcome = mark_inspected(outcome, verdict.action.value, self.token)
                    elif not halted or isinstance(message, ToolMessage):
                        # A rejected tool result still answers its call (see notice_message).
                        outcome = notice_message(
                            message,
                            verdict.notice
                            if not halted and verdict.notice
                            else _withheld_notice(halted, record),
                            sender=str(record.get("agent")),
                            action=verdict.action.value,
                        )
                if entry.get("stand_in") and outcome is not None:
                    if getattr(last_message, "id", None) == message.id and not entry.get("sent"):
                        # The stand-in ends the history: the outcome can take its place under
                        # a new id, which the messages stream shows (it skips ids the halt node
                        # was given, the stand-in's among them).
                        delivered.append(RemoveMessage(id=str(message.id)))
                        if outcome.id == message.id:
                            outcome = outcome.model_copy(update={"id": f"{message.id}-decided"})
                    elif outcome.id != message.id:
                        outcome = outcome.model_copy(update={"id": message.id})  # in its place
                if message.id is not None:
                    outcomes[message.id] = outcome
                raw = entry.get("raw")
                if raw is not None:
                    held.append((raw, message.id))
                if outcome is not None and not entry.get("sent"):
                    delivered.append(outcome if raw is None else as_written(outcome, raw))
            goto.extend(record.get("goto") or ())
        for task, _ in records:
            self.forget_halted(task)
        # Here, not at each interrupt: the node re-runs from the start for every answer.
        for verdict, decision in decided:
            self.guard.record_decision(verdict, decision)
        if abandoned:
            _log.info("kinguard.halt_abandoned", node=node, tasks=len(abandoned))
            goto = self._decided_sends(goto, outcomes, held)
        if goto and outcomes:
            goto = self._decided_sends(goto, outcomes, held)
        done = [task for task, _ in records] + abandoned
        update: dict[str, Any] = {
            self.messages_key: [*history, *delivered] if self.overwrites else delivered,
            GUARD_KEY: {"pending": dict.fromkeys(done)},
        }
        if goto:
            return Command(update=update, goto=goto)
        return update

    def _decided_sends(
        self,
        goto: list[Any],
        outcomes: Mapping[Any, BaseMessage | None],
        held: Sequence[tuple[Any, Any]],
    ) -> Any:
        """The held ``goto`` with its Sends' states carrying only what the decisions let
        through (a rejected message is not handed to the task the node sent it to).

        ``held``: (form written, id) of held messages written as dicts or pairs: read again
        from a Send's state, such a message has a new id, so it is known by its form."""
        goto = _editable_goto(goto)
        for unit in self._sent_units(goto):
            kept: list[Any] = []
            for message in unit.messages:
                message_id = getattr(message, "id", None)
                found = unit.raws.get(message_id)
                if found is not None:
                    message_id = next((i for raw, i in held if raw == found[1]), message_id)
                if message_id is not None and message_id in outcomes:
                    outcome = outcomes[message_id]
                    if outcome is None:
                        continue
                    message = outcome if found is None else as_written(outcome, found[1])
                kept.append(message)
            unit.apply(unit.wrapper(kept))
        return goto


_IDENTITY_KINDS = frozenset(
    {SystemMessage, RemoveMessage, IdentityDict, IdentityPair, IdentityText, dict, tuple, list}
)
"""Types that can be (or carry) kinguard's identity (see ``is_identity_message``)."""


def _carries_identity(value: Any, identity: str | None) -> bool:
    """An update's value is, or lists, kinguard's identity, or is a string with the
    ``identity`` text in it (the prompt a node joined from a channel of strings). Only items
    of the types it can take are read: a copied history is read in its system messages, not
    every message."""
    if type(value) is str:
        return identity is not None and identity in value
    if _listing(value):
        return not _IDENTITY_KINDS.isdisjoint(map(type, value)) and any(
            is_identity_message(item) for item in value if type(item) in _IDENTITY_KINDS
        )
    return type(value) in _IDENTITY_KINDS and is_identity_message(value)


def _listing(value: Any) -> bool:
    """An update's value lists values: a list or tuple, but not one ``(role, text)`` pair
    with the identity in it (a pair channel's message kept on its own, e.g. its prompt)."""
    return type(value) is list or (type(value) is tuple and not is_identity_message(value))


def _without_identity(prepared: Prepared, values: Sequence[Any]) -> list[Any] | None:
    """``values`` with kinguard's identity taken out (see ``Prepared.restored``); ``None``:
    there was none."""
    if not any(map(is_identity_message, values)):
        return None
    kept: list[Any] = []
    for value in values:
        if is_identity_message(value):
            value = prepared.restored(value)
            if value is None:
                continue
        kept.append(value)
    return kept


def _restored_value(prepared: Prepared, value: Any) -> Any:
    """An update's ``value`` (:func:`_carries_identity`) as the app had it; ``None``: it was
    kinguard's own identity message, to be left out."""
    if type(value) is str:
        identity = prepared.identity
        return value if identity is None else without_identity_text(value, identity)
    if _listing(value):
        kept = _without_identity(prepared, value)
        return value if kept is None else type(value)(kept)
    return prepared.restored(value)


def _is_write(pair: Any) -> bool:
    """One ``(channel, value)`` pair of a Command's update given as a list of them."""
    return isinstance(pair, (tuple, list)) and len(pair) == 2


def _updates(output: Any) -> list[Any]:
    """What an (editable) output writes to the state or hands to ``Send`` tasks: dicts, the
    lists of ``(channel, value)`` pairs a Command's update may be given as, Pydantic models
    and dataclasses."""
    if isinstance(output, (dict, BaseModel)):
        return [output]
    if isinstance(output, Command):  # (first: a Command is a dataclass too)
        update = output.update
        found = (
            [update]
            if isinstance(update, (dict, list, BaseModel)) or _is_dataclass_object(update)
            else []
        )
        goto = output.goto if isinstance(output.goto, (list, tuple)) else (output.goto,)
        return found + [
            send.arg for send in goto if isinstance(send, Send) and isinstance(send.arg, dict)
        ]
    if isinstance(output, (list, tuple)):
        return [found for item in output for found in _updates(item)]
    return [output] if _is_dataclass_object(output) else []


def _is_dataclass_object(value: Any) -> bool:
    return dataclasses.is_dataclass(value) and not isinstance(value, type)


def _fields(update: Any) -> list[tuple[str, Any]]:
    """A Pydantic or dataclass update's fields, read before any is set."""
    if isinstance(update, BaseModel):
        return list(vars(update).items())
    return [(field.name, getattr(update, field.name)) for field in dataclasses.fields(update)]


def _raw_form(messages: Sequence[Any], empty: type | None) -> type | None:
    """The form of a history's dicts, pairs or strings (``None``: it holds LangChain
    messages); ``empty``: the form the channel's type declares (see ``_declared_form``), that
    of an empty history. A history of strings alone is one of strings unless the channel is
    declared to hold messages (a model call takes a string there as a user message)."""
    if not messages or empty is str:
        return empty
    texts = True
    for message in messages:
        kind = type(message)
        if kind is dict or kind is tuple:
            return kind
        if not isinstance(message, str):
            texts = False
    return str if texts and empty is not None else None


def _held_entry(unit: _Unit, message: Any, verdict: Any) -> dict[str, Any]:
    """The pending record of a message held for a human, with the form the node wrote it in
    (a dict, a pair), which the decision delivers it in."""
    entry = {"message": message, "verdict": verdict}
    found = unit.raws.get(getattr(message, "id", None))
    if found is not None:
        entry["raw"] = found[1]
    return entry


def _is_delivered_call(call_id: str, kept: Sequence[Any], given: Sequence[Any]) -> bool:
    """An AI message in the update so far (``kept``) or in the state the node was given makes
    the call ``call_id`` (searched newest first: a call is answered soon after it is made)."""
    for messages in (kept, given):
        for message in reversed(messages):
            if isinstance(message, AIMessage) and call_id in tool_call_ids(message):
                return True
    return False


def _withheld_notice(rejected: bool, record: Mapping[str, Any]) -> str:
    if rejected:
        return f"[kinguard withheld a message from {record.get('agent')}: a reviewer rejected it]"
    return "[kinguard blocked a message]"


def halt_payload(
    verdict: Verdict, message: BaseMessage, node: str, record: Mapping[str, Any]
) -> dict[str, Any]:
    """The JSON-able value a halt hands to ``interrupt()``: what a reviewer needs to decide."""
    approved = released_as(message, verdict.delivered_text, edited=False)
    return {
        "kinguard": "halt",
        "node": node,
        "agent": record.get("agent"),
        "conversation_id": record.get("conversation_id"),
        "message_id": message.id,
        "text": message_text(message),
        "reasoning": reasoning_texts(message),  # delivered with it on approval
        "tool_calls": [
            {"name": call.get("name"), "args": call.get("args")}
            for call in getattr(message, "tool_calls", None) or ()
        ],
        "verdict": {
            "message_id": verdict.message_id,  # kinguard's: the decision's span names it
            "action": verdict.action.value,
            "signals": list(verdict.signal_names),
            "reasons": list(verdict.reasons),
            "kinship": verdict.kinship.value,
            "message_risk": verdict.message_risk,
            "pair_risk": verdict.pair_risk,
            "conversation_risk": verdict.conversation_risk,
            "recipients": list(verdict.recipients),
        },
        # What "approve" delivers (the visible text, as the other rules leave it), or None when
        # it delivers nothing: another rule blocks the message, or redacts a call's arguments.
        "approve_delivers": None if approved is None else message_text(approved),
        "decisions": ["approve", "edit", "reject"],
        "resume": 'Command(resume={"type": "approve" | "edit" | "reject", "text": ...})',
    }


def can_hold(config: RunnableConfig | None) -> bool:
    """LangGraph can resume an interrupt in this task: it has a checkpointer (its graph's, or
    for a subgraph its parent's, which only the task's config tells)."""
    return ((config or {}).get("configurable") or _NO_CONF).get(_CHECKPOINTER_KEY) is not None


def unreviewable_halt(guard: KinGuard, verdict: Verdict, **where: str) -> None:
    """Say that a halt failed closed for want of a checkpointer (``can_hold``): an error naming
    the fix, and the trail a reviewed halt leaves (a decision span, count and log line), saying
    that no one could review it."""
    _log.error("kinguard.halt_blocked", **where, reason="no checkpointer", fix=_NO_CHECKPOINTER_FIX)
    reason = f"no checkpointer: {_NO_CHECKPOINTER_FIX}"
    guard.record_decision(verdict, HumanDecision(type="reject", reason=reason))


def calls_withheld(verdict: Verdict, message: BaseMessage, **where: str) -> None:
    """Say that a message is withheld because its verdict rewrote what one of its tool calls
    says (arguments are data, not prose to re-cut). Under ``conceal`` such a verdict is no
    block and raises no alert: nothing else records that the others never got the message."""
    _log.warning(
        "kinguard.langgraph.calls_withheld",
        **where,
        conversation_id=verdict.conversation_id,
        sender=verdict.sender,
        action=verdict.action.value,
        tools=[str(call.get("name")) for call in getattr(message, "tool_calls", None) or ()],
        detail="its verdict changed a tool call's arguments, which kinguard cannot rewrite",
    )


def warn_undeclared(
    agent: str,
    fix: str = "name its profile after the node, or map nodes with "
    "guard_graph(agents={node: name})",
) -> None:
    # Silently, a node named unlike its profile ("buyer_agent" for "buyer") would be guarded
    # as an unknown model serving no principal: no kinship, no principal in its identity.
    _log.warning(
        "kinguard.langgraph.undeclared_agent",
        agent=agent,
        detail=f"not in KinGuard(agents=...): guarded as an unknown model with no principal; {fix}",
    )


class GuardedNode(Runnable[Any, Any]):
    """Wraps one user node; see the module docstring for what it does around it."""

    def __init__(self, node: str, inner: Runnable[Any, Any], core: GraphCore) -> None:
        self.node = node
        self.agent = core.agent_for(node)
        self.inner = inner
        self.core = core
        self.name = node
        self.known = False
        """The guard knows this node as an agent (set once; agents are never removed)."""

    def _prepare(
        self, input: Any, config: RunnableConfig | None
    ) -> tuple[Prepared | None, Exception | None]:
        try:
            return self.core.prepare(self, input, config or {}), None
        except Exception as exc:
            return None, exc

    def _unprepared(
        self, config: RunnableConfig | None, output: Any, error: Exception, handoff: bool
    ) -> Any:
        """The node ran, but kinguard could not prepare for it: follow the guard's error mode
        (``closed``: the node's messages are blocked) instead of letting them through unseen."""
        conf = (config or {}).get("configurable") or _NO_CONF
        prepared = Prepared(
            self.node,
            self.agent,
            None,
            config or {},
            (),
            str(conf.get("thread_id") or self.core.guard.conversation_id),
            False,
            False,
            False,
            handoff=handoff,
        )
        return self.core.fail(prepared, output, error)

    def _own_command(self, exc: ParentCommand, config: RunnableConfig | None) -> Command[Any]:
        """A ``Command(graph=Command.PARENT)`` from inside the node (a handoff tool in an agent
        subgraph) that is addressed to this graph, as if the node had returned it.

        LangGraph raises such a command out of the subgraph and writes its update for the
        node's task, past anything the node returns: taken here, its messages are inspected
        (and halted, routed) like the node's own. A command for another graph goes on up.
        """
        command = exc.args[0] if exc.args else None
        ns = _task_ns(config)
        if not isinstance(command, Command) or command.graph not in (
            ns,
            recast_checkpoint_ns(ns),
            self.node,
        ):
            raise exc
        return dataclasses.replace(command, graph=None)

    def invoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        prepared, error = self._prepare(input, config)
        if prepared is None:
            handoff = False
            try:
                output = self.inner.invoke(input, config, **kwargs)
            except ParentCommand as exc:
                output, handoff = self._own_command(exc, config), True
            return self._unprepared(config, output, cast(Exception, error), handoff)
        token = _enter(prepared, config)
        try:
            output = self.inner.invoke(prepared.state, prepared.config, **kwargs)
        except ParentCommand as exc:
            output = self._own_command(exc, config)
            prepared.handoff = True
        finally:
            _leave(token)
        core = self.core
        try:
            if prepared.nudge is not None:
                core.nudged(prepared)
            verdicts: list[Verdict] | None = None
            candidates = core.fast_candidates(prepared, output)
            if candidates is not None:
                verdicts = core.inspect_all(prepared, candidates)
                result = core.finish_fast(prepared, output, candidates, verdicts)
                if result is not _REWRITE:
                    return result
            edited, units, candidates = core.collect(prepared, output)
            if verdicts is None:
                verdicts = core.inspect_all(prepared, candidates)
            return core.finish(prepared, edited, units, candidates, verdicts)
        except Exception as exc:
            return core.fail(prepared, output, exc)

    async def ainvoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        prepared, error = self._prepare(input, config)
        if prepared is None:
            handoff = False
            try:
                output = await self.inner.ainvoke(input, config, **kwargs)
            except ParentCommand as exc:
                output, handoff = self._own_command(exc, config), True
            return self._unprepared(config, output, cast(Exception, error), handoff)
        token = _enter(prepared, config)
        try:
            output = await self.inner.ainvoke(prepared.state, prepared.config, **kwargs)
        except ParentCommand as exc:
            output = self._own_command(exc, config)
            prepared.handoff = True
        finally:
            _leave(token)
        core = self.core
        try:
            if prepared.nudge is not None:
                core.nudged(prepared)
            verdicts: list[Verdict] | None = None
            candidates = core.fast_candidates(prepared, output)
            if candidates is not None:
                verdicts = await core.ainspect_all(prepared, candidates)
                result = core.finish_fast(prepared, output, candidates, verdicts)
                if result is not _REWRITE:
                    return result
            edited, units, candidates = core.collect(prepared, output)
            if verdicts is None:
                verdicts = await core.ainspect_all(prepared, candidates)
            return core.finish(prepared, edited, units, candidates, verdicts)
        except Exception as exc:
            return core.fail(prepared, output, exc)


class HaltNode(Runnable[Any, Any]):
    """Runs only after a halt: asks a human through ``interrupt()`` and delivers the outcome."""

    def __init__(self, node: str, core: GraphCore) -> None:
        self.node = node
        self.core = core
        self.name = f"{node}.kinguard_halt"

    def invoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        return self.core.resolve_pending(self.node, input, config)

    async def ainvoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        return self.core.resolve_pending(self.node, input, config)


class Passthrough(Runnable[Any, Any]):
    """A node that changes nothing: a point in the graph that fan-in edges can wait for."""

    name = "kinguard_done"

    def invoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        return None

    async def ainvoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        return None


class GatedPath(Runnable[Any, Any]):
    """A user's conditional edge out of a guarded node, silenced while that node's task halts.

    With ``halt_node`` set it also routes the halting task there (the node then needs no
    extra router branch, so the common case costs one membership test).
    """

    def __init__(
        self,
        path: Runnable[Any, Any],
        core: GraphCore,
        node: str,
        halt_node: str | None = None,
    ) -> None:
        self.path = path
        self.core = core
        self.node = node
        self.halt_node = halt_node
        self.name = path.get_name()

    def _halted(self, config: RunnableConfig | None, input: Any) -> list[str] | None:
        core = self.core
        if (
            core.is_halted(config)
            or _is_sent(config)
            or core.waits_outside_run(self.node, config, input)
        ):
            return [self.halt_node] if self.halt_node else []
        return None

    def invoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        halted = self._halted(config, input)
        if halted is not None:
            return halted
        return self.path.invoke(input, config, **kwargs)

    async def ainvoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        halted = self._halted(config, input)
        if halted is not None:
            return halted
        return await self.path.ainvoke(input, config, **kwargs)


class Router(Runnable[Any, Any]):
    """Replaces a guarded node's static edges: its targets normally, its halt node on a halt.

    A task started by ``Send`` always goes through the halt node: parallel tasks of one node
    meet there, so what follows them runs once, after any of them that halted is decided
    (otherwise it would run on the others' messages first, and again after the decision).
    """

    def __init__(self, node: str, targets: Sequence[str], halt_node: str, core: GraphCore) -> None:
        self.node = node
        self.targets = list(targets)
        self.halt_node = halt_node
        self.core = core
        self.name = "kinguard_route"

    def invoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        core = self.core
        if (
            core.take_halted(config)
            or _is_sent(config)
            or core.waits_outside_run(self.node, config, input)
        ):
            return [self.halt_node]
        return self.targets

    async def ainvoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        return self.invoke(input, config)


# -- helpers ------------------------------------------------------------------------------------


def _enter(prepared: Prepared, config: RunnableConfig | None) -> Token[Any] | None:
    """Make the node's ``get_stream_writer()`` see the tagging writer (it reads the context)."""
    if prepared.config is config:
        return None
    return var_child_runnable_config.set(prepared.config)


def _leave(token: Token[Any] | None) -> None:
    if token is not None:
        var_child_runnable_config.reset(token)


def _is_sent(config: RunnableConfig | None) -> bool:
    """The task was started by ``Send`` (its path begins with LangGraph's push marker)."""
    path = ((config or {}).get("metadata") or {}).get("langgraph_path")
    return isinstance(path, (tuple, list)) and bool(path) and path[0] == PUSH


def _read_channel(config: RunnableConfig | None, state: Any) -> Any:
    """kinguard's channel, read by the task rather than taken as its input: a task's input
    shows in ``tasks``/``debug`` streams, where an enclosing graph that kinguard does not
    guard passes it on, withheld messages and all."""
    read = ((config or {}).get("configurable") or _NO_CONF).get(_READ_KEY)
    if callable(read):
        return read(GUARD_KEY, False)
    return _get(state, GUARD_KEY)


def _step(config: RunnableConfig | None) -> int | None:
    """The graph step a task runs in (steps keep counting across the runs of a thread)."""
    step = ((config or {}).get("metadata") or {}).get("langgraph_step")
    return step if isinstance(step, int) else None


def _task_ns(config: RunnableConfig | None) -> str:
    if not config:
        return ""
    conf = config.get("configurable") or {}
    ns = conf.get("checkpoint_ns")
    if not ns:
        ns = (config.get("metadata") or {}).get("langgraph_checkpoint_ns", "")
    return str(ns or "")


def _get(state: Any, key: str) -> Any:
    if isinstance(state, Mapping):
        return state.get(key)
    return getattr(state, key, None)


def _get_messages(state: Any, key: str) -> Sequence[Any]:
    """The state's messages, not copied: only read (``_inject`` builds a new list)."""
    value = state.get(key) if type(state) is dict else _get(state, key)
    if isinstance(value, (list, tuple)):
        return value
    return ()


def _message_ids(messages: Sequence[Any]) -> frozenset[Any]:
    try:
        ids: frozenset[Any] = frozenset(map(_get_id, messages))
    except AttributeError:  # not all messages: a custom reducer's state
        ids = frozenset([getattr(m, "id", None) for m in messages])
    return ids - {None} if None in ids else ids


def _set_messages(state: Any, key: str, messages: list[Any]) -> Any:
    if isinstance(state, dict):
        return {**state, key: messages}
    if isinstance(state, BaseModel):
        return state.model_copy(update={key: messages})
    if dataclasses.is_dataclass(state) and not isinstance(state, type):
        return dataclasses.replace(state, **{key: messages})
    return state


def _force_setattr(obj: Any, key: str, value: Any) -> None:
    try:
        setattr(obj, key, value)
    except (AttributeError, TypeError, ValidationError):
        object.__setattr__(obj, key, value)


def _unit_for(value: Any, store: Callable[[Any], None], own_form: bool) -> _Unit | None:
    """The unit of a messages value; ``own_form``: messages written as dicts, pairs or strings
    are written back so (see :func:`_in_own_form`)."""
    wrapper: Callable[[list[Any]], Any] = _as_list
    if isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], str):
        # ``("assistant", text)`` is one message (``add_messages`` reads it so), not two.
        values: Sequence[Any] = [value]
    elif isinstance(value, (list, tuple)):
        values = value
    elif isinstance(value, BaseMessage):
        return _Unit([value], _as_list, store)
    elif isinstance(value, Overwrite):
        values, wrapper = value.value, Overwrite
        if not isinstance(values, (list, tuple)):
            return None
    elif isinstance(value, (dict, str)):
        values = [value]
    else:
        return None
    # ``_coerce`` returns a new list: the unit's messages can be edited in place.
    messages, raws = _coerce(values, own_form)
    if raws:
        wrapper = partial(_in_own_form, raws, wrapper)
    return _Unit(messages, wrapper, store, raws=raws)


def _as_list(messages: list[Any]) -> list[Any]:
    return messages


def _index(values: Sequence[Any], value: Any, start: int) -> int:
    """Where ``value`` is in ``values`` from ``start`` on (-1: not there)."""
    try:
        return values.index(value, start)
    except ValueError:
        return -1


def _coerce(
    values: Sequence[Any], own_form: bool
) -> tuple[list[Any], dict[Any, tuple[BaseMessage, Any]]]:
    """The messages of ``values`` (dicts, pairs and strings read as LangChain messages), and,
    with ``own_form``, what each read one was written as, by the id it is read under (an
    id-less one gets one: verdicts, halts and notices name messages by id)."""
    raws: dict[Any, tuple[BaseMessage, Any]] = {}
    if all(isinstance(v, BaseMessage) for v in values):
        return list(values), raws
    out: list[Any] = []
    for v in values:
        if isinstance(v, BaseMessage) or is_identity_message(v):
            out.append(v)  # (the identity dict: dropped from the output as it is)
            continue
        if own_form and isinstance(v, str):
            # A plain string has no role: in a channel that keeps it as it is, it is the words
            # of the node that wrote it (``add_messages`` would make it a user message).
            message: BaseMessage = AIMessage(content=v, id=f"lc_{uuid.uuid4().hex}")
            raws[message.id] = (message, v)
            out.append(message)
            continue
        try:
            (message,) = convert_to_messages([v])
        except Exception:
            out.append(v)
            continue
        if not own_form:
            out.append(message)
            continue
        if message.id is None:
            message = message.model_copy(update={"id": f"lc_{uuid.uuid4().hex}"})
        raws[message.id] = (message, v)
        out.append(message)
    return out, raws


def _in_own_form(
    raws: Mapping[Any, tuple[BaseMessage, Any]],
    wrapper: Callable[[list[Any]], Any],
    messages: list[Any],
) -> Any:
    """``messages`` with each one read from a dict, pair or string written back in that form:
    the channel holds what nodes write as it is (``operator.add``), and the app's nodes send it
    to an SDK that takes no LangChain message (``add_messages`` reads either back alike)."""
    written: list[Any] = []
    for message in messages:
        found = raws.get(source_id(message)) if isinstance(message, BaseMessage) else None
        if found is None:
            written.append(message)
        elif found[0] is message:
            written.append(found[1])  # as the node wrote it
        else:
            written.append(as_written(message, found[1]))
    return wrapper(written)


def _editable_goto(goto: Any) -> Any:
    """``goto`` with its ``Send``s copied, their states editable."""
    if isinstance(goto, Send):
        return Send(goto.node, _editable(goto.arg), timeout=goto.timeout)
    if isinstance(goto, (list, tuple)) and any(isinstance(g, Send) for g in goto):
        return [_editable_goto(g) for g in goto]
    return goto


def _strip_goto(output: Any) -> tuple[list[Any], Any]:
    """Take the ``goto`` out of a halting node's Command(s); the halt node re-issues it."""
    if isinstance(output, Command) and output.graph is None and output.goto:
        goto = (
            [output.goto]
            if isinstance(output.goto, (str,)) or not isinstance(output.goto, Sequence)
            else list(output.goto)
        )
        return goto, dataclasses.replace(output, goto=())
    if isinstance(output, (list, tuple)):
        gotos: list[Any] = []
        items: list[Any] = []
        for item in output:
            g, stripped = _strip_goto(item)
            gotos.extend(g)
            items.append(stripped)
        return gotos, items
    return [], output


def _set_pair(pairs: list[Any], index: int, key: str, value: Any) -> None:
    pairs[index] = (key, value)


def _editable(output: Any) -> Any:
    """A shallow copy of a node's output that can be edited without touching the user's objects."""
    if isinstance(output, dict):
        return dict(output)
    if isinstance(output, Command):
        update: Any = output.update
        if isinstance(update, (dict, BaseModel)):
            update = dict(update) if isinstance(update, dict) else update.model_copy()
        elif _is_dataclass_object(update):
            update = dataclasses.replace(update)
        elif isinstance(update, (list, tuple)):
            update = list(update)  # pairs: replaced one by one when their messages change
        return dataclasses.replace(output, update=update, goto=_editable_goto(output.goto))
    if isinstance(output, (list, tuple)):
        return [_editable(item) for item in output]
    if isinstance(output, BaseModel):
        return output.model_copy()
    if _is_dataclass_object(output):
        return dataclasses.replace(output)
    return output
