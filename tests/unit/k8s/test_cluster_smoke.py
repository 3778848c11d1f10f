"""The cluster smoke test's own logic: reading /metrics, judging a partition spread."""

from __future__ import annotations

from rts_cluster import smoke

METRICS = """\
# HELP gateway_partitions_assigned Partitions assigned to this pod
# TYPE gateway_partitions_assigned gauge
gateway_partitions_assigned{topic="prod.playback-events"} 2.0
gateway_partitions_assigned{topic="prod.video-detections"} 3.0
gateway_consumer_lag{partition="1",topic="prod.playback-events"} 7.0
"""


def test_partitions_assigned_reads_the_events_topic_whatever_its_prefix() -> None:
    assert smoke.partitions_assigned(METRICS) == 2
    assert smoke.partitions_assigned(METRICS, "video-detections") == 3
    assert smoke.partitions_assigned("# nothing here\n") == 0


def test_a_spread_needs_every_partition_and_every_replica() -> None:
    assert smoke.spread_problem({"a": 2, "b": 2, "c": 2}, 6) == ""
    assert smoke.spread_problem({"a": 4, "b": 2, "c": 0}, 6).startswith("replicas without")
    assert smoke.spread_problem({"a": 2, "b": 2, "c": 1}, 6).startswith("5 of 6")
    # More replicas than partitions: some idle by design.
    assert smoke.spread_problem({f"p{i}": int(i < 6) for i in range(8)}, 6) == ""


def test_finished_test_pods_do_not_count_as_unready() -> None:
    pods = {
        "items": [
            {
                "metadata": {"name": "ready"},
                "status": {"conditions": [{"type": "Ready", "status": "True"}]},
            },
            {
                "metadata": {"name": "starting"},
                "status": {"conditions": [{"type": "Ready", "status": "False"}]},
            },
            {"metadata": {"name": "helm-test"}, "status": {"phase": "Succeeded"}},
        ]
    }
    assert smoke.unready_pods(pods) == ["starting"]
