"""``guard_graph()``: a guarded copy of the user's ``StateGraph``, rewired at compile time."""

from __future__ import annotations

import copy
import dataclasses
import operator
import types
from collections import defaultdict
from collections.abc import Mapping, Sequence
from functools import partial
from typing import TYPE_CHECKING, Annotated, Any, Union, cast, get_args, get_origin

from langchain_core.messages import BaseMessage
from langchain_core.runnables import Runnable
from langgraph._internal._runnable import coerce_to_runnable
from langgraph.channels import LastValue
from langgraph.graph import StateGraph
from langgraph.graph._branch import BranchSpec
from langgraph.graph._node import StateNodeSpec
from langgraph.graph.message import add_messages

from kinguard import KinGuard
from kinguard_langgraph._core import (
    GatedPath,
    GraphCore,
    GuardedNode,
    HaltNode,
    Passthrough,
    Router,
)
from kinguard_langgraph._state import GUARD_KEY, GuardChannel

if TYPE_CHECKING:
    from kinguard_langgraph._compiled import GuardedCompiledStateGraph

__all__ = ["GuardedStateGraph", "guard_graph"]

_ROUTER_BRANCH = "kinguard_route"


class GuardedStateGraph:
    """The user's builder plus a guard; ``compile()`` returns a guarded compiled graph.

    The user's builder is never modified: ``compile()`` works on a copy, so nodes added to the
    builder before ``compile()`` are guarded too, and the builder still compiles bare.
    """

    def __init__(
        self,
        builder: StateGraph[Any, Any, Any, Any],
        guard: KinGuard,
        *,
        agents: Mapping[str, str] | Sequence[str] | None = None,
        messages_key: str = "messages",
    ) -> None:
        if isinstance(builder, GuardedStateGraph):
            raise TypeError(
                "guard_graph(): this builder is already guarded; compile it as it is, or guard "
                "the original StateGraph builder with another guard"
            )
        if not isinstance(builder, StateGraph):
            compiled = isinstance(getattr(builder, "builder", None), StateGraph)
            raise TypeError(
                f"guard_graph() takes an uncompiled StateGraph builder, got "
                f"{type(builder).__name__}; "
                + (
                    "call guard_graph(builder, guard).compile(...) instead of compiling first"
                    if compiled
                    # A functional-API workflow (@entrypoint) has no builder to guard.
                    else "for a workflow of the functional API (@entrypoint), guard each "
                    "create_agent agent in it with KinGuardMiddleware(guard, agent_name=...)"
                )
            )
        if not isinstance(guard, KinGuard):  # else a failure deep inside the first run
            raise TypeError(f"guard_graph() takes a KinGuard as guard, not {type(guard).__name__}")
        self.builder = builder
        self.guard = guard
        self.messages_key = messages_key
        self.agents: dict[str, str] | None
        if agents is None:
            self.agents = None
        elif isinstance(agents, Mapping):
            self.agents = {str(node): str(name) for node, name in agents.items()}
        else:
            self.agents = {str(node): str(node) for node in agents}

    def compile(self, *args: Any, **kwargs: Any) -> GuardedCompiledStateGraph[Any, Any, Any, Any]:
        """Compile the guarded graph; takes the same arguments as ``StateGraph.compile``."""
        from kinguard_langgraph._compiled import GuardedCompiledStateGraph

        core = GraphCore(self.guard, agents=self.agents, messages_key=self.messages_key)
        guarded = _guarded_builder(self.builder, core)
        compiled = guarded.compile(*args, **kwargs)
        return GuardedCompiledStateGraph.adopt(compiled, core)


def guard_graph(
    builder: StateGraph[Any, Any, Any, Any],
    guard: KinGuard,
    *,
    agents: Mapping[str, str] | Sequence[str] | None = None,
    messages_key: str = "messages",
) -> GuardedStateGraph:
    """Guard a multi-agent ``StateGraph`` without changing its nodes.

    ``agents`` says which nodes are agents: a mapping ``{node: agent profile name}``, a list of
    node names (each its own agent name), or ``None`` to treat every node whose update adds an
    AI message as an agent named after the node. ``messages_key`` is the state key that holds
    the conversation.

    ``guard_graph(builder, guard).compile(checkpointer=...)`` returns a compiled graph that
    injects each agent's identity, inspects every message an agent emits before any other
    node sees it, applies the guard's actions (``halt`` through ``interrupt()``), keeps the
    guard's state in its checkpoints, and streams only inspected content.

    The conversation may be LangChain messages, OpenAI-format dicts, ``(role, text)`` pairs or
    plain strings (``list[str]``, which nodes join into a prompt); what kinguard writes there
    keeps the channel's form. A plain string names no role or sender, so its sender is the
    node that wrote it: every string a guarded node writes is read as its agent's words (pass
    ``agents`` so that a node that is no agent, e.g. one appending a tool's output, is not
    guarded as one). Such a node is given its identity as the first string of its input,
    which it joins with the rest. In a handoff to the
    parent graph (``Command(graph=Command.PARENT)``, returned by the node or by a tool inside
    it) every new message is read as the agent's words, a tool's message and a ``Send``'s user
    message included: a handoff tool can carry them in either. A tool's message that is
    blocked or rejected is replaced by a notice answering the same call, so the call that
    stays in the history is answered. While it waits for a decision a stand-in answers the
    call (``[kinguard withheld this tool result for human review]``), which the decision's
    outcome replaces in place; a halt never decided (new input instead, or ``update_state`` as
    the halt node) leaves it. This needs ``add_messages`` without a ``format`` as the messages
    reducer (it replaces a message by id): with another reducer the call is unanswered until
    the decision. ``stream_mode="messages"`` shows the stand-in, then the outcome, which
    takes its place under a new id; only when messages came after the stand-in meanwhile
    (``update_state``) does the outcome keep the stand-in's id to stay next to its call, and
    that stream then skips it (``updates`` and ``values`` show it).

    A halt waits at the agent's ``<node>.kinguard_halt`` node. ``update_state`` while it waits
    (as the agent, or at a static breakpoint) keeps it waiting: the halt node asks again, or
    takes the ``Command(resume=...)`` the run goes on with. ``update_state`` *as the halt
    node* stands in for it: the held message is not delivered, as on a rejection.

    Messages are inspected when a node returns. An agent node that runs its own tools inside
    it (``create_react_agent``, or ``create_agent`` without :class:`KinGuardMiddleware`) has
    run the calls of a message kinguard then blocks or halts: the message, the calls'
    arguments and their results are kept out of the state and the streams, but the calls'
    side effects have happened. Guard such an agent with ``KinGuardMiddleware`` (it reads each
    model reply before the agent's tools run), or give its tools a node of their own.
    """
    return GuardedStateGraph(builder, guard, agents=agents, messages_key=messages_key)


def _copy_builder(builder: StateGraph[Any, Any, Any, Any]) -> StateGraph[Any, Any, Any, Any]:
    new = copy.copy(builder)
    new.nodes = dict(builder.nodes)
    new.edges = set(builder.edges)
    new.branches = defaultdict(dict, {k: dict(v) for k, v in builder.branches.items()})
    new.schemas = dict(builder.schemas)
    new.channels = dict(builder.channels)
    new.managed = dict(builder.managed)
    new.waiting_edges = set(builder.waiting_edges)
    new.compiled = False
    return new


def _guarded_builder(
    builder: StateGraph[Any, Any, Any, Any], core: GraphCore
) -> StateGraph[Any, Any, Any, Any]:
    if core.messages_key not in builder.channels:
        raise ValueError(
            f"guard_graph(): the state has no {core.messages_key!r} key; pass "
            f"messages_key=<the key holding the conversation> (state keys: "
            f"{', '.join(sorted(builder.channels)) or 'none'})"
        )
    if GUARD_KEY in builder.channels:
        raise ValueError(
            f"guard_graph(): the state already has a {GUARD_KEY!r} key, which kinguard uses for "
            "its own state; rename it, or the graph was guarded twice"
        )
    if core.explicit_agents is not None:
        unknown = sorted(set(core.explicit_agents) - set(builder.nodes))
        if unknown:
            raise ValueError(
                f"guard_graph(): agents names nodes that are not in the graph: {unknown}; "
                f"nodes: {sorted(builder.nodes)}"
            )
        nodes = [n for n in builder.nodes if n in core.explicit_agents]
    else:
        nodes = [n for n, spec in builder.nodes.items() if not spec.is_error_handler]

    channel = builder.channels[core.messages_key]
    core.replaces_by_id = _replaces_by_id(channel)
    core.empty_form = _declared_form(getattr(channel, "typ", None))
    core.appends = getattr(channel, "operator", None) is operator.add
    core.overwrites = isinstance(channel, LastValue)
    guarded = _copy_builder(builder)
    # The private channel, registered whether or not halt nodes (which read it) are added.
    guarded._add_schema(GuardChannel)
    # A node's error handler answers in its name (a fallback model's reply): inspected as that
    # agent's. It has no halt node (it routes by Command): a halt there fails closed. The
    # builder-wide handler (set_node_defaults) becomes a node only at compile(), shared by
    # every node: each agent gets a handler node of its own running it, as add_node does.
    default = getattr(getattr(builder, "_node_defaults", None), "error_handler", None)
    for node in nodes:
        spec = guarded.nodes[node]
        if default is not None and getattr(spec, "error_handler_node", "") is None:
            fallback = _unique(f"__error_handler__{node}", guarded.nodes)
            guarded.nodes[fallback] = StateNodeSpec(
                coerce_to_runnable(default, name=fallback, trace=False),
                metadata=None,
                input_schema=spec.input_schema,
                retry_policy=None,
                cache_policy=None,
                is_error_handler=True,
            )
            guarded.nodes[node] = dataclasses.replace(spec, error_handler_node=fallback)
        handler = getattr(guarded.nodes[node], "error_handler_node", None)
        if handler in guarded.nodes:
            core.error_handlers[handler] = node
            guarded.nodes[handler] = dataclasses.replace(
                guarded.nodes[handler],
                runnable=GuardedNode(
                    handler, cast(Runnable[Any, Any], guarded.nodes[handler].runnable), core
                ),
            )
            core.gated_nodes.add(handler)
    for node in nodes:
        spec = guarded.nodes[node]
        guarded.nodes[node] = dataclasses.replace(
            spec, runnable=GuardedNode(node, cast(Runnable[Any, Any], spec.runnable), core)
        )
        core.gated_nodes.add(node)
        if not core.can_halt:
            # A policy without a halt rule never halts: the user's edges and branches stay as
            # they are, with no halt node, router or gated path (and none of their channels,
            # which LangGraph copies on every conditional-edge read) on the normal path.
            continue
        halt = _unique(f"{node}.kinguard_halt", guarded.nodes)
        core.halt_nodes[node] = halt
        # The user's state as input, not kinguard's channel (see ``_read_channel``).
        guarded.add_node(halt, HaltNode(node, core))

        targets = sorted(end for start, end in guarded.edges if start == node)
        if any(node in starts for starts, _ in guarded.waiting_edges):
            targets.append(_await_decision(guarded, node))
        guarded.edges = {(s, e) for s, e in guarded.edges if s != node}
        for end in targets:
            guarded.add_edge(halt, end)

        own = guarded.branches.get(node, {})
        input_schema = spec.input_schema
        # Without static edges the first user branch also routes a halt: no extra branch (and
        # no extra state read) on the normal path.
        router_needed = bool(targets) or not own
        for position, (name, branch) in enumerate(list(own.items())):
            # The user's branch from the halt node sees the state once the human has ruled.
            guarded.branches[halt][name] = BranchSpec(
                path=branch.path, ends=branch.ends, input_schema=branch.input_schema or input_schema
            )
            routes_halt = not router_needed and position == 0
            ends = branch.ends
            if routes_halt and ends is not None:
                ends = {**ends, halt: halt}
            own[name] = BranchSpec(
                path=GatedPath(branch.path, core, node, halt if routes_halt else None),
                ends=ends,
                input_schema=branch.input_schema,
            )
        if router_needed:
            router_name = _unique(_ROUTER_BRANCH, own)
            router_ends: dict[Any, str] = {t: t for t in targets}
            router_ends[halt] = halt
            guarded.branches[node][router_name] = BranchSpec(
                path=Router(node, targets, halt, core), ends=router_ends, input_schema=GuardChannel
            )
    return guarded


def _await_decision(guarded: StateGraph[Any, Any, Any, Any], node: str) -> str:
    """Make the fan-in edges out of ``node`` wait for the human's decision on a halt.

    A fan-in (``add_edge([a, b], join)``) fires once each start has run, and a halting agent
    has run: the join would go ahead without the withheld message, in the same step as the
    question to the human, and never see the approved one. So ``node`` is replaced among the
    starts by a pass-through node that its router reaches directly on the normal path (one
    step later) and its halt node reaches once the human has ruled.
    """
    done = _unique(f"{node}.kinguard_done", guarded.nodes)
    guarded.add_node(done, Passthrough())
    guarded.waiting_edges = {
        (tuple(done if start == node else start for start in starts), end)
        for starts, end in guarded.waiting_edges
    }
    return done


_UNIONS = (Union, types.UnionType)


def _replaces_by_id(channel: Any) -> bool:
    """The channel's reducer is ``add_messages`` (a message with an id it holds replaces that
    one). Another reducer may append instead, so nothing relies on it there; nor does a
    ``format`` of ``add_messages``, whose round trip through the provider's format drops ids."""
    operator = getattr(channel, "operator", None)
    if isinstance(operator, partial):  # ``add_messages(format=...)``
        if operator.keywords.get("format") is not None:
            return False
        operator = operator.func
    return operator is add_messages or (
        getattr(operator, "__module__", None) == add_messages.__module__
        and getattr(operator, "__name__", None) == "add_messages"
    )


def _declared_form(declared: Any) -> type | None:
    """What a messages channel's type says its items are: LangChain messages (``None``),
    dicts, pairs or strings. ``list[AnyMessage]``, ``list[BaseMessage]`` or a union of message
    classes are messages; ``list[dict]``, a ``TypedDict`` or a ``Mapping`` are dicts;
    ``list[tuple]`` are pairs; ``list[str]`` are strings (a node joins them into its prompt).
    Anything else (``list``, ``Any``) says nothing: a dict then, which a chat model and an SDK
    both take."""
    items = get_args(_unannotated(declared))
    if len(items) != 1:
        return dict
    item = _unannotated(items[0])
    members = [_unannotated(m) for m in get_args(item)] if get_origin(item) in _UNIONS else [item]
    if all(isinstance(m, type) and issubclass(m, BaseMessage) for m in members):
        return None
    if item is str:
        return str
    origin = get_origin(item) or item
    if origin is tuple:
        return tuple
    return dict


def _unannotated(declared: Any) -> Any:
    while get_origin(declared) is Annotated:
        declared = get_args(declared)[0]
    return declared


def _unique(name: str, taken: Mapping[str, Any]) -> str:
    candidate = name
    n = 1
    while candidate in taken:
        n += 1
        candidate = f"{name}{n}"
    return candidate
