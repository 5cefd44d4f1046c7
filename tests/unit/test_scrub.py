"""Free-text scrubbing: personal data in queries and comments becomes markers, in any spelling,
and ordinary numbers stay."""

from __future__ import annotations

import re
from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from processor.devtools.benchmark.pii import ADVERSARIAL, repeated, scrub_seconds
from processor.pipeline.detectors import find_identifiers
from processor.pipeline.scrub import scrub_text, truncate_text
from processor.pipeline.textview import detection_view
from tests.data.pii.make_corpus import SEPARATORS


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("我的手机号是13812345678，请联系", "我的手机号是[phone]，请联系"),
        ("电话 +86 138 1234 5678 谢谢", "电话 [phone] 谢谢"),
        ("电话138-1234-5678", "电话[phone]"),
        ("8613812345678", "[phone]"),
        ("手机１３８１２３４５６７８谢谢", "手机[phone]谢谢"),
        ("号码 139 3233 2113", "号码 [phone]"),
        ("号码 139.3233.2113", "号码 [phone]"),
        ("号码 139/3233/2113", "号码 [phone]"),
        ("号码 139_3233_2113", "号码 [phone]"),
        ("号码 139、3233、2113", "号码 [phone]"),
        ("号码 139  3233  2113", "号码 [phone]"),
        ("号码 139\t3233\t2113", "号码 [phone]"),
        ("号码 139\u30003233\u30002113", "号码 [phone]"),
        ("号码 139\u00a03233\u20092113", "号码 [phone]"),
        ("号码 139\u200b3233\u200b2113 谢谢", "号码 [phone] 谢谢"),
        ("号码(139)3233-2113", "号码[phone]"),
        ("号码 (+86)139 3233 2113", "号码 [phone]"),
        ("号码 0086 139 3233 2113", "号码 [phone]"),
        ("号码一三九三二三三二一一三", "号码[phone]"),
        ("号码一三九〇二三三二一一三", "号码[phone]"),
        ("号码一三九零二三三二一一三", "号码[phone]"),
        ("号码139三二三三2113", "号码[phone]"),
        ("号码①③⑨③②③③②①①③", "号码[phone]"),
        ("座机 010-6552 8888", "座机 [phone]"),
        ("邮箱 zhang.san@qq.com 谢谢", "邮箱 [email] 谢谢"),
        ("邮箱 zhang.san＠qq．com", "邮箱 [email]"),
        ("邮箱 name @ qq.com", "邮箱 [email]"),
        ("邮箱 name[at]qq.com", "邮箱 [email]"),
        ("邮箱 name at qq dot com", "邮箱 [email]"),
        ("身份证11010519491231002X", "身份证[idcard]"),
        ("身份证 110105 19491231 002x", "身份证 [idcard]"),
        ("身份证110105491231002", "身份证[idcard]"),  # the old 15-digit form
        ("身份证110105194912310021", "身份证[number]"),  # wrong check digit: still long
        ("卡号 6222 0212 3456 7890 123", "卡号 [bankcard]"),  # labelled: Luhn not needed
        ("转到 6217000012345678907", "转到 [bankcard]"),  # Luhn-valid UnionPay card
        ("加我vx：lily_2024", "加我vx：[wechat]"),
        ("微信号是xiaoyu1314", "微信号是[wechat]"),
        ("qq号１２３４５６７８９", "qq号[qq]"),
        ("扣扣 20240501 开黑", "扣扣 [qq] 开黑"),
        ("京A·12345 挡路了", "[plate] 挡路了"),
        ("快递寄到北京市朝阳区建国路88号", "快递寄到[address]"),
        ("地址 幸福小区5栋2单元301", "地址 [address]"),
        ("ip 61.128.128.68 登录", "ip [ip] 登录"),
        ("ip 203.000.113.007", "ip [ip]"),
        ("ip 2001:db8::8a2e:370:7334", "ip [ip]"),
        (
            "mac 3C:5A:B4:12:34:56 或 3c5a.b412.3456 或 3C5A-B412-3457 或 AA:BB:CC:DD:EE:FF",
            "mac [mac] 或 [mac] 或 [mac] 或 [mac]",
        ),
        ("imei 35 693803 564380 9", "imei [device_id]"),
        ("imei 35.693803.564380.9", "imei [device_id]"),
        ("oaid 6b1e6b2c-6a4f-4e0f-9c3a-2b1d4e5f6a7b", "oaid [device_id]"),
        ("android 5f3a9c1be27d4086", "android [device_id]"),
        ("订单1764316800123", "订单[number]"),
        # Chinese numerals next to an identifier are words, not digits of it:
        ("我电话13812345678一直打不通", "我电话[phone]一直打不通"),
        ("加我微信lily_2024一起玩吧", "加我微信[wechat]一起玩吧"),
        ("京A12345一直停在这", "[plate]一直停在这"),
        ("QQ 12345678一起玩", "QQ [qq]一起玩"),
        ("v：Lily-Zhang", "v：[wechat]"),
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
        "版本 14.2.1.300",
        "城市 510100",
        "１２３ 个赞",
        "第13集播放量1380万",
        "RTX4090 才卖12999元",
        "iPhone 15 Pro Max",
        "坐CA1831转G1234",
        "住在1203房间",
        "比分3:2",
        "客服 400-800-8888",
        "打10086问问",
        "微信支付了20元",
        "用微信 Android 版",
        "iPhone v: release",
        "北京时间8号晚上",
        "地铁8号线",
        "圆周率 3.14159265358",
        "66666666666666",
        "@主播 你好",
    ],
)
def test_when_text_holds_no_identifier_then_unchanged(text: str) -> None:
    assert scrub_text(text) == text


def test_when_nothing_found_then_the_same_object_is_returned() -> None:
    text = "主播加油"
    assert scrub_text(text) is text


def test_when_digits_in_longer_run_then_run_replaced_whole() -> None:
    assert scrub_text("x138123456789y") == "x[number]y"


def test_when_phone_followed_by_a_count_then_only_the_phone_is_replaced() -> None:
    assert scrub_text("13800138000 2") == "[phone] 2"


def test_when_view_removes_characters_then_spans_map_back_to_the_original() -> None:
    text = "a\u200b1\u200b3\u200b8 0013 8000 ⑩ b"
    view = detection_view(text)
    assert view.origins is not None
    assert view.text == "a138 0013 8000 10 b"
    assert [text[d.start : d.end] for d in find_identifiers(text)] == ["1\u200b3\u200b8 0013 8000"]


# -- truncation ----------------------------------------------------------------------------


def test_when_text_is_short_then_truncation_keeps_it() -> None:
    assert truncate_text("abc", 5) == "abc"


def test_when_cut_falls_inside_an_identifier_then_it_is_cut_off_whole() -> None:
    text = "评论" * 5 + "13812345678" + "好" * 50
    assert truncate_text(text, 15) == "评论" * 5


def test_when_cut_falls_between_identifiers_then_at_the_limit() -> None:
    text = "好" * 30
    assert truncate_text(text, 20) == "好" * 20


# -- property tests: generated identifiers in any spelling, in random Chinese text ------------

_CJK = st.text(
    alphabet=st.characters(min_codepoint=0x4E00, max_codepoint=0x9FA5).filter(
        lambda char: char not in "〇零一二三四五六七八九十百幺壹贰貳叁參肆伍陆陸柒捌玖"
    ),
    max_size=12,
)
_SEPARATORS = ["", *SEPARATORS]
_CN = "〇一二三四五六七八九"


def _spell(digits: str, data: st.DataObject) -> str:
    """``digits`` in one spelling: groups with a separator, full width or Chinese numerals
    for some digits."""
    sep = data.draw(st.sampled_from(_SEPARATORS))
    cuts = sorted(data.draw(st.sets(st.integers(1, len(digits) - 1), max_size=3)))
    parts = [digits[i:j] for i, j in zip([0, *cuts], [*cuts, len(digits)], strict=True)]
    text = sep.join(parts)
    style = data.draw(st.sampled_from(["ascii", "full", "chinese", "mixed"]))
    if style == "full":
        return "".join(chr(ord(c) + 0xFEE0) if c.isdigit() else c for c in text)
    if style == "chinese":
        return "".join(_CN[int(c)] if c.isdigit() else c for c in text)
    if style == "mixed":
        return "".join(_CN[int(c)] if c.isdigit() and data.draw(st.booleans()) else c for c in text)
    return text


def _mobile() -> st.SearchStrategy[str]:
    return st.builds(
        lambda head, body: head + body,
        st.sampled_from(["13", "14", "15", "16", "17", "18", "19"]),
        st.text(alphabet="0123456789", min_size=9, max_size=9),
    )


def _id_number() -> st.SearchStrategy[str]:
    weights = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)

    def build(region: str, born: date, seq: int) -> str:
        body = f"{region}{born:%Y%m%d}{seq:03d}"
        return (
            body + "10X98765432"[sum(int(d) * w for d, w in zip(body, weights, strict=True)) % 11]
        )

    return st.builds(
        build,
        st.sampled_from(["110105", "310104", "440305", "510107", "650102"]),
        st.dates(min_value=date(1900, 1, 1), max_value=date(2026, 12, 31)),
        st.integers(0, 999),
    )


def _digits_left(scrubbed: str, digits: str) -> bool:
    """True when the identifier's digits are still all there, in order, in the output
    (any spelling normalised the way the scrubber reads it)."""
    view = re.sub(r"[^0-9Xx]", "", detection_view(scrubbed).text)
    return digits.upper() in view.upper()


@settings(deadline=None, max_examples=300)
@given(before=_CJK, after=_CJK, number=_mobile(), data=st.data())
def test_when_any_phone_spelling_is_in_chinese_text_then_never_left_whole(
    before: str, after: str, number: str, data: st.DataObject
) -> None:
    prefix = data.draw(st.sampled_from(["", "+86 ", "0086", "(+86)"]))
    scrubbed = scrub_text(before + prefix + _spell(number, data) + after)
    assert not _digits_left(scrubbed, number)


@settings(deadline=None, max_examples=300)
@given(before=_CJK, after=_CJK, number=_id_number(), data=st.data())
def test_when_any_id_number_spelling_is_in_chinese_text_then_never_left_whole(
    before: str, after: str, number: str, data: st.DataObject
) -> None:
    scrubbed = scrub_text(before + _spell(number, data) + after)
    assert not _digits_left(scrubbed, number)


_LOCAL = st.from_regex(r"[a-z][a-z0-9_.]{1,12}[a-z0-9]", fullmatch=True)
_DOMAIN = st.sampled_from(["qq.com", "163.com", "gmail.com", "sina.com.cn", "foxmail.com"])


@settings(deadline=None, max_examples=300)
@given(before=_CJK, after=_CJK, local=_LOCAL, domain=_DOMAIN, data=st.data())
def test_when_any_email_spelling_is_in_chinese_text_then_never_left_whole(
    before: str, after: str, local: str, domain: str, data: st.DataObject
) -> None:
    at = data.draw(st.sampled_from(["@", "＠", " @ ", "[at]", "(at)", " at ", "艾特"]))
    dot = data.draw(st.sampled_from([".", "．", "[dot]", " dot ", "点"]))
    text = before + " " + local + at + domain.replace(".", dot) + " " + after
    scrubbed = scrub_text(text)
    # markers aside: a local part like "ema" is inside "[email]" itself
    assert local not in re.sub(r"\[[a-z_]+\]", " ", scrubbed)


_texty = st.text(
    alphabet=st.sampled_from(list("0123456789０１２３ -+.:@abcdefxX主播号()一三九 ")), max_size=60
) | st.text(max_size=60)


@settings(deadline=None)
@given(_texty)
def test_when_scrubbed_twice_then_same_as_once(text: str) -> None:
    once = scrub_text(text)
    assert scrub_text(once) == once


@settings(deadline=None)
@given(_texty)
def test_when_scrubbed_then_detections_are_ordered_spans_of_the_text(text: str) -> None:
    end = 0
    for detection in find_identifiers(text):
        assert end <= detection.start < detection.end <= len(text)
        end = detection.end


# -- linear time ------------------------------------------------------------------------------

_FLOOR_SECONDS = 0.005


def _best(text: str, runs: int) -> float:
    return min(scrub_seconds(text) for _ in range(runs))


@pytest.mark.parametrize("unit", list(ADVERSARIAL.values()), ids=list(ADVERSARIAL))
def test_when_adversarial_input_grows_to_1_mib_then_time_grows_linearly(unit: str) -> None:
    small, large = repeated(unit, 64 * 1024), repeated(unit, 1024 * 1024)  # 16 times as long
    scrub_seconds(small)  # compile and cache first
    # Quadratic time would be 256x; 3 times linear leaves room for a loaded machine, and a
    # floor under the short run for inputs that every gate turns away at once.
    ratio = _best(large, 2) / max(_best(small, 3), _FLOOR_SECONDS)
    assert ratio < 16 * 3, f"{ratio:.1f}x the time for 16x the text"
