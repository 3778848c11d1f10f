"""What a Kafka client is doing, read from librdkafka's own statistics.

librdkafka hands its statistics (`statistics.interval.ms`, STATISTICS.md) to the thread
that polls the client, as JSON. From them a consumer loop learns, without asking the
network, whether its group coordinator is known and its membership settled (`cgrp`), and
whether each partition it was assigned is being fetched from a broker that answers
(`topics.*.partitions.*`, `brokers.*`): what liveness needs to tell a consumer outside its
group, or a read that delivers nothing, from one that merely has nothing to read.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

# A fetch long-polls for at most fetch.wait.max.ms (under a second here): a broker
# connection that received nothing for this long is not delivering.
RECEIVE_IDLE_SECONDS = 10.0
STATISTICS_INTERVAL_MS = 1000


@dataclass(frozen=True)
class ClientState:
    """One statistics sample of a consumer, reduced to what its health needs."""

    # The group coordinator is known and connected (`cgrp.state` "up"); False for a
    # consumer that has no coordinator (a direct reader has one only once it commits).
    coordinator_up: bool
    join_state: str  # librdkafka's `cgrp.join_state`: "steady" when settled
    cgrp_state: str
    assigned: int  # partitions assigned to this client (group or direct)
    # Every assigned partition is being fetched from its leader, whose connection is up
    # and received something within RECEIVE_IDLE_SECONDS.
    reading: bool
    # Some broker connection is up and received something within RECEIVE_IDLE_SECONDS.
    answered: bool
    unread: str = ""  # why not reading: the first partition that is not, and its state

    def describe(self) -> str:
        return f"coordinator {self.cgrp_state}, join state {self.join_state}"


def read_statistics(raw: str) -> ClientState:
    """A ClientState from librdkafka's statistics JSON."""
    stats: dict[str, Any] = json.loads(raw)
    brokers = {
        b.get("nodeid", -1): b
        for b in stats.get("brokers", {}).values()
        if isinstance(b, dict) and b.get("nodeid", -1) >= 0
    }

    def receiving(broker: dict[str, Any] | None) -> bool:
        if broker is None or broker.get("state") != "UP":
            return False
        idle_us = float(broker.get("rxidle", -1))
        return 0 <= idle_us < RECEIVE_IDLE_SECONDS * 1e6

    assigned, unread = 0, ""
    for topic, info in stats.get("topics", {}).items():
        for number, partition in info.get("partitions", {}).items():
            if number == "-1" or not partition.get("desired"):
                continue
            assigned += 1
            leader = partition.get("leader", -1)
            fetching = partition.get("fetch_state") == "active"
            if not unread and not (fetching and receiving(brokers.get(leader))):
                state = brokers.get(leader, {}).get("state", "unknown")
                unread = (
                    f"{topic}[{number}]: fetch state {partition.get('fetch_state')}, "
                    f"leader {leader} {state}"
                )
    cgrp = stats.get("cgrp", {})
    return ClientState(
        coordinator_up=cgrp.get("state") == "up",
        join_state=str(cgrp.get("join_state", "")),
        cgrp_state=str(cgrp.get("state", "")),
        assigned=assigned,
        reading=not unread,
        answered=any(receiving(b) for b in brokers.values()),
        unread=unread,
    )
