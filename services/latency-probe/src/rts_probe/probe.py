"""One watcher thread per camera the gateway lists; each keeps one low-rate stream open.

A watcher measures, for every new frame, the wall clock at receipt minus the capture
time the frame carries: capture -> Kafka -> gateway -> viewer, as a viewer sees it.
Keep-alive parts (the gateway re-sends the last frame when a camera is quiet) carry an
old timestamp and are skipped by their sequence number. Clocks of the capture pod and
the probe's node must agree for the figure to mean anything, as for the gateway's own.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import Any

from rts_common.signin import Authenticator

from rts_probe.metrics import ProbeMetrics
from rts_probe.mjpeg import StreamError, boundary_of, parts
from rts_probe.settings import ProbeSettings

log = logging.getLogger(__name__)

# The gateway labels its own figures by this header, so dashboards can tell probe traffic
# from real viewers.
VIEWER_KIND_HEADER = "X-Viewer-Kind"
VIEWER_KIND = "probe"


def http_get(url: str, headers: dict[str, str], timeout: float) -> Any:
    """An open GET response; `timeout` bounds every read, not the whole stream."""
    # The base URL is http(s): ProbeSettings.gateway_url's pattern allows nothing else.
    request = urllib.request.Request(url, headers=headers)  # noqa: S310
    return urllib.request.urlopen(request, timeout=timeout)  # noqa: S310


class Credentials:
    """Bearer sessions minted from the gateway's secret, a fresh one for every request.

    The gateway accepts a session token as `Authorization: Bearer`; minting one per
    request means none ever reaches the gateway's session lifetime.
    """

    def __init__(self, secret: str) -> None:
        self._auth = Authenticator(secret, login_ttl=60, session_ttl=3600) if secret else None

    def headers(self) -> dict[str, str]:
        if self._auth is None:
            return {}
        session = self._auth.issue("latency-probe")
        return {"Authorization": f"Bearer {session.token}"}


class Probe:
    def __init__(
        self,
        settings: ProbeSettings,
        metrics: ProbeMetrics,
        stop: threading.Event,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.stop = stop
        self.clock = clock
        self.base = settings.gateway_url.rstrip("/")
        self.credentials = Credentials(settings.auth_secret.get_secret_value())
        self._watchers: dict[str, Watcher] = {}
        self._listed_at: float | None = None
        self._last_error = ""

    def run(self) -> None:
        """List the cameras, start and stop watchers, until stopped."""
        while not self.stop.is_set():
            try:
                cameras = self.list_cameras()
            except (OSError, ValueError) as exc:
                self._last_error = f"camera list: {exc}"
                log.warning("cannot list the gateway's cameras", extra={"error": str(exc)})
            else:
                self._listed_at = time.monotonic()
                self._last_error = ""
                self.metrics.cameras.set(len(cameras))
                self._follow(cameras)
            self.stop.wait(self.settings.cameras_interval)
        for watcher in self._watchers.values():
            watcher.join(self.settings.read_timeout + 5)

    def list_cameras(self) -> list[str]:
        with http_get(self.base + "/api/cameras", self.credentials.headers(), 10) as response:
            body = json.load(response)
        return sorted(str(item["camera"]) for item in body.get("cameras", []))

    def _follow(self, cameras: list[str]) -> None:
        for camera in cameras:
            if camera not in self._watchers:
                log.info("watching camera", extra={"camera": camera})
                watcher = Watcher(self, camera)
                self._watchers[camera] = watcher
                watcher.start()
        for camera in set(self._watchers) - set(cameras):
            log.info("camera gone from the list", extra={"camera": camera})
            self._watchers.pop(camera).retire()

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        """Ready while the gateway's camera list was read within two intervals."""
        fresh = self._listed_at is not None and (
            time.monotonic() - self._listed_at < 2 * self.settings.cameras_interval + 10
        )
        details: dict[str, Any] = {"cameras": sorted(self._watchers)}
        if self._last_error:
            details["error"] = self._last_error
        return fresh, details


class Watcher(threading.Thread):
    """Keeps one stream of one camera open, reopening it with backoff when it fails."""

    def __init__(self, probe: Probe, camera: str) -> None:
        super().__init__(name=f"watch-{camera}", daemon=True)
        self.probe = probe
        self.camera = camera
        self.retired = threading.Event()
        query = urllib.parse.urlencode({"fps": f"{probe.settings.fps:g}"})
        self.url = f"{probe.base}/stream/{urllib.parse.quote(camera)}?{query}"
        metrics = probe.metrics
        self.latency = metrics.frame_latency.labels(camera=camera)
        self.frames = metrics.frames.labels(camera=camera)

    def retire(self) -> None:
        self.retired.set()

    def _done(self) -> bool:
        return self.retired.is_set() or self.probe.stop.is_set()

    def run(self) -> None:
        backoff = 1.0
        while not self._done():
            received = self._watch_once()
            if self._done():
                return
            backoff = 1.0 if received else min(backoff * 2, self.probe.settings.reconnect_max)
            self.probe.stop.wait(backoff)

    def _watch_once(self) -> int:
        """Hold the stream until it fails; the number of new frames it brought."""
        settings, metrics = self.probe.settings, self.probe.metrics
        headers = {**self.probe.credentials.headers(), VIEWER_KIND_HEADER: VIEWER_KIND}
        received = 0
        reason = "ended"
        try:
            with http_get(self.url, headers, settings.read_timeout) as response:
                boundary = boundary_of(response.headers.get("Content-Type", ""))
                metrics.streams_open.inc()
                try:
                    last_seq = None
                    for part in parts(response, boundary):
                        if self._done():
                            return received
                        if part.seq == last_seq:
                            continue  # a keep-alive: the same frame again
                        last_seq = part.seq
                        self.latency.observe(max(0.0, self.probe.clock() - part.ts_ns / 1e9))
                        self.frames.inc()
                        received += 1
                finally:
                    metrics.streams_open.dec()
        except urllib.error.HTTPError as exc:
            reason = f"http_{exc.code}"
        except TimeoutError:
            reason = "timeout"
        except StreamError as exc:
            reason = "protocol"
            log.warning("not an MJPEG stream", extra={"camera": self.camera, "error": str(exc)})
        except OSError:
            reason = "connection"
        metrics.stream_errors.labels(camera=self.camera, reason=reason).inc()
        log.info(
            "stream closed", extra={"camera": self.camera, "reason": reason, "frames": received}
        )
        return received
