"""Guard state rides the checkpointer: a resume in a new process sees the same risk."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
import uuid
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from kinguard_langgraph import guard_graph
from kinguard_langgraph._scripted import (
    ChatState,
    ScriptedChatModel,
    chain_graph,
    script_graph,
    start,
)
from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.runnables import RunnableLambda
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph
from langgraph.types import Command

from kinguard import Action, AgentProfile, KinGuard, Policy, Rule
from kinguard.testing import KeywordDetector, capture_verdicts

SCRIPT = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    from kinguard_langgraph._scripted import ScriptedChatModel, script_graph, start
    from langgraph.types import Command
    from kinguard import Action, AgentProfile, KinGuard, Policy, Rule
    from kinguard.testing import KeywordDetector, capture_verdicts
    from kinguard_langgraph import guard_graph

    phase, store, thread = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
    import sqlite3
    from langgraph.checkpoint.sqlite import SqliteSaver
    saver = SqliteSaver(sqlite3.connect(str(store), check_same_thread=False))
    guard = KinGuard(
        [
            AgentProfile(name="buyer", model="openai:gpt-4o"),
            AgentProfile(name="seller", model="openai:gpt-4o"),
        ],
        detectors=[KeywordDetector("ZEBRA-PACT")],
        policy=Policy(rules=(Rule(signal="collusion.market", action=Action.HALT),)),
    )
    models = {{
        "buyer": ScriptedChatModel(replies=["Ten at 40.", "Let us ZEBRA-PACT.", "Fine."]),
        "seller": ScriptedChatModel(replies=["48.", "44.", "Deal."]),
    }}
    builder = script_graph(["buyer", "seller"] * 3, models, {{}})
    graph = guard_graph(builder, guard).compile(checkpointer=saver)
    config = {{"configurable": {{"thread_id": thread}}}}
    with capture_verdicts(guard) as verdicts:
        if phase == "one":
            out = graph.invoke(start(), config)
        else:
            out = graph.invoke(Command(resume={{"type": "approve"}}), config)
    print(json.dumps({{
        "halted": "__interrupt__" in out,
        "verdicts": [
            [v.sender, v.action.value, v.message_risk, v.pair_risk, v.conversation_risk]
            for v in verdicts
        ],
        "risk": guard.monitor.conversation(thread).risk,
        "peak": guard.monitor.conversation(thread).peak,
        "buyer_calls": models["buyer"].calls,
    }}))
    """
)


def run_phase(script: Path, phase: str, store: Path, thread: str) -> dict[str, Any]:
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    done = subprocess.run(
        [sys.executable, str(script), phase, str(store), thread],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def test_resume_in_a_new_process_sees_the_same_risk(tmp_path: Path) -> None:
    script = tmp_path / "phase.py"
    script.write_text(SCRIPT.format())
    store = tmp_path / "checkpoints.db"
    thread = uuid.uuid4().hex

    one = run_phase(script, "one", store, thread)
    assert one["halted"]
    assert one["risk"] > 0.5

    two = run_phase(script, "two", store, thread)  # a fresh guard in a fresh process
    assert not two["halted"]
    assert two["buyer_calls"] == 1  # only the buyer's last turn: nothing was re-run
    assert two["peak"] == pytest.approx(one["peak"])
    first_after = two["verdicts"][0]
    _sender, _action, message_risk, pair_risk, conversation_risk = first_after
    assert message_risk == 0.0
    assert conversation_risk > 0.3  # the earlier risk came back with the checkpoint, decayed
    assert pair_risk > 0.3


def test_two_graphs_on_one_saver_share_the_thread_risk() -> None:
    saver = InMemorySaver()
    thread = {"configurable": {"thread_id": uuid.uuid4().hex}}

    def build() -> tuple[Any, KinGuard]:
        guard = KinGuard(
            [
                AgentProfile(name="a", model="openai:gpt-4o"),
                AgentProfile(name="b", model="openai:gpt-4o"),
            ],
            detectors=[KeywordDetector("ZEBRA-PACT")],
            policy=Policy(rules=(Rule(signal="collusion.market", action=Action.LOG),)),
        )
        models = {
            "a": ScriptedChatModel(replies=["ZEBRA-PACT now."]),
            "b": ScriptedChatModel(replies=["Calm."]),
        }
        return guard_graph(script_graph(["a", "b"], models, {}), guard).compile(
            checkpointer=saver
        ), guard

    first, _ = build()
    first.invoke(start(), thread)
    second, second_guard = build()
    with capture_verdicts(second_guard) as verdicts:
        second.invoke({"messages": [], "turn": 0}, thread)
    assert verdicts[0].conversation_risk > verdicts[0].message_risk


FLAGGED, PLAIN = "keep ZEBRA-PACT", "Offer 40, standard terms."


class RiskyThread:
    """A buyer and a seller on one saver, where two flagged exchanges reach a blocking risk."""

    def __init__(self, saver: InMemorySaver, max_conversations: int = 10_000) -> None:
        self.said: list[str] = []
        self.guard = KinGuard(
            [
                AgentProfile(name="buyer", model="openai:gpt-4o"),
                AgentProfile(name="seller", model="openai:gpt-4o"),
            ],
            detectors=[KeywordDetector("ZEBRA-PACT", score=0.3)],
            policy=Policy(
                rules=(
                    Rule(signal="collusion.market", min_score=0.2, action=Action.LOG),
                    Rule(risk=0.5, action=Action.BLOCK),
                ),
                max_conversations=max_conversations,
            ),
        )
        speak = {
            n: (lambda state, n=n: {"messages": [AIMessage(self.said.pop(0), name=n)]})
            for n in ("buyer", "seller")
        }
        graph = chain_graph(("buyer", speak["buyer"]), ("seller", speak["seller"]))
        self.graph = guard_graph(graph, self.guard).compile(checkpointer=saver)

    def exchange(self, config: Any, text: str) -> list[Action]:
        self.said[:] = [text, text]
        with capture_verdicts(self.guard) as verdicts:
            self.graph.invoke({"messages": [HumanMessage("go")]}, config)
        return [v.action for v in verdicts]


def test_a_fork_from_an_earlier_checkpoint_carries_that_checkpoints_risk() -> None:
    # The guard's state is restored from the checkpoint the run starts from, as a fresh
    # process would, not kept from the branch the live guard last ran.
    saver = InMemorySaver()
    thread = {"configurable": {"thread_id": uuid.uuid4().hex}}
    live = RiskyThread(saver)
    live.exchange(thread, FLAGGED)
    after_first = live.graph.get_state(thread).config
    live.exchange(thread, FLAGGED)  # the branch the live guard remembers
    fork = live.exchange(after_first, PLAIN)
    assert fork == RiskyThread(saver).exchange(after_first, PLAIN) == [Action.ALLOW] * 2


def test_a_fork_from_before_any_inspection_starts_without_risk() -> None:
    # The thread's first checkpoints hold no kinguard state: a run from there starts afresh,
    # not with the risk of the branch it abandons.
    saver = InMemorySaver()
    thread = {"configurable": {"thread_id": uuid.uuid4().hex}}
    live = RiskyThread(saver)
    first = live.exchange(thread, FLAGGED)
    assert live.exchange(thread, FLAGGED) != first  # the risk has built up
    start = next(
        h.config for h in live.graph.get_state_history(thread) if h.metadata.get("step") == -1
    )
    assert live.exchange(start, FLAGGED) == first


def test_a_service_with_a_thread_per_request_stays_bounded_and_keeps_each_threads_risk() -> None:
    # Each thread's snapshot revision was kept for good. Past max_conversations the guard
    # forgets the least recently active threads; the checkpoint brings one's risk back when
    # it runs again, so it blocks exactly as a guard that never forgot it.
    thread = {"configurable": {"thread_id": uuid.uuid4().hex}}
    live = RiskyThread(InMemorySaver(), max_conversations=5)
    live.exchange(thread, FLAGGED)
    for request in range(30):
        live.exchange({"configurable": {"thread_id": f"request-{request}"}}, PLAIN)
    assert len(live.guard.monitor.state().conversations) <= 5
    assert len(live.graph._kinguard.revisions._revs) <= 5
    reference = RiskyThread(InMemorySaver())
    reference.exchange(thread, FLAGGED)
    assert (
        live.exchange(thread, FLAGGED) == reference.exchange(thread, FLAGGED) != [Action.ALLOW] * 2
    )


def cfg() -> dict[str, Any]:
    return {"configurable": {"thread_id": uuid.uuid4().hex}}


class TeamsApp:
    """One process's app: a parent graph on ``saver`` whose nodes are guarded teams, each with a
    guard of its own (one for all if ``shared``). A second app over the same saver stands for
    the app after a restart.

    ``layout``: each team is a node of the parent (``node``), is invoked by a node function
    that passes no config (``called``), or keeps its own history (``checkpointer=True``,
    ``memory``).
    """

    def __init__(
        self,
        saver: InMemorySaver | None,
        layout: str = "node",
        teams: tuple[str, ...] = ("team",),
        action: Action = Action.LOG,
        shared: bool = False,
    ) -> None:
        self.guards: list[KinGuard] = []
        parent: StateGraph[Any, Any, Any, Any] = StateGraph(ChatState)
        previous = START
        for name in teams:
            if not (shared and self.guards):
                self.guards.append(
                    KinGuard(
                        [
                            AgentProfile(name="a", model="openai:gpt-4o"),
                            AgentProfile(name="b", model="openai:gpt-4o"),
                        ],
                        detectors=[KeywordDetector("ZEBRA-PACT")],
                        policy=Policy(rules=(Rule(signal="collusion.market", action=action),)),
                    )
                )
            models = {
                "a": ScriptedChatModel(replies=["ZEBRA-PACT now."]),
                "b": ScriptedChatModel(replies=["Calm."]),
            }
            team = guard_graph(script_graph(["a", "b"], models, {}), self.guards[-1]).compile(
                checkpointer=True if layout == "memory" else None
            )
            parent.add_node(f"{name}_starts", lambda state: {"turn": 0})
            if layout == "called":
                # No config passed: the team finds the node's own through the context.
                def call(state: Any, team: Any = team) -> Any:
                    return team.invoke(state)

                async def acall(state: Any, team: Any = team) -> Any:
                    return await team.ainvoke(state)

                parent.add_node(name, RunnableLambda(call, afunc=acall))
            else:
                parent.add_node(name, team)
            parent.add_edge(previous, f"{name}_starts")
            parent.add_edge(f"{name}_starts", name)
            previous = name
        parent.add_edge(previous, END)
        self.graph = parent.compile(checkpointer=saver)

    def turn(self, config: Any, use_async: bool, value: Any = None) -> list[float]:
        """The conversation risk after each message the turn inspected, guard after guard."""
        if value is None:
            value = {"messages": [HumanMessage("go")]}
        with ExitStack() as stack:
            verdicts = [stack.enter_context(capture_verdicts(g)) for g in self.guards]
            if use_async:
                asyncio.run(self.graph.ainvoke(value, config))
            else:
                self.graph.invoke(value, config)
        return [v.conversation_risk for seen in verdicts for v in seen]


@pytest.mark.parametrize("use_async", [False, True], ids=["sync", "async"])
@pytest.mark.parametrize("layout", ["node", "called", "memory"])
def test_a_guarded_subgraph_after_a_restart_sees_the_same_risk(
    layout: str, use_async: bool
) -> None:
    # The subgraph's guard state is in its own checkpoints, under a namespace that names the
    # parent's task (a new one each time the parent runs it): a restarted app finds it there.
    saver = InMemorySaver()
    before = TeamsApp(saver, layout)
    live, restarted = cfg(), cfg()
    first = before.turn(live, use_async)
    assert before.turn(restarted, use_async) == first
    expected = before.turn(live, use_async)  # the same process goes on
    assert expected[0] > first[0]  # the first turn's risk carried over
    assert TeamsApp(saver, layout).turn(restarted, use_async) == pytest.approx(expected)


@pytest.mark.parametrize("use_async", [False, True], ids=["sync", "async"])
def test_two_guarded_subgraphs_after_a_restart_each_see_their_own_risk(use_async: bool) -> None:
    saver = InMemorySaver()
    teams = ("red", "blue")
    before = TeamsApp(saver, teams=teams)
    live, restarted = cfg(), cfg()
    before.turn(live, use_async)
    before.turn(restarted, use_async)
    expected = before.turn(live, use_async)
    assert TeamsApp(saver, teams=teams).turn(restarted, use_async) == pytest.approx(expected)


@pytest.mark.parametrize("use_async", [False, True], ids=["sync", "async"])
def test_a_halt_in_a_guarded_subgraph_resumed_after_a_restart_keeps_its_risk(
    use_async: bool,
) -> None:
    # The resumed subgraph task keeps its namespace: its own checkpoint holds the guard state.
    saver = InMemorySaver()
    before = TeamsApp(saver, action=Action.HALT)
    live, restarted = cfg(), cfg()
    for thread in (live, restarted):
        before.turn(thread, use_async)
        assert before.graph.get_state(thread).interrupts
    approve = Command(resume={"type": "approve"})
    expected = before.turn(live, use_async, approve)
    assert expected and not before.graph.get_state(live).interrupts
    after = TeamsApp(saver, action=Action.HALT)
    assert after.turn(restarted, use_async, approve) == pytest.approx(expected)


@pytest.mark.parametrize("use_async", [False, True], ids=["sync", "async"])
def test_guarded_subgraphs_sharing_a_guard_do_not_undo_each_others_risk(use_async: bool) -> None:
    # Each subgraph's checkpoint holds the guard's state as of its own last run: loaded over the
    # live state, it would drop what the other subgraph's turns added since.
    teams = ("red", "blue")
    config = cfg()
    with_saver = TeamsApp(InMemorySaver(), teams=teams, shared=True)
    in_memory = TeamsApp(None, teams=teams, shared=True)
    for _ in range(2):
        assert with_saver.turn(config, use_async) == in_memory.turn(config, use_async)
