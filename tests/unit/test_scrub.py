"""Free-text scrubbing: identifiers in queries and comments become markers."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from processor.scrub import scrub_text

_SEVEN_DIGITS = re.compile(r"\d{7}")
_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("我的手机号是13812345678，请联系", "我的手机号是[phone]，请联系"),
        ("电话 +86 138 1234 5678 谢谢", "电话 [phone] 谢谢"),
        ("电话138-1234-5678", "电话[phone]"),
        ("8613812345678", "[phone]"),
        ("手机１３８１２３４５６７８谢谢", "手机[phone]谢谢"),
        ("邮箱 zhang.san@qq.com 谢谢", "邮箱 [email] 谢谢"),
        ("邮箱 zhang.san＠qq.com", "邮箱 [email]"),
        ("身份证11010519491231002X", "身份证[idcard]"),
        ("身份证110105194912310021", "身份证[number]"),  # wrong check digit
        ("ip 61.128.128.68 登录", "ip [ip] 登录"),
        (
            "mac 3C:5A:B4:12:34:56 或 3c5a.b412.3456 或 3c-5a-b4-12-34-56",
            "mac [mac] 或 [mac] 或 [mac]",
        ),
        ("imei 35 693803 564380 9", "imei [number]"),
        ("卡号 6222 0212 3456 7890 123", "卡号 [number]"),
        ("qq号１２３４５６７８９", "qq号[number]"),
        ("订单1764316800123", "订单[number]"),
    ],
)
def test_when_text_holds_identifier_then_marker(text: str, expected: str) -> None:
    assert scrub_text(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "今天的直播太好看了，主播唱歌真好听",
        "第3次来看2号主播，送了99个礼物",
        "2024-05-01 12:30 开播",
        "版本 5.2.1 更新了",
        "城市 510100",
        "１２３ 个赞",
    ],
)
def test_when_text_holds_no_identifier_then_unchanged(text: str) -> None:
    assert scrub_text(text) == text


def test_when_digits_in_longer_run_then_run_replaced_whole() -> None:
    assert scrub_text("x138123456789y") == "x[number]y"


_texty = st.text(
    alphabet=st.sampled_from(list("0123456789０１２３ -+.:@abcdefxX主播号() ")), max_size=60
) | st.text(max_size=60)


@settings(deadline=None)
@given(_texty)
def test_when_scrubbed_twice_then_same_as_once(text: str) -> None:
    once = scrub_text(text)
    assert scrub_text(once) == once


@settings(deadline=None)
@given(_texty)
def test_when_scrubbed_then_no_long_digit_run_email_or_phone_left(text: str) -> None:
    scrubbed = scrub_text(text)
    normalized = scrubbed.translate({code: code - 0xFEE0 for code in range(0xFF01, 0xFF5F)})
    assert _SEVEN_DIGITS.search(normalized) is None
    assert _EMAIL.search(normalized) is None


@settings(deadline=None)
@given(st.text().filter(lambda text: not any(char.isdigit() or char in "@＠" for char in text)))
def test_when_text_has_no_digit_or_at_then_returned_as_is(text: str) -> None:
    assert scrub_text(text) is text
