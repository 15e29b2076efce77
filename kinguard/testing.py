"""Test helpers and the adapter conformance suite.

Users test their own apps with :func:`capture_verdicts`, :class:`CapturingSink` and
:func:`keyword_guard` (a guard whose verdicts a test chooses by the words it sends). Framework
adapters prove they behave alike by subclassing :class:`AdapterConformance` and providing a
``harness`` fixture: an :class:`AdapterHarness` that runs a scripted scenario on a real app of
that framework (fake/replay models, never mocks of the framework). Importing this module
needs pytest.
"""

from __future__ import annotations

import abc
import asyncio
import re
import statistics
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, ClassVar

import pytest

from kinguard.detectors import Context
from kinguard.guard import KinGuard
from kinguard.identity import IDENTITY_MARKER
from kinguard.policy import Policy, Rule
from kinguard.scenarios import SCENARIOS, RunResult, Scenario, Turn, demo_policy
from kinguard.types import (
    Action,
    AgentProfile,
    Alert,
    Evidence,
    HumanDecision,
    Message,
    Signal,
    Verdict,
)

__all__ = [
    "AdapterConformance",
    "AdapterHarness",
    "CapturingSink",
    "HangingDetector",
    "KeywordDetector",
    "PassThroughGuard",
    "RaisingDetector",
    "RunResult",
    "capture_verdicts",
    "halt_beside",
    "interleaved_medians",
    "keyword_guard",
    "reference_verdicts",
]


class CapturingSink:
    """An alert sink that keeps every alert, for assertions."""

    inline = True

    def __init__(self) -> None:
        self.alerts: list[Alert] = []

    def __call__(self, alert: Alert) -> None:
        self.alerts.append(alert)


@contextmanager
def capture_verdicts(guard: KinGuard) -> Iterator[list[Verdict]]:
    """Collect every verdict the guard reaches inside the block, in order."""
    verdicts: list[Verdict] = []
    guard.add_observer(verdicts.append)
    try:
        yield verdicts
    finally:
        guard.remove_observer(verdicts.append)


class KeywordDetector:
    """Flags a fixed token as a chosen signal: lets action tests not depend on detector quality."""

    inline = True
    detector_name = "keyword"

    def __init__(self, keyword: str, signal: str = "collusion.market", score: float = 0.9) -> None:
        self.keyword = keyword
        self.signal = signal
        self.score = score

    def __call__(self, message: Message, context: Context) -> list[Signal]:
        return [
            Signal(
                name=self.signal,  # type: ignore[arg-type]
                score=self.score,
                evidence=(Evidence(start=m.start(), end=m.end(), text=m.group()),),
                tier="test",
                # Quoting the message, as the statistical tier's detail does: what hides
                # evidence text from a consumer must hide this too.
                detail=f"matched {m.group()!r}",
            )
            for m in re.finditer(re.escape(self.keyword), message.text)
        ]


def halt_beside(
    agents: Sequence[AgentProfile],
    action: Action,
    keyword: str,
    halt_word: str,
    *,
    risk: float | None = None,
    **kwargs: Any,
) -> KinGuard:
    """A guard that halts on ``halt_word`` (as ``kin.mimicry``) and takes ``action`` on
    ``keyword`` (as ``collusion.market``; on the pair's risk instead, given ``risk``): for
    tests of what approving a halt delivers when another rule matched too."""
    beside = (
        Rule(risk=risk, action=action)
        if risk is not None
        else Rule(signal="collusion.market", min_score=0.5, action=action)
    )
    return KinGuard(
        agents,
        detectors=[KeywordDetector(keyword), KeywordDetector(halt_word, "kin.mimicry")],
        policy=Policy(
            rules=(beside, Rule(signal="kin.mimicry", min_score=0.5, action=Action.HALT))
        ),
        **kwargs,
    )


def keyword_guard(
    agents: Sequence[str | AgentProfile],
    action: Action | str,
    *,
    keyword: str = "ZEBRA-PACT",
    rule: Rule | None = None,
    **options: Any,
) -> KinGuard:
    """A guard whose only detector flags ``keyword`` as ``collusion.market`` (score 0.9), which
    its policy answers with ``action`` (or ``rule`` instead): a message gets that action by
    saying the keyword, whatever the detectors' quality, so a test of an app's handling of an
    action says exactly what triggers it. An agent given by name is an ``openai:gpt-4o`` agent
    (all such are kin at ``self``) serving a principal of its own. ``options``: any other
    :class:`~kinguard.KinGuard` argument (``identity``, ``conversation_id``, ...; a ``policy``
    or ``detectors`` given there replaces the keyword's)."""
    profiles = [
        AgentProfile(name=agent, model="openai:gpt-4o", principal=f"{agent}'s owner")
        if isinstance(agent, str)
        else agent
        for agent in agents
    ]
    options.setdefault("detectors", [KeywordDetector(keyword)])
    options.setdefault(
        "policy", Policy(rules=(rule or Rule(signal="collusion.market", action=Action(action)),))
    )
    return KinGuard(profiles, **options)


class RaisingDetector:
    """Always raises: for testing that a failing detector is contained."""

    inline = True
    detector_name = "raising"

    def __call__(self, message: Message, context: Context) -> list[Signal]:
        raise RuntimeError("detector exploded")


class HangingDetector:
    """Sleeps far past any sane time-out; not inline, so the guard's watchdog must cut it off."""

    inline = False
    detector_name = "hanging"

    def __init__(self, seconds: float = 5.0) -> None:
        self.seconds = seconds

    def __call__(self, message: Message, context: Context) -> list[Signal]:
        time.sleep(self.seconds)
        return []


def interleaved_medians(
    runs: Mapping[str, Callable[[], object]], rounds: int, warmup: int = 2
) -> dict[str, float]:
    """Median wall time in seconds of each of ``runs``, timed in turn ``rounds`` times.

    For guarded-over-bare ratios: interleaved, load from elsewhere on the machine hits every
    variant alike, where timing one variant after the other lets a burst land on one of them.
    """
    for _ in range(warmup):
        for run in runs.values():
            run()
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(rounds):
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(spent) for name, spent in times.items()}


class PassThroughGuard(KinGuard):
    """Lets every message through at no cost: measures an adapter without the core.

    Benchmarks set it beside a bare run to tell an adapter's own per-message cost apart from
    detection's and the core's bookkeeping. The verdict is cached per sender and text, so
    building it is not what gets measured either.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._verdicts: dict[tuple[str, str], Verdict] = {}

    def inspect(self, message: Message) -> Verdict:
        key = (message.sender, message.text)
        verdict = self._verdicts.get(key)
        if verdict is None:
            verdict = self._verdicts[key] = Verdict(
                message_id=message.id,
                conversation_id=message.conversation_id,
                sender=message.sender,
                recipients=message.recipients,
                delivered_text=message.text,
            )
        return verdict

    async def ainspect(self, message: Message) -> Verdict:
        return self.inspect(message)


class AdapterHarness(abc.ABC):
    """Runs a scenario on a real app of one framework. One harness instance per test."""

    supports_sync: ClassVar[bool] = True

    @abc.abstractmethod
    def run(self, scenario: Scenario, guard: KinGuard | None) -> RunResult:
        """Run the whole script (agents speak in ``scenario.turns`` order) until done or halted."""

    @abc.abstractmethod
    async def arun(self, scenario: Scenario, guard: KinGuard | None) -> RunResult: ...

    @abc.abstractmethod
    def resume(self, decision: HumanDecision) -> RunResult:
        """Continue the last halted run after a person's decision; return the whole run."""

    @abc.abstractmethod
    async def aresume(self, decision: HumanDecision) -> RunResult: ...

    @abc.abstractmethod
    def restart(self, guard: KinGuard) -> None:
        """Go on with the last, halted run as a new process would: the app built again around
        ``guard``, a fresh guard that knows only what the framework's persistence kept (the
        checkpointer, ``save_state``). The next :meth:`resume` carries on from there."""

    @abc.abstractmethod
    def stream(self, scenario: Scenario, guard: KinGuard | None) -> RunResult:
        """Like :meth:`run`, with the models streaming tokens and the app consuming the run's
        token stream as a chat UI would; ``RunResult.streamed`` holds what that stream said."""

    @abc.abstractmethod
    async def astream(self, scenario: Scenario, guard: KinGuard | None) -> RunResult: ...


def reference_verdicts(scenario: Scenario, guard: KinGuard) -> list[Verdict]:
    """Inspect the script directly, framework-free: what every adapter must reproduce."""
    names = [agent.name for agent in scenario.agents]
    return [
        guard.inspect(
            Message(
                conversation_id="reference",
                sender=turn.sender,
                recipients=tuple(n for n in names if n != turn.sender),
                text=turn.text,
                turn=index,
            )
        )
        for index, turn in enumerate(scenario.turns)
    ]


_TRIO = (
    AgentProfile(name="ann", model="openai:gpt-4o", principal="Ann's employer"),
    AgentProfile(name="bo", model="openai:gpt-4o", principal="Bo's employer"),
    AgentProfile(name="cy", model="anthropic:claude-sonnet-4-5", principal="Cy's employer"),
)
_KEYWORD = "ZEBRA-PACT"


def _trio(*texts: str) -> Scenario:
    names = [agent.name for agent in _TRIO]
    return Scenario(
        name="trio",
        title="three agents, round robin",
        source="conformance",
        task="Discuss the quarterly plan.",
        agents=_TRIO,
        system_prompts={name: f"You are {name}. Be brief." for name in names},
        turns=tuple(Turn(sender=names[i % 3], text=text) for i, text in enumerate(texts)),
    )


_PLAIN_TRIO = _trio(
    "Opening: the plan has three parts.",
    f"Second point, and the code word is {_KEYWORD} for later.",
    "Third point: timelines look fine.",
    "Fourth point: costs are on track.",
    "Fifth point: staffing is settled.",
    "Sixth point: we can close the meeting.",
)


_HALT_WORD = "HOLD-ON"

# bo's words raise its pairs with ann and with cy into the alert band, then the nudge band, then
# it says the halt word; the others' plain words alert only through those pairs' held risk.
_ESCALATING_TRIO = _trio(
    "Opening: the plan has three parts.",
    f"I agree, {_KEYWORD}.",
    "Third point: timelines look fine.",
    "Fourth point: costs are on track.",
    f"{_KEYWORD} and {_KEYWORD} again.",
    "Sixth point: staffing is settled.",
    "Seventh point: risks are listed.",
    f"{_HALT_WORD}: let us settle this between us.",
    "Ninth point: we can close the meeting.",
)


def _escalating_guard(sink: CapturingSink, conversation_id: str | None) -> KinGuard:
    """The default policy's risk rules, and a halt on the halt word."""
    return KinGuard(
        _TRIO,
        detectors=[
            KeywordDetector(_KEYWORD, score=0.5),
            KeywordDetector(_HALT_WORD, "kin.mimicry"),
        ],
        policy=Policy(
            rules=(
                Rule(risk=0.35, action=Action.ALERT),
                Rule(risk=0.6, action=Action.NUDGE),
                Rule(signal="kin.mimicry", min_score=0.5, action=Action.HALT),
            )
        ),
        sinks=[sink],
        conversation_id=conversation_id,
    )


def _script(scenario: Scenario) -> list[tuple[str, str]]:
    return [(turn.sender, turn.text) for turn in scenario.turns]


def _keyword_guard(action: Action, **kwargs: Any) -> KinGuard:
    return keyword_guard(_TRIO, action, keyword=_KEYWORD, conversation_id="conformance", **kwargs)


class AdapterConformance:
    """Behaviour every framework adapter must have. Subclass and define a ``harness`` fixture.

    Sync and async runs are both exercised; an adapter whose framework is async-only sets
    ``supports_sync = False`` on its harness and runs the async path.
    """

    @pytest.fixture
    def harness(self) -> AdapterHarness:
        raise NotImplementedError("subclasses provide a harness fixture")

    @pytest.fixture(params=["sync", "async"])
    def mode(self, request: pytest.FixtureRequest, harness: AdapterHarness) -> str:
        if request.param == "sync" and not harness.supports_sync:
            pytest.skip("framework is async-only")
        return str(request.param)

    @staticmethod
    def _run(
        harness: AdapterHarness,
        mode: str,
        scenario: Scenario,
        guard: KinGuard | None,
        *,
        stream: bool = False,
    ) -> RunResult:
        if mode == "sync":
            return (harness.stream if stream else harness.run)(scenario, guard)
        return asyncio.run((harness.astream if stream else harness.arun)(scenario, guard))

    @staticmethod
    def _resume(harness: AdapterHarness, mode: str, decision: HumanDecision) -> RunResult:
        if mode == "sync":
            return harness.resume(decision)
        return asyncio.run(harness.aresume(decision))

    # -- the harness itself ------------------------------------------------------------------

    def test_unguarded_run_replays_the_script(self, harness: AdapterHarness, mode: str) -> None:
        result = self._run(harness, mode, _PLAIN_TRIO, None)
        assert result.delivered == _script(_PLAIN_TRIO)
        assert not result.halted

    def test_every_message_is_inspected_once_in_order(
        self, harness: AdapterHarness, mode: str
    ) -> None:
        guard = _keyword_guard(Action.LOG)
        with capture_verdicts(guard) as verdicts:
            result = self._run(harness, mode, _PLAIN_TRIO, guard)
        assert [v.sender for v in verdicts] == [t.sender for t in _PLAIN_TRIO.turns]
        assert verdicts[1].signal_names == ("collusion.market",)
        assert set(verdicts[1].recipients) == {"ann", "cy"}
        assert result.delivered == _script(_PLAIN_TRIO)

    # -- identity ----------------------------------------------------------------------------

    @pytest.mark.parametrize("identity", ["disclose", "disassociate", "conceal"])
    def test_identity_is_injected_into_every_agent_prompt(
        self, harness: AdapterHarness, mode: str, identity: str
    ) -> None:
        guard = _keyword_guard(Action.LOG, identity=identity)
        result = self._run(harness, mode, _PLAIN_TRIO, guard)
        blocks = set()
        for agent in _TRIO:
            block = guard.identity_block(agent.name)
            assert block is not None
            first_call = result.model_inputs[agent.name][0]
            assert block in first_call
            assert _PLAIN_TRIO.system_prompts[agent.name] in first_call  # the user's prompt stays
            assert first_call.count(IDENTITY_MARKER) == 1
            blocks.add(block)
        if identity != "conceal":
            assert len(blocks) == len(_TRIO)  # ann and bo share a model yet differ

    def test_identity_none_leaves_prompts_alone(self, harness: AdapterHarness, mode: str) -> None:
        result = self._run(harness, mode, _PLAIN_TRIO, _keyword_guard(Action.LOG))
        assert IDENTITY_MARKER not in result.all_inputs()

    def test_conceal_strips_identity_cues_between_agents(
        self, harness: AdapterHarness, mode: str
    ) -> None:
        script = _trio(
            "Opening: the plan has three parts.",
            "Speaking as GPT-4o from OpenAI, I think the plan is sound.",
            "Third point.",
            "Fourth point.",
        )
        guard = _keyword_guard(Action.LOG, identity="conceal")
        result = self._run(harness, mode, script, guard)
        assert "GPT-4o" not in result.delivered[1][1]
        assert "[identity withheld]" in result.delivered[1][1]
        assert "OpenAI" not in result.inputs_after("cy", 0)

    # -- actions -----------------------------------------------------------------------------

    def test_redact_rewrites_what_other_agents_see(
        self, harness: AdapterHarness, mode: str
    ) -> None:
        guard = _keyword_guard(Action.REDACT)
        with capture_verdicts(guard) as verdicts:
            result = self._run(harness, mode, _PLAIN_TRIO, guard)
        assert verdicts[1].action is Action.REDACT
        assert result.delivered[1] == ("bo", verdicts[1].delivered_text)
        assert "[redacted by kinguard: collusion.market]" in result.delivered[1][1]
        assert _KEYWORD not in result.inputs_after("cy", 0)
        assert _KEYWORD not in result.inputs_after("ann", 1)
        assert len(result.delivered) == len(_PLAIN_TRIO.turns)

    def test_block_replaces_the_message_with_a_notice(
        self, harness: AdapterHarness, mode: str
    ) -> None:
        guard = _keyword_guard(Action.BLOCK)
        result = self._run(harness, mode, _PLAIN_TRIO, guard)
        sender, text = result.delivered[1]
        assert sender == "bo"
        assert text.startswith("[kinguard blocked a message from bo")
        assert _KEYWORD not in result.inputs_after("cy", 0)
        assert _KEYWORD not in result.inputs_after("ann", 1)
        assert [s for s, _ in result.delivered] == [t.sender for t in _PLAIN_TRIO.turns]

    def test_nudge_reminds_the_flagged_agent_only(self, harness: AdapterHarness, mode: str) -> None:
        guard = _keyword_guard(Action.NUDGE)
        result = self._run(harness, mode, _PLAIN_TRIO, guard)
        assert "[kinguard reminder]" in result.inputs_after("bo", 1)
        assert "[kinguard reminder]" not in result.model_inputs["bo"][0]
        assert "[kinguard reminder]" not in result.inputs_after("ann", 0)
        assert "[kinguard reminder]" not in result.inputs_after("cy", 0)
        assert result.delivered == _script(_PLAIN_TRIO)

    def test_halt_then_reject_drops_the_message(self, harness: AdapterHarness, mode: str) -> None:
        guard = _keyword_guard(Action.HALT)
        first = self._run(harness, mode, _PLAIN_TRIO, guard)
        assert first.halted
        assert _KEYWORD not in first.inputs_after("ann", 0) + first.inputs_after("cy", 0)
        result = self._resume(harness, mode, HumanDecision(type="reject"))
        assert not result.halted
        assert _KEYWORD not in result.inputs_after("cy", 0)
        assert _KEYWORD not in result.inputs_after("ann", 1)
        assert _KEYWORD not in "".join(text for _, text in result.delivered)
        assert result.delivered[-1] == _script(_PLAIN_TRIO)[-1]

    def test_halt_then_approve_delivers_the_message(
        self, harness: AdapterHarness, mode: str
    ) -> None:
        guard = _keyword_guard(Action.HALT)
        assert self._run(harness, mode, _PLAIN_TRIO, guard).halted
        result = self._resume(harness, mode, HumanDecision(type="approve"))
        assert not result.halted
        assert ("bo", _PLAIN_TRIO.turns[1].text) in result.delivered
        assert _KEYWORD in result.inputs_after("cy", 0)

    def test_approving_a_halt_keeps_what_a_redact_rule_took_out(
        self, harness: AdapterHarness, mode: str
    ) -> None:
        # A halt is a review on top of the other rules, not a way round them: approving
        # delivers the message as the guard would have without the halt.
        guard = halt_beside(
            _TRIO, Action.REDACT, _KEYWORD, "code word", conversation_id="conformance"
        )
        with capture_verdicts(guard) as verdicts:
            assert self._run(harness, mode, _PLAIN_TRIO, guard).halted
        assert verdicts[1].action is Action.HALT
        result = self._resume(harness, mode, HumanDecision(type="approve"))
        assert not result.halted
        assert ("bo", verdicts[1].delivered_text) in result.delivered
        assert "[redacted by kinguard: collusion.market]" in result.inputs_after("cy", 0)
        assert _KEYWORD not in result.inputs_after("cy", 0)
        assert "code word" in result.inputs_after("cy", 0)

    def test_approving_a_halt_a_block_rule_also_matched_delivers_nothing(
        self, harness: AdapterHarness, mode: str
    ) -> None:
        guard = halt_beside(
            _TRIO, Action.BLOCK, _KEYWORD, "code word", conversation_id="conformance"
        )
        assert self._run(harness, mode, _PLAIN_TRIO, guard).halted
        result = self._resume(harness, mode, HumanDecision(type="approve"))
        assert not result.halted
        assert _KEYWORD not in result.inputs_after("cy", 0)
        assert _KEYWORD not in result.inputs_after("ann", 1)
        assert result.delivered[-1] == _script(_PLAIN_TRIO)[-1]

    def test_halt_then_edit_delivers_the_edit(self, harness: AdapterHarness, mode: str) -> None:
        guard = _keyword_guard(Action.HALT)
        assert self._run(harness, mode, _PLAIN_TRIO, guard).halted
        result = self._resume(harness, mode, HumanDecision(type="edit", text="Second point."))
        assert ("bo", "Second point.") in result.delivered
        assert _KEYWORD not in result.inputs_after("cy", 0)
        assert "Second point." in result.inputs_after("cy", 0)

    # -- token streaming: what a chat UI shows is what was delivered ---------------------------

    def test_token_stream_says_what_was_delivered(self, harness: AdapterHarness, mode: str) -> None:
        result = self._run(harness, mode, _PLAIN_TRIO, _keyword_guard(Action.LOG), stream=True)
        assert result.streamed == result.delivered == _script(_PLAIN_TRIO)

    def test_token_stream_is_redacted(self, harness: AdapterHarness, mode: str) -> None:
        result = self._run(harness, mode, _PLAIN_TRIO, _keyword_guard(Action.REDACT), stream=True)
        assert result.streamed == result.delivered
        assert "[redacted by kinguard: collusion.market]" in result.streamed[1][1]
        assert _KEYWORD not in "".join(text for _, text in result.streamed)

    @pytest.mark.parametrize("action", [Action.BLOCK, Action.HALT])
    def test_token_stream_never_shows_a_withheld_message(
        self, harness: AdapterHarness, mode: str, action: Action
    ) -> None:
        result = self._run(harness, mode, _PLAIN_TRIO, _keyword_guard(action), stream=True)
        assert _KEYWORD not in "".join(text for _, text in result.streamed)
        # Only delivered messages are streamed (a framework may stream the notice or not), and
        # every delivered agent message but the notice is.
        assert all(item in result.delivered for item in result.streamed)
        spoken = [item for item in result.delivered if not item[1].startswith("[kinguard")]
        assert all(item in result.streamed for item in spoken)
        assert result.streamed[0] == _script(_PLAIN_TRIO)[0]
        assert result.halted == (action is Action.HALT)

    # -- alerts: one incident, paged once per piece of news -----------------------------------

    def test_an_escalating_pair_is_one_incident_across_a_restart(
        self, harness: AdapterHarness, mode: str
    ) -> None:
        before, after = CapturingSink(), CapturingSink()
        first = self._run(harness, mode, _ESCALATING_TRIO, _escalating_guard(before, "conformance"))
        assert first.halted
        assert [(alert.sender, alert.action, alert.repeat) for alert in before.alerts] == [
            ("bo", Action.ALERT, False),
            ("cy", Action.ALERT, True),
            ("ann", Action.ALERT, True),
            ("bo", Action.NUDGE, False),  # an escalation
            ("cy", Action.NUDGE, True),
            ("ann", Action.NUDGE, True),
            ("bo", Action.HALT, False),  # an escalation, and a new signal
        ]
        # Another process: a guard of its own (an AutoGen one under another conversation id),
        # with only what the framework kept.
        harness.restart(_escalating_guard(after, None))
        result = self._resume(harness, mode, HumanDecision(type="approve"))
        assert not result.halted
        assert [(alert.sender, alert.action, alert.repeat) for alert in after.alerts] == [
            ("cy", Action.NUDGE, True)
        ]
        incidents = {alert.incident_id for alert in [*before.alerts, *after.alerts]}
        assert len(incidents) == 1
        assert "" not in incidents

    # -- failure containment -----------------------------------------------------------------

    @pytest.mark.parametrize("broken", ["raises", "hangs"])
    @pytest.mark.parametrize("on_error", ["open", "closed"])
    def test_a_broken_detector_never_breaks_the_app(
        self, harness: AdapterHarness, mode: str, broken: str, on_error: str
    ) -> None:
        bad = RaisingDetector() if broken == "raises" else HangingDetector(seconds=3.0)
        sink = CapturingSink()
        guard = KinGuard(
            _TRIO,
            detectors=[bad, KeywordDetector(_KEYWORD)],
            policy=Policy(
                rules=(Rule(signal="collusion.market", action=Action.LOG),),
                on_error=on_error,  # type: ignore[arg-type]
                inspect_timeout_ms=50,
            ),
            sinks=[sink],
        )
        script = _trio("One.", "Two.", "Three.")
        with capture_verdicts(guard) as verdicts:
            result = self._run(harness, mode, script, guard)
        assert len(verdicts) == 3
        assert all(v.error is not None for v in verdicts)
        assert len(sink.alerts) == 3  # a failure is never silent
        assert not result.halted
        if on_error == "open":
            assert result.delivered == _script(script)
        else:
            assert all(text.startswith("[kinguard blocked") for _, text in result.delivered)
            assert "Two." not in result.inputs_after("cy", 0)

    # -- same findings as the framework-free reference ---------------------------------------

    @pytest.mark.parametrize("name", sorted(SCENARIOS))
    def test_seed_scenarios_give_the_reference_verdicts(
        self, harness: AdapterHarness, mode: str, name: str
    ) -> None:
        scenario = SCENARIOS[name]
        reference = reference_verdicts(
            scenario, KinGuard(scenario.agents, identity="disassociate", policy=demo_policy())
        )
        guard = KinGuard(scenario.agents, identity="disassociate", policy=demo_policy())
        with capture_verdicts(guard) as verdicts:
            result = self._run(harness, mode, scenario, guard)
            while result.halted:
                result = self._resume(harness, mode, HumanDecision(type="reject"))
        got = [(v.sender, v.signal_names, v.action) for v in verdicts]
        want = [(v.sender, v.signal_names, v.action) for v in reference]
        assert got == want
