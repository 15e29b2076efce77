"""Tier 1 of detection: fold a message into one canonical form that cheap patterns can match.

``normalise`` undoes the usual ways of hiding words from a pattern matcher while remembering
where every folded character came from, so evidence can point into the text the agent wrote:

* Unicode NFKC (fullwidth ``Ｗ``, mathematical ``𝐰``, ligatures, circled letters);
* confusable folding of look-alike letters from other scripts (Cyrillic ``е``, Greek ``ο``,
  Cherokee, Lisu, ...) to ASCII, then diacritics stripped (``wé`` -> ``we``);
* zero-width, bidi, tag and other invisible characters removed and counted (their presence is a
  covert-channel hint), stray control bytes likewise; lone surrogates become spaces;
* lower-casing;
* letter-spacing collapsed (``W e  A r e``, ``w.e a.r.e`` -> ``we are``);
* a bounded length: only the first ``max_chars`` characters are examined.

Speed: most agent messages are plain ASCII. For those, folding is ``str.lower()`` plus one
``bytes.translate`` and two literal searches, all in C, and ``index`` stays ``None``: no
per-character Python work and no allocation proportional to the text beyond the folded copy.
Only messages with non-ASCII characters, control bytes or letter-spacing take the slower path,
which walks the unusual characters alone (runs of ordinary ASCII are copied in bulk).
"""

from __future__ import annotations

import itertools
import re
import unicodedata
from collections import Counter
from functools import lru_cache

from kinguard.detectors._base import NormalizedText

__all__ = ["DEFAULT_MAX_CHARS", "normalise"]

DEFAULT_MAX_CHARS = 20_000
"""Longer messages are examined only up to here: detection cost must not grow with the input."""

# Single characters that look like one ASCII character. Generated once from Unicode's
# confusables.txt (Unicode License v3) via the data file of the ``confusable-homoglyphs``
# package: every non-ASCII character whose confusable prototype is one ASCII letter, digit or
# common punctuation mark, minus those NFKC already maps to ASCII; punctuation only from
# punctuation/modifier characters, so CJK text is not turned into slashes. Curly double
# quotes and em dashes were added by hand. Keyed by the ASCII character they imitate.
# fmt: off
_CONFUSABLES: dict[str, str] = {
    '"': "\u201c\u201d\u201e\u201f\u2033",
    "'": (
        "\u00b4\u02b9\u02bb\u02bc\u02bd\u02be\u02c8\u02ca\u02cb\u02f4\u0374\u0384\u055a"
        "\u055d\u1fbd\u1fbf\u1ffd\u1ffe\u2018\u2019\u201b\u2032\u2035"
    ),
    ',': "\u00b8\u201a\ua4f9",
    '-': "\u02d7\u2010\u2011\u2012\u2013\u2014\u2015\u2043\u2212\u2e3a\ufe58",
    '.': "\ua4f8\ua60e",
    '/': "\u1735\u2041\u2044\u2215\u27cb\u29f8\u3033",
    '2': "\u01a7\u03e8\u14bf\ua644\ua6ef\ua75a",
    '3': "\u01b7\u021c\u0417\u04e0\u2ccc\ua76a\ua7ab\U000118ca\U00016f3b\U0001d206",
    '4': "\u13ce\U000118af",
    '5': "\u01bc\U000118bb",
    '6': "\u0431\u13ee\u2cd2\U000118d5",
    '7': "\U000104d2\U000118c6\U0001d212",
    '8': "\u0222\u0223\u09ea\u0a6a\u0b03\U0001031a",
    '9': "\u09ed\u0a67\u0b68\u0d6d\u2cca\ua76e\U000118ac\U000118cc\U000118d6",
    ':': "\u02d0\u02f8\u0589\u16ec\u1803\u1809\u205a\u2236\ua4fd\ua789",
    'a': (
        "\u0251\u0391\u03b1\u0410\u0430\u13aa\u15c5\u237a\ua4ee\U000102a0\U00016f40"
        "\U0001d6a8\U0001d6c2\U0001d6e2\U0001d6fc\U0001d71c\U0001d736\U0001d756\U0001d770"
        "\U0001d790\U0001d7aa"
    ),
    'b': (
        "\u0184\u0392\u0412\u042c\u13cf\u13f4\u1472\u15af\u15f7\ua4d0\ua7b4\U00010282"
        "\U000102a1\U00010301\U0001d6a9\U0001d6e3\U0001d71d\U0001d757\U0001d791"
    ),
    'c': (
        "\u03f2\u03f9\u0421\u0441\u13df\u1d04\u2ca4\u2ca5\ua4da\uabaf\U000102a2\U00010302"
        "\U00010415\U0001043d\U0001051c\U000118e9\U000118f2\U0001f74c"
    ),
    'd': "\u0501\u13a0\u13e7\u146f\u15de\u15ea\ua4d2\ua4d3",
    'e': (
        "\u0395\u0415\u0435\u04bd\u13ac\u212e\u22ff\u2d39\ua4f0\uab32\U00010286\U000118a6"
        "\U000118ae\U0001d6ac\U0001d6e6\U0001d720\U0001d75a\U0001d794"
    ),
    'f': (
        "\u03dc\u0584\u15b4\u1e9d\ua4dd\ua798\ua799\uab35\U00010287\U000102a5\U00010525"
        "\U000118a2\U000118c2\U0001d213\U0001d7ca"
    ),
    'g': "\u018d\u0261\u050c\u0581\u13c0\u13f3\u1d83\ua4d6",
    'h': (
        "\u0397\u041d\u04bb\u0570\u13bb\u13c2\u157c\u2c8e\ua4e7\U000102cf\U0001d6ae"
        "\U0001d6e8\U0001d722\U0001d75c\U0001d796"
    ),
    'i': (
        "\u0131\u0269\u026a\u02db\u037a\u03b9\u0456\u04cf\u13a5\u1fbe\u2373\ua647\uab75"
        "\U000118c3\U0001d6a4\U0001d6ca\U0001d704\U0001d73e\U0001d778\U0001d7b2"
    ),
    'j': "\u037f\u03f3\u0408\u0458\u13ab\u148d\ua4d9\ua7b2",
    'k': (
        "\u039a\u041a\u13e6\u16d5\u2c94\ua4d7\U00010518\U0001d6b1\U0001d6eb\U0001d725"
        "\U0001d75f\U0001d799"
    ),
    'l': (
        "\u0196\u01c0\u0399\u0406\u04c0\u06f1\u13de\u14aa\u16c1\u2223\u23fd\u2c92\u2cd0"
        "\u2d4f\ua4e1\ua4f2\uffe8\U0001028a\U00010309\U00010320\U0001041b\U00010526"
        "\U000118a3\U000118b2\U00016f16\U00016f28\U0001d22a\U0001d6b0\U0001d6ea\U0001d724"
        "\U0001d75e\U0001d798"
    ),
    'm': (
        "\u039c\u03fa\u041c\u13b7\u15f0\u16d6\u2c98\ua4df\U000102b0\U00010311\U0001d6b3"
        "\U0001d6ed\U0001d727\U0001d761\U0001d79b"
    ),
    'n': (
        "\u039d\u0578\u057c\u2c9a\ua4e0\U00010513\U0001d6b4\U0001d6ee\U0001d728\U0001d762"
        "\U0001d79c"
    ),
    'o': (
        "\u039f\u03bf\u03c3\u041e\u043e\u0555\u0585\u06f5\u0966\u09e6\u0a66\u0ae6\u0b20"
        "\u0b66\u0be6\u0c02\u0c66\u0c82\u0ce6\u0d02\u0d20\u0d66\u0d82\u0e50\u0ed0\u101d"
        "\u1040\u10ff\u12d0\u1d0f\u1d11\u2c9e\u2c9f\u2d54\u3007\ua4f3\uab3d\U00010292"
        "\U000102ab\U00010404\U0001042c\U000104c2\U000104ea\U00010516\U000114d0\U000118b5"
        "\U000118c8\U000118d7\U000118e0\U0001d6b6\U0001d6d0\U0001d6d4\U0001d6f0\U0001d70a"
        "\U0001d70e\U0001d72a\U0001d744\U0001d748\U0001d764\U0001d77e\U0001d782\U0001d79e"
        "\U0001d7b8\U0001d7bc"
    ),
    'p': (
        "\u03a1\u03c1\u03f1\u0420\u0440\u13e2\u146d\u2374\u2ca2\u2ca3\ua4d1\U00010295"
        "\U0001d6b8\U0001d6d2\U0001d6e0\U0001d6f2\U0001d70c\U0001d71a\U0001d72c\U0001d746"
        "\U0001d754\U0001d766\U0001d780\U0001d78e\U0001d7a0\U0001d7ba\U0001d7c8"
    ),
    'q': "\u051b\u0563\u0566\u2d55",
    'r': (
        "\u01a6\u0433\u13a1\u13d2\u1587\u1d26\u2c85\ua4e3\uab47\uab48\uab81\U000104b4"
        "\U00016f35\U0001d216"
    ),
    's': (
        "\u01bd\u0405\u0455\u054f\u13d5\u13da\ua4e2\ua731\uabaa\U00010296\U00010420"
        "\U00010448\U000118c1\U00016f3a"
    ),
    't': (
        "\u03a4\u0422\u13a2\u22a4\u27d9\u2ca6\ua4d4\U00010297\U000102b1\U00010315"
        "\U000118bc\U00016f0a\U0001d6bb\U0001d6f5\U0001d72f\U0001d769\U0001d7a3\U0001f768"
    ),
    'u': (
        "\u028b\u03c5\u054d\u057d\u1200\u144c\u1d1c\u222a\u22c3\ua4f4\ua79f\uab4e\uab52"
        "\U000104ce\U000104f6\U000118b8\U000118d8\U00016f42\U0001d6d6\U0001d710\U0001d74a"
        "\U0001d784\U0001d7be"
    ),
    'v': (
        "\u03bd\u0474\u0475\u06f7\u13d9\u142f\u1d20\u2228\u22c1\u2d38\ua4e6\ua6df\uaba9"
        "\U0001051d\U00011706\U000118a0\U000118c0\U00016f08\U0001d20d\U0001d6ce\U0001d708"
        "\U0001d742\U0001d77c\U0001d7b6"
    ),
    'w': (
        "\u026f\u0461\u051c\u051d\u0561\u13b3\u13d4\u1d21\ua4ea\uab83\U0001170a\U0001170e"
        "\U0001170f\U000118e6\U000118ef"
    ),
    'x': (
        "\u00d7\u03a7\u0425\u0445\u1541\u157d\u166d\u166e\u16b7\u2573\u292b\u292c\u2a2f"
        "\u2cac\u2d5d\ua4eb\ua7b3\U00010290\U000102b4\U00010317\U00010322\U00010527"
        "\U000118ec\U0001d6be\U0001d6f8\U0001d732\U0001d76c\U0001d7a6"
    ),
    'y': (
        "\u0263\u028f\u03a5\u03b3\u03d2\u0423\u0443\u04ae\u04af\u10e7\u13a9\u13bd\u1d8c"
        "\u1eff\u213d\u2ca8\ua4ec\uab5a\U000102b2\U000118a4\U000118dc\U00016f43\U0001d6bc"
        "\U0001d6c4\U0001d6f6\U0001d6fe\U0001d730\U0001d738\U0001d76a\U0001d772\U0001d7a4"
        "\U0001d7ac"
    ),
    'z': (
        "\u0396\u13c3\u1d22\ua4dc\uab93\U000102f5\U000118a9\U000118c4\U000118e5\U0001d6ad"
        "\U0001d6e7\U0001d721\U0001d75b\U0001d795"
    ),
}
# fmt: on

_FOLD_TABLE: dict[int, str] = {
    ord(look_alike): ascii_char
    for ascii_char, look_alikes in _CONFUSABLES.items()
    for look_alike in look_alikes
}

# Characters that render as nothing but are not category Cf. Category Cf (zero-width space and
# joiners, bidi embeddings/overrides/isolates, tag characters U+E0000.., invisible operators,
# soft hyphen, BOM) is caught by category. U+E0100..U+E01EF, variation selectors 17-256, carry
# no meaning in ordinary text and have been used to smuggle bytes after an emoji.
_INVISIBLE = frozenset("\u115f\u1160\u2800\u3164\uffa0")
_VARIATION_SELECTOR_SUPPLEMENT = range(0xE0100, 0xE01F0)

# Invisible characters that are routine rather than suspicious: removed for matching, not
# counted. Others are routine only in context (``_is_benign_hidden``): a zero-width joiner in
# an emoji sequence, a byte-order mark at the start, a joiner or non-joiner between letters of
# a script whose spelling uses them (Persian "mi-khaham" is written with a non-joiner, Indic
# conjuncts with a joiner), and a lone direction mark, which RTL text and text pasted from it
# carry around numbers and punctuation.
_BENIGN_INVISIBLE = frozenset("\u00ad")  # soft hyphen, common in text pasted from the web
_ZWJ = "\u200d"
_JOINERS = frozenset("\u200c\u200d")
_DIRECTION_MARKS = frozenset("\u200e\u200f\u061c")
_BOM = "\ufeff"
# Arabic, Syriac, Thaana, N'Ko and their extensions; the Indic scripts; Tibetan, Myanmar;
# Khmer; Arabic presentation forms.
_JOINING_SCRIPTS = (
    (0x0600, 0x08FF),
    (0x0900, 0x0DFF),
    (0x0F00, 0x109F),
    (0x1780, 0x17FF),
    (0xFB50, 0xFDFF),
    (0xFE70, 0xFEFF),
)

_HIDDEN, _CONFUSABLE, _PLAIN = 0, 1, 2

# Characters needing more than ``str.lower``: anything outside printable ASCII except tab,
# newline and carriage return. Runs of them are folded one character at a time.
_IRREGULAR = re.compile(r"[^\t\n\r\x20-\x7e]+")


@lru_cache(maxsize=8192)
def _fold_char(ch: str) -> tuple[str, int]:
    """Fold one character that is not printable ASCII: ``(replacement, kind)``.

    Folding character by character (rather than NFKC over the whole string) is what keeps the
    offset map exact. It loses only canonical composition across characters, which does not
    matter here because combining marks are stripped anyway.
    """
    category = unicodedata.category(ch)
    code = ord(ch)
    if category in ("Cf", "Cc") or ch in _INVISIBLE or code in _VARIATION_SELECTOR_SUPPLEMENT:
        if ch == "\x85":  # NEL is a line break, not trickery
            return "\n", _PLAIN
        return "", _HIDDEN
    if category == "Cs":  # lone surrogate, e.g. bytes decoded with surrogateescape
        return " ", _PLAIN
    if category in ("Zl", "Zp"):
        return "\n", _PLAIN
    mapped = _FOLD_TABLE.get(code)
    if mapped is not None:
        return mapped, _CONFUSABLE
    compat = unicodedata.normalize("NFKC", ch)
    mapped = compat.translate(_FOLD_TABLE).lower().translate(_FOLD_TABLE)
    # Strip diacritics after decomposition so "é" matches "e"; do not count that as a
    # confusable, which is kept for look-alikes from other scripts and compatibility forms.
    stripped = "".join(
        c for c in unicodedata.normalize("NFKD", mapped) if not unicodedata.combining(c)
    )
    changed = compat != ch or mapped != compat.lower()
    kind = _CONFUSABLE if changed and stripped.isascii() and stripped.strip() else _PLAIN
    return stripped, kind


def _is_benign_hidden(src: str, i: int) -> bool:
    """Invisible characters ordinary text carries; see ``_BENIGN_INVISIBLE``.

    A run of invisible characters is never benign: encoding bits takes several in a row.
    """
    ch = src[i]
    if ch in _BENIGN_INVISIBLE or (ch == _BOM and i == 0):
        return True
    before, after = src[i - 1 : i] if i else "", src[i + 1 : i + 2]
    if ch in _DIRECTION_MARKS:
        return not any(_is_invisible(c) for c in before + after)
    if ch in _JOINERS:
        if before and after and _in_joining_script(before) and _in_joining_script(after):
            return True
        return ch == _ZWJ and any(
            unicodedata.category(c) in ("So", "Sk", "Mn") for c in before + after
        )
    return False


def _is_invisible(ch: str) -> bool:
    return not ch.isascii() and _fold_char(ch)[1] == _HIDDEN


def _in_joining_script(ch: str) -> bool:
    code = ord(ch)
    return any(low <= code <= high for low, high in _JOINING_SCRIPTS)


# Letter-spacing. A byte view of the folded text with every letter (and apostrophe, and any
# non-ASCII character after ``encode(errors="replace")``) as "a", digits as "0", control bytes as
# NUL and everything else as a space. Letter-spaced text ("w e  a r e", "w.e a.r.e") then
# contains " a a ", " a  a " or " a   a " ("w . e / a . r . e"); ordinary prose rarely does, so
# the exact run search below almost never runs. We chose
# to collapse the runs inside ``folded`` itself (with an index map) rather than keep a second
# "squeezed" view: one text for every pattern, no doubled matching cost, and NormalizedText
# keeps its shape.
def _shape_table() -> bytes:
    table = bytearray(b" " * 256)
    for b in range(256):
        c = chr(b)
        if (c.isascii() and c.isalpha()) or c in "'?":
            table[b] = ord("a")
        elif c.isdigit():
            table[b] = ord("0")
        elif (b < 32 and c not in "\t\n\r") or b == 127:
            table[b] = 0
    return bytes(table)


_SHAPE = _shape_table()
# Two single letters with a gap of one to three, as in ``_LETTER_RUN`` (any run has such a
# pair at its start): ``re`` scans for the literal prefix " a " in C, several times faster than
# ``bytes.__contains__`` on a haystack made mostly of "a" and " ", and one scan for all three
# gaps costs less than three literal searches.
_SPACING_PROBE = re.compile(rb" a {1,3}a ")
# Four or more single letters, each separated by one to three non-alphanumerics (in the shape
# view, where the text is prefixed by one space). Bounded repetition of disjoint classes: linear.
_LETTER_RUN = re.compile(rb"(?<= )a(?:[ ]{1,3}a(?![a0])){3,}(?![a0])")


def _squeeze(
    folded: str, index: list[int] | None, shape: bytes | None = None
) -> tuple[str, list[int] | None]:
    """Collapse letter-spaced runs in ``folded``; returns the new text and its offset map.

    Inside a run the most common gap (``" "`` in ``"W e  A r e"``, ``"."`` in ``"w.e a.r.e"``) is
    taken as the gap between letters and dropped; any other gap is a word break and becomes one
    space. A run whose gaps are all alike is joined whole, so ``"w e a r e"`` becomes
    ``"weare"``: word breaks cannot be recovered from uniform spacing.
    """
    if shape is None:
        shape = b" " + folded.encode("ascii", "replace").translate(_SHAPE)
    if not _SPACING_PROBE.search(shape):
        return folded, index
    runs = [(m.start() - 1, m.end() - 1) for m in _LETTER_RUN.finditer(shape)]
    if not runs:
        return folded, index
    base = index if index is not None else range(len(folded))
    pieces: list[str] = []
    new_index: list[int] = []
    prev = 0
    for start, end in runs:
        pieces.append(folded[prev:start])
        new_index.extend(base[prev:start])
        letters = [i for i in range(start, end) if shape[i + 1] != 32]
        gaps = [folded[a + 1 : b] for a, b in itertools.pairwise(letters)]
        letter_gap = Counter(gaps).most_common(1)[0][0]
        pieces.append(folded[letters[0]])
        new_index.append(base[letters[0]])
        for (a, b), gap in zip(itertools.pairwise(letters), gaps, strict=True):
            if gap != letter_gap:
                pieces.append(" ")
                new_index.append(base[a + 1])
            pieces.append(folded[b])
            new_index.append(base[b])
        prev = end
    pieces.append(folded[prev:])
    new_index.extend(base[prev:])
    return "".join(pieces), new_index


def normalise(text: str, *, max_chars: int = DEFAULT_MAX_CHARS) -> NormalizedText:
    """Fold ``text`` for matching; see the module docstring for what is undone.

    Never raises on any ``str`` (lone surrogates, NUL bytes, binary junk). ``original`` is
    ``text`` itself, so ``NormalizedText.span`` maps matches to offsets in the caller's string.
    """
    truncated = len(text) > max_chars
    src = text[:max_chars] if truncated else text
    if src.isascii():
        lowered = src.lower()
        shape = b" " + lowered.encode("ascii").translate(_SHAPE)
        # Control bytes map to NUL in the shape view; only they need the slow path.
        if 0 not in shape:
            # Positional, and the spacing probe here rather than behind a call to _squeeze:
            # on the message path of a running app each call and keyword costs more than
            # this work itself.
            if not _SPACING_PROBE.search(shape):
                return NormalizedText(text, lowered, None, 0, 0, truncated)
            folded, squeezed = _squeeze(lowered, None, shape)
            return NormalizedText(text, folded, squeezed, 0, 0, truncated)

    pieces: list[str] = []
    index: list[int] = []
    hidden = confusables = 0
    hidden_spans: list[tuple[int, int]] = []
    aligned = True
    prev = 0
    for run in _IRREGULAR.finditer(src):
        start, end = run.span()
        pieces.append(src[prev:start].lower())
        index.extend(range(prev, start))
        for i in range(start, end):
            replacement, kind = _fold_char(src[i])
            if kind == _HIDDEN and not _is_benign_hidden(src, i):
                hidden += 1
                if hidden_spans and hidden_spans[-1][1] == i:
                    hidden_spans[-1] = (hidden_spans[-1][0], i + 1)
                else:
                    hidden_spans.append((i, i + 1))
            elif kind == _CONFUSABLE:
                confusables += 1
            if len(replacement) == 1:
                index.append(i)
            else:
                aligned = False
                index.extend([i] * len(replacement))
            pieces.append(replacement)
        prev = end
    pieces.append(src[prev:].lower())
    index.extend(range(prev, len(src)))
    folded, squeezed_index = _squeeze("".join(pieces), None if aligned else index)
    return NormalizedText(
        original=text,
        folded=folded,
        index=squeezed_index,
        hidden_controls=hidden,
        confusables=confusables,
        truncated=truncated,
        hidden_spans=tuple(hidden_spans),
    )
