"""The live leak canary's CPU per input, without a broker: the worker's loop shape
(``Pipeline.process`` for every input, ``LeakCanary.check`` when the countdown reaches 0)
at several sampling fractions, rounds alternating, process CPU time, medians; then
``LeakCanary.check`` alone on every input (the cost of one sampled input), which times the
fraction is the cost per input without the loop's run-to-run noise.

python bench/canary.py [--events 50000] [--rounds 7] [--fractions 0,0.001,0.002,0.01]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Sequence

from keys import Keyring
from processor.devtools import synth
from processor.ops.canary import LeakCanary
from processor.ops.metrics import WorkerMetrics
from processor.ops.settings import Settings
from processor.pipeline.outcome import SourceRef
from processor.pipeline.process import Pipeline


def cpu_us_per_input(
    records: list[tuple[str, bytes | None, bytes]], keyring: Keyring, fraction: float
) -> float:
    pipeline = Pipeline(keyring)  # a fresh one per run: caches start cold alike
    canary = LeakCanary(fraction, Settings().output_topics, WorkerMetrics(), "bench")
    process, countdown = pipeline.process, canary.countdown
    started = time.process_time()
    for offset, (source, key, value) in enumerate(records):
        outcome = process(value, SourceRef(source, 0, offset), key)
        countdown -= 1
        if not countdown:
            countdown = canary.check(value, outcome.records, SourceRef(source, 0, offset))
    return (time.process_time() - started) / len(records) * 1e6


def check_us_per_sample(records: list[tuple[str, bytes | None, bytes]], keyring: Keyring) -> float:
    pipeline = Pipeline(keyring)
    outcomes = [
        (value, pipeline.process(value, SourceRef(source, 0, offset), key))
        for offset, (source, key, value) in enumerate(records)
    ]
    canary = LeakCanary(1.0, Settings().output_topics, WorkerMetrics(), "bench")
    started = time.process_time()
    for offset, (value, outcome) in enumerate(outcomes):
        canary.check(value, outcome.records, SourceRef("bench", 0, offset))
    return (time.process_time() - started) / len(outcomes) * 1e6


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--fractions", default="0,0.001,0.002,0.01")
    args = parser.parse_args(argv)
    fractions = [float(f) for f in args.fractions.split(",")]
    records = list(synth.generate(args.events, seed=7, users=2000))
    keyring = Keyring.generate()
    runs: dict[float, list[float]] = {f: [] for f in fractions}
    for _ in range(args.rounds):
        for fraction in fractions:
            runs[fraction].append(cpu_us_per_input(records, keyring, fraction))
    off = statistics.median(runs[fractions[0]])
    print(f"{args.events:,} inputs, {args.rounds} alternating rounds, CPU µs per input (median)")
    for fraction, values in runs.items():
        median = statistics.median(values)
        print(
            f"fraction {fraction:<6} {median:6.2f}  ({median - off:+5.2f} against {fractions[0]})"
            f"  runs {', '.join(f'{v:.1f}' for v in values)}"
        )
    per_sample = statistics.median(
        check_us_per_sample(records[: args.events // 5], keyring) for _ in range(args.rounds)
    )
    print(f"LeakCanary.check alone: {per_sample:.0f} µs per sampled input (median)")
    for fraction in fractions:
        print(f"  x fraction {fraction:<6} = {per_sample * fraction:5.2f} µs per input")
    return 0
