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

from processor.errors import PolicyError, RecordError
from processor.pipeline.canonical import ambiguous_ipv4
from processor.pipeline.codegen import Source, compile_function, source_of
from processor.pipeline.detect import identifier_in
from schemas import Contract, FieldSpec, Role

ContentTest = Callable[[str], str | None]  # a well-typed string -> the reason to drop it
DEFAULT_CONTENT_CACHE = 65_536  # values per field
_CACHED_LENGTH = 128  # longer values are checked each time, never kept in a cache

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
        return None


def _check(spec: FieldSpec) -> _Check:
    types = frozenset(t for name in spec.types for t in _PY_TYPES[name])
    bounded = any(x is not None for x in (spec.enum, spec.minimum, spec.maximum, spec.max_length))
    return _Check(
        path=spec.path,
        name=spec.path.rpartition(".")[2],
        types=types,
        required=spec.required,
        drop_on_invalid=spec.on_invalid == "drop",
        spec=spec if bounded else None,
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
    """A Python expression that is true when the value in ``check_N`` fails ``check``
    (its pattern is checked apart, cached: see :class:`_CachedContent`)."""
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
    return " or ".join(tests)


class _CachedContent:
    """One string field's pattern and content test, cached per value: ``cache`` maps a
    value to "" (it passes) or the reason it fails; ``miss`` computes and fills it. Kept
    fields repeat (brands, models, carriers, item ids, a device's address), so the
    generated code mostly pays one dictionary lookup per field; the cache is bounded by
    clearing it when full, and values longer than ``_CACHED_LENGTH`` are never kept."""

    __slots__ = ("_limit", "_max_length", "_pattern", "_test", "cache")

    def __init__(
        self,
        spec: FieldSpec,
        test: ContentTest | None,
        limit: int,
    ) -> None:
        self.cache: dict[str, str] = {}
        self._max_length = spec.max_length
        self._pattern = re.compile(spec.pattern) if spec.pattern is not None else None
        self._test = test
        self._limit = limit

    def miss(self, value: str) -> str:
        if (self._max_length is not None and len(value) > self._max_length) or (
            self._pattern is not None and self._pattern.fullmatch(value) is None
        ):
            found = "bad_value"
        else:
            found = (self._test(value) if self._test is not None else None) or ""
        if len(value) <= _CACHED_LENGTH:
            if len(self.cache) >= self._limit:
                self.cache.clear()
            self.cache[value] = found
        return found


def _refuse_content(
    holder: dict[str, Any], check: _Check, reason: str, dropped: tuple[str, ...]
) -> tuple[str, ...]:
    """The slow path of a failed content check: a pattern mismatch follows the field's
    ``on_invalid``; an identifier or an ambiguous address always costs the field only."""
    if reason == "bad_value" and not check.drop_on_invalid:
        raise RecordError("bad_value", "validate", f"{check.path}: does not match its pattern")
    del holder[check.name]
    return (*dropped, f"{check.path}:{reason}")


def _emit_check(
    src: Source,
    holder: str,
    check: _Check,
    var: str,
    namespace: dict[str, Any],
    content: _CachedContent | None,
) -> None:
    namespace[var] = check
    src(f"v = {holder}.get({check.name!r})")
    if content is not None:
        _emit_cached(src, holder, check, var, namespace, content)
        return
    if check.required:
        src("if v is None:")
        src(f"    raise RecordError('missing_field', 'validate', {check.path!r})")
        src(f"if {_failure_test(check, var, namespace)}:")
    else:
        src(f"if v is not None and ({_failure_test(check, var, namespace)}):")
    src(f"    dropped = refuse({holder}, {var}, v, dropped)")


def _emit_cached(
    src: Source,
    holder: str,
    check: _Check,
    var: str,
    namespace: dict[str, Any],
    content: _CachedContent,
) -> None:
    """A string field whose length, pattern and content test are cached per value: the
    usual cost is a type test and one dictionary lookup."""
    namespace[f"{var}_get"] = content.cache.get  # the cache is cleared in place, never replaced
    namespace[f"{var}_miss"] = content.miss
    src("if type(v) is str:")
    src(f"    r = {var}_get(v)")
    src("    if r is None:")
    src(f"        r = {var}_miss(v)")
    src("    if r:")
    src(f"        dropped = refuse_content({holder}, {var}, r, dropped)")
    if check.required:
        src("elif v is None:")
        src(f"    raise RecordError('missing_field', 'validate', {check.path!r})")
        src("else:")
    else:
        src("elif v is not None:")
    src(f"    dropped = refuse({holder}, {var}, v, dropped)")


def _ip_spelling(value: str) -> str | None:
    return "ambiguous_ip" if ambiguous_ipv4(value) else None


def _identifier(value: str) -> str | None:
    return "identifier" if identifier_in(value) else None


def _identifier_in_version(value: str) -> str | None:
    # "1.0.0.1" is a version here, not an address
    return "identifier" if identifier_in(value, version=True) else None


def content_checks(contract: Contract, roles: Mapping[str, Role]) -> dict[str, ContentTest]:
    """The content tests of a raw contract: the identifier detectors on every free-form
    string the field-role table lets a policy keep as sent (enums hold no identifier), and
    the IPv4 spelling check on address fields."""
    checks: dict[str, ContentTest] = {}
    for path, spec in contract.fields.items():
        role = roles.get(path)
        if role is None or spec.types != ("string",):
            continue
        if role.role == "passthrough" and spec.enum is None:
            checks[path] = _identifier_in_version if path.endswith("version") else _identifier
        elif role.kind == "ip":
            checks[path] = _ip_spelling
    return checks


class Validator:
    """Checks one decoded record against one contract (``schema`` itself already matched).

    Calling it raises RecordError for a record that cannot pass and returns
    ``<path>:<reason>`` for each field it dropped (usually none). ``content`` adds tests of
    present, well-typed strings (see :func:`content_checks`); they and the contract's
    patterns run cached per value. The checks run as generated straight-line code.
    """

    def __init__(
        self,
        contract: Contract,
        content: Mapping[str, ContentTest] | None = None,
        *,
        cache_size: int = DEFAULT_CONTENT_CACHE,
    ) -> None:
        content = content or {}
        cached: dict[str, _CachedContent] = {}
        for path, spec in contract.fields.items():
            if spec.pattern is None and path not in content:
                continue
            if spec.types != ("string",) or spec.enum is not None:
                raise PolicyError(
                    f"{contract.schema}: field {path}: a pattern or content test needs a"
                    " string field without enum"
                )
            cached[path] = _CachedContent(spec, content.get(path), cache_size)
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
            "refuse_content": _refuse_content,
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
                _emit_check(src, "event", check, var, namespace, cached.get(check.path))
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
                _emit_check(src, "b", check, var, namespace, cached.get(check.path))
            src.dedent()
        src("return dropped")
        self._validate: Callable[[dict[str, Any]], tuple[str, ...]] = compile_function(
            src, "validate", namespace, f"validate {contract.schema}"
        )

    def __call__(self, event: dict[str, Any]) -> tuple[str, ...]:
        return self._validate(event)

    @property
    def function(self) -> Callable[[dict[str, Any]], tuple[str, ...]]:
        """The generated function itself, for a hot path that calls it without this wrapper."""
        return self._validate

    @property
    def source(self) -> str:
        """The generated Python source of the checks (``pseudostream policy show --generated``)."""
        return source_of(self._validate)
