"""What kinguard adds to an AgentChat stream: a verdict event, and metadata on guarded messages."""

from __future__ import annotations

from typing import Literal

from autogen_agentchat.messages import BaseAgentEvent, BaseChatMessage

from kinguard import Action, Verdict

__all__ = [
    "KINGUARD_SOURCE",
    "META_ACTION",
    "META_GUARD",
    "META_REASONS",
    "META_RESOLVED",
    "META_SIGNALS",
    "KinGuardVerdictEvent",
    "kinguard_action",
]

KINGUARD_SOURCE = "kinguard"
"""``source`` of every message and event kinguard itself puts into a team."""

META_ACTION = "kinguard.action"
"""Metadata key on each chat message kinguard acted on: the action (``log`` ... ``halt``). When
the guards of a nested team and of a team around it both acted, the stricter verdict's (with its
signals and reasons)."""
META_GUARD = "kinguard.guard"
"""Metadata key beside ``META_ACTION``: a token of the guarded team that acted on the message
last. That team does not inspect the message again; the guard of a team around it still does."""
META_SIGNALS = "kinguard.signals"
"""Metadata key: comma-separated signal names found in the message."""
META_REASONS = "kinguard.reasons"
"""Metadata key: the policy rules that fired, ``; ``-separated."""
META_RESOLVED = "kinguard.resolved"
"""Metadata key on a message a person released after a halt: ``approve`` or ``edit``."""


def kinguard_action(message: BaseChatMessage | BaseAgentEvent) -> Action | None:
    """The action kinguard took on a message, from its metadata; ``None`` if never inspected."""
    value = message.metadata.get(META_ACTION)
    if value is None:
        return None
    try:
        return Action(value)
    except ValueError:
        return None


_OUTCOME = {
    Action.NUDGE: "reminder sent to {sender}",
    Action.REDACT: "redacted before delivery",
    Action.BLOCK: "withheld; the others saw a notice",
    Action.HALT: "withheld; team halted for human review",
}


class KinGuardVerdictEvent(BaseAgentEvent):
    """kinguard's verdict on one chat message, streamed right after that message.

    ``run_stream()`` yields it and ``Console`` prints it like any other event; it is also kept in
    ``TaskResult.messages``. By default only verdicts that did something (any action above
    ``allow``, or an inspection error) are streamed.

    Unless the guard captures content (``capture_content``, as for its spans), the event quotes
    nothing the others were not given: evidence keeps its offsets without its text, and a
    blocked or halted message's text is left out.
    """

    verdict: Verdict
    """The verdict: signals with evidence, risks, action, reasons."""

    content: str
    """One line for humans, e.g. ``block · bo → ann, cy · collusion.market 0.90 · ...``."""

    source: str = KINGUARD_SOURCE
    type: Literal["KinGuardVerdictEvent"] = "KinGuardVerdictEvent"

    @classmethod
    def from_verdict(
        cls, verdict: Verdict, *, capture_content: bool = False, about: str | None = None
    ) -> KinGuardVerdictEvent:
        """``about``: what was inspected, when not a chat message (e.g. ``call to post``)."""
        content = describe(verdict)
        return cls(
            verdict=verdict if capture_content else _without_content(verdict),
            content=content if about is None else f"{content} · {about}",
            metadata={META_ACTION: verdict.action.value},
        )

    def to_text(self) -> str:
        return self.content

    def without_words(self) -> KinGuardVerdictEvent:
        """This event quoting none of the message: what a team around the guarded one may
        show, whose own guard may withhold what this one let through."""
        verdict = _without_content(self.verdict).model_copy(update={"delivered_text": None})
        return self.model_copy(update={"verdict": verdict})


_WITHHELD = frozenset({Action.BLOCK, Action.HALT})


def _without_content(verdict: Verdict) -> Verdict:
    """The verdict less the words a stream consumer may not see (a UI, a log of the run)."""
    signals = tuple(
        signal.model_copy(
            update={
                "evidence": tuple(e.model_copy(update={"text": ""}) for e in signal.evidence),
                "detail": "",  # may quote the message: the statistical tier's weighty words
            }
        )
        for signal in verdict.signals
    )
    delivered = None if verdict.action in _WITHHELD else verdict.delivered_text
    return verdict.model_copy(update={"signals": signals, "delivered_text": delivered})


def describe(verdict: Verdict) -> str:
    """A one-line summary of a verdict, for consoles and stop reasons."""
    # One entry a signal, at its strongest: several tiers may find the same one.
    strongest: dict[str, float] = {}
    for signal in verdict.signals:
        strongest[signal.name] = max(signal.score, strongest.get(signal.name, 0.0))
    signals = ", ".join(f"{name} {score:.2f}" for name, score in strongest.items()) or "no signals"
    recipients = ", ".join(verdict.recipients) or "everyone"
    parts = [
        f"kinguard {verdict.action.value}",
        f"{verdict.sender} → {recipients}",
        signals,
        f"pair risk {verdict.pair_risk:.2f}",
    ]
    outcome = _OUTCOME.get(verdict.action)
    if outcome is not None:
        parts.append(outcome.format(sender=verdict.sender))
    elif verdict.modified:
        parts.append("identity cues concealed")
    if verdict.error is not None:
        parts.append(f"inspection failed: {verdict.error}")
    return " · ".join(parts)
