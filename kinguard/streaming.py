"""What every adapter's stream gate needs: a delivered text cut back into the stream's chunks."""

from collections.abc import Sequence

__all__ = ["recut"]


def recut(text: str, chunks: Sequence[str]) -> list[str]:
    """``text`` in as many pieces as ``chunks``, each as long as its chunk; the last takes the rest.

    The pieces always join to ``text``, so a consumer that concatenates tokens gets exactly the
    delivered message, and a redaction is applied to the whole message at once (evidence that
    straddled chunk boundaries is gone from every piece). Keeping the original boundaries keeps
    the stream's rhythm: a consumer still sees tokens, not one late block.

    >>> recut("[REDACTED] deal", ["we ", "fix ", "the ", "deal"])
    ['[RE', 'DACT', 'ED] ', 'deal']
    """
    if not chunks:
        return []
    pieces: list[str] = []
    position = 0
    for chunk in chunks[:-1]:
        pieces.append(text[position : position + len(chunk)])
        position += len(chunk)
    pieces.append(text[position:])
    return pieces
