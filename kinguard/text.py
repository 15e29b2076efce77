"""Text helpers the framework adapters share."""

from typing import Any

__all__ = ["argument_strings"]

_MAX_DEPTH = 4


def argument_strings(arguments: Any) -> list[str]:
    """The non-blank strings in a tool call's arguments (nested mappings and lists included).

    A tool such as ``send_message(to, text)`` carries words to other agents as surely as a
    message does, so kinguard reads these too.

    >>> argument_strings({"to": "bo", "note": {"text": "hold 40", "urgent": True}})
    ['bo', 'hold 40']
    """
    return _strings(arguments, 0)


def _strings(value: Any, depth: int) -> list[str]:
    if isinstance(value, str):
        return [value] if value.strip() else []
    if depth >= _MAX_DEPTH:
        return []
    if isinstance(value, dict):
        return [s for item in value.values() for s in _strings(item, depth + 1)]
    if isinstance(value, (list, tuple)):
        return [s for item in value for s in _strings(item, depth + 1)]
    return []
