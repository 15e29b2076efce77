"""The statistical tier: linear models over the words and word pairs of a message.

A lexical cue names the wording it expects, so it misses paraphrases nobody wrote a cue for.
This tier weighs every word and word pair with weights learnt from labeled messages, so
wording it never saw still counts when its words lean the same way. Training is offline
(:func:`train`, ``kinguard train``); the weights kinguard ships are package data, so nothing
is downloaded and nothing is trained at run time.

A message is scored window by window (``window`` consecutive words, every ``stride`` words),
and each model takes its best window: a signal is usually one sentence, and summed over a whole
long message the weights of its ordinary words would outvote it. Three stages, each cheaper to
fail than the next: a screen on single words, a gate on words and pairs (whether any signal is
there at all), and one model per signal, run only on the windows the gate lets through.
Evidence is the sentences of the flagged windows that weigh most for the signal, located in the
original text, so that a redaction removes what was said.
"""

from __future__ import annotations

import gzip
import heapq
import json
import math
import os
import random
import re
import threading
import zlib
from bisect import bisect_right
from collections.abc import Iterable, Mapping, Sequence
from importlib import resources
from itertools import accumulate, compress, pairwise, repeat
from operator import itemgetter, truediv
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    model_validator,
)

from kinguard._jsonl import read_jsonl
from kinguard.detectors._base import Context, NormalizedText
from kinguard.detectors.lexical import _evidence
from kinguard.detectors.normalise import normalise
from kinguard.types import SIGNAL_NAMES, Evidence, Message, Signal, SignalName

__all__ = [
    "LEARNT_SIGNALS",
    "LinearModel",
    "StatisticalDetector",
    "StatisticalModel",
    "TrainingSettings",
    "features",
    "load_corpus",
    "shipped_model",
    "train",
]

ANY = "any"
"""The gate: whether a window shows any signal at all, from its words and word pairs."""
WORDS = "words"
"""The screen: the same question from single words alone, at a fraction of the cost."""
STATISTICAL_TIER = "statistical"
LEARNT_SIGNALS: tuple[str, ...] = tuple(name for name in SIGNAL_NAMES if name != "kin.mimicry")
"""What :func:`train` learns by default: every signal but mimicry, which is about two messages,
not one. Covert channels are learnt too: the hidden part itself (an encoding, invisible
characters, line initials) is the lexical tier's to locate, but the words that set a channel
up ("if I say X it means Y", "read the first letter of each line") are wording like any other,
and their sentence is what a redaction removes. On cross-writer folds, learning them took
covert-channel recall from 18 to 60 of 106 messages with no more false alarms."""
_MAX_WINDOWS = 3
_COMMERCE = frozenset(
    b"""price prices priced pricing prix precio precios preis preise prezzo prezzi preco precos
    prijs prijzen bid bids bidding bidder bidders tender tenders auction auctions lot lots rate
    rates fee fees tariff tariffs discount discounts margin margins markup sell sells selling
    sold seller sellers buy buys buying buyer buyers undercut undercutting quote quotes quoted
    market markets marketplace customer customers client clients territory territories region
    regions segment segments account accounts supply supplier suppliers vendor vendors cost
    costs charge charges charging pay paying payment revenue profit profits listing listings usd
    eur gbp dollar dollars euro euros cents percent pct floor ceiling premium premiums
    commission commissions wage wages salary salaries rent rents offer offers offering product
    products unit units stock inventory capacity output production volume volumes share shares
    contract contracts deal deals sale sales retail wholesale shop shops store stores trade
    trading trader traders""".split()
)
"""Market collusion is about prices, bids, customers or markets: ``collusion.market`` is only
reported for a message with one of these words (or a currency sign). The model alone also
learnt the company such messages keep ("both of us", "for both"), and called a prisoner's
dilemma pact price fixing. On cross-writer folds the requirement took the tier's market
precision from 0.64 to 0.80, and recall from 0.40 to 0.39 (74 of 188 market messages found
instead of 75; the list was written before looking at any)."""
_CURRENCY = re.compile(r"[$€£¥₹]")
_MIN_WEIGHT = 0.1
"""Trained weights smaller than this are dropped: a smaller file, the same verdicts."""

Feature = Annotated[str, StringConstraints(pattern=r"^[a-z0-9]+( [a-z0-9]+)?$")]
"""A word, or two words and one space: what :func:`features` produces."""
Weight = Annotated[float, Field(allow_inf_nan=False, ge=-1e6, le=1e6)]
"""Finite, and bounded so that no sum of weights overflows or swallows the others."""


def features(text: str, max_words: int = 10_000) -> list[str]:
    """The words and adjacent word pairs ("we both") of the first ``max_words`` words of ``text``.

    Words as every tier reads them: :func:`normalise` folds the text, and words are its runs of
    ASCII letters and digits. Each feature once, in order of first occurrence: a model weighs
    whether a word is there, not how often, or a model stuck repeating one mildly suspect word
    ("Hello! Hello! Hello! ...") would add up to certainty.
    """
    return _with_pairs([word.decode() for word in normalise(text).words()[:max_words]])


def _with_pairs(words: Sequence[str]) -> list[str]:
    """The words, then each adjacent pair as one feature, each once: what a model weighs."""
    return list(dict.fromkeys([*words, *map(" ".join, pairwise(words))]))


def _window_features(words: Sequence[bytes]) -> tuple[_Feature, ...]:
    """:func:`_with_pairs` as the detector keys it: bytes words and pairs of them, each once."""
    return tuple(dict.fromkeys((*words, *pairwise(words))))


def _spans(count: int, window: int, stride: int) -> list[tuple[int, int]]:
    """Word windows ``[start, end)`` over ``count`` words: every ``stride``, the last at the end."""
    if count <= window:
        return [(0, count)]
    starts = [*range(0, count - window, stride), count - window]
    return [(start, start + window) for start in starts]


_BLANK_LINE = re.compile(r"\n\s*\n")


def _text_spans(
    text: NormalizedText, count: int, window: int, stride: int
) -> list[tuple[int, int]]:
    """:func:`_spans` over the first ``count`` words of ``text``, none across a blank line.

    Adapters join a message's parts (its text, a tool call's arguments, a handoff) with a blank
    line, as writers separate paragraphs: a window reaching across would let one part's words
    outvote the other's signal.
    """
    folded = text.folded
    if "\n" not in folded:
        return _spans(count, window, stride)
    view = text.word_view()
    cuts: list[int] = []
    before, position = 0, 0
    for match in _BLANK_LINE.finditer(folded):
        before += len(view[position : match.start()].split())
        position = match.start()
        if before >= count:
            break
        if before and (not cuts or before > cuts[-1]):
            cuts.append(before)
    spans: list[tuple[int, int]] = []
    for low, high in pairwise([0, *cuts, count]):
        spans.extend((low + start, low + end) for start, end in _spans(high - low, window, stride))
    return spans


class LinearModel(BaseModel):
    """Logistic regression over features present: ``sigmoid(bias + sum of their weights)``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    bias: Weight
    weights: dict[Feature, Weight]

    def probability(self, found: Iterable[str]) -> float:
        """For the features of one window (:func:`features` of a short text)."""
        weights = self.weights
        return _sigmoid(self.bias + sum(weights.get(feature, 0.0) for feature in found))


Probability = Annotated[float, Field(ge=0.0, le=1.0)]


class _Reading(BaseModel):
    """How a message is read and scored: set when a model is trained, and kept in it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_words: int = Field(default=10_000, ge=1, le=1_000_000, strict=True)
    """Only this many words of a message are weighed: bounded cost whatever the length. The
    default reads all of a message the guard inspects (``max_chars``, 20,000 characters, hold
    at most 10,000 words: a word and its separator take two), so nothing in it goes unread by
    this tier alone."""
    window: int = Field(default=24, ge=2, le=10_000, strict=True)
    stride: int = Field(default=8, ge=1, strict=True)
    screen: Probability = 0.3
    """The screen's probability below which a window is cleared on its words alone."""
    gate: Probability = 0.6
    """The gate's probability below which a window is cleared without the per-signal models."""
    threshold: Probability = 0.7
    """A signal's probability from which it is reported (unless the detector is given one).
    0.7 over 0.6 on cross-writer folds: F1 0.607 against 0.604, false alarms 8.1% against 8.7%."""

    @model_validator(mode="after")
    def _strided(self) -> Self:
        if self.stride > self.window:
            raise ValueError(f"stride: {self.stride} skips words between windows of {self.window}")
        return self


class TrainingSettings(_Reading):
    """Everything :func:`train` can be told, with its bounds. The reading settings are kept in
    the model it trains; the rest shape the fit only."""

    epochs: int = Field(default=12, ge=1, le=1_000, strict=True)
    learning_rate: float = Field(default=0.3, gt=0.0, le=100.0, allow_inf_nan=False)
    l2: float = Field(default=1e-3, ge=0.0, le=1.0, allow_inf_nan=False)
    """Shrinks every weight a little each step, so that fewer words one writer happened to use
    decide a verdict. 1e-3 over 1e-4 on cross-writer folds: F1 0.60 against 0.59, false alarms
    8.3% against 9.3%."""
    min_count: int = Field(default=2, ge=1, strict=True)
    """Features seen in fewer rows are dropped: a word one writer used once is wording."""
    positive_weight: float = Field(default=2.0, gt=0.0, le=1_000.0, allow_inf_nan=False)
    """Scales the loss of positive rows: signals are rare, and "never" is mostly right."""
    seed: int = Field(default=0, strict=True)
    signals: tuple[SignalName, ...] = Field(
        default=LEARNT_SIGNALS,  # type: ignore[arg-type]  # checked names, typed as str
        min_length=1,
    )
    """The signals a model is fitted for (those that some row carries)."""

    @property
    def reading(self) -> dict[str, Any]:
        """The settings the trained model keeps."""
        return self.model_dump(include=set(_Reading.model_fields))


class StatisticalModel(_Reading):
    """The screen, the gate and one model per signal, with their windows and thresholds."""

    version: Literal[3] = 3
    """3: a file holds the weights in columns (:meth:`save`). Files of version 2, a weights
    object per model, are read too."""
    models: dict[str, LinearModel]
    """``"words"`` (the screen), ``"any"`` (the gate) and signal name -> model."""
    trained_on: dict[str, Annotated[int, Field(ge=0, strict=True)]] = Field(default_factory=dict)
    """Rows per source file of the training data, for the record."""

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        missing = {WORDS, ANY} - set(self.models)
        if missing:
            raise ValueError(f"models: missing {sorted(missing)}")
        unknown = set(self.models) - {WORDS, ANY, *SIGNAL_NAMES}
        if unknown:
            raise ValueError(f"models: unknown signals {sorted(unknown)}")
        if any(" " in feature for feature in self.models[WORDS].weights):
            raise ValueError("models.words: the screen weighs single words, not pairs")
        return self

    def save(self, path: str | Path) -> None:
        """Write the model as JSON, gzipped when the name ends in ``.gz``.

        The features are listed once, sorted, and each model's weights are one column over
        them in whole 1/10,000ths: a file half the size of one weights object per model, read
        several times faster. :func:`train` gives weights of four decimals, which are kept
        exactly; a finer weight of a model built by hand is rounded to four decimals, and one
        under 0.00005 is dropped.
        """
        features = sorted(set().union(*(linear.weights for linear in self.models.values())))
        columns = {
            name: _Column(
                bias=linear.bias,
                weights=[round(linear.weights.get(f, 0.0) * _UNIT) for f in features],
            )
            for name, linear in self.models.items()
        }
        stored = _ModelFile(
            **self.model_dump(exclude={"models"}), features=features, models=columns
        )
        data = stored.model_dump_json().encode()
        path = Path(path)
        gzipped = path.suffix.lower() == ".gz"
        path.write_bytes(gzip.compress(data, mtime=0) if gzipped else data)

    @classmethod
    def load(cls, path: str | Path) -> StatisticalModel:
        """A model from a file :meth:`save` wrote; a ``ValueError`` naming it if it is not one."""
        try:
            return cls.from_bytes(Path(path).read_bytes())
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from exc

    @classmethod
    def from_bytes(cls, data: bytes) -> StatisticalModel:
        """A model from its file's bytes, gzipped or not."""
        stored = _read_model_file(data)
        if isinstance(stored, StatisticalModel):
            return stored
        models = {
            name: LinearModel(
                bias=column.bias,
                weights={
                    f: w / _UNIT for f, w in zip(stored.features, column.weights, strict=True) if w
                },
            )
            for name, column in stored.models.items()
        }
        return cls(**stored.model_dump(exclude={"features", "models"}), models=models)


_UNIT = 10_000
"""A model file stores weights in whole 1/10,000ths: training rounds them to four decimals."""


_MAX_STORED = 1_000_000 * _UNIT
"""The bound of :data:`Weight`, in the units of a file."""


class _Column(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    bias: Annotated[Weight, Field(strict=True)]
    weights: list[Annotated[int, Field(strict=True, ge=-_MAX_STORED, le=_MAX_STORED)]]
    """One per feature of the file, in 1/10,000ths; 0 where the model does not weigh it."""


class _ModelFile(_Reading):
    """A model as :meth:`StatisticalModel.save` writes it: one list of features, and per model
    a column of weights over it."""

    model_config = ConfigDict(frozen=True, extra="forbid", title="kinguard model file")

    version: Literal[3] = 3
    trained_on: dict[str, Annotated[int, Field(ge=0, strict=True)]] = Field(default_factory=dict)
    features: list[Feature]
    models: dict[str, _Column]

    @model_validator(mode="after")
    def _columns_fit(self) -> Self:
        if len(set(self.features)) != len(self.features):
            raise ValueError("features: a feature is listed twice")
        for name, column in self.models.items():
            if len(column.weights) != len(self.features):
                raise ValueError(
                    f"models.{name}.weights: {len(column.weights)} weights for "
                    f"{len(self.features)} features"
                )
        return self


def _read_model_file(data: bytes) -> _ModelFile | StatisticalModel:
    """The file's columns (version 3) or, from a version 2 file, the model itself."""
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as exc:  # truncated, bad CRC, bad stream
            raise ValueError(f"not a kinguard model: a damaged gzip file ({exc})") from exc
    try:
        return _ModelFile.model_validate_json(data)
    except ValidationError as exc:
        legacy = _version_2(data)
        if legacy is None:
            raise ValueError(f"not a kinguard model: {exc}") from exc
        return StatisticalModel.model_validate({**legacy, "version": 3})


def _version_2(data: bytes) -> dict[str, Any] | None:
    """The JSON object of a version 2 file (a weights object per model); None for others."""
    try:
        parsed = json.loads(data)
    except ValueError:  # not JSON, or not UTF-8
        return None
    return parsed if isinstance(parsed, dict) and parsed.get("version") == 2 else None


_lock = threading.Lock()
"""Held while weights are read and keyed: detectors built together share the shipped copy."""
_shipped: _Compiled | None = None
_shipped_model: StatisticalModel | None = None


def _fresh_lock() -> None:
    # A fork while another thread holds the lock would leave it held forever in the child.
    global _lock
    _lock = threading.Lock()


os.register_at_fork(after_in_child=_fresh_lock)


def _shipped_bytes() -> bytes:
    return resources.files("kinguard.detectors").joinpath(_SHIPPED).read_bytes()


_SHIPPED = "_statistical_model.json.gz"


def shipped_model() -> StatisticalModel:
    """The model trained on the corpus shipped with kinguard (read once, on first use).

    The shipped detector does not need it: it keys its tables from the file directly, so the
    weights are held once, not twice.
    """
    global _shipped_model
    with _lock:
        if _shipped_model is None:
            _shipped_model = StatisticalModel.from_bytes(_shipped_bytes())
        return _shipped_model


def _shipped_tables() -> _Compiled:
    global _shipped
    with _lock:
        if _shipped is None:
            stored = _read_model_file(_shipped_bytes())
            _shipped = (
                _Compiled.of_model(stored)
                if isinstance(stored, StatisticalModel)
                else _Compiled.of_file(stored)
            )
        return _shipped


_Feature = bytes | tuple[bytes, bytes]


def _key(feature: str) -> _Feature:
    """A feature as the detector meets it: a word as bytes, a word pair as a tuple of them."""
    first, _, second = feature.encode().partition(b" ")
    return (first, second) if second else first


_Table = dict[_Feature, float]


class _Compiled:
    """A model as tables keyed the way the text is split, so each sum runs by lookup in C.

    Biases move to the thresholds: each stage is a sum against one number.
    """

    __slots__ = ("gate", "gate_weights", "max_words", "screen", "screen_weights", "signals",
                 "stride", "threshold", "window")  # fmt: skip

    def __init__(self, reading: _Reading, tables: Mapping[str, tuple[float, _Table]]) -> None:
        self.max_words = reading.max_words
        self.threshold = reading.threshold
        self.window = reading.window
        self.stride = reading.stride
        self.signals = [
            (name, bias, table)
            for name, (bias, table) in tables.items()
            if name not in (WORDS, ANY)
        ]
        (screen_bias, self.screen_weights), (gate_bias, self.gate_weights) = (
            tables[WORDS],
            tables[ANY],
        )
        self.screen = _logit(reading.screen) - screen_bias
        self.gate = _logit(reading.gate) - gate_bias

    @classmethod
    def of_model(cls, model: StatisticalModel) -> _Compiled:
        # Each feature is keyed once, however many models weigh it.
        keys = {f: _key(f) for f in set().union(*(m.weights for m in model.models.values()))}
        tables = {
            name: (
                linear.bias,
                dict(
                    zip(map(keys.__getitem__, linear.weights), linear.weights.values(), strict=True)
                ),
            )
            for name, linear in model.models.items()
        }
        return cls(model, tables)

    @classmethod
    def of_file(cls, stored: _ModelFile) -> _Compiled:
        """Straight from the columns, without a weights dict per model in between: a fraction
        of the time and of the memory."""
        keys = list(map(_key, stored.features))
        tables = {
            name: (
                column.bias,
                # The weights a model has (non-zero), as floats: w / 10,000 as the file says.
                dict(
                    compress(
                        zip(keys, map(truediv, column.weights, repeat(_UNIT)), strict=True),
                        column.weights,
                    )
                ),
            )
            for name, column in stored.models.items()
        }
        return cls(stored, tables)


class StatisticalDetector:
    """Signals of tier ``statistical`` from a :class:`StatisticalModel`, the shipped one by default.

    ``min_score``: the probability from which a signal is reported; the model's own
    ``threshold`` unless given. The score is that probability, so policies and risk read it
    like any other tier's. The weights are read at the first message (about 0.3 s for the
    shipped model, once per process); :meth:`load` reads them ahead of time.
    """

    inline: ClassVar[bool] = True
    detector_name: ClassVar[str] = "statistical"

    def __init__(
        self, model: StatisticalModel | None = None, min_score: float | None = None
    ) -> None:
        if min_score is not None and not 0.0 <= min_score <= 1.0:
            raise ValueError(f"min_score: {min_score!r} is not a probability in [0, 1]")
        self._model = model
        self._min_score = min_score
        self._compiled: _Compiled | None = None

    @property
    def model(self) -> StatisticalModel:
        return shipped_model() if self._model is None else self._model

    @property
    def shipped(self) -> bool:
        """Whether this detector reads the model shipped with kinguard (not one given to it)."""
        return self._model is None

    @property
    def min_score(self) -> float:
        return self._tables().threshold if self._min_score is None else self._min_score

    @property
    def min_score_override(self) -> float | None:
        """The ``min_score`` this detector was given, if any (None: the model's threshold)."""
        return self._min_score

    @property
    def ready(self) -> bool:
        """Whether the weights are in memory. Until they are, asynchronous inspection runs this
        detector on a worker thread, so reading them does not stall the event loop."""
        return self._compiled is not None or (self._model is None and _shipped is not None)

    def load(self) -> None:
        """Read and key the weights now (about 0.3 s for the shipped model, once per process),
        so that no message waits for them."""
        self._tables()

    def _tables(self) -> _Compiled:
        compiled = self._compiled
        if compiled is None:
            if self._model is None:
                compiled = _shipped_tables()
            else:
                with _lock:
                    compiled = self._compiled or _Compiled.of_model(self._model)
            self._compiled = compiled
        return compiled

    def __getstate__(self) -> dict[str, Any]:
        # The tables are rebuilt on first use wherever the copy goes (another process included).
        return {"_model": self._model, "_min_score": self._min_score, "_compiled": None}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    def __call__(self, message: Message, context: Context) -> list[Signal]:
        tables = self._compiled or self._tables()  # no call once read: every message asks
        words = context.text.words()[: tables.max_words]
        if not words:
            return []
        spans = _text_spans(context.text, len(words), tables.window, tables.stride)
        # Running sums give every window's screen total in one subtraction.
        running = [0.0, *accumulate(map(tables.screen_weights.get, words, repeat(0.0)))]
        screened = [(s, e) for s, e in spans if running[e] - running[s] >= tables.screen]
        if not screened:
            return []  # most messages end here, before a single word pair is built
        # The few windows the screen lets through are read whole: words and their own pairs,
        # each once (repeats weigh nothing more, as in training).
        windows = [(_window_features(words[s:e]), s, e) for s, e in screened]
        gate = tables.gate_weights.get
        margins = [(sum(map(gate, found, repeat(0.0))), found, s, e) for found, s, e in windows]
        # The signal models read the gate's best few windows: as many distinct findings as a
        # message plausibly holds, at a bounded cost however long it is.
        top = heapq.nlargest(_MAX_WINDOWS, margins, key=itemgetter(0))
        passing = [(found, s, e) for margin, found, s, e in top if margin >= tables.gate]
        if not passing:
            return []
        min_score = tables.threshold if self._min_score is None else self._min_score
        spans_of_words: _WordSpans | None = None
        signals = []
        for name, bias, weights in tables.signals:
            get = weights.get
            scored = [(bias + sum(map(get, found, repeat(0.0))), s, e) for found, s, e in passing]
            probability = _sigmoid(max(margin for margin, _, _ in scored))
            if probability < min_score or (name == _MARKET and not _commerce(context.text)):
                continue
            if spans_of_words is None:  # found once, for every signal reported
                spans_of_words = _WordSpans(context.text.word_view())
            # Every window that shows the signal gives evidence: a second copy of a flagged
            # sentence elsewhere in the message must not survive a redaction.
            flagged = [(s, e) for margin, s, e in scored if _sigmoid(margin) >= min_score]
            evidence, found = _sentences(context.text, spans_of_words, weights, flagged)
            strongest = sorted(
                (f for f in found if get(f, 0.0) > 0.0),
                key=lambda f: (-weights[f], _shown(f)),  # ties by name: stable across runs
            )[:5]
            signals.append(
                Signal(
                    name=_signal_name(name),
                    score=round(probability, 3),
                    evidence=evidence,
                    tier=STATISTICAL_TIER,
                    detail="words: " + ", ".join(map(_shown, strongest)),
                )
            )
        return signals


_MARKET = "collusion.market"


def _commerce(text: NormalizedText) -> bool:
    """Whether the text speaks of trade at all (:data:`_COMMERCE`)."""
    return not _COMMERCE.isdisjoint(text.words()) or _CURRENCY.search(text.original) is not None


def _shown(feature: _Feature) -> str:
    return feature.decode() if isinstance(feature, bytes) else b" ".join(feature).decode()


def _signal_name(name: str) -> SignalName:
    if name not in SIGNAL_NAMES:  # the model validates its names; this keeps mypy informed
        raise ValueError(f"the statistical model names an unknown signal {name!r}")
    return name  # type: ignore[return-value]


class _WordSpans:
    """Where the words of a view start and end, found by C-level passes over its pieces between
    single spaces (the empty pieces are runs of spaces); built only for a reported signal."""

    __slots__ = ("at", "offsets", "pieces")

    def __init__(self, view: bytes) -> None:
        self.pieces = view.split(b" ")
        self.offsets = list(accumulate(map((1).__add__, map(len, self.pieces)), initial=0))
        self.at = list(compress(range(len(self.pieces)), self.pieces))
        """The index among the pieces of each word."""

    def __len__(self) -> int:
        return len(self.at)

    def start(self, word: int) -> int:
        return self.offsets[self.at[word]]

    def end(self, word: int) -> int:
        piece = self.at[word]
        return self.offsets[piece] + len(self.pieces[piece])


_SENTENCE_BREAK = re.compile(r"[.!?;](?=\s)|\n")
_SENTENCE_REACH = 200
"""How far, in characters, a sentence reaching out of a flagged window is followed."""
_MAX_SENTENCES = 5
"""At most this many sentences of evidence per signal (the lexical tier's evidence cap)."""


def _sentences(
    text: NormalizedText,
    spans: _WordSpans,
    weights: Mapping[_Feature, float],
    windows: Sequence[tuple[int, int]],
) -> tuple[tuple[Evidence, ...], set[_Feature]]:
    """The sentences of the word ``windows`` that carry the signal, and their features.

    Each sentence of a window is weighed on its own words and pairs; the evidence is the
    weightiest and every other that weighs at least half as much (at most
    ``_MAX_SENTENCES``, weightiest first), whole: followed out of its window up to
    ``_SENTENCE_REACH`` characters. Sentences, because a ``redact`` rule removes the evidence:
    a sentence with its weightiest words cut out still says what it said, and the sentence
    that weighs most is the one that says it, not the first to hold a common word.
    """
    words = text.words()
    folded = text.folded
    weighed: list[tuple[float, list[int], tuple[_Feature, ...]]] = []
    for start, end in windows:
        low, high = spans.start(start), spans.end(end - 1)
        breaks = [match.end() for match in _SENTENCE_BREAK.finditer(folded, low, high)]
        groups: dict[int, list[int]] = {}
        for index in range(start, end):
            groups.setdefault(bisect_right(breaks, spans.start(index)), []).append(index)
        for indices in groups.values():
            found = _window_features(words[indices[0] : indices[-1] + 1])
            weighed.append((sum(map(weights.get, found, repeat(0.0))), indices, found))
    weighed.sort(key=itemgetter(0), reverse=True)
    best = weighed[0][0]
    located: dict[tuple[int, int], tuple[_Feature, ...]] = {}
    for weight, indices, found in weighed:
        if weight <= 0 or weight < best / 2 or len(located) == _MAX_SENTENCES:
            break
        span = _sentence(text, spans.start(indices[0]), spans.end(indices[-1]))
        located.setdefault(span, found)  # the same sentence seen from two windows: once
    if not located:  # nothing in the windows weighs for the signal: the windows themselves
        whole = [(spans.start(start), spans.end(end - 1)) for start, end in windows]
        return _evidence(text, _merged(whole)), set()
    features: set[_Feature] = set().union(*located.values())
    return _evidence(text, _merged(list(located))), features


def _sentence(text: NormalizedText, start: int, end: int) -> tuple[int, int]:
    """The sentence around ``folded[start:end]``, within ``_SENTENCE_REACH`` characters either
    side, trimmed to whole words: a reach or the cut of a truncated text may fall inside one.
    Letters are what ``str.isalnum`` says, not the ASCII word view, so "Łukasz" is one word."""
    folded = text.folded
    reach = max(0, start - _SENTENCE_REACH)
    breaks = [match.end() for match in _SENTENCE_BREAK.finditer(folded, reach, start)]
    low = breaks[-1] if breaks else reach
    if not breaks and low and folded[low - 1].isalnum():  # cut inside a word: skip its rest
        while low < start and folded[low].isalnum():
            low += 1
    reach = min(len(folded), end + _SENTENCE_REACH)
    after = _SENTENCE_BREAK.search(folded, end, reach)
    high = after.start() if after else reach
    # A word goes on past ``high``: the next character is a letter, or the text was cut there.
    cut = folded[high].isalnum() if high < len(folded) else text.truncated
    if not after and cut:
        while high > end and folded[high - 1].isalnum():
            high -= 1
    while low < high and not folded[low].isalnum():
        low += 1
    while high > low and not folded[high - 1].isalnum():
        high -= 1
    return low, high


def _merged(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """``spans`` sorted, with those that overlap or touch made one."""
    merged: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


def _sigmoid(margin: float) -> float:
    if margin < -30.0:
        return 0.0
    return 1.0 / (1.0 + math.exp(-margin))


def _logit(probability: float) -> float:
    probability = min(max(probability, 1e-9), 1.0 - 1e-9)
    return math.log(probability / (1.0 - probability))


# --------------------------------------------------------------------------------------------
# Training.


def _check_row(row: object, where: str) -> tuple[str, list[str]]:
    """A row's text and labels, or a ValueError that says where and what is wrong."""
    if not isinstance(row, Mapping):
        raise ValueError(f"{where}: a row must be an object with 'text' and 'signals'")
    text, labels = row.get("text"), row.get("signals")
    if not isinstance(text, str):
        raise ValueError(f"{where}: 'text' must be a string, not {type(text).__name__}")
    if not isinstance(labels, list) or not all(isinstance(label, str) for label in labels):
        raise ValueError(f"{where}: 'signals' must be a list of signal names")
    unknown = sorted(set(labels) - set(SIGNAL_NAMES))
    if unknown:
        raise ValueError(f"{where}: 'signals' names unknown signals {unknown}")
    return text, labels


def _settings(settings: TrainingSettings | None, overrides: Mapping[str, Any]) -> TrainingSettings:
    """The settings with ``overrides`` applied, or a ValueError naming each bad one."""
    base = {} if settings is None else settings.model_dump(exclude_unset=True)
    if isinstance(overrides.get("signals"), str):
        raise ValueError(
            f"signals: a list of signal names, not the string {overrides['signals']!r}"
        )
    try:
        return TrainingSettings.model_validate({**base, **overrides})
    except ValidationError as exc:
        raise ValueError(
            "; ".join(
                f"{'.'.join(map(str, error['loc'])) or 'settings'}: {error['msg']}"
                f" (got {error['input']!r})"
                for error in exc.errors()
            )
        ) from None


def train(
    rows: Iterable[Mapping[str, Any]],
    settings: TrainingSettings | None = None,
    *,
    trained_on: Mapping[str, int] | None = None,
    **overrides: Any,
) -> StatisticalModel:
    """Fit the screen, the gate and a model per signal on ``{"text", "signals"}`` rows.

    ``settings`` (a :class:`TrainingSettings`), or any of its fields as keywords, which win:
    ``train(rows, l2=0.01)``. Every setting is checked before any work.

    Logistic regression by AdaGrad over feature counts, one pass per epoch in a seeded order,
    so the same rows give the same model. A negative row longer than ``window`` words also
    counts window by window, as the detector will read it; a positive one counts whole (which
    of its windows holds the signal is not labeled). Every labeled row counts for the screen
    and the gate; a model per signal is fitted for the ``signals`` that some row carries.
    """
    chosen = _settings(settings, overrides)
    examples: list[tuple[list[str], set[str]]] = []
    counts: dict[str, int] = {}
    for index, row in enumerate(rows):
        text, labels = _check_row(row, f"row {index}")
        normalized = normalise(text)
        words = [word.decode() for word in normalized.words()[: chosen.max_words]]
        found = _with_pairs(words)
        for feature in set(found):
            counts[feature] = counts.get(feature, 0) + 1
        examples.append((found, set(labels)))
        if not labels and len(words) > chosen.window:
            spans = _text_spans(normalized, len(words), chosen.window, chosen.stride)
            for start, end in spans:
                examples.append((_with_pairs(words[start:end]), set()))
    if not any(labels for _, labels in examples):
        raise ValueError("no row has a signal: nothing to learn")
    kept = {feature for feature, count in counts.items() if count >= chosen.min_count}
    texts = [[f for f in found if f in kept] for found, _ in examples]
    labels_of = [labels for _, labels in examples]

    def fit(targets: list[bool], words_only: bool = False) -> LinearModel:
        inputs = [[f for f in text if " " not in f] for text in texts] if words_only else texts
        return _fit(inputs, targets, chosen)

    flagged = [bool(labels) for labels in labels_of]
    models = {WORDS: fit(flagged, words_only=True), ANY: fit(flagged)}
    if not models[ANY].weights:
        raise ValueError(
            f"nothing learnt: no feature is in {chosen.min_count} rows and weighs {_MIN_WEIGHT} "
            "or more; add rows or lower min_count"
        )
    learnt = set(chosen.signals)
    labeled: set[str] = set().union(*labels_of)
    if not learnt & labeled:
        raise ValueError(
            f"nothing to report: no row carries a signal the tier learns ({sorted(learnt)})"
        )
    for name in sorted(learnt & labeled):
        models[name] = fit([name in labels for labels in labels_of])
    return StatisticalModel(**chosen.reading, models=models, trained_on=dict(trained_on or {}))


def _fit(
    rows: Sequence[Sequence[str]], targets: Sequence[bool], settings: TrainingSettings
) -> LinearModel:
    learning_rate, l2 = settings.learning_rate, settings.l2
    weights: dict[str, float] = {}
    squares: dict[str, float] = {}
    bias = bias_squares = 0.0
    order = list(range(len(rows)))
    shuffle = random.Random(settings.seed).shuffle
    for _ in range(settings.epochs):
        shuffle(order)
        for i in order:
            found = rows[i]
            margin = bias + sum(weights.get(f, 0.0) for f in found)
            scale = settings.positive_weight if targets[i] else 1.0
            # d(loss)/d(margin) for the log loss, scaled for the class.
            gradient = scale * (_sigmoid(margin) - targets[i])
            bias_squares += gradient * gradient
            bias -= learning_rate * gradient / math.sqrt(bias_squares)
            for f in found:
                w = weights.get(f, 0.0)
                g = gradient + l2 * w
                squares[f] = s = squares.get(f, 1e-8) + g * g
                weights[f] = w - learning_rate * g / math.sqrt(s)
    kept = {f: round(w, 4) for f, w in sorted(weights.items()) if abs(w) >= _MIN_WEIGHT}
    return LinearModel(bias=round(bias, 4), weights=kept)


def load_corpus(paths: Iterable[str | Path]) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """The rows of several JSONL files, and how many came from each (by file name).

    A line that is not a valid row is a ValueError naming its file and line; so is a file name
    given twice (the counts are kept by name).
    """
    rows: list[dict[str, Any]] = []
    sizes: dict[str, int] = {}
    for path in map(Path, paths):
        if path.name in sizes:
            raise ValueError(f"{path}: a file named {path.name!r} is already in the corpus")
        count = 0
        for where, row in read_jsonl(path):
            _check_row(row, where)
            rows.append(row)
            count += 1
        sizes[path.name] = count
    return rows, sizes
