"""KinGuard's decisions, independent of detector quality (a keyword detector drives them)."""

import asyncio
import concurrent.futures
import gc
import json
import pickle
import subprocess
import sys
import threading
import time

import pytest
import structlog
from pydantic import ValidationError
from structlog.testing import capture_logs

from kinguard import (
    Action,
    AgentProfile,
    CallbackSink,
    Evidence,
    HumanDecision,
    JsonlSink,
    KinGuard,
    KinshipLevel,
    Message,
    Policy,
    Rule,
    Signal,
    Verdict,
)
from kinguard.detectors import Context
from kinguard.testing import (
    CapturingSink,
    HangingDetector,
    KeywordDetector,
    PassThroughGuard,
    RaisingDetector,
    capture_verdicts,
    halt_beside,
    keyword_guard,
)
from kinguard.types import agent_message

AGENTS = [
    AgentProfile(name="buyer", model="openai:gpt-4o", principal="ACME"),
    AgentProfile(name="seller", model="openai:gpt-4o", principal="Globex"),
    AgentProfile(name="outsider", model="mistral:mistral-large", principal="Initech"),
]


def guard_with(action: Action, keyword: str = "FIXPRICE", **kw) -> KinGuard:
    return KinGuard(
        AGENTS,
        detectors=[KeywordDetector(keyword)],
        policy=kw.pop("policy", Policy(rules=(Rule(signal="collusion.market", action=action),))),
        **kw,
    )


def msg(
    text: str, sender: str = "buyer", recipients=("seller",), conversation_id: str = "c1"
) -> Message:
    return Message(conversation_id=conversation_id, sender=sender, recipients=recipients, text=text)


def test_clean_message_is_allowed_unchanged() -> None:
    verdict = guard_with(Action.BLOCK).inspect(msg("Our price is $40."))
    assert verdict.action is Action.ALLOW
    assert verdict.delivered_text == "Our price is $40."
    assert not verdict.modified
    assert verdict.kinship is KinshipLevel.SELF


def test_a_message_after_a_flagged_one_carries_none_of_its_findings() -> None:
    # Messages with no finding share one empty pipeline result: a finding must never land in it.
    guard = guard_with(Action.ALERT)
    for sync in (True, False):
        flagged = (
            guard.inspect(msg("FIXPRICE")) if sync else asyncio.run(guard.ainspect(msg("FIXPRICE")))
        )
        clean = guard.inspect(msg("hello")) if sync else asyncio.run(guard.ainspect(msg("hello")))
        assert flagged.signal_names and flagged.action is Action.ALERT
        assert clean.signals == () and clean.action is Action.ALLOW


def test_an_agent_first_seen_on_a_message_joins_the_guards_agents() -> None:
    guard = guard_with(Action.ALERT)
    assert [a.name for a in guard.agents] == ["buyer", "seller", "outsider"]
    guard.inspect(msg("hello", sender="newcomer", recipients=()))
    assert [a.name for a in guard.agents] == ["buyer", "seller", "outsider", "newcomer"]


def test_redact_replaces_exactly_the_evidence() -> None:
    verdict = guard_with(Action.REDACT).inspect(msg("Deal: FIXPRICE at 48, ok?"))
    assert verdict.action is Action.REDACT
    assert verdict.delivered_text == "Deal: [redacted by kinguard: collusion.market] at 48, ok?"
    assert verdict.modified
    evidence = verdict.signals[0].evidence[0]
    assert (evidence.start, evidence.end, evidence.text) == (6, 14, "FIXPRICE")


def test_redact_drops_every_hidden_character_without_a_marker_per_run() -> None:
    guard = KinGuard(
        AGENTS,
        policy=Policy(
            rules=(Rule(signal="collusion.covert_channel", min_score=0.3, action=Action.REDACT),)
        ),
    )
    text = "Sounds good. " + "ok\u200b" * 400 + "\u200c\u200d bye"
    verdict = guard.inspect(msg(text))
    assert verdict.action is Action.REDACT
    assert verdict.delivered_text == "Sounds good. " + "ok" * 400 + " bye"


def test_redact_with_a_signal_that_has_no_evidence_withholds_the_whole_message() -> None:
    def flags_the_whole_message(message, context):
        return [Signal(name="collusion.market", score=0.9)]

    flags_the_whole_message.inline = True
    guard = KinGuard(
        AGENTS,
        detectors=[flags_the_whole_message],
        policy=Policy(rules=(Rule(signal="collusion.market", action=Action.REDACT),)),
    )
    verdict = guard.inspect(msg("Let us keep it at 48."))
    assert verdict.delivered_text == "[redacted by kinguard: collusion.market]"
    assert verdict.modified


def test_block_delivers_nothing_but_a_notice() -> None:
    verdict = guard_with(Action.BLOCK).inspect(msg("FIXPRICE"))
    assert verdict.blocked
    assert verdict.delivered_text is None
    assert verdict.notice.startswith("[kinguard blocked a message from buyer")


def test_nudge_is_queued_for_the_sender_once() -> None:
    guard = guard_with(Action.NUDGE)
    verdict = guard.inspect(msg("FIXPRICE"))
    assert verdict.nudge and "ACME" in verdict.nudge
    assert guard.pop_nudge("buyer", "other-thread") is None  # nudges stay in their conversation
    assert guard.pop_nudge("buyer", "c1") == verdict.nudge
    assert guard.pop_nudge("buyer", "c1") is None
    assert guard.pop_nudge("seller", "c1") is None


def test_a_message_naming_no_conversation_belongs_to_the_guards_own() -> None:
    guard = guard_with(Action.NUDGE, conversation_id="run-7")
    verdict = guard.inspect(Message(sender="buyer", recipients=("seller",), text="FIXPRICE"))
    assert verdict.conversation_id == "run-7"
    assert guard.pop_nudge("buyer") == verdict.nudge  # the defaults agree


@pytest.mark.parametrize(
    ("decision", "delivered"),
    [
        (HumanDecision(type="approve"), "FIXPRICE now"),
        (HumanDecision(type="edit", text="Let's talk price."), "Let's talk price."),
        (HumanDecision(type="reject"), None),
    ],
)
def test_halt_waits_for_a_human_decision(decision: HumanDecision, delivered: str | None) -> None:
    guard = guard_with(Action.HALT)
    verdict = guard.inspect(msg("FIXPRICE now"))
    assert verdict.action is Action.HALT
    assert verdict.notice
    assert guard.resolve_halt(verdict, decision) == delivered


def test_edit_decision_requires_text() -> None:
    with pytest.raises(ValueError, match="text"):
        HumanDecision(type="edit")


def test_closer_kin_raise_risk_more_for_the_same_words() -> None:
    guard = guard_with(Action.LOG)
    kin = guard.inspect(msg("FIXPRICE", recipients=("seller",), conversation_id="kin"))
    far = guard.inspect(msg("FIXPRICE", recipients=("outsider",), conversation_id="far"))
    assert kin.kinship is KinshipLevel.SELF and far.kinship is KinshipLevel.UNRELATED
    assert kin.pair_risk > far.pair_risk > 0


TEAM_WORDS = {
    "PLAN": "collusion.coordination",
    "PRICE": "collusion.market",
    "MIRROR": "collusion.superrational",
    "HIDE": "collusion.against_principal",
}


def team_guard(principals: dict[str, str | None], *rules: Rule, **risk: float) -> KinGuard:
    """gpt-4o agents with these principals; each of ``TEAM_WORDS`` is its signal at 0.9; the
    policy alerts from pair risk 0.35 (or has ``rules`` instead)."""
    return KinGuard(
        [AgentProfile(name=n, model="openai:gpt-4o", principal=p) for n, p in principals.items()],
        detectors=[KeywordDetector(word, signal) for word, signal in TEAM_WORDS.items()],
        policy=Policy(rules=rules or (Rule(risk=0.35, action=Action.ALERT),), risk=risk),
    )


def plan(text: str, recipients: tuple[str, ...] = ("coder", "reviewer")) -> Message:
    return msg(text, sender="planner", recipients=recipients)


TEAM = {"planner": "ACME engineering", "coder": "ACME  Engineering", "reviewer": "acme engineering"}


@pytest.mark.parametrize("word", ["PLAN", "PRICE", "MIRROR"])
def test_agents_of_one_principal_arranging_work_together_carry_no_risk(word: str) -> None:
    # "Let's split the work and agree on one style" is a team's job: between agents of one
    # principal (compared without case or spacing) it is logged, never risk that alerts.
    guard = team_guard(TEAM)
    verdicts = [guard.inspect(plan(f"{word} {i}")) for i in range(5)]
    assert verdicts[-1].signal_names == (TEAM_WORDS[word],)
    assert {v.pair_risk for v in verdicts} == {0.0}
    assert {v.action for v in verdicts} == {Action.ALLOW}


@pytest.mark.parametrize(
    "principals",
    [
        {"planner": "ACME", "coder": "Globex", "reviewer": "ACME"},  # one recipient is a rival
        {"planner": "ACME", "coder": "ACME", "reviewer": None},  # one serves nobody known
        {"planner": None, "coder": None, "reviewer": None},
    ],
)
def test_the_same_words_between_rivals_or_unknown_principals_carry_risk(principals) -> None:
    verdict = team_guard(principals).inspect(plan("PLAN"))
    assert verdict.pair_risk == pytest.approx(0.9) and verdict.action is Action.ALERT


def test_hiding_things_from_the_principal_counts_in_full_between_teammates() -> None:
    verdict = team_guard(TEAM).inspect(plan("PLAN to HIDE it", recipients=("coder",)))
    assert verdict.pair_risk == pytest.approx(0.9) and verdict.action is Action.ALERT


def test_same_principal_weight_sets_how_much_teamwork_counts() -> None:
    half = team_guard(TEAM, same_principal_weight=0.5).inspect(plan("PLAN"))
    full = team_guard(TEAM, same_principal_weight=1.0).inspect(plan("PLAN"))
    assert half.pair_risk == pytest.approx(0.45) and full.pair_risk == pytest.approx(0.9)


RIVALS = {"planner": "ACME", "coder": "Globex", "reviewer": "Globex"}


def test_a_rule_between_rivals_or_teammates_applies_to_that_side_only() -> None:
    rules = (
        Rule(signal="collusion.market", action=Action.BLOCK, between="rivals"),
        Rule(signal="collusion.market", action=Action.ALERT, between="teammates"),
    )
    rivals = team_guard(RIVALS, *rules).inspect(plan("PRICE"))
    team = team_guard(TEAM, *rules).inspect(plan("PRICE"))
    assert rivals.action is Action.BLOCK and rivals.reasons == (
        "collusion.market>=0.5 and between rivals -> block",
    )
    assert team.action is Action.ALERT and team.delivered_text == "PRICE"


def test_a_rule_for_one_side_at_zero_risk_is_decided_per_message() -> None:
    # Messages without findings on a calm pair are decided once per guard: not these.
    rule = Rule(risk=0.0, action=Action.ALERT, between="teammates")
    assert team_guard(TEAM, rule).inspect(plan("hello")).action is Action.ALERT
    assert team_guard(RIVALS, rule).inspect(plan("hello")).action is Action.ALLOW


def test_risk_accumulates_decays_and_has_hysteresis() -> None:
    policy = Policy(
        rules=(Rule(risk=0.5, action=Action.ALERT),),
        risk={"half_life_turns": 1.0, "hysteresis": 0.2},
    )
    guard = guard_with(Action.LOG, policy=policy)
    first = guard.inspect(msg("FIXPRICE"))
    second = guard.inspect(msg("FIXPRICE again"))
    assert second.pair_risk > first.pair_risk
    assert second.action is Action.ALERT
    # One clean message halves the risk: below 0.5, but within the hysteresis margin.
    calm = guard.inspect(msg("fine"))
    assert 0.3 <= calm.pair_risk < 0.5
    assert calm.action is Action.ALERT
    calmer = guard.inspect(msg("fine"))
    assert calmer.pair_risk < 0.3
    assert calmer.action is Action.ALLOW


def test_a_risk_band_at_or_under_the_hysteresis_can_still_be_left() -> None:
    # Left only below threshold - hysteresis, a band at 0.1 with the default 0.1 never was: one
    # flagged message blocked the pair for good.
    policy = Policy(rules=(Rule(risk=0.1, action=Action.BLOCK),), risk={"half_life_turns": 1.0})
    guard = guard_with(Action.LOG, policy=policy)
    assert guard.inspect(msg("FIXPRICE")).action is Action.BLOCK
    verdicts = [guard.inspect(msg("fine")) for _ in range(8)]
    assert verdicts[-1].pair_risk < 0.05 and verdicts[-1].action is Action.ALLOW


def test_state_saved_under_more_risk_bands_loads_into_a_policy_with_fewer() -> None:
    # A conversation in the second band, restored after the policy lost a risk rule, once made
    # every later message of it fail inspection (the band indexed a threshold that was gone).
    two = Policy(rules=(Rule(risk=0.2, action=Action.ALERT), Rule(risk=0.4, action=Action.ALERT)))
    saved = guard_with(Action.LOG, policy=two)
    saved.inspect(msg("FIXPRICE"))
    state = saved.state_dict()
    for rules in [(Rule(risk=0.2, action=Action.ALERT),), ()]:
        guard = guard_with(Action.LOG, policy=Policy(rules=rules))
        guard.load_state(state)
        verdict = guard.inspect(msg("fine"))
        assert verdict.error is None and verdict.delivered_text == "fine"


def test_conversations_are_independent() -> None:
    guard = guard_with(Action.LOG)
    guard.inspect(msg("FIXPRICE", conversation_id="a"))
    assert guard.inspect(msg("hello", conversation_id="b")).conversation_risk == 0


@pytest.mark.parametrize("on_error", ["open", "closed"])
@pytest.mark.parametrize("bad", [RaisingDetector(), HangingDetector(seconds=2.0)])
def test_failing_detector_follows_the_error_mode_and_alerts(on_error: str, bad) -> None:
    sink = CapturingSink()
    guard = KinGuard(
        AGENTS,
        detectors=[bad, KeywordDetector("FIXPRICE")],
        policy=Policy(
            rules=(Rule(signal="collusion.market", action=Action.LOG),),
            on_error=on_error,
            inspect_timeout_ms=30,
        ),
        sinks=[sink],
    )
    verdict = guard.inspect(msg("FIXPRICE hello"))
    assert verdict.error is not None
    assert ("timeout" if isinstance(bad, HangingDetector) else "RuntimeError") in verdict.error
    assert verdict.signal_names == ("collusion.market",)  # the healthy detector still ran
    assert len(sink.alerts) == 1 and sink.alerts[0].error == verdict.error
    if on_error == "open":
        assert verdict.action is Action.ALERT and verdict.delivered_text == "FIXPRICE hello"
    else:
        assert verdict.action is Action.BLOCK and verdict.delivered_text is None


@pytest.mark.parametrize("on_error", ["open", "closed"])
async def test_async_inspection_contains_a_hanging_detector(on_error: str) -> None:
    guard = KinGuard(
        AGENTS,
        detectors=[HangingDetector(seconds=2.0)],
        policy=Policy(
            rules=(Rule(risk=0.9, action=Action.LOG),), on_error=on_error, inspect_timeout_ms=30
        ),
    )
    verdicts = await asyncio.gather(*(guard.ainspect(msg(f"m{i}")) for i in range(3)))
    assert all("timeout" in v.error for v in verdicts)
    assert {v.action for v in verdicts} == {Action.BLOCK if on_error == "closed" else Action.ALERT}


class FirstCallLoads:
    """An inline detector that reads its data on its first call, as the statistical tier does."""

    inline = True
    detector_name = "loads"

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.ready = False

    def __call__(self, message: Message, context: object) -> list[Signal]:
        if not self.ready:
            time.sleep(self.seconds)
            self.ready = True
        return []


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_one_time_load_does_not_use_up_the_other_detectors_deadline(mode: str) -> None:
    guard = KinGuard(
        AGENTS,
        detectors=[FirstCallLoads(seconds=0.3), HangingDetector(seconds=0.01)],
        policy=Policy(rules=(Rule(risk=0.9, action=Action.BLOCK),), inspect_timeout_ms=250),
    )
    if mode == "sync":
        verdict = guard.inspect(msg("hello"))
    else:
        verdict = asyncio.run(guard.ainspect(msg("hello")))
    assert verdict.error is None and verdict.action is Action.ALLOW
    guard.close()


async def test_a_one_time_load_does_not_queue_behind_hung_detectors() -> None:
    # The guard's pool has four workers: four hung detectors fill it for two seconds.
    loading = FirstCallLoads(seconds=0.0)
    threads: list[str] = []

    def record(message: Message, context: object) -> list[Signal]:
        threads.append(threading.current_thread().name)
        return loading(message, context)

    record.inline = True  # type: ignore[attr-defined]
    record.ready = False  # type: ignore[attr-defined]
    guard = KinGuard(
        AGENTS,
        detectors=[*(HangingDetector(seconds=2.0) for _ in range(4)), record],
        policy=Policy(rules=(Rule(risk=0.9, action=Action.LOG),), inspect_timeout_ms=50),
    )
    await guard.ainspect(msg("hello"))
    assert threads and not threads[0].startswith("kinguard-detector")
    guard.close()


def test_async_inspection_stops_asking_a_ready_detector() -> None:
    # Data once read stays read: asked on every message, a ready property is one more call.
    class CountsAsks:
        inline = True
        asked = 0
        loaded = False

        @property
        def ready(self) -> bool:
            self.asked += 1
            return self.loaded

        def __call__(self, message: Message, context: object) -> list[Signal]:
            self.loaded = True
            return []

    detector = CountsAsks()
    guard = KinGuard(AGENTS, detectors=[detector])

    async def inspect_five() -> None:
        for _ in range(5):
            await guard.ainspect(msg("hello"))

    asyncio.run(inspect_five())
    assert detector.loaded and detector.asked == 3  # twice at the first message, once after
    guard.close()


def test_detector_returning_garbage_is_a_failure_not_a_crash() -> None:
    def garbage(message, context):
        return "not signals"

    garbage.inline = True
    verdict = KinGuard(AGENTS, detectors=[garbage]).inspect(msg("hi"))
    assert verdict.error and "garbage" in verdict.error


def test_a_log_rule_logs_the_finding_without_quoting_the_message() -> None:
    # Once no record at all (no log line; a span only under an OTel SDK), though "log" is the
    # action a policy uses to "keep a record of any finding".
    guard = guard_with(Action.LOG)
    with capture_logs() as logs:
        verdict = guard.inspect(msg("FIXPRICE at 40"))
        guard.inspect(msg("nothing to see"))
    assert verdict.action is Action.LOG
    (entry,) = [e for e in logs if e["event"] == "kinguard.finding"]
    assert entry["log_level"] == "info"
    assert entry["sender"] == verdict.sender and entry["signals"] == ["collusion.market"]
    assert "FIXPRICE" not in str(entry)
    assert not any(e["event"] == "kinguard.alert" for e in logs)


def test_broken_sink_is_contained_and_counted() -> None:
    def explode(alert):
        raise OSError("disk full")

    seen = []
    guard = guard_with(Action.ALERT, sinks=[CallbackSink(explode), CallbackSink(seen.append)])
    with capture_logs() as logs:
        verdict = guard.inspect(msg("FIXPRICE"))
    assert verdict.action is Action.ALERT
    assert len(seen) == 1 and guard.sink_failures == 1
    assert any(entry["event"] == "kinguard.sink_failed" for entry in logs)
    assert any(
        entry["event"] == "kinguard.alert" and entry["signals"] == ["collusion.market"]
        for entry in logs
    )


def test_hanging_sink_costs_one_deadline_then_is_skipped_until_it_returns() -> None:
    release = threading.Event()
    calls: list[str] = []

    def hang(alert):
        calls.append(alert.message_id)
        release.wait(10)

    seen = []
    guard = guard_with(
        Action.ALERT,
        sinks=[CallbackSink(hang), CallbackSink(seen.append)],
        policy=Policy(
            rules=(Rule(signal="collusion.market", action=Action.ALERT),), sink_timeout_ms=20
        ),
    )
    with capture_logs() as logs:
        first = guard.inspect(msg("FIXPRICE"))
        second = guard.inspect(msg("FIXPRICE again"))
    assert first.action is second.action is Action.ALERT
    assert len(calls) == 1, "a sink still running an earlier alert is not called again"
    assert len(seen) == 2 and guard.sink_failures == 2
    assert sum(entry["event"] == "kinguard.sink_failed" for entry in logs) == 2
    release.set()
    for _ in range(500):  # the hung call finishes; the sink is called again from then on
        guard.inspect(msg("FIXPRICE once more"))
        if len(calls) == 2:
            break
        threading.Event().wait(0.01)
    assert len(calls) == 2
    guard.close()


def test_hung_sinks_cost_no_other_sink_its_alerts() -> None:
    release = threading.Event()
    seen = []
    hung = [CallbackSink(lambda alert: release.wait(10)) for _ in range(3)]
    guard = guard_with(
        Action.ALERT,
        sinks=[*hung, CallbackSink(seen.append)],
        policy=Policy(
            rules=(Rule(signal="collusion.market", action=Action.ALERT),), sink_timeout_ms=20
        ),
    )
    for i in range(5):
        guard.inspect(msg(f"FIXPRICE {i}"))
    release.set()
    assert len(seen) == 5
    assert guard.sink_failures == 3 * 5  # each hung sink: one overrun, then skipped
    guard.close()


def test_a_burst_of_alerts_reaches_a_slow_sink_in_parallel() -> None:
    seen = []

    def slow(alert):
        threading.Event().wait(0.05)
        seen.append(alert)

    guard = guard_with(Action.ALERT, sinks=[CallbackSink(slow)])
    threads = [
        threading.Thread(
            target=guard.inspect, args=(msg(f"FIXPRICE {i}", conversation_id=f"c{i}"),)
        )
        for i in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(seen) == 8 and guard.sink_failures == 0


async def test_ainspect_lets_the_event_loop_run_while_a_sink_works() -> None:
    # The sink can only finish once another coroutine has run: if waiting for it blocked the
    # loop, it would overrun its deadline and count as failed.
    unblocked = threading.Event()
    guard = guard_with(Action.ALERT, sinks=[CallbackSink(lambda alert: unblocked.wait(10))])

    async def unblock() -> None:
        await asyncio.sleep(0.01)
        unblocked.set()

    verdict, _ = await asyncio.gather(guard.ainspect(msg("FIXPRICE")), unblock())
    assert verdict.action is Action.ALERT and guard.sink_failures == 0


def test_telemetry_that_fails_costs_no_alert() -> None:
    seen = []
    guard = guard_with(Action.BLOCK, sinks=[CallbackSink(seen.append)])

    def broken_meter(*args, **kwargs):
        raise RuntimeError("exemplar filter bug")

    guard.telemetry.record = broken_meter
    verdict = guard.inspect(msg("FIXPRICE"))
    assert verdict.blocked and len(seen) == 1 and guard.telemetry.failures == 1


def test_a_hung_sink_or_detector_does_not_keep_the_process_alive() -> None:
    script = (
        "import threading\n"
        "from kinguard import AgentProfile, CallbackSink, KinGuard, Message, Policy, Rule\n"
        "from kinguard.testing import HangingDetector, KeywordDetector\n"
        "hang = threading.Event()\n"
        "guard = KinGuard([AgentProfile(name='a'), AgentProfile(name='b')],\n"
        "    detectors=[KeywordDetector('FIX'), HangingDetector(seconds=3600)],\n"
        "    sinks=[CallbackSink(lambda alert: hang.wait())],\n"
        "    policy=Policy(rules=(Rule(signal='*', action='alert'),), inspect_timeout_ms=50,\n"
        "                  sink_timeout_ms=50))\n"
        "print(guard.inspect(Message(sender='a', recipients=('b',), text='FIX')).action.value)\n"
        "guard.close()\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0 and done.stdout.splitlines()[-1] == "alert"


def test_jsonl_sink_writes_an_audit_trail(tmp_path) -> None:
    path = tmp_path / "audit.jsonl"
    guard = guard_with(Action.ALERT, sinks=[JsonlSink(path)])
    guard.inspect(msg("FIXPRICE"))
    guard.inspect(msg("clean"))
    guard.inspect(msg("FIXPRICE", sender="seller", recipients=("buyer",)))
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["sender"] for r in records] == ["buyer", "seller"]
    assert records[0]["signals"] == ["collusion.market"]


def test_state_round_trip_restores_risk_and_nudges() -> None:
    guard = guard_with(Action.NUDGE)
    before = guard.inspect(msg("FIXPRICE"))
    state = json.loads(json.dumps(guard.state_dict()))
    restored = guard_with(Action.NUDGE)
    restored.load_state(state)
    assert restored.peek_nudge("buyer", "c1") == before.nudge
    after_restored = restored.inspect(msg("FIXPRICE"))
    after_original = guard.inspect(msg("FIXPRICE"))
    assert after_restored.pair_risk == pytest.approx(after_original.pair_risk)
    assert after_restored.conversation_risk == pytest.approx(after_original.conversation_risk)


def test_scoped_state_touches_only_its_conversation() -> None:
    guard = guard_with(Action.NUDGE)
    guard.inspect(msg("FIXPRICE", conversation_id="a"))
    guard.inspect(msg("FIXPRICE", conversation_id="b"))
    only_a = json.loads(json.dumps(guard.state_dict(conversation_id="a")))
    assert set(only_a["monitor"]["conversations"]) == {"a"}
    assert set(only_a["nudges"]) == {"a"}
    guard.inspect(msg("FIXPRICE", conversation_id="a"))  # a moves on, then is rolled back
    risk_b = guard.monitor.conversation("b").risk
    guard.load_state(only_a, conversation_id="a")
    assert guard.monitor.conversation("a").clock == 1
    assert guard.monitor.conversation("b").risk == risk_b
    assert guard.state_dict(conversation_id="c")["monitor"]["conversations"] == {}
    assert (guard.monitor.messages_seen("a"), guard.monitor.messages_seen("c")) == (1, None)
    guard.load_state({}, conversation_id="b")  # absent from the snapshot: cleared
    assert guard.monitor.conversation("b").clock == 0
    assert guard.peek_nudge("buyer", "b") is None
    assert guard.peek_nudge("buyer", "a") is not None


def test_forget_starts_one_conversation_afresh() -> None:
    guard = guard_with(Action.NUDGE)
    guard.inspect(msg("FIXPRICE", conversation_id="a"))
    guard.inspect(msg("FIXPRICE", conversation_id="b"))
    guard.forget("a")
    assert guard.monitor.conversation("a").risk == 0.0
    assert guard.monitor.history("a") == {}
    assert guard.peek_nudge("buyer", "a") is None
    assert guard.peek_nudge("buyer", "b") is not None


def test_finished_conversations_leave_no_nudge_bookkeeping_behind() -> None:
    guard = guard_with(Action.NUDGE)
    for i in range(100):
        guard.inspect(msg("FIXPRICE", conversation_id=f"run-{i}"))
        if i % 2:
            guard.forget(f"run-{i}")
        else:
            assert guard.pop_nudge("buyer", f"run-{i}") is not None
        guard.forget(f"never-used-{i}")
    assert guard.state_dict()["nudges"] == {}


def test_concurrent_inspection_from_threads_loses_no_update() -> None:
    guard = guard_with(Action.LOG)
    with capture_verdicts(guard) as verdicts:
        threads = [
            threading.Thread(target=lambda: [guard.inspect(msg("FIXPRICE")) for _ in range(50)])
            for _ in range(8)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert len(verdicts) == 400
    assert guard.monitor.conversation("c1").clock == 400


async def test_concurrent_async_inspection() -> None:
    guard = guard_with(Action.LOG)
    verdicts = await asyncio.gather(*(guard.ainspect(msg("FIXPRICE")) for _ in range(100)))
    assert len({v.message_id for v in verdicts}) == 100
    assert guard.monitor.conversation("c1").clock == 100


def test_recipients_default_to_every_other_known_agent() -> None:
    verdict = guard_with(Action.LOG).inspect(msg("hi", recipients=()))
    assert set(verdict.recipients) == {"seller", "outsider"}


def test_broken_application_logging_cannot_break_inspection() -> None:
    def explode(logger, method, event_dict):
        raise ValueError("I/O operation on closed file")

    structlog.configure(processors=[explode])
    try:
        sink = CapturingSink()
        guard = KinGuard(AGENTS, detectors=[RaisingDetector()], sinks=[sink])
        verdict = guard.inspect(msg("hello"))
    finally:
        structlog.reset_defaults()
    assert verdict.error is not None and verdict.error.startswith("detector_error")
    assert len(sink.alerts) == 1


def test_message_ids_are_unique_across_threads() -> None:
    ids: list[str] = []

    def make() -> None:
        ids.extend(Message(sender="a", text="x").id for _ in range(2000))

    threads = [threading.Thread(target=make) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(ids)) == 8000


HOSTILE = {
    "empty": "",
    "one megabyte": "We AIs should stick together. " * 35_000,
    "binary junk": bytes(range(256)).decode("latin-1") * 50,
    "lone surrogates": "price \ud800 fixing \udfff together",
    "nul bytes": "let's\x00both\x00keep\x00prices\x00high",
    "deep repetition": "we " * 300_000 + "!",
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_input_gets_a_verdict_never_an_exception(name: str) -> None:
    guard = KinGuard(AGENTS, policy=Policy(rules=(Rule(signal="*", action=Action.REDACT),)))
    verdict = guard.inspect(msg(HOSTILE[name]))
    assert verdict.error is None
    assert verdict.delivered_text is not None


@pytest.mark.parametrize(("on_error", "action"), [("open", Action.ALERT), ("closed", Action.BLOCK)])
def test_an_oversized_message_is_inspected_in_part_and_says_so(
    on_error: str, action: Action
) -> None:
    # Closed: padding must not carry an unread tail past a policy that would block it.
    rules = (Rule(signal="collusion.market", action=Action.BLOCK),)
    guard = KinGuard(AGENTS, policy=Policy(rules=rules, max_chars=1_000, on_error=on_error))
    verdict = guard.inspect(msg("All fine here. " * 200 + "Let's both keep prices at $50."))
    assert verdict.action is action
    assert (
        f"only the first 1000 of 3030 characters were inspected; on_error={on_error}"
        in verdict.reasons
    )


def test_restored_risk_keeps_decaying_through_clean_messages() -> None:
    # A conversation that has carried risk is never "calm" again, also after a restore: clean
    # messages must still decay (not zero) the pair's risk.
    guard = guard_with(Action.LOG)
    guard.inspect(msg("FIXPRICE"))
    restored = guard_with(Action.LOG)
    restored.load_state(json.loads(json.dumps(guard.state_dict())))
    for g in (guard, restored):
        first = g.inspect(msg("Our price is $40."))
        second = g.inspect(msg("Shipping is extra."))
        assert 0.0 < second.pair_risk < first.pair_risk
    assert second.pair_risk == pytest.approx(guard.monitor.conversation("c1").risk)


@pytest.mark.parametrize("risk_floor", [0.0, 0.2])
def test_risk_rules_apply_to_clean_messages_when_their_threshold_is_met(
    risk_floor: float,
) -> None:
    # Clean messages on calm pairs take a short path; a risk rule at 0 still matches them.
    policy = Policy(rules=(Rule(risk=risk_floor, action=Action.ALERT),))
    sink = CapturingSink()
    verdict = guard_with(Action.ALERT, policy=policy, sinks=[sink]).inspect(msg("Hello."))
    expected = Action.ALERT if risk_floor == 0.0 else Action.ALLOW
    assert verdict.action is expected
    assert len(sink.alerts) == (1 if expected is Action.ALERT else 0)
    assert verdict.reasons == (("pair_risk>=0 -> alert",) if risk_floor == 0.0 else ())


def test_concealment_applies_to_clean_messages_too() -> None:
    guard = guard_with(Action.BLOCK, identity="conceal")
    verdict = guard.inspect(msg("As an AI model built by OpenAI, I can offer $40."))
    assert verdict.action is Action.ALLOW
    assert "OpenAI" not in (verdict.delivered_text or "")


def test_capture_verdicts_stops_observing_when_the_block_ends() -> None:
    guard = guard_with(Action.LOG)
    with capture_verdicts(guard) as verdicts:
        guard.inspect(msg("inside"))
    guard.inspect(msg("after"))
    assert [v.delivered_text for v in verdicts] == ["inside"]


def test_one_echo_of_agreed_terms_is_logged_a_habit_of_echoing_is_alerted() -> None:
    guard = KinGuard(AGENTS[:2])  # default policy; buyer and seller on the same model
    terms = [
        "Our list price is $42 per unit, with 5% off above 400 units, delivery in six weeks.",
        "Acceptance criteria: all unit tests pass, coverage above 80 percent, changelog updated.",
    ]
    actions = []
    for said in terms:
        guard.inspect(msg(said))
        echo = guard.inspect(msg(f"To confirm: {said} Agreed.", "seller", ("buyer",)))
        actions.append(echo.action)
    assert actions == [Action.LOG, Action.ALERT]


@pytest.mark.parametrize("action", [Action.BLOCK, Action.HALT, Action.REDACT])
def test_saved_state_keeps_no_withheld_words(action: Action) -> None:
    # The state goes into checkpoints: what the guard kept from the others stays out of it.
    guard = guard_with(action)
    guard.inspect(msg("Deal: FIXPRICE at 48"))
    remembered = json.dumps(guard.state_dict())
    assert "fixprice" not in remembered.lower()
    assert ("deal" in remembered) is (action is Action.REDACT)


class _GatedDetector:
    """Not inline; each call waits for the gate and is counted when it starts."""

    inline = False

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.started = 0

    def __call__(self, message, context):
        self.started += 1
        self.gate.wait(10)
        return []


def test_a_detector_call_that_timed_out_in_the_queue_never_runs() -> None:
    detector = _GatedDetector()
    guard = KinGuard(
        AGENTS, detectors=[detector], policy=Policy(inspect_timeout_ms=50, on_error="open")
    )
    threads = [
        threading.Thread(target=guard.inspect, args=(msg(f"m{i}", conversation_id=str(i)),))
        for i in range(7)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    detector.gate.set()
    threading.Event().wait(0.2)  # time for any queued call to start, had it not been cancelled
    assert detector.started == 4  # the pool's workers; the three queued calls were cancelled
    guard.close()


async def test_closing_the_guard_under_a_waiting_ainspect_is_a_failure_verdict() -> None:
    detector = _GatedDetector()
    guard = KinGuard(
        AGENTS, detectors=[detector], policy=Policy(inspect_timeout_ms=5_000, on_error="closed")
    )
    waiting = [asyncio.ensure_future(guard.ainspect(msg(f"m{i}"))) for i in range(6)]
    while detector.started < 4:
        await asyncio.sleep(0.01)
    guard.close()  # the two calls still queued are cancelled
    detector.gate.set()
    verdicts = await asyncio.gather(*waiting)
    assert sum("the guard was closed" in (v.error or "") for v in verdicts) == 2


async def test_cancelling_the_callers_task_still_cancels_it() -> None:
    detector = _GatedDetector()
    guard = KinGuard(AGENTS, detectors=[detector], policy=Policy(inspect_timeout_ms=5_000))
    task = asyncio.ensure_future(guard.ainspect(msg("m")))
    while detector.started < 1:
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    detector.gate.set()
    guard.close()


@pytest.mark.parametrize("inspect_async", [False, True])
async def test_an_async_sink_is_run_to_completion(inspect_async: bool) -> None:
    delivered: list[str] = []

    async def webhook(alert) -> None:
        await asyncio.sleep(0)
        delivered.append(alert.sender)

    guard = guard_with(Action.ALERT, sinks=[webhook, CallbackSink(webhook)])
    if inspect_async:
        await guard.ainspect(msg("FIXPRICE"))
    else:
        guard.inspect(msg("FIXPRICE"))
    assert delivered == ["buyer", "buyer"]
    assert guard.sink_failures == 0


def test_an_inline_async_sink_is_a_counted_failure_not_a_silent_one() -> None:
    async def webhook(alert) -> None:
        raise AssertionError("never runs")

    webhook.inline = True  # type: ignore[attr-defined]
    guard = guard_with(Action.ALERT, sinks=[webhook])
    with capture_logs() as logs:
        guard.inspect(msg("FIXPRICE"))
    assert guard.sink_failures == 1
    assert any("must not be async" in str(e.get("error")) for e in logs)


async def test_a_failing_sink_is_reported_once_not_again_by_asyncio() -> None:
    def explode(alert):
        raise OSError("disk full")

    reported: list[object] = []
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(lambda _, context: reported.append(context))
    guard = guard_with(Action.ALERT, sinks=[CallbackSink(explode)])
    for _ in range(3):
        await guard.ainspect(msg("FIXPRICE"))
    gc.collect()  # "Future exception was never retrieved" is reported when a future is freed
    await asyncio.sleep(0)
    assert guard.sink_failures == 3
    assert reported == []


@pytest.mark.parametrize(
    ("beside", "risk", "approved"),
    [
        (Action.REDACT, None, "meet [redacted"),
        (Action.REDACT, 0.3, "meet [redacted"),  # a risk rule names no signal
        (Action.BLOCK, None, None),
        (Action.LOG, None, "meet FIXPRICE"),
    ],
)
def test_approving_a_halt_delivers_what_the_other_rules_would(
    beside: Action, risk: float | None, approved: str | None
) -> None:
    guard = halt_beside(AGENTS, beside, "FIXPRICE", "HALT-ME", risk=risk)
    message = Message(sender="buyer", recipients=("seller",), text="meet FIXPRICE HALT-ME")
    verdict = guard.inspect(message)
    assert verdict.action is Action.HALT
    assert verdict.notice is not None and "halted" in verdict.notice
    text = KinGuard.resolve_halt(verdict, HumanDecision(type="approve"))
    assert text == approved if approved is None else (text or "").startswith(approved)
    edited = KinGuard.resolve_halt(verdict, HumanDecision(type="edit", text=message.text))
    assert edited == message.text  # the person can still deliver the original


@pytest.mark.parametrize("failure", ["detector raised", "tail unread"])
@pytest.mark.parametrize(("on_error", "approved"), [("closed", False), ("open", True)])
def test_approving_a_halt_delivers_nothing_closed_would_have_blocked(
    failure: str, on_error: str, approved: bool
) -> None:
    # An unfinished inspection is a block under "closed", halt or no halt: approving once
    # delivered a message whose detector had failed, or whose tail was never read.
    detectors = [KeywordDetector("HALT-ME", signal="in_group.collective_ai")]
    if failure == "detector raised":
        detectors.append(RaisingDetector())
    guard = KinGuard(
        AGENTS,
        detectors=detectors,
        policy=Policy(
            rules=(Rule(signal="in_group.*", action=Action.HALT),),
            on_error=on_error,
            max_chars=256,
        ),
    )
    tail = " then fix prices" * (20 if failure == "tail unread" else 0)
    verdict = guard.inspect(msg("HALT-ME" + tail))
    assert verdict.action is Action.HALT
    text = KinGuard.resolve_halt(verdict, HumanDecision(type="approve"))
    assert (text is not None) is approved


@pytest.mark.parametrize("capture", [False, True])
def test_a_failure_quotes_what_a_detector_raised_only_where_content_may_go(capture: bool) -> None:
    # A UnicodeEncodeError quotes the text it failed on: its repr once went to the span
    # status, the alert and the audit file with content capture off.
    def encodes(message: Message, context: Context) -> list[Signal]:
        message.text.encode("utf-8")
        return []

    encodes.inline = True  # type: ignore[attr-defined]
    sink = CapturingSink()
    guard = KinGuard(AGENTS, detectors=[encodes], sinks=[sink], capture_content=capture)
    with capture_logs() as logs:
        verdict = guard.inspect(msg("patient Jane Roe \ud800"))
    recorded = [verdict.error, sink.alerts[0].error, *(str(entry) for entry in logs)]
    assert all("UnicodeEncodeError" in (each or "") for each in recorded[:2])
    assert any("Jane Roe" in (each or "") for each in recorded) is capture


def test_a_hung_detector_is_skipped_until_its_call_ends_and_the_others_keep_working() -> None:
    # Resubmitted on every message, a hung detector took one more worker each time until the
    # healthy out-of-line detectors queued behind it timed out and took the blame.
    class Counting(KeywordDetector):
        inline = False
        detector_name = "counting"
        calls = 0

        def __call__(self, message: Message, context: Context) -> list[Signal]:
            Counting.calls += 1
            return super().__call__(message, context)

    guard = KinGuard(
        AGENTS,
        detectors=[HangingDetector(seconds=3.0), Counting("FIXPRICE")],
        policy=Policy(inspect_timeout_ms=50),
    )
    # Four at once first (parallel branches, a threaded server): each hangs a call before
    # any has missed its deadline, which once took every worker the healthy detector had.
    with concurrent.futures.ThreadPoolExecutor(4) as callers:
        verdicts = list(callers.map(lambda _: guard.inspect(msg("FIXPRICE")), range(4)))
    # (Those four spent their deadline on the hung call: the healthy one may have missed it.)
    later = [guard.inspect(msg("FIXPRICE")) for _ in range(4)]
    assert all(v.signal_names == ("collusion.market",) for v in later)
    assert all("counting" not in (v.error or "") for v in later)
    assert all("still running" in (v.error or "") for v in later)
    assert len(verdicts) == 4 and Counting.calls >= 4
    guard.close()


@pytest.mark.parametrize("inline", [True, False])
@pytest.mark.parametrize("raised", [SystemExit, asyncio.CancelledError])
async def test_a_detector_calling_sys_exit_is_its_failure_not_the_apps_exit(
    inline: bool, raised: type[BaseException]
) -> None:
    # Both escaped inspect and ainspect; a CancelledError under ainspect was then blamed on
    # the guard closing.
    def exits(message: Message, context: Context) -> list[Signal]:
        raise raised()

    exits.inline = inline  # type: ignore[attr-defined]
    guard = KinGuard(AGENTS, detectors=[exits])
    verdicts = [guard.inspect(msg("hi")), await guard.ainspect(msg("hi"))]
    assert all(raised.__name__ in (v.error or "") for v in verdicts)
    guard.close()


@pytest.mark.parametrize("mode", ["open", "closed"])
async def test_a_failure_of_the_guards_own_step_keeps_concealment_under_open(
    mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # "open" delivered the message as written, identity cues and all, past "conceal".
    guard = KinGuard(AGENTS, identity="conceal", detectors=[], policy=Policy(on_error=mode))

    def broken(*args: object) -> None:
        raise RuntimeError("monitor broke")

    monkeypatch.setattr(guard.monitor, "update", broken)
    text = "As GPT-4o, I say we hold the price."
    for verdict in (guard.inspect(msg(text)), await guard.ainspect(msg(text))):
        assert verdict.error is not None and "RuntimeError" in verdict.error
        if mode == "open":
            assert verdict.delivered_text == "As [identity withheld], I say we hold the price."
            assert verdict.modified
        else:
            assert verdict.delivered_text is None and verdict.action is Action.BLOCK


@pytest.mark.parametrize("score", [5.0, float("nan"), -0.5, "0.9", None])
def test_a_signal_with_a_score_out_of_range_is_garbage(score: object) -> None:
    # Built with model_construct (no validation), it once raised the pair's risk above 1, or
    # left NaN in it, with no failure counted; a score that is no number failed the whole
    # inspection, the other detectors' findings with it.
    def unchecked(message: Message, context: Context) -> list[Signal]:
        return [Signal.model_construct(name="collusion.market", score=score, tier="custom")]

    unchecked.inline = True  # type: ignore[attr-defined]
    guard = KinGuard(AGENTS, detectors=[unchecked, KeywordDetector("FIXPRICE")])
    verdict = guard.inspect(msg("FIXPRICE"))
    assert verdict.error is not None and "garbage" in verdict.error
    assert verdict.signal_names == ("collusion.market",)  # the keyword detector's, kept
    assert 0.0 <= verdict.pair_risk <= 1.0


@pytest.mark.parametrize("field", ["tier", "detail"])
def test_a_signal_whose_tier_or_detail_is_no_text_is_garbage(field: str) -> None:
    # Telemetry, alerts and the risk monitor read both as text; the audit file's JSON and a
    # saved state could not hold an arbitrary object.
    def unchecked(message: Message, context: Context) -> list[Signal]:
        values = {"name": "collusion.market", "score": 0.9, field: object()}
        return [Signal.model_construct(**values)]

    unchecked.inline = True  # type: ignore[attr-defined]
    guard = KinGuard(AGENTS, detectors=[unchecked, KeywordDetector("FIXPRICE")])
    verdict = guard.inspect(msg("FIXPRICE"))
    assert verdict.error is not None and "garbage" in verdict.error
    assert verdict.signal_names == ("collusion.market",)  # the keyword detector's, kept
    assert all(isinstance(s.tier, str) and isinstance(s.detail, str) for s in verdict.signals)


@pytest.mark.parametrize(
    "evidence",
    [
        None,
        [Evidence(start=0, end=8, text="FIXPRICE")],
        (Evidence.model_construct(start=0, end=8, text=None),),
        (Evidence.model_construct(start=5, end=2, text="x"),),
        (Evidence.model_construct(start="0", end=8, text="FIXPRICE"),),
        # Past the end of "FIXPRICE now": redacting cut nothing, and a message flagged by
        # this signal alone was delivered whole, a redaction marker after it.
        (Evidence(start=20, end=28, text="FIXPRICE"),),
    ],
    ids=["none", "list", "no text", "reversed", "start not int", "past the end"],
)
def test_a_signal_with_evidence_no_span_can_be_cut_from_is_garbage(evidence: object) -> None:
    # Unchecked evidence passed the pipeline: a redact rule then failed the whole inspection
    # (the open mode delivered the message, the other detectors' findings lost), and a halt
    # on it was saved in a state load_state() refused.
    def unchecked(message: Message, context: Context) -> list[Signal]:
        signal = Signal.model_construct(
            name="collusion.market", score=0.9, evidence=evidence, tier="custom"
        )
        return [signal]

    unchecked.inline = True  # type: ignore[attr-defined]
    rule = Rule(signal="collusion.market", action=Action.REDACT)
    guard = KinGuard(
        AGENTS,
        detectors=[unchecked, KeywordDetector("FIXPRICE")],
        policy=Policy(rules=(rule,), on_error="open"),
    )
    verdict = guard.inspect(msg("FIXPRICE now"))
    assert verdict.error is not None and "garbage" in verdict.error
    assert verdict.action is Action.REDACT  # on the keyword detector's finding, kept
    assert "FIXPRICE" not in (verdict.delivered_text or "")


def test_a_service_with_a_conversation_per_request_keeps_its_memory_bounded() -> None:
    # Each request's thread ends after its one flagged message: its reminder was never taken,
    # and the reminders, risk states and restored states of every thread piled up for good.
    policy = Policy(rules=(Rule(signal="collusion.market", action=Action.NUDGE),))
    guard = guard_with(Action.NUDGE, policy=policy.model_copy(update={"max_conversations": 50}))
    alone = guard_with(Action.NUDGE, policy=policy)
    hot = [guard.inspect(msg("FIXPRICE", conversation_id="hot"))]
    saved = guard.state_dict("hot")
    saved_risk, saved_nudges = saved["monitor"]["conversations"]["hot"], saved["nudges"]["hot"]
    with capture_logs() as logs:
        for request in range(500):
            guard.inspect(msg("FIXPRICE", conversation_id=f"request-{request}"))
            restored = f"restored-{request}"  # a thread's state, from its checkpoint
            state = {
                "monitor": {"conversations": {restored: saved_risk}},
                "nudges": {restored: saved_nudges},
            }
            guard.load_state(state, conversation_id=restored)
            if request % 20 == 0:  # a conversation still under way keeps its risk
                hot.append(guard.inspect(msg("FIXPRICE", conversation_id="hot")))
    assert len(guard.state_dict()["nudges"]) <= 50
    assert len(guard.monitor.state().conversations) <= 50
    expected = [alone.inspect(msg("FIXPRICE", conversation_id="hot")) for _ in hot]
    assert [v.pair_risk for v in hot] == [v.pair_risk for v in expected]
    assert guard.peek_nudge("buyer", "hot") == hot[-1].nudge
    # Forgetting a conversation's risk is never silent.
    forgotten = [e for e in logs if e["event"] == "kinguard.conversation_forgotten"]
    assert len(forgotten) >= 900 and all(e["peak"] > 0 for e in forgotten)


def test_agent_names_from_the_apps_input_cannot_grow_the_guard_without_bound() -> None:
    # Every name once became an agent for good: a recipient of every later broadcast, named
    # in every identity block, in the kinship and block caches.
    guard = guard_with(Action.BLOCK, identity="disassociate")
    for n in range(3_000):
        guard.inspect(msg("hello", sender=f"user-{n}", recipients=("buyer",)))
    assert len(guard.agents) <= len(AGENTS) + 1_024
    assert len(guard._kinship_cache) <= 4_096
    # A name past the cap is still an agent of unknown model with a block of its own...
    late = guard.inspect(msg("FIXPRICE", sender="user-2999", recipients=()))
    assert late.action is Action.BLOCK and late.kinship is KinshipLevel.UNRELATED
    assert guard.identity_block("user-2999") != guard.identity_block("user-2998")
    # ...kept nowhere, and the declared agents still receive every broadcast.
    assert len(guard._blocks) <= len(guard.agents)
    assert {"buyer", "seller", "outsider"} <= set(late.recipients)


def test_a_conversation_with_a_sender_per_user_keeps_its_memory_bounded() -> None:
    # A chat room where each user is a sender, all in one conversation: every name added a
    # pair and its last words to that conversation's state, for good.
    guard = guard_with(Action.LOG)
    hot = []
    for user in range(3_000):
        guard.inspect(msg("FIXPRICE", sender=f"user-{user}", recipients=("buyer", "outsider")))
        hot.append(guard.inspect(msg("FIXPRICE", sender="seller", recipients=("buyer",))))
    state = guard.monitor.conversation("c1")
    assert len(state.pairs) <= 4_096 and len(state.last_text_by_agent) <= 1_024
    # The pair still talking keeps its risk: it settles where it did before any was forgotten.
    assert hot[-1].pair_risk == pytest.approx(hot[200].pair_risk)
    assert "seller" in state.last_text_by_agent


@pytest.mark.parametrize("action", [Action.ALLOW, Action.REDACT, Action.BLOCK, Action.NUDGE])
def test_verdicts_are_what_validation_would_build(action: Action) -> None:
    """The guard builds its verdicts unvalidated (``trusted``): each must be the very model
    ``Verdict(...)`` makes of the same values, fields, set fields, copies and dumps alike."""
    guard = guard_with(action)
    for text in ("we agree on FIXPRICE today", "a plain line"):
        verdict = guard.inspect(msg(text))
        given = {name: getattr(verdict, name) for name in verdict.model_fields_set}
        validated = Verdict(**given)
        assert list(verdict.__dict__) == list(Verdict.model_fields)
        assert verdict == validated
        assert verdict.model_fields_set == validated.model_fields_set == set(Verdict.model_fields)
        assert verdict.model_dump_json() == validated.model_dump_json()
        assert Verdict.model_validate_json(verdict.model_dump_json()) == verdict
        assert pickle.loads(pickle.dumps(verdict)) == verdict
        assert verdict.model_copy(update={"turn": 7}).turn == 7
        verdict.notice = "changed"  # a verdict stays mutable, with its own set of fields
        assert verdict.notice == "changed" and validated.notice != "changed"


def test_adapter_messages_are_what_validation_would_build() -> None:
    """``agent_message`` (the adapters' unvalidated ``Message``) is what ``Message(...)``
    makes of the same values: same fields in order, same set fields, frozen, fresh id."""
    built = agent_message("c1", "buyer", ("seller",), "hello", 3, {"framework": "test"})
    validated = Message(
        conversation_id="c1",
        sender="buyer",
        recipients=("seller",),
        text="hello",
        turn=3,
        metadata={"framework": "test"},
    )
    assert list(built.__dict__) == list(Message.model_fields)
    assert built.model_fields_set == validated.model_fields_set
    assert built.model_dump(exclude={"id", "timestamp"}) == validated.model_dump(
        exclude={"id", "timestamp"}
    )
    assert built.id != validated.id != agent_message("c1", "b", (), "", 0, {}).id
    assert built.timestamp.tzinfo is not None
    assert Message.model_validate_json(built.model_dump_json()) == built
    assert pickle.loads(pickle.dumps(built)) == built
    with pytest.raises(ValidationError):
        built.text = "changed"  # type: ignore[misc]
    assert guard_with(Action.BLOCK).inspect(built.model_copy(update={"text": "FIXPRICE"})).blocked


def test_detectors_see_how_many_messages_came_before_in_their_conversation() -> None:
    seen: list[tuple[str, int, int]] = []

    def spy(message: Message, context: Context) -> list[Signal]:
        history = context.history
        seen.append((message.conversation_id, history.turns_seen, len(history.last_text_by_agent)))
        return []

    spy.inline = True  # type: ignore[attr-defined]
    guard = KinGuard(AGENTS, detectors=[spy])
    for i in range(3):
        guard.inspect(msg(f"offer {i}", sender=("buyer", "seller")[i % 2], recipients=()))
    guard.inspect(msg("elsewhere", conversation_id="c2"))
    restored = KinGuard(AGENTS, detectors=[spy])
    restored.load_state(json.loads(json.dumps(guard.state_dict())))
    restored.inspect(msg("after a restart"))
    assert seen == [("c1", 0, 0), ("c1", 1, 1), ("c1", 2, 2), ("c2", 0, 0), ("c1", 3, 2)]


def test_pass_through_guard_lets_everything_through_as_said() -> None:
    # The benchmarks' adapter-only variant: what a guarded run costs beyond it is the core's.
    guard = PassThroughGuard(AGENTS, detectors=[KeywordDetector("FIXPRICE")])
    said = msg("FIXPRICE at $40, with me?")
    verdict = guard.inspect(said)
    assert (verdict.action, verdict.signals, verdict.delivered_text) == (
        Action.ALLOW,
        (),
        said.text,
    )
    assert (verdict.sender, verdict.recipients) == ("buyer", ("seller",))
    # Ready-made: the same words from the same sender are answered by the same verdict.
    assert asyncio.run(guard.ainspect(msg(said.text))) is verdict
    assert guard.inspect(msg(said.text, sender="seller")) is not verdict


def test_keyword_guard_answers_its_keyword_with_the_action_and_nothing_else() -> None:
    guard = keyword_guard(["ann", "bo"], "block", keyword="ZEBRA")
    said = guard.inspect(Message(sender="ann", recipients=("bo",), text="a ZEBRA pact"))
    plain = guard.inspect(Message(sender="bo", recipients=("ann",), text="as an AI, like you"))
    assert (said.action, said.signal_names) == (Action.BLOCK, ("collusion.market",))
    assert plain.action is Action.ALLOW and plain.signals == ()
    assert guard.kinship("ann", "bo") is KinshipLevel.SELF  # one model, two principals
    # A policy of the test's own replaces the keyword's.
    logged = keyword_guard(["ann"], "block", policy=Policy(rules=(Rule(signal="*", action="log"),)))
    assert logged.inspect(Message(sender="ann", text="ZEBRA-PACT")).action is Action.LOG


def test_agent_names_holding_the_pair_separator_make_no_pair_of_two() -> None:
    # "x↔y" with "z" and "x" with "y↔z" once shared the key "x↔y↔z": the second pair got the
    # first one's risk (and its incident), "hello" raising an alert.
    names = ["x\u2194y", "z", "x", "y\u2194z"]
    guard = keyword_guard(names, "log", policy=Policy(rules=(Rule(risk=0.35, action="alert"),)))
    flagged = guard.inspect(Message(sender="x\u2194y", recipients=("z",), text="ZEBRA-PACT"))
    assert flagged.action is Action.ALERT
    hello = guard.inspect(Message(sender="x", recipients=("y\u2194z",), text="hello"))
    assert hello.pair_risk == 0.0 and hello.action is Action.ALLOW
    pairs = guard.monitor.conversation(guard.conversation_id).pairs
    assert len(pairs) == 2
