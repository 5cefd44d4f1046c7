"""Canonical forms: every spelling of one identifier gives one string, placeholders none."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address, ip_address

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keys import Domain, Keyring
from processor.pipeline.canonical import (
    NONCONFORMING_PREFIX,
    ambiguous_ipv4,
    canonicalize,
    is_limit_ad_tracking,
    luhn_valid,
    parse_ip,
)
from processor.pipeline.kinds import IdKind
from processor.pipeline.pseudonym import Pseudonymizer


def _with_check_digit(body: str) -> str:
    return next(body + d for d in "0123456789" if luhn_valid(body + d))


@pytest.mark.parametrize(
    ("kind", "raw", "expected"),
    [
        (IdKind.IMEI, "356938035643809", "35693803564380"),
        (IdKind.IMEI, "35-693803-564380-9", "35693803564380"),
        (IdKind.IMEI, "35 693803 564380 9", "35693803564380"),
        (IdKind.IMEI, "35.693803/564380.9", "35693803564380"),
        (IdKind.IMEI, "35693803564380", "35693803564380"),
        (IdKind.IMEI, "3569380356438012", "35693803564380"),
        (IdKind.IMEI, 356938035643809, "35693803564380"),
        (IdKind.MEID, "A0000012345678", "A0000012345678"),
        (IdKind.MEID, "a0 000012 345678", "A0000012345678"),
        (IdKind.MEID, "268435456000000001", "A0000000000001"),
        (IdKind.IMSI, "460 00 1234567890", "460001234567890"),
        (IdKind.ICCID, "89860012345678901234", "89860012345678901234"),
        (IdKind.ICCID, "8986001234567890123F", "8986001234567890123"),
        (
            IdKind.OAID,
            " {6B1E6B2C-6A4F-4E0F-9C3A-2B1D4E5F6A7B} ",
            "6b1e6b2c-6a4f-4e0f-9c3a-2b1d4e5f6a7b",
        ),
        (IdKind.OAID, "6b1e6b2c6a4f4e0f9c3a2b1d4e5f6a7b", "6b1e6b2c-6a4f-4e0f-9c3a-2b1d4e5f6a7b"),
        (IdKind.OAID, "ABCDEF0123456789", "abcdef0123456789"),
        (IdKind.ANDROID_ID, "9774D56D682E549D", "9774d56d682e549d"),
        (IdKind.ANDROID_ID, "4d56d682e549c", "0004d56d682e549c"),
        (IdKind.MAC, "3C:5A:B4:12:34:56", "3c:5a:b4:12:34:56"),
        (IdKind.MAC, "3c-5a-b4-12-34-56", "3c:5a:b4:12:34:56"),
        (IdKind.MAC, "3c5a.b412.3456", "3c:5a:b4:12:34:56"),
        (IdKind.MAC, "3C5AB4123456", "3c:5a:b4:12:34:56"),
        (IdKind.MAC, "3c:5a:b4:1:2:3", "3c:5a:b4:01:02:03"),
        (IdKind.BSSID, "A4-5E-60-11-22-33", "a4:5e:60:11:22:33"),
        (IdKind.IP, " 61.128.128.68 ", "61.128.128.68"),
        (IdKind.IP, "61.128.128.68:443", "61.128.128.68"),
        (IdKind.IP, "::ffff:61.128.128.68", "61.128.128.68"),
        (IdKind.IP, "[::FFFF:61.128.128.68]:80", "61.128.128.68"),
        (IdKind.IP, "2001:0DB8:0000:0000:0000:0000:0000:0001", "2001:db8::1"),
        (IdKind.IP, "[2001:db8::1]:8080", "2001:db8::1"),
        (IdKind.IP, "fe80::1%eth0", "fe80::1"),
        (IdKind.PHONE, "+8613812345678", "+8613812345678"),
        (IdKind.PHONE, "13812345678", "+8613812345678"),
        (IdKind.PHONE, "86 138 1234 5678", "+8613812345678"),
        (IdKind.PHONE, "0086-138-1234-5678", "+8613812345678"),
        (IdKind.PHONE, "(+86) 138 1234 5678", "+8613812345678"),
        (IdKind.PHONE, 13812345678, "+8613812345678"),
        (IdKind.PHONE, "010-1234 5678", "+861012345678"),
        (IdKind.PHONE, "+1 (415) 555-2671", "+14155552671"),
        (IdKind.USER_ID, " u10293847 ", "u10293847"),
        (IdKind.USER_ID, "U55", "U55"),
        (IdKind.USER_ID, 10293847, "10293847"),
        (IdKind.USER_ID, "cafe\u0301", "caf\u00e9"),
        (IdKind.SSID, " Home-5G ", "Home-5G"),
        (IdKind.SSID, '"Home-5G"', "Home-5G"),
        (IdKind.CELL, "460-0-4301-20571", "460-0-4301-20571"),
    ],
)
def test_when_spelled_any_way_then_canonical(kind: IdKind, raw: str | int, expected: str) -> None:
    assert canonicalize(kind, raw) == expected


@pytest.mark.parametrize(
    ("kind", "raw"),
    [
        (IdKind.IMEI, "356938035643808"),  # wrong check digit
        (IdKind.IMEI, "12345"),
        (IdKind.MEID, "A000001234567Z"),
        (IdKind.IMSI, "46000"),
        (IdKind.ICCID, "8986"),
        (IdKind.ANDROID_ID, "not-hex"),
        (IdKind.MAC, "3c:5a:b4:12:34"),
        (IdKind.IP, "61.128.128.300"),
        (IdKind.PHONE, "12"),
    ],
)
def test_when_value_does_not_conform_then_marked_but_still_an_identifier(
    kind: IdKind, raw: str
) -> None:
    canonical = canonicalize(kind, raw)
    assert canonical is not None
    assert canonical.startswith(NONCONFORMING_PREFIX)


@pytest.mark.parametrize("kind", [k for k in IdKind if k is not IdKind.EVENT_ID])
@pytest.mark.parametrize(
    "raw", ["", "   ", "unknown", "NULL", "None", "undefined", "N/A", "-", "0", "0000", "00-00"]
)
def test_when_value_is_generic_placeholder_then_none(kind: IdKind, raw: str) -> None:
    assert canonicalize(kind, raw) is None


@pytest.mark.parametrize("raw", ["0", "unknown", " e-1", "ｅ-1", "e-1"])
def test_when_value_is_an_event_id_then_it_is_taken_as_it_is(raw: str) -> None:
    assert canonicalize(IdKind.EVENT_ID, raw) == raw


@pytest.mark.parametrize(
    ("kind", "raw"),
    [
        (IdKind.IMEI, "000000000000000"),
        (IdKind.IMEI, "00-000000-000000-0"),
        (IdKind.MEID, "00000000000000"),
        (IdKind.IMSI, "000000000000000"),
        (IdKind.ICCID, "00000000000000000000"),
        (IdKind.OAID, "00000000-0000-0000-0000-000000000000"),
        (IdKind.OAID, "{00000000000000000000000000000000}"),
        (IdKind.ANDROID_ID, "0000000000000000"),
        (IdKind.ANDROID_ID, "9774D56D682E549C"),
        (IdKind.MAC, "02:00:00:00:00:00"),
        (IdKind.MAC, "00-00-00-00-00-00"),
        (IdKind.MAC, "FF:FF:FF:FF:FF:FF"),
        (IdKind.BSSID, "020000000000"),
        (IdKind.IP, str(IPv4Address(0))),
        (IdKind.IP, "::"),
        (IdKind.IP, "[::]:443"),
        (IdKind.IP, "::ffff:0.0.0.0"),
        (IdKind.SSID, "<unknown ssid>"),
        (IdKind.CELL, "0-0-0-0"),
    ],
)
def test_when_value_is_kind_placeholder_then_none(kind: IdKind, raw: str) -> None:
    assert canonicalize(kind, raw) is None


@pytest.mark.parametrize(
    "raw", ["00000000-0000-0000-0000-000000000000", "0000000000000000", " {00000000} "]
)
def test_when_oaid_is_all_zero_then_limit_ad_tracking(raw: str) -> None:
    assert is_limit_ad_tracking(raw)


@pytest.mark.parametrize("raw", [None, "", "6b1e6b2c-6a4f-4e0f-9c3a-2b1d4e5f6a7b", "unknown"])
def test_when_oaid_is_missing_or_real_then_not_limit_ad_tracking(raw: str | None) -> None:
    assert not is_limit_ad_tracking(raw)


def test_when_ip_parsed_then_mapped_v4_unwrapped_and_unusable_none() -> None:
    assert parse_ip("::ffff:61.128.128.68") == IPv4Address("61.128.128.68")
    assert parse_ip("[2001:db8::1]:80") == IPv6Address("2001:db8::1")
    assert parse_ip(str(IPv4Address(0))) is None
    assert parse_ip("not an ip") is None


_hex_byte = st.integers(0, 255)


@settings(deadline=None)  # a busy CI machine is no property violation
@given(
    st.lists(_hex_byte, min_size=6, max_size=6), st.sampled_from(["", ":", "-", "."]), st.booleans()
)
def test_when_mac_spelled_any_way_then_same_canonical(
    octets: list[int], separator: str, upper: bool
) -> None:
    pairs = [f"{octet:02x}" for octet in octets]
    if separator == ".":
        joined = "".join(pairs)
        spelling = ".".join(joined[i : i + 4] for i in range(0, 12, 4))
    else:
        spelling = separator.join(pairs)
    spelling = spelling.upper() if upper else spelling
    expected = canonicalize(IdKind.MAC, ":".join(pairs))
    assert canonicalize(IdKind.MAC, spelling) == expected


@settings(deadline=None)
@given(st.from_regex(r"[0-9]{14}", fullmatch=True).filter(lambda body: body.strip("0") != ""))
def test_when_imei_spelled_any_way_then_same_canonical(body: str) -> None:
    full = _with_check_digit(body)
    spellings = [
        body,
        full,
        f"{full[:2]} {full[2:8]} {full[8:14]} {full[14]}",
        f"{full[:2]}-{full[2:8]}-{full[8:14]}-{full[14]}",
        body + "01",  # IMEISV
    ]
    assert {canonicalize(IdKind.IMEI, spelling) for spelling in spellings} == {body}


@settings(deadline=None)
@given(st.ip_addresses(v=4).filter(lambda address: not address.is_unspecified))
def test_when_ipv4_spelled_any_way_then_same_canonical(address: IPv4Address) -> None:
    text = str(address)
    spellings = [text, f" {text} ", f"{text}:8080", f"::ffff:{text}", f"[::FFFF:{text}]:443"]
    assert {canonicalize(IdKind.IP, spelling) for spelling in spellings} == {text}


@given(
    st.from_regex(r"[0-9]{1,4}(\.[0-9]{1,4}){2,4}", fullmatch=True),
    st.sampled_from(["", "::ffff:", "::FFFF:", "::fFfF:"]),
)
def test_when_dotted_text_then_fast_path_agrees_with_ipaddress(dotted: str, mapped: str) -> None:
    text = mapped + dotted
    try:
        address_of = ip_address(text)
        if isinstance(address_of, IPv6Address) and address_of.ipv4_mapped is not None:
            address_of = address_of.ipv4_mapped
        parsed: str | None = str(address_of)
    except ValueError:
        parsed = None
    expected = parsed if parsed != "0.0.0.0" else None  # noqa: S104 - the placeholder
    got = canonicalize(IdKind.IP, text)
    assert got == expected or (
        parsed is None and got is not None and got.startswith(NONCONFORMING_PREFIX)
    )
    address = parse_ip(text)
    assert (str(address) if address is not None else None) == expected


def _plain_v6(address: IPv4Address | IPv6Address) -> bool:
    return (
        isinstance(address, IPv6Address)
        and not address.is_unspecified
        and address.ipv4_mapped is None
    )


@settings(deadline=None)
@given(st.ip_addresses(v=6).filter(_plain_v6))
def test_when_ipv6_spelled_any_way_then_same_canonical(address: IPv6Address) -> None:
    spellings = [
        str(address),
        address.exploded,
        address.exploded.upper(),
        f"[{address}]:443",
        f"{address}%eth0",
    ]
    assert {canonicalize(IdKind.IP, spelling) for spelling in spellings} == {str(address)}


@settings(deadline=None)
@given(st.from_regex(r"1[3-9][0-9]{9}", fullmatch=True))
def test_when_mobile_spelled_any_way_then_same_canonical(national: str) -> None:
    spaced = f"{national[:3]} {national[3:7]} {national[7:]}"
    spellings = [national, f"+86{national}", f"86{national}", f"0086{national}", f"+86 {spaced}"]
    spellings.append(f"({national[:3]}) {national[3:7]}-{national[7:]}")
    assert {canonicalize(IdKind.PHONE, spelling) for spelling in spellings} == {f"+86{national}"}


_values = st.one_of(
    st.text(max_size=30),
    st.text(alphabet="0123456789abcdefABCDEF:-. +()[]{}%xF", max_size=40),
    st.integers(min_value=0),
)


@settings(deadline=None)
@given(st.sampled_from(list(IdKind)), _values)
def test_when_canonicalized_twice_then_same_as_once(kind: IdKind, raw: str | int) -> None:
    canonical = canonicalize(kind, raw)
    if canonical is not None:
        assert canonicalize(kind, canonical) == canonical


@settings(deadline=None)
@given(st.ip_addresses())
def test_when_ip_canonical_then_ip_address_parses_it(address: IPv4Address | IPv6Address) -> None:
    canonical = canonicalize(IdKind.IP, str(address))
    if canonical is not None:
        assert ip_address(canonical) in {address, getattr(address, "ipv4_mapped", None)}


# -- one identifier, one pseudonym -------------------------------------------------------------

_FULL_WIDTH = {code: code + 0xFEE0 for code in range(0x21, 0x7F)}  # ASCII -> U+FF01..U+FF5E

# Every spelling of one identifier that clients were seen to send: each group must give
# one pseudonym.
SPELLINGS: dict[IdKind, list[str | int]] = {
    IdKind.IMEI: [
        "356938035643809",
        356938035643809,
        "35-693803-564380-9",
        "35_693803_564380_9",
        "IMEI:356938035643809",
        "imei: 35 693803 564380 9",
        "IMEISV=3569380356438012",
        "356938035643809".translate(_FULL_WIDTH),
        "ＩＭＥＩ：３５６９３８０３５６４３８０９",
    ],
    IdKind.MAC: [
        "3C:5A:B4:12:34:56",
        "3c-5a-b4-12-34-56",
        "3c5a.b412.3456",
        "3C:5A:B4:12:34:56".translate(_FULL_WIDTH),
        "３Ｃ５ＡＢ４１２３４５６",
    ],
    IdKind.USER_ID: ["u123", "ｕ１２３", " u123 "],
    IdKind.IP: ["203.0.113.7", "::ffff:203.0.113.7", "２０３．０．１１３．７", "203.0.113.7:443"],
    IdKind.PHONE: ["+8613812345678", "13812345678", "１３８１２３４５６７８", "+86 138-1234-5678"],
}


@pytest.mark.parametrize("kind", list(SPELLINGS))
def test_when_one_identifier_is_spelled_every_known_way_then_it_has_one_pseudonym(
    kind: IdKind,
) -> None:
    pseudonymizer = Pseudonymizer(Keyring.generate().active(Domain.RECOMMENDATION))
    pseudonyms = {pseudonymizer.pseudonym(kind, spelling) for spelling in SPELLINGS[kind]}
    assert len(pseudonyms) == 1
    assert None not in pseudonyms


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from([k for k in SPELLINGS if k is not IdKind.IP]),
    st.data(),
)
def test_when_any_part_of_a_spelling_is_full_width_then_the_canonical_form_is_the_same(
    kind: IdKind, data: st.DataObject
) -> None:
    spelling = str(data.draw(st.sampled_from(SPELLINGS[kind])))
    widened = "".join(
        char.translate(_FULL_WIDTH) if data.draw(st.booleans()) else char for char in spelling
    )
    assert canonicalize(kind, widened) == canonicalize(kind, SPELLINGS[kind][0])


@pytest.mark.parametrize(
    "raw",
    [
        "203.000.113.007",
        "203.0.113.07",
        "203.08.113.7",
        "0313.0.0161.07",
        "0xCB.0x00.0x71.0x07",
        "0xCB007107",
        "3405803783",
        "203.113.7",
        "::ffff:203.000.113.007",
        "２０３．０００．１１３．００７",
    ],
)
def test_when_ipv4_is_spelled_so_parsers_disagree_then_it_is_no_identifier(raw: str) -> None:
    assert ambiguous_ipv4(raw)
    assert canonicalize(IdKind.IP, raw) is None
    assert parse_ip(raw) is None


@pytest.mark.parametrize(
    "raw", ["203.0.113.7", "::ffff:203.0.113.7", "2001:db8::1", "61.128.128.300", "abc"]
)
def test_when_ipv4_is_plain_or_no_ipv4_then_it_is_not_ambiguous(raw: str) -> None:
    assert not ambiguous_ipv4(raw)
