"""The leak scanner: finds raw identifiers in outputs (JSON lines) and logs (any text).

Two kinds of findings:

- pattern findings, independent of any input: identifier-shaped values (a Luhn-valid IMEI,
  an IMSI, an ICCID, a MAC, an IP address, a Chinese mobile or ID-card number, an e-mail,
  a UUID-shaped OAID, an Android ID, a precise coordinate);
- exact findings (kind ``raw:<id kind>``): the raw values of the input events, in every
  spelling the scanner can generate, matched on token boundaries.

Pseudonyms (``rec-1:`` + 26 base32 characters) are blanked before scanning. A finding's
excerpt is masked, so the scanner's own report does not leak what it found.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from ipaddress import IPv6Address, ip_address

import orjson

from processor.canonical import NONCONFORMING_PREFIX, canonicalize, luhn_valid
from processor.kinds import IdKind
from processor.scrub import is_id_card_number

# Same one-to-one full-width mapping as processor.scrub: spans stay aligned.
_HALF_WIDTH = {code: code - 0xFEE0 for code in range(0xFF01, 0xFF5F)} | {0x3000: 0x20}
_PSEUDONYM = re.compile(r"(?<![0-9A-Za-z])[a-z]{2,8}-[0-9]{1,10}:[a-z2-7]{26}(?![0-9A-Za-z])")
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])"
_HEX = "[0-9A-Fa-f]"
_COORDINATE_KEYS = frozenset({"lat", "lon", "lng", "latitude", "longitude"})
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

_RAW_FIELDS: tuple[tuple[tuple[str, ...], IdKind], ...] = (
    (("user_id",), IdKind.USER_ID),
    (("phone",), IdKind.PHONE),
    (("device", "imei"), IdKind.IMEI),
    (("device", "meid"), IdKind.MEID),
    (("device", "imsi"), IdKind.IMSI),
    (("device", "iccid"), IdKind.ICCID),
    (("device", "oaid"), IdKind.OAID),
    (("device", "android_id"), IdKind.ANDROID_ID),
    (("device", "mac"), IdKind.MAC),
    (("network", "ip"), IdKind.IP),
    (("network", "ssid"), IdKind.SSID),
    (("network", "bssid"), IdKind.BSSID),
    (("network", "cell"), IdKind.CELL),
    (("payload", "target_user_id"), IdKind.USER_ID),
)
_RAW_COORDINATE_DECIMALS = 3


@dataclass(frozen=True, slots=True)
class Finding:
    """One suspected leak. ``where`` is a JSON path or ``col N``; ``excerpt`` is masked."""

    line: int
    kind: str
    where: str
    excerpt: str


def mask(value: str) -> str:
    """A hint of ``value`` that does not re-leak it: ``35***09``."""
    if len(value) <= 6:
        return value[:1] + "***"
    return f"{value[:2]}***{value[-2:]}"


def _digits(text: str) -> str:
    return "".join(char for char in text if char.isdigit())


def _is_imei(text: str) -> bool:
    digits = _digits(text)
    return digits.strip("0") != "" and luhn_valid(digits)


def _is_mac(text: str) -> bool:
    return canonicalize(IdKind.MAC, text) is not None  # 02:00:00:00:00:00 names no one


def _is_public_ipv4(text: str) -> bool:
    # Unspecified, loopback and broadcast addresses name no one (broker logs are full of them).
    return text not in {"0.0.0.0", "255.255.255.255"} and not text.startswith("127.")  # noqa: S104


def _is_ipv6(text: str) -> bool:
    try:
        address = ip_address(text)
    except ValueError:
        return False
    return isinstance(address, IPv6Address) and not (address.is_unspecified or address.is_loopback)


def _has_digit_and_letter(text: str) -> bool:
    return any(char.isdigit() for char in text) and any(char.isalpha() for char in text)


def _is_oaid(text: str) -> bool:
    return text.replace("-", "").strip("0") != ""


def _is_meid(text: str) -> bool:
    return any(char.isdigit() for char in text)


_Detector = tuple[str, re.Pattern[str], Callable[[str], bool] | None]
_DETECTORS: tuple[_Detector, ...] = (
    ("imsi", re.compile(r"(?<![0-9])46[01][0-9]{12}(?![0-9])"), None),
    ("iccid", re.compile(r"(?<![0-9])8986[0-9]{15,16}[Ff]?(?![0-9])"), None),
    (
        "imei",
        re.compile(r"(?<![0-9])[0-9]{2}[ -]?[0-9]{6}[ -]?[0-9]{6}[ -]?[0-9](?![0-9])"),
        _is_imei,
    ),
    (
        "idcard",
        re.compile(
            r"(?<![0-9])[1-9][0-9]{5}(?:18|19|20)[0-9]{2}(?:0[1-9]|1[0-2])"
            r"(?:0[1-9]|[12][0-9]|3[01])[0-9]{3}[0-9Xx](?![0-9A-Za-z])"
        ),
        is_id_card_number,
    ),
    (
        "phone",
        re.compile(r"(?<![0-9])(?:(?:\+|00)?86[ -]?)?1[3-9][0-9](?:[ -]?[0-9]{4}){2}(?![0-9])"),
        None,
    ),
    (
        "email",
        re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"),
        None,
    ),
    (
        "mac",
        re.compile(
            rf"(?<![0-9A-Za-z])(?:{_HEX}{{2}}([:-]){_HEX}{{2}}(?:\1{_HEX}{{2}}){{4}}"
            rf"|{_HEX}{{4}}\.{_HEX}{{4}}\.{_HEX}{{4}})(?![0-9A-Za-z])"
        ),
        _is_mac,
    ),
    ("mac", re.compile(rf"(?<![0-9A-Za-z]){_HEX}{{12}}(?![0-9A-Za-z])"), _has_digit_and_letter),
    (
        "oaid",
        re.compile(
            rf"(?<![0-9A-Za-z-]){_HEX}{{8}}-(?:{_HEX}{{4}}-){{3}}{_HEX}{{12}}(?![0-9A-Za-z-])"
        ),
        _is_oaid,
    ),
    (
        "android_id",
        re.compile(rf"(?<![0-9A-Za-z]){_HEX}{{16}}(?![0-9A-Za-z])"),
        _has_digit_and_letter,
    ),
    ("meid", re.compile(rf"(?<![0-9A-Za-z])[A-Fa-f]{_HEX}{{13}}(?![0-9A-Za-z])"), _is_meid),
    (
        "ipv4",
        re.compile(rf"(?<![0-9.])(?:{_OCTET}\.){{3}}{_OCTET}(?![0-9]|\.[0-9])"),
        _is_public_ipv4,
    ),
    (
        "ipv6",
        re.compile(
            r"(?<![0-9A-Za-z:.])(?:[0-9A-Fa-f]{0,4}:){2,7}"
            r"(?:[0-9A-Fa-f]{1,4}|[0-9]{1,3}(?:\.[0-9]{1,3}){3})?(?![0-9A-Za-z:])"
        ),
        _is_ipv6,
    ),
)
_COORDINATE_IN_TEXT = re.compile(
    r"(?i)[\"']?(?:lat|lon|lng|latitude|longitude)[\"']?\s*[:=]\s*[\"']?"
    rf"(-?[0-9]{{1,3}}\.[0-9]{{{_MIN_COORDINATE_DECIMALS},}})(?![0-9])"
)
_DECIMAL = re.compile(r"(?<![0-9.])-?[0-9]{1,3}\.[0-9]{3,}(?![0-9])")

# A hit inside one string: start, end, kind; exact hits outrank pattern hits.
_Hit = tuple[int, int, str]


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
        self._substrings: dict[str, tuple[re.Pattern[str], IdKind]] = {}
        self._coordinates: set[float] = set()
        for kind, value in raw_values:
            self.add_raw_value(kind, value)

    @classmethod
    def from_raw_events(cls, lines: Iterable[bytes | str]) -> LeakScanner:
        """A scanner for the identifiers in raw events (JSON lines); bad lines are skipped."""
        scanner = cls()
        for line in lines:
            try:
                event = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue
            if isinstance(event, dict):
                scanner._add_raw_event(event)
        return scanner

    def _add_raw_event(self, event: dict[str, object]) -> None:
        for path, kind in _RAW_FIELDS:
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
                self._substrings[needle] = (re.compile(re.escape(needle), re.IGNORECASE), kind)
                continue
            self._exact[needle] = kind
            if kind in _SQUEEZABLE:
                self._squeezed["".join(_SEGMENT.findall(needle))] = kind

    def scan_text(self, text: str, line_no: int = 0) -> list[Finding]:
        """Findings in one line of arbitrary text; ``where`` is the 1-based column."""
        return [
            Finding(line_no, kind, f"col {start + 1}", mask(text[start:end]))
            for start, end, kind in self._hits(text, version_field=False)
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
    ) -> Iterator[Finding]:
        for where, value in _leaves(document, ""):
            field = where.rpartition(".")[2].lower()
            if (
                isinstance(value, float)
                and field in _COORDINATE_KEYS
                and _decimals(value) >= _MIN_COORDINATE_DECIMALS
            ):
                yield Finding(line_no, "coordinate", where, mask(repr(value)))
                continue
            text = value if isinstance(value, str) else repr(value)
            for start, end, kind in self._hits(text, version_field="version" in field):
                yield Finding(line_no, kind, where, mask(text[start:end]))

    def _hits(self, text: str, *, version_field: bool) -> list[_Hit]:
        text = _PSEUDONYM.sub(lambda match: "#" * len(match.group()), text.translate(_HALF_WIDTH))
        ranked: list[tuple[int, _Hit]] = [(0, hit) for hit in self._exact_hits(text)]
        for kind, pattern, valid in _DETECTORS:
            for match in pattern.finditer(text):
                value = match.group()
                if valid is not None and not valid(value):
                    continue
                if kind == "ipv4" and (
                    version_field
                    or _VERSION_CONTEXT.search(text, max(0, match.start() - 12), match.start())
                ):
                    continue
                ranked.append((1, (match.start(), match.end(), kind)))
        for match in _COORDINATE_IN_TEXT.finditer(text):
            ranked.append((1, (match.start(1), match.end(1), "coordinate")))
        return _without_overlaps(ranked)

    def _exact_hits(self, text: str) -> Iterator[_Hit]:
        if self._coordinates:
            for match in _DECIMAL.finditer(text):
                if float(match.group()) in self._coordinates:
                    yield match.start(), match.end(), "raw:coordinate"
        if not (self._exact or self._substrings):
            return
        for pattern, kind in self._substrings.values():
            for match in pattern.finditer(text):
                yield match.start(), match.end(), f"raw:{kind}"
        segments = [(match.start(), match.end()) for match in _SEGMENT.finditer(text)]
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


def _leaves(node: object, path: str) -> Iterator[tuple[str, object]]:
    """(path, value) for each scalar leaf, and (path + " (key)", key) for each dict key: a
    map keyed by a raw identifier leaks it too."""
    if isinstance(node, dict):
        for key, value in node.items():
            child = f"{path}.{key}" if path else str(key)
            yield f"{child} (key)", str(key)
            yield from _leaves(value, child)
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _leaves(value, f"{path}[{index}]")
    elif isinstance(node, str | int | float) and not isinstance(node, bool):
        yield path, node


def _without_overlaps(ranked: list[tuple[int, _Hit]]) -> list[_Hit]:
    """One hit per leaked value: exact before pattern, then the longest, in text order."""
    kept: list[_Hit] = []
    for _, hit in sorted(ranked, key=lambda item: (item[0], item[1][0] - item[1][1], item[1][0])):
        if all(hit[1] <= other[0] or hit[0] >= other[1] for other in kept):
            kept.append(hit)
    return sorted(kept)
