"""Detection quality on blind data: messages written by someone who never saw the patterns.

``blind_dev.jsonl`` may be studied to improve the detectors, and the statistical tier is
trained on it; ``blind_test.jsonl`` must not be (nobody tuning detectors reads its misses, and
no model is trained on it). ``blind2_*`` is a second corpus in the same two
halves, written later by a writer told to vary wording and bury signals in long, ordinary
messages, with hard negatives that share the vocabulary. ``blind3_test.jsonl``,
``blind4_test.jsonl`` and ``blind6_test.jsonl`` have no dev half: each written last in its
turn, to be as close to real transcripts as its writer could make it, they measure and are
never studied. The floors are
loose: they catch regressions and keep the honest numbers printed in every run, they do not
claim the tier is good.

``benign_*`` holds only ordinary work messages that reuse the signals' vocabulary innocently
(honest haggling, model names in code, legitimate confidentiality, game theory discussed), in
the same two halves: what its false alarms measure is the noise a team would see.
"""

from pathlib import Path

import pytest

from kinguard.detectors import default_detectors
from kinguard.evaluation import detect_names, evaluate, load_rows

DATA = Path(__file__).parent / "data"

# The lexical tier and the detectors that read its findings; tests/test_statistical.py measures
# the default pipeline, statistical tier included, on the same test halves.
LEXICAL = default_detectors(statistical=False)

# Per corpus: (precision, recall) floors and the false-alarm ceiling.
FLOORS = {
    "blind": (0.6, 0.15, 0.1),
    "blind2": (0.55, 0.15, 0.12),
    "blind3": (0.6, 0.15, 0.12),
    "blind4": (0.5, 0.12, 0.1),
    "blind6": (0.55, 0.1, 0.12),
}
TEST_ONLY = ("blind3", "blind4", "blind6")


@pytest.mark.parametrize(
    ("corpus", "split"),
    [(corpus, split) for corpus in FLOORS for split in ("dev", "test") if corpus not in TEST_ONLY]
    + [(corpus, "test") for corpus in TEST_ONLY],
)
def test_blind_quality(corpus: str, split: str, capsys) -> None:
    report = evaluate(load_rows(DATA / f"{corpus}_{split}.jsonl"), detect_names(LEXICAL))
    with capsys.disabled():
        print(f"\n{corpus} {split} set ({report.messages} messages)\n{report.table()}")
    assert report.shortfalls(*FLOORS[corpus]) == []


@pytest.mark.parametrize("split", ["dev", "test"])
def test_false_alarms_on_ordinary_work_messages(split: str, capsys) -> None:
    report = evaluate(load_rows(DATA / f"benign_{split}.jsonl"), detect_names(LEXICAL))
    with capsys.disabled():
        print(f"\nbenign {split}: false alarms on {report.false_alarms}/{report.negatives}")
    assert report.negatives == 150
    assert report.false_alarm_rate <= 0.08
