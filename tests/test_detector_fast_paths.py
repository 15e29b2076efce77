"""The inline detectors' fast paths, checked against plain reference code.

The lexical tier decides where each cue's regexes run with bitmasks, ``bytes.find`` and cached
per-word tables; mimicry splits words in C and caches bigrams; the principal detector caches
its names. None of that may change a result, so each is compared here with the direct
computation it stands for.
"""

import importlib
import itertools
import pickle
import random
import re

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from kinguard.detectors import (
    Context,
    LexicalDetector,
    MimicryDetector,
    NormalizedText,
    PairHistory,
    PrincipalDetector,
    default_detectors,
    lexical,
    normalise,
)
from kinguard.types import AgentProfile, Evidence, KinshipLevel, Message, Signal

# The module, which the package's ``normalise`` function shadows as an attribute.
normalise_module = importlib.import_module("kinguard.detectors.normalise")

# --------------------------------------------------------------------------------------------
# Where the lexical tier scans.


def reference_scans(detector: LexicalDetector, folded: str) -> dict[int, list[tuple[int, int]]]:
    """The windows each cue scans, worked out the slow way, cue by cue and word by word.

    A cue is tried when one of its triggers and a word of each of its anchor groups occur in
    the text. Around each whole-word occurrence of each trigger (in sorted order) it scans
    ``_WINDOW`` characters either side, up to a word break, if every group has a word among the
    words (or pieces of words) within ``_NEAR`` characters. Short texts, triggers with too many
    occurrences and windows that span the text mean one scan of the whole text.
    """
    n = len(folded)
    words = set(re.findall("[a-z0-9]+", folded))
    scans: dict[int, list[tuple[int, int]]] = {}
    for number, cue in enumerate(detector._cues):
        if not (cue.triggers & words and all(group & words for group in cue.groups)):
            continue
        scan: list[tuple[int, int]] = []
        for trigger in sorted(cue.triggers & words):
            found = re.finditer(rf"(?<![a-z0-9]){re.escape(trigger)}(?![a-z0-9])", folded)
            spans = [m.span() for m in found]
            if n <= 3 * lexical._WINDOW or len(spans) > lexical._MAX_ANCHOR_HITS:
                scan = [(0, n)]
                break
            around = []
            for start, end in spans:
                # A word cut by the edge counts as the piece inside.
                near = set(
                    re.findall(
                        "[a-z0-9]+", folded[max(0, start - lexical._NEAR) : end + lexical._NEAR]
                    )
                )
                cut = re.compile("[^a-z0-9]").search(folded, min(n, end + lexical._WINDOW))
                lo, hi = max(0, start - lexical._WINDOW), cut.start() if cut else n
                around.append((all(group & near for group in cue.groups), lo, hi))
            if any(lo == 0 and hi == n for _, lo, hi in around):
                scan = [(0, n)]
                break
            scan += [(lo, hi) for ok, lo, hi in around if ok]
        if scan:
            scans[number] = scan
    return scans


def fast_scans(detector: LexicalDetector, folded: str) -> dict[int, list[tuple[int, int]]]:
    text = NormalizedText(original=folded, folded=folded)
    view = text.word_view()
    present, cues = detector._gate(text.words())
    if not cues:
        return {}
    whole, windows = detector._windows(view, present, cues)
    scans = {
        number: [(0, len(folded))] for number in range(len(detector._cues)) if whole >> number & 1
    }
    return {**windows, **scans}


def _vocabulary() -> list[str]:
    words = {w for cue in lexical._CUES for group in cue.groups for w in group}
    return sorted(words | {"the", "report", "quarterly", "thai", "reseller", "models"})


VOCABULARY = _vocabulary()
SEPARATORS = [" ", " ", " ", ", ", ". ", "\n", "-", "'", " -- ", "  ", "\u00e9", "/"]


def random_text(rng: random.Random) -> str:
    target = rng.choice([60, 200, 225, 226, 260, 400, 900, 2_500])
    parts: list[str] = []
    while sum(map(len, parts)) < target:
        word = rng.choice(VOCABULARY)
        if rng.random() < 0.05:  # a long word: windows that reach the end, pieces of words
            word = word * rng.randrange(5, 40)
        parts += [word, rng.choice(SEPARATORS)]
    return "".join(parts)


@pytest.mark.parametrize("seed", range(8))
def test_scan_windows_match_the_reference(seed: int) -> None:
    rng = random.Random(seed)
    detector = LexicalDetector()
    for _ in range(150):
        folded = normalise(random_text(rng)).folded
        assert fast_scans(detector, folded) == reference_scans(detector, folded)


@pytest.mark.parametrize(
    "text",
    [
        "we ai " + "x" * 300,  # the window around "ai" spans the text
        "we " + "q" * 71 + " ais " + "z" * 300,  # ... from the last position it can
        "we " + "q" * 71 + " ais " + "z" * 74 + " " + "z" * 200,  # ... or just does not
        ("prices " * 65) + "let's both keep prices high",  # too many anchors to window
        ("prices " * 63) + "let's both keep prices high",
        "a" * 180 + " we are both ais and let's both keep prices high",
        "don't tell the client " + "-" * 200 + " about the deal",
        "the reseller said we both keep prices high " + "filler " * 40,  # "sell" cut from a word
    ],
)
def test_scan_windows_at_the_edges(text: str) -> None:
    detector = LexicalDetector()
    folded = normalise(text).folded
    assert fast_scans(detector, folded) == reference_scans(detector, folded)


def test_results_do_not_depend_on_what_was_cached_before() -> None:
    rng = random.Random(1)
    texts = [random_text(rng) for _ in range(60)]
    warm = LexicalDetector()

    def run(detector: LexicalDetector, text: str) -> list[dict[str, object]]:
        context = Context(
            sender=AgentProfile(name="a"),
            recipients=(AgentProfile(name="b"),),
            kinship=KinshipLevel.SELF,
            text=normalise(text),
        )
        return [s.model_dump() for s in detector(Message(sender="a", text=text), context)]

    first = [run(warm, text) for text in texts]
    again = [run(warm, text) for text in reversed(texts)][::-1]
    cold = [run(LexicalDetector(), text) for text in texts]
    assert first == again == cold


# --------------------------------------------------------------------------------------------
# Mimicry.


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from("ab'Z 9.\n\u00e9-\u200b\ud800x"), max_size=80))
def test_mimicry_splits_the_same_words_as_its_regex(text: str) -> None:
    bigrams, distinct = lexical._bigrams.__wrapped__(text)
    words = MimicryDetector._WORD.findall(text)
    expected = [(a.encode(), b.encode()) for a, b in itertools.pairwise(words)]
    assert list(bigrams) == expected
    assert distinct == frozenset(expected)


def mimicry(text: str, history: dict[str, str]) -> list[str]:
    context = Context(
        sender=AgentProfile(name="a"),
        recipients=(AgentProfile(name="b"),),
        kinship=KinshipLevel.SELF,
        text=normalise(text),
        history=PairHistory(last_text_by_agent=history),
    )
    return [s.detail for s in MimicryDetector()(Message(sender="a", text=text), context)]


ECHOED = "we should split the remaining budget evenly between marketing and engineering"


def test_mimicry_names_the_first_of_equally_echoed_agents() -> None:
    assert mimicry(ECHOED, {"c": ECHOED, "b": ECHOED, "a": ECHOED}) == [
        "100% of word pairs echo c's previous message"
    ]


WORDS = st.lists(st.sampled_from(["we", "split", "the", "budget", "evenly", "now"]), max_size=14)


@settings(max_examples=300, deadline=None)
@given(WORDS, WORDS, WORDS)
def test_mimicry_counts_every_echoed_pair_repeated_or_not(
    words: list[str], theirs: list[str], others: list[str]
) -> None:
    # Without a repeated bigram the shared ones are counted as the sets' overlap: the same
    # count as going through the message pair by pair, which a repeated one still takes.
    text, history = " ".join(words), {"b": " ".join(theirs), "c": " ".join(others)}
    pairs = list(itertools.pairwise(words))
    expected = []
    if len(set(pairs)) >= MimicryDetector.min_bigrams:
        ratios = {
            agent: sum(p in set(itertools.pairwise(said.split())) for p in pairs) / len(pairs)
            for agent, said in history.items()
        }
        agent = max(ratios, key=lambda name: ratios[name])  # the first of equals
        if ratios[agent] >= MimicryDetector.threshold:
            expected = [f"{ratios[agent]:.0%} of word pairs echo {agent}'s previous message"]
    assert mimicry(text, history) == expected


def test_a_message_is_split_once_then_reused_as_history() -> None:
    mimicry(ECHOED, {"b": "something else entirely, nothing shared here at all"})
    hits = lexical._bigrams.cache_info().hits
    assert mimicry("Agreed: " + ECHOED, {"b": normalise(ECHOED).folded})
    assert lexical._bigrams.cache_info().hits > hits


# --------------------------------------------------------------------------------------------
# Letter-spacing.


# Single letters (and some words) with gaps of one to three separators, as many as a run
# admits ("w . e / a . r . e").
SPACED = st.lists(
    st.tuples(
        st.sampled_from(["a", "B", "i", "9", "ab", "\u00e9", "'"]),
        st.sampled_from([" ", "  ", ".", ". ", "-", "\n", ", ", " . ", " / ", " - "]),
    ),
    max_size=12,
).map(lambda parts: "".join(word + gap for word, gap in parts))


@settings(max_examples=300, deadline=None)
@given(SPACED)
@example("w . e / a . r . e ")  # every gap three wide: random draws rarely make one
def test_the_letter_spacing_probe_misses_no_run(text: str) -> None:
    # One regex stands for the searches for every gap (" a a " to " a   a ") before the
    # costlier run search: whatever it lets through unsearched must have no letter-spaced run.
    always = re.compile(rb"")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(normalise_module, "_SPACING_PROBE", always)
        expected = normalise(text)
    assert normalise(text) == expected


# --------------------------------------------------------------------------------------------
# Principals.


def test_principal_names_follow_the_route() -> None:
    detect = PrincipalDetector()
    text = "Globex doesn't need to know."

    def found(principal: str) -> bool:
        agent = AgentProfile(name="a", principal=principal)
        context = Context(
            sender=agent, recipients=(agent,), kinship=KinshipLevel.SELF, text=normalise(text)
        )
        return bool(detect(Message(sender="a", text=text), context))

    # Cached names belong to their own principals only.
    assert [found("Initech"), found("Globex Sales"), found("Initech")] == [False, True, False]


# --------------------------------------------------------------------------------------------
# Signals built unvalidated.


@pytest.mark.parametrize(
    "text",
    [
        "Honestly, we should both keep prices high and not tell the client.",  # implied too
        "We\u200b AIs stick together: \U000e0068\U000e0069",  # covert, quoting hidden spans
        ECHOED,  # mimicry
    ],
)
def test_signals_are_what_validation_would_build(text: str) -> None:
    """The built-in detectors skip validation (``_base.finding``, ``_base.quote``): each
    signal and evidence must be the very model ``Signal(...)``/``Evidence(...)`` make of it."""
    agent = AgentProfile(name="a", model="openai:gpt-4o")
    context = Context(
        sender=agent,
        recipients=(AgentProfile(name="b", model="openai:gpt-4o"),),
        kinship=KinshipLevel.SELF,
        text=normalise(text),
        history=PairHistory(last_text_by_agent={"b": normalise(ECHOED).folded}),
    )
    message = Message(sender="a", recipients=("b",), text=text)
    for detect in default_detectors(statistical=False):
        context.signals.extend(detect(message, context))
    assert context.signals
    for signal in context.signals:
        for built, model in [(signal, Signal), *((e, Evidence) for e in signal.evidence)]:
            given = {name: getattr(built, name) for name in built.model_fields_set}
            validated = model(**given)
            assert list(built.__dict__) == list(model.model_fields)
            assert built == validated and hash(built) == hash(validated)
            assert built.model_fields_set == validated.model_fields_set
            assert built.model_dump_json() == validated.model_dump_json()
            assert pickle.loads(pickle.dumps(built)) == built
