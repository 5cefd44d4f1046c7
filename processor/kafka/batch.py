"""One batch of input messages through the pipeline: consent records first, then the rest
in arrival order, each through :meth:`processor.pipeline.process.Pipeline.process`; the
outputs become producer sends, the state changes changelog entries, and the outcomes are
tallied for the stats file and the metrics. No I/O here: the worker hands the result to
:class:`processor.kafka.checkpoint.Checkpoint`."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from processor.kafka.produce import ChangelogEntry, Send
from processor.pipeline.outcome import Route, SourceRef

if TYPE_CHECKING:
    from faust.types import TP, Message

    from processor.kafka.adstats import AdStatsTable
    from processor.kafka.devicelinks import DeviceLinkTable
    from processor.kafka.tables import TableConsentState
    from processor.ops.canary import LeakCanary
    from processor.pipeline.process import Pipeline


@dataclass(slots=True)
class Processed:
    """A batch after the pipeline: what to produce, and what to count once delivered."""

    messages: list[Message]  # in the order processed
    sends: list[Send]
    changelog: list[ChangelogEntry]
    tallies: Counter[str]
    quarantined: Counter[str] = field(default_factory=Counter)
    suppressed: Counter[str] = field(default_factory=Counter)
    pseudonyms: Counter[str] = field(default_factory=Counter)
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
        """The metrics count pseudonyms by the ``"<key id>:`` prefix of each route's key."""
        pipeline = self.pipeline
        self._pseudonym_prefix = {
            plan.route: (
                str(plan.domain),
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
        logical = self._logical
        consent = self._consent
        devices = self._devices
        sends: list[Send] = []
        out_topics = self._out_topics
        routed = quarantined = suppressed = 0
        done = Processed(ordered, sends, consent.pending, Counter())
        reasons_q = done.quarantined
        reasons_s = done.suppressed
        pseudonyms = done.pseudonyms
        event_times = done.event_times
        prefixes = self._pseudonym_prefix
        last_seen = self._last_seen
        ad_route = Route.AD_ANALYTICS
        ad_records: list[tuple[int, str, bytes]] = []
        canary = self._canary
        countdown = canary.countdown  # inputs until the leak canary's next sample
        for message in ordered:
            topic = message.topic
            value: bytes | None = message.value
            last_seen[message.tp] = message.offset
            if topic == consent_topic:
                consent.partition = message.partition
            devices.partition = message.partition  # links live in the user's partition
            outcome = process(
                value if value is not None else b"",
                SourceRef(logical.get(topic, topic), message.partition, message.offset),
                message.key,
            )
            countdown -= 1
            if not countdown:
                countdown = canary.check(
                    value or b"",
                    outcome.records,
                    SourceRef(topic, message.partition, message.offset),
                )
            for record in outcome.records:
                key = record.key.encode() if record.key is not None else None
                sends.append((out_topics[record.route], key, record.value, record.headers or None))
                if record.route is ad_route:
                    ad_records.append((message.partition, topic, record.value))
                domain_prefix = prefixes.get(record.route)
                if domain_prefix is not None:
                    pseudonyms[domain_prefix[0]] += record.value.count(domain_prefix[1])
            if outcome.event_time is not None:
                event_times.append(outcome.event_time)
            if outcome.quarantined:
                quarantined += 1
                reasons_q[outcome.quarantined] += 1
            elif outcome.suppressed:
                suppressed += 1
                reasons_s[outcome.suppressed] += 1
            else:
                routed += 1
        if devices.pending:  # links and erased identifiers ride with the batch too
            consent.pending += devices.pending
            devices.pending.clear()
        canary.countdown = countdown
        if self._ad_stats is not None:  # state changes and closed windows ride with the batch
            self._ad_stats.add(ad_records)
            stats_sends, stats_changelog = self._ad_stats.flush(*self._partitions_read())
            sends += stats_sends
            consent.pending += stats_changelog
        done.tallies.update(
            {
                "in": len(ordered),
                "routed": routed,
                "quarantined": quarantined,
                "suppressed": suppressed,
                "batches": 1,
            }
        )
        return done
