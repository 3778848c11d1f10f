"""The camera list as viewers see it: `/api/cameras` (with this replica's viewers of each)
and the dashboard's `cameras` event (on connect and every few seconds), each limited to
the cameras the sign-in covers.
"""

from __future__ import annotations

import time
from typing import Any

from rts_common.signin import Grant
from rts_common.tasks import PeriodicTask

from rts_gateway.bridge import Runtime
from rts_gateway.grants import sees
from rts_gateway.sockets import ALL_CAMERAS_ROOM, SocketServer
from rts_gateway.video.directory import CameraDirectory
from rts_gateway.video.live.hub import FrameHub

CAMERAS_EVERY_SECONDS = 5.0


def listing(directory: CameraDirectory, hub: FrameHub, grant: Grant | None) -> list[dict[str, Any]]:
    """What /api/cameras shows of the cameras this sign-in covers."""
    now = time.time()
    local = hub.describe()["cameras"]
    listed = []
    for view in directory.recent(now):
        if not sees(grant, view.status.camera):
            continue
        item = view.as_json(now)
        item["viewers_here"] = local.get(item["camera"], 0)
        item["stream"] = f"/stream/{item['camera']}"
        item["snapshot"] = f"/snapshot/{item['camera']}.jpg"
        item["timeline"] = f"/api/timeline/{item['camera']}"
        listed.append(item)
    return listed


class CameraAnnouncements:
    """The dashboard's `cameras` event: to each client as it connects, and to all of them
    every CAMERAS_EVERY_SECONDS; each gets the cameras its sign-in covers, and no other name."""

    def __init__(self, directory: CameraDirectory, runtime: Runtime) -> None:
        self._directory = directory
        self._runtime = runtime

    def attach(self, sockets: SocketServer) -> PeriodicTask:
        """Greet each client as it connects; returns the periodic announcement to run."""

        def listing_for(cameras: frozenset[str] | None) -> list[dict[str, Any]]:
            listed = self._directory.listing()
            return [c for c in listed if cameras is None or c["camera"] in cameras]

        def announce() -> None:
            scoped = sockets.scoped()
            sockets.emit("cameras", listing_for(None), to=ALL_CAMERAS_ROOM, local=True)
            for sid, cameras in scoped.items():
                sockets.emit("cameras", listing_for(cameras), to=sid, local=True)

        def greet(sid: str) -> None:
            grant = sockets.grant(sid)
            cameras = grant.cameras if grant is not None else None
            sockets.emit("cameras", listing_for(cameras), to=sid, local=True)

        sockets.on_connect(greet)
        return PeriodicTask("cameras", CAMERAS_EVERY_SECONDS, self._runtime.serialized(announce))
