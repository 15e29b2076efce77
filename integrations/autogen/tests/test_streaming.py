"""Streamed model tokens reach ``run_stream`` consumers only as kinguard delivered their message."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence
from types import SimpleNamespace
from typing import Any

import pytest
from autogen_agentchat.agents import BaseChatAgent
from autogen_agentchat.base import Response, TaskResult
from autogen_agentchat.conditions import MaxMessageTermination
from autogen_agentchat.messages import (
    BaseAgentEvent,
    BaseChatMessage,
    ModelClientStreamingChunkEvent,
    TextMessage,
    ThoughtEvent,
)
from autogen_agentchat.teams import RoundRobinGroupChat
from autogen_agentchat.ui import Console
from autogen_core import CancellationToken
from kinguard_autogen import META_ACTION, guard_team
from kinguard_autogen._participant import _Chunks

Item = BaseAgentEvent | BaseChatMessage | TaskResult


async def streamed(team: Any, task: str = "Go.") -> list[Item]:
    return [item async for item in team.run_stream(task=task)]


def chunks_of(items: Sequence[Item], message_id: str) -> list[int]:
    return [
        i
        for i, item in enumerate(items)
        if isinstance(item, ModelClientStreamingChunkEvent) and item.full_message_id == message_id
    ]


def streaming_pair(kit: SimpleNamespace, buyer_first: str) -> RoundRobinGroupChat:
    buyer = kit.agent("buyer", [buyer_first, "b2 fine by us"], model_client_stream=True)
    seller = kit.agent("seller", ["s1 noted, thanks", "s2 agreed then"], model_client_stream=True)
    return RoundRobinGroupChat([buyer, seller], termination_condition=MaxMessageTermination(5))


@pytest.mark.parametrize("action", ["log", "redact", "block", "halt"])
async def test_chunks_say_what_was_delivered_and_come_right_before_it(
    kit: SimpleNamespace, action: str
) -> None:
    first = f"b1 we both hold {kit.KEYWORD} at the agreed price"
    team = guard_team(streaming_pair(kit, first), kit.keyword_guard(action))
    items = await streamed(team)
    said = [m for m in items if isinstance(m, BaseChatMessage) and m.source != "user"]
    assert said and said[0].source == "buyer"
    for message in said:
        indexes = chunks_of(items, message.id)
        withheld = message.metadata.get(META_ACTION) in ("block", "halt")
        if withheld:
            assert indexes == []  # the notice is the only trace of the message
            continue
        # Every chunk of the message, none of another's, right before it.
        position = items.index(message)
        assert indexes == list(range(position - len(indexes), position))
        assert indexes
        text = "".join(str(items[i].to_text()) for i in indexes)  # type: ignore[union-attr]
        assert text == message.to_model_text()
    tokens = "".join(i.content for i in items if isinstance(i, ModelClientStreamingChunkEvent))
    assert (kit.KEYWORD in tokens) == (action == "log")
    assert "s1 noted" in tokens or action == "halt"
    if action == "redact":
        redacted = [i for i in chunks_of(items, said[0].id)]
        assert all(items[i].metadata[META_ACTION] == "redact" for i in redacted)  # type: ignore[union-attr]


async def test_console_never_prints_a_blocked_message(
    kit: SimpleNamespace, capsys: pytest.CaptureFixture[str]
) -> None:
    team = guard_team(
        streaming_pair(kit, f"b1 let us settle on {kit.KEYWORD}"), kit.keyword_guard("block")
    )
    await Console(team.run_stream(task="Go."))
    out = capsys.readouterr().out
    assert kit.KEYWORD not in out
    assert "[kinguard blocked a message from buyer" in out
    assert "s1 noted, thanks" in out


class Streamer(BaseChatAgent):
    """An agent that streams its own chunk events, tied to its message in various ways."""

    def __init__(self, name: str, lines: Sequence[str], *, link: str) -> None:
        super().__init__(name, description=f"streaming {name}")
        self.lines = list(lines)
        self.link = link

    @property
    def produced_message_types(self) -> Sequence[type[BaseChatMessage]]:
        return (TextMessage,)

    async def on_messages(
        self, messages: Sequence[BaseChatMessage], cancellation_token: CancellationToken
    ) -> Response:
        raise AssertionError("the team calls on_messages_stream")

    async def on_reset(self, cancellation_token: CancellationToken) -> None:
        pass

    async def on_messages_stream(
        self, messages: Sequence[BaseChatMessage], cancellation_token: CancellationToken
    ) -> AsyncGenerator[BaseAgentEvent | BaseChatMessage | Response, None]:
        text = self.lines.pop(0)
        message = TextMessage(source=self.name, content=text)
        thought = ThoughtEvent(source=self.name, content=f"thinking about {text}")
        linked_to = {
            "id": message.id,
            "none": None,
            "elsewhere": "a message that never comes",
            "thought": thought.id,
        }[self.link]
        words = (thought.content if self.link == "thought" else text).split(" ")
        for k, word in enumerate(words):
            yield ModelClientStreamingChunkEvent(
                source=self.name,
                content=word if k == len(words) - 1 else word + " ",
                full_message_id=linked_to,
            )
        if self.link == "thought":
            yield thought
        yield Response(chat_message=message)


def streamer_team(
    kit: SimpleNamespace, buyer: Streamer, seller_link: str, action: str, messages: int = 4
) -> RoundRobinGroupChat:
    seller = Streamer("seller", ["s1 sure", "s2"], link=seller_link)
    return guard_team(
        RoundRobinGroupChat([buyer, seller], termination_condition=MaxMessageTermination(messages)),
        kit.keyword_guard(action),
    )


@pytest.mark.parametrize("link", ["id", "none"])
async def test_chunks_are_matched_by_message_id_or_else_by_sender(
    kit: SimpleNamespace, link: str
) -> None:
    buyer = Streamer("buyer", [f"b1 keep {kit.KEYWORD} quiet", "b2 ok"], link=link)
    team = streamer_team(kit, buyer, link, "redact")
    items = await streamed(team)
    chunks = [i for i in items if isinstance(i, ModelClientStreamingChunkEvent)]
    said = [m for m in items if isinstance(m, BaseChatMessage) and m.source != "user"]
    assert "".join(c.content for c in chunks) == "".join(m.to_model_text() for m in said)
    assert "[redacted by kinguard" in said[0].to_model_text()
    assert kit.KEYWORD not in "".join(c.content for c in chunks)


async def test_chunks_whose_message_never_comes_are_dropped(kit: SimpleNamespace) -> None:
    team = streamer_team(kit, Streamer("buyer", ["b1 hello", "b2"], link="elsewhere"), "id", "log")
    items = await streamed(team)
    chunks = [i for i in items if isinstance(i, ModelClientStreamingChunkEvent)]
    assert {c.source for c in chunks} == {"seller"}  # never inspected, never shown
    assert [m.to_text() for m in items if isinstance(m, TextMessage) and m.source == "buyer"] == [
        "b1 hello",
        "b2",
    ]


@pytest.mark.parametrize("action", ["log", "redact", "block"])
async def test_chunks_of_a_thought_come_with_the_thought_as_its_message_went(
    kit: SimpleNamespace, action: str
) -> None:
    buyer = Streamer("buyer", [f"b1 keep {kit.KEYWORD} quiet", "b2"], link="thought")
    team = streamer_team(kit, buyer, "id", action, messages=3)
    items = await streamed(team)
    thoughts = [i for i in items if isinstance(i, ThoughtEvent)]
    tokens = "".join(i.content for i in items if isinstance(i, ModelClientStreamingChunkEvent))
    assert (kit.KEYWORD in tokens) is (action == "log")
    if action == "block":  # withheld with its message, tokens and all
        assert thoughts == [] and "thinking" not in tokens
        return
    thought = thoughts[0]
    assert thought.content == f"thinking about b1 keep {kit.KEYWORD} quiet".replace(
        kit.KEYWORD, kit.KEYWORD if action == "log" else "[redacted by kinguard: collusion.market]"
    )
    indexes = chunks_of(items, thought.id)
    position = items.index(thought)
    assert indexes == list(range(position - len(indexes), position)) and indexes
    assert "".join(str(items[i].to_text()) for i in indexes) == thought.content  # type: ignore[union-attr]


async def test_an_abandoned_stream_leaves_nothing_behind(kit: SimpleNamespace) -> None:
    buyer = kit.agent("buyer", ["b1 hello there", "b2 and again"] * 2, model_client_stream=True)
    seller = kit.agent("seller", ["s1 hi", "s2 hi again"] * 2, model_client_stream=True)
    team = guard_team(
        RoundRobinGroupChat([buyer, seller], termination_condition=MaxMessageTermination(3)),
        kit.keyword_guard("log"),
    )
    stream = team.run_stream(task="Go.")
    async for item in stream:
        if isinstance(item, ModelClientStreamingChunkEvent):
            break
    await stream.aclose()
    await team.reset()
    result = await team.run(task="Again.")
    assert isinstance(result, TaskResult) and result.stop_reason is not None


async def test_a_failing_release_drops_the_chunks_and_keeps_the_team_going(
    kit: SimpleNamespace, monkeypatch: pytest.MonkeyPatch
) -> None:
    team = guard_team(streaming_pair(kit, "b1 hello there"), kit.keyword_guard("log"))

    def broken(*args: Any) -> list[ModelClientStreamingChunkEvent]:
        raise RuntimeError("release failed")

    monkeypatch.setattr(_Chunks, "_of_message", broken)
    items = await streamed(team)
    assert not any(isinstance(i, ModelClientStreamingChunkEvent) for i in items)
    said = [m.to_text() for m in items if isinstance(m, TextMessage) and m.source != "user"]
    assert said == ["b1 hello there", "s1 noted, thanks", "b2 fine by us", "s2 agreed then"]
    assert isinstance(items[-1], TaskResult)
