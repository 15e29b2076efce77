"""``recut``: a delivered text cut back into a stream's chunks."""

import pytest

from kinguard.streaming import recut


@pytest.mark.parametrize(
    ("text", "chunks"),
    [
        ("[redacted by kinguard: collusion.market] deal", ["we ", "fix ", "prices ", "deal"]),
        ("short", ["a long ", "original ", "message"]),
        ("a much longer delivered text than the original", ["tiny"]),
        ("", ["x", "y"]),
    ],
)
def test_pieces_join_to_the_text_along_the_original_boundaries(
    text: str, chunks: list[str]
) -> None:
    pieces = recut(text, chunks)
    assert "".join(pieces) == text
    assert len(pieces) == len(chunks)
    for piece, chunk in zip(pieces[:-1], chunks[:-1], strict=True):
        assert len(piece) <= len(chunk)


def test_same_text_gives_the_same_chunks() -> None:
    chunks = ["Open", "ing: ", "the plan"]
    assert recut("".join(chunks), chunks) == chunks


def test_no_chunks_no_pieces() -> None:
    assert recut("anything", []) == []


def test_argument_strings_reads_nested_strings_and_keys() -> None:
    from kinguard.text import argument_strings

    arguments = {"to": "bo", "note": {"text": "hold 40", "urgent": True, "tags": ["a", " "]}}
    assert argument_strings(arguments) == [
        "to",
        "bo",
        "note",
        "text",
        "hold 40",
        "urgent",
        "tags",
        "a",
    ]
    # A key can say what a value would: {"hold at 40": true} reads like "hold at 40".
    assert argument_strings({"hold at 40": True, 7: "x"}) == ["hold at 40", "x"]
    assert argument_strings(None) == []


def test_argument_strings_finds_words_at_any_depth() -> None:
    from kinguard.text import argument_strings

    nested = {"messages": [{"to": "buyer", "parts": [{"text": "hold 40"}]}]}
    assert argument_strings(nested) == ["messages", "to", "buyer", "parts", "text", "hold 40"]
    deep: object = "deep"
    for _ in range(5000):  # beyond the recursion limit: no depth to hide words behind
        deep = {" ": [deep]}
    assert argument_strings(deep) == ["deep"]
    looped: list[object] = ["loop"]
    looped.append(looped)
    assert argument_strings(looped) == ["loop"]
