"""The policy for people (``pseudostream policy show``): the compiled plans as a table, and
the Python source generated from them, exactly as the pipeline runs it."""

from __future__ import annotations

from keys import Keyring
from processor.pipeline.policy import BlockPlan, Policy, RoutePlan, field_path
from processor.pipeline.process import Pipeline

_CONDITIONS = {
    "full": "the usual case",
    "limit_ad_tracking": "the OAID says limit ad tracking",
}
_NONE = "-"


def _actions(blocks: tuple[BlockPlan, ...]) -> dict[str, str]:
    """Field path -> what one plan variant does with it."""
    return {
        field_path(block, name): (f"band as {band[0]}" if band else action.name.lower())
        for block, ops in blocks
        for name, action, _, band in ops
    }


def _route_lines(plan: RoutePlan) -> list[str]:
    variants = {name: _actions(blocks) for name, blocks in plan.variants().items()}
    conditions = [f"consent {flag}" for flag in plan.requires]
    if plan.age_band_not:
        conditions.append(f"age band not {', '.join(sorted(plan.age_band_not))}")
    lines = [
        f"route {plan.route} -> {plan.schema} (domain {plan.domain})",
        f"  requires: {'; '.join(conditions) or _NONE}",
        f"  message key: the first present of {', '.join(field_path(*f) for f in plan.key_from)}"
        if plan.key_from
        else "  message key: none",
    ]
    for name in variants:
        when = _CONDITIONS.get(name, f"{plan.reduced_by} is off")
        lines.append(f"  variant {name}: {when}")
    rows = [["field", *variants]]
    paths = dict.fromkeys(path for actions in variants.values() for path in actions)
    rows += [[path, *(v.get(path, _NONE) for v in variants.values())] for path in paths]
    if plan.coarsen:
        rows.append(["location", *("coarsen to city" for _ in variants)])
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines += [
        "  " + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]
    return lines


def policy_table(policy: Policy) -> str:
    """The policy as text: the defaults without a consent record, then per route its
    conditions, message key, variants and a field-by-variant table of actions."""
    defaults = ", ".join(
        f"{flag} {'on' if on else 'off'}"
        for flag, on in policy.summary()["without_consent_record"].items()
    )
    lines = [f"policy {policy.version}", f"without a consent record: {defaults}"]
    for plan in policy.routes:
        lines += ["", *_route_lines(plan)]
    lines += ["", f"({_NONE}: none, or not sent; a field no route lists is dropped)"]
    return "\n".join(lines)


def generated_code(policy: Policy) -> list[tuple[str, str]]:
    """(what it is, Python source) of every function the pipeline generates under
    ``policy``. The source holds no key: a throwaway keyring stands in for the real one."""
    return Pipeline(Keyring.generate(), policy=policy).generated_code()
