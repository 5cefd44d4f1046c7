"""Pipeline throughput on one core, next to a naive baseline measured in the same run.

    python bench/core.py [--events 100000] [--rounds 3] [--json bench/results/core.json]

The input is the synthetic platform mix (`processor.synth`: most devices send many events,
identifiers in varied spellings, consent records first). Both contenders apply the default
policy to the same bytes; the baseline is what one writes first: stdlib json, a deep copy
per route, one `hmac.new` per identifier, no cache (and no consent, location or checks).
Figures are CPU seconds of this process (`time.process_time`), best of the rounds.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import hmac
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

from keys import Domain, Keyring
from processor import synth
from processor.canonical import canonicalize
from processor.geo import build_locator
from processor.kinds import IdKind
from processor.outcome import SourceRef
from processor.pipeline import Pipeline
from processor.scrub import scrub_text
from schemas import load_policy, load_roles


def naive_transform(keyring: Keyring) -> Callable[[bytes], list[bytes]]:
    """The obvious implementation of the default policy (consent ignored: all routes)."""
    policy = load_policy()
    roles = load_roles()
    keys = {d: (keyring.active(d).key_id, keyring.active(d).pseudonym_key()) for d in Domain}

    def pseudonym(domain: Domain, kind: str, value: Any) -> str | None:
        canonical = canonicalize(IdKind(kind), value)
        if canonical is None:
            return None
        key_id, key = keys[domain]
        digest = hmac.new(
            key, kind.encode() + b"\x00" + canonical.encode(), hashlib.sha256
        ).hexdigest()
        return f"{key_id}:{digest[:32]}"

    def transform(raw: bytes) -> list[bytes]:
        try:
            event = json.loads(raw)
        except ValueError:
            return []  # the naive way to "quarantine"
        if not isinstance(event, dict) or event.get("schema") == "consent/1":
            return []
        outputs = []
        for route in policy["routes"].values():
            record = copy.deepcopy(event)
            for path, role in roles.items():
                block, _, name = path.rpartition(".")
                holder = record.get(block) if block else record
                if not isinstance(holder, dict) or holder.get(name) is None:
                    continue
                action = route["fields"].get(path)
                if action is None:
                    del holder[name]
                elif action == "pseudonym":
                    holder[name] = pseudonym(Domain(route["domain"]), str(role.kind), holder[name])
                elif action == "scrub":
                    holder[name] = scrub_text(holder[name])
            outputs.append(json.dumps(record, ensure_ascii=False).encode())
        return outputs

    return transform


def measure(fn: Callable[[bytes], object], records: list[bytes], rounds: int) -> float:
    """Best events per CPU-second over ``rounds`` passes."""
    best = 0.0
    for _ in range(rounds):
        start = time.process_time()
        for value in records:
            fn(value)
        elapsed = time.process_time() - start
        best = max(best, len(records) / elapsed)
    return best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", type=Path, default=Path("bench/results/core.json"))
    args = parser.parse_args(argv)

    records = [value for _, _, value in synth.generate(args.events, seed=7)]
    keyring = Keyring.generate()
    source = SourceRef("raw.behaviour", 0, 0)

    def fresh() -> Callable[[bytes], object]:
        pipeline = Pipeline(keyring, locator=build_locator())

        def run(value: bytes) -> object:
            return [r.value for r in pipeline.process(value, source).records]

        return run

    naive = naive_transform(keyring)
    rss_before = psutil.Process().memory_info().rss
    ours = measure(fresh(), records, args.rounds)
    rss = psutil.Process().memory_info().rss
    baseline = measure(naive, records, max(1, args.rounds - 1))
    result = {
        "benchmark": "core",
        "events": len(records),
        "mean_event_bytes": round(sum(map(len, records)) / len(records)),
        "pipeline_events_per_cpu_s": round(ours),
        "naive_events_per_cpu_s": round(baseline),
        "speedup_vs_naive": round(ours / baseline, 2),
        "rss_mb": round(rss / 2**20, 1),
        "rss_input_mb": round(rss_before / 2**20, 1),
        "python": sys.version.split()[0],
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.processor() or 'cpu'}",
    }
    print(f"{'contender':<28}{'events/s/core':>15}")
    print(f"{'pseudostream pipeline':<28}{ours:>15,.0f}")
    print(f"{'naive baseline':<28}{baseline:>15,.0f}")
    print(
        f"speed-up {ours / baseline:.2f}x; RSS {result['rss_mb']} MB "
        f"(of which the {len(records):,} input records {result['rss_input_mb']} MB)"
    )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
