"""Identifier detectors: patterns (with a validity check) for identifier-shaped values.

One set, used twice: the pipeline runs them over every kept string field (an IMEI in
``device.model`` drops the field, see processor.pipeline.validate), and the leak scanner over whole
outputs and logs (processor.ops.scan).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from ipaddress import IPv6Address, ip_address

from processor.pipeline.canonical import canonicalize, luhn_valid
from processor.pipeline.detectors import is_id_card_number
from processor.pipeline.kinds import IdKind

_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])"
_HEX = "[0-9A-Fa-f]"


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


Detector = tuple[str, re.Pattern[str], Callable[[str], bool] | None]
# Digits that start a number: not after a digit, nor after "<digit>." (the fraction of a
# decimal number, as in a logged "runtime=2.768942260001495", is no identifier).
_NUMBER_START = r"(?<![0-9])(?<![0-9]\.)"
DETECTORS: tuple[Detector, ...] = (
    ("imsi", re.compile(_NUMBER_START + r"46[01][0-9]{12}(?![0-9])"), None),
    ("iccid", re.compile(_NUMBER_START + r"8986[0-9]{15,16}[Ff]?(?![0-9])"), None),
    (
        "imei",
        re.compile(_NUMBER_START + r"[0-9]{2}[ -]?[0-9]{6}[ -]?[0-9]{6}[ -]?[0-9](?![0-9])"),
        _is_imei,
    ),
    (
        "idcard",
        re.compile(
            _NUMBER_START + r"[1-9][0-9]{5}(?:18|19|20)[0-9]{2}(?:0[1-9]|1[0-2])"
            r"(?:0[1-9]|[12][0-9]|3[01])[0-9]{3}[0-9Xx](?![0-9A-Za-z])"
        ),
        is_id_card_number,
    ),
    (
        "phone",
        re.compile(
            _NUMBER_START + r"(?:(?:\+|00)?86[ -]?)?1[3-9][0-9](?:[ -]?[0-9]{4}){2}(?![0-9])"
        ),
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

# Cheap necessary condition for any detection: an "@" (e-mail), two colons (IPv6), or a
# run of the characters the other detectors consume, as long as the shortest detection.
# Most kept strings (brands, carriers, short ids) fail it and cost one search.
_CANDIDATE = re.compile(r"[0-9A-Fa-fXx:.+ -]{7,}")


def identifier_in(text: str, *, version: bool = False) -> str | None:
    """The kind of the first identifier found in ``text`` (e.g. ``imei``), or None.
    ``version``: the text is a version field, where a dotted quad is a version, not an
    address."""
    if not text.isascii():
        text = unicodedata.normalize("NFKC", text)  # full-width digits are digits too
    if "@" not in text and text.count(":") < 2 and _CANDIDATE.search(text) is None:
        return None
    for kind, pattern, valid in DETECTORS:
        if version and kind == "ipv4":
            continue
        for match in pattern.finditer(text):
            if valid is None or valid(match.group()):
                return kind
    return None
