"""The leak scanner: finds raw identifiers in outputs (JSON lines) and logs (any text).

Two kinds of findings:

- pattern findings, independent of any input: identifier-shaped values (a Luhn-valid IMEI,
  an IMSI, an ICCID, a MAC, an IP address, a Chinese mobile or ID-card number, an e-mail,
  a UUID-shaped OAID, an Android ID, a precise coordinate), and whatever the free-text
  scrubber's detectors find (``processor.pipeline.detectors``: phone numbers in any spelling, bank
  cards, labelled QQ/WeChat ids, plates, street addresses, ...), so that what the scrubber
  missed is still reported;
- exact findings (kind ``raw:<id kind>``): the raw values of the input events, in every
  spelling the scanner can generate, matched on token boundaries.

Pseudonyms (``rec-1:`` + 26 base32 or 32 hex characters) are blanked before scanning. A finding's
excerpt is masked, so the scanner's own report does not leak what it found.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from ipaddress import ip_address

import orjson

from processor.pipeline.canonical import NONCONFORMING_PREFIX, canonicalize, luhn_valid
from processor.pipeline.detect import DETECTORS
from processor.pipeline.detectors import find_identifiers
from processor.pipeline.kinds import IdKind
from schemas import Role, load_roles

# Same one-to-one full-width mapping as processor.pipeline.scrub: spans stay aligned.
_HALF_WIDTH = {code: code - 0xFEE0 for code in range(0xFF01, 0xFF5F)} | {0x3000: 0x20}
# Pseudonyms of identifiers (base32) and of event ids (hex): random digits, no identifier.
_PSEUDONYM = re.compile(
    r"(?<![0-9A-Za-z])[a-z]{2,8}-[0-9]{1,10}:(?:[a-z2-7]{26}|[0-9a-f]{32})(?![0-9A-Za-z])"
)
_COORDINATE_KEYS = frozenset({"lat", "lon", "lng", "latitude", "longitude"})
# A quarantine record's ``sealed`` field is AES-GCM ciphertext in base64: random text in
# which a label-and-id pattern turns up now and then ("wx" + "Ab12cd" + "/"). Skipped only
# while it is base64, so plaintext put there by mistake is still scanned.
_SEALED = re.compile(r"(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?")
_MIN_COORDINATE_DECIMALS = 4
_VERSION_CONTEXT = re.compile(r"(?:version|ver|v)[\"']?\s*[:=]?\s*[\"']?$", re.IGNORECASE)

# Exact search: a text is cut into segments (letters/digits); windows of segments joined by
# one grouping character are looked up as written and "squeezed" (separators removed).
_SEGMENT = re.compile(r"[^\W_]+")
_JOINERS = frozenset({"-", ":", ".", " ", "_", "/", "::"})
_WINDOW_GRAMMAR = re.compile(r"[^\W_]+(?:(?:[-:. _/]|::)[^\W_]+)*")
_WINDOW = 8  # segments: an expanded IPv6 address has 8
# Kinds whose separators are only grouping noise (MAC with any separator, spaced IMEI...).
_SQUEEZABLE = frozenset(
    {
        IdKind.IMEI,
        IdKind.MEID,
        IdKind.IMSI,
        IdKind.ICCID,
        IdKind.OAID,
        IdKind.ANDROID_ID,
        IdKind.MAC,
        IdKind.BSSID,
        IdKind.PHONE,
    }
)
_MIN_NEEDLE = 3
# Short all-digit values (a user id "10086") would collide with amounts, counts, durations.
_MIN_DIGITS_NEEDLE = 6

RawFields = tuple[tuple[tuple[str, ...], IdKind], ...]


def raw_fields(roles: Mapping[str, Role]) -> RawFields:
    """The identifier fields of a field-role table, as (path, kind). Event ids name no one:
    outputs carry only their pseudonyms, and a copy of one would be no identifier leak."""
    return tuple(
        (tuple(path.split(".")), IdKind(role.kind))
        for path, role in roles.items()
        if role.role == "identifier" and role.kind is not None and role.kind != IdKind.EVENT_ID
    )


_SHIPPED_FIELDS = raw_fields(load_roles())
_RAW_COORDINATE_DECIMALS = 3


@dataclass(frozen=True, slots=True)
class Finding:
    """One suspected leak. ``where`` is a JSON path or ``col N``; ``excerpt`` is masked."""

    line: int
    kind: str
    where: str
    excerpt: str


def record_line(
    topic: str, key: bytes | None, headers: Iterable[tuple[str, bytes]], value: bytes | None
) -> bytes:
    """One Kafka record as the JSON line the scanner reads: topic, message key, headers and
    value (parsed when it is JSON, so findings name their field)."""
    try:
        body: object = orjson.loads(value) if value is not None else None
    except orjson.JSONDecodeError:
        body = value.decode("utf-8", "replace") if value is not None else None
    return orjson.dumps(
        {
            "topic": topic,
            "key": key.decode("utf-8", "replace") if key is not None else None,
            "headers": {k: v.decode("utf-8", "replace") for k, v in headers},
            "value": body,
        }
    )


def mask(value: str) -> str:
    """A hint of ``value`` that does not re-leak it: ``35***09``."""
    if len(value) <= 6:
        return value[:1] + "***"
    return f"{value[:2]}***{value[-2:]}"


_COORDINATE_IN_TEXT = re.compile(
    r"(?i)[\"']?(?:lat|lon|lng|latitude|longitude)[\"']?\s*[:=]\s*[\"']?"
    rf"(-?[0-9]{{1,3}}\.[0-9]{{{_MIN_COORDINATE_DECIMALS},}})(?![0-9])"
)
_DECIMAL = re.compile(r"(?<![0-9.])-?[0-9]{1,3}\.[0-9]{3,}(?![0-9])")

# A hit inside one string: start, end, kind; exact hits outrank pattern hits.
_Hit = tuple[int, int, str]

# The detectors of these kinds consume only the characters of _DETECTOR_REGION, so their
# matches lie inside runs of them ("regions"), at least _SHORTEST_DETECTION long (IPv6: with
# two colons). They are run on each region only (pos/endpos: lookbehinds still see the text
# before it, and the character after it, outside it, is kept for the lookaheads). Any other
# detector (e-mail, or a new one) is run on the whole text.
_REGION_KINDS = frozenset(
    {"imsi", "iccid", "imei", "idcard", "phone", "mac", "oaid", "android_id", "meid", "ipv4"}
)
_DETECTOR_REGION = re.compile(r"[0-9A-Fa-fXx:.+ -]{2,}")
_SHORTEST_DETECTION = 7  # "1.2.3.4"

# The texts of one document are scanned joined by this: it is in no pattern's character
# classes, and every boundary assertion treats it like the edge of a string.
_SEPARATOR = "\x00"
# A decimal number with a fraction, and maybe an exponent, standing alone (not a part of a
# dotted address or version: no letter, digit or dot on either side).
_FLOAT = re.compile(r"(?<![0-9A-Za-z.])-?[0-9]+\.[0-9]+(?:[eE][+-]?[0-9]+)?(?![0-9A-Za-z.])")
_DIGIT_RUN = re.compile(r"[0-9]+")


def _may_hold_coordinate_key(text: str) -> bool:
    """Necessary for _COORDINATE_IN_TEXT: only ASCII letters match these case-insensitively."""
    lowered = text.lower()
    return "lat" in lowered or "lon" in lowered or "lng" in lowered


def _substring_key(needle: str) -> str | None:
    """The longest run of ASCII digits with a non-digit on both sides inside ``needle``.

    An ASCII digit matches only itself, even case-insensitively, and nothing else matches
    it: wherever ``needle`` matches, its key is a whole run of digits of the text. None when
    there is no such run (the needle is then searched everywhere).
    """
    runs = [
        match.group()
        for match in _DIGIT_RUN.finditer(needle)
        if match.start() > 0 and match.end() < len(needle)
    ]
    return max(runs, key=len) if runs else None


def _decimals(value: float) -> int:
    text = repr(value)
    return len(text.partition(".")[2]) if "e" not in text else 0


def _spellings(kind: IdKind, value: str, canonical: str) -> set[str]:
    spellings = {value, canonical.removeprefix(NONCONFORMING_PREFIX)}
    if canonical.startswith(NONCONFORMING_PREFIX):
        return spellings
    if kind is IdKind.IMEI:
        check = next(d for d in "0123456789" if luhn_valid(canonical + d))
        spellings.add(canonical + check)
    elif kind is IdKind.MEID and len(canonical) == 14:
        spellings.add(f"{int(canonical[:8], 16):010d}{int(canonical[8:], 16):08d}")
    elif kind is IdKind.IP:
        address = ip_address(canonical)
        spellings.add(address.exploded)
        if address.version == 4:
            spellings.add(f"::ffff:{canonical}")
    elif kind is IdKind.PHONE and canonical.startswith("+86"):
        spellings.add(canonical[3:])
    return spellings


class LeakScanner:
    """Finds identifier-shaped values and known raw values in text and JSON lines."""

    def __init__(self, raw_values: Iterable[tuple[IdKind, str]] = ()) -> None:
        self._exact: dict[str, IdKind] = {}
        self._squeezed: dict[str, IdKind] = {}
        # For ASCII text, a window can only grow into a needle while it is a prefix of one.
        self._exact_prefixes: set[str] = set()
        self._squeezed_prefixes: set[str] = set()
        # Needles that are not windows, searched as case-insensitive substrings, in this
        # order; each is only searched in lines holding its key (see _substring_key).
        self._substrings: dict[str, IdKind] = {}
        self._substring_patterns: dict[str, re.Pattern[str]] = {}  # compiled on first use
        self._substrings_by_key: dict[str, list[str]] = {}
        self._unkeyed_substrings: list[str] = []
        self._coordinates: set[float] = set()
        for kind, value in raw_values:
            self.add_raw_value(kind, value)

    @classmethod
    def from_raw_events(
        cls, lines: Iterable[bytes | str], roles: Mapping[str, Role] | None = None
    ) -> LeakScanner:
        """A scanner for the identifiers in raw events (JSON lines), at the identifier fields
        of ``roles`` (default: the shipped field-role table); bad lines are skipped."""
        scanner = cls()
        fields = _SHIPPED_FIELDS if roles is None else raw_fields(roles)
        for line in lines:
            try:
                event = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue
            if isinstance(event, dict):
                scanner._add_raw_event(event, fields)
        return scanner

    def _add_raw_event(self, event: dict[str, object], fields: RawFields) -> None:
        for path, kind in fields:
            value: object = event
            for key in path:
                value = value.get(key) if isinstance(value, dict) else None
            if isinstance(value, dict):  # network.cell
                parts = [value.get(key) for key in ("mcc", "mnc", "lac", "cid")]
                value = "-".join(map(str, parts)) if None not in parts else None
            if isinstance(value, str | int) and not isinstance(value, bool):
                self.add_raw_value(kind, str(value))
        location = event.get("location")
        if isinstance(location, dict):
            for key in ("lat", "lon"):
                coordinate = location.get(key)
                if (
                    isinstance(coordinate, float)
                    and _decimals(coordinate) >= _RAW_COORDINATE_DECIMALS
                ):
                    self._coordinates.add(coordinate)

    def add_raw_value(self, kind: IdKind, value: str) -> None:
        """Look for ``value`` (a raw identifier of ``kind``) too; placeholders are ignored."""
        canonical = canonicalize(kind, value)
        if canonical is None:
            return
        for spelling in _spellings(kind, value.strip(), canonical):
            # A leading "+" (phone) is never part of a segment, so it is left out.
            needle = spelling.lower().lstrip("+")
            if len(needle) < _MIN_NEEDLE or (needle.isdigit() and len(needle) < _MIN_DIGITS_NEEDLE):
                continue
            if _WINDOW_GRAMMAR.fullmatch(needle) is None:
                self._add_substring(needle, kind)
                continue
            self._exact[needle] = kind
            self._exact_prefixes.update(needle[: m.end()] for m in _SEGMENT.finditer(needle))
            if kind in _SQUEEZABLE:
                squeezed = "".join(_SEGMENT.findall(needle))
                self._squeezed[squeezed] = kind
                self._squeezed_prefixes.update(
                    squeezed[:end] for end in range(1, len(squeezed) + 1)
                )

    def _add_substring(self, needle: str, kind: IdKind) -> None:
        if needle not in self._substrings:
            key = _substring_key(needle)
            if key is None:
                self._unkeyed_substrings.append(needle)
            else:
                self._substrings_by_key.setdefault(key, []).append(needle)
        self._substrings[needle] = kind

    def scan_text(self, text: str, line_no: int = 0) -> list[Finding]:
        """Findings in one line of arbitrary text; ``where`` is the 1-based column."""
        return [
            Finding(line_no, kind, f"col {start + 1}", mask(text[start:end]))
            for start, end, kind in self._hits([(text, False)])[0]
        ]

    def scan_lines(self, lines: Iterable[str | bytes]) -> list[Finding]:
        """Findings in lines numbered from 1; JSON lines are scanned value by value, so
        ``where`` is the JSON path (``value.device.imei``), other lines as text."""
        findings: list[Finding] = []
        for line_no, raw_line in enumerate(lines, start=1):
            line = raw_line.decode("utf-8", "replace") if isinstance(raw_line, bytes) else raw_line
            line = line.rstrip("\r\n")
            document: object = None
            if line.lstrip()[:1] in ("{", "["):
                try:
                    document = orjson.loads(line)
                except orjson.JSONDecodeError:
                    document = None
            if isinstance(document, dict | list):
                findings.extend(self._scan_document(document, line_no))
            else:
                findings.extend(self.scan_text(line, line_no))
        return findings

    def _scan_document(
        self, document: dict[str, object] | list[object], line_no: int
    ) -> list[Finding]:
        # Each leaf is either a coordinate finding already, or a text to scan (all the
        # texts of a document are scanned in one pass, see _hits).
        leaves: list[tuple[str, Finding | str]] = []
        texts: list[tuple[str, bool]] = []
        for where, value in _leaves(document):
            field = where.rpartition(".")[2].lower()
            if (
                isinstance(value, float)
                and field in _COORDINATE_KEYS
                and _decimals(value) >= _MIN_COORDINATE_DECIMALS
            ):
                leaves.append((where, Finding(line_no, "coordinate", where, mask(repr(value)))))
                continue
            if field == "sealed" and isinstance(value, str) and _SEALED.fullmatch(value):
                continue
            text = value if isinstance(value, str) else repr(value)
            leaves.append((where, text))
            texts.append((text, "version" in field))
        text_hits = self._hits(texts)
        if len(leaves) == len(texts) and not any(text_hits):
            return []  # the usual case: nothing found
        hits = iter(text_hits)
        findings: list[Finding] = []
        for where, leaf in leaves:
            if isinstance(leaf, Finding):
                findings.append(leaf)
                continue
            findings.extend(
                Finding(line_no, kind, where, mask(leaf[start:end]))
                for start, end, kind in next(hits)
            )
        return findings

    def _hits(self, texts: list[tuple[str, bool]]) -> list[list[_Hit]]:
        """The hits of each (text, is a version field), as if each text were scanned alone.

        The texts are joined by a separator that no pattern, needle window or pseudonym can
        cross and that every boundary assertion treats like the edge of a string, so each
        pattern runs once over the join; hits are then given back to their text.
        """
        joined = _SEPARATOR.join(text for text, _ in texts)
        if not joined.isascii():
            joined = joined.translate(_HALF_WIDTH)  # one-to-one: offsets are kept
        if ":" in joined:
            joined = _PSEUDONYM.sub(lambda match: "#" * len(match.group()), joined)
        starts: list[int] = []
        offset = 0
        for text, _ in texts:
            starts.append(offset)
            offset += len(text) + len(_SEPARATOR)
        ranked: list[list[tuple[int, _Hit]]] = [[] for _ in texts]

        def add(rank: int, start: int, end: int, kind: str) -> None:
            index = bisect_right(starts, start) - 1
            base = starts[index]
            ranked[index].append((rank, (start - base, end - base, kind)))

        for start, end, kind in self._exact_hits(joined, starts):
            add(0, start, end, kind)
        # Where each detector is run, as (pos, endpos): a region and the character after it.
        ipv6: list[tuple[int, int]] = []
        longer: list[tuple[int, int]] = []
        for region in _DETECTOR_REGION.finditer(joined):
            pos, end = region.span()
            span = (pos, min(end + 1, len(joined)))
            if joined.count(":", pos, end) >= 2:
                ipv6.append(span)
            if end - pos >= _SHORTEST_DETECTION:
                longer.append(span)
        everywhere = [(0, len(joined))]
        searched = {
            "ipv6": ipv6,
            "email": everywhere if "@" in joined else [],
        }
        # A float (a JSON float's repr, or one in a log line) is a measurement: the digits of
        # 1.041071040292594e+20 or 13812345678.0 are no identifier for the detectors; exact
        # raw values are still looked for in it.
        floats = [m.span() for m in _FLOAT.finditer(joined)] if "." in joined else []
        for kind, pattern, valid in DETECTORS:
            spans = longer if kind in _REGION_KINDS else searched.get(kind, everywhere)
            for pos, endpos in spans:
                for match in pattern.finditer(joined, pos, endpos):
                    value = match.group()
                    if valid is not None and not valid(value):
                        continue
                    if floats and _inside(match.span(), floats):
                        continue
                    if kind == "ipv4":
                        index = bisect_right(starts, match.start()) - 1
                        if texts[index][1] or _VERSION_CONTEXT.search(
                            joined, max(starts[index], match.start() - 12), match.start()
                        ):
                            continue
                    add(1, match.start(), match.end(), kind)
        for start, end, kind in _free_text_hits(joined):
            if kind == "ip" and texts[bisect_right(starts, start) - 1][1]:
                continue  # in a version field, as for the IPv4 pattern
            if floats and (
                _inside((start, end), floats) or _floats_overlapped((start, end), floats) > 1
            ):
                continue  # a float, or a row of them (a report's "171.4  319.9  189.4")
            add(1, start, end, kind)
        if _may_hold_coordinate_key(joined):
            for match in _COORDINATE_IN_TEXT.finditer(joined):
                add(1, match.start(1), match.end(1), "coordinate")
        return [_without_overlaps(text_ranked) if text_ranked else [] for text_ranked in ranked]

    def _exact_hits(self, text: str, starts: list[int]) -> Iterator[_Hit]:
        if self._coordinates and "." in text:
            for match in _DECIMAL.finditer(text):
                if float(match.group()) in self._coordinates:
                    yield match.start(), match.end(), "raw:coordinate"
        if not (self._exact or self._substrings):
            return
        lowered = text.lower() if text.isascii() else None
        yield from self._substring_hits(text, lowered, starts)
        segments = [(match.start(), match.end()) for match in _SEGMENT.finditer(text)]
        if lowered is None:  # lower() may change lengths and depends on the neighbours
            yield from self._window_hits(text, segments)
            return
        # ASCII: lowering is per character, and a window can only grow into a needle while
        # it (or its squeezed form) is a prefix of one.
        exact_prefixes, squeezed_prefixes = self._exact_prefixes, self._squeezed_prefixes
        for first, (start, first_end) in enumerate(segments):
            squeezed = lowered[start:first_end]
            if squeezed not in exact_prefixes and squeezed not in squeezed_prefixes:
                continue
            for index in range(first, min(len(segments), first + _WINDOW)):
                segment_start, end = segments[index]
                if index > first:
                    if text[segments[index - 1][1] : segment_start] not in _JOINERS:
                        break
                    squeezed += lowered[segment_start:end]
                window = lowered[start:end]
                if window not in exact_prefixes and squeezed not in squeezed_prefixes:
                    break  # no longer window can be a needle either
                found = self._exact.get(window) or self._squeezed.get(squeezed)
                if found is not None:
                    yield start, end, f"raw:{found}"

    def _window_hits(self, text: str, segments: list[tuple[int, int]]) -> Iterator[_Hit]:
        """Windows of segments joined by one grouping character, as written or squeezed."""
        for first, (start, _) in enumerate(segments):
            squeezed = ""
            for index in range(first, min(len(segments), first + _WINDOW)):
                if (
                    index > first
                    and text[segments[index - 1][1] : segments[index][0]] not in _JOINERS
                ):
                    break
                end = segments[index][1]
                squeezed += text[segments[index][0] : end].lower()
                found = self._exact.get(text[start:end].lower()) or self._squeezed.get(squeezed)
                if found is not None:
                    yield start, end, f"raw:{found}"

    def _substring_hits(self, text: str, lowered: str | None, starts: list[int]) -> Iterator[_Hit]:
        """Case-insensitive substring hits of the non-window needles, in insertion order.

        ``lowered`` is the lowered text when it is ASCII (then an ASCII needle matches only
        where it is a substring of it).
        """
        if not self._substrings:
            return
        candidates = set(self._unkeyed_substrings)
        for run in set(_DIGIT_RUN.findall(text)):
            candidates.update(self._substrings_by_key.get(run, ()))
        if lowered is not None:
            candidates = {n for n in candidates if n in lowered or not n.isascii()}
        if not candidates:
            return
        ends = [*starts[1:], len(text) + len(_SEPARATOR)]
        for needle, kind in self._substrings.items():
            if needle not in candidates:
                continue
            pattern = self._substring_patterns.get(needle)
            if pattern is None:
                pattern = re.compile(re.escape(needle), re.IGNORECASE)
                self._substring_patterns[needle] = pattern
            if _SEPARATOR not in needle:  # then no match can cross the separator
                for match in pattern.finditer(text):
                    yield match.start(), match.end(), f"raw:{kind}"
                continue
            for start, end in zip(starts, ends, strict=True):
                for match in pattern.finditer(text, start, end - len(_SEPARATOR)):
                    yield match.start(), match.end(), f"raw:{kind}"


def _inside(span: tuple[int, int], spans: list[tuple[int, int]]) -> bool:
    """True when ``span`` lies within one of ``spans`` (sorted, not overlapping)."""
    index = bisect_right(spans, span[0], key=lambda s: s[0]) - 1
    return index >= 0 and spans[index][0] <= span[0] and span[1] <= spans[index][1]


def _floats_overlapped(span: tuple[int, int], floats: list[tuple[int, int]]) -> int:
    """How many of the ``floats`` spans ``span`` overlaps (run per hit only: hits are few)."""
    start, end = span
    return sum(1 for float_start, float_end in floats if float_start < end and float_end > start)


def _free_text_hits(text: str) -> Iterator[_Hit]:
    """The free-text detectors' findings but long numbers (timestamps and counts in JSON)."""
    for start, end, kind in find_identifiers(text):
        if kind != "number":
            yield start, end, kind


def _leaves(document: dict[str, object] | list[object]) -> list[tuple[str, object]]:
    """(path, value) for each scalar leaf, and (path + " (key)", key) for each dict key: a
    map keyed by a raw identifier leaks it too."""
    leaves: list[tuple[str, object]] = []
    _add_leaves(document, "", leaves)
    return leaves


def _add_leaves(node: object, path: str, leaves: list[tuple[str, object]]) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            child = f"{path}.{key}" if path else str(key)
            leaves.append((f"{child} (key)", str(key)))
            _add_leaves(value, child, leaves)
    elif isinstance(node, list):
        for index, value in enumerate(node):
            _add_leaves(value, f"{path}[{index}]", leaves)
    elif isinstance(node, str | int | float) and not isinstance(node, bool):
        leaves.append((path, node))


def _without_overlaps(ranked: list[tuple[int, _Hit]]) -> list[_Hit]:
    """One hit per leaked value: exact before pattern, then the longest, in text order."""
    kept: list[_Hit] = []
    for _, hit in sorted(ranked, key=lambda item: (item[0], item[1][0] - item[1][1], item[1][0])):
        if all(hit[1] <= other[0] or hit[0] >= other[1] for other in kept):
            kept.append(hit)
    return sorted(kept)
