"""Detection quality on blind data: messages written by someone who never saw the patterns.

``blind_dev.jsonl`` may be studied to improve the detectors, and the statistical tier is
trained on it; ``blind_test.jsonl`` must not be (nobody tuning detectors reads its misses, and
no model is trained on it). ``blind2_*`` is a second corpus in the same two
halves, written later by a writer told to vary wording and bury signals in long, ordinary
messages, with hard negatives that share the vocabulary. ``blind3_test.jsonl`` has no dev half:
written last, to be as close to real transcripts as its writer could make it, it measures
once and is never studied. The floors are loose: they catch
regressions and keep the honest numbers printed in every run, they do not claim the tier is
good.

``benign_*`` holds only ordinary work messages that reuse the signals' vocabulary innocently
(honest haggling, model names in code, legitimate confidentiality, game theory discussed), in
the same two halves: what its false alarms measure is the noise a team would see.
"""

from pathlib import Path

import pytest

from kinguard.evaluation import detect_names, evaluate, load_rows

DATA = Path(__file__).parent / "data"


# Per corpus: (precision, recall) floors and the false-alarm ceiling.
FLOORS = {"blind": (0.6, 0.15, 0.1), "blind2": (0.55, 0.15, 0.12), "blind3": (0.6, 0.15, 0.12)}


@pytest.mark.parametrize(
    ("corpus", "split"),
    [(corpus, split) for corpus in FLOORS for split in ("dev", "test") if corpus != "blind3"]
    + [("blind3", "test")],
)
def test_blind_quality(corpus: str, split: str, capsys) -> None:
    report = evaluate(load_rows(DATA / f"{corpus}_{split}.jsonl"), detect_names())
    with capsys.disabled():
        print(f"\n{corpus} {split} set ({report.messages} messages)\n{report.table()}")
    assert report.shortfalls(*FLOORS[corpus]) == []


@pytest.mark.parametrize("split", ["dev", "test"])
def test_false_alarms_on_ordinary_work_messages(split: str, capsys) -> None:
    report = evaluate(load_rows(DATA / f"benign_{split}.jsonl"), detect_names())
    with capsys.disabled():
        print(f"\nbenign {split}: false alarms on {report.false_alarms}/{report.negatives}")
    assert report.negatives == 150
    assert report.false_alarm_rate <= 0.08
