"""What the ad statistics cost the worker: the same pre-loaded input through one worker
with ``ad_stats_enabled`` off and on, alternating, on one embedded broker.

    python bench/adstats.py [--events 60000] [--rounds 2]     (processor/devtools/benchmark/adstats.py)

Each run gets its own topics and group; the figure is the worker's own
``events_per_second`` (events / time from first to last batch, docs/worker.md). The machine
is shared, so compare the two columns of the same round, not rounds or machines.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

from processor.devtools import synth
from processor.devtools.broker import EmbeddedBroker
from processor.devtools.demo import start_worker
from processor.devtools.keyring import make_keyring
from processor.kafka.topics import prepare_topics
from processor.kafka.write import produce
from processor.ops.settings import Settings


def run_once(
    broker: EmbeddedBroker, workdir: Path, keys: tuple[Path, Path], events: int, enabled: bool
) -> dict[str, float]:
    unique = uuid.uuid4().hex[:8]
    env = {
        "broker": broker.url,
        "keyring": str(keys[0]),
        "master_key_file": str(keys[1]),
        "topic_prefix": f"b{unique}.",
        "app_id": f"bench-{unique}",
        "session_timeout": "6",
        "ad_stats_enabled": "true" if enabled else "false",
    }
    settings = Settings.load({f"PSEUDOSTREAM_{k.upper()}": v for k, v in env.items()})
    prepare_topics(settings)
    topics = settings.input_topics
    fed = produce(broker.address, ((topics[s], k, v) for s, k, v in synth.generate(events, seed=3)))
    (workdir / unique).mkdir()
    worker = start_worker(0, workdir / unique, env)
    deadline = time.monotonic() + 600
    try:
        while int(worker.stats().get("in", 0)) < fed:
            if time.monotonic() > deadline:
                raise SystemExit(f"worker did not finish; log: {worker.log_file}")
            time.sleep(0.5)
    finally:
        worker.stop()
    stats = worker.stats()
    return {
        "events_per_second": float(stats["events_per_second"]),
        "windows_closed": float(stats.get("ad_stats", {}).get("windows_closed", 0)),
        "counted": float(stats.get("ad_stats", {}).get("counted", 0)),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=60_000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        keys = make_keyring(workdir)
        broker = EmbeddedBroker(log_file=workdir / "tansu.log").start()
        try:
            for rnd in range(args.rounds):
                off = run_once(broker, workdir, keys, args.events, enabled=False)
                on = run_once(broker, workdir, keys, args.events, enabled=True)
                ratio = on["events_per_second"] / off["events_per_second"]
                print(
                    f"round {rnd}: ad_stats off {off['events_per_second']:,.0f} ev/s, "
                    f"on {on['events_per_second']:,.0f} ev/s ({ratio:.0%}); "
                    f"ad records counted {on['counted']:,.0f}"
                )
        finally:
            broker.stop()
    return 0
