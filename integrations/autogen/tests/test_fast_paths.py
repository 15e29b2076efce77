"""The cheap paths: what kinguard lets through untouched costs no copies, hooks or checks."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from autogen_agentchat.base import TerminationCondition
from autogen_agentchat.conditions import MaxMessageTermination
from autogen_agentchat.messages import BaseAgentEvent, BaseChatMessage, StopMessage, TextMessage
from autogen_agentchat.teams import RoundRobinGroupChat
from autogen_agentchat.teams._group_chat._events import GroupChatAgentResponse, GroupChatMessage
from autogen_core import MessageContext
from kinguard_autogen import META_ACTION, KinGuardTermination, KinGuardVerdictEvent, guard_team
from kinguard_autogen._handler import _CACHE_SIZE, KinGuardInterventionHandler, TeamGuard
from kinguard_autogen._termination import HaltOrTermination

from kinguard import Action
from kinguard.testing import capture_verdicts


def record(handler: KinGuardInterventionHandler) -> list[tuple[Any, Any]]:
    """Each agent message publish (output and group topic) as it came in and as kinguard let it go.

    (Wrapping kinguard's handler, not a second handler after it: the runtime hands every handler
    the message as published and keeps the last one's answer.)
    """
    seen: list[tuple[Any, Any]] = []
    on_publish = handler.on_publish

    async def recording(message: Any, *, message_context: MessageContext) -> Any:
        answer = await on_publish(message, message_context=message_context)
        if isinstance(message, GroupChatMessage | GroupChatAgentResponse):
            seen.append((message, answer))
        return answer

    handler.on_publish = recording  # type: ignore[method-assign]
    return seen


def chat_of(publish: Any) -> BaseChatMessage:
    if isinstance(publish, GroupChatMessage):
        assert isinstance(publish.message, BaseChatMessage)
        return publish.message
    chat: BaseChatMessage = publish.response.chat_message
    return chat


def team_of(kit: SimpleNamespace, n: int = 4, *, flagged: bool = True) -> RoundRobinGroupChat:
    return RoundRobinGroupChat(
        [
            kit.agent("buyer", ["b1", f"b2 {kit.KEYWORD}" if flagged else "b2", "b3"]),
            kit.agent("seller", ["s1", "s2", "s3"]),
        ],
        termination_condition=MaxMessageTermination(n + 1),
    )


def handler_of(team: Any) -> KinGuardInterventionHandler:
    handlers = team._runtime._intervention_handlers
    return next(h for h in handlers if isinstance(h, KinGuardInterventionHandler))


def team_guard_of(team: Any) -> TeamGuard:
    return handler_of(team).teams[team._team_id]


async def test_clean_messages_pass_through_as_the_very_same_objects(kit: SimpleNamespace) -> None:
    team = guard_team(team_of(kit), kit.keyword_guard("redact"))
    seen = record(handler_of(team))
    result = await team.run(task="Negotiate.")

    assert len(seen) == 8  # 4 messages, each on two topics
    copied = [(before, after) for before, after in seen if after is not before]
    # Only the flagged message was rewritten (on both topics); every other publish went on as
    # the object the agent published, its chat message neither copied nor stamped.
    assert len(copied) == 2
    for before, after in copied:
        assert kit.KEYWORD in chat_of(before).to_text()
        assert chat_of(after).metadata[META_ACTION] == "redact"
    for before, after in seen:
        if after is before:
            assert kit.KEYWORD not in chat_of(before).to_text()
            assert META_ACTION not in chat_of(before).metadata
    said = [m for m in result.messages if m.source != "user" and isinstance(m, BaseChatMessage)]
    assert [META_ACTION in m.metadata for m in said] == [False, False, True, False]
    # Both sights of every message were consumed: nothing is left behind per message.
    assert team_guard_of(team)._verdicts == {}


@pytest.mark.parametrize(
    ("flagged", "events", "armed"), [(False, "flagged", 0), (True, "flagged", 1), (False, "all", 4)]
)
async def test_the_event_hook_is_armed_only_while_an_event_waits(
    kit: SimpleNamespace, flagged: bool, events: Any, armed: int
) -> None:
    team = guard_team(team_of(kit, flagged=flagged), kit.keyword_guard("redact"), events=events)
    tg = team_guard_of(team)
    queue = team._output_message_queue
    assert "put" not in vars(queue)  # nothing pending: the queue's own put
    gate = tg.gate
    arm = gate._arm
    calls: list[bool] = []

    def counting_arm() -> None:
        calls.append("put" in vars(queue))
        arm()

    gate._arm = counting_arm  # type: ignore[method-assign]
    items = [item async for item in team.run_stream(task="Negotiate.")]
    assert len(calls) == armed
    assert not any(calls)  # each event found the hook disarmed by the previous one's message
    streamed = [i for i, item in enumerate(items) if isinstance(item, KinGuardVerdictEvent)]
    assert len(streamed) == armed
    for index in streamed:  # every event right after its own message
        event = items[index]
        assert isinstance(event, KinGuardVerdictEvent)
        message = items[index - 1]
        assert isinstance(message, BaseChatMessage)
        assert event.verdict.sender == message.source
    assert "put" not in vars(queue)  # disarmed again once no event waits
    assert gate.pending_events == {}


async def test_the_verdict_cache_is_bounded_when_second_sights_never_come(
    kit: SimpleNamespace,
) -> None:
    team = guard_team(team_of(kit), kit.keyword_guard("log"))
    tg = team_guard_of(team)
    messages = [TextMessage(source="buyer", content=f"m{i}") for i in range(_CACHE_SIZE + 5)]
    with capture_verdicts(tg.guard) as verdicts:
        for message in messages:
            verdict, delivered = await tg.inspect(message)
            assert delivered is message and verdict.action is Action.ALLOW
    assert len(verdicts) == len(messages)
    assert len(tg._verdicts) == _CACHE_SIZE
    assert messages[4].id not in tg._verdicts  # the oldest went first
    assert next(iter(tg._verdicts)) == messages[5].id
    assert tg.known(messages[-1].id) is not None and tg.known(messages[-1].id) is None


class CountingHalt(KinGuardTermination):
    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    async def __call__(self, messages: Any) -> StopMessage | None:  # the same check, counted
        self.calls += 1
        return await super().__call__(messages)


def stamped(action: str) -> TextMessage:
    return TextMessage(source="bo", content="[withheld]", metadata={META_ACTION: action})


async def test_the_halt_check_runs_only_on_stamped_messages() -> None:
    halt = CountingHalt()
    condition = HaltOrTermination(halt, MaxMessageTermination(4))
    clean: list[BaseAgentEvent | BaseChatMessage] = [TextMessage(source="a", content="x")]
    assert await condition(clean) is None
    assert await condition([*clean, stamped("redact")]) is None  # below halt: no stop
    assert halt.calls == 1  # only the batch holding a stamp was checked
    stop = await condition(clean)  # fourth message: the other condition's stop, alone
    assert isinstance(stop, StopMessage) and "Maximum number of messages" in stop.content
    assert halt.calls == 1
    with pytest.raises(RuntimeError, match="already been reached"):
        await condition(clean)

    await condition.reset()
    stop = await condition([stamped("halt")])
    assert isinstance(stop, StopMessage) and stop.content.startswith("kinguard halted")
    assert stop.source == "KinGuardTermination"
    await condition.reset()
    # Both at once: kinguard's reason first, then the other's, as OrTerminationCondition joins them.
    both = HaltOrTermination(KinGuardTermination(), MaxMessageTermination(1))
    stop = await both([stamped("halt")])
    assert stop is not None
    assert stop.content.startswith("kinguard halted") and "Maximum number" in stop.content
    assert stop.source == "KinGuardTermination, MaxMessageTermination"
    # It still dumps and loads as the OrTerminationCondition it is.
    loaded = TerminationCondition.load_component(both.dump_component())
    assert isinstance(loaded._conditions[0], KinGuardTermination)  # type: ignore[attr-defined]
