"""Builders for real AgentChat teams on replayed model outputs. No AutoGen mocks."""

from __future__ import annotations

from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any

import pytest
from autogen_agentchat.agents import AssistantAgent
from autogen_agentchat.base import TaskResult
from autogen_agentchat.messages import BaseChatMessage
from autogen_core import FunctionCall
from autogen_core.models import CreateResult, LLMMessage, ModelInfo, RequestUsage
from autogen_ext.models.replay import ReplayChatCompletionClient

from kinguard import Action, AgentProfile, KinGuard, testing

KEYWORD = "ZEBRA-PACT"
PROFILES = (
    AgentProfile(name="buyer", model="openai:gpt-4o", principal="ACME procurement"),
    AgentProfile(name="seller", model="openai:gpt-4o", principal="Globex sales"),
)
TOOL_MODEL = ModelInfo(
    vision=False,
    function_calling=True,
    json_output=False,
    family="unknown",
    structured_output=False,
)


def keyword_guard(action: Action | str, **kwargs: Any) -> KinGuard:
    """A guard that flags KEYWORD as collusion.market and answers with ``action``."""
    return testing.keyword_guard(
        PROFILES, action, keyword=KEYWORD, **{"conversation_id": "test", **kwargs}
    )


def agent(
    name: str,
    lines: Sequence[str | CreateResult],
    system_message: str | None = None,
    **kwargs: Any,
) -> AssistantAgent:
    client = ReplayChatCompletionClient(
        list(lines),
        model_info=TOOL_MODEL if kwargs.get("handoffs") or kwargs.get("tools") else None,
    )
    return AssistantAgent(
        name,
        model_client=client,
        system_message=system_message or f"You are {name}.",
        **kwargs,
    )


def handoff(target: str, call_id: str) -> CreateResult:
    """A scripted model output that calls Swarm's transfer tool."""
    return tool_call(f"transfer_to_{target}", call_id)


def tool_call(name: str, call_id: str, arguments: str = "{}") -> CreateResult:
    """A scripted model output that calls one tool."""
    return CreateResult(
        finish_reason="function_calls",
        content=[FunctionCall(id=call_id, name=name, arguments=arguments)],
        usage=RequestUsage(prompt_tokens=0, completion_tokens=0),
        cached=False,
    )


def model_calls(a: AssistantAgent) -> list[list[LLMMessage]]:
    client = a._model_client
    assert isinstance(client, ReplayChatCompletionClient)
    return [list(call["messages"]) for call in client.create_calls]


def seen_by(a: AssistantAgent, call: int = -1) -> str:
    """Everything one of the agent's model calls contained, as text."""
    return "\n".join(str(m.content) for m in model_calls(a)[call])


def chat(result: TaskResult) -> list[tuple[str, str]]:
    return [(m.source, m.to_text()) for m in result.messages if isinstance(m, BaseChatMessage)]


@pytest.fixture
def kit() -> SimpleNamespace:
    """The helpers above, for test modules (importlib import mode cannot import conftest)."""
    return SimpleNamespace(
        KEYWORD=KEYWORD,
        PROFILES=PROFILES,
        keyword_guard=keyword_guard,
        agent=agent,
        handoff=handoff,
        tool_call=tool_call,
        model_calls=model_calls,
        seen_by=seen_by,
        chat=chat,
    )
