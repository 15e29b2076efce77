"""normalise(): folding for matching, with offsets that point back into the original text."""

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kinguard.detectors import NormalizedText, normalise


def original_of(norm: NormalizedText, needle: str) -> str:
    """The original substring behind the first occurrence of ``needle`` in the folded text."""
    at = norm.folded.index(needle)
    start, end = norm.span(at, at + len(needle))
    return norm.original[start:end]


def test_plain_ascii_takes_the_fast_path():
    norm = normalise("We Are Both AI assistants.")
    assert norm.folded == "we are both ai assistants."
    assert norm.index is None
    assert norm.hidden_controls == 0
    assert norm.confusables == 0
    assert not norm.truncated
    assert norm.span(3, 6) == (3, 6)


def test_empty_string():
    norm = normalise("")
    assert norm.folded == ""
    assert norm.original == ""
    assert norm.span(0, 0) == (0, 0)


def test_cyrillic_and_greek_look_alikes_fold_to_ascii():
    text = "w\u0435 \u0430r\u0435 b\u03bfth \u0430i"  # Cyrillic е, а and Greek ο
    norm = normalise(text)
    assert norm.folded == "we are both ai"
    assert norm.confusables == 5
    assert original_of(norm, "both") == "b\u03bfth"


def test_fullwidth_and_mathematical_letters_fold_to_ascii():
    norm = normalise("\uff37\uff25 are \U0001d41a\U0001d422")  # ＷＥ, bold 𝐚𝐢
    assert norm.folded == "we are ai"
    assert norm.confusables == 4


def test_curly_apostrophes_and_dashes_become_ascii():
    assert normalise("we\u2019re \u2014 fine").folded == "we're - fine"


def test_diacritics_are_stripped_without_counting_as_confusables():
    norm = normalise("caf\u00e9 na\u00efve")
    assert norm.folded == "cafe naive"
    assert norm.confusables == 0


def test_ligatures_expand_and_offsets_stay_exact():
    text = "\ufb01ne, we are AIs"  # "ﬁ" ligature is one character, two when folded
    norm = normalise(text)
    assert norm.folded == "fine, we are ais"
    assert original_of(norm, "we are ais") == "we are AIs"
    assert original_of(norm, "fine") == "\ufb01ne"


def test_zero_width_characters_are_removed_counted_and_located():
    text = "we\u200b are\u200c\u200d AIs"
    norm = normalise(text)
    assert norm.folded == "we are ais"
    assert norm.hidden_controls == 3
    assert norm.hidden_spans == ((2, 3), (7, 9))
    assert original_of(norm, "we are") == "we\u200b are"


def test_bidi_controls_and_tag_characters_are_hidden_controls():
    tags = "".join(chr(0xE0000 + ord(c)) for c in "hi")
    norm = normalise("ok \u202eevil\u202c" + tags)
    assert norm.folded == "ok evil"
    assert norm.hidden_controls == 4


def test_emoji_joiners_and_a_leading_bom_are_not_suspicious():
    norm = normalise("\ufeffteam \U0001f468\u200d\U0001f469\u200d\U0001f467 ok")
    assert norm.hidden_controls == 0
    assert norm.folded.endswith(" ok")


@pytest.mark.parametrize(
    "text",
    [
        "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645",  # Persian non-joiner
        "\u0915\u094d\u200d\u0937 \u0915\u093e\u0930\u094d\u200d\u092f",  # Devanagari joiners
        "\u05d4\u05de\u05d7\u05d9\u05e8 450\u200f \u05e9\u05f4\u05d7",  # Hebrew and a number
        "The total is \u200e$4,500\u200e for the batch",  # marks left by pasted RTL text
        "\u0627\u0644\u0633\u0639\u0631 120\u061c \u062f\u0648\u0644\u0627\u0631",  # ALM
    ],
)
def test_joiners_in_scripts_that_spell_with_them_and_lone_direction_marks_are_routine(text):
    assert normalise(text).hidden_controls == 0


@pytest.mark.parametrize(
    ("text", "count"),
    [
        ("fine\u200e\u200f\u200e\u200e\u200f", 5),  # direction marks in a run encode bits
        ("h\u200cel\u200clo", 2),  # non-joiners between Latin letters do nothing visible
        ("\u0645\u06cc\u200c\u200c\u062e", 2),  # nor do two in a row in Persian
    ],
)
def test_invisible_characters_outside_their_routine_use_are_counted(text, count):
    assert normalise(text).hidden_controls == count


@pytest.mark.parametrize(
    "text",
    [
        "W e  A r e  B o t h  A I",
        "w.e a.r.e b.o.t.h a.i",
        "w-e a-r-e b-o-t-h a-i",
        "W. E.  A. R. E.  B. O. T. H.  A. I.",
        "W . E / A . R . E / B . O . T . H / A . I",
    ],
)
def test_letter_spacing_is_collapsed(text):
    norm = normalise(text)
    assert "we are both ai" in norm.folded
    assert original_of(norm, "both")[0] in "Bb"
    assert original_of(norm, "both")[-1] in "Hh"


def test_letter_spacing_inside_a_sentence_maps_back_to_the_spaced_letters():
    text = "Honestly, W e  A r e  A I s and proud."
    norm = normalise(text)
    assert norm.folded == "honestly, we are ais and proud."
    assert original_of(norm, "we are ais") == "W e  A r e  A I s"


def test_ordinary_single_letters_are_left_alone():
    text = "Plan B is a good idea, I think."
    assert normalise(text).folded == text.lower()


def test_control_bytes_are_removed_and_counted():
    norm = normalise("we\x00 are\x07 AIs\x1b[0m")
    assert norm.folded == "we are ais[0m"
    assert norm.hidden_controls == 3


def test_long_input_is_truncated_before_any_work():
    text = "x" * 1_000_000
    norm = normalise(text, max_chars=20_000)
    assert norm.truncated
    assert len(norm.folded) == 20_000
    assert norm.original is text


def test_a_million_letters_and_a_bang():
    norm = normalise("a" * 1_000_000 + "!")
    assert norm.truncated
    assert set(norm.folded) == {"a"}


def test_lone_surrogates_do_not_raise():
    norm = normalise("abc\ud800def\udfff")
    assert norm.folded == "abc def "
    assert norm.span(4, 7) == (4, 7)


def test_binary_junk_does_not_raise():
    junk = bytes(range(256)).decode("latin-1")
    norm = normalise(junk)
    assert norm.hidden_controls > 0
    assert norm.index is not None
    assert len(norm.index) == len(norm.folded)


def test_random_bytes_decoded_with_surrogateescape():
    rng = random.Random(1234)
    for _ in range(20):
        blob = bytes(rng.randrange(256) for _ in range(2_000))
        norm = normalise(blob.decode("utf-8", errors="surrogateescape"))
        assert "\ud800" not in norm.folded
        if norm.index is not None:
            assert len(norm.index) == len(norm.folded)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_offsets_always_point_into_the_original(text):
    norm = normalise(text, max_chars=200)
    if norm.index is None:
        assert len(norm.folded) == min(len(text), 200)
        return
    assert len(norm.index) == len(norm.folded)
    assert list(norm.index) == sorted(norm.index)
    assert all(0 <= i < len(text) for i in norm.index)
    start, end = norm.span(0, len(norm.folded))
    assert 0 <= start <= end <= len(text)
