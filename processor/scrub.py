"""Scrubbing of free text (search queries, comments): identifiers become markers.

Replaced: e-mail addresses ``[email]``, Chinese resident ID numbers ``[idcard]``, Chinese
mobile numbers ``[phone]``, IPv4 addresses ``[ip]``, MAC addresses ``[mac]``, and any other
run of 7 or more digits ``[number]`` (bank cards, QQ numbers, IMEIs, ...). Most texts hold
neither a digit nor an ``@`` and are returned as they are, at the cost of one regex search.
"""

from __future__ import annotations

import re

# Full-width ASCII (U+FF01..U+FF5E) and the ideographic space, as Chinese input methods type
# them, mapped one character to one character (as NFKC does): matching runs on the mapped
# text and replacements are cut from the original, so the rest of the text is untouched.
_HALF_WIDTH = {code: code - 0xFEE0 for code in range(0xFF01, 0xFF5F)} | {0x3000: 0x20}
# Full-width punctuation (U+FF0C comma, U+FF1A colon) is in most Chinese texts; mapping costs
# more than all the matching, so it is done only when a full-width identifier char is present.
_FULL_WIDTH_IDENTIFIER_CHAR = re.compile(
    "[\uff10-\uff19\uff21-\uff3a\uff41-\uff5a\uff20\uff0b\uff0d\uff0e]"
)

_TRIGGER = re.compile("[\\d@\uff20]")  # a digit or an (also full-width) at sign
# Every identifier is a run of printable ASCII and digits: the full pattern only runs inside
# such runs, which is 4x faster on Chinese text than searching the whole text with it.
_ASCII_RUN = re.compile(r"[!-~\d](?:[ -~\d]*[!-~\d])?")

_HEX = "[0-9A-Fa-f]"
_PATTERN = re.compile(
    rf"""
    (?P<email>[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{{2,}})
    | (?P<mac>(?<![0-9A-Za-z])(?:
          {_HEX}{{2}}(?P<sep>[:-]){_HEX}{{2}}(?:(?P=sep){_HEX}{{2}}){{4}}
        | {_HEX}{{4}}\.{_HEX}{{4}}\.{_HEX}{{4}}
        | (?=[0-9]*[A-Fa-f])(?=[A-Fa-f]*[0-9]){_HEX}{{12}}
      )(?![0-9A-Za-z]))
    | (?P<ip>(?<!\d)(?<!\d\.)(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){{3}}
          (?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?!\.?\d))
    | (?P<idcard>(?<!\d)\d{{17}}(?:\d|[Xx](?![A-Za-z]))(?!\d))
    | (?P<phone>(?<!\d)(?:\(?(?:\+|00)?86\)?[ -]?)?1[3-9]\d(?:[ -]?\d{{4}}){{2}}(?!\d))
    | (?P<number>(?<!\d)(?:\d{{7,}}(?:[ -]\d+)*|\d+(?:[ -]\d+)+)(?!\d))
    """,
    re.VERBOSE,
)
_PLAIN_RUN = re.compile(r"\d{7,}")
# Digit groups joined by single spaces or dashes are one number only from 11 digits on:
# shorter ones are dates and times ("2024-05-01", "12 30").
_MIN_GROUPED_DIGITS = 11

_ID_CARD_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CARD_CHECK = "10X98765432"


def is_id_card_number(number: str) -> bool:
    """True when ``number`` (17 digits + check character) has a valid GB 11643 check."""
    total = sum(
        int(digit) * weight for digit, weight in zip(number[:17], _ID_CARD_WEIGHTS, strict=True)
    )
    return _ID_CARD_CHECK[total % 11] == number[17].upper()


def _replacement(match: re.Match[str], original: str) -> str:
    kind = match.lastgroup
    if kind == "idcard":
        return "[idcard]" if is_id_card_number(match.group()) else "[number]"
    if kind == "number":
        text = match.group()
        if text.isdigit() or sum(char.isdigit() for char in text) >= _MIN_GROUPED_DIGITS:
            return "[number]"
        return _PLAIN_RUN.sub("[number]", original[match.start() : match.end()])
    return f"[{kind}]"


def scrub_text(text: str) -> str:
    """``text`` with e-mails, ID-card, phone, IP, MAC numbers and long digit runs replaced."""
    if _TRIGGER.search(text) is None:
        return text
    normalized = text
    if _FULL_WIDTH_IDENTIFIER_CHAR.search(text) is not None:
        normalized = text.translate(_HALF_WIDTH)
    pieces: list[str] = []
    end = 0
    for run in _ASCII_RUN.finditer(normalized):
        for match in _PATTERN.finditer(normalized, run.start(), run.end()):
            pieces.append(text[end : match.start()])
            pieces.append(_replacement(match, text))
            end = match.end()
    if not pieces:
        return text
    pieces.append(text[end:])
    return "".join(pieces)
