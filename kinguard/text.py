"""Text helpers the framework adapters share."""

from collections.abc import Mapping
from typing import Any

__all__ = ["REDACTION", "argument_strings"]

REDACTION = "[redacted by kinguard: {}]"
"""What stands in a delivered text for the words a redaction took out (``{}``: the signals
that found them). Adapters that clean other text of those words (an event quoting them) use
it too, so a consumer sees one marker."""


def argument_strings(arguments: Any) -> list[str]:
    """The non-blank strings in a tool call's arguments (nested mappings and lists included),
    a mapping's keys among them.

    A tool such as ``send_message(to, text)`` carries words to other agents as surely as a
    message does, so kinguard reads these too, however deep they sit: a depth limit would be a
    place to hide words from it, and so would keys (``{"hold at 40": true}`` says it in a
    key). The walk keeps its own stack, so deep nesting costs what its size costs and cannot
    exhaust the interpreter's recursion limit.

    >>> argument_strings({"to": "bo", "note": {"text": "hold 40", "urgent": True}})
    ['to', 'bo', 'note', 'text', 'hold 40', 'urgent']
    """
    found: list[str] = []
    pending: list[Any] = [arguments]
    entered: set[int] = set()  # containers already walked: Python arguments may share or loop
    while pending:
        value = pending.pop()
        if isinstance(value, str):
            if value.strip():
                found.append(value)
            continue
        if isinstance(value, Mapping):
            items = [part for pair in value.items() for part in pair]
        elif isinstance(value, (list, tuple)):
            items = list(value)
        else:
            continue
        if id(value) in entered:
            continue
        entered.add(id(value))
        pending.extend(reversed(items))  # popped in their own order
    return found
