"""One batch of input messages through the pipeline: consent records first, then the rest
in arrival order, each through :meth:`processor.pipeline.process.Pipeline.process`; the
outputs become producer sends, the state changes changelog entries, and the outcomes are
tallied for the stats file and the metrics. No I/O here: the worker hands the result to
:class:`processor.kafka.checkpoint.Checkpoint`."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, cast

from processor.kafka.produce import ChangelogEntry
from processor.pipeline.outcome import Route, Send, SourceRef

if TYPE_CHECKING:
    from faust.types import TP, Message

    from processor.kafka.adstats import AdStatsTable
    from processor.kafka.devicelinks import DeviceLinkTable
    from processor.kafka.tables import TableConsentState
    from processor.ops.canary import LeakCanary
    from processor.pipeline.process import Pipeline


# SourceRef(topic, partition, offset) without the NamedTuple's generated ``__new__`` (a
# Python-level lambda): a third of the cost, once per input
_source_ref = cast("Callable[[type[SourceRef], tuple[str, int, int]], SourceRef]", tuple.__new__)


@dataclass(slots=True)
class Processed:
    """A batch after the pipeline: what to produce, and what to count once delivered."""

    messages: list[Message]  # in the order processed
    sends: list[Send]
    changelog: list[ChangelogEntry]
    # the worker's counts of the batch (processor.kafka.statsfile.Counters has the keys)
    tallies: Counter[str]
    event_times: list[int] = field(default_factory=list)  # valid events' own times, ms


class BatchRunner:
    """The pipeline over a batch, with the worker's tables as its state."""

    def __init__(
        self,
        pipeline: Pipeline,
        consent: TableConsentState,
        devices: DeviceLinkTable,
        canary: LeakCanary,
        ad_stats: AdStatsTable | None,
        logical: Mapping[str, str],
        out_topics: Mapping[Route, str],
        consent_topic: str,
        last_seen: dict[TP, int],
        partitions_read: Callable[[], tuple[set[int], set[tuple[int, str]]]],
    ) -> None:
        self.pipeline = pipeline
        self._consent = consent
        self._devices = devices
        self._canary = canary
        self._ad_stats = ad_stats
        self._logical = dict(logical)  # physical input topic -> logical name
        self._out_topics = dict(out_topics)
        self._consent_topic = consent_topic
        self._last_seen = last_seen
        self._partitions_read = partitions_read
        self._pseudonym_prefix: dict[Route, tuple[str, bytes]] = {}
        self.keys_changed()

    def keys_changed(self) -> None:
        """Pseudonyms are counted by the ``"<key id>:`` prefix of each route's key."""
        pipeline = self.pipeline
        self._pseudonym_prefix = {
            plan.route: (
                f"pseudonyms:{plan.domain}",
                f'"{pipeline.pseudonymizers[plan.domain].key_id}:'.encode(),
            )
            for plan in pipeline.policy.routes
        }

    def run(self, messages: Sequence[Message]) -> Processed:  # noqa: PLR0915 - one inlined hot loop
        consent_topic = self._consent_topic
        # consent first: a change in this batch applies to this batch's events
        ordered = [m for m in messages if m.topic == consent_topic]
        if ordered:
            ordered += [m for m in messages if m.topic != consent_topic]
        else:
            ordered = list(messages)
        process = self.pipeline.process
        source_ref = _source_ref
        logical = self._logical
        consent = self._consent
        devices = self._devices
        sends: list[Send] = []
        out_topics = self._out_topics
        # every kind present, also at 0 (the stats file shows all three)
        tallies: Counter[str] = Counter(dict.fromkeys(("routed", "quarantined", "suppressed"), 0))
        done = Processed(ordered, sends, consent.pending, tallies)
        event_times = done.event_times
        prefixes = self._pseudonym_prefix
        last_seen = self._last_seen
        ad_route = Route.AD_ANALYTICS
        ad_records: list[tuple[int, str, bytes]] = []
        canary = self._canary
        countdown = canary.countdown  # inputs until the leak canary's next sample
        send = sends.append
        # pseudonyms counted per route, named once per batch (the tally keys)
        pseudonyms: dict[Route, int] = {}
        routed = 0
        for message in ordered:
            topic = message.topic
            value: bytes | None = message.value
            partition = message.partition
            offset = message.offset
            last_seen[message.tp] = offset
            if topic == consent_topic:
                consent.partition = partition
            devices.partition = partition  # links live in the user's partition
            outcome = process(
                value if value is not None else b"",
                source_ref(SourceRef, (logical.get(topic, topic), partition, offset)),
                message.key,
            )
            records = outcome.records
            countdown -= 1
            if not countdown:
                countdown = canary.check(value or b"", records, SourceRef(topic, partition, offset))
            for route, key, record_value, headers in records:
                send(
                    (
                        out_topics[route],
                        key.encode() if key is not None else None,
                        record_value,
                        headers,
                    )
                )
                if route is ad_route:
                    ad_records.append((partition, topic, record_value))
                domain_prefix = prefixes.get(route)
                if domain_prefix is not None:
                    pseudonyms[route] = pseudonyms.get(route, 0) + record_value.count(
                        domain_prefix[1]
                    )
            if outcome.event_time is not None:
                event_times.append(outcome.event_time)
            if outcome.quarantined:  # counted by kind and by reason (Outcome.counted_as)
                tallies["quarantined"] += 1
                tallies["quarantined:" + outcome.quarantined] += 1
            elif outcome.suppressed:
                tallies["suppressed"] += 1
                tallies["suppressed:" + outcome.suppressed] += 1
            else:
                routed += 1
        tallies["routed"] += routed
        for route, n in pseudonyms.items():
            tallies[prefixes[route][0]] += n
        if devices.pending:  # links and erased identifiers ride with the batch too
            consent.pending += devices.pending
            devices.pending.clear()
        canary.countdown = countdown
        if self._ad_stats is not None:  # state changes and closed windows ride with the batch
            self._ad_stats.add(ad_records)
            stats_sends, stats_changelog = self._ad_stats.flush(*self._partitions_read())
            sends += stats_sends
            consent.pending += stats_changelog
        tallies.update({"in": len(ordered), "batches": 1})
        for topic, n in Counter(m.topic for m in ordered).items():
            tallies["in:" + topic] = n
        return done
