"""Scripted chat models and small graphs for the kinguard-langgraph tests (real LangGraph)."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
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
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from pydantic import Field
from typing_extensions import TypedDict


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
    calls: int = 0
    lock: Any = Field(default_factory=threading.Lock, exclude=True)

    @property
    def _llm_type(self) -> str:
        return "scripted"

    def _next(self, messages: list[BaseMessage]) -> str:
        with self.lock:
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
        for start in range(0, len(text), size):
            chunk = ChatGenerationChunk(message=AIMessageChunk(content=text[start : start + size]))
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


def start(task: str = "Begin.") -> dict[str, Any]:
    return {"messages": [HumanMessage(task)], "turn": 0}


def delivered(messages: Sequence[BaseMessage]) -> list[tuple[str, str]]:
    """(sender, text) of what the agents said, notices attributed to the blocked sender."""
    out: list[tuple[str, str]] = []
    for m in messages:
        if not isinstance(m, AIMessage):
            continue
        meta = m.response_metadata.get("kinguard") if m.response_metadata else None
        sender = meta["sender"] if m.name == "kinguard" and meta else (m.name or "?")
        out.append((sender, m.text if isinstance(m.text, str) else str(m.content)))
    return out
