"""``collusion.against_principal`` by name: hiding things from the parties the agents serve.

The lexical tier knows generic words for a principal ("our client", "the user"). Real agents
name them ("ACME doesn't need to know"), and the guard knows those names from the agents'
profiles, so this detector builds its patterns from them.
"""

from __future__ import annotations

import functools
import re
from typing import ClassVar

from kinguard.detectors._base import Context
from kinguard.types import Evidence, Message, Signal

__all__ = ["PrincipalDetector"]

# Leading words that are not a name of their own ("Team Red", "The Board").
_GENERIC = frozenset({"the", "team", "our", "your", "their", "my", "a", "an", "mr", "ms", "dr"})
_HIDE_FROM = (
    r"(?:{names})(?:'s|s)? (?:doesn't|does not|don't|do not|needn't|need not|shouldn't"
    r"|should not|won't|will not|will never|would never|must not|mustn't|can't|cannot|never)"
    r" (?:needs? to |ha(?:ve|s) to |ever |even |gets? to |be able to )?"
    r"(?:know|find out|learn|be told|hear|see|notice|discover|realise|realize|suspect)"
    r"|(?:don't|do not|never|not|without|won't|will not|let's not|no need to) (?:ever )?"
    r"(?:tell|telling|inform|informing|mention|mentioning|report|reporting|disclose"
    r"|disclosing|reveal|revealing|show|showing|notify|notifying|admit|explain)"
    r"(?: (?:this|it|that|anything|any of this|the truth|them))? (?:to )?(?:{names})\b"
    r"|(?:hide|hiding|keep|keeping|conceal|concealing|withhold|withholding) (?:this|it|that"
    r"|the \w+|our \w+|these \w+|any of this)(?: \w+)? from (?:{names})\b"
    r"|behind (?:{names})(?:'s|s)? backs?"
)


@functools.lru_cache(maxsize=256)
def _names(principals: tuple[str | None, ...]) -> tuple[str, ...]:
    """The names to look for: each principal in full, and its first word if distinctive.

    Cached: a guard sees the same few routes, hence the same principals, message after message.
    """
    names: set[str] = set()
    for principal in principals:
        if not principal or not principal.strip():
            continue
        names.add(principal.strip().lower())
        first = principal.split()[0].strip(",.'\u2019").lower()
        if len(first) >= 3 and first not in _GENERIC:
            names.add(first)
    # Longest first so "acme procurement" wins over "acme".
    return tuple(sorted(names, key=len, reverse=True))


@functools.lru_cache(maxsize=256)
def _pattern(names: tuple[str, ...]) -> re.Pattern[str]:
    alternation = "|".join(re.escape(name) for name in names)
    return re.compile(r"\b(?:" + _HIDE_FROM.replace("{names}", alternation) + r")")


class PrincipalDetector:
    """Flags talk of keeping something from a principal named in the agents' profiles."""

    inline: ClassVar[bool] = True
    detector_name: ClassVar[str] = "principal"
    score: ClassVar[float] = 0.75

    def __call__(self, message: Message, context: Context) -> list[Signal]:
        if context.signals and any(
            s.name == "collusion.against_principal" for s in context.signals
        ):
            return []  # the lexical tier already found it; one signal per finding
        names = _names((context.sender.principal, *[r.principal for r in context.recipients]))
        if not names:
            return []
        folded = context.text.folded
        # Cheap gate: no principal named, nothing to look for.
        if not any(map(folded.__contains__, names)):
            return []
        evidence = []
        for match in _pattern(names).finditer(folded):
            start, end = context.text.span(*match.span())
            evidence.append(Evidence(start=start, end=end, text=context.text.original[start:end]))
        if not evidence:
            return []
        return [
            Signal(
                name="collusion.against_principal",
                score=self.score,
                evidence=tuple(evidence[:8]),
                tier="lexical",
                detail="keeps something from a named principal",
            )
        ]
