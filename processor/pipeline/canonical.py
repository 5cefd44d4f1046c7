"""Canonical forms of identifiers: the exact string the HMAC is computed over.

Every spelling of one identifier maps to one canonical string, so it gets one pseudonym:
non-ASCII text is NFKC-normalized first (full-width digits and letters, as Chinese input
methods type them, become ASCII), and an IPv4 address in a spelling that parsers read
differently (``203.000.113.007``: octal to one, decimal to another) is no identifier at all
here: the validator drops it from the event (``ambiguous_ipv4``).
Placeholders (empty, ``unknown``, all zeros, well-known shared values) map to None: they
are not identifiers, and a pseudonym of them would merge millions of devices into one.
Values that do not conform to their kind's format but are no placeholder still get a
normalized string marked with ``NONCONFORMING_PREFIX``: they are pseudonymized too, never
passed through.

This runs only on pseudonym-cache misses, but stays on the fast path (a few µs): plain
string operations, no regular expressions, ``phonenumbers`` imported only when needed.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from ipaddress import IPv4Address, IPv6Address, ip_address
from socket import inet_aton

from processor.pipeline.kinds import IdKind

NONCONFORMING_PREFIX = "x:"

PLACEHOLDER_WORDS = frozenset(
    {"unknown", "null", "none", "nil", "undefined", "n/a", "na", "-", "0", "<unknown ssid>"}
)
PLACEHOLDER_MACS = frozenset({"02:00:00:00:00:00", "00:00:00:00:00:00", "ff:ff:ff:ff:ff:ff"})
# Android 2.2 returned this one ANDROID_ID on many device models, shared by millions of
# devices: a pseudonym of it would merge them all into one "user".
PLACEHOLDER_ANDROID_IDS = frozenset({"9774d56d682e549c"})

# Characters whose only role is grouping; a value made of these and zeros is all-zero.
_ZERO_NOISE = "0-:. {}/"
_DEL_GROUPING = str.maketrans("", "", " -./_")
# Labels that tools and apps print before the number ("IMEI: 35...", "IMEISV=35...").
_IMEI_LABELS = ("imeisv", "imei")
_LABEL_END = " :=#"
_DEL_MAC_SEPARATORS = str.maketrans("", "", ":-. ")
_DEL_PHONE_NOISE = str.maketrans("", "", " -()./\t")
_HEX = frozenset("0123456789abcdefABCDEF")


def _luhn_table(base: int) -> tuple[dict[str, int], dict[str, int]]:
    chars = "0123456789ABCDEF"[:base]
    values = {char: value for value, char in enumerate(chars)}
    doubled = {char: sum(divmod(2 * value, base)) for char, value in values.items()}
    return values, doubled


_LUHN_TABLES = {10: _luhn_table(10), 16: _luhn_table(16)}
_CN_MOBILE_SECOND_DIGITS = frozenset("3456789")


def _nonconforming(value: str) -> str | None:
    # Checked again: removing separators can leave whitespace at an end or a placeholder.
    value = value.strip()
    return None if _is_placeholder(value) else NONCONFORMING_PREFIX + value


def _is_placeholder(value: str) -> bool:
    return not value or not value.strip(_ZERO_NOISE) or value.lower() in PLACEHOLDER_WORDS


# ASCII digit -> the digit of its double's digit sum (5 -> 10 -> "1"), for bytes.translate
_DOUBLED_DIGITS = bytes.maketrans(b"0123456789", b"0246813579")


def luhn_valid(number: str, base: int = 10) -> bool:
    """True when the last digit of ``number`` (decimal or upper-case hex) is its Luhn check."""
    if base == 10 and number.isascii() and number.isdigit():
        # the usual case (IMEIs), summed over bytes in C: each ASCII digit is its value + 48
        data = number.encode()
        total = sum(data[-1::-2]) + sum(data[-2::-2].translate(_DOUBLED_DIGITS))
        return (total - 48 * len(data)) % 10 == 0
    values, doubled = _LUHN_TABLES[base]
    odd = sum(map(values.__getitem__, number[-1::-2]))
    return (odd + sum(map(doubled.__getitem__, number[-2::-2]))) % base == 0


def _unlabelled(value: str, labels: tuple[str, ...]) -> str:
    if value[:1].isdigit():  # the usual case: every label starts with a letter
        return value
    head = value[:8].lower()
    for label in labels:
        if head.startswith(label):
            return value[len(label) :].lstrip(_LABEL_END)
    return value


def _ungrouped(value: str) -> str:
    # str.translate costs about 0.1 µs per character; digits alone have nothing to remove
    return value if value.isdigit() else value.translate(_DEL_GROUPING)


def _imei(value: str) -> str | None:
    digits = _ungrouped(_unlabelled(value, _IMEI_LABELS))
    if digits.isascii() and digits.isdigit():
        length = len(digits)
        # 14 = body, 15 = body + Luhn check digit, 16 = IMEISV (body + software version).
        if length in {14, 16} or (length == 15 and luhn_valid(digits)):
            return digits[:14]
    return _nonconforming(digits.lower())


def _meid(value: str) -> str | None:
    compact = _ungrouped(_unlabelled(value, ("meid",))).upper()
    if not compact.isascii():
        return _nonconforming(compact)
    if compact.isdigit() and len(compact) in (18, 19):
        # Decimal form: 10 digits manufacturer code, 8 digits serial (+ check digit).
        manufacturer, serial = int(compact[:10]), int(compact[10:18])
        if (
            manufacturer < 1 << 32
            and serial < 1 << 24
            and (len(compact) == 18 or luhn_valid(compact))
        ):
            return f"{manufacturer:08X}{serial:06X}"
    elif set(compact) <= _HEX and (
        len(compact) == 14
        # Decimal-only hex MEIDs use the decimal Luhn check, others the base-16 one.
        or (len(compact) == 15 and luhn_valid(compact, 10 if compact.isdigit() else 16))
    ):
        return compact[:14]
    return _nonconforming(compact)


def _digits_kind(value: str, lengths: tuple[int, ...]) -> str | None:
    compact = _ungrouped(value).upper()
    if compact.isascii() and compact.isdigit() and len(compact) in lengths:
        return compact
    return _nonconforming(compact)


def _imsi(value: str) -> str | None:
    return _digits_kind(_unlabelled(value, ("imsi",)), (14, 15))


def _iccid(value: str) -> str | None:
    compact = _ungrouped(_unlabelled(value, ("iccid",))).upper()
    unpadded = compact[:-1]
    # SIM cards pad an odd-length ICCID with a trailing F nibble.
    if compact.endswith("F") and len(unpadded) == 19 and unpadded.isascii() and unpadded.isdigit():
        return unpadded
    return _digits_kind(compact, (19, 20))


def is_limit_ad_tracking(raw_oaid: str | None) -> bool:
    """True when the OAID is the all-zero value a device reports with ad tracking limited."""
    if raw_oaid is None:
        return False
    value = raw_oaid.strip()
    return bool(value) and not value.strip(_ZERO_NOISE)


def _oaid(value: str) -> str | None:
    oaid = value.lower()
    while (unwrapped := oaid.strip("{}").strip()) != oaid:
        oaid = unwrapped
    undashed = oaid.replace("-", "")
    if len(undashed) == 32 and set(undashed) <= _HEX:
        # A UUID-shaped OAID sent without dashes is the same OAID.
        u = undashed
        return f"{u[:8]}-{u[8:12]}-{u[12:16]}-{u[16:20]}-{u[20:]}"
    return oaid


def _android_id(value: str) -> str | None:
    android_id = value.lower()
    if len(android_id) <= 16 and set(android_id) <= _HEX:
        # Clients format the 64-bit value as hex and drop leading zeros.
        android_id = android_id.zfill(16)
        return None if android_id in PLACEHOLDER_ANDROID_IDS else android_id
    return _nonconforming(android_id)


def _mac(value: str) -> str | None:
    mac = value.lower()
    for separator in ":-":
        if mac.count(separator) == 5:
            # Some tools print octets without their leading zero (3c:5a:b4:1:2:3).
            mac = "".join(octet.zfill(2) for octet in mac.split(separator))
            break
    compact = mac.translate(_DEL_MAC_SEPARATORS)
    if len(compact) != 12 or not set(compact) <= _HEX:
        return _nonconforming(compact)
    c = compact
    canonical = f"{c[0:2]}:{c[2:4]}:{c[4:6]}:{c[6:8]}:{c[8:10]}:{c[10:12]}"
    return None if canonical in PLACEHOLDER_MACS else canonical


def _strip_ip_noise(value: str) -> str:
    text = value.strip()
    if text.startswith("["):
        text = text.lstrip("[ ").partition("]")[0]  # [v6]:port or [v6]
    elif text.count(":") == 1:
        host, _, port = text.partition(":")
        if "." in host and port.isdigit():
            text = host  # v4:port
    return text.partition("%")[0].strip()  # drop an IPv6 zone id


_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
# An IPv4 address already in canonical form (no leading zeros): the common case, matched
# ~10x faster than ``ipaddress`` parses it.
_DOTTED_QUAD = re.compile(rf"{_OCTET}\.{_OCTET}\.{_OCTET}\.{_OCTET}", re.ASCII).fullmatch


_MAPPED = "::ffff:"  # IPv4-mapped IPv6, how dual-stack servers log IPv4 clients


def _plain_ipv4(text: str) -> str | None:
    """``text`` as a canonical dotted quad, also from its IPv4-mapped IPv6 spelling, or
    None when it is neither (the ``ipaddress`` module decides those)."""
    if _DOTTED_QUAD(text):
        return text
    if text[:7].lower() == _MAPPED and _DOTTED_QUAD(text, 7):
        return text[7:]
    return None


_IPV4_SPELLING = frozenset("0123456789abcdefxABCDEFX.")


def ambiguous_ipv4(raw: str) -> bool:
    """True for an IPv4 address in a spelling that parsers read differently: an octet with
    a leading zero (octal to ``inet_aton``, decimal to people, refused by ``ipaddress``),
    hex octets, or fewer than four parts (``127.1``, one 32-bit number). Pseudonymized, it
    would be a second pseudonym of one address, or of another address."""
    if _DOTTED_QUAD(raw):
        return False  # the usual spelling
    text = _strip_ip_noise(raw if raw.isascii() else unicodedata.normalize("NFKC", raw))
    if text[:7].lower() == _MAPPED:
        text = text[7:]
    if not text or not set(text) <= _IPV4_SPELLING or _DOTTED_QUAD(text):
        return False
    parts = text.split(".")
    if len(parts) > 4 or not all(parts):
        return False
    try:
        inet_aton(text)
    except OSError:
        # Not C's either ("203.08.1.1": 08 is no octal), yet four numbers: people read it
        # as decimal, and some parsers do.
        return len(parts) == 4 and all(p.isdigit() and int(p) <= 255 for p in parts)
    return True


def _address(text: str) -> IPv4Address | IPv6Address | None:
    try:
        address = ip_address(text)
    except ValueError:
        return None
    if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def parse_ip(raw: str) -> IPv4Address | IPv6Address | None:
    """The address in ``raw`` (IPv4-mapped IPv6 as IPv4), or None when ``raw`` is no usable
    address (unparseable or unspecified)."""
    text = _strip_ip_noise(raw)
    quad = _plain_ipv4(text)
    if quad is not None:  # skips the slow string parser of ``ipaddress``
        packed = inet_aton(quad)
        return IPv4Address(packed) if any(packed) else None
    address = _address(text)
    return address if address is not None and int(address) else None


def _ip(value: str) -> str | None:
    text = _strip_ip_noise(value)
    quad = _plain_ipv4(text)
    if quad is not None:
        return None if quad == "0.0.0.0" else quad  # noqa: S104 (a placeholder, not a bind)
    address = _address(text)
    if address is not None:
        return str(address) if int(address) else None
    if ambiguous_ipv4(text):
        return None  # the validator drops these; never a pseudonym of a guessed address
    text = text.lower()
    return None if _is_placeholder(text) else _nonconforming(text)


def _phone(value: str) -> str | None:
    compact = value.translate(_DEL_PHONE_NOISE)
    national = compact
    for prefix in ("+86", "0086", "86"):
        if compact.startswith(prefix) and len(compact) == len(prefix) + 11:
            national = compact[len(prefix) :]
            break
    if (
        len(national) == 11
        and national[0] == "1"
        and national[1] in _CN_MOBILE_SECOND_DIGITS
        and national.isascii()
        and national.isdigit()
    ):
        return "+86" + national
    return _phone_slow(compact)


def _phone_slow(compact: str) -> str | None:
    # Lazy: the import is heavy and only numbers off the Chinese-mobile fast path get here.
    import phonenumbers

    e164 = phonenumbers.PhoneNumberFormat.E164
    try:
        number = phonenumbers.parse(compact, "CN")
        formatted = phonenumbers.format_number(number, e164)
        # Some odd inputs format to an E.164 string that parses as another number.
        stable = phonenumbers.format_number(phonenumbers.parse(formatted, "CN"), e164) == formatted
    except phonenumbers.NumberParseException:
        return _nonconforming(compact.lower())
    if not (stable and phonenumbers.is_possible_number(number)):
        return _nonconforming(compact.lower())
    return formatted


def _ssid(value: str) -> str | None:
    # Android's WifiInfo.getSSID() wraps a UTF-8 SSID in double quotes.
    while len(value) >= 2 and value[0] == value[-1] == '"':
        value = value[1:-1].strip()
    return None if _is_placeholder(value) else value


def _as_is(value: str) -> str | None:
    return value


_CANONICALIZERS: dict[IdKind, Callable[[str], str | None]] = {
    IdKind.USER_ID: _as_is,  # NFKC-normalized like every kind (canonicalize)
    IdKind.IMEI: _imei,
    IdKind.MEID: _meid,
    IdKind.IMSI: _imsi,
    IdKind.ICCID: _iccid,
    IdKind.OAID: _oaid,
    IdKind.ANDROID_ID: _android_id,
    IdKind.MAC: _mac,
    IdKind.BSSID: _mac,
    IdKind.IP: _ip,
    IdKind.PHONE: _phone,
    IdKind.SSID: _ssid,
    IdKind.CELL: _as_is,
}


# Kinds with a format, whose non-conforming values get NONCONFORMING_PREFIX.
_MARKED_KINDS = frozenset(
    {
        IdKind.IMEI,
        IdKind.MEID,
        IdKind.IMSI,
        IdKind.ICCID,
        IdKind.ANDROID_ID,
        IdKind.MAC,
        IdKind.BSSID,
        IdKind.IP,
        IdKind.PHONE,
    }
)


# Members read once: in Python 3.11 ``IdKind.IP`` goes through ``EnumType.__getattr__``'s
# slow attribute hook (~0.2 µs), twice per call here.
_IP = IdKind.IP
_EVENT_ID = IdKind.EVENT_ID


def canonicalize(kind: IdKind, raw: str | int) -> str | None:
    """The canonical form of ``raw`` as an identifier of ``kind``, or None for a placeholder.

    Integers (JSON numbers) are taken as their decimal string. An event id is taken as it
    is: no spelling of it is another's, and none is a placeholder.
    """
    if kind is _IP and type(raw) is str and _DOTTED_QUAD(raw):
        # Most addresses arrive canonical already, and a fresh one misses every cache.
        return None if raw == "0.0.0.0" else raw  # noqa: S104 (a placeholder, not a bind)
    if kind is _EVENT_ID:
        return str(raw)
    value = str(raw).strip()
    if not value.isascii():
        # One spelling for full-width digits and letters, ligatures, compatibility forms.
        value = unicodedata.normalize("NFKC", value).strip()
    if kind in _MARKED_KINDS and value.startswith(NONCONFORMING_PREFIX):
        value = value[len(NONCONFORMING_PREFIX) :].strip()  # idempotent on our own output
    if _is_placeholder(value):
        return None
    canonical = _CANONICALIZERS[kind](value)
    if canonical is not None and not canonical.isascii():
        # Removing separators can leave a combining mark next to a letter: normal again.
        canonical = unicodedata.normalize("NFKC", canonical)
    # Normalizing can uncover a placeholder ("{0}", a quoted "unknown").
    return None if canonical is None or _is_placeholder(canonical) else canonical
