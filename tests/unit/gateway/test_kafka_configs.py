"""The delivery guarantees the gateway's clients claim (written next to their configs in
bridge/kafka.py and the features) are the ones their configs give."""

from collections.abc import Mapping

from rts_gateway.service import Gateway
from rts_gateway.settings import GatewaySettings


def _configs() -> dict[str, Mapping[str, object]]:
    gateway = Gateway(GatewaySettings(async_mode="threading", broadcast=False))
    return {loop.name: loop.config for loop in gateway.bridge.loops}


def test_group_consumers_store_offsets_only_after_a_batch_is_applied() -> None:
    configs = _configs()
    for name in ("events", "detections"):
        config = configs[name]
        assert config["enable.auto.offset.store"] is False  # stored by the loop, after apply
        assert config["enable.auto.commit"] is True
        assert config["partition.assignment.strategy"] == "cooperative-sticky"


def test_direct_readers_never_commit() -> None:
    configs = _configs()
    for name in ("directory", "frames", "probe"):
        assert configs[name]["enable.auto.commit"] is False
        assert str(configs[name]["group.id"]).startswith("gateway-direct-")


def test_group_consumers_keep_dead_letters_and_direct_readers_do_not() -> None:
    gateway = Gateway(GatewaySettings(async_mode="threading", broadcast=False))
    kept = {loop.name: loop.keeps_dead_letters for loop in gateway.bridge.loops}
    assert kept == {
        "events": True,
        "detections": True,
        "directory": False,
        "frames": False,
        "probe": False,
    }
