"""Speed of normalisation + the default inline detectors, against a same-run baseline.

Run with ``pytest tests/bench_detectors.py --benchmark-only -p no:cacheprovider`` (add
``--benchmark-json=FILE`` for each test's p99 in ``extra_info``). The baseline is what any
keyword filter pays at least: ``str.lower()`` and one ``re.search``.
"""

import re
from collections.abc import Callable

import pytest

from kinguard.detectors import Context, Detector, default_detectors, normalise
from kinguard.types import AgentProfile, KinshipLevel, Message, Signal

PROSE = (
    "Thanks for the update on the quarterly report. I reviewed the numbers this morning and "
    "most of the figures look right to me, although the shipping costs in March seem high. "
    "Could you check whether the freight invoice from the Rotterdam warehouse was counted "
    "twice? Our team in Lisbon also asked about the new onboarding schedule; they would like "
    "to move the training sessions to Thursday afternoons so that the support rota is not "
    "disrupted. Regarding the migration, the database snapshot finished at 02:14 and the "
    "integrity checks passed, so we can proceed with the cut-over next week if nobody objects. "
    "Please remember that the client meeting has been moved to the small conference room on "
    "the third floor, and bring printed copies of the proposal because the projector is "
    "unreliable. "
)
CUES = (
    "Honestly, I think we should both keep prices high this quarter. ",
    "By the way, whoever is reading this is probably bored by now. ",
    "As an AI language model, I try to stay neutral on these questions. ",
)
SIZES = (200, 2_000, 20_000)


def message_of(size: int, *, cues: bool = True) -> str:
    """Benign prose, with one cue after every second paragraph, cut to ``size`` characters."""
    parts: list[str] = []
    for i in range(size // len(PROSE) + 2):
        parts.append(PROSE)
        if cues and i % 2 == 1:
            parts.append(CUES[(i // 2) % len(CUES)])
    return "".join(parts)[:size]


SENDER = AgentProfile(name="buyer", model="openai:gpt-4o")
RECIPIENT = AgentProfile(name="seller", model="openai:gpt-4o")
LEXICAL = default_detectors(statistical=False)
DEFAULT = default_detectors()
BASELINE = re.compile(r"we are both ai")


def _run(detectors: list[Detector], message: Message) -> list[Signal]:
    context = Context(
        sender=SENDER,
        recipients=(RECIPIENT,),
        kinship=KinshipLevel.SELF,
        text=normalise(message.text),
    )
    return [signal for detect in detectors for signal in detect(message, context)]


def lexical(message: Message) -> list[Signal]:
    """The lexical tier and the detectors that read its findings: the issue's 50 µs target."""
    return _run(LEXICAL, message)


def pipeline(message: Message) -> list[Signal]:
    """The default pipeline: the above and the statistical tier."""
    return _run(DEFAULT, message)


def baseline(message: Message) -> bool:
    return BASELINE.search(message.text.lower()) is not None


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("cues", [True, False], ids=["cues", "no-cues"])
@pytest.mark.parametrize(
    "run", [lexical, pipeline, baseline], ids=["lexical", "pipeline", "baseline"]
)
def test_inspect(
    benchmark: pytest.FixtureDef, run: Callable[[Message], object], cues: bool, size: int
):
    message = Message(sender="buyer", recipients=("seller",), text=message_of(size, cues=cues))
    benchmark.group = f"{size} chars"
    result = benchmark(run, message)
    # Tail latency is what an agent waiting on the guard feels; pytest-benchmark has no
    # percentile column, so it goes in the JSON report (``--benchmark-json``).
    if benchmark.stats:  # None under --benchmark-disable
        rounds = sorted(benchmark.stats.stats.data)
        benchmark.extra_info["p99_us"] = round(rounds[int(0.99 * (len(rounds) - 1))] * 1e6, 2)
    if run is lexical:
        assert bool(result) == (cues and size >= 2_000)
