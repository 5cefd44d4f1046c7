"""The policy compiled once at start-up: checked against the field-role table, then turned
into flat per-route plans that the pipeline walks without any per-record decision making."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path
from typing import Any

from keys import Domain
from processor.errors import PolicyError
from processor.pipeline.consent import Account, AgeBand, Consent
from processor.pipeline.kinds import IdKind
from processor.pipeline.outcome import Route
from schemas import Role, load_policy, load_roles

_CONSENT_FLAGS = ("personalized_recommendation", "personalized_ads", "precise_location")


class Action(IntEnum):
    KEEP = 0
    PSEUDONYM = 1
    SCRUB = 2
    BAND = 3


# Which action each role may take: an identifier can never be kept, free text never kept
# unscrubbed. A policy that asks otherwise is refused at start-up.
_ALLOWED = {
    "passthrough": {"keep": Action.KEEP, "band": Action.BAND},
    "identifier": {"pseudonym": Action.PSEUDONYM},
    "free_text": {"scrub": Action.SCRUB},
}

Band = tuple[str, tuple[int, ...], tuple[str, ...]]  # (output name, edges, labels)
Op = tuple[str, Action, IdKind | None, Band | None]  # (field, action, identifier kind, band)
BlockPlan = tuple[str | None, tuple[Op, ...]]  # (block name or None for top level, ops)


@dataclass(frozen=True, slots=True)
class RoutePlan:
    route: Route
    schema: str
    domain: Domain
    full: tuple[BlockPlan, ...]
    reduced: tuple[BlockPlan, ...] | None  # plan when the personalization consent is off
    reduced_by: str | None  # consent flag that selects ``reduced``
    limit_ad_tracking: tuple[BlockPlan, ...] | None  # plan when the OAID says limit ad tracking
    requires: tuple[str, ...]  # consent flags that must be true for any record
    age_band_not: frozenset[AgeBand]
    coarsen: bool
    key_from: tuple[tuple[str | None, str], ...]

    def variant_for(self, consent: Consent, limit_ad_tracking: bool) -> str | None:
        """Which plan variant applies (``full``, ``reduced``, ``limit_ad_tracking``), or None
        when this route gets no record for this consent."""
        for flag in self.requires:
            if not getattr(consent, flag):
                return None
        if consent.age_band in self.age_band_not:
            return None
        if self.reduced is not None and not getattr(consent, str(self.reduced_by)):
            return "reduced"
        if limit_ad_tracking and self.limit_ad_tracking is not None:
            return "limit_ad_tracking"
        return "full"

    def variants(self) -> dict[str, tuple[BlockPlan, ...]]:
        found = {
            "full": self.full,
            "reduced": self.reduced,
            "limit_ad_tracking": self.limit_ad_tracking,
        }
        return {name: plan for name, plan in found.items() if plan is not None}


@dataclass(frozen=True, slots=True)
class Policy:
    version: str
    without_consent: Consent
    routes: tuple[RoutePlan, ...]

    @property
    def domains(self) -> tuple[Domain, ...]:
        return tuple(dict.fromkeys(r.domain for r in self.routes))

    def summary(self) -> dict[str, Any]:
        """What the policy does, for the audit log and ``pseudostream policy show --json``:
        per route its output schema, domain, conditions, message key fields, the consent flag
        that selects the ``reduced`` variant, and each variant's output fields by action (no
        value, no key)."""

        def fields(blocks: tuple[BlockPlan, ...]) -> dict[str, list[str]]:
            by_action: dict[str, list[str]] = {}
            for block, ops in blocks:
                for name, action, _, band in ops:
                    path = field_path(block, name)
                    label = f"{path} as {band[0]}" if band else path
                    by_action.setdefault(action.name.lower(), []).append(label)
            return by_action

        return {
            "version": self.version,
            "without_consent_record": {
                flag: getattr(self.without_consent, flag) for flag in _CONSENT_FLAGS
            },
            "routes": {
                str(plan.route): {
                    "schema": plan.schema,
                    "domain": str(plan.domain),
                    "requires": list(plan.requires),
                    "age_band_not": sorted(plan.age_band_not),
                    "coarsen_location": plan.coarsen,
                    "key_from": [field_path(*f) for f in plan.key_from],
                    "reduced_when_off": plan.reduced_by,
                    "variants": {name: fields(b) for name, b in plan.variants().items()},
                }
                for plan in self.routes
            },
        }


def _split(path: str) -> tuple[str | None, str]:
    block, _, name = path.rpartition(".")
    return (block or None, name)


def field_path(block: str | None, name: str) -> str:
    """The dotted path of a field of a block plan (the reverse of the policy's ``_split``)."""
    return name if block is None else f"{block}.{name}"


def _plan(
    fields: dict[str, Any], roles: dict[str, Role], where: str, drop: set[str]
) -> tuple[BlockPlan, ...]:
    blocks: dict[str | None, list[Op]] = {}
    for path, spec in fields.items():
        if path == "location" or path in drop:
            continue
        role = roles.get(path)
        if role is None:
            raise PolicyError(f"{where}: field {path} is not in the field-role table")
        allowed = _ALLOWED.get(role.role, {})
        # a band is {"band": {...}}: "band" alone would have no edges
        band = _band(spec["band"], f"{where}: field {path}") if _is_band(spec) else None
        action = "band" if band is not None else spec
        if not isinstance(action, str) or action not in allowed or (action == "band") != bool(band):
            raise PolicyError(
                f"{where}: field {path} has role {role.role} and cannot be '{action}'"
                f" (allowed: {', '.join(allowed) or 'none, leave it out'})"
            )
        block, name = _split(path)
        kind = IdKind(role.kind) if role.kind else None
        blocks.setdefault(block, []).append((name, allowed[action], kind, band))
    return tuple((block, tuple(ops)) for block, ops in blocks.items())


def _is_band(spec: Any) -> bool:
    return isinstance(spec, dict) and set(spec) == {"band"}


def _band(raw: Any, where: str) -> Band:
    """``{"as": output name, "edges": [increasing integers], "labels": [one more than
    edges]}``: a number becomes the label of the interval it falls in (lower edge
    inclusive), so the exact value never leaves."""
    try:
        name, edges, labels = str(raw["as"]), list(raw["edges"]), list(raw["labels"])
    except (KeyError, TypeError) as exc:
        raise PolicyError(f"{where}: a band needs 'as', 'edges' and 'labels'") from exc
    if (
        not edges
        or any(type(e) is not int for e in edges)
        or edges != sorted(set(edges))
        or len(labels) != len(edges) + 1
        or any(not isinstance(label, str) for label in labels)
    ):
        raise PolicyError(
            f"{where}: band edges must be increasing integers and labels strings, one more"
            " label than edges"
        )
    return (name, tuple(edges), tuple(labels))


def _object(raw: Any, where: str) -> dict[str, Any]:
    """``raw`` if it is a JSON object; an operator's file gets a clear error, not a crash."""
    if not isinstance(raw, dict):
        raise PolicyError(f"{where} must be a JSON object")
    return raw


def _paths(raw: Any, where: str, fields: dict[str, Any]) -> list[str]:
    if not isinstance(raw, list) or any(type(p) is not str or p not in fields for p in raw):
        raise PolicyError(f"{where}: must list field paths of this route")
    return list(raw)


def _route(name: str, raw: Any, roles: dict[str, Role], version: str) -> RoutePlan:
    where = f"policy {version}, route {name}"
    raw = _object(raw, where)
    try:
        route = Route(name)
        domain = Domain(raw["domain"])
        fields = _object(raw["fields"], f"{where}: fields")
    except (KeyError, ValueError) as exc:
        raise PolicyError(f"{where}: unknown route, domain, or no fields ({exc})") from exc
    if fields.get("location", "coarsen") != "coarsen":
        raise PolicyError(f"{where}: location can only be 'coarsen' or left out")
    reduced = reduced_by = lat_plan = None
    if "when_not_personalized" in raw:
        spec = _object(raw["when_not_personalized"], f"{where}: when_not_personalized")
        reduced_by = spec.get("consent")
        if reduced_by not in _CONSENT_FLAGS:
            raise PolicyError(
                f"{where}: when_not_personalized.consent must be one of {_CONSENT_FLAGS}"
            )
        reduced = _plan(fields, roles, where, set(_paths(spec.get("drop"), where, fields)))
    if "when_limit_ad_tracking" in raw:
        spec = _object(raw["when_limit_ad_tracking"], f"{where}: when_limit_ad_tracking")
        drop = _paths(spec.get("drop"), where, fields)
        lat_plan = _plan(fields, roles, where, set(drop))
    requires = _object(raw.get("requires", {}), f"{where}: requires")
    flags = requires.get("consent", [])
    if not isinstance(flags, list) or any(f not in _CONSENT_FLAGS for f in flags):
        raise PolicyError(
            f"{where}: requires.consent must name flags among {_CONSENT_FLAGS}, as a list"
        )
    bands = requires.get("age_band_not", [])
    try:
        if not isinstance(bands, list):
            raise ValueError("must be a list of age bands")
        age_band_not = frozenset(AgeBand(b) for b in bands)
    except ValueError as exc:
        raise PolicyError(f"{where}: requires.age_band_not: {exc}") from exc
    schema = raw.get("schema", f"clean.{name}/1")
    if not isinstance(schema, str):
        raise PolicyError(f"{where}: schema must be a string")
    key_from = _paths(raw.get("key_from", []), where, fields)
    if any(roles[p].role != "identifier" for p in key_from):
        raise PolicyError(f"{where}: key_from may only name pseudonymized identifier fields")
    return RoutePlan(
        route=route,
        schema=schema,
        domain=domain,
        full=_plan(fields, roles, where, set()),
        reduced=reduced,
        reduced_by=reduced_by,
        limit_ad_tracking=lat_plan,
        requires=tuple(flags),
        age_band_not=age_band_not,
        coarsen="location" in fields,
        key_from=tuple(_split(p) for p in key_from),
    )


def compile_policy(path: Path | None = None) -> Policy:
    """Load (the default or an operator's file), check and compile the policy."""
    raw = load_policy(path)
    roles = load_roles()
    try:
        version = str(raw["policy"])
        routes_raw = _object(raw["routes"], "policy: routes")
        defaults = _object(raw["without_consent_record"], "policy: without_consent_record")
        # a flag must be a JSON boolean: the string "false" must not turn a consent on
        flags = {flag: defaults[flag] for flag in _CONSENT_FLAGS}
        if any(type(value) is not bool for value in flags.values()):
            raise PolicyError(
                f"policy: without_consent_record: {_CONSENT_FLAGS} must be true or false"
            )
        without = Consent(
            **flags,
            age_band=AgeBand(defaults["age_band"]),
            account=Account(defaults["account"]),
            event_time=0,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise PolicyError(f"policy: missing or invalid {exc}") from exc
    routes = tuple(_route(name, spec, roles, version) for name, spec in routes_raw.items())
    if not routes:
        raise PolicyError(f"policy {version}: no routes")
    return Policy(version=version, without_consent=without, routes=routes)
