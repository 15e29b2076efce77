"""Detection quality on blind data: messages written by someone who never saw the patterns.

``blind_dev.jsonl`` may be studied to improve the detectors; ``blind_test.jsonl`` must not be
(nobody tuning detectors reads its misses). The floors are loose: they catch regressions and
keep the honest numbers printed in every run, they do not claim the tier is good.
"""

from pathlib import Path

import pytest

from kinguard.evaluation import detect_names, evaluate, load_rows

DATA = Path(__file__).parent / "data"


@pytest.mark.parametrize("split", ["dev", "test"])
def test_blind_quality(split: str, capsys) -> None:
    report = evaluate(load_rows(DATA / f"blind_{split}.jsonl"), detect_names())
    with capsys.disabled():
        print(f"\nblind {split} set ({report.messages} messages)\n{report.table()}")
    assert report.micro.precision >= 0.6
    assert report.micro.recall >= 0.15
    assert report.false_alarm_rate <= 0.1
