"""The table each benchmark prints (plain text, so it pastes into docs and issues)."""

from __future__ import annotations

from typing import Any


def _fmt(value: Any, suffix: str = "") -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and not value.is_integer():
        return f"{value:,.1f}{suffix}"
    return f"{value:,.0f}{suffix}"


def _rows(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(
            str(cell).ljust(w) if i == 0 else str(cell).rjust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in [header, *rows]
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _e2e(result: dict[str, Any]) -> str:
    from processor.devtools.benchmark.e2e import BROKER_FLOOR, LABELS

    header = ["contender", "events/s", "client µs/ev", "broker µs/ev", "p50 ms", "p99 ms", "RSS MB"]
    rows = []
    for kind, m in result["medians"].items():
        lat = result.get("latency", {}).get(kind, {})
        rate = m["events_per_second"]  # a median of two rounds can end in .5
        rows.append(
            [
                LABELS.get(kind, kind),
                _fmt(None if rate is None else round(rate)),
                _fmt(m["client_cpu_us_per_event"]),
                _fmt(m["broker_cpu_us_per_event"]),
                _fmt(lat.get("p50_ms")),
                _fmt(lat.get("p99_ms")),
                _fmt(m["rss_peak_mb"]),
            ]
        )
    lines = [
        f"end-to-end: {result['events']:,} records of {result['mean_event_bytes']} bytes (mean), "
        f"{result['partitions']} partitions, median of {result['rounds']} alternating round(s)",
        _rows(header, rows),
    ]
    for kind in ("worker", "worker_auto"):
        label = kind.replace("_", "-")
        if f"{kind}_share_of_passthrough_pct" in result:
            share = result[f"{kind}_share_of_passthrough_pct"]
            lines.append(f"{label} = {share} % of the pass-through")
        if f"{kind}_vs_quix" in result:
            lines.append(f"{label} = {result[f'{kind}_vs_quix']}x quixstreams")
    if "canary_events_per_second_change_pct" in result:
        lines.append(
            f"leak canary on vs off: {result['canary_events_per_second_change_pct']:+} % events/s,"
            f" {result.get('canary_cpu_per_event_change_pct', 0.0):+} % client CPU per event"
        )
    if result.get("latency"):
        rate = next(iter(result["latency"].values()))["rate"]
        lines.append(f"latency at a fixed {rate:,} events/s")
        floor = result["latency"].get(BROKER_FLOOR)
        if floor:
            lines.append(
                f"broker floor, one hop (producer -> Tansu -> consumer, fresh topics, same rate):"
                f" p50 {floor['p50_ms']} ms, p99 {floor['p99_ms']} ms; a contender's path has two"
            )
    for name, met in result.get("targets", {}).items():
        lines.append(f"target {name}: {'-' if met is None else 'met' if met else 'NOT met'}")
    return "\n".join(lines)


def _scale(result: dict[str, Any]) -> str:
    header = [
        "processes",
        "events/s",
        "client µs/ev",
        "client CPU (cores)",
        "broker CPU (cores)",
        "RSS MB each",
    ]
    rows = [
        [
            n,
            _fmt(m["events_per_second"]),
            _fmt(m["client_cpu_us_per_event"]),
            _fmt(m["client_cpu_share"]),
            _fmt(m["broker_cpu_share"]),
            _fmt(m["rss_peak_mb"]),
        ]
        for n, m in result["medians"].items()
    ]
    return "\n".join(
        [
            f"scale: worker --processes 1 vs 2, {result['events']:,} records, "
            f"{result['partitions']} partitions, median of {result['rounds']} alternating round(s)",
            _rows(header, rows),
            f"2 processes / 1 process = {_fmt(result['two_vs_one'])}x events/s,"
            f" {_fmt(result['cpu_per_event_two_vs_one'])}x client CPU per event",
        ]
    )


def _memory(result: dict[str, Any]) -> str:
    return (
        f"memory: worker RSS while processing {result['events']:,} records: peak "
        f"{result['rss_peak_mb']} MB, median {result['rss_median_mb']} MB "
        f"(target < 300 MB: {'met' if result['target_rss_under_300mb'] else 'NOT met'})"
    )


def _core(result: dict[str, Any]) -> str:
    header = ["contender", "events/s/core"]
    rows = [
        ["pseudostream pipeline", _fmt(result["pipeline_events_per_cpu_s"])],
        ["pseudostream pipeline, first pass", _fmt(result["pipeline_first_pass_events_per_cpu_s"])],
        ["naive baseline", _fmt(result["naive_events_per_cpu_s"])],
        ["floor: decode, copy, encode only", _fmt(result["floor_events_per_cpu_s"])],
    ]
    lines = [
        _rows(header, rows),
        f"speed-up {result['speedup_vs_naive']}x; peak RSS of the pipeline process "
        f"{result['pipeline_peak_rss_mb']} MB; the pipeline does "
        f"{result['pipeline_share_of_floor']:.0%} of the floor's rate",
    ]
    versus = result.get("versus_baseline")
    if versus is not None:
        lines.append(
            f"against {versus['baseline_src']} (fresh processes, alternating, median of"
            f" {versus['rounds']}): {_fmt(versus['events_per_cpu_s'])} vs"
            f" {_fmt(versus['baseline_events_per_cpu_s'])} events/s warm ({versus['speedup']}x),"
            f" {_fmt(versus['first_pass_events_per_cpu_s'])} vs"
            f" {_fmt(versus['baseline_first_pass_events_per_cpu_s'])} on a first pass"
            f" ({versus['first_pass_speedup']}x)"
        )
    scrub = result.get("scrub", {})  # none in results written before it was measured
    if "scrub_us_per_16_char_comment" in scrub:
        line = (
            f"free-text scrubber: {scrub['scrub_us_per_16_char_comment']} µs per 16-character "
            "comment (CPU)"
        )
        if "texts" in scrub:
            line += (
                f"; over the stream's {scrub['texts']:,} texts {scrub['scrub_us_per_text']} µs, "
                f"{scrub['scrub_us_per_median_text']} µs at their median length "
                f"({scrub['median_text_chars']} characters)"
            )
        lines.append(line)
    return "\n".join(lines)


def table(result: dict[str, Any]) -> str:
    return {"core": _core, "e2e": _e2e, "scale": _scale, "memory": _memory}[result["benchmark"]](
        result
    )
