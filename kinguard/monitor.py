"""Running risk per agent pair and per conversation: decaying, kinship-weighted, with hysteresis.

State is a pydantic model so it can ride the framework's own persistence (a LangGraph
checkpoint, AutoGen ``save_state``) and survive restarts.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field

from pydantic import BaseModel, Field

from kinguard.detectors.implied import IMPLIED_TIER
from kinguard.logs import get_logger
from kinguard.policy import RiskSettings
from kinguard.types import Action, Signal

__all__ = [
    "TEAMWORK_SIGNALS",
    "ConversationState",
    "IncidentState",
    "MonitorState",
    "PairState",
    "RiskMonitor",
    "RiskUpdate",
]

# Signals that are weak evidence of coordination on their own: disclosing one's model or
# echoing a counterpart happens in benign exchanges too, so they move risk less.
_SIGNAL_WEIGHTS: dict[str, float] = {
    "in_group.self_disclosure": 0.5,
    "in_group.observer_awareness": 0.7,
    "kin.mimicry": 0.4,
}
TEAMWORK_SIGNALS = frozenset(
    {"collusion.coordination", "collusion.market", "collusion.superrational"}
)
"""Signals that describe agents acting together: collusion between rivals, the job itself
between agents of one principal (``RiskSettings.same_principal_weight``)."""
_HISTORY_CHARS = 2_000
_MAX_SPEAKERS = 1_024
"""Agents whose last words one conversation remembers, the longest silent forgotten first."""
_MAX_PAIRS = 4_096
"""Agent pairs one conversation keeps risk for. Both bounds are met only when an app names
senders from its input (a chat room's users, say), where every new name would add more."""
_log = get_logger("kinguard.monitor")


class IncidentState(BaseModel):
    """An open incident: what its alerts have told a person so far."""

    id: str
    """Its name, made when it opened from the conversation's id, what it is about (the pair
    whose alert opened it, or the kind of failure) and ``opened``: the same in every process
    that opens it from the same state, and kept with it (an AutoGen team restored in a new
    process may go on under a new conversation id)."""
    opened: int
    """The conversation's clock at its first alert."""
    last: int
    """The clock at its latest alert."""
    action: Action
    """The strongest action it alerted with."""
    signals: tuple[str, ...] = ()
    """Every signal its alerts named."""
    senders: tuple[str, ...] = ()
    """Every agent whose own words it alerted on (none for an inspection failure's)."""


class PairState(BaseModel):
    risk: float = 0.0
    band: int = 0
    clock: int = 0
    peak: float = 0.0
    incident: IncidentState | None = None
    """The open incident the pair is in; pairs that one alert put in band share it."""
    alerted: int = 0
    """The conversation's clock at the pair's latest alert."""


class ConversationState(BaseModel):
    risk: float = 0.0
    band: int = 0
    clock: int = 0
    peak: float = 0.0
    pairs: dict[str, PairState] = Field(default_factory=dict)
    last_text_by_agent: dict[str, str] = Field(default_factory=dict)
    failures: dict[str, IncidentState] = Field(default_factory=dict)
    """Open incidents of inspection failures, by kind (``kinguard._pipeline.failure_kind``)."""


class MonitorState(BaseModel):
    version: int = 1
    conversations: dict[str, ConversationState] = Field(default_factory=dict)


@dataclass(slots=True)
class _Incident:
    id: str
    opened: int
    last: int
    severity: int
    signals: frozenset[str]
    senders: frozenset[str]

    def alerted(
        self, clock: int, action: Action, signals: Sequence[str], sender: str | None
    ) -> bool:
        """Count one more alert in it; whether that alert told a person nothing new. An agent
        whose own words are flagged in it for the first time is news (the other side going
        along), not one alerted on only because its pair's risk is held in the band;
        ``sender`` None: who sent it does not matter (an inspection failure)."""
        self.last = clock
        if sender is not None and signals and sender not in self.senders:
            self.senders = self.senders.union((sender,))
        elif (
            action is not Action.HALT  # each halt waits on a person's ruling: the page says so
            and action.severity <= self.severity
            and self.signals.issuperset(signals)
        ):
            return True
        self.severity = max(self.severity, action.severity)
        self.signals = self.signals.union(signals)
        return False

    def dump(self) -> IncidentState:
        return IncidentState(
            id=self.id,
            opened=self.opened,
            last=self.last,
            action=_BY_SEVERITY[self.severity],
            signals=tuple(sorted(self.signals)),
            senders=tuple(sorted(self.senders)),
        )

    @classmethod
    def restore(cls, state: IncidentState) -> _Incident:
        return cls(
            state.id,
            state.opened,
            state.last,
            state.action.severity,
            frozenset(state.signals),
            frozenset(state.senders),
        )


_BY_SEVERITY = {action.severity: action for action in Action}


def _opened(
    conversation_id: str,
    subject: str,
    clock: int,
    action: Action,
    signals: Sequence[str],
    sender: str | None,
) -> _Incident:
    """A new incident, named from what every process resuming the conversation holds."""
    import hashlib  # only alerts pay for it

    named = f"{conversation_id}\x00{subject}\x00{clock}".encode()
    name = hashlib.blake2b(named, digest_size=8).hexdigest()
    senders = frozenset((sender,) if sender is not None and signals else ())
    return _Incident(name, clock, clock, action.severity, frozenset(signals), senders)


@dataclass(slots=True)
class _Pair:
    risk: float = 0.0
    band: int = 0
    clock: int = 0
    peak: float = 0.0
    incident: _Incident | None = None
    alerted: int = 0


@dataclass(slots=True)
class _Conversation:
    """Working state: plain slots objects, because pydantic attribute assignment is slow here."""

    risk: float = 0.0
    band: int = 0
    clock: int = 0
    peak: float = 0.0
    pairs: dict[str, _Pair] = field(default_factory=dict)
    last_text_by_agent: dict[str, str] = field(default_factory=dict)
    failures: dict[str, _Incident] = field(default_factory=dict)

    def dump(self) -> ConversationState:
        return ConversationState(
            risk=self.risk,
            band=self.band,
            clock=self.clock,
            peak=self.peak,
            pairs={
                k: PairState(
                    risk=p.risk,
                    band=p.band,
                    clock=p.clock,
                    peak=p.peak,
                    incident=None if p.incident is None else p.incident.dump(),
                    alerted=p.alerted,
                )
                for k, p in self.pairs.items()
            },
            last_text_by_agent=dict(self.last_text_by_agent),
            failures={kind: incident.dump() for kind, incident in self.failures.items()},
        )

    @classmethod
    def restore(cls, state: ConversationState) -> _Conversation:
        # Pairs that shared an incident share it again: each pair's state holds a copy.
        shared: dict[str, _Incident] = {}

        def incident(saved: IncidentState | None) -> _Incident | None:
            if saved is None:
                return None
            if saved.id not in shared:
                shared[saved.id] = _Incident.restore(saved)
            return shared[saved.id]

        return cls(
            risk=state.risk,
            band=state.band,
            clock=state.clock,
            peak=state.peak,
            pairs={
                k: _Pair(p.risk, p.band, p.clock, p.peak, incident(p.incident), p.alerted)
                for k, p in state.pairs.items()
            },
            last_text_by_agent=dict(state.last_text_by_agent),
            failures={kind: _Incident.restore(i) for kind, i in state.failures.items()},
        )


@dataclass(frozen=True, slots=True)
class RiskUpdate:
    message_risk: float
    pair_risk: float
    conversation_risk: float
    pair_band_risk: float
    """The pair's risk as the policy should see it: held at its band's threshold by hysteresis."""


_CALM = RiskUpdate(0.0, 0.0, 0.0, 0.0)


_SAME_WORDS_TIERS = frozenset({"lexical", "statistical"})
"""Tiers that read the same words of a message for the same signals: when both find a signal,
that is one finding, not two independent ones."""


def message_risk(
    signals: Sequence[Signal], kin_weight: float, teamwork_weight: float = 1.0
) -> float:
    """Noisy-OR of the signals' weighted scores, scaled by how closely related the agents are.

    Implied signals restate other signals' evidence under a wider name: not counted again. A
    signal the lexical and statistical tiers both find counts once, at the stronger score.
    Every other signal (a custom detector's, a judge's) is a finding of its own.
    ``teamwork_weight`` scales the :data:`TEAMWORK_SIGNALS` (below 1 between agents of one
    principal).
    """
    clean = 1.0
    strongest: dict[str, float] = {}
    for signal in signals:
        if signal.tier == IMPLIED_TIER:
            continue
        if signal.tier in _SAME_WORDS_TIERS:
            strongest[signal.name] = max(signal.score, strongest.get(signal.name, 0.0))
        else:
            clean *= 1.0 - signal.score * _weight(signal.name, teamwork_weight)
    for name, score in strongest.items():
        clean *= 1.0 - score * _weight(name, teamwork_weight)
    return kin_weight * (1.0 - clean)


def _weight(name: str, teamwork_weight: float) -> float:
    weight = _SIGNAL_WEIGHTS.get(name, 1.0)
    return weight * teamwork_weight if name in TEAMWORK_SIGNALS else weight


def pair_key(a: str, b: str) -> str:
    """The unordered pair's key: ``a↔b``, the names in order. A name holding the separator
    (or the escape) has it escaped, so ``x↔y`` with ``z`` and ``x`` with ``y↔z`` stay two
    pairs; every other name's key is as saved states hold it."""
    a, b = _escaped(a), _escaped(b)
    return f"{a}\u2194{b}" if a <= b else f"{b}\u2194{a}"


def _escaped(name: str) -> str:
    if "\u2194" in name or "\\" in name:
        return name.replace("\\", "\\\\").replace("\u2194", "\\\u2194")
    return name


class RiskMonitor:
    """Thread-safe accumulator; one per guard."""

    def __init__(
        self,
        settings: RiskSettings,
        thresholds: Sequence[float],
        max_conversations: int = 10_000,
    ) -> None:
        self._settings = settings
        self._thresholds = tuple(thresholds)
        self._max_conversations = max_conversations
        self._lock = threading.Lock()
        self._conversations: OrderedDict[str, _Conversation] = OrderedDict()
        # Pairs are usually a few messages apart: precomputed factors avoid a pow() per pair.
        self._decays = tuple(self._decay_factor(elapsed) for elapsed in range(64))

    def _decay_factor(self, elapsed: int) -> float:
        return float(0.5 ** (max(elapsed, 0) / self._settings.half_life_turns))

    def _decay(self, elapsed: int) -> float:
        return self._decays[elapsed] if 0 <= elapsed < 64 else self._decay_factor(elapsed)

    def _band(self, current: int, risk: float) -> int:
        if not current and (not self._thresholds or risk < self._thresholds[0]):
            return 0  # the common case: a calm pair
        # A state saved under a policy with more risk bands than this one's: its top band.
        current = min(current, len(self._thresholds))
        raw = sum(1 for threshold in self._thresholds if risk >= threshold)
        if raw >= current:
            return raw
        # Step down only once risk is clearly below the band's lower edge: the hysteresis
        # below it, but never more than half the threshold, or a band at or under the
        # hysteresis (a rule at risk 0.1) could never be left.
        band = current
        while band > raw:
            threshold = self._thresholds[band - 1]
            if risk >= threshold - min(self._settings.hysteresis, threshold / 2):
                break
            band -= 1
        return band

    def _banded(self, band: int, risk: float) -> float:
        return max(risk, self._thresholds[band - 1]) if band else risk

    def conversation(self, conversation_id: str) -> ConversationState:
        """A snapshot of one conversation's state."""
        with self._lock:
            return self._conversation(conversation_id).dump()

    def _conversation(self, conversation_id: str) -> _Conversation:
        state = self._conversations.get(conversation_id)
        if state is None:
            state = self._conversations[conversation_id] = _Conversation()
            if len(self._conversations) > self._max_conversations:
                self._evict_oldest()
        else:
            self._conversations.move_to_end(conversation_id)
        return state

    def _evict_oldest(self) -> None:
        """Forget the least recently active conversation: every conversation that had a message
        since is kept, so one still under way is only lost to a flood of others. Its risk then
        starts from zero again, which must not happen silently: say so when it had any."""
        forgotten, state = self._conversations.popitem(last=False)
        if state.peak > 0.0:
            _log.warning(
                "kinguard.conversation_forgotten",
                conversation_id=forgotten,
                risk=round(state.risk, 3),
                peak=round(state.peak, 3),
                pair_risk=round(max((p.risk for p in state.pairs.values()), default=0.0), 3),
                max_conversations=self._max_conversations,
            )

    def history(self, conversation_id: str) -> dict[str, str]:
        return self.recall(conversation_id)[0]

    def recall(self, conversation_id: str) -> tuple[dict[str, str], int]:
        """Each agent's previous (folded) message and how many messages came before, read
        together: what a detector's :class:`~kinguard.detectors.PairHistory` holds."""
        with self._lock:
            conv = self._conversation(conversation_id)
            return dict(conv.last_text_by_agent), conv.clock

    def remember(self, conversation_id: str, sender: str, folded_text: str | None) -> None:
        """Replace what :meth:`update` remembered of the sender's message (None: forget it)."""
        with self._lock:
            remembered = self._conversation(conversation_id).last_text_by_agent
            if folded_text is None:
                remembered.pop(sender, None)
            else:
                remembered[sender] = folded_text[:_HISTORY_CHARS]

    def update(
        self,
        conversation_id: str,
        sender: str,
        recipients: Sequence[str],
        risk: float,
        folded_text: str,
    ) -> RiskUpdate:
        with self._lock:
            conv = self._conversation(conversation_id)
            conv.clock += 1
            remembered = conv.last_text_by_agent
            remembered.pop(sender, None)  # the latest speaker last: the first is longest silent
            remembered[sender] = folded_text[:_HISTORY_CHARS]
            if len(remembered) > _MAX_SPEAKERS:
                del remembered[next(iter(remembered))]
            # A conversation whose peak is zero has never carried risk: every pair is at zero, so
            # a riskless message needs no pair arithmetic (most conversations stay so throughout).
            if risk == 0.0 and conv.peak == 0.0:
                return _CALM
            # Conversation risk decays one step per message in the conversation.
            conv.risk = _accumulate(conv.risk * self._decay(1), risk)
            conv.band = self._band(conv.band, conv.risk)
            conv.peak = max(conv.peak, conv.risk)
            pair_risk = 0.0
            pair_band_risk = 0.0
            for recipient in recipients or ("*",):
                key = pair_key(sender, recipient)
                pair = conv.pairs.get(key)
                if pair is None:
                    pair = conv.pairs[key] = _Pair(clock=conv.clock)
                decayed = pair.risk * self._decay(conv.clock - pair.clock)
                pair.risk = _accumulate(decayed, risk)
                band = self._band(pair.band, pair.risk)
                if pair.incident is not None and self._left(pair, band, decayed, conv.clock):
                    pair.incident = None
                pair.clock = conv.clock
                pair.band = band
                pair.peak = max(pair.peak, pair.risk)
                pair_risk = max(pair_risk, pair.risk)
                pair_band_risk = max(pair_band_risk, self._banded(pair.band, pair.risk))
            if len(conv.pairs) > _MAX_PAIRS:
                self._forget_stale_pairs(conversation_id, conv)
            return RiskUpdate(risk, pair_risk, conv.risk, pair_band_risk)

    def _left(self, pair: _Pair, band: int, decayed: float, now: int) -> bool:
        """Whether a pair in an incident leaves it at message ``now`` (``band``: its band now;
        ``decayed``: its risk just before this message).

        A pair in a risk band leaves when its band falls to 0, also when its risk decayed out
        of the band before this message (most often while it was silent, others talking):
        this message, even if it alone raises the risk back in, is a new episode. A pair
        alerting below every band (on a signal rule) leaves once :meth:`_quiet`.
        """
        if pair.band:
            return not band or not self._band(pair.band, decayed)
        return self._quiet(pair.alerted, now)

    def _quiet(self, alerted: int, now: int) -> bool:
        """Whether what last alerted at message ``alerted`` (a pair that alerts below every
        band, no risk holding it in an incident; a kind of inspection failure) has not for
        more than a half-life of messages. Not at its first message without an alert: an
        agent saying the flagged thing at each of its turns, the other answering as usual,
        or a judge failing at every other message, paged at every one."""
        return now - alerted > self._settings.half_life_turns

    def pair_incident(
        self,
        conversation_id: str,
        sender: str,
        recipients: Sequence[str],
        action: Action,
        signals: Sequence[str],
    ) -> tuple[str, bool]:
        """The incident an alert on the message :meth:`update` just counted belongs to, and
        whether the alert is a repeat in it.

        An incident is a stretch of alerting, found through the message's pairs: the open one
        that one of them is in (the earliest opened, if several), else a new one. Each of the
        message's pairs not in one joins it, so that in a group chat, where every message
        reaches every agent, the pairs one flagged message raised are one incident, not one
        each. A pair leaves it when its band falls to 0 (see :meth:`update`); the incident
        ends when no pair is left in it.
        """
        with self._lock:
            conv = self._conversation(conversation_id)
            now = conv.clock
            keys = [pair_key(sender, recipient) for recipient in recipients or ("*",)]
            pairs: list[_Pair] = []
            for key in keys:
                pair = conv.pairs.get(key)
                if pair is None:
                    # A conversation that never carried risk has no pairs (an alert on a
                    # truncated message, say): the alert's own pairs start its incident.
                    pair = conv.pairs[key] = _Pair(clock=now)
                elif pair.clock != now:
                    # Its risk not followed here (a conversation without risk): as below
                    # every band.
                    if self._quiet(pair.alerted, now):
                        pair.incident = None
                    pair.clock = now
                pairs.append(pair)
            if len(conv.pairs) > _MAX_PAIRS:
                self._forget_stale_pairs(conversation_id, conv)
            held = [pair.incident for pair in pairs if pair.incident is not None]
            if held:
                incident = min(held, key=lambda open_: open_.opened)
                repeat = incident.alerted(now, action, signals, sender)
            else:
                subject = "|".join(sorted(keys))
                incident = _opened(conversation_id, subject, now, action, signals, sender)
                repeat = False
            for pair in pairs:
                pair.alerted = now
                if pair.incident is None:
                    pair.incident = incident
            return incident.id, repeat

    def failure_incident(
        self,
        conversation_id: str,
        kind: str,
        action: Action,
        signals: Sequence[str],
    ) -> tuple[str, bool]:
        """:meth:`pair_incident` for an inspection failure: one incident per kind of failure,
        until that kind is :meth:`_quiet` (a failure before :meth:`update` counted its message
        leaves the clock where it was: failures that never let a message be counted stay one
        incident)."""
        with self._lock:
            conv = self._conversation(conversation_id)
            failures = conv.failures
            # Ending at the first message inspected without a failure, as they did, paged a
            # judge failing at every other message (rate-limited, say) at each failure.
            for ended in [k for k, i in failures.items() if self._quiet(i.last, conv.clock)]:
                del failures[ended]
            incident = failures.get(kind)
            if incident is None:
                failures[kind] = _opened(
                    conversation_id, f"failure:{kind}", conv.clock, action, signals, None
                )
                return failures[kind].id, False
            return incident.id, incident.alerted(conv.clock, action, signals, None)

    def _forget_stale_pairs(self, conversation_id: str, conv: _Conversation) -> None:
        """Forget the quarter of the pairs updated longest ago (a quarter, so the sort is rare).

        Their risk has decayed with every message since, most of it to nothing; what was left
        is lost, and said, never silently.
        """
        stale = sorted(conv.pairs, key=lambda key: conv.pairs[key].clock)[: len(conv.pairs) // 4]
        left = max(
            conv.pairs[key].risk * self._decay(conv.clock - conv.pairs[key].clock) for key in stale
        )
        for key in stale:
            del conv.pairs[key]
        if left > 0.0:
            _log.warning(
                "kinguard.pairs_forgotten",
                conversation_id=conversation_id,
                pairs=len(stale),
                pair_risk=round(left, 3),
            )

    def state(self, conversation_id: str | None = None) -> MonitorState:
        with self._lock:
            if conversation_id is None:
                return MonitorState(
                    conversations={k: v.dump() for k, v in self._conversations.items()}
                )
            # One conversation by lookup: adapters snapshot one per step, and a long-lived
            # guard holds thousands.
            conv = self._conversations.get(conversation_id)
            return MonitorState(
                conversations={} if conv is None else {conversation_id: conv.dump()}
            )

    def messages_seen(self, conversation_id: str) -> int | None:
        """How many messages the conversation has seen (None: it has no state)."""
        with self._lock:
            conv = self._conversations.get(conversation_id)
            return None if conv is None else conv.clock

    def load(self, state: MonitorState, conversation_id: str | None = None) -> None:
        """Replace all state, or only ``conversation_id``'s (absent from ``state``: cleared)."""
        with self._lock:
            if conversation_id is None:
                self._conversations = OrderedDict(
                    (k, _Conversation.restore(v)) for k, v in state.conversations.items()
                )
                return
            saved = state.conversations.get(conversation_id)
            if saved is None:
                self._conversations.pop(conversation_id, None)
            else:
                self._conversations.pop(conversation_id, None)  # restored: the most recent
                self._conversations[conversation_id] = _Conversation.restore(saved)
                if len(self._conversations) > self._max_conversations:
                    self._evict_oldest()


def _accumulate(previous: float, added: float) -> float:
    return 1.0 - (1.0 - previous) * (1.0 - added)
