"""``pseudostream bench core|e2e|scale|memory|all``: the benchmarks of
:mod:`processor.devtools.benchmark`, each printing a table and writing JSON."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from processor.cli import main
from processor.errors import ConfigError, PseudostreamError

_KINDS = ("core", "e2e", "scale", "memory", "all")


def _settings(pairs: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise ConfigError(f"--set {pair!r}: expected NAME=VALUE, e.g. --set batch_size=1000")
        out[name.strip().lower()] = value.strip()
    return out


@main.command()
@click.argument("kind", type=click.Choice(_KINDS), default="e2e")
@click.option(
    "--events",
    type=click.IntRange(min=100),
    help="Records per run (default: 100,000 for core, 200,000 for the others).",
)
@click.option("--rounds", type=click.IntRange(min=1), help="Rounds (default: 3; memory: 1).")
@click.option(
    "--json",
    "json_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where to write the JSON (default: bench/results/KIND.json; with 'all', a directory).",
)
@click.option(
    "--contenders",
    default="passthrough,quix,worker",
    show_default=True,
    help="e2e: comma-separated, in round order; also aiokafka-pipeline, worker-baseline,"
    " worker-no-canary (the leak canary's cost next to worker), worker-auto (worker"
    " --processes auto: the whole machine).",
)
@click.option(
    "--latency-seconds",
    type=click.FloatRange(min=0),
    default=10.0,
    show_default=True,
    help="e2e: seconds of fixed-rate input per contender for latency (0 skips it).",
)
@click.option(
    "--latency-rate",
    type=click.FloatRange(min=1),
    help="e2e: the fixed rate of the latency runs, events/s (default: half the worker's median).",
)
@click.option(
    "--latency-rounds",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="e2e: alternating latency rounds (medians reported).",
)
@click.option("--partitions", type=click.IntRange(1, 64), default=4, show_default=True)
@click.option(
    "--set",
    "settings",
    multiple=True,
    metavar="NAME=VALUE",
    help="A worker setting for every worker run (docs/worker.md), e.g. --set batch_size=1000.",
)
@click.option(
    "--baseline-src",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    help="e2e: a source tree whose worker runs as the worker-baseline contender; core: a"
    " source tree whose pipeline runs next to this one's.",
)
@click.option(
    "--workdir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Keep logs, stats files and the broker log here (default: a temporary directory).",
)
def bench(
    kind: str,
    events: int | None,
    rounds: int | None,
    json_path: Path | None,
    contenders: str,
    latency_seconds: float,
    latency_rate: float | None,
    latency_rounds: int,
    partitions: int,
    settings: tuple[str, ...],
    baseline_src: Path | None,
    workdir: Path | None,
) -> None:
    """Benchmarks: core (pipeline vs naive, one core), e2e (worker vs aiokafka pass-through
    vs quixstreams on a fresh embedded broker, plus latency), scale (1 vs 2 workers),
    memory (worker RSS). See docs/benchmarks.md."""
    from processor.devtools.benchmark import RESULTS_DIR, report, write_json
    from processor.devtools.benchmark import e2e as e2e_module

    chosen = [c.strip() for c in contenders.split(",") if c.strip()]
    known = (*e2e_module.CONTENDERS, *e2e_module.OPTIONAL_CONTENDERS)
    unknown = [c for c in chosen if c not in known]
    if unknown or not chosen:
        raise ConfigError(
            f"--contenders: unknown {unknown[0]!r}; choose from {', '.join(known)}"
            if unknown
            else "--contenders: name at least one"
        )
    if "worker-baseline" in chosen and baseline_src is None:
        raise ConfigError("--contenders worker-baseline needs --baseline-src DIR")
    if kind in ("e2e", "all") and "quix" in chosen:
        e2e_module.require_quix()  # before starting anything

    worker_settings = _settings(settings)

    def plan(default_rounds: int) -> e2e_module.Plan:
        return e2e_module.Plan(
            events=events or 200_000,
            rounds=rounds or default_rounds,
            partitions=partitions,
            workdir=workdir,
            worker_settings=worker_settings,
        )

    jobs: dict[str, Callable[[], dict[str, Any]]] = {
        "core": lambda: _core(events, rounds, baseline_src),
        "e2e": lambda: e2e_module.run_e2e(
            plan(3),
            contenders=chosen,
            latency_seconds=latency_seconds,
            latency_rate=latency_rate,
            latency_rounds=latency_rounds,
            baseline_src=baseline_src,
            say=click.echo,
        ),
        "scale": lambda: e2e_module.run_scale(plan(3), click.echo),
        "memory": lambda: e2e_module.run_memory(plan(1), click.echo),
    }
    names = list(jobs) if kind == "all" else [kind]
    for name in names:
        result = jobs[name]()
        click.echo(report.table(result))
        if json_path is None:
            path = RESULTS_DIR / f"{name}.json"
        else:
            path = json_path / f"{name}.json" if kind == "all" else json_path
        write_json(path, result)
        click.echo(f"wrote {path}")
        leaks = result.get("leak_scan", {}).get("findings")
        if leaks:  # the figures are written, but a benchmark that leaked must not pass quietly
            raise PseudostreamError(
                f"the leak scanner found {leaks} raw identifier(s) in {name}'s outputs"
                f" ({result['leak_scan']['kinds']}): see {path}"
            )


def _core(events: int | None, rounds: int | None, baseline_src: Path | None) -> dict[str, Any]:
    from processor.devtools.benchmark.core import run_core

    return run_core(events=events or 100_000, rounds=rounds or 3, baseline_src=baseline_src)
