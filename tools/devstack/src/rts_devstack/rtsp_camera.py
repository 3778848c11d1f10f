"""A stand-in IP camera: GStreamer's RTSP server serving an H.264 or H.265 clip.

Runs under the system's Python with GStreamer's bindings (Debian: python3-gi,
gir1.2-gst-rtsp-server-1.0, gstreamer1.0-rtsp and -plugins-good/-bad), not the project's
environment: it imports nothing of the project. `rts_devstack.cameras.RtspCamera` starts
it; by hand: `/usr/bin/python3 rtsp_camera.py --clip clip.mp4 --port 8554`.

Each client gets the clip from its first frame, paced in real time, as cameras and NVR
relays serve many players. SIGUSR1 stalls every stream without closing it (the RTSP
session stays, no RTP flows: a camera that hangs); SIGUSR2 resumes. SIGTERM stops.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time

import gi  # type: ignore[import-not-found, unused-ignore]

gi.require_version("Gst", "1.0")
gi.require_version("GstRtsp", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtsp, GstRtspServer  # type: ignore[import-not-found, unused-ignore]  # noqa: E402

PARSERS = {"h264": "h264parse ! rtph264pay", "h265": "h265parse ! rtph265pay"}
TRANSPORTS = {
    "tcp": GstRtsp.RTSPLowerTrans.TCP,
    "udp": GstRtsp.RTSPLowerTrans.UDP,
    "any": GstRtsp.RTSPLowerTrans.TCP | GstRtsp.RTSPLowerTrans.UDP,
}


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clip", required=True, help="MP4 or MKV file of H.264/H.265 video")
    parser.add_argument("--codec", choices=sorted(PARSERS), default="h264")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8554)
    parser.add_argument("--path", default="/stream", help="mount point, e.g. /stream")
    parser.add_argument("--user", default="", help="require this user (basic auth)")
    parser.add_argument("--password", default="")
    parser.add_argument("--transport", choices=sorted(TRANSPORTS), default="any")
    parser.add_argument(
        "--report-sent",
        action="store_true",
        help="print 'sent <pts ns> <wall clock ns>' as each frame leaves (latency benchmarks)",
    )
    return parser.parse_args()


class Camera:
    """The server's streams: every client's pipeline, which SIGUSR1/SIGUSR2 stall and resume."""

    def __init__(self, report_sent: bool) -> None:
        self.valves: list[Gst.Element] = []
        self.stalled = False
        self.report_sent = report_sent

    def configured(self, _factory: object, media: GstRtspServer.RTSPMedia) -> None:
        pipeline = media.get_element()
        valve = pipeline.get_by_name("valve")
        valve.set_property("drop", self.stalled)
        self.valves.append(valve)
        if self.report_sent:
            pad = pipeline.get_by_name("pay0").get_static_pad("sink")
            pad.add_probe(Gst.PadProbeType.BUFFER, self.sent)

    @staticmethod
    def sent(_pad: object, info: Gst.PadProbeInfo) -> Gst.PadProbeReturn:
        print(f"sent {info.get_buffer().pts} {time.time_ns()}", flush=True)
        return Gst.PadProbeReturn.OK

    def stall(self, drop: bool) -> bool:
        self.stalled = drop
        for valve in self.valves:
            valve.set_property("drop", drop)
        print("stalled" if drop else "resumed", flush=True)
        return True


def require_user(
    server: GstRtspServer.RTSPServer, factory: GstRtspServer.RTSPMediaFactory, user: str, pw: str
) -> None:
    auth = GstRtspServer.RTSPAuth()
    token = GstRtspServer.RTSPToken()
    token.set_string("media.factory.role", "viewer")
    auth.add_basic(GstRtspServer.RTSPAuth.make_basic(user, pw), token)
    server.set_auth(auth)
    permissions = GstRtspServer.RTSPPermissions()
    permissions.add_permission_for_role("viewer", "media.factory.access", True)
    permissions.add_permission_for_role("viewer", "media.factory.construct", True)
    factory.set_permissions(permissions)


def main() -> int:
    args = arguments()
    Gst.init(None)
    demux = "matroskademux" if args.clip.endswith(".mkv") else "qtdemux"
    launch = (
        f'( filesrc location="{args.clip}" ! {demux} ! valve name=valve ! '
        f"{PARSERS[args.codec]} name=pay0 pt=96 config-interval=1 )"
    )
    server = GstRtspServer.RTSPServer()
    server.set_address(args.host)
    server.set_service(str(args.port))
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(launch)
    factory.set_shared(False)
    factory.set_protocols(TRANSPORTS[args.transport])
    camera = Camera(args.report_sent)
    factory.connect("media-configure", camera.configured)
    if args.user:
        require_user(server, factory, args.user, args.password)
    server.get_mount_points().add_factory(args.path, factory)
    if server.attach(None) == 0:
        print(f"cannot listen on {args.host}:{args.port}", file=sys.stderr, flush=True)
        return 1
    loop = GLib.MainLoop()
    GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGUSR1, camera.stall, True)
    GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGUSR2, camera.stall, False)
    GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGTERM, loop.quit)
    GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGINT, loop.quit)
    print(f"serving rtsp://{args.host}:{args.port}{args.path}", flush=True)
    loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
