"""Reserved ports: outside the kernel's ephemeral range, never handed out twice while
held (by this process or another), never one something is bound to."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest
from rts_common.net import port_in_use
from rts_devstack import ports


def test_reserved_ports_are_distinct_free_and_below_the_ephemeral_range() -> None:
    with ports.reserve(8) as reserved:
        assert len(set(reserved)) == 8
        low, high = ports.port_range()
        assert all(low <= p <= high < ports.ephemeral_range()[0] for p in reserved)
        assert not any(port_in_use(p) for p in reserved)


def test_a_held_port_is_not_handed_out_again_until_released(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("RTS_PORT_RANGE", f"{ports.RANGE[0]}-{ports.RANGE[0] + 7}")
    held = ports.reserve(4)
    others = ports.reserve(4)  # the rest of the range
    assert set(held).isdisjoint(others)
    with pytest.raises(ports.PortsExhausted, match="RTS_PORT_RANGE"):
        ports.reserve(1)
    held.release()
    again = ports.reserve(4)
    assert set(again) == set(held)
    again.release()
    others.release()


def test_another_process_holding_a_port_keeps_it(monkeypatch: pytest.MonkeyPatch) -> None:
    first = ports.RANGE[0] + 10
    monkeypatch.setenv("RTS_PORT_RANGE", f"{first}-{first + 1}")
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from rts_devstack import ports; p = ports.reserve(1); "
            "print(p[0], flush=True); sys.stdin.read()",
        ],
        env={**os.environ, "RTS_PORT_RANGE": f"{first}-{first}"},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        taken = int(holder.stdout.readline())
        with ports.reserve(1) as mine:
            assert list(mine) == [first + 1] != [taken]
    finally:
        holder.kill()
        holder.wait()
    # The holder died without releasing: the kernel ended its lock.
    with ports.reserve(2) as both:
        assert set(both) == {first, first + 1}


def test_a_port_something_listens_on_is_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    first = ports.RANGE[0] + 20
    monkeypatch.setenv("RTS_PORT_RANGE", f"{first}-{first + 1}")
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", first))
        listener.listen()
        with ports.reserve(1) as reserved:
            assert list(reserved) == [first + 1]


def test_contiguous_ports_are_consecutive(monkeypatch: pytest.MonkeyPatch) -> None:
    first = ports.RANGE[0] + 30
    monkeypatch.setenv("RTS_PORT_RANGE", f"{first}-{first + 5}")
    with ports.reserve(1) as lone, ports.reserve(3, contiguous=True) as block:
        assert list(block) == list(range(block[0], block[0] + 3))
        assert lone[0] not in block


def test_a_range_inside_the_ephemeral_one_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    low, _high = ports.ephemeral_range()
    monkeypatch.setenv("RTS_PORT_RANGE", f"{low + 10}-{low + 20}")
    with pytest.raises(ValueError, match="ephemeral"):
        ports.reserve(1)
