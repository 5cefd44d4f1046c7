"""The pure pipeline: raw bytes (+ consent state) -> routed records or one quarantine record.

decode -> validate -> consent -> pseudonymize -> coarsen -> project -> route, with no Kafka
import: the faust worker and the `transform` command feed the same ``Pipeline.process``.
Fail closed: unknown fields are dropped, a missing key or any unexpected error quarantines
the record, and nothing reaches a clean route without its plan's pseudonyms.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from functools import lru_cache
from typing import Any

import orjson

from keys import Domain, Key, Keyring
from processor.binding import (
    DEFAULT_TOPIC_SCHEMAS,
    TRUSTED_SOURCE,
    TopicSchemas,
    admitted_schemas,
    parse_topic_schemas,
)
from processor.canonical import canonicalize, is_limit_ad_tracking, parse_ip
from processor.consent import Account, AgeBand, Consent, ConsentState, MemoryConsentState
from processor.errors import RecordError
from processor.geo import check_coordinates, truncate
from processor.kinds import IdKind
from processor.location import Locator, NullLocator
from processor.outcome import Outcome, Route, Routed, SourceRef
from processor.policy import Policy, RoutePlan, compile_policy
from processor.project import compile_projector
from processor.pseudonym import DEFAULT_CACHE_SIZE, Pseudonymizer
from processor.quarantine import DEFAULT_MAX_KEY_BYTES, Sealer, sealable_bytes
from processor.scrub import DEFAULT_MAX_TEXT_CHARS, truncate_text
from processor.validate import Validator, content_checks
from schemas import load_contract, load_roles

DEFAULT_MAX_RECORD_BYTES = 1_048_576
_CONSENT_SCHEMA = "consent/1"
_EVENT_SCHEMAS = ("behaviour/1", "device/1")
_ERASURE_SCHEMA = "erasure/1"
_BOM = b"\xef\xbb\xbf"
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
_OUT_STAT_KEYS = {route: f"out:{route}" for route in Route}
_DEFAULT_BINDING = parse_topic_schemas(DEFAULT_TOPIC_SCHEMAS)
_NOTHING: frozenset[str] = frozenset()


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class _RouteRuntime:
    """A route plan bound to its pseudonymizer, with one compiled projector per variant."""

    __slots__ = ("plan", "projectors", "pseudonymizer")

    def __init__(self, plan: RoutePlan, pseudonymizer: Pseudonymizer, policy_version: str) -> None:
        self.plan = plan
        self.pseudonymizer = pseudonymizer
        headers = (
            ("schema", plan.schema.encode()),
            ("policy", policy_version.encode()),
            ("key-ids", pseudonymizer.key_id.encode()),
        )
        self.projectors = {
            name: compile_projector(
                plan,
                name,
                blocks,
                pseudonymizer=pseudonymizer,
                policy_version=policy_version,
                headers=headers,
            )
            for name, blocks in plan.variants().items()
        }


class Pipeline:
    """Turns one raw record into its outcome. Not thread-safe; one per worker task."""

    next_key_change_ms: int  # wall clock (ms) of the next scheduled key change; 0: check now

    def __init__(
        self,
        keyring: Keyring,
        *,
        consent: ConsentState | None = None,
        locator: Locator | None = None,
        policy: Policy | None = None,
        max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES,
        max_text_chars: int = DEFAULT_MAX_TEXT_CHARS,
        cache_size: int = DEFAULT_CACHE_SIZE,
        clock: Callable[[], int] = _now_ms,
        topic_schemas: TopicSchemas | None = None,
        max_key_bytes: int = DEFAULT_MAX_KEY_BYTES,
    ) -> None:
        self.policy = policy or compile_policy()
        self.consent: ConsentState = consent if consent is not None else MemoryConsentState()
        self.locator: Locator = locator or NullLocator()
        self.max_record_bytes = max_record_bytes
        self.max_key_bytes = max_key_bytes
        self.max_text_chars = max_text_chars
        # Free-text fields as (block or None, name, stat key): cut to max_text_chars before
        # scrubbing, so the scrubber's cost per event is bounded.
        self._free_text = tuple(
            (block or None, name, "text_truncated:" + path)
            for path, role in load_roles().items()
            if role.role == "free_text"
            for block, _, name in [path.rpartition(".")]
        )
        self.stats: Counter[str] = Counter()
        self._clock = clock
        self._cache_size = cache_size
        self.use_keyring(keyring)
        now = clock()
        self._keys_in_force = {d: keyring.in_force(d, now) for d in self.policy.domains}
        self.pseudonymizers = {
            d: Pseudonymizer(key, cache_size) for d, key in self._keys_in_force.items()
        }
        self._routes = tuple(
            _RouteRuntime(plan, self.pseudonymizers[plan.domain], self.policy.version)
            for plan in self.policy.routes
        )
        self._erasure_pseudonymizers: dict[Domain, list[Pseudonymizer]] = {}
        self.follow_schedule(now)
        self._coarsen = any(plan.coarsen for plan in self.policy.routes)
        roles = load_roles()
        self._validators = {
            s: Validator(load_contract(s), content_checks(load_contract(s), roles))
            for s in (*_EVENT_SCHEMAS, _CONSENT_SCHEMA)
        }
        self._admitted = admitted_schemas(
            topic_schemas if topic_schemas is not None else _DEFAULT_BINDING, self._validators
        )
        # Names the projectors read that a contract lacks (a device report has no payload):
        # the validator never checked them, so they are dropped before projection.
        read = {
            name if block is None else block
            for plan in self.policy.routes
            for blocks in plan.variants().values()
            for block, ops in blocks
            for name in ([op[0] for op in ops] if block is None else [block])
        }
        self._foreign = {
            s: tuple(sorted(read - set(load_contract(s).fields))) for s in _EVENT_SCHEMAS
        }
        self._user_key = lru_cache(maxsize=cache_size)(self._canonical_user)
        self._place_of_prefix = lru_cache(maxsize=cache_size)(self._place_of_ip)
        self._place_of_other_ip = lru_cache(maxsize=cache_size)(self._place_of_ip)
        self._erasure_headers = (
            ("schema", _ERASURE_SCHEMA.encode()),
            ("policy", self.policy.version.encode()),
        )
        self._stage = "decode"

    # -- keys ------------------------------------------------------------------------------

    def follow_schedule(self, now_ms: int) -> list[str]:
        """Bring the keys in line with the keyring's rotation schedule at ``now_ms`` (wall
        clock at processing, so a replay of old events never brings an old key back);
        returns the new key ids. Cheap when nothing is due: callers may call it per batch."""
        if now_ms < self.next_key_change_ms:
            return []
        keyring = self._keyring
        changed = []
        for domain, current in list(self._keys_in_force.items()):
            key = keyring.in_force(domain, now_ms)
            if key != current:  # material too: a keyring replaced with `keys init --force`
                self.use_key(key)
                changed.append(key.key_id)
        # Erasure names the user under every key still in the ring, and under the scheduled
        # keys accepted now (the previous period's during the overlap): downstream may hold
        # data made under any of them. Uncached: erasures are rare.
        self._erasure_pseudonymizers = {}
        for domain in (Domain.RECOMMENDATION, Domain.AD_ANALYTICS):
            keys = {k.key_id: k for k in keyring.accepted(domain, now_ms)}
            keys.update((k.key_id, k) for k in keyring.keys_for(domain) if k.key_id not in keys)
            self._erasure_pseudonymizers[domain] = [
                Pseudonymizer(k, cache_size=0) for k in keys.values()
            ]
        schedule = keyring.schedule
        self.next_key_change_ms = (
            schedule.next_change_ms(now_ms) if schedule is not None else 2**63 - 1
        )
        return changed

    def use_keyring(self, keyring: Keyring) -> None:
        """Serve ``keyring`` from now on (at construction, and for a reloaded file): the
        quarantine key at once, the pseudonym keys at the next :meth:`follow_schedule`, which
        swaps those that changed."""
        self._keyring = keyring
        self._sealer = Sealer(
            keyring,
            self.policy.version,
            max_sealed_bytes=sealable_bytes(self.max_record_bytes),
            max_key_bytes=self.max_key_bytes,
        )
        self.next_key_change_ms = 0

    def key_in_force(self, domain: Domain) -> Key:
        """The key ``domain``'s pseudonyms are made with now (the metrics show its age)."""
        return self._keys_in_force[domain]

    def use_key(self, key: Key) -> None:
        """Make ``key`` its domain's pseudonym key: a fresh pseudonymizer (its caches hold
        the old key's pseudonyms) and recompiled projectors for that domain's routes. The
        statistics counter and the consent state are kept."""
        pseudonymizer = Pseudonymizer(key, self._cache_size)
        self._keys_in_force[key.domain] = key
        self.pseudonymizers[key.domain] = pseudonymizer
        self._routes = tuple(
            _RouteRuntime(r.plan, pseudonymizer, self.policy.version)
            if r.plan.domain == key.domain
            else r
            for r in self._routes
        )

    # -- entry point ---------------------------------------------------------------------

    def process(self, raw: bytes, source: SourceRef, key: bytes | None = None) -> Outcome:
        """Exactly one outcome per input: records, a quarantine record, or a suppression.

        ``source.topic`` is the logical input topic the record was read from: it decides
        which schemas the record may have (``topic_schemas``, see processor.binding)."""
        self._stage = "decode"
        try:
            outcome = self._process(raw, source.topic)
        except RecordError as exc:
            return self._quarantine(exc, source, key, raw)
        except Exception as exc:
            error = RecordError("internal_error", self._stage, type(exc).__name__)
            return self._quarantine(error, source, key, raw)
        stats = self.stats
        stat_keys = _OUT_STAT_KEYS
        for record in outcome.records:
            stats[stat_keys[record.route]] += 1
        if outcome.suppressed:
            stats["suppressed:" + outcome.suppressed] += 1
        return outcome

    def _quarantine(
        self, error: RecordError, source: SourceRef, key: bytes | None, raw: bytes
    ) -> Outcome:
        self.stats["quarantined:" + error.code] += 1
        record = self._sealer.record(error, source, key, raw, self._clock())
        return Outcome([record], quarantined=error.code)

    def _process(self, raw: bytes, topic: str) -> Outcome:
        event = self._decode(raw)
        self._stage = "validate"
        schema = event.get("schema")
        if type(schema) is not str or (validator := self._validators.get(schema)) is None:
            raise RecordError(
                "unknown_schema",
                "validate",
                f"'schema' must be one of {', '.join(self._validators)}",
            )
        # The topic, not the record, says what a record may be (an app writing consent/1
        # to raw.behaviour must not change anyone's consent).
        if topic != TRUSTED_SOURCE and schema not in self._admitted.get(topic, _NOTHING):
            raise RecordError(
                "schema_not_allowed_on_topic", "validate", f"{schema} is not admitted on {topic}"
            )
        for dropped in validator(event):
            self.stats["dropped_field:" + dropped] += 1
        if schema == _CONSENT_SCHEMA:
            self._stage = "consent"
            return self._apply_consent(event)
        for name in self._foreign[schema]:
            if event.pop(name, None) is not None:
                self.stats["dropped_field:" + name + ":not_in_contract"] += 1
        return self._route_event(event, schema)

    def _decode(self, raw: bytes) -> dict[str, Any]:
        if len(raw) > self.max_record_bytes:
            raise RecordError(
                "too_large", "decode", f"{len(raw)} bytes, limit {self.max_record_bytes}"
            )
        if raw.startswith(_BOM):
            raw = raw[len(_BOM) :]
        try:
            event = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError as utf_exc:
                hint = "UTF-16 byte-order mark; " if raw[:2] in _UTF16_BOMS else ""
                raise RecordError(
                    "bad_encoding", "decode", f"{hint}invalid UTF-8 at byte {utf_exc.start}"
                ) from exc
            if b"\x00" in raw:  # JSON in UTF-8 never holds a NUL byte; ASCII in UTF-16 does
                raise RecordError(
                    "bad_encoding", "decode", "NUL bytes: UTF-16 or UTF-32 text, not UTF-8"
                ) from exc
            code = "empty" if not raw.strip() else "bad_json"
            raise RecordError(
                code, "decode", f"at char {exc.pos}" if code == "bad_json" else ""
            ) from exc
        if type(event) is not dict:
            raise RecordError("not_object", "decode", f"top level is a JSON {type(event).__name__}")
        return event

    # -- consent ---------------------------------------------------------------------------

    @staticmethod
    def _canonical_user(raw: str | int) -> str | None:
        return canonicalize(IdKind.USER_ID, raw)

    def _apply_consent(self, event: dict[str, Any]) -> Outcome:
        user = self._user_key(event["user_id"])
        if user is None:
            raise RecordError("bad_value", "consent", "user_id is a placeholder")
        new = Consent(
            personalized_recommendation=event.get("personalized_recommendation") is True,
            personalized_ads=event.get("personalized_ads") is True,
            precise_location=event.get("precise_location") is True,
            age_band=AgeBand(event.get("age_band") or AgeBand.UNKNOWN),
            account=Account(event.get("account") or Account.ACTIVE),
            event_time=event["event_time"],
        )
        previous = self.consent.get(user)
        if previous is not None and new.event_time < previous.event_time:
            return Outcome([], suppressed="consent_stale")
        self.consent.put(user, new)
        if new.erased and (previous is None or not previous.erased):
            return Outcome([self._erasure(user, new)])
        return Outcome([], suppressed="consent_update")

    def _erasure(self, user: str, consent: Consent) -> Routed:
        pseudonyms = {
            domain.value: [p.of_canonical(IdKind.USER_ID, user) for p in pseudonymizers]
            for domain, pseudonymizers in self._erasure_pseudonymizers.items()
        }
        key_ids = [p.key_id for ps in self._erasure_pseudonymizers.values() for p in ps]
        body = {
            "schema": _ERASURE_SCHEMA,
            "policy": self.policy.version,
            "account": consent.account.value,
            "event_time": consent.event_time,
            "key_ids": key_ids,
            "pseudonyms": pseudonyms,
        }
        headers = (*self._erasure_headers, ("key-ids", ",".join(key_ids).encode()))
        return Routed(
            Route.ERASURE, pseudonyms[Domain.RECOMMENDATION.value][0], orjson.dumps(body), headers
        )

    # -- events ----------------------------------------------------------------------------

    def _route_event(self, event: dict[str, Any], schema: str) -> Outcome:
        self._stage = "consent"
        raw_user = event.get("user_id")
        user = self._user_key(raw_user) if raw_user is not None else None
        consent = self.consent.get(user) if user is not None else None
        if consent is None:
            consent = self.policy.without_consent
        elif consent.erased:
            return Outcome([], None, "account_deleted", event["event_time"])
        device = event.get("device")
        limit_ad_tracking = device is not None and is_limit_ad_tracking(device.get("oaid"))
        self._truncate_texts(event)
        self._stage = "coarsen"
        location = self._locate(event, consent) if self._coarsen else None
        self._stage = "pseudonymize"
        records = []
        for runtime in self._routes:
            variant = runtime.plan.variant_for(consent, limit_ad_tracking)
            if variant is not None:
                records.append(runtime.projectors[variant](event, schema, location))
        return Outcome(records, None, None, event["event_time"])

    def _truncate_texts(self, event: dict[str, Any]) -> None:
        limit = self.max_text_chars
        for block, name, stat in self._free_text:
            holder = event.get(block) if block is not None else event
            if holder:
                text = holder.get(name)
                if type(text) is str and len(text) > limit:
                    holder[name] = truncate_text(text, limit)
                    self.stats[stat] += 1

    def _ip_place(self, ip: str) -> tuple[dict[str, Any] | None, bool]:
        """(coarse place, unusable?) for an address, cached by its /24 for plain IPv4 text
        (a user's address changes within its /24 far more often than the /24 does)."""
        head, dot, last = ip.rpartition(".")
        if dot and ":" not in ip and last.isdigit() and len(last) <= 3 and int(last) <= 255:
            return self._place_of_prefix(head + ".0")
        return self._place_of_other_ip(ip)

    def _place_of_ip(self, ip: str) -> tuple[dict[str, Any] | None, bool]:
        address = parse_ip(ip)
        if address is None:
            return None, True
        place = self.locator.from_ip(truncate(address))
        return (place.to_json("ip") if place is not None else None), False

    def _locate(self, event: dict[str, Any], consent: Consent) -> dict[str, Any] | None:
        if consent.precise_location:
            loc = event.get("location")
            if loc:
                lat, lon = loc.get("lat"), loc.get("lon")
                if lat is not None and lon is not None:
                    checked = check_coordinates(lat, lon)
                    if isinstance(checked, str):
                        self.stats["location_invalid:" + checked] += 1
                    elif (gps_place := self.locator.from_gps(*checked)) is not None:
                        self.stats["location:gps"] += 1
                        return gps_place.to_json("gps")
        network = event.get("network")
        ip = network.get("ip") if network else None
        if ip:
            place, problem = self._ip_place(ip)
            if problem:
                self.stats["location_invalid:ip"] += 1
                return None
            if place is not None:
                self.stats["location:ip"] += 1
                return place
        self.stats["location:none"] += 1
        return None
