"""Every Prometheus instrument of the gateway, in one registry (DESIGN.md §6).

Labels stay bounded: `camera` only takes ids the camera directory knows, never a value
from a request path; never a user, session or client id.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from rts_common.events import DEVICES, EVENT_TYPES
from rts_common.metrics import LATENCY_BUCKETS, SIZE_BUCKETS, service_registry

# Players take 0.5 to 5 s to start a stream, slow networks up to 30 s (event-sim caps
# startup_ms there): finer than LATENCY_BUCKETS where p50/p95 live, and past 10 s.
STARTUP_BUCKETS = (
    0.1, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 7.5, 10.0, 15.0, 20.0, 30.0,
)  # fmt: skip
FRAME_SKIP_REASONS = ("slow_client", "fps_cap")
# Every limit that answers 429 (or refuses a connection), as `gateway_limit_hits_total` says.
LIMITS = (
    "streams",
    "streams_per_session",
    "replays",
    "replays_per_session",
    "login_attempts",
    "socketio_unauthenticated",
    "message_size",
)


class GatewayMetrics:
    def __init__(self, registry: CollectorRegistry | None = None, *, replica: str = "") -> None:
        """`replica`: the process's replica name, a label of `rts_build_info`."""
        self.registry = registry or service_registry(
            "gateway", **({"replica": replica} if replica else {})
        )
        r = self.registry
        # Video
        # viewer_kind: browser, or probe (the in-cluster latency probe)
        self.frame_latency = Histogram(
            "gateway_frame_latency_seconds",
            "Capture time (frame header ts) to the frame being written to a viewer",
            ["camera", "viewer_kind"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.frames_received = Counter(
            "gateway_frames_received_total", "Frames read from Kafka", ["camera"], registry=r
        )
        self.frames_sent = Counter(
            "gateway_frames_sent_total",
            "Frames written to MJPEG viewers",
            ["camera", "viewer_kind"],
            registry=r,
        )
        self.frame_bytes_sent = Counter(
            "gateway_frame_bytes_sent_total", "JPEG bytes written to MJPEG viewers", registry=r
        )
        self.frames_skipped = Counter(
            "gateway_frames_skipped_total",
            "Frames a viewer did not get: slow_client (a newer frame replaced it), "
            "fps_cap (the viewer asked for fewer)",
            ["camera", "reason"],
            registry=r,
        )
        self.frame_size = Histogram(
            "gateway_frame_bytes",
            "Size of frames read from Kafka",
            buckets=SIZE_BUCKETS,
            registry=r,
        )
        self.viewers = Gauge(
            "gateway_mjpeg_viewers", "Open MJPEG streams", ["camera", "viewer_kind"], registry=r
        )
        self.frames_ignored = Counter(
            "gateway_frames_ignored_total",
            "Frames read but shown to nobody: unknown_camera (their key names no camera of the "
            "directory), wrong_partition (not the partition the camera announced)",
            ["reason"],
            registry=r,
        )
        self._reads_into_the_past(r)
        self.viewers_dropped = Counter(
            "gateway_viewers_dropped_total",
            "MJPEG viewers closed by the gateway: stalled (took no frame for too long), gone "
            "(the client closed its connection while no frame was being written)",
            ["reason"],
            registry=r,
        )
        self.camera_reads = Gauge(
            "gateway_camera_reads",
            "Cameras this pod reads from Kafka right now (at least one local viewer)",
            registry=r,
        )
        self.assignments = Counter(
            "gateway_partition_assignments_total",
            "Partitions this pod started reading on demand",
            ["topic"],
            registry=r,
        )
        self.read_repositions = Counter(
            "gateway_frame_read_repositions_total",
            "Frames reads moved to the newest frames: retry (an assignment had failed), "
            "stalled (the camera published frames the read did not deliver)",
            ["reason"],
            registry=r,
        )
        self.read_failures = Counter(
            "gateway_frame_read_failures_total",
            "Frames reads that could not be assigned (retried with backoff)",
            registry=r,
        )
        # Kafka
        self.partitions_assigned = Gauge(
            "gateway_partitions_assigned", "Partitions assigned to this pod", ["topic"], registry=r
        )
        self.consumer_lag = Gauge(
            "gateway_consumer_lag",
            "Messages behind the partition's end",
            ["topic", "partition"],
            registry=r,
        )
        self.bad_messages = Counter(
            "gateway_bad_messages_total",
            "Records skipped for breaking their topic's contract",
            ["topic", "reason"],
            registry=r,
        )
        self.dead_letters = Counter(
            "gateway_dead_letters_total",
            "Refused records of a topic sent to the dead-letter topic: kept (acknowledged), "
            "failed (delivery failed), dropped (the producer's queue was full)",
            ["topic", "result"],
            registry=r,
        )
        self.kafka_errors = Counter(
            "gateway_kafka_errors_total",
            "Errors reported by the Kafka client",
            ["code"],
            registry=r,
        )
        # The dashboard: Socket.IO and the playback events this replica's partitions carry
        self._socketio(r)
        self.event_latency = Histogram(
            "gateway_event_latency_seconds",
            "Playback event time (its ts) to the event being emitted to Socket.IO clients",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.events = Counter(
            "gateway_playback_events_total",
            "Valid playback events consumed, by type and device",
            ["event_type", "device"],
            registry=r,
        )
        self.events_emitted = Counter(
            "gateway_events_emitted_total",
            "Playback events emitted as new_event (a sample: see GATEWAY_EVENT_SAMPLE_RATE)",
            registry=r,
        )
        self.events_sampled_out = Counter(
            "gateway_events_sampled_out_total",
            "Playback events counted in the aggregates but not emitted one by one",
            registry=r,
        )
        self.stream_starts = Counter(
            "gateway_stream_starts_total",
            "Sessions that started playing",
            ["device"],
            registry=r,
        )
        self.startup_seconds = Histogram(
            "gateway_startup_seconds",
            "Startup time of stream starts (request to first frame)",
            ["device"],
            buckets=STARTUP_BUCKETS,
            registry=r,
        )
        self.startup_failures = Counter(
            "gateway_startup_failures_total",
            "Sessions that ended before playing",
            ["device"],
            registry=r,
        )
        self.rebuffer_seconds = Counter(
            "gateway_rebuffer_seconds_total",
            "Seconds viewers spent rebuffering (stalls, not seeks)",
            ["device"],
            registry=r,
        )
        self.watched_seconds = Counter(
            "gateway_watched_seconds_total",
            "Seconds viewers spent playing",
            ["device"],
            registry=r,
        )
        self.watched_bytes = Counter(
            "gateway_watched_bytes_total",
            "Video bytes viewers played: bitrate times playing time. Over "
            "gateway_watched_seconds_total it is the time-weighted average bitrate",
            ["device"],
            registry=r,
        )
        self.bitrate_switches = Counter(
            "gateway_bitrate_switches_total",
            "Rendition changes",
            ["device", "direction"],
            registry=r,
        )
        self.sessions = Gauge(
            "gateway_sessions",
            "Sessions in this replica's partitions, by player state",
            ["state", "device"],
            registry=r,
        )
        self.detections = Counter(
            "gateway_detections_total", "Detections relayed to dashboards", ["kind"], registry=r
        )
        self.wall_frames = Counter(
            "gateway_wall_frames_sent_total",
            "Camera-wall thumbnails sent over Socket.IO (per emit, not per client)",
            registry=r,
        )
        self.broadcast_published = Counter(
            "gateway_broadcast_published_total",
            "Socket.IO pub/sub messages this replica published to the other replicas",
            registry=r,
        )
        self.broadcast_dropped = Counter(
            "gateway_broadcast_dropped_total",
            "Socket.IO pub/sub messages that could not be published",
            ["reason"],
            registry=r,
        )
        self._partition_handover(r)
        self.rebalances = Counter(
            "gateway_rebalances_total",
            "Consumer-group partition changes of this replica (assigned, revoked, lost)",
            ["kind"],
            registry=r,
        )
        self.auth_failures = Counter(
            "gateway_auth_failures_total",
            "Requests and connections refused for a missing, invalid, expired or reused credential",
            ["reason"],
            registry=r,
        )
        self.limit_hits = Counter(
            "gateway_limit_hits_total",
            "Requests and connections refused by a limit (see GATEWAY_MAX_* and "
            "GATEWAY_LOGIN_ATTEMPTS_PER_MINUTE); most answer 429 with Retry-After",
            ["limit"],
            registry=r,
        )
        self.sessions_ended = Counter(
            "gateway_session_closes_total",
            "Streams, replays and sockets closed because their session was revoked or expired",
            ["reason", "kind"],
            registry=r,
        )
        self.sign_ins = Counter(
            "gateway_sign_ins_total", "Login links traded for a session", registry=r
        )
        # The process
        self._health(r)
        self.loop_lag = Histogram(
            "gateway_event_loop_lag_seconds",
            "How late a 100 ms timer fires in the app context: how long something blocked "
            "every green thread (eventlet) or starved the dispatcher",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.green_threads = Gauge(
            "gateway_green_threads",
            "Green threads alive (eventlet mode; counted at most every 10 s): one per open "
            "stream and connection plus a few background tasks, so growth with a steady "
            "number of clients is a leak",
            registry=r,
        )
        self.dispatch_backlog = Gauge(
            "gateway_dispatch_backlog",
            "Kafka batches handed from native threads and not yet processed",
            registry=r,
        )
        self._start_known_labels()

    def _start_known_labels(self) -> None:
        """Known label values start at zero, so rate() works from the first scrape and
        dashboards show 0 rather than "no data" (per camera: when it gets a viewer). A
        replica that never got an event still says 0 events, which alerts can see."""
        for reason in ("stalled", "gone"):
            self.viewers_dropped.labels(reason=reason)
        for limit in LIMITS:
            self.limit_hits.labels(limit=limit)
        for reason in ("unknown_camera", "wrong_partition"):
            self.frames_ignored.labels(reason=reason)
        for device in DEVICES:
            for event_type in EVENT_TYPES:
                self.events.labels(event_type=event_type, device=device)
            for counter in (
                self.stream_starts,
                self.startup_failures,
                self.watched_seconds,
                self.watched_bytes,
                self.rebuffer_seconds,
            ):
                counter.labels(device=device)
            for direction in ("up", "down"):
                self.bitrate_switches.labels(device=device, direction=direction)
        for result in ("written", "failed", "restored", "none"):
            self.checkpoints.labels(result=result)

    def _socketio(self, r: CollectorRegistry) -> None:
        """Socket.IO clients and what the fan-out writes to them (fanout.py)."""
        self.socketio_clients = Gauge(
            "gateway_socketio_clients", "Connected Socket.IO clients (browsers)", registry=r
        )
        self.socketio_messages_framed = Counter(
            "gateway_socketio_messages_framed_total",
            "Socket.IO messages the fan-out framed (once per message, for all its clients)",
            registry=r,
        )
        self.socketio_messages_written = Counter(
            "gateway_socketio_messages_written_total",
            "WebSocket messages the fan-out wrote to clients (each client counts once; "
            "engine.io's own packets included)",
            registry=r,
        )
        self.socketio_messages_dropped = Counter(
            "gateway_socketio_messages_dropped_total",
            "Socket.IO messages dropped for a client that was behind by more than "
            "GATEWAY_SOCKETIO_CLIENT_BACKLOG_BYTES (it gets the next ones)",
            registry=r,
        )
        self.socketio_clients_behind = Gauge(
            "gateway_socketio_clients_behind",
            "Socket.IO clients whose connection cannot take what is sent to them as fast",
            registry=r,
        )
        self.socketio_backlog_bytes = Gauge(
            "gateway_socketio_backlog_bytes",
            "Bytes waiting for Socket.IO clients' connections to take them, all clients "
            "together (each bounded by GATEWAY_SOCKETIO_CLIENT_BACKLOG_BYTES)",
            registry=r,
        )

    def _health(self, r: CollectorRegistry) -> None:
        """The parts of the process (health.py), and each Kafka consumer (`consumer` is its
        name: events, detections, frames, directory, sessions, broadcast, probe): is it
        doing its job, and when did it last read (bridge/consumer.py)."""
        self.component_up = Gauge(
            "gateway_component_up",
            "1 while a consumer loop or background task runs as it should, 0 when it died, "
            "is stuck, or a consumer has been outside its group or not reading for the "
            "liveness setting while Kafka answers (then /healthz fails)",
            ["component"],
            registry=r,
        )
        self.consumer_stalled = Gauge(
            "gateway_consumer_stalled_seconds",
            "How long this consumer has been outside its consumer group (group members) or "
            "not reading the partitions assigned to it (direct readers) while Kafka "
            "answers; 0 while it does its job. Past the liveness setting (30 s) /healthz "
            "fails naming it",
            ["consumer"],
            registry=r,
        )
        self.consumer_in_group = Gauge(
            "gateway_consumer_in_group",
            "1 while a group member is in its group (it has a member id and a coordinator, "
            "and no rebalance callback is stuck), 0 while it is not (during a broker "
            "outage too)",
            ["consumer"],
            registry=r,
        )
        self.consumer_last_record = Gauge(
            "gateway_consumer_last_record_timestamp_seconds",
            "When this consumer last handed records to the gateway (Unix time)",
            ["consumer"],
            registry=r,
        )
        self.client_renewals = Counter(
            "gateway_kafka_client_renewals_total",
            "Kafka clients replaced by a new one: a group member whose client found no "
            "coordinator for long while Kafka answered, the broker check's client after "
            "failing checks",
            ["consumer"],
            registry=r,
        )

    def _partition_handover(self, r: CollectorRegistry) -> None:
        """How playback-events partitions move between replicas (feed/checkpoints.py)."""
        self.revoked_records_dropped = Counter(
            "gateway_revoked_records_dropped_total",
            "Records a poll returned for a partition that the same poll's rebalance took "
            "away: dropped, the partition's next owner reads them",
            ["topic"],
            registry=r,
        )
        self.commit_failures = Counter(
            "gateway_offset_commit_failures_total",
            "Offset commits of a consumer group that failed (retried with the next commit)",
            ["consumer", "error"],
            registry=r,
        )
        self.duplicate_events = Counter(
            "gateway_duplicate_events_total",
            "Playback events dropped because the partition already had their event_id",
            registry=r,
        )
        self.checkpoints = Counter(
            "gateway_qoe_checkpoints_total",
            "QoE state checkpoints of playback-events partitions: written, failed (not "
            "acknowledged), restored (read when taking a partition over), none (taken over "
            "without one: a new partition or an unreadable checkpoint)",
            ["result"],
            registry=r,
        )
        self.takeover_seconds = Histogram(
            "gateway_partition_takeover_seconds",
            "Time to take a playback-events partition over: read its checkpoint and "
            "committed offset, restore its state",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )

    def _reads_into_the_past(self, r: CollectorRegistry) -> None:
        """Replays, timelines, snapshots at a time and clips: each reads Kafka for itself."""
        self.replays = Gauge("gateway_replay_viewers", "Open replay streams", registry=r)
        self.replay_buffered_bytes = Gauge(
            "gateway_replay_buffered_bytes",
            "JPEG bytes replays hold ahead of their pacing, over all open replays",
            registry=r,
        )
        self.kafka_reads = Gauge(
            "gateway_kafka_reads",
            "Open Kafka reads made for one request (replay, timeline, snapshot at a time, "
            "clip); together limited by GATEWAY_MAX_REPLAYS",
            ["kind"],
            registry=r,
        )
        self.kafka_reads_opened = Counter(
            "gateway_kafka_reads_opened_total",
            "Kafka reads opened for one request (each its own consumer), by kind",
            ["kind"],
            registry=r,
        )
        self.kafka_reads_refused = Counter(
            "gateway_kafka_reads_refused_total",
            "Requests refused (429) because the process had GATEWAY_MAX_REPLAYS reads open",
            ["kind"],
            registry=r,
        )
        self.clip_bytes_sent = Counter(
            "gateway_clip_bytes_sent_total", "Bytes of AVI clips written to clients", registry=r
        )
