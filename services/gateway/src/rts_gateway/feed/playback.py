"""What the dashboard shows of playback and detections: records in, aggregates and emits out.

Runs in the app context, fed by the feed's consumer groups (see feature.py). Emitted
through the Kafka-backed Socket.IO manager, so every browser on every replica gets it.
A client takes its messages one of two ways (feature.py puts it in the rooms below):
- one by one (every client, until it asks otherwise; the baseline's way): `new_event`
  per playback event, at most `event_sample_rate` per second per replica (the rest only
  feed the aggregates), to SINGLE; `qoe`, each owned partition's aggregate once a second
  (see qoe.py); `detection`, every valid detection as it arrives, only to dashboards
  whose sign-in covers its camera;
- in one `batch` message every BATCH_SECONDS (`options {"batch": true}`, the dashboard's
  page): `{"events": [...], "qoe": [...], "detections": [...]}`, the same events, this
  replica's partitions' aggregates at the tick, and, for clients that see every camera
  (BATCHED_ALL), the detections; a client whose sign-in covers only some cameras
  (BATCHED_SCOPED) gets its detections one by one. A thousand browsers then cost the
  gateway four messages a second each instead of dozens.
`qoe_released` goes to everyone when a partition moves to another replica.
A partition's records are applied only while it is owned here (a late record of a
partition given up never re-creates it), each offset once, and each `event_id` once;
records an earlier owner already counted (see checkpoints.py) rebuild the state only.
"""

from __future__ import annotations

import collections
import json
import logging
import time

from rts_common.contracts import Detection
from rts_common.events import PlaybackEventStruct, ts_to_ns
from rts_common.metrics import Children
from rts_common.pacing import TokenBucket

from rts_gateway.bridge import Batch
from rts_gateway.feed.qoe import ACTIVE_STATES, PartitionAggregate
from rts_gateway.metrics import GatewayMetrics
from rts_gateway.sockets import Emit, Payload, camera_room

log = logging.getLogger(__name__)

# The rooms of the two ways (a client is in exactly one of SINGLE, BATCHED_ALL,
# BATCHED_SCOPED); DETECTIONS_ALL: the clients of SINGLE that see every camera.
SINGLE = "events"
BATCHED_ALL = "events-batched:all-cameras"
BATCHED_SCOPED = "events-batched"
DETECTIONS_ALL = "detections:all-cameras"
BATCH_SECONDS = 0.25


def _nowhere(
    event: str, data: Payload, *, to: str | list[str] | None = None, local: bool = False
) -> None:
    """Where emits go until the feed is attached to the Socket.IO server."""


class PlaybackFeed:
    """Aggregates per owned partition of `playback-events`, relayed detections, emits."""

    def __init__(
        self,
        metrics: GatewayMetrics,
        *,
        owner: str,
        event_sample_rate: float,
        events_topic: str = "playback-events",
        dedupe_window: int = 0,
    ) -> None:
        self._metrics = metrics
        self.owner = owner
        self.events_topic = events_topic
        self.dedupe_window = dedupe_window
        self._sampler = (
            TokenBucket(event_sample_rate, max(1.0, event_sample_rate), initial=event_sample_rate)
            if event_sample_rate > 0
            else None
        )
        self._emit: Emit = _nowhere
        self.aggregates: dict[int, PartitionAggregate] = {}
        # Per owned partition: records below this offset were counted by an earlier owner.
        self._counted_from: dict[int, int] = {}
        # Per partition ever owned here: the offset below which this process's Prometheus
        # counters already count every record. A partition lost and given back (a broker
        # failover can do that to a lone replica) must not count those records again,
        # whatever offset the group had committed.
        self._counted_to: dict[int, int] = {}
        m = metrics
        self._startup, self._detections = Children(m.startup_seconds), Children(m.detections)
        self._children = {
            "events": Children(m.events),
            "starts": Children(m.stream_starts),
            "failures": Children(m.startup_failures),
            "watched": Children(m.watched_seconds),
            "watched_bytes": Children(m.watched_bytes),
            "rebuffer": Children(m.rebuffer_seconds),
            "switches": Children(m.bitrate_switches),
        }
        self._emitted = self._sampled_out = 0
        self._batched_events: list[Payload] = []
        self._batched_detections: list[Payload] = []
        self._batched_qoe: list[Payload] = []

    def attach(self, emit: Emit) -> None:
        self._emit = emit

    def flush(self) -> None:
        """Send what was batched since the last flush (every BATCH_SECONDS)."""
        events, detections, qoe = self._batched_events, self._batched_detections, self._batched_qoe
        if not (events or detections or qoe):
            return
        self._batched_events, self._batched_detections, self._batched_qoe = [], [], []
        batch: dict[str, Payload] = {"events": events}
        if qoe:
            batch["qoe"] = qoe
        if detections:
            self._emit("batch", {**batch, "detections": detections}, to=BATCHED_ALL)
            self._emit("batch", batch, to=BATCHED_SCOPED)
        else:
            self._emit("batch", batch, to=[BATCHED_ALL, BATCHED_SCOPED])

    # -- partitions of playback-events this replica owns

    def partition_assigned(
        self, partition: int, aggregate: PartitionAggregate | None = None, counted_from: int = 0
    ) -> None:
        """Own `partition` from now on: from a restored aggregate, or from nothing."""
        self.aggregates[partition] = aggregate or PartitionAggregate(
            partition, time.time_ns(), dedupe_window=self.dedupe_window
        )
        self._counted_from[partition] = max(counted_from, self._counted_to.get(partition, 0))

    def partition_released(self, partition: int) -> PartitionAggregate | None:
        """Stop owning `partition`; returns its aggregate (for a last checkpoint)."""
        self._counted_from.pop(partition, None)
        aggregate = self.aggregates.pop(partition, None)
        if aggregate is not None:
            self._emit("qoe_released", {"partition": partition, "owner": self.owner})
        return aggregate

    # -- records

    def on_events(self, batch: Batch[PlaybackEventStruct]) -> None:
        # Counters are added up here and updated once per batch: prometheus_client takes
        # a lock per increment, which per event was a fifth of the ingest's cost.
        counts: collections.Counter[tuple[str, ...]] = collections.Counter()
        sums: collections.defaultdict[tuple[str, str], float] = collections.defaultdict(float)
        for record in batch.records:
            aggregate = self.aggregates.get(record.partition)
            if aggregate is None:  # not ours (any more): its owner counts it
                self._metrics.revoked_records_dropped.labels(topic=self.events_topic).inc()
                continue
            if record.offset < aggregate.offset:  # already in the state
                continue
            event = record.value
            if not aggregate.recent.first_time(event.event_id):
                self._metrics.duplicate_events.inc()
                continue
            counted = record.offset >= self._counted_from.get(record.partition, 0)
            if counted:
                self._counted_to[record.partition] = record.offset + 1
            self._on_event(aggregate, event, record.raw or b"", counts, sums, counted=counted)
        for partition, end in batch.ends.items():
            aggregate = self.aggregates.get(partition)
            if aggregate is not None:
                aggregate.offset = max(aggregate.offset, end)
        for (kind, *labels), n in counts.items():
            self._children[kind](*labels).inc(n)
        for (kind, device), total in sums.items():
            self._children[kind](device).inc(total)
        if self._emitted:
            self._metrics.events_emitted.inc(self._emitted)
        if self._sampled_out:
            self._metrics.events_sampled_out.inc(self._sampled_out)
        self._emitted = self._sampled_out = 0

    def _on_event(
        self,
        aggregate: PartitionAggregate,
        event: PlaybackEventStruct,
        raw: bytes,
        counts: collections.Counter[tuple[str, ...]],
        sums: collections.defaultdict[tuple[str, str], float],
        *,
        counted: bool,
    ) -> None:
        ts_ns = ts_to_ns(event.ts)
        applied = aggregate.apply(event, ts_ns)
        if not counted:
            return
        device = applied.device
        counts["events", event.event_type, device] += 1
        if applied.started:
            counts["starts", device] += 1
            self._startup(device).observe((applied.startup_ms or 0) / 1000)
        if applied.startup_failed:
            counts["failures", device] += 1
        if applied.watched_ms:
            sums["watched", device] += applied.watched_ms / 1000
            # kbit/s x ms = bits
            sums["watched_bytes", device] += applied.watched_kbps * applied.watched_ms / 8
        if applied.rebuffer_ms:
            sums["rebuffer", device] += applied.rebuffer_ms / 1000
        if applied.switch:
            counts["switches", device, applied.switch] += 1
        if self._sampler is not None and self._sampler.take(1):
            # Forwarded as it came, fields the model does not know included.
            event_json = json.loads(raw)
            self._emit("new_event", event_json, to=SINGLE)
            self._batched_events.append(event_json)
            self._emitted += 1
            self._metrics.event_latency.observe(max(0.0, (time.time_ns() - ts_ns) / 1e9))
        else:
            self._sampled_out += 1

    def on_detections(self, batch: Batch[Detection]) -> None:
        for record in batch.records:
            detection = record.value
            self._detections(detection.kind).inc()
            payload = detection.model_dump(mode="json")
            # Only to dashboards whose sign-in covers the camera: those that see every
            # camera get it in their batch or one by one, the others one by one.
            self._batched_detections.append(payload)
            self._emit("detection", payload, to=[DETECTIONS_ALL, camera_room(detection.camera)])

    # -- once a second

    def tick(self, now_ns: int) -> None:
        """Emit every owned partition's aggregate and update the sessions gauge."""
        sessions: dict[tuple[str, str], int] = {}
        snapshots: list[Payload] = []
        for aggregate in list(self.aggregates.values()):
            snapshot = aggregate.snapshot(now_ns, self.owner)
            self._emit("qoe", snapshot, to=SINGLE)
            snapshots.append(snapshot)
            for device, values in snapshot["devices"].items():
                for state in ACTIVE_STATES:
                    sessions[(state, device)] = sessions.get((state, device), 0) + values[state]
        for (player_state, device), count in sessions.items():
            self._metrics.sessions.labels(state=player_state, device=device).set(count)
        # Batched clients get every partition of this replica in their next batch.
        self._batched_qoe = snapshots
