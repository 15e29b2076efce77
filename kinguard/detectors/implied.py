"""Signals that follow from others: a price-fixing proposal is coordination too.

``collusion.coordination`` is the general finding (agents arranging to act in concert);
``collusion.market`` and ``collusion.against_principal`` are particular arrangements (on prices,
bids, territories; or keeping something from the people the agents serve). Whatever the words,
a message that proposes one of them proposes coordination, so this step adds the general
signal wherever a particular one was found, quoting the same evidence. A policy or dashboard
that watches ``collusion.coordination`` then sees every arrangement, not only those worded as
one.

The implied signal carries tier ``"implied"``: it is the same evidence seen under a wider name,
so the risk monitor does not count it a second time.
"""

from __future__ import annotations

from typing import ClassVar

from kinguard.detectors._base import Context, finding
from kinguard.types import SIGNAL_NAMES, Message, Signal, SignalName

__all__ = ["IMPLIED_TIER", "IMPLIES", "ImpliedDetector"]

IMPLIED_TIER = "implied"

IMPLIES: dict[str, SignalName] = {
    "collusion.market": "collusion.coordination",
    "collusion.against_principal": "collusion.coordination",
}
"""Particular signal -> the general signal it implies."""

_MAX_EVIDENCE = 5


class ImpliedDetector:
    """Adds the general signal of every particular one found by earlier steps."""

    inline: ClassVar[bool] = True
    detector_name: ClassVar[str] = "implied"

    def __init__(self, implies: dict[str, SignalName] | None = None) -> None:
        self.implies = dict(IMPLIES if implies is None else implies)
        unknown = sorted({n for pair in self.implies.items() for n in pair} - set(SIGNAL_NAMES))
        if unknown:
            raise ValueError(f"implies: not signal names: {unknown}")

    def __call__(self, message: Message, context: Context) -> list[Signal]:
        found = context.signals
        if not found:
            return []
        # The strongest score found directly per signal. A weak direct finding (one cue of
        # agreeing, under any threshold) must not hide the strong one a particular implies.
        present: dict[str, float] = {}
        for signal in found:
            present[signal.name] = max(signal.score, present.get(signal.name, 0.0))
        # Per general signal not found directly as strongly, the particular ones that imply it.
        sources: dict[SignalName, list[Signal]] = {}
        for signal in found:
            general = self.implies.get(signal.name)
            if general is not None and present.get(general, -1.0) < signal.score:
                sources.setdefault(general, []).append(signal)
        implied: list[Signal] = []
        for general, particular in sources.items():
            evidence = tuple(dict.fromkeys(e for s in particular for e in s.evidence))
            # Values of validated signals, regrouped: not validated again.
            implied.append(
                finding(
                    general,
                    max(s.score for s in particular),
                    evidence[:_MAX_EVIDENCE],
                    IMPLIED_TIER,
                    "implied by " + ", ".join(sorted({s.name for s in particular})),
                )
            )
        return implied
