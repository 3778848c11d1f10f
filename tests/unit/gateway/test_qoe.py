"""QoE aggregates from a known sequence: every number checked by hand."""

from typing import Any

import pytest
from rts_common.events import PlaybackEvent, ns_to_ts
from rts_gateway.feed.qoe import SESSION_GRACE_NS, PartitionAggregate, merge, percentile

T0 = 1_800_000_000 * 1_000_000_000
S = 1_000_000_000


def event(session: str, seq: int, at: float, kind: str, **fields: Any) -> tuple[PlaybackEvent, int]:
    ts_ns = T0 + int(at * S)
    base = {
        "event_id": f"{session}-{seq}",
        "user_id": f"u-{session}",
        "session_id": session,
        "seq": seq,
        "event_type": kind,
        "ts": ns_to_ts(ts_ns),
        "bitrate_kbps": 2400,
        "position_seconds": 0.0,
        "title_duration_seconds": 100.0,
    }
    return PlaybackEvent.model_validate({**base, **fields}), ts_ns


WEB = {"device": "web", "movie_id": "MOV1"}
# One web session with a rebuffer (and a bitrate step down), a pause, a seek, and an
# abandonment; one tv session that never starts; one mobile session still playing.
PARTITION_0 = [
    event("s1", 1, 0, "play", startup_ms=800, **WEB),
    event("s2", 1, 5, "stop", reason="startup_failure", device="tv", movie_id="MOV2"),
    event("s1", 2, 10, "buffer_start", position_seconds=10, buffer_reason="rebuffer", **WEB),
    event(
        "s1",
        3,
        12,
        "buffer_end",
        position_seconds=10,
        buffer_reason="rebuffer",
        buffer_ms=2000,
        bitrate_kbps=1200,
        prev_bitrate_kbps=2400,
        **WEB,
    ),
    event("s1", 4, 20, "pause", position_seconds=18, bitrate_kbps=1200, **WEB),
    event("s1", 5, 30, "play", position_seconds=18, bitrate_kbps=1200, **WEB),
    event("s1", 6, 40, "seek", position_seconds=50, bitrate_kbps=1200, **WEB),
    event(
        "s1",
        7,
        40.5,
        "buffer_start",
        position_seconds=50,
        buffer_reason="seek",
        bitrate_kbps=1200,
        **WEB,
    ),
    event(
        "s1",
        8,
        41,
        "buffer_end",
        position_seconds=50,
        buffer_reason="seek",
        buffer_ms=500,
        bitrate_kbps=1200,
        **WEB,
    ),
    event("s1", 9, 51, "stop", position_seconds=60, reason="abandoned", bitrate_kbps=1200, **WEB),
]
PARTITION_1 = [
    event("s3", 1, 3, "play", startup_ms=1500, bitrate_kbps=4800, device="mobile", movie_id="MOV1"),
]


def aggregate(partition: int, events: list[tuple[PlaybackEvent, int]]) -> PartitionAggregate:
    agg = PartitionAggregate(partition, T0)
    for ev, ts_ns in events:
        agg.apply(ev, ts_ns)
    return agg


def test_counts_per_device_are_exact() -> None:
    web = aggregate(0, PARTITION_0).devices["web"]
    assert web.events == {
        "play": 2,
        "pause": 1,
        "stop": 1,
        "seek": 1,
        "buffer_start": 2,
        "buffer_end": 2,
    }
    assert web.starts == 1
    assert web.startup_failures == 0
    # playing 0-10, 12-20, 30-40 and 41-51: 38 s; buffering, pause and seek don't count
    assert web.watched_ms == 38_000
    # the stall's 2 s; the 0.5 s of buffering after the seek is not rebuffering
    assert web.rebuffer_ms == 2000
    assert (web.switches_up, web.switches_down) == (0, 1)
    assert web.stops["abandoned"] == 1
    tv = aggregate(0, PARTITION_0).devices["tv"]
    assert (tv.events["stop"], tv.startup_failures, tv.stops["startup_failure"]) == (1, 1, 1)
    assert tv.starts == 0


def test_watched_time_carries_the_bitrate_it_played_at() -> None:
    agg = PartitionAggregate(0, T0)
    applied = [agg.apply(ev, ts_ns) for ev, ts_ns in PARTITION_0]
    # 0-10 s at 2400 kbps, then 8 + 10 + 10 s at 1200 after the step down
    assert sum(a.watched_ms * a.watched_kbps for a in applied) == 10_000 * 2400 + 28_000 * 1200
    assert all(a.watched_kbps == 0 for a in applied if not a.watched_ms)


def test_concurrent_sessions_titles_and_startup_window() -> None:
    agg = aggregate(1, PARTITION_1)
    concurrent = agg.concurrent()
    assert concurrent["mobile"]["playing"] == 1
    assert concurrent["mobile"]["bitrate_sum_kbps"] == 4800
    assert concurrent["web"]["playing"] == 0
    assert agg.titles() == {"MOV1": 1}
    snapshot = agg.snapshot(T0 + 4 * S, owner="replica-a")
    assert snapshot["devices"]["mobile"]["startup_ms_window"] == [1500]
    assert snapshot["partition"] == 1
    assert snapshot["owner"] == "replica-a"


def test_sessions_are_tracked_through_every_state() -> None:
    agg = PartitionAggregate(0, T0)
    states = []
    for ev, ts_ns in PARTITION_0[:9]:
        agg.apply(ev, ts_ns)
        web = agg.concurrent()["web"]
        states.append(
            next((s for s in ("playing", "paused", "buffering", "seeking") if web[s]), None)
        )
    assert states == [
        "playing",
        "playing",
        "buffering",
        "playing",
        "paused",
        "playing",
        "seeking",
        "buffering",
        "playing",
    ]
    agg.apply(*PARTITION_0[9])
    assert agg.concurrent()["web"]["playing"] == 0


def test_partitions_merge_by_addition() -> None:
    snapshots = [
        aggregate(0, PARTITION_0).snapshot(T0 + 60 * S, "a"),
        aggregate(1, PARTITION_1).snapshot(T0 + 60 * S, "b"),
    ]
    total = merge(snapshots)
    assert total["events"]["play"] == 3
    assert sum(total["events"].values()) == 11
    assert total["starts"] == 2
    assert total["startup_failures"] == 1
    assert total["watched_ms"] == 38_000
    assert total["rebuffering_ratio"] == pytest.approx(2000 / 38_000)
    assert total["playing"] == 1
    assert total["average_bitrate_kbps"] == 4800
    assert total["bitrate_switches"] == {"up": 0, "down": 1}
    assert total["startup_ms_p50"] == 800
    assert total["startup_ms_p95"] == 1500
    assert total["titles"] == {"MOV1": 1}


def test_a_session_first_seen_mid_way_is_placed_by_its_event() -> None:
    agg = PartitionAggregate(0, T0)
    agg.apply(*event("late", 7, 0, "pause", position_seconds=30, **WEB))
    assert agg.concurrent()["web"]["paused"] == 1
    agg.apply(*event("late", 8, 5, "play", position_seconds=30, **WEB))
    agg.apply(*event("late", 9, 9, "pause", position_seconds=34, **WEB))
    assert agg.devices["web"].watched_ms == 4000
    assert agg.devices["web"].starts == 0


def test_silent_sessions_expire_after_their_title_would_have_ended() -> None:
    agg = aggregate(1, PARTITION_1)  # playing from t=3 with 100 s of title left
    assert agg.expire(T0 + 103 * S + SESSION_GRACE_NS - S) == 0
    assert agg.expire(T0 + 103 * S + SESSION_GRACE_NS + S) == 1
    assert agg.concurrent()["mobile"]["playing"] == 0


def test_startup_window_keeps_only_the_last_minute() -> None:
    agg = aggregate(1, PARTITION_1)
    assert agg.snapshot(T0 + 62 * S, "a")["devices"]["mobile"]["startup_ms_window"] == [1500]
    assert agg.snapshot(T0 + 64 * S, "a")["devices"]["mobile"]["startup_ms_window"] == []


def test_nearest_rank_percentiles() -> None:
    values = list(range(1, 101))
    assert percentile(values, 0.5) == 50
    assert percentile(values, 0.95) == 95
    assert percentile([7], 0.95) == 7
    assert percentile([], 0.5) is None
