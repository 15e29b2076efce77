"""The statistical tier: a linear model over the words and word pairs of a message.

A lexical cue names the wording it expects, so it misses paraphrases nobody wrote a cue for.
This tier weighs every word and word pair of the message with weights learnt from labeled
messages, so wording it never saw still counts when its words lean the same way. Training is
offline (:func:`train`, ``kinguard train``); the weights kinguard ships are package data, so
nothing is downloaded and nothing is trained at run time.

One model says whether the message shows any signal at all; it is cheap (one set intersection
and one sum) and gates the per-signal models, which run only on the few messages it does not
clear. Evidence is the words that weighed most for the signal found, located in the original
text.
"""

from __future__ import annotations

import functools
import json
import math
import random
import re
import threading
from collections.abc import Iterable, Mapping, Sequence
from importlib import resources
from itertools import pairwise
from pathlib import Path
from typing import Any, ClassVar, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from kinguard.detectors._base import Context, NormalizedText
from kinguard.detectors.normalise import normalise
from kinguard.types import SIGNAL_NAMES, Evidence, Message, Signal, SignalName

__all__ = ["LinearModel", "StatisticalDetector", "StatisticalModel", "features", "train"]

ANY = "any"
"""The gate: whether a message shows any signal at all, from its words and word pairs."""
WORDS = "words"
"""The screen: the same question from single words alone, which cost a third as much."""
STATISTICAL_TIER = "statistical"
_MAX_EVIDENCE = 3
LEARNT_SIGNALS: tuple[str, ...] = tuple(
    name for name in SIGNAL_NAMES if name not in ("collusion.covert_channel", "kin.mimicry")
)
"""What :func:`train` learns by default. A covert channel is a matter of form (an encoding,
invisible characters, line initials) that the lexical tier's checks locate; a bag of words can
say a message smells of one but not where the hidden part is, and redaction needs that.
Mimicry is about two messages, not one."""
_MIN_WEIGHT = 0.1
"""Trained weights smaller than this are dropped: a file a fifth smaller, the same verdicts."""


def features(text: str, max_words: int = 1_000) -> set[str]:
    """The words and adjacent word pairs ("we both") of the first ``max_words`` words of ``text``.

    Words as every tier reads them: :func:`normalise` folds the text, and words are its runs of
    ASCII letters and digits.
    """
    words = [word.decode() for word in normalise(text).words()[:max_words]]
    return {*words, *map(" ".join, pairwise(words))}


class LinearModel(BaseModel):
    """Logistic regression over feature presence: ``sigmoid(bias + sum of present weights)``."""

    model_config = ConfigDict(frozen=True)

    bias: float
    weights: dict[str, float]

    def probability(self, present: Iterable[str]) -> float:
        weights = self.weights
        return _sigmoid(self.bias + sum(weights.get(feature, 0.0) for feature in present))


class StatisticalModel(BaseModel):
    """The screen, the gate and one model per signal, with the thresholds chosen for them."""

    model_config = ConfigDict(frozen=True)

    version: int = 1
    max_words: int = Field(default=1_000, ge=1)
    """Only this many words of a message are weighed: bounded cost whatever the length."""
    screen: float = Field(default=0.2, ge=0.0, le=1.0)
    """The screen's probability below which a message is cleared on its words alone."""
    gate: float = Field(default=0.6, ge=0.0, le=1.0)
    """The gate's probability below which a message is cleared without the per-signal models."""
    threshold: float = Field(default=0.6, ge=0.0, le=1.0)
    """A signal's probability from which it is reported (unless the detector is given one)."""
    models: dict[str, LinearModel]
    """``"words"`` (the screen), ``"any"`` (the gate) and signal name -> model."""
    trained_on: dict[str, int] = Field(default_factory=dict)
    """Rows per source file of the training data, for the record."""

    @model_validator(mode="after")
    def _complete(self) -> Self:
        missing = {WORDS, ANY} - set(self.models)
        if missing:
            raise ValueError(f"models: missing {sorted(missing)}")
        unknown = set(self.models) - {WORDS, ANY, *SIGNAL_NAMES}
        if unknown:
            raise ValueError(f"models: unknown signals {sorted(unknown)}")
        return self

    def save(self, path: str | Path) -> None:
        Path(path).write_text(self.model_dump_json(), encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> StatisticalModel:
        return cls.model_validate_json(Path(path).read_text(encoding="utf-8"))


@functools.cache
def shipped_model() -> StatisticalModel:
    """The model trained on the corpus shipped with kinguard (loaded once, on first use)."""
    data = resources.files("kinguard.detectors").joinpath("_statistical_model.json")
    return StatisticalModel.model_validate_json(data.read_bytes())


@functools.cache
def _shipped_tables() -> _Compiled:
    return _Compiled(shipped_model())


_Feature = bytes | tuple[bytes, ...]


def _key(feature: str) -> _Feature:
    """A feature as the detector meets it: a word as bytes, a word pair as a tuple of them."""
    words = feature.encode().split()
    return words[0] if len(words) == 1 else tuple(words)


class _Compiled:
    """A model as tables keyed the way the text is split, ready for set intersections in C.

    The biases move to the thresholds, so each stage is one sum against one number.
    """

    __slots__ = ("gate", "gate_weights", "max_words", "pairs", "screen", "screen_weights",
                 "signals", "words")  # fmt: skip

    def __init__(self, model: StatisticalModel) -> None:
        # Each feature is keyed once, however many models weigh it.
        keys = {f: _key(f) for m in model.models.values() for f in m.weights}
        known = keys.values()

        def table(linear: LinearModel, over: Iterable[_Feature] = known) -> dict[_Feature, float]:
            # Every feature of ``over`` has a weight, 0 where the model has none, so the model
            # sums by plain lookup in C.
            weights: dict[_Feature, float] = dict.fromkeys(over, 0.0)
            weights.update((keys[f], w) for f, w in linear.weights.items())
            return weights

        self.max_words = model.max_words
        self.signals = [
            (name, linear.bias, table(linear))
            for name, linear in model.models.items()
            if name not in (WORDS, ANY)
        ]
        self.words: frozenset[_Feature] = frozenset(k for k in known if type(k) is bytes)
        self.pairs: frozenset[_Feature] = frozenset(k for k in known if type(k) is tuple)
        screen, gate = model.models[WORDS], model.models[ANY]
        self.screen = _logit(model.screen) - screen.bias
        self.screen_weights = table(screen, self.words)
        self.gate = _logit(model.gate) - gate.bias
        self.gate_weights = table(gate)


class StatisticalDetector:
    """Signals of tier ``statistical`` from a :class:`StatisticalModel`, the shipped one by default.

    ``min_score``: the probability from which a signal is reported; the model's own
    ``threshold`` unless given. The score is that probability, so policies and risk read it
    like any other tier's.
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
        self._lock = threading.Lock()
        # The shipped weights are read and keyed on a daemon thread while the app starts, so
        # neither start-up nor the first message pays the ~50 ms.
        threading.Thread(target=self._tables, name="kinguard-statistical", daemon=True).start()

    @property
    def model(self) -> StatisticalModel:
        return shipped_model() if self._model is None else self._model

    @property
    def min_score(self) -> float:
        return self.model.threshold if self._min_score is None else self._min_score

    def _tables(self) -> _Compiled:
        compiled = self._compiled
        if compiled is None:
            with self._lock:
                if self._compiled is None:
                    self._compiled = (
                        _shipped_tables() if self._model is None else _Compiled(self._model)
                    )
                compiled = self._compiled
        return compiled

    def __call__(self, message: Message, context: Context) -> list[Signal]:
        tables = self._tables()
        words = context.text.words()
        if len(words) > tables.max_words:
            words = words[: tables.max_words]
        present: frozenset[_Feature] = tables.words.intersection(words)
        # Most messages are cleared here, before a single word pair is built.
        if sum(map(tables.screen_weights.__getitem__, present)) < tables.screen:
            return []
        present |= tables.pairs.intersection(pairwise(words))
        if sum(map(tables.gate_weights.__getitem__, present)) < tables.gate:
            return []
        min_score = self.min_score
        signals = []
        for name, bias, weights in tables.signals:
            probability = _sigmoid(bias + sum(map(weights.__getitem__, present)))
            if probability < min_score:
                continue
            ranked = sorted(present, key=weights.__getitem__, reverse=True)
            strongest = [f for f in ranked[:5] if weights[f] > 0]
            signals.append(
                Signal(
                    name=_signal_name(name),
                    score=round(probability, 3),
                    evidence=_locate(context.text, strongest[:_MAX_EVIDENCE]),
                    tier=STATISTICAL_TIER,
                    detail="words: " + ", ".join(map(_shown, strongest)),
                )
            )
        return signals


def _shown(feature: _Feature) -> str:
    return feature.decode() if isinstance(feature, bytes) else b" ".join(feature).decode()


def _signal_name(name: str) -> SignalName:
    if name not in SIGNAL_NAMES:
        raise ValueError(f"the statistical model names an unknown signal {name!r}")
    return name  # type: ignore[return-value]


def _locate(text: NormalizedText, found: Sequence[_Feature]) -> tuple[Evidence, ...]:
    """The first occurrence of each feature in the text, as original-text evidence."""
    view = text.word_view()
    evidence = []
    for feature in found:
        words = (feature,) if isinstance(feature, bytes) else feature
        # In the view every non-word character is a space: a pair is split by a run of them.
        pattern = rb"(?<![a-z0-9])" + rb" +".join(map(re.escape, words)) + rb"(?![a-z0-9])"
        match = re.search(pattern, view)
        if match is not None:
            start, end = text.span(*match.span())
            evidence.append(Evidence(start=start, end=end, text=text.original[start:end]))
    return tuple(evidence)


def _sigmoid(margin: float) -> float:
    if margin < -30.0:
        return 0.0
    return 1.0 / (1.0 + math.exp(-margin))


def _logit(probability: float) -> float:
    probability = min(max(probability, 1e-9), 1.0 - 1e-9)
    return math.log(probability / (1.0 - probability))


# --------------------------------------------------------------------------------------------
# Training.


def train(
    rows: Iterable[Mapping[str, Any]],
    *,
    epochs: int = 12,
    learning_rate: float = 0.3,
    l2: float = 1e-4,
    min_count: int = 2,
    positive_weight: float = 2.0,
    screen: float = 0.2,
    gate: float = 0.6,
    threshold: float = 0.6,
    max_words: int = 1_000,
    signals: Iterable[str] = LEARNT_SIGNALS,
    seed: int = 0,
    trained_on: Mapping[str, int] | None = None,
) -> StatisticalModel:
    """Fit the screen, the gate and a model per signal on ``{"text", "signals"}`` rows.

    Logistic regression by AdaGrad over feature presence, one pass per epoch in a seeded
    order, so the same rows give the same model. Features seen in fewer than ``min_count``
    messages are dropped: a word one writer used once is wording, not a concept.
    ``positive_weight`` scales the loss of positive examples: signals are rare, and a model
    that learns "never" is right most of the time and useless. ``screen``, ``gate`` and
    ``threshold`` are the operating points the model is saved with (see
    :class:`StatisticalModel`). Every labeled row counts for the screen and the gate; a model
    per signal is fitted for the ``signals`` that some row carries.
    """
    learnt = set(signals)
    if learnt - set(SIGNAL_NAMES):
        raise ValueError(f"signals: not signal names: {sorted(learnt - set(SIGNAL_NAMES))}")
    examples: list[tuple[set[str], set[str]]] = []
    counts: dict[str, int] = {}
    for row in rows:
        labels = set(row["signals"])
        unknown = labels - set(SIGNAL_NAMES)
        if unknown:
            raise ValueError(f"a row labels unknown signals {sorted(unknown)}: {row!r:.200}")
        found = features(str(row["text"]), max_words)
        for feature in found:
            counts[feature] = counts.get(feature, 0) + 1
        examples.append((found, labels))
    kept = {feature for feature, count in counts.items() if count >= min_count}
    texts = [sorted(kept.intersection(found)) for found, _ in examples]
    labels_of = [labels for _, labels in examples]
    if not any(labels_of):
        raise ValueError("no row has a signal: nothing to learn")

    def fit(targets: list[bool], words_only: bool = False) -> LinearModel:
        inputs = [[f for f in text if " " not in f] for text in texts] if words_only else texts
        return _fit(
            inputs,
            targets,
            epochs=epochs,
            learning_rate=learning_rate,
            l2=l2,
            positive_weight=positive_weight,
            seed=seed,
        )

    flagged = [bool(labels) for labels in labels_of]
    models = {WORDS: fit(flagged, words_only=True), ANY: fit(flagged)}
    labeled: set[str] = set().union(*labels_of)
    for name in sorted(learnt & labeled):
        models[name] = fit([name in labels for labels in labels_of])
    return StatisticalModel(
        max_words=max_words,
        screen=screen,
        gate=gate,
        threshold=threshold,
        models=models,
        trained_on=dict(trained_on or {}),
    )


def _fit(
    rows: Sequence[Sequence[str]],
    targets: Sequence[bool],
    *,
    epochs: int,
    learning_rate: float,
    l2: float,
    positive_weight: float,
    seed: int,
) -> LinearModel:
    weights: dict[str, float] = {}
    squares: dict[str, float] = {}
    bias = bias_squares = 0.0
    order = list(range(len(rows)))
    shuffle = random.Random(seed).shuffle
    for _ in range(epochs):
        shuffle(order)
        for i in order:
            found = rows[i]
            margin = bias + sum(weights.get(f, 0.0) for f in found)
            scale = positive_weight if targets[i] else 1.0
            # d(loss)/d(margin) for the log loss, scaled for the class.
            gradient = scale * (_sigmoid(margin) - targets[i])
            bias_squares += gradient * gradient
            bias -= learning_rate * gradient / math.sqrt(bias_squares)
            for f in found:
                w = weights.get(f, 0.0)
                g = gradient + l2 * w
                squares[f] = s = squares.get(f, 1e-8) + g * g
                weights[f] = w - learning_rate * g / math.sqrt(s)
    # Weights too small to move a probability are dropped: a smaller file, the same model.
    kept = {f: round(w, 4) for f, w in sorted(weights.items()) if abs(w) >= _MIN_WEIGHT}
    return LinearModel(bias=round(bias, 4), weights=kept)


def load_corpus(paths: Iterable[str | Path]) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """The rows of several JSONL files, and how many came from each (by file name)."""
    rows: list[dict[str, Any]] = []
    sizes: dict[str, int] = {}
    for path in paths:
        path = Path(path)
        lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        rows += [json.loads(line) for line in lines]
        sizes[path.name] = len(lines)
    return rows, sizes
