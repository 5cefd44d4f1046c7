"""A worker whose policy leaks: the live leak canary's test seam.

The policy is the default one with ``device.imei`` kept raw in ``clean.recommendation`` (and
so in its message key, which the route takes from the IMEI among others): the policy change
an operator might make by mistake. ``compile_policy`` refuses that document at start-up, so
no production worker can run it; this module builds the plan the check would have refused
and hands it to ``StreamWorker`` through its ``policy`` argument, which only tests use.

Run with the usual ``PSEUDOSTREAM_*`` settings: ``python -m tests.integration.leaky_worker``.
"""

from __future__ import annotations

import copy
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from processor.pipeline.kinds import IdKind
from processor.pipeline.outcome import Route
from processor.pipeline.policy import Action, BlockPlan, Policy, compile_policy
from schemas import load_policy

LEAKED_FIELD = "device.imei"
COMMAND = ("-m", "tests.integration.leaky_worker")


def leaky_policy_document() -> dict[str, Any]:
    """The default policy with the IMEI kept raw on the recommendation route."""
    document = copy.deepcopy(load_policy())
    document["routes"][Route.RECOMMENDATION.value]["fields"][LEAKED_FIELD] = "keep"
    return document


def write_leaky_policy(path: Path) -> Path:
    path.write_text(json.dumps(leaky_policy_document()))
    return path


def _keep_imei(blocks: tuple[BlockPlan, ...]) -> tuple[BlockPlan, ...]:
    return tuple(
        (block, tuple((n, Action.KEEP if k is IdKind.IMEI else a, k, b) for n, a, k, b in ops))
        for block, ops in blocks
    )


def leaky_policy() -> Policy:
    """What :func:`leaky_policy_document` would compile to if the start-up check let it."""
    policy = compile_policy()
    routes = tuple(
        replace(plan, full=_keep_imei(plan.full)) if plan.route is Route.RECOMMENDATION else plan
        for plan in policy.routes
    )
    return replace(policy, version=f"{policy.version}+leaky-imei", routes=routes)


def main() -> int:
    from processor.kafka.keywatch import load_keyring
    from processor.kafka.worker import StreamWorker
    from processor.ops.logs import configure
    from processor.ops.settings import Settings

    settings = Settings.load()
    configure(settings.log_level)
    worker = StreamWorker(settings, load_keyring(settings), policy=leaky_policy())
    worker.view.topics_present = True  # the test's stack created them
    return worker.run()


if __name__ == "__main__":
    raise SystemExit(main())
