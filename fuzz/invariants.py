"""The invariants every fuzzed input must keep, shared by the hypothesis tests
(tests/unit/test_fuzz_pipeline.py) and the atheris target (fuzz/fuzz_pipeline.py).

For one raw record through ``Pipeline.process``:

- no exception escapes, and there is exactly one outcome: routed records, or one
  quarantine record with a reason, or a counted suppression with no record;
- no ``internal_error`` quarantine: an unexpected exception inside a stage is a bug even
  though the pipeline contains it;
- a quarantine record opens, with the quarantine key, to the input's exact bytes;
- no raw identifier of the input appears in any output (the leak scanner's exact
  findings, in every spelling it knows), in the value or in the message key, except in a
  field the policy keeps as sent (``event_id``, ``device.brand``...): a client that puts
  its OAID into ``event_id`` too is sending it in a kept field, which no allow-list can
  tell (docs/drills.md); and except in free text the scrubber left unchanged (no detector
  sees an identifier in it): a user id like ``00;`` that is also the whole search query was
  typed by the user, and no scrubber can know it is someone's id;
- every output record validates against its exported JSON Schema.

For the canonicalizers: no exception, a string or None, and canonical forms are fixed
points (canonicalizing twice equals canonicalizing once).
"""

from __future__ import annotations

from typing import Any

import jsonschema
import orjson

from keys import Keyring
from processor.ops.scan import LeakScanner
from processor.pipeline.canonical import canonicalize
from processor.pipeline.kinds import IdKind
from processor.pipeline.outcome import Outcome, Route, SourceRef
from processor.pipeline.policy import Action
from processor.pipeline.process import Pipeline
from processor.pipeline.quarantine import Sealer
from schemas import OUTPUT_CONTRACTS, load_contract, to_json_schema

SOURCE = SourceRef("raw.behaviour", 0, 42)
_TOPIC_OF_SCHEMA = {"device/1": "raw.device", "consent/1": "consent"}


def source_for(raw: bytes) -> SourceRef:
    """The input a producer would write ``raw`` to, by its schema, so the fuzzer reaches
    every schema's path (a record on the wrong topic only reaches the topic check)."""
    try:
        document = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return SOURCE
    schema = document.get("schema") if isinstance(document, dict) else None
    topic = _TOPIC_OF_SCHEMA.get(schema) if isinstance(schema, str) else None
    return SOURCE if topic is None else SOURCE._replace(topic=topic)


class InvariantError(AssertionError):
    """A fuzzed input broke an invariant; the message says which."""


class Checker:
    """One pipeline (its consent state accumulates across inputs, as in a worker) and the
    compiled output schemas; ``check`` raises :class:`InvariantError`."""

    def __init__(self, keyring: Keyring | None = None, **pipeline_options: Any) -> None:
        keyring = keyring or Keyring.generate()
        self.pipeline = Pipeline(keyring, **pipeline_options)
        self.sealer = Sealer(keyring, self.pipeline.policy.version)
        self.kept_paths = self._paths(Action.KEEP)
        self.text_paths = self._paths(Action.SCRUB)
        self.validators = {}
        for name in OUTPUT_CONTRACTS:
            schema = to_json_schema(load_contract(name))
            self.validators[name] = jsonschema.validators.validator_for(schema)(schema)

    def _paths(self, wanted: Action) -> set[str]:
        return {
            "value." + (name if block is None else f"{block}.{name}")
            for plan in self.pipeline.policy.routes
            for blocks in plan.variants().values()
            for block, ops in blocks
            for name, action, *_ in ops
            if action is wanted
        }

    def check(
        self, raw: bytes, key: bytes | None = None, source: SourceRef | None = None
    ) -> Outcome:
        source = source or source_for(raw)
        try:
            outcome = self.pipeline.process(raw, source, key)
        except Exception as exc:
            raise InvariantError(f"exception escaped: {type(exc).__name__}: {exc}") from exc
        routes = [record.route for record in outcome.records]
        if outcome.quarantined:
            if routes != [Route.QUARANTINE] or outcome.suppressed:
                raise InvariantError(f"quarantined as {outcome.quarantined} but routed {routes}")
            if outcome.quarantined == "internal_error":
                detail = outcome.records[0].json().get("detail")
                raise InvariantError(f"internal_error ({detail}) in a stage")
            kept_key = key if key is None or len(key) <= self.pipeline.max_key_bytes else None
            if self.sealer.unseal(outcome.records[0].json()) != (kept_key, raw):
                raise InvariantError("the sealed original does not open to the input")
        elif outcome.suppressed:
            if outcome.records:
                raise InvariantError(f"suppressed ({outcome.suppressed}) but routed {routes}")
        elif not outcome.records or Route.QUARANTINE in routes:
            raise InvariantError(f"no outcome, or a quarantine record without reason: {routes}")
        lines = []
        unchanged_text = set()
        sent = _document(raw)
        for record in outcome.records:
            body = record.json()
            errors = sorted(
                self.validators[body["schema"]].iter_errors(body), key=lambda e: list(e.path)
            )
            if errors:
                raise InvariantError(
                    f"{body['schema']} record fails its JSON Schema at "
                    f"{'.'.join(map(str, errors[0].path)) or '/'}: {errors[0].validator}"
                )
            lines.append(orjson.dumps({"topic": record.route, "key": record.key, "value": body}))
            unchanged_text |= {path for path in self.text_paths if _same(sent, body, path)}
        leaks = [
            f
            for f in LeakScanner.from_raw_events([raw]).scan_lines(lines)
            if f.kind.startswith("raw:")
            and f.where not in self.kept_paths
            and f.where not in unchanged_text
        ]
        if leaks:
            raise InvariantError(f"raw identifier in the output: {leaks[:3]}")
        return outcome


def _document(raw: bytes) -> object:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None


def _same(event: object, body: dict[str, Any], path: str) -> bool:
    """Whether the output's text at ``path`` (``value.payload.query``) is the input's."""
    out: Any = {"value": body}
    sent: Any = {"value": event}
    for part in path.split("."):
        out = out.get(part) if isinstance(out, dict) else None
        sent = sent.get(part) if isinstance(sent, dict) else None
    return isinstance(out, str) and out == sent


def check_canonical(kind: IdKind, raw: str | int) -> str | None:
    """``canonicalize`` keeps its contract for any input; raises :class:`InvariantError`."""
    try:
        canonical = canonicalize(kind, raw)
        again = canonicalize(kind, canonical) if canonical is not None else None
    except Exception as exc:
        raise InvariantError(f"canonicalize({kind}) raised {type(exc).__name__}") from exc
    if canonical is not None and (type(canonical) is not str or again != canonical):
        raise InvariantError(f"canonicalize({kind}) is not a fixed point on its own output")
    return canonical
