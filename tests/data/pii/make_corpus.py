"""Writes corpus.jsonl: the labelled free-text corpus of the scrubber's accuracy test.

    python tests/data/pii/make_corpus.py        # deterministic (seeded); rewrite after edits

Each line is ``{"text": ..., "kind": K, "pii": [values]}``. For a text with personal data,
K is its kind and ``pii`` the substrings that must all be gone after scrubbing; for a clean
text, K is the kind of tricky number it holds (``clean:<what>``) and ``pii`` is empty.
Positives come in every spelling the scrubber claims to read (separators, full width,
Chinese numerals, labels); clean texts hold the numbers ordinary comments are full of.
Handwritten lines (HAND_*) come first, then generated ones from templates.
"""

from __future__ import annotations

import json
import random
from datetime import date, timedelta
from pathlib import Path

from processor.pipeline.canonical import luhn_valid

OUT = Path(__file__).with_name("corpus.jsonl")
rng = random.Random(20261201)

# -- helpers ---------------------------------------------------------------------------------

CN_DIGITS = "〇一二三四五六七八九"
CN_DIGITS_LING = "零一二三四五六七八九"
FULL = {str(d): chr(0xFF10 + d) for d in range(10)}
SEPARATORS = [
    " ",
    "-",
    ".",
    "/",
    "_",
    "、",
    "  ",
    "\t",
    "\u3000",
    "\u00a0",
    "\u2009",
    "\u200b",
    "－",
    "—",
]


def luhn_check(body: str) -> str:
    return next(d for d in "0123456789" if luhn_valid(body + d))


def grouped(digits: str, sizes: list[int], sep: str) -> str:
    parts, i = [], 0
    for size in sizes:
        parts.append(digits[i : i + size])
        i += size
    if i < len(digits):
        parts.append(digits[i:])
    return sep.join(p for p in parts if p)


def chinese(digits: str, ling: bool = False) -> str:
    table = CN_DIGITS_LING if ling else CN_DIGITS
    return "".join(table[int(c)] if c.isdigit() else c for c in digits)


def full_width(text: str) -> str:
    return "".join(FULL.get(c, chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c) for c in text)


def mixed(digits: str) -> str:
    """Some digits in Chinese numerals, as in 139三二三三2113."""
    cut = rng.randrange(3, len(digits) - 3)
    span = rng.randrange(2, 5)
    return digits[:cut] + chinese(digits[cut : cut + span]) + digits[cut + span :]


# -- identifiers ------------------------------------------------------------------------------

MOBILE_PREFIXES = [
    "130",
    "131",
    "132",
    "133",
    "135",
    "136",
    "137",
    "138",
    "139",
    "147",
    "150",
    "151",
    "152",
    "153",
    "155",
    "156",
    "157",
    "158",
    "159",
    "166",
    "170",
    "173",
    "175",
    "176",
    "177",
    "178",
    "180",
    "181",
    "182",
    "183",
    "185",
    "186",
    "187",
    "188",
    "189",
    "191",
    "193",
    "195",
    "198",
    "199",
]


def mobile() -> str:
    return rng.choice(MOBILE_PREFIXES) + "".join(rng.choice("0123456789") for _ in range(8))


def phone_spelling(number: str) -> str:
    style = rng.randrange(12)
    sep = rng.choice(SEPARATORS)
    if style == 0:
        return number
    if style == 1:
        return grouped(number, [3, 4, 4], sep)
    if style == 2:
        return rng.choice(["+86 ", "+86", "0086 ", "(+86)", "+86-", "86 "]) + grouped(
            number, [3, 4, 4], rng.choice([" ", "-", ""])
        )
    if style == 3:
        return f"({number[:3]}){number[3:7]}-{number[7:]}"
    if style == 4:
        return chinese(number, ling=rng.random() < 0.5)
    if style == 5:
        return mixed(number)
    if style == 6:
        return full_width(number)
    if style == 7:
        return " ".join(number)
    if style == 8:
        return grouped(number, [3, 3, 5], sep)
    if style == 9:
        return grouped(number, [4, 4, 3], sep)
    if style == 10:
        return "\u200b".join(number)
    return grouped(chinese(number), [3, 4, 4], sep)


AREA_CODES = [
    "010",
    "020",
    "021",
    "022",
    "023",
    "024",
    "025",
    "027",
    "028",
    "029",
    "0755",
    "0571",
    "0512",
    "0531",
    "0371",
    "0731",
    "0591",
    "0851",
    "0871",
    "0431",
]


def landline() -> tuple[str, str]:
    import phonenumbers

    while True:
        area = rng.choice(AREA_CODES)
        length = 8 if len(area) == 3 else rng.choice([7, 8])
        subscriber = rng.choice("2345678") + "".join(
            rng.choice("0123456789") for _ in range(length - 1)
        )
        parsed = phonenumbers.parse(area + subscriber, "CN")
        if (
            phonenumbers.is_valid_number(parsed)
            and phonenumbers.number_type(parsed) == phonenumbers.PhoneNumberType.FIXED_LINE
        ):
            return area, subscriber


def landline_spelling(area: str, subscriber: str) -> str:
    style = rng.randrange(6)
    if style == 0:
        return f"{area}-{subscriber}"
    if style == 1:
        return f"({area}){subscriber}"
    if style == 2:
        return f"{area} {subscriber[:4]} {subscriber[4:]}"
    if style == 3:
        return f"+86 {area[1:]} {subscriber}"
    if style == 4:
        return chinese(f"{area}-{subscriber}")
    return full_width(f"{area}-{subscriber}")


REGIONS = [
    "110105",
    "310104",
    "440305",
    "510107",
    "330106",
    "420111",
    "500103",
    "320102",
    "370202",
    "610113",
    "210102",
    "350203",
    "430104",
    "120101",
    "130102",
]
ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)


def id18() -> str:
    born = date(1950, 1, 1) + timedelta(days=rng.randrange(0, 365 * 60))
    body = rng.choice(REGIONS) + born.strftime("%Y%m%d") + f"{rng.randrange(1000):03d}"
    check = "10X98765432"[sum(int(d) * w for d, w in zip(body, ID_WEIGHTS, strict=True)) % 11]
    return body + check


def id15() -> str:
    born = date(1930, 1, 1) + timedelta(days=rng.randrange(0, 365 * 60))
    return rng.choice(REGIONS) + born.strftime("%y%m%d") + f"{rng.randrange(1000):03d}"


def id_spelling(number: str) -> str:
    style = rng.randrange(7)
    if style == 0 or len(number) == 15:
        return number if style != 1 else full_width(number)
    if style == 1:
        return grouped(number, [6, 8, 4], " ")
    if style == 2:
        return full_width(number)
    if style == 3:
        return chinese(number) if number[-1] != "X" else chinese(number[:-1]) + "X"
    if style == 4:
        return number.lower()
    if style == 5:
        return grouped(number, [6, 4, 4, 4], rng.choice(SEPARATORS))
    return mixed(number)


def bankcard() -> str:
    prefix = rng.choice(
        [
            "622202",
            "621700",
            "622848",
            "622588",
            "621226",
            "623052",
            "436742",
            "456351",
            "518710",
            "625906",
        ]
    )
    length = rng.choice([16, 16, 19])
    body = prefix + "".join(rng.choice("0123456789") for _ in range(length - len(prefix) - 1))
    return body + luhn_check(body)


def bank_spelling(number: str) -> str:
    style = rng.randrange(5)
    if style == 0:
        return number
    if style == 1:
        return grouped(number, [4, 4, 4, 4], " ")
    if style == 2:
        return grouped(number, [4, 4, 4, 4], rng.choice(["-", "  ", "\u3000", "."]))
    if style == 3:
        return full_width(number)
    return grouped(number, [6, 13], " ")


LOCAL_WORDS = [
    "zhangsan",
    "lily",
    "wang.xiao",
    "li_lei",
    "hanmeimei",
    "chen88",
    "xiaoming2024",
    "a.b.c",
    "tom_cat",
    "sunny.day",
    "kk12345",
    "happy-fish",
    "jiang.wei.1990",
]
DOMAINS = [
    "qq.com",
    "163.com",
    "126.com",
    "gmail.com",
    "foxmail.com",
    "sina.com",
    "sina.cn",
    "outlook.com",
    "hotmail.com",
    "yeah.net",
    "example.com.cn",
    "aliyun.com",
    "139.com",
]


def email_spelling() -> str:
    local = rng.choice(LOCAL_WORDS) + (str(rng.randrange(100)) if rng.random() < 0.4 else "")
    domain = rng.choice(DOMAINS)
    style = rng.randrange(10)
    if style == 0:
        return f"{local}@{domain}"
    if style == 1:
        return full_width(f"{local}@{domain}")
    if style == 2:
        return f"{local}＠{domain.replace('.', '．')}"
    if style == 3:
        return f"{local} @ {domain}"
    if style == 4:
        return f"{local}[at]{domain}"
    if style == 5:
        return f"{local}(at){domain}"
    if style == 6:
        return f"{local} at {domain.replace('.', ' dot ')}"
    if style == 7:
        return f"{local}艾特{domain}"
    if style == 8:
        return f"{local}@{domain.replace('.', '[dot]')}"
    return f"{local}@{domain.replace('.', '点')}"


def qq_number() -> str:
    return str(rng.randrange(10_000, 3_999_999_999))


QQ_LABELS = ["QQ", "qq", "QQ号", "qq号码", "扣扣", "企鹅号", "Q号", "QQ：", "ＱＱ"]
WECHAT_LABELS = [
    "微信",
    "微信号",
    "vx",
    "VX",
    "wx",
    "V信",
    "v信",
    "薇信",
    "威信",
    "加v",
    "wechat",
    "微信号是",
    "ｖｘ",
    "weixin",
]
WECHAT_IDS = [
    "lily_2024",
    "zhang-san88",
    "wxid_a1b2c3d4e5",
    "sunshine_99",
    "tom2023cat",
    "Kitty_520",
    "abc_def_123",
    "xiaoyu1314",
    "mike-007x",
    "dream_0808",
]


def plate() -> str:
    province = rng.choice("京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼")
    letter = rng.choice("ABCDEFGHJKLMNPQRSTUVWXYZ")
    if rng.random() < 0.25:
        body = rng.choice("DF") + "".join(rng.choice("0123456789") for _ in range(5))
    else:
        chars = [rng.choice("0123456789") for _ in range(5)]
        if rng.random() < 0.5:
            chars[rng.randrange(5)] = rng.choice("ABCDEFGHJKLMNPQRSTUVWXYZ")
        body = "".join(chars)
    sep = rng.choice(["", "·", "·", " ", "-", "•", "・"])
    text = f"{province}{letter}{sep}{body}"
    return text.lower() if rng.random() < 0.1 else text


ADMIN = [
    ("北京市", "朝阳区"),
    ("北京", "海淀区"),
    ("上海市", "浦东新区"),
    ("广东省深圳市", "南山区"),
    ("广州市", "天河区"),
    ("四川省成都市", "武侯区"),
    ("成都", "高新区"),
    ("浙江省杭州市", "西湖区"),
    ("重庆市", "渝中区"),
    ("湖北省武汉市", "洪山区"),
    ("江苏省南京市", "鼓楼区"),
    ("天津市", "和平区"),
    ("陕西省西安市", "雁塔区"),
    ("山东省青岛市", "市南区"),
    ("福建省厦门市", "思明区"),
    ("湖南省长沙市", "岳麓区"),
    ("河南省郑州市", "金水区"),
    ("辽宁省沈阳市", "和平区"),
    ("云南省昆明市", "五华区"),
    ("", ""),
]
ROADS = [
    "建国路",
    "中山路",
    "人民大道",
    "解放路",
    "科技园南路",
    "长安街",
    "南京东路",
    "天府大道",
    "文三路",
    "学院路",
    "东风路",
    "幸福街",
    "和平里北街",
    "五一路",
    "珠江路",
]
ESTATES = [
    "阳光小区",
    "幸福花园",
    "碧桂园",
    "万科城市花园",
    "金地公寓",
    "华润大厦",
    "翠苑新村",
    "世纪家园",
    "保利花园",
    "绿地新城",
]


def address() -> str:
    province_city, district = rng.choice(ADMIN)
    style = rng.randrange(5)
    number = rng.randrange(1, 999)
    if style == 0:
        return f"{province_city}{district}{rng.choice(ROADS)}{number}号"
    if style == 1:
        return f"{province_city}{district}{rng.choice(ROADS)}{number}号{rng.randrange(1, 30)}号楼{rng.randrange(1, 6)}单元{rng.randrange(1, 30)}{rng.randrange(1, 6):02d}"
    if style == 2:
        return f"{province_city}{district}{rng.choice(ESTATES)}{rng.randrange(1, 30)}栋{rng.randrange(1, 6)}单元{rng.randrange(101, 3006)}室"
    if style == 3:
        return f"{district}{rng.choice(ESTATES)}{rng.randrange(1, 30)}-{rng.randrange(1, 6)}-{rng.randrange(101, 3006)}"
    return f"{rng.choice(ROADS)}{number}号院{rng.randrange(1, 20)}号楼{rng.randrange(101, 2606)}"


def ipv4() -> str:
    octets = [rng.choice([rng.randrange(1, 224), rng.randrange(0, 256)]) for _ in range(4)]
    if rng.random() < 0.3:
        return ".".join(f"{o:03d}" for o in octets)
    return ".".join(map(str, octets))


def ipv6() -> str:
    groups = [f"{rng.randrange(0x10000):x}" for _ in range(8)]
    style = rng.randrange(4)
    if style == 0:
        return ":".join(groups)
    if style == 1:
        return "240e:" + groups[1] + "::" + groups[7]
    if style == 2:
        return "::ffff:" + ipv4().replace(".0", ".")
    return ("2408:" + ":".join(groups[1:4]) + "::" + groups[6]).upper()


def mac() -> str:
    octets = [rng.randrange(256) for _ in range(6)]
    hexs = "".join(f"{o:02X}" for o in octets)
    style = rng.randrange(7)
    if style == 0:
        return ":".join(hexs[i : i + 2] for i in range(0, 12, 2))
    if style == 1:
        return "-".join(hexs[i : i + 2] for i in range(0, 12, 2)).lower()
    if style == 2:
        return ".".join(hexs[i : i + 4] for i in range(0, 12, 4)).lower()
    if style == 3:
        return "-".join(hexs[i : i + 4] for i in range(0, 12, 4))
    if style == 4:
        while hexs.isdigit() or hexs.isalpha():
            hexs = "".join(f"{rng.randrange(256):02X}" for _ in range(6))
        return hexs
    if style == 5:
        letters = "".join(rng.choice("ABCDEF") for _ in range(12))
        return ":".join(letters[i : i + 2] for i in range(0, 12, 2))
    return full_width(":".join(hexs[i : i + 2] for i in range(0, 12, 2)))


def imei() -> str:
    body = rng.choice(["35", "86", "35", "99", "01"]) + "".join(
        rng.choice("0123456789") for _ in range(12)
    )
    number = body + luhn_check(body)
    style = rng.randrange(5)
    if style == 0:
        return number
    if style == 1:
        return f"{number[:2]} {number[2:8]} {number[8:14]} {number[14]}"
    if style == 2:
        return f"{number[:2]}.{number[2:8]}.{number[8:14]}.{number[14]}"
    if style == 3:
        return f"{number[:2]}-{number[2:8]}-{number[8:14]}-{number[14]}"
    return full_width(number)


def hexs(n: int) -> str:
    while True:
        value = "".join(rng.choice("0123456789abcdef") for _ in range(n))
        if not value.isdigit() and not value.isalpha():
            return value


def oaid() -> str:
    value = hexs(32)
    uuid = f"{value[:8]}-{value[8:12]}-{value[12:16]}-{value[16:20]}-{value[20:]}"
    return uuid.upper() if rng.random() < 0.3 else uuid


# -- templates ------------------------------------------------------------------------------

PREFIXES = [
    "",
    "",
    "主播好，",
    "哈哈哈 ",
    "今天直播太精彩了！",
    "老铁们，",
    "刚看完回放，",
    "求带 ",
]
SUFFIXES = ["", "", "，谢谢", " 谢谢主播", "！", "，有事找我", "~", "。"]

TEMPLATES = {
    "phone": [
        "我的手机号是{}",
        "电话{}",
        "联系方式：{}",
        "{} 打这个",
        "加我手机{}，",
        "call me {}",
        "有意私聊 {}",
        "手机：{}（微信同号）",
        "号码是 {}",
        "tel:{}",
    ],
    "landline": ["公司电话{}", "座机：{}", "打我办公室 {}", "联系电话 {} 转人工", "家里电话是{}"],
    "idcard": [
        "身份证号{}",
        "我身份证是 {}",
        "实名信息：{}",
        "帮我查下这个身份证{}",
        "证件号码：{}",
    ],
    "bankcard": ["卡号{}", "转账到 {} 工商银行", "银行卡：{}", "打钱到这张卡{}", "退款请退到 {}"],
    "email": ["邮箱 {}", "发我邮箱{}", "资料发到 {} 谢谢", "email: {}", "联系邮箱：{}"],
    "qq": [
        "{label}{sep}{id}",
        "加我{label}{sep}{id}",
        "有事{label}联系 {id}",
        "{label}{sep}{id} 备注直播间",
    ],
    "wechat": [
        "{label}{sep}{id}",
        "加我{label}{sep}{id}",
        "{label}{sep}{id} 拉你进群",
        "私聊{label}{sep}{id}",
    ],
    "plate": ["车牌{}", "我的车是{}", "{} 停在楼下了", "看到一辆{}的车", "车牌号：{}"],
    "address": ["快递寄到{}", "地址：{}", "我家在{}", "收货地址 {} 张三收", "{}，到了打电话"],
    "ip": ["我的ip是{}", "服务器 {} 连不上", "IP: {}", "登录地址{}异常"],
    "mac": ["mac地址{}", "MAC: {}", "路由器显示 {}", "设备mac是{}"],
    "device_id": ["imei {}", "IMEI：{}", "oaid {}", "设备号{}", "安卓ID {}", "android_id={}"],
}


def positive(kind: str) -> tuple[str, list[str]]:
    template = rng.choice(TEMPLATES[kind])
    if kind == "phone":
        value = phone_spelling(mobile())
    elif kind == "landline":
        value = landline_spelling(*landline())
    elif kind == "idcard":
        value = id_spelling(id18() if rng.random() < 0.8 else id15())
    elif kind == "bankcard":
        value = bank_spelling(bankcard())
    elif kind == "email":
        value = email_spelling()
    elif kind in ("qq", "wechat"):
        labels = QQ_LABELS if kind == "qq" else WECHAT_LABELS
        ident = qq_number() if kind == "qq" else rng.choice(WECHAT_IDS)
        if kind == "qq" and rng.random() < 0.2:
            ident = full_width(ident)
        text = template.format(
            label=rng.choice(labels), sep=rng.choice(["", ":", "：", " ", "号", "是"]), id=ident
        )
        return rng.choice(PREFIXES) + text + rng.choice(SUFFIXES), [ident]
    elif kind == "plate":
        value = plate()
    elif kind == "address":
        value = address()
    elif kind == "ip":
        value = ipv4() if rng.random() < 0.6 else ipv6()
    elif kind == "mac":
        value = mac()
    else:
        value = rng.choice([imei, oaid, lambda: hexs(16)])()
    return rng.choice(PREFIXES) + template.format(value) + rng.choice(SUFFIXES), [value]


# Realistic lines written by hand: (kind, text, [values]).
HAND_POSITIVE = [
    ("phone", "主播我的手机号是139 3233 2113，记得回我", ["139 3233 2113"]),
    ("phone", "联系我(139)3233-2113", ["(139)3233-2113"]),
    ("phone", "手机 一三九三二三三二一一三 微信同号", ["一三九三二三三二一一三"]),
    ("phone", "电话139三二三三2113", ["139三二三三2113"]),
    ("phone", "号码幺三八零零幺三八零零零", ["幺三八零零幺三八零零零"]),
    ("phone", "打 １３８－００１３－８０００", ["１３８－００１３－８０００"]),
    ("phone", "手机号是①③⑨①②③④⑤⑥⑦⑧", ["①③⑨①②③④⑤⑥⑦⑧"]),
    ("phone", "加我 +86 139 3233 2113 备注粉丝", ["+86 139 3233 2113"]),
    ("phone", "0086-13932332113 找我", ["0086-13932332113"]),
    ("phone", "电话：139.3233.2113", ["139.3233.2113"]),
    ("phone", "13932332113今晚八点直播", ["13932332113"]),
    ("phone", "我手机号１３９ ３２３３ ２１１３，晚上联系", ["１３９ ３２３３ ２１１３"]),
    ("landline", "店里电话 010-6552 8888 欢迎来玩", ["010-6552 8888"]),
    ("idcard", "身份证11010519491231002X帮我查一下", ["11010519491231002X"]),
    ("idcard", "证件号 110105 19491231 002x", ["110105 19491231 002x"]),
    ("email", "邮箱 zhang.san＠qq．com 发我", ["zhang.san＠qq．com"]),
    ("email", "简历发 hr_2024 @ 163.com", ["hr_2024 @ 163.com"]),
    ("email", "lily[at]qq.com 有事联系", ["lily[at]qq.com"]),
    ("wechat", "vx：lily_2024 拉你进粉丝群", ["lily_2024"]),
    ("wechat", "微信号是xiaoyu1314，加的时候备注", ["xiaoyu1314"]),
    ("wechat", "V信 dream_0808", ["dream_0808"]),
    ("wechat", "想要链接的加wx 13932332113", ["13932332113"]),
    ("qq", "扣扣 20240501 一起开黑", ["20240501"]),
    ("qq", "企鹅号：123456789", ["123456789"]),
    ("plate", "京A·12345 挡住我车库了", ["京A·12345"]),
    ("plate", "刚才那辆粤B D12345 开太快", ["粤B D12345"]),
    ("address", "快递寄到北京市朝阳区建国路88号", ["北京市朝阳区建国路88号"]),
    ("address", "地址：上海市浦东新区张江路88号3单元502", ["上海市浦东新区张江路88号3单元502"]),
    ("address", "我住阳光小区5栋2单元301，欢迎来玩", ["阳光小区5栋2单元301"]),
    ("address", "收件：深圳市南山区科技园南路18号 王先生", ["深圳市南山区科技园南路18号"]),
    ("ip", "我的IP是 203.000.113.007 被封了", ["203.000.113.007"]),
    ("ip", "ipv6 240e:3a1:2c4:5e0::1 连不上", ["240e:3a1:2c4:5e0::1"]),
    ("mac", "路由器 mac 3C5A-B412-3457", ["3C5A-B412-3457"]),
    ("mac", "mac 是 AA:BB:CC:DD:EE:FF 吗", ["AA:BB:CC:DD:EE:FF"]),
    (
        "device_id",
        "oaid 6b1e6b2c-6a4f-4e0f-9c3a-2b1d4e5f6a7b 帮查",
        ["6b1e6b2c-6a4f-4e0f-9c3a-2b1d4e5f6a7b"],
    ),
    ("device_id", "安卓id 5f3a9c1be27d4086", ["5f3a9c1be27d4086"]),
    ("device_id", "IMEI 35.693803.564380.9 丢了", ["35.693803.564380.9"]),
    ("bankcard", "打到 6222 0212 3456 7890 128 这张卡", ["6222 0212 3456 7890 128"]),
    ("phone", "主播看这里 159 8765 4321", ["159 8765 4321"]),
    ("phone", "我号码：壹叁玖贰贰叁叁肆肆伍伍", ["壹叁玖贰贰叁叁肆肆伍伍"]),
    ("phone", "我电话 138–0013–8000", ["138–0013–8000"]),
    ("phone", "手机 1 3 8 0 0 1 3 8 0 0 0", ["1 3 8 0 0 1 3 8 0 0 0"]),
    ("phone", "call 138 0013 8000 anytime", ["138 0013 8000"]),
    ("phone", "Tel：(+86) 13800138000", ["(+86) 13800138000"]),
    ("landline", "座机 028-85123456", ["028-85123456"]),
    ("idcard", "身份证 510107900307123", ["510107900307123"]),
    ("bankcard", "我的卡 6217 0000 1234 5678 905", ["6217 0000 1234 5678 905"]),
    ("email", "联系：zhang_san2000@163.com", ["zhang_san2000@163.com"]),
    ("email", "邮件 Li.Lei＠Gmail．COM", ["Li.Lei＠Gmail．COM"]),
    ("email", "邮箱 abc123#qq.com", ["abc123#qq.com"]),
    ("email", "xiaoming at gmail dot com", ["xiaoming at gmail dot com"]),
    ("qq", "qq：３９４８２７１１", ["３９４８２７１１"]),
    ("qq", "QQ号 394-827-118", ["394-827-118"]),
    ("qq", "加扣扣394827118", ["394827118"]),
    ("wechat", "微信:Zhang_San-88", ["Zhang_San-88"]),
    ("wechat", "绿泡泡 happy_2024", ["happy_2024"]),
    ("wechat", "wxid_8k2j3h4g5f6d 加一下", ["wxid_8k2j3h4g5f6d"]),
    ("plate", "车牌 沪A-D8888F", ["沪A-D8888F"]),
    ("plate", "川A12345", ["川A12345"]),
    ("address", "家住重庆市渝北区龙溪街道金龙路68号", ["重庆市渝北区龙溪街道金龙路68号"]),
    (
        "address",
        "地址 杭州市西湖区文三路90号东部软件园1号楼405室",
        ["杭州市西湖区文三路90号东部软件园1号楼405室"],
    ),
    ("address", "送到翠苑三区12幢3单元501", ["翠苑三区12幢3单元501"]),
    ("address", "北京市海淀区中关村大街1号", ["北京市海淀区中关村大街1号"]),
    # Written after the detectors, as a check (two ids without a label word stay missed):
    ("phone", "有需要的私信我，或者打我电话：186-0102-3344", ["186-0102-3344"]),
    ("phone", "扣1️⃣3️⃣8️⃣0️⃣0️⃣1️⃣3️⃣8️⃣0️⃣0️⃣0️⃣", ["1️⃣3️⃣8️⃣0️⃣0️⃣1️⃣3️⃣8️⃣0️⃣0️⃣0️⃣"]),
    ("phone", "我的手机：壹捌陆 零壹零贰 叁叁肆肆", ["壹捌陆 零壹零贰 叁叁肆肆"]),
    ("phone", "联系人王先生 15011112222", ["15011112222"]),
    ("phone", "号码是1 8 6 0 1 0 2 3 3 4 4", ["1 8 6 0 1 0 2 3 3 4 4"]),
    ("phone", "手机号码一三八一二三四五六七八", ["一三八一二三四五六七八"]),
    ("wechat", "商务合作 VX: abc_12345", ["abc_12345"]),
    ("wechat", "商务合作请联系微信 zhangsan_1990 备注来意", ["zhangsan_1990"]),
    ("wechat", "v：Lily-Zhang", ["Lily-Zhang"]),
    ("wechat", "薇❤️: sweet_candy99", ["sweet_candy99"]),
    ("email", "邮箱：hello.world@outlook.com", ["hello.world@outlook.com"]),
    ("email", "Email：xiao_ming＠163．com", ["xiao_ming＠163．com"]),
    (
        "address",
        "寄到：广东省广州市天河区体育西路189号城建大厦8楼",
        ["广东省广州市天河区体育西路189号城建大厦8楼"],
    ),
    ("address", "送货地址：成都市高新区天府大道北段1700号", ["成都市高新区天府大道北段1700号"]),
    ("address", "我在浙江省杭州市余杭区文一西路969号", ["浙江省杭州市余杭区文一西路969号"]),
    ("idcard", "身份证号码 44030519900101123X", ["44030519900101123X"]),
    ("plate", "车牌号川A·8B8Q8", ["川A·8B8Q8"]),
    ("qq", "我QQ是 1 2 3 4 5 6 7 8 9", ["1 2 3 4 5 6 7 8 9"]),
    ("qq", "加我QQ:3365892014", ["3365892014"]),
    ("ip", "ip地址 114.114.114.114 被墙了", ["114.114.114.114"]),
    ("mac", "mac地址 A4-5E-60-E2-3F-11", ["A4-5E-60-E2-3F-11"]),
    ("mac", "我家wifi的mac是a45e60e23f11", ["a45e60e23f11"]),
    ("bankcard", "卡号：6228 4800 1234 5678 017", ["6228 4800 1234 5678 017"]),
    ("bankcard", "我的银行卡号是 6222 0000 0000 0000", ["6222 0000 0000 0000"]),
    ("ip", "ip:192.168.001.010", ["192.168.001.010"]),
    (
        "ip",
        "IPv6 2409:8a28:2c40:7e10:1c2f:3a4b:5c6d:7e8f",
        ["2409:8a28:2c40:7e10:1c2f:3a4b:5c6d:7e8f"],
    ),
    ("mac", "MAC 3c:5a:b4:12:34:56", ["3c:5a:b4:12:34:56"]),
    ("device_id", "imei: 86-123456-789012-7", ["86-123456-789012-7"]),
    (
        "device_id",
        "OAID:  A1B2C3D4-E5F6-7890-ABCD-EF1234567890",
        ["A1B2C3D4-E5F6-7890-ABCD-EF1234567890"],
    ),
]

HAND_CLEAN = [
    ("counts", "第13集太好看了，播放量已经1380万了"),
    ("counts", "已经有12345678人看过这个视频"),
    ("counts", "点赞破 23,456,789 了！"),
    ("prices", "RTX4090 才卖12999元，太香了"),
    ("prices", "￥1,299.00 包邮"),
    ("dates", "2024-05-01 13:30 开播，不见不散"),
    ("dates", "2024年5月1日晚上8点"),
    ("dates", "时间 2024/05/01 12:30:45"),
    ("versions", "版本 14.2.1.300 更新了什么"),
    ("versions", "升级到 v5.2.1 之后就卡了"),
    ("products", "iPhone 15 Pro Max 256G 和 Mate60 哪个好"),
    ("products", "i7-13700K 配 RTX 4080 够用吗"),
    ("transport", "坐CA1831航班，转G1234次高铁"),
    ("transport", "明天坐 D3125 回家"),
    ("rooms", "住在1203房间，风景不错"),
    ("rooms", "302室的同学出来一下"),
    ("scores", "比分3:2，太刺激了"),
    ("scores", "评分 9.8 分，推荐"),
    ("hotlines", "打10086问问话费"),
    ("hotlines", "客服 400-800-8888 一直占线"),
    ("hotlines", "建行客服95533"),
    ("labels", "微信支付了20元"),
    ("labels", "QQ音乐 2024 年度报告出来了"),
    ("labels", "用微信 Android 版看的"),
    ("places", "北京时间8号晚上开播"),
    ("places", "坐地铁8号线到人民广场"),
    ("places", "上海站 3号出口见"),
    ("mentions", "@小明 13号一起看直播"),
    ("math", "2^31-1 = 2147483647"),
    ("math", "圆周率 3.14159265358"),
    ("places", "我在建国路等你，晚上8点见"),
    ("places", "这条路3号才修好"),
    ("places", "人民路那家火锅店人均128元"),
    ("rooms", "小区门口3号楼前面有个快递柜"),
    ("rooms", "5号楼的灯坏了"),
    ("rooms", "他住302，我住303"),
    ("rooms", "我们宿舍 6栋 404"),
    ("counts", "15号那天直播间人数破了100000"),
    ("counts", "订单号后四位是8823"),
    ("prices", "双11买了3999的电脑"),
    ("numerals", "看了一二三四五集就不想看了"),
    ("numerals", "十一点半开播"),
    ("numerals", "一三五晚上直播"),
    ("numerals", "第一百零八期节目"),
    ("counts", "主播今年28岁，身高165"),
    ("counts", "2023年赚了120万"),
    ("scores", "湖人118比112胜勇士"),
    ("labels", "电话打不通啊"),
    ("labels", "加个微信呗"),
    ("labels", "我的QQ被盗了"),
    ("labels", "微信群里有500人"),
    ("labels", "vx 是什么意思"),
    ("products", "CPU 13600KF 性价比高"),
    ("versions", "Win11 23H2 版本号 22631.3296"),
    ("places", "坐标上海，周末去外滩"),
    ("products", "华为P60 Pro 价格5988"),
    ("hotlines", "联系客服 95588 就行"),
    ("cheering", "哈哈哈哈哈哈哈哈哈哈 233333"),
    ("cheering", "66666666666666"),
    ("cheering", "7777777"),
    ("cheering", "2333333333333333"),
    ("products", "蓝牙耳机型号 WH-1000XM5"),
    ("counts", "北京到上海 1318 公里"),
    ("counts", "身高180体重75公斤"),
    ("dates", "生日是1995年8月12日"),
    ("labels", "ID: 主播小可爱"),
    ("labels", "快递单号我发你私信了"),
    ("products", "这个视频编号 BV1xx411c7mD"),
    ("products", "百度网盘提取码 a1b2"),
    ("dates", "2024-06-18 20:00:00 开抢"),
    ("counts", "播放 1.2亿 次"),
    ("products", "4K 60帧 HDR10+"),
    ("counts", "第三季第12集第35分钟"),
    ("prices", "股价 13.85 元，涨了 2.31%"),
    ("places", "成都市武侯区真好玩"),
    ("places", "朝阳区8号线地铁站"),
    ("mentions", "@主播 你好呀"),
    ("mentions", "#每日打卡# 第365天"),
    ("labels", "meet me at the station at 8"),
    ("products", "AK-47 和 M416 哪个好用"),
    ("dates", "2024-2025赛季"),
    ("products", "1080P 60fps 码率 6000kbps"),
    # Written after the detectors, as a check:
    ("products", "主播你的耳机是索尼WH-1000XM4吗"),
    ("counts", "已三连，投币2个，收藏了"),
    ("dates", "这首歌是2019年的吗，第一次听"),
    ("places", "我在深圳南山区上班，离你很近"),
    ("dates", "今晚8:30准时开播，别迟到"),
    ("lists", "抽奖号码 3 8 15 22 29 33"),
    ("prices", "房价涨到每平米12万了"),
    ("products", "手机型号 Redmi K70 Pro 16+512"),
    ("counts", "这局打了42分钟，太累了"),
    ("labels", "1v1 solo 谁来"),
    ("counts", "在线人数 2.3万，冲鸭"),
    ("labels", "微信里的表情包好可爱"),
    ("labels", "快手ID都改了好几次了"),
    ("places", "上海市中心的房子太贵了"),
    ("counts", "第3章第12节讲得最好"),
    ("counts", "排名第1380位，再接再厉"),
    ("prices", "人民币兑美元 7.1234"),
    ("products", "iPhone16 Pro Max 1TB 售价13999元"),
    ("labels", "身份证丢了怎么补办"),
    ("rooms", "我家住5楼，没有电梯"),
    ("hotlines", "12306抢票太难了"),
    ("transport", "从北京西到广州南 G79 全程8小时"),
    ("prices", "5G套餐每月129元"),
]

CLEAN_TEMPLATES = {
    "counts": [
        "第{n2}集",
        "播放量{n4}万",
        "{n7}人看过",
        "粉丝破{n6}了",
        "已经追到第{n3}话",
        "弹幕{n5}条",
        "{n2}个赞",
    ],
    "prices": ["只要{n4}元", "￥{n4}.{n2}", "原价{n4}现价{n3}", "{n5}块钱买的", "月薪{n5}"],
    "dates": [
        "{y}-{m}-{d} {hh}:{mm}",
        "{y}年{m}月{d}日",
        "{y}/{m}/{d}",
        "{m}月{d}号开播",
        "{hh}:{mm}:{ss} 开始",
        "{y}.{m}.{d} 更新",
        "{y}{m}{d} 的直播",
    ],
    "versions": [
        "版本{n1}.{n1}.{n2}",
        "v{n1}.{n2}.{n1}",
        "Android {n2}",
        "iOS {n2}.{n1}.{n1}",
        "固件 {n1}.{n1}.{n2}.{n3}",
    ],
    "products": [
        "RTX{n4}",
        "iPhone {n2}",
        "小米{n2} Ultra",
        "Mate{n2} Pro",
        "骁龙8 Gen{n1}",
        "{n3}Hz 屏幕",
        "{n4}mAh 电池",
    ],
    "transport": ["航班CA{n4}", "MU{n4} 延误了", "G{n4}次", "D{n4}", "K{n3}次列车", "{n1}号线"],
    "rooms": ["{n3}房间", "{n4}室", "{n2}楼", "{n1}号门", "第{n2}排{n2}号"],
    "scores": ["{n1}:{n1}", "{n2}.{n1}分", "{n3}比{n3}", "胜率{n2}%"],
    "lists": ["1 2 3 4 5 上链接", "{n1} {n1} {n1} 走起", "前{n2}名送礼物", "{n2}-{n2}岁"],
}


def clean(kind: str) -> str:
    def n(width: int) -> str:
        return str(rng.randrange(10 ** (width - 1), 10**width))

    template = rng.choice(CLEAN_TEMPLATES[kind])
    text = template.format(
        n1=n(1),
        n2=n(2),
        n3=n(3),
        n4=n(4),
        n5=n(5),
        n6=n(6),
        n7=n(7),
        y=rng.randrange(2000, 2027),
        m=f"{rng.randrange(1, 13):02d}",
        d=f"{rng.randrange(1, 29):02d}",
        hh=f"{rng.randrange(24):02d}",
        mm=f"{rng.randrange(60):02d}",
        ss=f"{rng.randrange(60):02d}",
    )
    return rng.choice(PREFIXES) + text + rng.choice(["", "，太好看了", "！", " 哈哈", "，主播加油"])


def main() -> None:
    lines = []
    for kind, text, values in HAND_POSITIVE:
        lines.append({"text": text, "kind": kind, "pii": values})
    for kind in TEMPLATES:
        for _ in range(45):
            text, values = positive(kind)
            lines.append({"text": text, "kind": kind, "pii": values})
    positives = len(lines)
    for kind, text in HAND_CLEAN:
        lines.append({"text": text, "kind": f"clean:{kind}", "pii": []})
    kinds = list(CLEAN_TEMPLATES)
    while len(lines) - positives < positives + 20:
        kind = kinds[(len(lines) - positives) % len(kinds)]
        lines.append({"text": clean(kind), "kind": f"clean:{kind}", "pii": []})
    with OUT.open("w", encoding="utf-8") as out:
        for line in lines:
            out.write(json.dumps(line, ensure_ascii=False) + "\n")
    print(f"{OUT}: {positives} texts with personal data, {len(lines) - positives} clean")


if __name__ == "__main__":
    main()
