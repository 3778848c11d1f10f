"""Ports for the cluster's listeners and its host-network pods, reserved as every local
listener's are (`rts_devstack.ports`: below the kernel's ephemeral range, never one
something is bound to, each held by a lock that other reservers respect, so the test
workers beside a cluster never pick a port its programs are about to bind).

The cluster's programs and pods bind their ports some time after they are chosen, so a
reservation here is held for the life of the process that made it: the tests' session,
or `rts-cluster up`, which exits once everything listens.
"""

from __future__ import annotations

from rts_devstack.ports import Ports, reserve

_held: list[Ports] = []


def free_ports(count: int, *, contiguous: bool = False) -> list[int]:
    """`count` distinct reserved ports, free on every address (a host-network pod binds
    0.0.0.0); `contiguous`: consecutive ones (the cameras' ops ports, `opsPort + i`)."""
    ports = reserve(count, contiguous=contiguous)
    _held.append(ports)
    return list(ports)
