"""Pipeline throughput on one core, next to a naive baseline measured in the same run.

    pseudostream bench core [--events 100000] [--rounds 3] [--json bench/results/core.json]
    python bench/core.py    [--events 100000] [--rounds 3] [--json bench/results/core.json]

The input is the synthetic platform mix (`processor.devtools.synth`: most devices send many events,
identifiers in varied spellings, consent records first). Both contenders apply the default
policy to the same bytes; the baseline is what one writes first: stdlib json, a deep copy
per route, one `hmac.new` per identifier, no cache (and no consent, location or checks).
The free-text scrubber's own cost is measured on the texts of the same records (CPU
microseconds per text, for the texts of the median length and over all of them), and on
comments of 16 characters, the median length of live-stream comments (a fixed sample: plain
chatter, counts and dates, product names, and one in four with personal data).
A third line, the floor, is the pipeline with every check taken out (decode, the allow-listed
copies with cached pseudonyms, encode): the most any pure-Python pipeline could reach here.
Figures are CPU seconds of the measuring thread (`time.thread_time`: a progress bar's
or a leftover thread's CPU is not charged to a contender), best of the rounds, each round
after an untimed warm-up and a full garbage collection; from the second round on, every
pseudonym is cached. The pipeline's first pass over the records (caches empty, as after a
restart) is reported too.
"""

from __future__ import annotations

import argparse
import copy
import gc
import hashlib
import hmac
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
from rich.progress import Progress

from keys import Domain, Keyring
from processor.devtools import synth
from processor.devtools.benchmark import RESULTS_DIR, machine, write_json
from processor.devtools.benchmark.report import table
from processor.pipeline.binding import TRUSTED_SOURCE
from processor.pipeline.canonical import canonicalize
from processor.pipeline.geo import build_locator
from processor.pipeline.kinds import IdKind
from processor.pipeline.outcome import SourceRef
from processor.pipeline.policy import compile_policy
from processor.pipeline.process import Pipeline
from processor.pipeline.project import compile_projector
from processor.pipeline.pseudonym import Pseudonymizer
from processor.pipeline.scrub import scrub_text
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


def floor_transform(keyring: Keyring) -> Callable[[bytes], list[bytes]]:
    """A lower bound for any pure-Python implementation of the policy: decode, the two
    routes' allow-listed copies with cached pseudonyms (the pipeline's own compiled
    projections, full variants), encode. No validation, consent, location, quarantine or
    accounting: what is left when every check is taken out."""
    policy = compile_policy()
    projectors = [
        compile_projector(
            plan,
            "full",
            plan.full,
            pseudonymizer=Pseudonymizer(keyring.active(plan.domain)),
            policy_version=policy.version,
            headers=(),
        )
        for plan in policy.routes
    ]

    def transform(raw: bytes) -> list[bytes]:
        try:
            event = orjson.loads(raw)
            schema = event["schema"]
            if schema == "consent/1":
                return []
            return [project(event, schema, None).value for project in projectors]
        except Exception:  # unchecked input: a malformed record just gives nothing here
            return []

    return transform


_WARM_UP = 1_000


def measure_once(fn: Callable[[bytes], object], records: list[bytes]) -> float:
    """Events per CPU-second of one timed pass, without a warm-up."""
    gc.collect()
    start = time.thread_time()
    for value in records:
        fn(value)
    return len(records) / (time.thread_time() - start)


def measure(name: str, fn: Callable[[bytes], object], records: list[bytes], rounds: int) -> float:
    """Best events per CPU-second over ``rounds`` passes (progress shown between passes,
    never inside the timed loop)."""
    for value in records[:_WARM_UP]:  # first-call costs are not the steady state
        fn(value)
    best = 0.0
    with Progress(transient=True) as progress:
        task = progress.add_task(name, total=rounds)
        for _ in range(rounds):
            best = max(best, measure_once(fn, records))
            progress.advance(task)
    return best


_SCRUB_MIN_SECONDS = 0.3
# Comments of 16 characters (give or take two), as people write them; 2 of 8 hold personal data.
COMMENTS_16 = (
    "今天的直播太好看了主播唱歌真好听",
    "第12集2024-05-01更新了吗",
    "主播加油，已经连续看了365天了",  # noqa: RUF001 - comments use full-width commas
    "加我微信lily_2024一起玩吧",
    "电话13812345678找我有事",
    "这个RTX4090显卡多少钱啊",
    "下周三晚上8点还有直播吗？",  # noqa: RUF001
    "哈哈哈哈哈哈笑死我了666",
)


def _scrub_us_per_text(sample: list[str]) -> float:
    """CPU µs per text of ``sample``, repeated until it took long enough to time."""
    for text in sample[:_WARM_UP]:
        scrub_text(text)
    done, start = 0, time.thread_time()
    while (elapsed := time.thread_time() - start) < _SCRUB_MIN_SECONDS:
        for text in sample:
            scrub_text(text)
        done += len(sample)
    return elapsed / done * 1e6


def scrub_cost(records: list[bytes]) -> dict[str, Any]:
    """CPU µs per free text: 16-character comments, and the free texts (queries, comments)
    of ``records``, those of the median length and all of them."""
    cost: dict[str, Any] = {
        "scrub_us_per_16_char_comment": round(_scrub_us_per_text(list(COMMENTS_16)), 2)
    }
    texts: list[str] = []
    for raw in records:
        try:
            event = orjson.loads(raw)
        except orjson.JSONDecodeError:
            continue  # the stream's malformed records
        payload = event.get("payload") if isinstance(event, dict) else None
        if isinstance(payload, dict):
            texts.extend(v for k, v in payload.items() if k in ("query", "text") and v)
    if texts:  # the synthetic stream starts with consent records: a short one has none
        median = round(statistics.median(len(t) for t in texts))
        closest = min(abs(len(t) - median) for t in texts)
        at_median = [t for t in texts if abs(len(t) - median) == closest]
        cost |= {
            "texts": len(texts),
            "median_text_chars": median,
            "scrub_us_per_median_text": round(_scrub_us_per_text(at_median), 2),
            "scrub_us_per_text": round(_scrub_us_per_text(texts), 2),
        }
    return cost


def _stream_rss(path: Path) -> None:
    """Child process: stream the records through a pipeline (with the geo data loaded) and
    print the peak RSS in MB, so the figure holds no benchmark harness."""
    pipeline = Pipeline(Keyring.generate(), locator=build_locator())
    source = SourceRef(TRUSTED_SOURCE, 0, 0)  # the lines' topics are not in the file
    with path.open("rb") as lines:
        for line in lines:
            pipeline.process(line.rstrip(b"\n"), source)
    # VmHWM: the peak of this process image (ru_maxrss would count the forked parent too).
    status = Path("/proc/self/status").read_text()
    peak_kb = next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:"))
    print(int(peak_kb) / 1024)


def pipeline_rss_mb(records: list[bytes]) -> float:
    with tempfile.NamedTemporaryFile(suffix=".jsonl") as file:
        file.write(b"\n".join(r.replace(b"\n", b" ") for r in records) + b"\n")
        file.flush()
        out = subprocess.run(  # noqa: S603 - our own module, a temporary file
            [sys.executable, "-m", "processor.devtools.benchmark.core", "--rss-child", file.name],
            check=True,
            capture_output=True,
            text=True,
        )
    return float(out.stdout.strip())


def run_core(*, events: int = 100_000, rounds: int = 3) -> dict[str, Any]:
    """Both contenders over the same ``events`` synthetic records; the JSON result."""
    generated = list(synth.generate(events, seed=7))
    records = [value for _, _, value in generated]
    # each record from its own input topic, as the worker reads it (bytes cache their hash)
    source_of = {value: SourceRef(source, 0, 0) for source, _, value in generated}
    keyring = Keyring.generate()

    def fresh() -> Callable[[bytes], object]:
        pipeline = Pipeline(keyring, locator=build_locator())

        def run(value: bytes) -> object:
            return [r.value for r in pipeline.process(value, source_of[value]).records]

        return run

    naive = naive_transform(keyring)
    # Every identifier and place is new to a fresh pipeline: the rate a restarted worker
    # starts at, and the one a stream of mostly new devices keeps.
    cold = measure_once(fresh(), records)
    ours = measure("pseudostream pipeline", fresh(), records, rounds)
    floor = measure("floor (decode, copy, encode)", floor_transform(keyring), records, rounds)
    baseline = measure("naive baseline", naive, records, max(1, rounds - 1))
    rss = pipeline_rss_mb(records)
    scrub = scrub_cost(records)
    return {
        "benchmark": "core",
        "events": len(records),
        "mean_event_bytes": round(sum(map(len, records)) / len(records)),
        "rounds": rounds,
        "pipeline_events_per_cpu_s": round(ours),
        "pipeline_first_pass_events_per_cpu_s": round(cold),
        "naive_events_per_cpu_s": round(baseline),
        "speedup_vs_naive": round(ours / baseline, 2),
        "floor_events_per_cpu_s": round(floor),
        "pipeline_share_of_floor": round(ours / floor, 3),
        "pipeline_peak_rss_mb": round(rss, 1),
        "scrub": scrub,
        **machine(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", type=Path, default=RESULTS_DIR / "core.json")
    parser.add_argument("--rss-child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.rss_child:
        _stream_rss(args.rss_child)
        return 0
    result = run_core(events=args.events, rounds=args.rounds)
    print(table(result))
    write_json(args.json, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
