"""Contracts as data: the raw inputs, the outputs, the field-role table and the policies.

Every contract is one versioned JSON file in ``contracts/`` in a compact form (a flat map
of dotted field paths to type, requiredness and bounds) that code compiles once at start-up
and that ``export_json_schema`` turns into JSON Schema (draft 2020-12) for downstream teams.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, Literal, cast

from schemas.errors import PolicyError

JsonType = Literal["string", "integer", "number", "boolean", "object", "array"]
_JSON_TYPES = frozenset({"string", "integer", "number", "boolean", "object", "array"})
RAW_CONTRACTS = ("behaviour/1", "device/1", "consent/1")
OUTPUT_CONTRACTS = (
    "clean.recommendation/1",
    "clean.ad-analytics/1",
    "quarantine/1",
    "erasure/2",
    "stats.ad/1",
)
DEFAULT_POLICY = "default/1"
ROLES = ("identifier", "location", "free_text", "passthrough", "drop")


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """One field of a contract, by dotted path (``device.imei``)."""

    path: str
    types: tuple[JsonType, ...]
    required: bool = False
    enum: tuple[Any, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None
    max_length: int | None = None
    pattern: str | None = None
    items: JsonType | None = None
    # "quarantine": a wrong value quarantines the record; "drop": the field is dropped
    # and counted (location fields: a bad coordinate costs the location, not the event).
    on_invalid: Literal["quarantine", "drop"] = "quarantine"
    description: str | None = None


@dataclass(frozen=True, slots=True)
class Contract:
    schema: str
    title: str
    key: str | None
    closed: bool  # outputs are closed (no other field); raw inputs tolerate unknown fields
    fields: dict[str, FieldSpec]

    def blocks(self) -> tuple[str, ...]:
        """Top-level fields that hold objects with their own fields (``device``...)."""
        return tuple(
            p
            for p, f in self.fields.items()
            if "." not in p
            and f.types == ("object",)
            and any(q.startswith(p + ".") for q in self.fields)
        )


@dataclass(frozen=True, slots=True)
class Role:
    role: str
    kind: str | None = None


def _file_name(schema: str) -> str:
    name, _, version = schema.partition("/")
    return f"{name}.{version}.json"


def _read(package_path: str) -> dict[str, Any]:
    text = resources.files("schemas").joinpath(package_path).read_text("utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


def _field(path: str, raw: dict[str, Any], where: str) -> FieldSpec:
    types = raw.get("type")
    type_list = [types] if isinstance(types, str) else types
    if (
        not isinstance(type_list, list)
        or not type_list
        or any(t not in _JSON_TYPES for t in type_list)
    ):
        raise PolicyError(f"{where}: field {path} has an invalid type {types!r}")
    enum = raw.get("enum")
    return FieldSpec(
        path=path,
        types=tuple(cast("list[JsonType]", type_list)),
        required=bool(raw.get("required", False)),
        enum=tuple(enum) if enum is not None else None,
        minimum=raw.get("minimum"),
        maximum=raw.get("maximum"),
        max_length=raw.get("max_length"),
        pattern=raw.get("pattern"),
        items=raw.get("items"),
        on_invalid=raw.get("on_invalid", "quarantine"),
        description=raw.get("description"),
    )


@cache
def load_contract(schema: str) -> Contract:
    """The contract named ``schema`` (e.g. ``behaviour/1``); PolicyError if unknown."""
    if schema not in RAW_CONTRACTS + OUTPUT_CONTRACTS:
        raise PolicyError(
            f"no contract named {schema!r}; known: {', '.join(RAW_CONTRACTS + OUTPUT_CONTRACTS)}"
        )
    file_name = _file_name(schema)
    raw = _read(f"contracts/{file_name}")
    fields = {path: _field(path, spec, file_name) for path, spec in raw["fields"].items()}
    for path in fields:
        parent = path.rpartition(".")[0]
        if parent and parent not in fields:
            raise PolicyError(f"{file_name}: field {path} has no parent field {parent}")
    return Contract(
        schema=raw["schema"],
        title=raw["title"],
        key=raw.get("key"),
        closed=bool(raw.get("closed", False)),
        fields=fields,
    )


@cache
def load_roles() -> dict[str, Role]:
    """The field-role table: raw field path -> role (and identifier kind)."""
    raw = _read("roles.1.json")
    roles = {}
    for path, spec in raw["fields"].items():
        if spec["role"] not in ROLES:
            raise PolicyError(f"roles.1.json: field {path} has unknown role {spec['role']!r}")
        if (spec["role"] == "identifier") != ("kind" in spec):
            raise PolicyError(
                f"roles.1.json: field {path}: identifiers, and only they, name a kind"
            )
        roles[path] = Role(role=spec["role"], kind=spec.get("kind"))
    return roles


def load_policy(path: Path | None = None) -> dict[str, Any]:
    """The policy document: the shipped default, or an operator's file. Checked and
    compiled by ``processor.pipeline.policy``."""
    if path is None:
        return _read("policy.default.1.json")
    try:
        data = json.loads(path.read_text("utf-8"))
    except FileNotFoundError as exc:
        raise PolicyError(f"policy file {path} does not exist") from exc
    except (OSError, ValueError) as exc:
        raise PolicyError(f"policy file {path} is not readable JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise PolicyError(f"policy file {path} must hold a JSON object")
    return data


def _schema_of(spec: FieldSpec) -> dict[str, Any]:
    out: dict[str, Any] = {"type": spec.types[0] if len(spec.types) == 1 else list(spec.types)}
    if spec.description:
        out["description"] = spec.description
    if spec.enum is not None:
        out["enum"] = list(spec.enum)
    if spec.minimum is not None:
        out["minimum"] = spec.minimum
    if spec.maximum is not None:
        out["maximum"] = spec.maximum
    if spec.max_length is not None:
        out["maxLength"] = spec.max_length
    if spec.pattern is not None:
        out["pattern"] = spec.pattern
    if spec.items is not None:
        out["items"] = {"type": spec.items}
    return out


def to_json_schema(contract: Contract) -> dict[str, Any]:
    """JSON Schema (draft 2020-12) of a contract. Optional raw fields may be null, as the
    apps send them; output fields are never null (absent instead)."""
    nullable = not contract.closed
    root: dict[str, Any] = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"pseudostream:{contract.schema}",
        "title": contract.title,
        "type": "object",
        "properties": {},
        "required": [],
        "additionalProperties": not contract.closed,
    }
    if contract.key:
        root["description"] = f"Kafka message key: {contract.key}"
    nodes: dict[str, dict[str, Any]] = {"": root}
    for path, spec in contract.fields.items():
        parent, _, name = path.rpartition(".")
        node = _schema_of(spec)
        if spec.types == ("object",) and any(p.startswith(path + ".") for p in contract.fields):
            node.update(
                {"properties": {}, "required": [], "additionalProperties": not contract.closed}
            )
        if nullable and not spec.required:
            node["type"] = [
                *([node["type"]] if isinstance(node["type"], str) else node["type"]),
                "null",
            ]
            if "enum" in node:
                node["enum"].append(None)
        nodes[parent]["properties"][name] = node
        if spec.required:
            nodes[parent]["required"].append(name)
        nodes[path] = node
    if "schema" in root["properties"] and not contract.closed:
        root["properties"]["schema"] = {"const": contract.schema}
        root["required"].insert(0, "schema")
    return root


def export_json_schema(directory: Path) -> list[Path]:
    """Write one ``<name>.<version>.schema.json`` per contract into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for schema in RAW_CONTRACTS + OUTPUT_CONTRACTS:
        target = directory / _file_name(schema).replace(".json", ".schema.json")
        document = json.dumps(to_json_schema(load_contract(schema)), indent=2, ensure_ascii=False)
        target.write_text(document + "\n", "utf-8")
        written.append(target)
    return written
