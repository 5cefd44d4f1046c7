"""Personal data in free text, found the way people really write it.

    find_identifiers("加我vx：lily_2024，电话139 3233 2113")
    -> [Detection(6, 15, "wechat"), Detection(19, 32, "phone")]

The text is first turned into its detection view (``processor.pipeline.textview``: NFKC, spaces,
dashes, zero-width characters, Chinese numerals), the detectors run on the view, and each
detection is mapped back to the span of the original text it came from. Kinds (the scrubber
writes them as markers ``[phone]``, ...):

- ``phone``: mainland mobile numbers, and landlines that ``phonenumbers`` calls valid, with
  ``+86``/``0086``/``(+86)``, digits in groups split by any separator;
- ``idcard``: resident ID numbers, 18 characters with a valid GB 11643 check and birth date,
  or the old 15-digit form (province code and date checked);
- ``bankcard``: 16 to 19 digits (15 for American Express) with a card prefix and a valid
  Luhn check, or after a label such as ``卡号``;
- ``email``: with ``@``/``＠``, `` @ ``, ``[at]``, ``(at)``, `` at ``, ``艾特``, and dots
  spelled ``[dot]``, `` dot ``, ``点``, ``。``;
- ``qq``, ``wechat``: an id after a label (``QQ``, ``扣扣``, ``企鹅号``; ``微信``, ``vx``,
  ``wx``, ``V信``, ``薇信``, ...);
- ``plate``: licence plates (``京A·12345``, new-energy ``粤B·D12345``);
- ``address``: a road and house number or a residential compound with building, unit or room
  numbers, led by administrative names (the shipped geo data's provinces and cities, and any
  district, county or town name);
- ``ip`` (IPv4 in any zero padding, IPv6), ``mac`` (any separator, either case),
  ``device_id`` (IMEI by Luhn, OAID/UUID, 16-hex Android ID);
- ``number``: any other unbroken run of 12 or more digits (account or order numbers).

Precision: ordinary numbers stay (counts, prices, dates, times, versions, scores, model
names, flight and train numbers, a room number without a street).

Every pattern runs in linear time: each starts only where the previous character cannot
continue it (a lookbehind), its repetitions are bounded, and the costlier ones (addresses,
labelled ids, e-mail) run only near their anchors.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Iterator
from datetime import date
from ipaddress import ip_address
from typing import NamedTuple

import phonenumbers

from processor.pipeline.canonical import PLACEHOLDER_ANDROID_IDS, PLACEHOLDER_MACS, luhn_valid
from processor.pipeline.textview import CHINESE_DIGITS, detection_view


class Detection(NamedTuple):
    """A span ``text[start:end]`` holding personal data of ``kind``."""

    start: int
    end: int
    kind: str


# -- digit runs: phone, ID card, bank card, IMEI, long numbers ----------------------------

# Digits in groups joined by up to three separator characters (spaces, tabs and the
# ideographic space are one space in the view), optionally led by "+" or "(+" and ended by
# the X of an ID number. Greedy and self-delimiting: each run is consumed once.
_SEPARATORS = r"[ \-./_、·・•()]"
_RUN = re.compile(
    rf"(?:\(?\+|\()?(?<![0-9])[0-9](?:{_SEPARATORS}{{0,3}}[0-9])*"
    rf"(?:{_SEPARATORS}{{0,3}}[Xx](?![A-Za-z0-9]))?"
)
# In the plain view: ASCII digits, an X, or Chinese numerals (all digits in the view).
_GROUP = re.compile(rf"[0-9]+|[Xx]|[{''.join(CHINESE_DIGITS)}]+")
_NOT_DIGIT = re.compile(r"[^0-9Xx]")
_DECIMAL = re.compile(r"[0-9]+\.[0-9]{1,4}")
_MAX_ID_DIGITS = 19  # a bank card; "0086" + 11 is 15, an ID number 18
_MIN_NUMBER = 12
_MIN_RUN = 10  # the shortest identifier made of digits: a landline such as 010 1234567
_MIN_CARD = 15
_CARD_LABEL = re.compile(r"(?:卡号|银行卡|储蓄卡|信用卡|借记卡|账号|帐号|卡)[ :是为]{0,3}$")
_CARD_PREFIX = re.compile(r"62|4|5[1-5]|2[2-7]|3[47]|35|6[05]")
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"
# GB/T 2260 province codes (first two digits of an ID number).
_PROVINCES = frozenset(
    map(str, (11, 12, 13, 14, 15, 21, 22, 23, 31, 32, 33, 34, 35, 36, 37, 41, 42, 43, 44, 45))
) | frozenset(map(str, (46, 50, 51, 52, 53, 54, 61, 62, 63, 64, 65, 71, 81, 82)))


def is_id_card_number(number: str) -> bool:
    """True when ``number`` (17 digits + check character) has a valid GB 11643 check."""
    total = sum(int(digit) * weight for digit, weight in zip(number[:17], _ID_WEIGHTS, strict=True))
    return _ID_CHECK[total % 11] == number[17].upper()


def _is_date(year: int, month: int, day: int) -> bool:
    try:
        date(year, month, day)
    except ValueError:
        return False
    return True


def _is_id18(number: str) -> bool:
    return (
        number[:2] in _PROVINCES
        and number[6:8] in ("18", "19", "20")
        and _is_date(int(number[6:10]), int(number[10:12]), int(number[12:14]))
        and is_id_card_number(number)
    )


def _is_id15(number: str) -> bool:
    return number[:2] in _PROVINCES and _is_date(
        1900 + int(number[6:8]), int(number[8:10]), int(number[10:12])
    )


def _is_mobile(number: str) -> bool:
    return len(number) == 11 and number[0] == "1" and number[1] in "3456789"


@functools.lru_cache(maxsize=4096)
def _is_landline(number: str) -> bool:
    """A valid Chinese fixed-line number, national form (leading 0)."""
    try:
        parsed = phonenumbers.parse(number, "CN")
    except phonenumbers.NumberParseException:
        return False
    return phonenumbers.is_valid_number(parsed) and phonenumbers.number_type(parsed) in (
        phonenumbers.PhoneNumberType.FIXED_LINE,
        phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE,
    )


def _phone(digits: str) -> bool:
    national = digits
    if digits.startswith("0086"):
        national = digits[4:]
    elif digits.startswith("86") and len(digits) >= 12:
        national = digits[2:]
    if _is_mobile(national):
        return True
    if national is not digits and national[:1] != "0":
        national = "0" + national  # +86 10 1234 5678 is 010 1234 5678
    return national[:1] == "0" and 10 <= len(national) <= 12 and _is_landline(national)


def _classify(digits: str, labelled_card: bool) -> str | None:
    """The kind of a digit string (an ID number may end in X), or None."""
    length = len(digits)
    if digits[-1] in "Xx":
        return "idcard" if length == 18 and _is_id18(digits) else None
    if _phone(digits):
        return "phone"
    if length == 18 and _is_id18(digits):
        return "idcard"
    if length == 15 and digits.strip("0") and luhn_valid(digits):
        return "device_id"  # an IMEI
    if length == 15 and _is_id15(digits):
        return "idcard"
    if (
        15 <= length <= 19
        and len(set(digits)) > 2
        and (labelled_card or (_CARD_PREFIX.match(digits) is not None and luhn_valid(digits)))
    ):
        return "bankcard"
    return None


def _long_number(digits: str) -> str | None:
    """``number`` for an unclassified long run, unless it is cheering (666666666666, 2333...)."""
    return "number" if len(digits) >= _MIN_NUMBER and len(set(digits)) > 2 else None


def _digit_runs(view: str, plain: str) -> Iterator[tuple[int, int, str]]:
    """Identifiers made of digits: for each run, the whole run if it is one, else the longest
    identifier made of whole digit groups at each group, left to right (a phone number
    followed by a count stays apart). Groups split where ASCII digits meet Chinese numerals
    (``plain``), so ``13812345678一直`` is a phone number and ``一直``."""
    for run in _RUN.finditer(view):
        start, end = run.span()
        if end - start < _MIN_RUN:
            continue
        labelled = (
            end - start >= _MIN_CARD
            and _CARD_LABEL.search(view, max(0, start - 8), start) is not None
        )
        value = run.group()
        if value.isdigit() and plain[start:end] == value:  # the usual case: one group
            kind = _classify(value, labelled) or _long_number(value)
            if kind is not None:
                yield start, end, kind
            continue
        kind = _classify(_NOT_DIGIT.sub("", value), labelled) if end - start <= 40 else None
        if _DECIMAL.fullmatch(value) is not None and not (
            kind == "phone" or (kind == "idcard" and len(_NOT_DIGIT.sub("", value)) == 18)
        ):
            continue  # 5164897805253.17: an amount, unless it spells a phone or ID number
        if kind is not None:  # the usual case with separators: the whole run is one
            yield start, end, kind
            continue
        groups = [match.span() for match in _GROUP.finditer(plain, start, end)]
        index = 0
        while index < len(groups):
            if index and view[groups[index - 1][1] : groups[index][0]] == ".":
                index += 1  # the fraction of a decimal number (3.14159265358) starts nothing
                continue
            best: tuple[int, str] | None = None
            digits = ""
            for last in range(index, len(groups)):
                digits += view[groups[last][0] : groups[last][1]]
                if len(digits) > _MAX_ID_DIGITS:
                    break
                kind = _classify(digits, labelled)
                if kind is not None:
                    best = (last, kind)
            start = groups[index][0]
            if best is None:
                if _long_number(view[start : groups[index][1]]):
                    yield start, groups[index][1], "number"
                index += 1
                continue
            last, kind = best
            if index == 0:
                start = run.start()  # with its "+" or "(+"
            end = groups[last][1]
            if view[end : end + 1] == ")":
                end += 1
            yield start, end, kind
            index = last + 1


# -- e-mail ---------------------------------------------------------------------------------

_EMAIL_GATE = re.compile(r"[@#]|艾特|(?i:at)")
_LOCAL = r"(?<![A-Za-z0-9._%+\-])[A-Za-z0-9][A-Za-z0-9._%+\-]{0,63}"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?"
_TLDS = (
    "com|cn|net|org|edu|gov|io|me|co|info|top|xyz|vip|cc|tv|hk|tw|mo|jp|kr|sg|uk|de|fr|ru|us|"
    "ca|au|in|biz|site|online|club|shop|ai|dev|app|email|mail|icu|ltd|pro|work|tech|name"
)
_SPELLED_AT = r"(?:[ ]{0,2}(?:@|\[at\]|\(at\)|\{at\}|<at>|艾特|#)[ ]{0,2}|[ ]{1,2}at[ ]{1,2})"
_SPELLED_DOT = r"(?:[ ]{0,2}(?:\[dot\]|\(dot\)|\{dot\}|<dot>|点|。|\.)[ ]{0,2}|[ ]{1,2}dot[ ]{1,2})"
_EMAIL = re.compile(
    rf"(?i){_LOCAL}@{_LABEL}(?:\.{_LABEL}){{0,4}}\.[A-Za-z]{{2,24}}(?![A-Za-z0-9\-])"
    rf"|{_LOCAL}{_SPELLED_AT}{_LABEL}(?:{_SPELLED_DOT}{_LABEL}){{0,4}}{_SPELLED_DOT}"
    rf"(?:{_TLDS})(?![A-Za-z0-9\-])"
)


# -- hexadecimal and dotted identifiers: MAC, IP, OAID, Android ID --------------------------

_HEX = "[0-9A-Fa-f]"
# Runs that may hold one of these: at least 7 characters, with a letter, "." or ":" (digits
# and dashes alone are a number or a range, see _digit_runs).
_HEXY_REGION = re.compile(r"[0-9A-Fa-f:.\-]{7,}")
_HEXY_NEEDS = re.compile(r"[A-Fa-f.:]")
_HEXY = re.compile(
    rf"""
    (?P<device_id>(?<![0-9A-Za-z\-]){_HEX}{{8}}-(?:{_HEX}{{4}}-){{3}}{_HEX}{{12}}(?![0-9A-Za-z\-]))
    | (?P<mac>(?<![0-9A-Za-z:.\-])(?:
          {_HEX}{{2}}(?P<sep>[:\-]){_HEX}{{2}}(?:(?P=sep){_HEX}{{2}}){{4}}
        | {_HEX}{{4}}(?P<sep4>[.\-]){_HEX}{{4}}(?P=sep4){_HEX}{{4}}
      )(?![0-9A-Za-z:\-]))
    | (?P<hex>(?<![0-9A-Za-z])(?:{_HEX}{{32}}|{_HEX}{{16}}|{_HEX}{{12}})(?![0-9A-Za-z]))
    | (?P<ip>(?<![0-9.])(?:[0-9]{{1,3}}\.){{3}}[0-9]{{1,3}}(?![0-9]|\.[0-9]))
    | (?P<ipv6>(?<![0-9A-Za-z:.])(?:{_HEX}{{0,4}}:){{2,7}}
          (?:[0-9]{{1,3}}(?:\.[0-9]{{1,3}}){{3}}|{_HEX}{{1,4}})?(?![0-9A-Za-z:]|\.[0-9]))
    """,
    re.VERBOSE,
)
# A dotted quad after these words is a version number (固件 1.1.12.149), not an address.
_VERSION_BEFORE = re.compile(
    r"(?i)(?:v|ver|version|build|firmware|版本|版本号|固件|系统|内核|补丁)[ :]{0,2}$"
)
_HEX_LENGTH_KIND = {32: "device_id", 16: "device_id", 12: "mac"}
# Letters only before or only after the digits: an order or product code, not random hex.
_CODE = re.compile(r"[A-Fa-f]{1,2}[0-9]+|[0-9]+[A-Fa-f]{1,2}")


def _has_digit_and_letter(text: str) -> bool:
    return not text.isdigit() and not text.isalpha()


def _hexy(view: str) -> Iterator[tuple[int, int, str]]:
    for region in _HEXY_REGION.finditer(view):
        if _HEXY_NEEDS.search(region.group()) is not None:
            # endpos one past the region: the lookaheads see the character after it.
            yield from _hexy_in(view, region.start(), region.end() + 1)


def _is_placeholder(kind: str, value: str) -> bool:
    """The values that name no one: 02:00:00:00:00:00, an all-zero OAID, ..."""
    hex_digits = re.sub(r"[^0-9a-f]", "", value.lower())
    if not hex_digits.strip("0"):
        return True
    if kind == "mac":
        return ":".join(re.findall("..", hex_digits)) in PLACEHOLDER_MACS
    return hex_digits in PLACEHOLDER_ANDROID_IDS


def _hexy_in(view: str, pos: int, endpos: int) -> Iterator[tuple[int, int, str]]:
    for match in _HEXY.finditer(view, pos, endpos):
        kind = match.lastgroup
        value = match.group()
        if kind == "hex":
            if not _has_digit_and_letter(value) or _CODE.fullmatch(value) is not None:
                continue  # a number (see _digit_runs), a word, or a code like DD4940107409
            kind = _HEX_LENGTH_KIND[len(value)]
        elif kind == "ip":
            octets = [int(octet) for octet in value.split(".")]
            if (
                any(octet > 255 for octet in octets)
                or octets[0] in (0, 127)  # unspecified and loopback addresses name no one
                or octets == [255, 255, 255, 255]
                or _VERSION_BEFORE.search(view, max(0, match.start() - 12), match.start())
            ):
                continue
        elif kind == "ipv6":
            head, _, last = value.rpartition(":")
            if "." in last:  # ::ffff:049.222.56.151: zero padding is no reason to keep it
                last = ".".join(str(int(octet)) for octet in last.split("."))
            try:
                address = ip_address(f"{head}:{last}")
            except ValueError:
                continue
            if address.is_unspecified or address.is_loopback:
                continue
            kind = "ip"
        assert kind is not None  # noqa: S101 - every alternative is a named group
        if kind in ("mac", "device_id") and _is_placeholder(kind, value):
            continue
        yield match.start(), match.end(), kind


# -- labelled QQ and WeChat ids -------------------------------------------------------------

# Where a label may start (a plain alternation: the regex engine skips ahead by first
# character), then the label with its context is matched there.
_LABEL_WORD = re.compile(
    r"(?i)wxid_|qq|扣扣|企鹅|q号|微信|威信|薇信|维信|徽信|v信|vx|wx|weixin|wechat|加v|\+v|绿泡泡|v"
)
_ID_LABEL = re.compile(
    r"(?i)(?P<wxid>(?<![A-Za-z0-9_])wxid_[A-Za-z0-9]{4,20}(?![A-Za-z0-9_]))"
    r"|(?<![A-Za-z0-9+/=_\-])(?:(?P<qq>qq|扣扣|企鹅号?|q号)"
    r"|(?P<wechat>微信|威信|薇信|维信|徽信|v信|vx|wx|weixin|wechat|加v|\+v|绿泡泡|v(?=[ ]?:)))"
    r"(?P<gap>[ :=是为]{0,3}(?:(?:号码|号|账号|帐号|id|联系我?|搜|加我?)[ :=是为]{0,3}){0,2})"
)
_LABEL_GATE = re.compile(r"[QqVvWw扣企微威薇维徽绿]")
_WECHAT_ID = re.compile(r"[A-Za-z][-_A-Za-z0-9]{5,19}(?![-_A-Za-z0-9])")
_QQ_DIGITS = range(5, 13)


def _labelled(view: str, plain: str) -> Iterator[tuple[int, int, str]]:
    """Ids after a label: digits (QQ, or a phone as WeChat id) read in ``view``, Latin ids
    in ``plain`` (so a Chinese numeral after the id is not taken into it)."""
    end = 0
    for word in _LABEL_WORD.finditer(view):
        if word.start() < end:
            continue  # inside the previous label's gap
        label = _ID_LABEL.match(view, word.start())
        if label is None:
            continue
        pos = end = label.end()
        if label.group("wxid"):  # WeChat's own id form, labelled by itself
            yield label.start(), pos, "wechat"
            continue
        kind = "qq" if label.group("qq") else "wechat"
        run = _RUN.match(view, pos)
        if run is not None:
            # Digits as written: "QQ 12345678一起" is 12345678 and 一起 (see _GROUP).
            first = _GROUP.match(plain, pos)
            same_script = [
                group.end()
                for group in _GROUP.finditer(plain, pos, run.end())
                if first is not None and group.group()[0].isascii() == first.group()[0].isascii()
            ]
            run_end = same_script[-1] if same_script else run.end()
            digits = _NOT_DIGIT.sub("", view[pos:run_end])
            if len(digits) in _QQ_DIGITS or _is_mobile(digits):
                yield pos, run_end, kind
            continue
        if kind == "wechat" and (wechat := _WECHAT_ID.match(plain, pos)) is not None:
            value = wechat.group()
            name = label.group("wechat")
            if name in ("v", "V") or (name.isascii() and not label.group("gap")):
                # After a bare "v:" or glued to a Latin label ("vxlily_2024"), only an id with
                # a digit, "_" or "-" counts (not "v: release", "wxapp", "vxlan").
                if not any(char.isdigit() or char in "_-" for char in value):
                    continue
            # A bare word after a label ("微信 Android") is an id only after "号", ":" or "是".
            elif value.isalpha() and not any(char in label.group() for char in "号:是为="):
                continue
            yield pos, wechat.end(), kind


# -- licence plates ---------------------------------------------------------------------------

_PLATE = re.compile(
    r"(?i)[京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼使领]"
    r"[A-HJ-NP-Z][ ]?[·・•.\- ]?[ ]?"
    r"(?P<body>[A-HJ-NP-Z0-9]{4,5}[A-HJ-NP-Z0-9挂学警港澳])(?![A-Za-z0-9])"
)
_MIN_PLATE_DIGITS = 3


def _plates(view: str) -> Iterator[tuple[int, int, str]]:
    for match in _PLATE.finditer(view):
        if sum(char.isdigit() for char in match.group("body")) >= _MIN_PLATE_DIGITS:
            yield match.start(), match.end(), "plate"


# -- street addresses ---------------------------------------------------------------------------

# Characters that end a place name going left: verbs and pronouns around an address.
_NAME_CHAR = (
    r"(?:(?![在到是住寄址我你他她送往去来给收家请与了就把从的这那哪条段上下逛走过])[\u4e00-\u9fff])"
)
# A place name may hold numerals (文三路, 五华区: digits in the view), never start a number.
_NAME = rf"(?:{_NAME_CHAR}|(?<=[\u4e00-\u9fff])[0-9]|(?<![0-9])[0-9](?=[\u4e00-\u9fff]))"
_NUMBER = r"[0-9十百]{1,5}"
_ADMIN_SUFFIX = "省|市|区|县|镇|乡|街道|旗|自治州|盟"
_DISTRICT_SUFFIX = "区|县|镇|乡|街道|旗"
_HOUSE = rf"[ ]?{_NUMBER}[ ]?(?:号院|号楼|号|弄|巷)"
_BUILDING = rf"[ ]?{_NUMBER}[ ]?(?:号楼|栋|幢|座|单元|层|楼|号|室|房)"
_ROOM = r"[ \-]?[0-9]{2,5}(?:[ ]?(?:室|房|号))?"
_TRIPLE = r"[ ]?[0-9]{1,3}-[0-9]{1,3}-[0-9]{2,5}"  # building-unit-room
_ROAD = rf"{_NAME}{{1,8}}?(?:大街|大道|路|街|巷|胡同)(?:[东南西北中]{{1,2}}段)?"
# A building between the house number and the floor or room (城建大厦8楼).
_TOWER = rf"{_NAME}{{2,8}}?(?:大厦|大楼|中心|广场)"
_ESTATE = rf"{_NAME}{{2,8}}?(?:小区|花园|公寓|大厦|家园|新村|新城|苑|园|广场|府|村|区)"
_ESTATE_BUILDING = rf"[ ]?{_NUMBER}[ ]?(?:号楼|栋|幢|座|单元|号院)"
# An address needs a number part after a road, a compound or a district: the anchors.
_ADDRESS_ANCHOR = re.compile(r"[0-9十百][ ]?(?:号|栋|幢|座|单元|室|层|弄)|[0-9]-[0-9]{1,3}-[0-9]")
# ... and one of these words before the anchor, else there is no address to look for.
_ADDRESS_WORD = re.compile(
    r"路|街|巷|胡同|大道|小区|花园|公寓|大厦|家园|新村|新城|苑|广场|府|村|区|县|镇|乡"
)
_ANCHOR_BEFORE = 48
_ANCHOR_AFTER = 24


_Trie = dict[str, "_Trie"]


def _trie_pattern(words: Iterable[str]) -> str:
    """An alternation of ``words`` as a prefix tree: one branch per character, not per word."""
    tree: _Trie = {}
    for word in words:
        node = tree
        for char in word:
            node = node.setdefault(char, {})
        node[""] = {}  # a word ends here

    def render(node: _Trie) -> str:
        branches = [re.escape(char) + render(child) for char, child in sorted(node.items()) if char]
        if not branches:
            return ""
        if "" in node:  # a word ends here, longer ones go on: the rest is optional (greedy)
            return "(?:" + "|".join(branches) + ")?"
        return branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"

    return render(tree)


_SHORT_NAME = re.compile(
    r"(?:(?:[\u4e00-\u9fff]{1,6}?族)+)?(?:自治州|自治区|自治县|特别行政区|地区|林区|盟|省|市)$"
)


@functools.cache
def _address_pattern() -> re.Pattern[str]:
    """The address pattern, with the province and city names of the shipped geo data (and
    their short forms: ``深圳市`` and ``深圳``, ``延边朝鲜族自治州`` and ``延边``)."""
    from processor.pipeline.geo.gps import shipped

    index = shipped()
    names = {place.city for place in index.places if place.country == "CN" and place.city}
    names.update(index.provinces.values())
    names.update(short for name in list(names) if len(short := _SHORT_NAME.sub("", name)) >= 2)
    geo = _trie_pattern(sorted(names, key=len, reverse=True))
    admin = (
        rf"(?:(?:{geo})(?:{_NAME}{{1,6}}?(?:{_ADMIN_SUFFIX}))?|{_NAME}{{1,6}}?(?:{_ADMIN_SUFFIX}))"
    )
    district = rf"(?:{geo}){_NAME}{{1,6}}?(?:{_DISTRICT_SUFFIX})"
    parts = rf"(?:{_TOWER})?(?:{_BUILDING}|{_TRIPLE}){{0,4}}(?:{_ROOM})?"
    return re.compile(
        rf"(?:{admin}){{0,3}}(?:"
        rf"{_ROAD}{_HOUSE}{parts}"  # 建国路88号(院3号楼2单元502)
        rf"|{_ESTATE}(?:{_ESTATE_BUILDING}|{_TRIPLE}){parts}"  # 幸福小区5栋2单元301, 3-2-502
        rf"|{district}{_NAME}{{0,10}}?(?:{_HOUSE}|{_ESTATE_BUILDING}){parts}"
        rf")"
    )


def _addresses(view: str) -> Iterator[tuple[int, int, str]]:
    # Only around anchors, each position tried once: regions of overlapping windows merge.
    regions: list[list[int]] = []
    for anchor in _ADDRESS_ANCHOR.finditer(view):
        start, end = max(0, anchor.start() - _ANCHOR_BEFORE), anchor.end() + _ANCHOR_AFTER
        if _ADDRESS_WORD.search(view, start, anchor.start()) is None:
            continue
        if regions and start <= regions[-1][1]:
            regions[-1][1] = end
        else:
            regions.append([start, end])
    if not regions:
        return
    pattern = _address_pattern()
    for start, end in regions:
        for match in pattern.finditer(view, start, min(end, len(view))):
            yield match.start(), match.end(), "address"


# -- all together -------------------------------------------------------------------------------

_DIGIT = re.compile(r"[0-9]")
# Ten digits in one run (see _RUN): the fewest any identifier made of digits has.
_TEN_DIGITS = re.compile(rf"[0-9](?:{_SEPARATORS}{{0,3}}[0-9]){{9}}")
# What every detection needs in the original text (a digit of any script, an at sign, a
# Latin letter, a label's first character, two Chinese numerals): most comments have none.
_TRIGGER = re.compile(
    r"[\d@＠#A-Za-zＡ-Ｚａ-ｚ\u00b2\u00b3\u00b9\u2070-\u209f\u2460-\u24ff\u2776-\u2793"
    r"\u3220-\u325f\u3280-\u32bf微威薇维徽扣企绿\U0001d7ce-\U0001d7ff]"
    r"|[〇零一二三四五六七八九十百幺壹贰貳叁參肆伍陆陸柒捌玖]{2}"
)
_PLATE_GATE = re.compile(
    r"[京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼使领][A-Za-z]"
)


def _view_detections(view: str, plain: str) -> list[tuple[int, int, str]]:
    # Each detector runs only when a cheap search finds what it cannot do without: most texts
    # with a digit hold a count or a date, and pass no gate but the first.
    found: list[tuple[int, int, str]] = []
    if _DIGIT.search(view) is not None:
        if _TEN_DIGITS.search(view) is not None:
            found.extend(_digit_runs(view, plain))
        if _ADDRESS_WORD.search(view) is not None:
            found.extend(_addresses(view))
        if _PLATE_GATE.search(plain) is not None:
            found.extend(_plates(plain))
    if _HEXY_REGION.search(plain) is not None:
        found.extend(_hexy(plain))
    if _EMAIL_GATE.search(plain) is not None:
        found.extend((match.start(), match.end(), "email") for match in _EMAIL.finditer(plain))
    if _LABEL_GATE.search(view) is not None:
        found.extend(_labelled(view, plain))
    return found


def _merged(found: list[tuple[int, int, str]]) -> list[tuple[int, int, str]]:
    """Overlapping detections become one span, of the kind of the longest among them."""
    merged: list[tuple[int, int, str]] = []
    longest = 0
    for start, end, kind in sorted(found):
        if merged and start < merged[-1][1]:
            last_start, last_end, last_kind = merged[-1]
            if end - start > longest:
                longest, last_kind = end - start, kind
            merged[-1] = (last_start, max(last_end, end), last_kind)
        else:
            merged.append((start, end, kind))
            longest = end - start
    return merged


def find_identifiers(text: str) -> list[Detection]:
    """The personal data in ``text``: non-overlapping spans of the original, in order."""
    if _TRIGGER.search(text) is None:
        return []
    view = detection_view(text)
    found = _view_detections(view.text, view.plain)
    if not found:
        return []
    merged = _merged(found) if len(found) > 1 else found
    if view.origins is None:  # the usual case: the view is as long as the text
        return [Detection(*detection) for detection in merged]
    return [Detection(*view.span(start, end), kind) for start, end, kind in merged]
