"""Scripted scenarios on real LangGraph graphs: the demo, the conformance suite, the benchmark.

Each agent is an ordinary hand-written node that calls its own chat model with its own system
prompt and the shared history; a conditional edge picks the next speaker from the script. The
models are :class:`ScriptedChatModel` replays, or one real chat model for every agent.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Annotated, Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    HumanMessage,
    SystemMessage,
)
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.types import Command
from pydantic import Field
from typing_extensions import TypedDict

from kinguard import Action, HumanDecision, KinGuard, Verdict
from kinguard.scenarios import RunResult, Scenario
from kinguard_langgraph._graph import guard_graph
from kinguard_langgraph._messages import message_text

__all__ = [
    "ChatState",
    "ScriptedChatModel",
    "agent_node",
    "delivered",
    "render",
    "run_scenario",
    "script_graph",
    "start",
    "streamed",
]

Decider = Callable[[Verdict], HumanDecision]


def render(messages: Sequence[BaseMessage]) -> str:
    return "\n".join(
        f"{m.type}: {m.text if isinstance(m.text, str) else m.content}" for m in messages
    )


class ScriptedChatModel(BaseChatModel):
    """Replays scripted replies in order and records every input it was given.

    Streams each reply in ``chunk_size``-character chunks, so evidence can straddle chunk
    boundaries.
    """

    replies: list[str]
    chunk_size: int = 4
    inputs: list[list[BaseMessage]] = Field(default_factory=list)
    record_inputs: bool = True
    """Keep every input in ``inputs`` (for tests); benchmarks turn it off, since a list that
    grows over many runs makes the collector's full passes slower for every variant alike."""
    calls: int = 0
    lock: Any = Field(default_factory=threading.Lock, exclude=True)

    @property
    def _llm_type(self) -> str:
        return "scripted"

    def _next(self, messages: list[BaseMessage]) -> str:
        with self.lock:
            if self.record_inputs:
                self.inputs.append(list(messages))
            reply = self.replies[self.calls % len(self.replies)]
            self.calls += 1
        return reply

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return ChatResult(
            generations=[ChatGeneration(message=AIMessage(content=self._next(messages)))]
        )

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        text = self._next(messages)
        size = max(1, self.chunk_size)
        for begin in range(0, len(text), size):
            chunk = ChatGenerationChunk(message=AIMessageChunk(content=text[begin : begin + size]))
            if run_manager:
                run_manager.on_llm_new_token(chunk.text, chunk=chunk)
            yield chunk

    def rendered_inputs(self) -> list[str]:
        return [render(m) for m in self.inputs]


class ChatState(TypedDict):
    messages: Annotated[list[BaseMessage], add_messages]
    turn: int


def agent_node(
    name: str, model: BaseChatModel, system_prompt: str, *, use_async: bool = False
) -> Any:
    """A typical hand-written agent node: own system prompt, then the shared history."""

    def node(state: ChatState) -> dict[str, Any]:
        reply = model.invoke([SystemMessage(system_prompt), *state["messages"]])
        return {"messages": [reply.model_copy(update={"name": name})], "turn": state["turn"] + 1}

    async def anode(state: ChatState) -> dict[str, Any]:
        reply = await model.ainvoke([SystemMessage(system_prompt), *state["messages"]])
        return {"messages": [reply.model_copy(update={"name": name})], "turn": state["turn"] + 1}

    return anode if use_async else node


def script_graph(
    order: Sequence[str],
    models: dict[str, BaseChatModel],
    prompts: dict[str, str],
    *,
    use_async: bool = False,
) -> StateGraph[Any, Any, Any, Any]:
    """Agents speak in ``order``; a conditional edge picks the next speaker by turn count."""
    builder: StateGraph[Any, Any, Any, Any] = StateGraph(ChatState)
    for name, model in models.items():
        builder.add_node(
            name,
            agent_node(name, model, prompts.get(name, f"You are {name}."), use_async=use_async),
        )

    def route(state: ChatState) -> str:
        turn = state["turn"]
        return order[turn] if turn < len(order) else END

    destinations = [*models, END]
    builder.add_conditional_edges(START, route, destinations)
    for name in models:
        builder.add_conditional_edges(name, route, destinations)
    return builder


def chain_graph(*nodes: tuple[str, Any]) -> StateGraph[Any, Any, Any, Any]:
    """``(name, node)`` pairs run one after the other, from START to END."""
    builder: StateGraph[Any, Any, Any, Any] = StateGraph(ChatState)
    previous = START
    for name, node in nodes:
        builder.add_node(name, node)
        builder.add_edge(previous, name)
        previous = name
    builder.add_edge(previous, END)
    return builder


def handover_graph(
    buyer: Any, seller: Any, state: type[Any] = ChatState
) -> StateGraph[Any, Any, Any, Any]:
    """``buyer`` hands over to ``seller`` itself (``Command(goto=...)`` or ``Send``), which ends."""
    builder: StateGraph[Any, Any, Any, Any] = StateGraph(state)
    builder.add_node("buyer", buyer, destinations=("seller",))
    builder.add_node("seller", seller)
    builder.add_edge(START, "buyer")
    builder.add_edge("seller", END)
    return builder


def start(task: str = "Begin.") -> dict[str, Any]:
    return {"messages": [HumanMessage(task)], "turn": 0}


def delivered(messages: Sequence[BaseMessage]) -> list[tuple[str, str]]:
    """(sender, text) of what the agents said, notices attributed to the blocked sender."""
    return [
        (_sender(m, m.name or "?"), message_text(m)) for m in messages if isinstance(m, AIMessage)
    ]


def streamed(parts: Iterable[Any]) -> list[tuple[str, str]]:
    """(sender, text) per message of a ``stream_mode="messages"`` stream, tokens joined."""
    texts: dict[str, list[str]] = {}
    senders: dict[str, str] = {}
    for message, meta in parts:
        if not isinstance(message, (AIMessage, AIMessageChunk)) or message.id is None:
            continue
        if message.id not in texts:
            texts[message.id] = []
            senders[message.id] = _sender(message, str(meta.get("langgraph_node", "?")))
        texts[message.id].append(message_text(message))
    return [(senders[key], "".join(pieces)) for key, pieces in texts.items()]


def _sender(message: BaseMessage, default: str) -> str:
    meta = message.response_metadata.get("kinguard") if message.response_metadata else None
    return str(meta["sender"]) if message.name == "kinguard" and meta else default


def _models(scenario: Scenario, model: str | None) -> dict[str, BaseChatModel]:
    if model is None:
        return {
            agent.name: ScriptedChatModel(replies=scenario.lines_of(agent.name) or ["(nothing)"])
            for agent in scenario.agents
        }
    try:
        from langchain.chat_models import init_chat_model

        real = init_chat_model(model)
    except Exception as exc:
        raise ValueError(
            f"--model {model!r}: LangChain could not build this chat model ({exc}); install its "
            "provider package (e.g. langchain-openai) and set its API key"
        ) from exc
    return dict.fromkeys((agent.name for agent in scenario.agents), real)


def run_scenario(
    scenario: Scenario,
    guard: KinGuard | None,
    *,
    decide: Decider | None = None,
    model: str | None = None,
) -> RunResult:
    """Play a scenario to its end on a LangGraph graph; ``kinguard demo`` runs this.

    With ``model`` every agent is that real chat model (``provider:name``) and speaks as many
    turns as the script has, in the script's order. At each halt ``decide`` (default: reject)
    rules on the withheld message and the graph resumes with ``Command(resume=...)``.
    """
    models = _models(scenario, model)
    builder = script_graph(
        [t.sender for t in scenario.turns], models, dict(scenario.system_prompts)
    )
    graph = (builder if guard is None else guard_graph(builder, guard)).compile(
        checkpointer=InMemorySaver()
    )
    config: Any = {"configurable": {"thread_id": uuid.uuid4().hex}}
    halts: list[Verdict] = []

    def remember_halt(verdict: Verdict) -> None:
        if verdict.action is Action.HALT:
            halts.append(verdict)

    if guard is not None:
        guard.add_observer(remember_halt)
    try:
        output = graph.invoke(start(scenario.task), config)
        while "__interrupt__" in output and halts:
            verdict = halts.pop(0)
            decision = decide(verdict) if decide is not None else HumanDecision(type="reject")
            output = graph.invoke(Command(resume=decision.model_dump(exclude_none=True)), config)
    finally:
        if guard is not None:
            guard.remove_observer(remember_halt)
    values = graph.get_state(config).values
    inputs = {
        name: m.rendered_inputs() for name, m in models.items() if isinstance(m, ScriptedChatModel)
    }
    return RunResult(
        delivered=delivered(values.get("messages", [])[1:]),
        model_inputs=inputs,
        halted="__interrupt__" in output,
    )
