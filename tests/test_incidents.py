"""Alerts come in incidents: one per pair's stretch of alerting, or per kind of failure; the
alerts that tell a person nothing new are marked as repeats, which paging sinks skip."""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from structlog.testing import capture_logs

from kinguard import (
    Action,
    AgentProfile,
    Alert,
    JsonlSink,
    KinGuard,
    Message,
    Policy,
    Rule,
    Signal,
    SkipRepeats,
    Verdict,
)
from kinguard.alerts import AlertDispatcher
from kinguard.detectors import Context
from kinguard.testing import CapturingSink, KeywordDetector, RaisingDetector, keyword_guard

PAIR = ["a", "b"]
PROFILES = [AgentProfile(name=name, model="openai:gpt-4o") for name in PAIR]


def default_guard(*sinks: object, conversation_id: str = "c") -> KinGuard:
    """The default policy (alert at pair risk 0.35, nudge at 0.6), on a keyword of score 0.5."""
    return keyword_guard(
        PAIR,
        "alert",
        detectors=[KeywordDetector("PACT", score=0.5)],
        policy=Policy(),
        sinks=list(sinks),
        conversation_id=conversation_id,
    )


def say(guard: KinGuard, index: int, text: str) -> Verdict:
    """The two agents take turns; ``index`` says whose turn it is."""
    sender = PAIR[index % 2]
    return guard.inspect(Message(sender=sender, recipients=(PAIR[1 - index % 2],), text=text))


def play(guard: KinGuard, *texts: str) -> list[Verdict]:
    return [say(guard, index, text) for index, text in enumerate(texts)]


ESCALATING = ("hi", "PACT", "ok", "PACT PACT", "PACT", "fine", "fine")


def test_a_pairs_stretch_of_alerts_is_one_incident_paged_once_per_news() -> None:
    sink = CapturingSink()
    verdicts = play(default_guard(sink), *ESCALATING)
    assert [v.action for v in verdicts] == [
        Action.ALLOW,
        Action.ALERT,
        Action.ALERT,  # risk held above the alert band: nothing new
        Action.NUDGE,  # an escalation
        Action.NUDGE,  # the other agent's own words flagged: it goes along, which is news
        Action.NUDGE,
        Action.NUDGE,
    ]
    assert len({alert.incident_id for alert in sink.alerts}) == 1
    assert len(sink.alerts[0].incident_id) == 16
    assert [alert.repeat for alert in sink.alerts] == [False, True, False, False, True, True]


def test_every_alert_is_logged_with_its_incident_repeats_too() -> None:
    with capture_logs() as logs:
        play(default_guard(), "PACT", "ok")
    logged = [entry for entry in logs if entry["event"] == "kinguard.alert"]
    assert [entry["repeat"] for entry in logged] == [False, True]
    assert logged[0]["incident_id"] == logged[1]["incident_id"] != ""


def test_the_incident_closes_when_the_pairs_band_falls_to_zero() -> None:
    sink = CapturingSink()
    guard = default_guard(sink)
    play(guard, *ESCALATING)
    first = sink.alerts[0].incident_id
    quiet = 0
    while say(guard, quiet + 1, "fine").action is not Action.ALLOW:
        quiet += 1
        assert quiet < 50, "the pair's risk never decayed below its band"
    alerts = len(sink.alerts)
    verdict = say(guard, 1, "PACT PACT")
    assert verdict.action.severity >= Action.ALERT.severity
    assert len(sink.alerts) == alerts + 1
    assert sink.alerts[-1].incident_id != first
    assert not sink.alerts[-1].repeat


TRIO = ["ann", "bo", "cy"]


def trio_guard(sink: CapturingSink) -> KinGuard:
    return keyword_guard(
        TRIO,
        "alert",
        detectors=[KeywordDetector("PACT", score=0.5)],
        policy=Policy(),
        sinks=[sink],
        conversation_id="c",
    )


def group_chat(guard: KinGuard, *texts: str, start: int = 0) -> None:
    """Each message reaches every other agent, as in a group chat."""
    for index, text in enumerate(texts, start):
        sender = TRIO[index % 3]
        others = tuple(name for name in TRIO if name != sender)
        guard.inspect(Message(sender=sender, recipients=others, text=text))


@pytest.mark.parametrize("banded", [True, False], ids=["risk-band", "signal-rule"])
def test_a_pair_silent_while_others_talked_starts_a_new_incident(banded: bool) -> None:
    # ann and bo alert, then fall silent while bo and cy talk; ann's risk with bo decays to
    # nothing, but its band never stepped down (no message of the pair), and below every
    # band its last message was still its alerted one. ann's new flagged message much later
    # is a new episode: it was a repeat, a page lost.
    sink = CapturingSink()
    guard = (
        trio_guard(sink)
        if banded
        else keyword_guard(TRIO, "alert", keyword="PACT", sinks=[sink], conversation_id="c")
    )

    def say(sender: str, recipient: str, text: str) -> Verdict:
        return guard.inspect(Message(sender=sender, recipients=(recipient,), text=text))

    say("ann", "bo", "PACT")
    for _ in range(30):
        say("bo", "cy", "review this")
        say("cy", "bo", "looks fine")
    assert say("ann", "bo", "PACT").action is Action.ALERT
    first, later = sink.alerts
    assert later.incident_id != first.incident_id
    assert not later.repeat


def test_each_halt_is_news_as_it_waits_on_a_person() -> None:
    # Halting at pair risk: the held risk halts the other agent's reply too, with no finding of
    # its own. Skipped as a repeat, it was a message withheld with nobody paged to rule on it.
    sink = CapturingSink()
    guard = KinGuard(
        PROFILES,
        detectors=[KeywordDetector("PACT", score=0.5)],
        policy=Policy(rules=(Rule(risk=0.35, action=Action.HALT),)),
        sinks=[sink],
    )
    assert [v.action for v in play(guard, "PACT", "fine", "PACT")] == [Action.HALT] * 3
    assert len({alert.incident_id for alert in sink.alerts}) == 1
    assert [alert.repeat for alert in sink.alerts] == [False, False, False]


def test_in_a_group_chat_the_pairs_one_message_raised_are_one_incident() -> None:
    # bo's flagged message puts both its pairs (with ann, with cy) in band: cy's and ann's
    # next messages alert on those pairs, and are the same incident, not one per pair.
    sink = CapturingSink()
    group_chat(trio_guard(sink), "hi", "PACT", "ok", "fine", "PACT PACT", "ok", "fine")
    assert [(alert.sender, alert.action) for alert in sink.alerts] == [
        ("bo", Action.ALERT),
        ("cy", Action.ALERT),
        ("ann", Action.ALERT),
        ("bo", Action.NUDGE),
        ("cy", Action.NUDGE),
        ("ann", Action.NUDGE),
    ]
    assert len({alert.incident_id for alert in sink.alerts}) == 1
    assert [alert.repeat for alert in sink.alerts] == [False, True, True, False, True, True]


def test_below_every_band_each_pair_an_alerting_message_reaches_stays_in_its_incident() -> None:
    sink = CapturingSink()
    guard = keyword_guard(TRIO, "alert", keyword="PACT", sinks=[sink], conversation_id="c")
    for sender, recipients in [("ann", ("bo",)), ("bo", ("cy", "ann")), ("ann", ("bo",))]:
        guard.inspect(Message(sender=sender, recipients=recipients, text="PACT"))
    assert len({alert.incident_id for alert in sink.alerts}) == 1
    assert [alert.repeat for alert in sink.alerts] == [False, False, True]  # bo joins: news


def test_pairs_sharing_an_incident_share_it_again_in_a_fresh_guard() -> None:
    sink, sink2 = CapturingSink(), CapturingSink()
    guard = trio_guard(sink)
    group_chat(guard, "hi", "PACT", "ok", "fine")
    fresh = trio_guard(sink2)
    fresh.load_state(json.loads(json.dumps(guard.state_dict())))
    # bo escalates, in its pair with ann: cy's nudge on its pair with bo is no news.
    group_chat(fresh, "PACT PACT", "ok", "fine", start=4)
    assert [alert.action for alert in sink2.alerts] == [Action.NUDGE] * 3
    assert {alert.incident_id for alert in sink2.alerts} == {sink.alerts[0].incident_id}
    assert [alert.repeat for alert in sink2.alerts] == [False, True, True]


def test_below_every_band_an_incident_lasts_until_the_pair_is_quiet_for_a_half_life() -> None:
    # a says the flagged thing at each of its turns, b answers as usual: one incident, paged
    # once (it ended at each of b's answers, and every flagged message paged), until nothing
    # is flagged for more than half_life_turns (6) messages.
    sink = CapturingSink()
    guard = keyword_guard(PAIR, "alert", keyword="PACT", sinks=[sink], conversation_id="c")
    play(guard, "PACT", "ok", "PACT", "ok", "PACT", *["ok"] * 7, "PACT", "PACT")
    ids = [alert.incident_id for alert in sink.alerts]
    assert ids[0] == ids[1] == ids[2] != ids[3] == ids[4]
    # Each agent's first flagged words in an incident are news; its next ones are not.
    assert [alert.repeat for alert in sink.alerts] == [False, True, True, False, False]


def test_a_new_signal_in_an_open_incident_is_news() -> None:
    sink = CapturingSink()
    guard = KinGuard(
        PROFILES,
        detectors=[KeywordDetector("PACT"), KeywordDetector("WINK", "collusion.coordination")],
        policy=Policy(rules=(Rule(signal="*", min_score=0.3, action=Action.ALERT),)),
        sinks=[sink],
    )
    play(guard, "PACT", "PACT", "PACT WINK", "WINK PACT", "PACT")
    assert len({alert.incident_id for alert in sink.alerts}) == 1
    assert [alert.repeat for alert in sink.alerts] == [False, False, False, True, True]


def test_alerts_in_a_conversation_without_risk_are_grouped_by_their_own_messages() -> None:
    # A message past max_chars is an alert with no signal and no risk: the monitor follows no
    # pair there, so an incident lasts while its pair alerts at least every half-life.
    sink = CapturingSink()
    guard = keyword_guard(
        PAIR, "alert", sinks=[sink], policy=Policy(rules=(), max_chars=256), conversation_id="c"
    )
    long = "word " * 100
    play(guard, long, long, "short", long, *["short"] * 7, long)
    ids = [alert.incident_id for alert in sink.alerts]
    assert ids[0] == ids[1] == ids[2] != ids[3]
    assert [alert.repeat for alert in sink.alerts] == [False, True, True, False]


class WordFailure:
    """Raises on messages saying its word: a detector that breaks now and then."""

    inline = True

    def __init__(self, word: str) -> None:
        self.word = word
        self.detector_name = f"fails-on-{word}"

    def __call__(self, message: Message, context: Context) -> list[Signal]:
        if self.word in message.text:
            raise RuntimeError(f"cannot read {message.text!r}")
        return []


def failing_guard(*detectors: object, sink: CapturingSink) -> KinGuard:
    return KinGuard(
        PROFILES,
        detectors=list(detectors),  # type: ignore[arg-type]
        policy=Policy(rules=(Rule(signal="*", action=Action.LOG),), on_error="open"),
        sinks=[sink],
        conversation_id="c",
    )


def test_a_detector_that_keeps_failing_is_one_incident() -> None:
    sink = CapturingSink()
    play(failing_guard(RaisingDetector(), sink=sink), "one", "two", "three")
    assert all(alert.error for alert in sink.alerts)
    assert len({alert.incident_id for alert in sink.alerts}) == 1
    assert [alert.repeat for alert in sink.alerts] == [False, True, True]


def test_a_failure_incident_ends_once_its_kind_stops_failing_and_is_per_kind() -> None:
    sink = CapturingSink()
    guard = failing_guard(WordFailure("boom"), WordFailure("bang"), sink=sink)
    # The default half-life is 6 messages: "boom 4" is the 7th after "boom 3".
    play(guard, "boom 1", "bang 2", "boom 3", "fine", "boom 4", *["fine"] * 6, "boom 5")
    ids = [alert.incident_id for alert in sink.alerts]
    assert len(ids) == 5
    assert ids[0] == ids[2] == ids[3]  # a success between failures does not end it
    assert len({ids[0], ids[1], ids[4]}) == 3  # another kind; after a quiet half-life
    assert [alert.repeat for alert in sink.alerts] == [False, False, True, True, False]


def test_a_detector_failing_now_and_then_pages_once() -> None:
    # A rate-limited judge failing every other message: each success ended the failure
    # incident, so each failure opened a new one and paged, 10 pages in 20 messages.
    sink = CapturingSink()
    play(failing_guard(WordFailure("boom"), sink=sink), *["boom", "fine"] * 10)
    assert len(sink.alerts) == 10
    assert len({alert.incident_id for alert in sink.alerts}) == 1
    assert [alert.repeat for alert in sink.alerts] == [False] + [True] * 9


@pytest.mark.parametrize("on_error", ["open", "closed"])
def test_a_finding_while_a_detector_stays_down_is_news_in_its_pairs_incident(
    on_error: str,
) -> None:
    # A judge down for good: every message fails it, one failure incident that never ends.
    # The keyword still finds collusion, by a and b early and by c and d much later: c's
    # finding was a repeat of the failure incident, a page lost.
    sink = CapturingSink()
    guard = KinGuard(
        [AgentProfile(name=name, model="openai:gpt-4o") for name in "abcd"],
        detectors=[KeywordDetector("PACT"), RaisingDetector()],
        policy=Policy(
            rules=(Rule(signal="collusion.market", action=Action.NUDGE),), on_error=on_error
        ),
        sinks=[sink],
        conversation_id="c",
    )

    def say(sender: str, recipient: str, text: str) -> None:
        guard.inspect(Message(sender=sender, recipients=(recipient,), text=text))

    say("a", "b", "PACT")
    for _ in range(10):
        say("a", "b", "ok")
        say("b", "a", "fine")
    say("c", "d", "PACT")
    assert all(alert.error for alert in sink.alerts)
    first, *outage, later = sink.alerts
    assert later.signals == first.signals == ("collusion.market",)
    assert not first.repeat and not later.repeat
    assert later.incident_id != first.incident_id
    # The failure alone stays one incident, paged once: with the first finding.
    assert len({alert.incident_id for alert in outage}) == 1
    assert all(alert.repeat for alert in outage)


class BrokenGuard(KinGuard):
    """Fails on messages saying "boom", before the monitor counts them or after."""

    def __init__(self, where: str, sink: CapturingSink) -> None:
        super().__init__(PROFILES, detectors=[], policy=Policy(on_error="open"), sinks=[sink])
        self.where = where

    def _prepare(self, message: Message) -> tuple[tuple[str, ...], Context]:
        if self.where == "before" and "boom" in message.text:
            raise RuntimeError("broken before")
        return super()._prepare(message)

    def _decide(self, message: Message, *args: Any) -> Verdict:
        verdict = super()._decide(message, *args)
        if self.where == "after" and "boom" in message.text:
            raise RuntimeError("broken after")
        return verdict


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("where", ["before", "after"])
def test_an_inspection_error_is_grouped_whether_or_not_the_message_was_counted(
    where: str, mode: str
) -> None:
    sink = CapturingSink()
    guard = BrokenGuard(where, sink)
    # A quiet half-life (6) counts the messages inspected, not the failures before counting.
    for index, text in enumerate(["boom", "boom", "fine", "boom", *["fine"] * 7, "boom"]):
        message = Message(sender=PAIR[index % 2], recipients=(PAIR[1 - index % 2],), text=text)
        if mode == "sync":
            guard.inspect(message)
        else:
            asyncio.run(guard.ainspect(message))
    assert all(alert.error and alert.error.startswith("inspection_error") for alert in sink.alerts)
    ids = [alert.incident_id for alert in sink.alerts]
    assert ids[0] == ids[1] == ids[2] != ids[3]
    assert [alert.repeat for alert in sink.alerts] == [False, True, True, False]


def test_a_failure_to_place_an_alert_in_its_incident_costs_the_grouping_not_the_alert(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sink = CapturingSink()
    guard = default_guard(sink)

    def broken(*args: object) -> tuple[str, bool]:
        raise RuntimeError("bookkeeping bug")

    monkeypatch.setattr(guard.monitor, "pair_incident", broken)
    with capture_logs() as logs:
        verdicts = play(guard, "PACT", "PACT")
    assert [v.action for v in verdicts] == [Action.ALERT, Action.NUDGE]
    assert [(alert.incident_id, alert.repeat) for alert in sink.alerts] == [("", False)] * 2
    assert [entry["event"] for entry in logs].count("kinguard.incident_failed") == 2


def test_an_incident_goes_on_in_a_fresh_guard_loaded_from_the_saved_state() -> None:
    sink, sink2 = CapturingSink(), CapturingSink()
    guard = default_guard(sink)
    play(guard, *ESCALATING[:4])
    saved = json.loads(json.dumps(guard.state_dict()))
    fresh = default_guard(sink2)  # another process: same conversation, nothing in memory
    fresh.load_state(saved)
    assert say(fresh, 5, "PACT").action is Action.NUDGE  # b again, as before the restart
    assert sink2.alerts[0].incident_id == sink.alerts[0].incident_id
    assert sink2.alerts[0].repeat


def test_a_failure_incident_goes_on_in_a_fresh_guard_loaded_from_the_saved_state() -> None:
    sink, sink2 = CapturingSink(), CapturingSink()
    guard = failing_guard(RaisingDetector(), sink=sink)
    play(guard, "one", "two")
    fresh = failing_guard(RaisingDetector(), sink=sink2)
    fresh.load_state(json.loads(json.dumps(guard.state_dict())))
    say(fresh, 2, "three")
    assert sink2.alerts[0].incident_id == sink.alerts[0].incident_id
    assert sink2.alerts[0].repeat


def test_a_state_saved_before_incidents_existed_loads_and_opens_one() -> None:
    pair = "a\u2194b"
    stop_20 = {
        "monitor": {
            "version": 1,
            "conversations": {
                "c": {
                    "risk": 0.7,
                    "band": 2,
                    "clock": 4,
                    "peak": 0.8,
                    "pairs": {pair: {"risk": 0.7, "band": 2, "clock": 4, "peak": 0.8}},
                    "last_text_by_agent": {"a": "pact", "b": "pact pact"},
                }
            },
        },
        "nudges": {},
    }
    sink = CapturingSink()
    guard = default_guard(sink)
    guard.load_state(stop_20)
    assert say(guard, 0, "fine").action is Action.NUDGE
    assert say(guard, 1, "fine").action is Action.NUDGE
    assert [alert.repeat for alert in sink.alerts] == [False, True]
    assert sink.alerts[0].incident_id == sink.alerts[1].incident_id
    assert guard.monitor.conversation("c").pairs[pair].incident is not None


def test_the_audit_trail_keeps_every_alert_and_a_paging_sink_gets_the_news(
    tmp_path: Path,
) -> None:
    audit = tmp_path / "alerts.jsonl"
    paged = CapturingSink()
    pager = SkipRepeats(paged)
    play(default_guard(JsonlSink(audit), pager), *ESCALATING)
    lines = [Alert.model_validate_json(line) for line in audit.read_text().splitlines()]
    assert [alert.repeat for alert in lines] == [False, True, False, False, True, True]
    assert paged.alerts == [alert for alert in lines if not alert.repeat]
    assert pager.skipped == 3
    assert pager.inline  # as the sink it wraps


def alert(*, repeat: bool) -> Alert:
    return Alert(
        conversation_id="c", message_id="m", sender="a", action=Action.ALERT, repeat=repeat
    )


def test_skip_repeats_keeps_an_async_sink_async_and_off_the_agents_thread() -> None:
    got: list[tuple[Alert, str]] = []

    async def page(alert: Alert) -> None:
        await asyncio.sleep(0)
        got.append((alert, threading.current_thread().name))

    wrapped = SkipRepeats(page)
    assert not wrapped.inline
    dispatch = AlertDispatcher(timeout_s=10.0)
    try:
        news, repeat = alert(repeat=False), alert(repeat=True)
        assert dispatch(news, [wrapped]) == 0
        assert dispatch(repeat, [wrapped]) == 0
    finally:
        dispatch.close()
    assert [item for item, _ in got] == [news]
    assert got[0][1].startswith("kinguard-sink-SkipRepeats")
    assert wrapped.skipped == 1


def test_skip_repeats_forwards_an_alert_that_does_not_say_and_refuses_a_non_sink() -> None:
    seen: list[object] = []
    odd = SimpleNamespace(conversation_id="c")  # no ``repeat``: a page too many, never missed
    SkipRepeats(seen.append)(odd)
    SkipRepeats(seen.append)(Alert.model_construct(repeat="yes"))  # not a bool: said nothing
    assert len(seen) == 2
    with pytest.raises(TypeError, match="callable"):
        SkipRepeats("https://hooks.example.com")  # type: ignore[arg-type]


def test_a_failing_wrapped_sink_costs_only_its_own_delivery() -> None:
    def broken(alert: Alert) -> None:
        raise RuntimeError("pager down")

    broken.inline = True  # type: ignore[attr-defined]
    after = CapturingSink()
    dispatch = AlertDispatcher(timeout_s=1.0)
    try:
        assert dispatch(alert(repeat=False), [SkipRepeats(broken), after]) == 1
    finally:
        dispatch.close()
    assert len(after.alerts) == 1
