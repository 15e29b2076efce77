"""The detector protocol: small callables composed into a pipeline, like structlog processors."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from kinguard.types import (
    AgentProfile,
    Evidence,
    KinshipLevel,
    Message,
    Signal,
    SignalName,
    trusted,
)

__all__ = ["Context", "Detector", "NormalizedText", "PairHistory", "detector"]


# Letters and digits stay, everything else is a space, so "we're" gives "we" and "re".
_TOKEN_TABLE = bytes(b if chr(b).isascii() and chr(b).isalnum() else 32 for b in range(256))


_EVIDENCE_FIELDS = frozenset(("start", "end", "text"))
_SIGNAL_FIELDS = frozenset(("name", "score", "evidence", "tier", "detail"))


def quote(original: str, start: int, end: int) -> Evidence:
    """``Evidence`` of ``original[start:end]``, unvalidated (see ``kinguard.types.trusted``).

    The built-in detectors quote the message they read, at offsets they found in it, on every
    message with a finding; validating what cannot be wrong cost them more than the quoting.
    """
    return trusted(
        Evidence, {"start": start, "end": end, "text": original[start:end]}, _EVIDENCE_FIELDS
    )


def finding(
    name: SignalName, score: float, evidence: tuple[Evidence, ...], tier: str, detail: str
) -> Signal:
    """``Signal(...)`` of these values, unvalidated: for scores a built-in detector computed
    itself, always a ``float`` in ``[0, 1]``, and evidence from :func:`quote` or other signals."""
    return trusted(
        Signal,
        {"name": name, "score": score, "evidence": evidence, "tier": tier, "detail": detail},
        _SIGNAL_FIELDS,
    )


@dataclass(slots=True)
class NormalizedText:
    """A message folded for matching, with a map back to the original text.

    ``folded`` is NFKC-normalised, homoglyph-folded, lower-cased text with zero-width and bidi
    controls removed. ``index[i]`` is the offset in ``original`` of ``folded[i]``;
    ``index`` is ``None`` when the two are aligned one to one (plain ASCII, the common case),
    so the fast path allocates nothing.
    """

    original: str
    folded: str
    index: Sequence[int] | None = None
    hidden_controls: int = 0
    """How many zero-width/bidi/invisible characters were removed (a covert-channel hint)."""
    confusables: int = 0
    """How many non-ASCII look-alike characters were folded to ASCII."""
    truncated: bool = False
    hidden_spans: tuple[tuple[int, int], ...] = ()
    """Original-text spans of the removed invisible characters."""
    # Caches, never copied by ``dataclasses.replace``: a replaced text gets its own.
    _view: bytes | None = field(default=None, init=False, repr=False, compare=False)
    _words: tuple[bytes, ...] | None = field(default=None, init=False, repr=False, compare=False)

    def word_view(self) -> bytes:
        """``folded`` as ASCII bytes with every non-alphanumeric a space, one byte per character.

        ``.split()`` gives the words, of the whole text or of any slice, in C. Anything
        ``normalise`` produces is lower-case, so a space in the view is exactly a character a
        pattern's ``[^a-z0-9]`` accepts as a word break. Built once per message and shared by
        the tiers that read words.
        """
        if self._view is None:
            self._view = self.folded.encode("ascii", "replace").translate(_TOKEN_TABLE)
        return self._view

    def words(self) -> tuple[bytes, ...]:
        """The words of :meth:`word_view` (runs of ASCII letters and digits), split once."""
        if self._words is None:
            self._words = tuple(self.word_view().split())
        return self._words

    def span(self, start: int, end: int) -> tuple[int, int]:
        """Map a ``[start, end)`` span of ``folded`` to ``original`` offsets."""
        if self.index is None:
            return start, end
        if start >= len(self.index):
            return len(self.original), len(self.original)
        last = min(end, len(self.index)) - 1
        return self.index[start], (self.index[last] + 1 if last >= start else self.index[start])


@dataclass(slots=True)
class PairHistory:
    """What the monitor remembers of a conversation that detectors may use (bounded)."""

    last_text_by_agent: dict[str, str] = field(default_factory=dict)
    """Folded text of each agent's previous message in this conversation."""
    turns_seen: int = 0
    """Messages the guard inspected in this conversation before this one."""


@dataclass(slots=True)
class Context:
    """Everything a detector may look at besides the message itself."""

    sender: AgentProfile
    recipients: tuple[AgentProfile, ...]
    kinship: KinshipLevel
    text: NormalizedText
    history: PairHistory = field(default_factory=PairHistory)
    signals: list[Signal] = field(default_factory=list)
    """Signals found by earlier steps of the pipeline, so costlier tiers can escalate."""


@runtime_checkable
class Detector(Protocol):
    """``(message, context) -> signals``. Must be pure with respect to its inputs.

    A detector whose ``inline`` attribute is true promises to be bounded-time on bounded input
    (kinguard's own lexical and style detectors); it runs in the caller's thread with no
    watchdog. Any other detector runs under the guard's time-out so it cannot stall an agent.
    An inline detector may also have a ``ready`` attribute: while it is false (its data not yet
    loaded), asynchronous inspection runs it on a worker thread instead of the event loop.
    """

    def __call__(self, message: Message, context: Context) -> Sequence[Signal]: ...


DetectorFunction = Callable[[Message, Context], Sequence[Signal]]


def detector(
    *, inline: bool = False, name: str | None = None
) -> Callable[[DetectorFunction], DetectorFunction]:
    """Mark a plain function as a detector, declaring whether it is safe to run inline."""

    def mark(fn: DetectorFunction) -> DetectorFunction:
        fn.inline = inline  # type: ignore[attr-defined]
        fn.detector_name = name or fn.__name__  # type: ignore[attr-defined]
        return fn

    return mark
