"""Projection: one route's output record from a validated event, following one plan variant.

``compile_projector`` generates the function once per route and variant. The generated
code only copies what the plan lists (allow-list), pseudonymizes identifier fields (a
placeholder yields no field at all), scrubs free text, and adds the coarse location.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable
from functools import lru_cache
from typing import Any

import orjson

from processor.pipeline.codegen import Source, compile_function
from processor.pipeline.kinds import IdKind
from processor.pipeline.outcome import Routed
from processor.pipeline.policy import Action, BlockPlan, Op, RoutePlan
from processor.pipeline.pseudonym import Pseudonymizer
from processor.pipeline.scrub import scrub_text

# A projection keeps the scrubbed forms of the short texts it saw last: at most
# SCRUB_CACHE_SIZE texts of at most SHORT_TEXT_CHARS characters (about 1 MB).
SHORT_TEXT_CHARS = 64
SCRUB_CACHE_SIZE = 4_096

Projector = Callable[[dict[str, Any], str, dict[str, Any] | None], Routed]


def cell_string(value: Any) -> str:
    """A cell tower id is the tuple (mcc, mnc, lac, cid): hashed as one string."""
    if isinstance(value, dict):
        return "-".join(str(value.get(part)) for part in ("mcc", "mnc", "lac", "cid"))
    return str(value)


def _emit_op(
    src: Source,
    holder: str,
    target: str,
    op: Op,
    key_var: str | None,
    namespace: dict[str, Any],
    pseudonymizer: Pseudonymizer,
) -> None:
    name, action, kind, band = op
    src(f"v = {holder}.get({name!r})")
    src("if v is not None:")
    src.indent()
    if action is Action.KEEP:
        src(f"{target}[{name!r}] = v")
    elif action is Action.BAND:
        assert band is not None  # noqa: S101 - the policy compiler gives every band its edges
        out_name, edges, labels = band
        namespace[f"EDGES_{name}"] = edges
        namespace[f"LABELS_{name}"] = labels
        src("if type(v) is int:")  # the contract makes it an integer; a bool is none
        src(f"    {target}[{out_name!r}] = LABELS_{name}[bisect_right(EDGES_{name}, v)]")
    elif action is Action.SCRUB:
        # short texts repeat (comments such as "666", popular searches): cached, and called
        # with no frame of ours between (a failure is the scrubber's: processor.pipeline.failure)
        src(f"{target}[{name!r}] = scrub(v) if len(v) > SHORT_TEXT else scrub_short(v)")
    elif kind is IdKind.EVENT_ID:
        # Pseudonymizer.event_id inline (a string: the contract says so); uncached, as
        # every event brings a new one
        src("m = EVENT_MAC.copy()")
        src("m.update(v.encode())")
        src(f"{target}[{name!r}] = KEY_PREFIX + m.hexdigest()")
    else:
        assert kind is not None  # noqa: S101 - the policy compiler gives every identifier a kind
        namespace[f"KIND_{kind}"] = kind
        namespace[f"CACHE_{kind}"] = pseudonymizer.caches[kind]
        if kind is IdKind.CELL:
            src("v = cell_string(v)")
        src(f"p = CACHE_{kind}.get(v)")
        src("if p is None:")
        src(f"    p = miss(KIND_{kind}, v)")
        src("if p:")  # PLACEHOLDER is falsy: a placeholder gives no field at all
        src.indent()
        src(f"{target}[{name!r}] = p")
        if key_var:
            src(f"{key_var} = p")
        src.dedent()
    src.dedent()


def compile_projector(
    plan: RoutePlan,
    variant: str,
    blocks: tuple[BlockPlan, ...],
    *,
    pseudonymizer: Pseudonymizer,
    policy_version: str,
    headers: tuple[tuple[str, bytes], ...],
) -> Projector:
    """The projection of one route variant as generated straight-line code."""
    namespace: dict[str, Any] = {
        "miss": pseudonymizer.miss,
        "EVENT_MAC": pseudonymizer.event_mac,
        "KEY_PREFIX": pseudonymizer.key_id + ":",
        "bisect_right": bisect_right,
        "scrub": scrub_text,
        "scrub_short": lru_cache(maxsize=SCRUB_CACHE_SIZE)(scrub_text),
        "SHORT_TEXT": SHORT_TEXT_CHARS,
        "cell_string": cell_string,
        "dumps": orjson.dumps,
        "Routed": Routed,
        "ROUTE": plan.route,
        "SCHEMA": plan.schema,
        "POLICY": policy_version,
        "KEY_IDS": [pseudonymizer.key_id],
        "HEADERS": headers,
    }
    key_vars = {field: f"key{i}" for i, field in enumerate(plan.key_from)}
    src = Source()
    src("def project(event, source_schema, location):")
    src.indent()
    src(
        'out = {"schema": SCHEMA, "source_schema": source_schema, "policy": POLICY, "key_ids": KEY_IDS}'
    )
    for var in key_vars.values():
        src(f"{var} = None")
    for block, ops in blocks:
        if block is None:
            for op in ops:
                _emit_op(
                    src, "event", "out", op, key_vars.get((None, op[0])), namespace, pseudonymizer
                )
            continue
        src(f"b = event.get({block!r})")
        src("if b:")
        src.indent()
        src("d = {}")
        for op in ops:
            _emit_op(src, "b", "d", op, key_vars.get((block, op[0])), namespace, pseudonymizer)
        src("if d:")
        src(f"    out[{block!r}] = d")
        src.dedent()
    if plan.coarsen:
        src("if location is not None:")
        src('    out["location"] = location')
    src(f"return Routed(ROUTE, {' or '.join([*key_vars.values(), 'None'])}, dumps(out), HEADERS)")
    projector: Projector = compile_function(
        src, "project", namespace, f"project {plan.route} {variant}"
    )
    return projector
