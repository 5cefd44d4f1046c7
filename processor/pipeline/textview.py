"""The detection view of a free text: the spelling people type to dodge filters, undone.

``detection_view(text)`` returns the text with, character by character:

- NFKC applied (full-width ``１３８``/``＠``/``．``, circled ``①``, superscripts, ...);
- every Unicode space (ideographic, no-break, thin, tab, line breaks) made one ASCII space,
  and every dash (``—``, ``－``, U+2212, ...) an ASCII hyphen;
- Chinese numerals (``〇零一二...九``, ``幺``, the financial ``壹贰叁...``) and dingbat circled
  digits made ASCII digits;
- zero-width characters (U+200B..U+200F, U+2060.., U+FEFF, soft hyphen) removed, and the
  variation selectors and combining keycap that make ``1️⃣`` of a digit.

Detectors of numbers run on the view; detectors of Latin-script ids (e-mail, WeChat ids,
MAC, plates) run on ``TextView.plain``, the same view with Chinese numerals left as they are
(so ``lily_2024一起`` ends at the 4); both have the same length. ``TextView.span`` maps a
span of the view back to the original, which is what gets replaced. Most texts need no
removal and no expansion: their view is one ``str.translate`` (one character for one), and
spans are the same in both.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

CHINESE_DIGITS = {
    **dict.fromkeys("〇零", "0"),
    "一": "1",
    "幺": "1",
    "二": "2",
    "三": "3",
    "四": "4",
    "五": "5",
    "六": "6",
    "七": "7",
    "八": "8",
    "九": "9",
    "壹": "1",
    "贰": "2",
    "貳": "2",
    "叁": "3",
    "參": "3",
    "肆": "4",
    "伍": "5",
    "陆": "6",
    "陸": "6",
    "柒": "7",
    "捌": "8",
    "玖": "9",
}
# Dingbat circled digits have no compatibility decomposition, so NFKC leaves them.
_DINGBAT_DIGITS = {
    chr(base + offset): str(offset + 1) for base in (0x2776, 0x2780, 0x278A) for offset in range(9)
}
# Zero-width characters, and what turns a digit into an emoji (variation selectors, the
# combining keycap of 1️⃣).
_ZERO_WIDTH = (
    "\u00ad\u180e\u200b\u200c\u200d\u200e\u200f\u2060\u2061\u2062\u2063\u2064\ufeff"
    "\u20e3" + "".join(map(chr, range(0xFE00, 0xFE10)))
)
# Code points whose NFKC form is looked up: the BMP and the mathematical digits/letters.
_RANGES = (range(0x80, 0x10000), range(0x1D400, 0x1D800))


def _build_tables() -> tuple[dict[int, int], str]:
    """(one-for-one translation table, characters needing the slow path)."""
    table: dict[int, int] = {}
    slow: list[str] = list(_ZERO_WIDTH)
    for char, digit in (*CHINESE_DIGITS.items(), *_DINGBAT_DIGITS.items()):
        table[ord(char)] = ord(digit)
    for code in (c for r in _RANGES for c in r):
        char = chr(code)
        if code in table or char in _ZERO_WIDTH or 0xD800 <= code <= 0xDFFF:
            continue
        if char.isspace():
            table[code] = 0x20
            continue
        if unicodedata.category(char) == "Pd":
            table[code] = 0x2D
            continue
        normal = unicodedata.normalize("NFKC", char)
        if normal == char:
            continue
        if len(normal) == 1:
            table[code] = 0x20 if normal.isspace() else ord(normal)
        else:
            slow.append(char)
    for code in range(0x80):  # ASCII whitespace other than the space itself
        if chr(code).isspace() and code != 0x20:
            table[code] = 0x20
    return table, "".join(slow)


_TABLE, _SLOW_CHARS = _build_tables()
_SLOW = re.compile("[" + re.escape(_SLOW_CHARS) + "]")
_PLAIN_TABLE = {code: mapped for code, mapped in _TABLE.items() if chr(code) not in CHINESE_DIGITS}
_CHINESE_NUMERAL = re.compile("[" + "".join(CHINESE_DIGITS) + "]")


@dataclass(frozen=True, slots=True)
class TextView:
    """The view of one text and, when lengths differ, where each view character came from."""

    text: str
    plain: str  # the view with Chinese numerals as written
    origins: tuple[int, ...] | None  # view index -> original index; None: the same

    def span(self, start: int, end: int) -> tuple[int, int]:
        """The span of the original text that ``view[start:end]`` came from."""
        origins = self.origins
        if origins is None:
            return start, end
        return origins[start], origins[end - 1] + 1


def detection_view(text: str) -> TextView:
    """The detection view of ``text`` (see the module docstring)."""
    if _SLOW.search(text) is None:
        view = text.translate(_TABLE)
        if _CHINESE_NUMERAL.search(text) is None:
            return TextView(view, view, None)
        return TextView(view, text.translate(_PLAIN_TABLE), None)
    pieces: list[str] = []
    origins: list[int] = []
    for index, char in enumerate(text):
        if char in _ZERO_WIDTH:
            continue
        if char in CHINESE_DIGITS:
            piece = char  # made a digit below, for the numeric view only
        elif (mapped := _TABLE.get(ord(char))) is not None:
            piece = chr(mapped)
        else:
            piece = unicodedata.normalize("NFKC", char).translate(_PLAIN_TABLE)
        pieces.append(piece)
        origins.extend([index] * len(piece))
    plain = "".join(pieces)
    return TextView(plain.translate(_TABLE), plain, tuple(origins))
