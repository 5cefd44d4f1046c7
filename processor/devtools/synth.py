"""Synthetic raw events that look like the platform's: many devices that send many events,
identifiers in the spellings real clients use, consent changes, and a few malformed records.

Deterministic for a seed, so demos, tests and benchmarks can be repeated.
"""

from __future__ import annotations

import itertools
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import orjson

RAW_BEHAVIOUR = "raw.behaviour"
RAW_DEVICE = "raw.device"
CONSENT = "consent"

# (city, lat, lon, an address block there: first two octets, range of the third), the
# blocks as the shipped IP data places them (tests/unit/test_synth_geo.py keeps them there).
_CITIES = (
    ("Chongqing", 29.557, 106.577, (61, 128, 128, 255)),
    ("Chengdu", 30.657, 104.066, (118, 112, 0, 255)),
    ("Beijing", 39.904, 116.407, (123, 112, 0, 255)),
    ("Shanghai", 31.230, 121.474, (101, 80, 0, 255)),
    ("Guangzhou", 23.129, 113.264, (113, 108, 128, 239)),
    # north of the centre (22.543): the GPS jitter around it crossed into Hong Kong
    ("Shenzhen", 22.620, 114.058, (183, 14, 0, 255)),
    ("Hangzhou", 30.274, 120.155, (60, 191, 0, 127)),
    ("Wuhan", 30.593, 114.305, (59, 172, 0, 255)),
    ("Xi'an", 34.341, 108.940, (113, 140, 64, 159)),
    ("Suzhou", 31.299, 120.585, (58, 208, 0, 255)),
)
_BRANDS = (("Xiaomi", "2211133C"), ("HUAWEI", "ALN-AL00"), ("OPPO", "PGJM10"), ("vivo", "V2254A"))
_CARRIERS = ("China Mobile", "China Unicom", "China Telecom")
_EVENT_TYPES = (
    ("view", 40), ("click", 15), ("like", 12), ("live_enter", 8), ("live_leave", 7),
    ("comment", 5), ("search", 4), ("follow", 3), ("share", 2), ("gift", 2),
    ("publish", 1), ("login", 1),
)  # fmt: skip
_EVENT_NAMES = tuple(name for name, _ in _EVENT_TYPES)
_EVENT_CUM_WEIGHTS = tuple(itertools.accumulate(weight for _, weight in _EVENT_TYPES))
_QUERIES = ("火锅 教程", "重庆 夜景", "篮球 直播", "手机 评测", "猫咪", "联系我 13812345678")
_TEXTS = ("好看！", "主播加油", "哈哈哈哈", "求链接", "加我微信 wx_123 电话 139-1234-5678", "666")


def _luhn_digit(body: str) -> str:
    total = 0
    for i, ch in enumerate(reversed(body)):
        d = int(ch)
        if i % 2 == 0:
            d *= 2
            d = d - 9 if d > 9 else d
        total += d
    return str((10 - total % 10) % 10)


@dataclass(slots=True)
class _Device:
    # Android 10+ hides IMEI, MEID, IMSI and ICCID from apps: most devices send none.
    imei: str | None
    meid: str | None
    imsi: str | None
    iccid: str | None
    oaid: str
    android_id: str
    mac: str
    brand: str
    model: str
    bssid: str
    ssid: str


@dataclass(slots=True)
class _User:
    user_id: str
    phone: str
    devices: list[_Device]
    city: int
    home_ip: tuple[int, int, int]


class _World:
    def __init__(self, rng: random.Random, users: int) -> None:
        self.rng = rng
        self.users = [self._user(i) for i in range(users)]

    def _device(self) -> _Device:
        rng = self.rng
        body = "35" + "".join(rng.choice("0123456789") for _ in range(12))
        imei = body + _luhn_digit(body)
        brand, model = rng.choice(_BRANDS)
        limit_ad_tracking = rng.random() < 0.1
        oaid = (
            "00000000-0000-0000-0000-000000000000"
            if limit_ad_tracking
            else str(uuid.UUID(int=rng.getrandbits(128)))
        )
        mac_bytes = [rng.randrange(256) for _ in range(6)]
        mac = ":".join(f"{b:02X}" for b in mac_bytes)
        if rng.random() < 0.3:
            mac = "02:00:00:00:00:00"  # what Android 6+ reports to apps
        legacy = rng.random() < 0.25  # Android 9 or older, or a privileged app
        cdma = legacy and rng.random() < 0.2
        return _Device(
            imei=imei if legacy else None,
            meid="A0" + "".join(rng.choice("0123456789ABCDEF") for _ in range(12))
            if cdma
            else None,
            imsi="46000" + "".join(rng.choice("0123456789") for _ in range(10)) if legacy else None,
            iccid="8986" + "".join(rng.choice("0123456789") for _ in range(16)) if legacy else None,
            oaid=oaid,
            android_id=f"{rng.getrandbits(64):016x}",
            mac=mac,
            brand=brand,
            model=model,
            bssid=":".join(f"{rng.randrange(256):02x}" for _ in range(6)),
            ssid=rng.choice(("Home-5G", "TP-LINK_3F2A", "ChinaNet-xk9d", "CMCC-Home")),
        )

    def _user(self, i: int) -> _User:
        rng = self.rng
        city = rng.randrange(len(_CITIES))
        a, b, low, high = _CITIES[city][3]
        return _User(
            user_id=f"u{10_000_000 + i * 7919 % 9_000_000}",
            phone="+86 138" + "".join(rng.choice("0123456789") for _ in range(8)),
            devices=[self._device() for _ in range(1 if rng.random() < 0.85 else 2)],
            city=city,
            # one randrange(256) as before the blocks had ranges: the streams of a seed stay
            # the same apart from the third octet
            home_ip=(a, b, low + rng.randrange(256) % (high - low + 1)),
        )


def _spell_imei(rng: random.Random, imei: str | None) -> str | None:
    if imei is None:
        return None
    choice = rng.random()
    if choice < 0.1:
        return f"{imei[:2]} {imei[2:8]} {imei[8:14]} {imei[14]}"
    if choice < 0.15:
        return f"{imei[:8]}-{imei[8:14]}-{imei[14]}"
    return imei


def _spell_mac(rng: random.Random, mac: str) -> str:
    choice = rng.random()
    if choice < 0.2:
        return mac.lower().replace(":", "-")
    if choice < 0.3:
        bare = mac.replace(":", "").lower()
        return f"{bare[:4]}.{bare[4:8]}.{bare[8:]}"
    return mac


def _spell_ip(rng: random.Random, ip: str) -> str:
    return f"::ffff:{ip}" if rng.random() < 0.1 else ip


def _event(
    rng: random.Random, user: _User, seq: int, now_ms: int, device_report: bool
) -> dict[str, object]:
    device = rng.choice(user.devices)
    city, lat, lon, _ = _CITIES[user.city]
    ip = "{}.{}.{}.{}".format(*user.home_ip, rng.randrange(1, 255))
    net_type = rng.choice(("wifi", "wifi", "4g", "5g"))
    device_block = {
        "imei": _spell_imei(rng, device.imei),
        "meid": device.meid,
        "imsi": device.imsi,
        "iccid": device.iccid,
        "oaid": device.oaid,
        "android_id": device.android_id,
        "mac": _spell_mac(rng, device.mac),
        "brand": device.brand,
        "model": device.model,
        "os": "Android",
        "os_version": rng.choice(("12", "13", "14")),
        "app_version": "5.2.1",
    }
    network: dict[str, object] = {
        "ip": _spell_ip(rng, ip),
        "type": net_type,
        "carrier": rng.choice(_CARRIERS),
    }
    if net_type == "wifi":
        network.update(ssid=device.ssid, bssid=device.bssid)
    else:
        network["cell"] = {
            "mcc": 460,
            "mnc": 0,
            "lac": rng.randrange(1, 65535),
            "cid": rng.randrange(1, 268435455),
        }
    event: dict[str, object] = {
        "schema": "device/1" if device_report else "behaviour/1",
        "event_id": f"e-{seq:012d}",
        "event_time": now_ms + seq * 7,
        "event_type": "device_report"
        if device_report
        else rng.choices(_EVENT_NAMES, cum_weights=_EVENT_CUM_WEIGHTS)[0],
        "user_id": user.user_id,
        "device": {k: v for k, v in device_block.items() if v is not None},
        "network": network,
        "location": {
            "lat": round(lat + rng.uniform(-0.08, 0.08), 6),
            "lon": round(lon + rng.uniform(-0.08, 0.08), 6),
            "accuracy_m": rng.choice((5, 12, 30, 65)),
            "source": rng.choice(("gps", "wlan", "cell")),
        },
    }
    if rng.random() < 0.4:
        del event["location"]  # no location permission
    if rng.random() < 0.2:
        event["phone"] = user.phone
    if not device_report:
        event["payload"] = _payload(rng, str(event["event_type"]), city)
    return event


def _payload(rng: random.Random, event_type: str, city: str) -> dict[str, object]:
    payload: dict[str, object] = {
        "item_id": f"v-{rng.randrange(100_000)}",
        "room_id": f"r-{rng.randrange(500)}",
        "position": rng.randrange(50),
        "duration_ms": rng.randrange(100, 60_000),
    }
    if event_type == "search":
        payload["query"] = rng.choice(_QUERIES)
    elif event_type == "comment":
        payload["text"] = rng.choice(_TEXTS)
    elif event_type == "gift":
        payload["amount_cents"] = rng.choice((100, 600, 3000, 52000))
    elif event_type == "follow":
        payload["target_user_id"] = f"u{rng.randrange(10_000_000, 19_000_000)}"
    elif event_type == "share":
        payload["text"] = f"分享自{city}"
    return payload


def _consent(
    rng: random.Random, user: _User, now_ms: int, account: str = "active"
) -> dict[str, object]:
    record: dict[str, object] = {
        "schema": "consent/1",
        "user_id": user.user_id,
        "event_time": now_ms,
        "personalized_recommendation": rng.random() < 0.9,
        "personalized_ads": rng.random() < 0.6,
        "precise_location": rng.random() < 0.5,
        "age_band": rng.choices(("adult", "minor", "child", "unknown"), weights=(80, 8, 4, 8))[0],
        "account": account,
    }
    if record["age_band"] == "child":  # half of the children have a guardian's consent
        # (from the id, not the generator, so the rest of the stream stays as it was)
        record["guardian_consent"] = user.user_id[-1] in "02468"
    return record


_MALFORMED: tuple[bytes, ...] = (
    b'{"schema": "behaviour/1", "event_id": "e-bad", "event_time": "yesterday"',  # truncated
    b"\xff\xfe not utf-8 at all",
    b'{"schema": "behaviour/9", "event_id": "e-x", "event_time": 1, "event_type": "view"}',
    b'{"schema": "behaviour/1", "event_id": "e-y", "event_time": 1764316800123, "event_type": "teleport"}',
    b'{"schema": "behaviour/1", "event_id": "e-z", "event_time": 1764316800123, "event_type": "view",'
    b' "device": {"imei": 356938035643809}}',
    b"[1, 2, 3]",
    b"",
)


def generate(
    n: int,
    *,
    seed: int = 0,
    users: int = 2000,
    malformed: float = 0.002,
    consent_share: float = 0.7,
    start_ms: int = 1_764_316_800_000,
) -> Iterator[tuple[str, bytes | None, bytes]]:
    """Yield ``n`` raw records as (source topic, raw key, raw value).

    Consent records for ``consent_share`` of the users come first (as a compacted topic
    would deliver them), then behaviour and device events from a skewed user population
    (a few users send most events), with consent changes and account deletions mixed in.
    """
    rng = random.Random(seed)
    world = _World(rng, users)
    dumps = orjson.dumps
    emitted = 0
    for user in world.users:
        if emitted >= n:
            return
        if rng.random() < consent_share:
            yield CONSENT, user.user_id.encode(), dumps(_consent(rng, user, start_ms))
            emitted += 1
    cum_weights = list(
        itertools.accumulate(1.0 / (rank + 1) ** 0.8 for rank in range(len(world.users)))
    )
    seq = 0
    while emitted < n:
        emitted += 1
        seq += 1
        roll = rng.random()
        if roll < malformed:
            yield RAW_BEHAVIOUR, None, rng.choice(_MALFORMED)
            continue
        user = rng.choices(world.users, cum_weights=cum_weights)[0]
        if roll < malformed + 0.002:
            account = "deleted" if rng.random() < 0.2 else "active"
            yield (
                CONSENT,
                user.user_id.encode(),
                dumps(_consent(rng, user, start_ms + seq * 7, account)),
            )
            continue
        device_report = roll > 0.9
        event = _event(rng, user, seq, start_ms, device_report)
        anonymous = rng.random() < 0.05
        if anonymous:
            event["user_id"] = None
        device = event["device"]
        assert isinstance(device, dict)  # noqa: S101 - built above
        key = str(device["android_id"]) if anonymous else user.user_id
        yield (RAW_DEVICE if device_report else RAW_BEHAVIOUR), key.encode(), dumps(event)
