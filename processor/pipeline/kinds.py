"""Identifier kinds: the kind is mixed into every HMAC so equal digits of different kinds
never share a pseudonym."""

from __future__ import annotations

from enum import StrEnum


class IdKind(StrEnum):
    USER_ID = "user_id"
    IMEI = "imei"
    MEID = "meid"
    IMSI = "imsi"
    ICCID = "iccid"
    OAID = "oaid"
    ANDROID_ID = "android_id"
    MAC = "mac"
    IP = "ip"
    PHONE = "phone"
    SSID = "ssid"
    BSSID = "bssid"
    CELL = "cell"
    EVENT_ID = "event_id"  # not a person's: a client-chosen tag, opaque, never a placeholder
