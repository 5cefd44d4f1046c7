"""The worker's batch loop (processor.kafka.batch.BatchRunner) on a StreamWorker that is built
but never started: its sends and tallies are what the pipeline's outcomes say, record for
record, on the synthetic platform mix (consent records first, quarantined input, suppressed
events, both routes, ad statistics on); and what the worker does to the GC before it runs."""

from __future__ import annotations

import gc
from collections import Counter
from pathlib import Path

import orjson
import pytest
from faust.types.tuples import TP, Message

from keys import Keyring, MasterKey, save_keyring
from processor.devtools import synth
from processor.kafka.worker import StreamWorker
from processor.pipeline.outcome import Route, Send, SourceRef
from tests.unit.test_keyring_reload import settings_for
from tests.unit.test_keys import MASTER_B64

NOW_MS = 1_764_320_000_000
PARTITIONS = 4


class FixedClock:
    def wall_ms(self) -> int:
        return NOW_MS

    def monotonic(self) -> float:
        return 1000.0


def built_worker(tmp_path: Path, keyring: Keyring) -> StreamWorker:
    tmp_path.mkdir()
    path = tmp_path / "keyring.sealed"
    save_keyring(path, keyring, MasterKey.from_base64(MASTER_B64, "test"))
    return StreamWorker(settings_for(path, tmp_path), keyring, clock=FixedClock())


def unsealed(send: Send) -> Send:
    """A send without a quarantine record's sealed input (its nonce is random)."""
    topic, key, value, headers = send
    document = orjson.loads(value)
    if isinstance(document, dict):
        document.pop("sealed", None)
    return topic, key, orjson.dumps(document), headers


def messages_of(worker: StreamWorker, n: int) -> list[Message]:
    """Synthetic records as the consumer hands them over: consent records after raw ones in
    each batch too, so the runner's reordering is exercised."""
    topics = worker.settings.input_topics
    out = []
    for offset, (source, key, value) in enumerate(synth.generate(n, seed=3)):
        topic = topics[source]
        partition = sum(key or b"") % PARTITIONS
        tp = TP(topic, partition)
        out.append(Message(topic, partition, offset, 0.0, 0, None, key, value, None, tp=tp))
    return sorted(out, key=lambda m: m.topic != topics[synth.RAW_BEHAVIOUR])


def test_batch_sends_and_tallies_match_the_pipelines_outcomes(tmp_path: Path) -> None:
    keyring = Keyring.generate()
    worker = built_worker(tmp_path / "a", keyring)
    twin = built_worker(tmp_path / "b", keyring)
    messages = messages_of(worker, 3000)
    consent_topic = worker.settings.input_topics[synth.CONSENT]
    out_topics = dict(worker.settings.output_topics)
    logical = {physical: name for name, physical in worker.settings.input_topics.items()}

    done = worker.batches.run(messages)

    ordered = [m for m in messages if m.topic == consent_topic]
    ordered += [m for m in messages if m.topic != consent_topic]
    assert done.messages == ordered
    expected_sends = []
    expected: Counter[str] = Counter(dict.fromkeys(("routed", "quarantined", "suppressed"), 0))
    prefixes = {
        plan.route: (
            f"pseudonyms:{plan.domain}",
            f'"{twin.pipeline.pseudonymizers[plan.domain].key_id}:'.encode(),
        )
        for plan in twin.pipeline.policy.routes
    }
    for m in ordered:
        twin.devices.partition = m.partition
        if m.topic == consent_topic:
            twin.consent.partition = m.partition
        outcome = twin.pipeline.process(
            m.value or b"", SourceRef(logical[m.topic], m.partition, m.offset), m.key
        )
        for r in outcome.records:
            expected_sends.append(
                (out_topics[r.route], r.key.encode() if r.key else None, r.value, r.headers)
            )
            if r.route in prefixes:  # the quarantine holds no pseudonyms
                name, prefix = prefixes[r.route]
                expected[name] += r.value.count(prefix)
        kind = outcome.counted_as
        expected[kind] += 1
        if kind != "routed":
            expected[f"{kind}:{outcome.quarantined or outcome.suppressed}"] += 1
    expected.update({"in": len(ordered), "batches": 1})
    expected.update({"in:" + t: n for t, n in Counter(m.topic for m in ordered).items()})

    stats_topic = worker.settings.ad_stats_topic
    sends = [unsealed(s) for s in done.sends if s[0] != stats_topic]
    assert sends == [unsealed(s) for s in expected_sends]
    assert dict(done.tallies) == dict(expected)
    assert all(expected[k] for k in ("routed", "quarantined", "suppressed"))
    assert expected["pseudonyms:recommendation"] and expected["pseudonyms:ad-analytics"]
    assert worker.ad_stats is not None
    ad_topic = out_topics[Route.AD_ANALYTICS]
    assert sum(worker.ad_stats.counts.values()) == sum(
        1 for s in expected_sends if s[0] == ad_topic
    )


def test_run_freezes_what_startup_built_before_faust_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The cyclic GC's full collections would walk the startup objects (faust, tables, geo
    data) every time the caches' growth triggers one; the worker moves them out of reach."""
    import faust

    worker = built_worker(tmp_path / "w", Keyring.generate())
    frozen_at_start: list[int] = []
    monkeypatch.setattr(
        faust.Worker,
        "execute_from_commandline",
        lambda self: frozen_at_start.append(gc.get_freeze_count()),
    )
    try:
        assert worker.run() == 0
    finally:
        gc.unfreeze()
    assert frozen_at_start[0] > 0
