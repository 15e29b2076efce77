"""The cheap paths: what kinguard lets through untouched costs no copies, hooks or checks."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from types import SimpleNamespace
from typing import Any

import pytest
from autogen_agentchat.base import Response, TerminatedException, TerminationCondition
from autogen_agentchat.conditions import MaxMessageTermination
from autogen_agentchat.messages import BaseAgentEvent, BaseChatMessage, StopMessage, TextMessage
from autogen_agentchat.teams import RoundRobinGroupChat
from kinguard_autogen import META_ACTION, KinGuardTermination, KinGuardVerdictEvent, guard_team
from kinguard_autogen._termination import HaltOrTermination


def team_of(kit: SimpleNamespace, n: int = 4, *, flagged: bool = True) -> RoundRobinGroupChat:
    return RoundRobinGroupChat(
        [
            kit.agent("buyer", ["b1", f"b2 {kit.KEYWORD}" if flagged else "b2", "b3"]),
            kit.agent("seller", ["s1", "s2", "s3"]),
        ],
        termination_condition=MaxMessageTermination(n + 1),
    )


def record(agent: Any) -> list[BaseChatMessage]:
    """The chat messages the agent itself produced (recorded under kinguard's stand-in)."""
    produced: list[BaseChatMessage] = []
    original = agent.on_messages_stream

    async def recording(messages: Any, cancellation_token: Any) -> AsyncGenerator[Any, None]:
        async for item in original(messages, cancellation_token):
            if isinstance(item, Response):
                produced.append(item.chat_message)
            yield item

    agent.on_messages_stream = recording
    return produced


async def test_clean_messages_pass_through_as_the_very_same_objects(kit: SimpleNamespace) -> None:
    team = team_of(kit)
    produced = [record(agent) for agent in team._participants]
    guard_team(team, kit.keyword_guard("redact"))
    result = await team.run(task="Negotiate.")

    said = [m for m in result.messages if isinstance(m, BaseChatMessage) and m.source != "user"]
    originals = [produced[0][0], produced[1][0], produced[0][1], produced[1][1]]
    assert [m.id for m in said] == [m.id for m in originals]
    # Only the flagged message was rewritten; every other one reached the team as the object
    # the agent produced, neither copied nor stamped.
    same = [after is before for before, after in zip(originals, said, strict=True)]
    assert same == [True, True, False, True]
    assert kit.KEYWORD in originals[2].to_text()
    assert said[2].metadata[META_ACTION] == "redact"
    assert not any(META_ACTION in m.metadata for m in said if m is not said[2])
    # kinguard needs nothing from the runtime or the output queue.
    assert not team._runtime._intervention_handlers
    assert "put" not in vars(team._output_message_queue)


@pytest.mark.parametrize(
    ("flagged", "events", "count"), [(False, "flagged", 0), (True, "flagged", 1), (False, "all", 4)]
)
async def test_verdict_events_follow_their_message(
    kit: SimpleNamespace, flagged: bool, events: Any, count: int
) -> None:
    team = guard_team(team_of(kit, flagged=flagged), kit.keyword_guard("redact"), events=events)
    items = [item async for item in team.run_stream(task="Negotiate.")]
    streamed = [i for i, item in enumerate(items) if isinstance(item, KinGuardVerdictEvent)]
    assert len(streamed) == count
    for index in streamed:  # every event right after its own message
        event = items[index]
        assert isinstance(event, KinGuardVerdictEvent)
        message = items[index - 1]
        assert isinstance(message, BaseChatMessage)
        assert event.verdict.sender == message.source


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
    with pytest.raises(TerminatedException, match="already been reached"):  # as AgentChat's Or
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
