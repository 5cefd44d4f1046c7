"""Scrubbing of free text (search queries, comments): personal data becomes markers.

What is found and how (every spelling, Chinese numerals, addresses, ...) is in
``processor.pipeline.detectors``; each detection's span of the original text is replaced by its
kind as a marker: ``[phone]``, ``[idcard]``, ``[bankcard]``, ``[email]``, ``[qq]``,
``[wechat]``, ``[plate]``, ``[address]``, ``[ip]``, ``[mac]``, ``[device_id]``, ``[number]``.
The rest of the text is kept as written. A text with nothing found is returned as it is.

Texts longer than the pipeline's ``max_text_chars`` are cut before scrubbing
(:func:`truncate_text`), so one huge query costs no more than a long comment.
"""

from __future__ import annotations

from processor.pipeline.detectors import find_identifiers, is_id_card_number

# is_id_card_number lived here before the detectors had their own module; code that
# imports it from here (the identifier checks of kept fields) keeps working.
__all__ = ["DEFAULT_MAX_TEXT_CHARS", "is_id_card_number", "scrub_text", "truncate_text"]

DEFAULT_MAX_TEXT_CHARS = 2_000


# How far around the cut an identifier is looked for (the longest spelled one, an address
# or an e-mail with spaced separators, is shorter).
_CUT_MARGIN = 128


def truncate_text(text: str, max_chars: int) -> str:
    """``text`` cut to at most ``max_chars`` characters; an identifier that the cut would
    split is cut off whole, so no fragment of it (``1381234``) is left to the scrubber."""
    if len(text) <= max_chars:
        return text
    start = max(0, max_chars - _CUT_MARGIN)
    cut = max_chars
    for detection in find_identifiers(text[start : max_chars + _CUT_MARGIN]):
        if detection.start + start < cut < detection.end + start:
            cut = detection.start + start
    return text[:cut]


def scrub_text(text: str) -> str:
    """``text`` with every detected identifier replaced by its marker."""
    detections = find_identifiers(text)
    if not detections:
        return text
    pieces: list[str] = []
    end = 0
    for detection in detections:
        pieces.append(text[end : detection.start])
        pieces.append(f"[{detection.kind}]")
        end = detection.end
    pieces.append(text[end:])
    return "".join(pieces)
