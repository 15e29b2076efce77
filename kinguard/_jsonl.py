"""Reading JSON Lines files of labeled messages, with errors that say where."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = ["read_jsonl"]


def read_jsonl(path: str | Path) -> Iterator[tuple[str, Any]]:
    """``(where, value)`` for each non-blank line; ``where`` is ``"file:line"``.

    Lines end at "\\n" only: U+2028 and U+0085 are valid inside JSON strings (and what
    ``json.dumps(ensure_ascii=False)`` writes), so ``str.splitlines`` would cut rows there. A
    leading byte-order mark is skipped. What cannot be read is a ``ValueError`` naming the
    file, and the line where there is one.
    """
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not UTF-8 text (byte {exc.start})") from exc
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            yield where, json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{where}: not JSON: {exc.msg}") from exc
        except (ValueError, RecursionError) as exc:  # integers past the digit limit, deep nesting
            raise ValueError(f"{where}: not JSON: {type(exc).__name__}") from exc
