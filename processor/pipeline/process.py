"""The pure pipeline: raw bytes (+ consent state) -> routed records or one quarantine record.

decode -> validate -> consent -> devices -> scrub (cut free text) -> coarsen -> project
(pseudonymize, scrub, band, encode) -> route, with no Kafka import: the faust worker and the
`transform` command feed the same ``Pipeline.process``. Fail closed: unknown fields are
dropped, a missing key or any unexpected error quarantines the record (an unexpected one as
``internal_error`` of the stage it hit, see processor.pipeline.failure), and nothing reaches a
clean route without its plan's pseudonyms.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from functools import lru_cache
from typing import Any, NamedTuple

import orjson

from keys import Domain, Key, Keyring
from processor.errors import RecordError
from processor.pipeline.binding import (
    DEFAULT_TOPIC_SCHEMAS,
    TRUSTED_SOURCE,
    TopicSchemas,
    admitted_schemas,
    parse_topic_schemas,
)
from processor.pipeline.canonical import canonicalize, is_limit_ad_tracking, parse_ip
from processor.pipeline.codegen import source_of
from processor.pipeline.consent import (
    Account,
    AgeBand,
    Consent,
    ConsentState,
    MemoryConsentState,
    next_consent,
)
from processor.pipeline.devices import (
    DEFAULT_MAX_DEVICES,
    DEFAULT_RETENTION_MS,
    DeviceLink,
    DeviceState,
    LinkHasher,
    MemoryDeviceState,
    merge_links,
)
from processor.pipeline.failure import Logged, internal_error
from processor.pipeline.geo import check_coordinates, truncate
from processor.pipeline.kinds import IdKind
from processor.pipeline.location import Locator, NullLocator
from processor.pipeline.outcome import Outcome, Route, Routed, SourceRef
from processor.pipeline.policy import Action, Policy, RoutePlan, compile_policy
from processor.pipeline.project import Projector, cell_string, compile_projector
from processor.pipeline.pseudonym import DEFAULT_CACHE_SIZE, Pseudonymizer
from processor.pipeline.quarantine import DEFAULT_MAX_KEY_BYTES, Sealer, sealable_bytes
from processor.pipeline.scrub import DEFAULT_MAX_TEXT_CHARS, truncate_text
from processor.pipeline.validate import Validator, content_checks
from schemas import load_contract, load_roles

DEFAULT_MAX_RECORD_BYTES = 1_048_576
_CONSENT_SCHEMA = "consent/1"
_EVENT_SCHEMAS = ("behaviour/1", "device/1")
_ERASURE_SCHEMA = "erasure/2"
_ERASURE_ROUTES = {
    Domain.RECOMMENDATION: Route.ERASURE_RECOMMENDATION,
    Domain.AD_ANALYTICS: Route.ERASURE_AD_ANALYTICS,
}
_BOM = b"\xef\xbb\xbf"
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
_OUT_STAT_KEYS = {route: f"out:{route}" for route in Route}
_DEFAULT_BINDING = parse_topic_schemas(DEFAULT_TOPIC_SCHEMAS)
_NOTHING: frozenset[str] = frozenset()
_CELL = IdKind.CELL  # read once: an enum member's class attribute is slow in Python 3.11
# A NamedTuple's own constructor is a Python function; on the hot path its instances are
# built by tuple.__new__ with every field given (about half the cost).
_new = tuple.__new__


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


NAMED_DOMAINS = (Domain.RECOMMENDATION, Domain.AD_ANALYTICS)  # the domains of pseudonyms


def keys_naming(keyring: Keyring, domain: Domain, now_ms: int) -> list[Key]:
    """The keys under which a person is named (erasure notices, subject lookups): those
    accepted at ``now_ms`` (in force first; the previous period's during an overlap), then
    every other key still in the ring: downstream may hold data made under any of them."""
    keys = {k.key_id: k for k in keyring.accepted(domain, now_ms)}
    keys.update((k.key_id, k) for k in keyring.keys_for(domain) if k.key_id not in keys)
    return list(keys.values())


# What decides an event's routes: (account, age band, guardian consent, personalized
# recommendation, personalized ads, precise location) of its user's consent.
_ConsentKey = tuple[Account, AgeBand, bool, bool, bool, bool]


class _Routing(NamedTuple):
    """An event's routes under one consent: whether GPS may be used, and the projectors
    that make its records, as usual and when the OAID says limit ad tracking."""

    precise_location: bool
    projectors: tuple[Projector, ...]
    if_limit_ad_tracking: tuple[Projector, ...]


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
    _link_pseudonymizers: tuple[tuple[str, list[Pseudonymizer]], ...]  # see follow_schedule

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
        devices: DeviceState | None = None,
        device_link_retention_ms: int = DEFAULT_RETENTION_MS,
        max_devices_per_user: int = DEFAULT_MAX_DEVICES,
    ) -> None:
        self.policy = policy or compile_policy()
        self.consent: ConsentState = consent if consent is not None else MemoryConsentState()
        self.devices: DeviceState = devices if devices is not None else MemoryDeviceState()
        self._link_retention_ms = device_link_retention_ms
        self._max_devices = max_devices_per_user
        # a link already stored is written again only when half its retention has passed
        self._recent_links: dict[tuple[str, IdKind, Any], int] = {}
        # (user, the event's device identifiers) -> when all of them were last linked
        self._recent_devices: dict[tuple[Any, ...], int] = {}
        self.locator: Locator = locator or NullLocator()
        self.max_record_bytes = max_record_bytes
        self.max_key_bytes = max_key_bytes
        self.max_text_chars = max_text_chars
        # Free-text fields as (block or None, name, stat key): cut to max_text_chars before
        # scrubbing, so the scrubber's cost per event is bounded.
        free_text: dict[str | None, list[tuple[str, str]]] = {}
        for path, role in load_roles().items():
            if role.role == "free_text":
                block, _, name = path.rpartition(".")
                free_text.setdefault(block or None, []).append((name, "text_truncated:" + path))
        self._free_text = tuple((block, tuple(names)) for block, names in free_text.items())
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
        self._routing: dict[_ConsentKey | None, _Routing | str] = {}
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
        # the generated functions themselves: the hot path skips the wrapper's call
        self._validate = {s: v.function for s, v in self._validators.items()}
        self._user_key = lru_cache(maxsize=cache_size)(self._canonical_user)
        # Identifier fields whose pseudonym may appear in an output: the device ones are
        # linked to the user; all but the actor's user_id are checked against the erased.
        pseudonymized = {
            (block, op[0], op[2])
            for plan in self.policy.routes
            for block, ops in plan.full
            for op in ops
            if op[1] is Action.PSEUDONYM and op[2] is not None
        }
        # (event ids are a client's tag per event, never a person's: not linked, not erased)
        checked = sorted(
            (
                f
                for f in pseudonymized
                if f[:2] != (None, "user_id") and f[2] is not IdKind.EVENT_ID
            ),
            key=lambda f: (f[0] or "", f[1]),
        )
        by_block: dict[str | None, list[tuple[str, IdKind]]] = {}
        for holder, field, kind in checked:
            by_block.setdefault(holder, []).append((field, kind))
        # per block: its checked fields, and their names when all make hashable keys (a cell
        # tower is a dict) for ``_clean``
        self._checked = tuple(
            (
                block,
                tuple(fields),
                tuple(name for name, _ in fields)
                if all(kind is not IdKind.CELL for _, kind in fields)
                else None,
            )
            for block, fields in by_block.items()
        )
        # (block, its checked identifiers as sent) found not erased, while the device state
        # ``_clean_of`` had ``_clean_at`` erased identifiers (they are never un-erased: the
        # same count means the same set); bounded like the caches
        self._clean: set[tuple[Any, ...]] = set()
        self._clean_of: DeviceState | None = None
        self._clean_at = 0
        self._device_fields = tuple(by_block.get("device", ()))
        self._device_names = tuple(name for name, _ in self._device_fields)
        self._place_of_prefix = lru_cache(maxsize=cache_size)(self._place_of_network)
        self._place_of_other_ip = lru_cache(maxsize=cache_size)(self._place_of_ip)
        self._erasure_headers = (
            ("schema", _ERASURE_SCHEMA.encode()),
            ("policy", self.policy.version.encode()),
        )
        # the stage being run, for the quarantine record of an unexpected exception: a
        # plain store per stage, negligible on the hot path (docs/benchmarks.md)
        self._stage = "decode"
        self._failures_logged: Logged = set()

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
        # Erasure notices and device links name identifiers under every key that may have
        # made data downstream (keys_naming). The key in force has its cached pseudonymizer:
        # a new device's link and its first records share one HMAC per domain. The others
        # are uncached: erasures are rare, and so are links made during a key overlap.
        self._recent_links.clear()  # links then gain the pseudonyms under new keys
        self._recent_devices.clear()
        self._erasure_pseudonymizers = {
            domain: [
                self.pseudonymizers[domain]
                if key == self._keys_in_force.get(domain)
                else Pseudonymizer(key, cache_size=0)
                for key in keys_naming(keyring, domain, now_ms)
            ]
            for domain in NAMED_DOMAINS
        }
        # the same by domain name, as a device link stores them (an enum's ``.value`` is a
        # slow property)
        self._link_pseudonymizers = tuple(
            (domain.value, pseudonymizers)
            for domain, pseudonymizers in self._erasure_pseudonymizers.items()
        )
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
        self._link_id = LinkHasher(keyring, self._cache_size)
        self._clean_of = None  # found under the previous link key
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
        self._routing.clear()  # it holds the replaced projectors

    def generated_code(self) -> list[tuple[str, str]]:
        """(what it is, Python source) of every function generated for this pipeline: the
        checks of each input contract, then each route variant's projection."""
        code = [(f"validate {schema}", v.source) for schema, v in self._validators.items()]
        code += [
            (f"project route {r.plan.route} variant {variant} ({r.plan.schema})", source_of(f))
            for r in self._routes
            for variant, f in r.projectors.items()
        ]
        return code

    # -- entry point ---------------------------------------------------------------------

    def process(self, raw: bytes, source: SourceRef, key: bytes | None = None) -> Outcome:
        """Exactly one outcome per input: records, a quarantine record, or a suppression.

        ``source.topic`` is the logical input topic the record was read from: it decides
        which schemas the record may have (``topic_schemas``, see processor.pipeline.binding)."""
        self._stage = "decode"
        try:
            outcome = self._process(raw, source.topic)
        except RecordError as exc:
            return self._quarantine(exc, source, key, raw)
        except Exception as exc:
            error = internal_error(exc, self._stage, self._failures_logged)
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
        if type(schema) is not str or (validate := self._validate.get(schema)) is None:
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
        for dropped in validate(event):
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
        """The consent topic's order is the order of the user's changes (the account
        service's), so every record applies as it comes, whatever its ``event_time``; only
        ``deleted`` is final. The erasure notices go out when the account becomes deleted."""
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
            guardian_consent=event.get("guardian_consent") is True,
        )
        previous = self.consent.get(user)
        state = next_consent(previous, new)
        if state is None:
            return Outcome([], suppressed="consent_after_deletion")
        self.consent.put(user, state)
        if state.account is Account.DELETED:
            return Outcome(self._erase(user, state))
        return Outcome([], suppressed="consent_update")

    def _erase(self, user: str, consent: Consent) -> list[Routed]:
        """One erasure notice per audience (domain): the user's pseudonyms and those of the
        devices linked to them, under every key still in the ring; then the user and the
        devices are erased for good (no later output carries their pseudonyms)."""
        now = self._clock()
        links = [
            link
            for link in self.devices.links(user)
            if now - link.seen_ms < self._link_retention_ms
        ]
        records = []
        for domain, pseudonymizers in self._erasure_pseudonymizers.items():
            user_pseudonyms = [p.of_canonical(IdKind.USER_ID, user) for p in pseudonymizers]
            devices = list(
                dict.fromkeys(p for link in links for p in link.pseudonyms.get(domain.value, ()))
            )
            key_ids = [p.key_id for p in pseudonymizers]
            body = {
                "schema": _ERASURE_SCHEMA,
                "policy": self.policy.version,
                "domain": domain.value,
                "account": consent.account.value,
                "event_time": consent.event_time,
                "key_ids": key_ids,
                "user": user_pseudonyms,
                "devices": devices,
            }
            headers = (*self._erasure_headers, ("key-ids", ",".join(key_ids).encode()))
            records.append(
                Routed(_ERASURE_ROUTES[domain], user_pseudonyms[0], orjson.dumps(body), headers)
            )
        user_link = self._link_id(IdKind.USER_ID, user)
        erased = [link.device for link in links]
        self.devices.erase([*erased, user_link] if user_link else erased, now)
        self.devices.set_links(user, [])
        self.stats["erased_devices"] += len(erased)
        return records

    # -- events ----------------------------------------------------------------------------

    def _route_event(self, event: dict[str, Any], schema: str) -> Outcome:
        self._stage = "consent"
        raw_user = event.get("user_id")
        user = self._user_key(raw_user) if raw_user is not None else None
        consent = self.consent.get(user) if user is not None else None
        key = (
            None
            if consent is None
            else (
                consent.account,
                consent.age_band,
                consent.guardian_consent,
                consent.personalized_recommendation,
                consent.personalized_ads,
                consent.precise_location,
            )
        )
        routing = self._routing.get(key) or self._routing_of(consent, key)
        if isinstance(routing, str):
            return _new(Outcome, ([], None, routing, event["event_time"]))
        self._stage = "devices"
        if self.devices.has_erased():
            self._drop_erased(event)
        if user is not None and self._device_fields:
            self._link_devices(user, event)
        projectors = routing.projectors
        if routing.if_limit_ad_tracking is not projectors:
            device = event.get("device")
            if device is not None and is_limit_ad_tracking(device.get("oaid")):
                projectors = routing.if_limit_ad_tracking
        self._stage = "scrub"
        self._truncate_texts(event)
        self._stage = "coarsen"
        location = self._locate(event, routing.precise_location) if self._coarsen else None
        self._stage = "project"
        records = []
        for project in projectors:  # (a comprehension is one more frame in Python 3.11)
            records.append(project(event, schema, location))
        return _new(Outcome, (records, None, None, event["event_time"]))

    def _routing_of(self, consent: Consent | None, key: _ConsentKey | None) -> _Routing | str:
        """What a consent means for an event: the reason nothing flows, or the projectors
        that make its records (None: no consent record, the policy's conservative default).
        Kept in ``_routing`` under ``key``, the fields that decide it, until the projectors
        change with a key (:meth:`use_key`): a handful of entries, one per distinct
        combination of consent flags."""
        routing: _Routing | str
        if consent is None:
            routing = self._routing_as(self.policy.without_consent)
        elif consent.erased:
            routing = "account_deleted"
        elif (routed_as := consent.for_routing()) is None:
            routing = "child_without_guardian_consent"
        else:
            routing = self._routing_as(routed_as)
        self._routing[key] = routing
        return routing

    def _routing_as(self, consent: Consent) -> _Routing:
        def projectors(limit_ad_tracking: bool) -> tuple[Projector, ...]:
            return tuple(
                runtime.projectors[variant]
                for runtime in self._routes
                if (variant := runtime.plan.variant_for(consent, limit_ad_tracking)) is not None
            )

        usual = projectors(False)
        if_lat = projectors(True)
        # the same tuple when the OAID changes nothing: the hot path then skips its check
        return _Routing(consent.precise_location, usual, usual if if_lat == usual else if_lat)

    def _drop_erased(self, event: dict[str, Any]) -> None:
        """Identifiers named in an erasure notice leave the event before projection: a
        deleted user's device keeps sending, but never again under its old pseudonyms.
        A device's identifiers found not erased are not looked up again until the erased
        identifiers change (``_clean``)."""
        devices = self.devices
        clean = self._clean
        if devices.erased_count != self._clean_at or devices is not self._clean_of:
            clean.clear()
            self._clean_of, self._clean_at = devices, devices.erased_count
        for block, fields, names in self._checked:
            holder = event if block is None else event.get(block)
            if not holder:
                continue
            seen = (block, *map(holder.get, names)) if names is not None else None
            if seen not in clean and not self._drop_erased_from(event, block, holder, fields):
                if len(clean) >= self._cache_size:
                    clean.clear()
                if seen is not None:
                    clean.add(seen)

    def _drop_erased_from(
        self,
        event: dict[str, Any],
        block: str | None,
        holder: dict[str, Any],
        fields: tuple[tuple[str, IdKind], ...],
    ) -> bool:
        """Drop the erased among ``fields`` of ``holder`` (``event`` or its ``block``);
        whether any was."""
        is_erased = self.devices.is_erased
        link_ids = self._link_id.caches
        dropped = False
        for name, kind in fields:
            if (raw := holder.get(name)) is None:
                continue
            if kind is _CELL:
                raw = cell_string(raw)
            link_id = link_ids[kind].get(raw)  # cached link id, else computed
            if link_id is None:
                link_id = self._link_id(kind, raw)
            if link_id and is_erased(link_id):
                if block is not None:  # a copy: the input's own dicts stay as they came
                    holder = event[block] = dict(holder)
                del holder[name]
                self.stats["erased_identifier_dropped:" + name] += 1
                dropped = True
        return dropped

    def _link_devices(self, user: str, event: dict[str, Any]) -> None:
        """Remember, under keyed hashes, the device identifiers seen with ``user`` and their
        pseudonyms under every key in the ring (for the erasure notices). A link stored
        recently is not written again (at most once per half retention); a device that
        sends many events costs one lookup per event (``_recent_devices``)."""
        device = event.get("device")
        if not device:
            return
        now = self._clock()
        refresh = self._link_retention_ms // 2
        seen = (user, *map(device.get, self._device_names))
        if now - self._recent_devices.get(seen, -refresh) < refresh:
            return
        recent = self._recent_links
        if max(len(recent), len(self._recent_devices)) >= self._cache_size:
            recent.clear()
            self._recent_devices.clear()
        oldest = now
        new = []
        for name, kind in self._device_fields:
            raw = device.get(name)
            if raw is None:
                continue
            stored = recent.get((user, kind, raw), -refresh)
            if now - stored < refresh:
                oldest = min(oldest, stored)
                continue
            recent[(user, kind, raw)] = now
            # canonicalized once for the link id and every pseudonym of the link
            canonical = canonicalize(kind, raw)
            if canonical is None:
                continue
            link_id = self._link_id.of_canonical(kind, raw, canonical)
            if self.devices.is_erased(link_id):
                continue
            pseudonyms = {
                domain: [p.for_link(kind, raw, canonical) for p in pseudonymizers]
                for domain, pseudonymizers in self._link_pseudonymizers
            }
            new.append(DeviceLink(link_id, now, pseudonyms))
        # the event's identifiers together are as recent as the least recent of them
        self._recent_devices[seen] = oldest
        if new:
            links = merge_links(
                self.devices.links(user), new, now, self._link_retention_ms, self._max_devices
            )
            self.devices.set_links(user, links)

    def _truncate_texts(self, event: dict[str, Any]) -> None:
        limit = self.max_text_chars
        for block, names in self._free_text:
            holder = event.get(block) if block is not None else event
            if holder:
                for name, stat in names:
                    text = holder.get(name)
                    if type(text) is str and len(text) > limit:
                        holder[name] = truncate_text(text, limit)
                        self.stats[stat] += 1

    def _place_of_network(self, head: str) -> tuple[dict[str, Any] | None, bool]:
        return self._place_of_ip(head + ".0")  # the /24 of the dotted quad ``head``.x

    def _place_of_ip(self, ip: str) -> tuple[dict[str, Any] | None, bool]:
        address = parse_ip(ip)
        if address is None:
            return None, True
        place = self.locator.from_ip(truncate(address))
        return (place.to_json("ip") if place is not None else None), False

    def _locate(self, event: dict[str, Any], precise_location: bool) -> dict[str, Any] | None:
        if precise_location:
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
            # (coarse place, unusable?), cached by its /24 for plain IPv4 text (a user's
            # address changes within its /24 far more often than the /24 does)
            head, dot, last = ip.rpartition(".")
            if dot and ":" not in ip and last.isdigit() and len(last) <= 3 and int(last) <= 255:
                place, problem = self._place_of_prefix(head)
            else:
                place, problem = self._place_of_other_ip(ip)
            if problem:
                self.stats["location_invalid:ip"] += 1
                return None
            if place is not None:
                self.stats["location:ip"] += 1
                return place
        self.stats["location:none"] += 1
        return None
