"""Contract validation, compiled once per contract into flat checks.

A wrong required or identifier field quarantines the record (``RecordError``); a wrong
field whose contract says ``on_invalid: drop`` (coordinates, and every field kept as sent:
its declared pattern, length or range is its format) is removed and reported, so a bad GPS
fix costs the location, not the event. Content checks come after the format: every kept
string goes through the identifier detectors (an IMEI in ``device.model`` drops the field)
and an IPv4 address in a spelling parsers read differently is dropped, never pseudonymized
as some other address. Each drop is reported as ``<path>:<reason>``. Unknown fields are
left for the projection, which only copies what the policy lists.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from processor.canonical import ambiguous_ipv4
from processor.codegen import Source, compile_function
from processor.detect import KeptStringCheck
from processor.errors import PolicyError, RecordError
from schemas import Contract, FieldSpec, Role

ContentCheck = Callable[[Any], str | None]  # a present, well-formed value -> drop reason

_PY_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "object": (dict,),
    "array": (list,),
}
_NO_DROPS: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class _Check:
    path: str
    name: str
    types: frozenset[type]
    required: bool
    drop_on_invalid: bool
    # Only for fields with bounds or enums; most fields need the type check alone.
    spec: FieldSpec | None
    pattern: re.Pattern[str] | None

    def problem(self, value: Any) -> tuple[str, str] | None:
        """(code, detail) of what is wrong with ``value``, or None. Never quotes the value."""
        if type(value) not in self.types:
            expected = " or ".join(sorted(t.__name__ for t in self.types))
            return "bad_type", f"{self.path}: expected {expected}, got {type(value).__name__}"
        spec = self.spec
        if spec is None:
            return None
        if spec.enum is not None and value not in spec.enum:
            return "bad_value", f"{self.path}: not one of the allowed values"
        if spec.minimum is not None and value < spec.minimum:
            return "bad_value", f"{self.path}: below {spec.minimum}"
        if spec.maximum is not None and value > spec.maximum:
            return "bad_value", f"{self.path}: above {spec.maximum}"
        if spec.max_length is not None and len(value) > spec.max_length:
            return "bad_value", f"{self.path}: longer than {spec.max_length}"
        if self.pattern is not None and self.pattern.fullmatch(value) is None:
            return "bad_value", f"{self.path}: does not match its pattern"
        return None


def _check(spec: FieldSpec) -> _Check:
    types = frozenset(t for name in spec.types for t in _PY_TYPES[name])
    bounded = any(
        x is not None
        for x in (spec.enum, spec.minimum, spec.maximum, spec.max_length, spec.pattern)
    )
    return _Check(
        path=spec.path,
        name=spec.path.rpartition(".")[2],
        types=types,
        required=spec.required,
        drop_on_invalid=spec.on_invalid == "drop",
        spec=spec if bounded else None,
        pattern=re.compile(spec.pattern) if spec.pattern is not None else None,
    )


def _refuse(
    holder: dict[str, Any], check: _Check, value: Any, dropped: tuple[str, ...]
) -> tuple[str, ...]:
    """The slow path of a failed check: quarantine, or drop the field and report it."""
    code, detail = check.problem(value) or ("bad_value", check.path)
    if not check.drop_on_invalid:
        raise RecordError(code, "validate", detail)
    del holder[check.name]
    return (*dropped, f"{check.path}:{code}")


def _failure_test(check: _Check, var: str, namespace: dict[str, Any]) -> str:
    """A Python expression that is true when the value in ``check_N`` fails ``check``."""
    types = sorted(check.types, key=lambda t: t.__name__)
    if len(types) == 1:
        namespace[f"{var}_type"] = types[0]
        tests = [f"type(v) is not {var}_type"]
    else:
        namespace[f"{var}_types"] = check.types
        tests = [f"type(v) not in {var}_types"]
    spec = check.spec
    if spec is not None:
        if spec.enum is not None:
            namespace[f"{var}_enum"] = frozenset(spec.enum)
            tests.append(f"v not in {var}_enum")
        if spec.minimum is not None:
            tests.append(f"v < {spec.minimum!r}")
        if spec.maximum is not None:
            tests.append(f"v > {spec.maximum!r}")
        if spec.max_length is not None:
            tests.append(f"len(v) > {spec.max_length!r}")
    if check.pattern is not None:
        namespace[f"{var}_pattern"] = check.pattern.fullmatch
        tests.append(f"{var}_pattern(v) is None")
    return " or ".join(tests)


def _emit_check(
    src: Source,
    holder: str,
    check: _Check,
    var: str,
    namespace: dict[str, Any],
    content: ContentCheck | None,
) -> None:
    namespace[var] = check
    src(f"v = {holder}.get({check.name!r})")
    if check.required:
        src("if v is None:")
        src(f"    raise RecordError('missing_field', 'validate', {check.path!r})")
        src(f"if {_failure_test(check, var, namespace)}:")
    else:
        src(f"if v is not None and ({_failure_test(check, var, namespace)}):")
    src(f"    dropped = refuse({holder}, {var}, v, dropped)")
    if content is not None:
        namespace[f"{var}_content"] = content
        src(f"elif v is not None and (r := {var}_content(v)) is not None:")
        src(f"    del {holder}[{check.name!r}]")
        src(f"    dropped = (*dropped, {check.path + ':'!r} + r)")


def _ip_spelling(value: Any) -> str | None:
    return "ambiguous_ip" if type(value) is str and ambiguous_ipv4(value) else None


def content_checks(contract: Contract, roles: Mapping[str, Role]) -> dict[str, ContentCheck]:
    """The content checks of a raw contract: the identifier detectors on every free-form
    string the field-role table lets a policy keep as sent (enums hold no identifier), and
    the IPv4 spelling check on address fields."""
    checks: dict[str, ContentCheck] = {}
    kept = KeptStringCheck()
    versions = KeptStringCheck(version=True)  # "1.0.0.1" is a version there, not an address
    for path, spec in contract.fields.items():
        role = roles.get(path)
        if role is None:
            continue
        if role.role == "passthrough" and "string" in spec.types and spec.enum is None:
            checks[path] = versions if path.endswith("version") else kept
        elif role.kind == "ip":
            checks[path] = _ip_spelling
    return checks


class Validator:
    """Checks one decoded record against one contract (``schema`` itself already matched).

    Calling it raises RecordError for a record that cannot pass and returns
    ``<path>:<reason>`` for each field it dropped (usually none). ``content`` adds checks of
    present, well-formed values (see :func:`content_checks`). The checks run as generated
    straight-line code.
    """

    def __init__(
        self, contract: Contract, content: Mapping[str, ContentCheck] | None = None
    ) -> None:
        content = content or {}
        top: list[_Check] = []
        blocks: dict[str, list[_Check]] = {}
        for path, spec in contract.fields.items():
            if path == "schema":
                continue
            if path.count(".") > 1:
                raise PolicyError(
                    f"{contract.schema}: field {path} is nested deeper than one block"
                )
            parent = path.rpartition(".")[0]
            if parent:
                blocks.setdefault(parent, []).append(_check(spec))
            else:
                top.append(_check(spec))
        namespace: dict[str, Any] = {
            "RecordError": RecordError,
            "refuse": _refuse,
            "NONE": _NO_DROPS,
        }
        src = Source()
        src("def validate(event):")
        src.indent()
        src("dropped = NONE")
        counter = iter(range(10_000))
        for check in top:
            if check.name not in blocks:
                var = f"check_{next(counter)}"
                _emit_check(src, "event", check, var, namespace, content.get(check.path))
        required_blocks = {c.name for c in top if c.required and c.name in blocks}
        for block_name, checks in blocks.items():
            src(f"b = event.get({block_name!r})")
            if block_name in required_blocks:
                src("if b is None:")
                src(f"    raise RecordError('missing_field', 'validate', {block_name!r})")
            src("if b is not None:")
            src.indent()
            src("if type(b) is not dict:")
            src(
                f"    raise RecordError('bad_type', 'validate', {block_name + ': expected object, got '!r} + type(b).__name__)"
            )
            for check in checks:
                var = f"check_{next(counter)}"
                _emit_check(src, "b", check, var, namespace, content.get(check.path))
            src.dedent()
        src("return dropped")
        self._validate: Callable[[dict[str, Any]], tuple[str, ...]] = compile_function(
            src, "validate", namespace, f"validate {contract.schema}"
        )

    def __call__(self, event: dict[str, Any]) -> tuple[str, ...]:
        return self._validate(event)
