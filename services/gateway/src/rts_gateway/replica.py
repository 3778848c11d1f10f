"""Which replica answered: its name in a header of every HTTP response.

Behind a load balancer, that header is how a user (or a test) sees the spread of
clients over replicas and that a Socket.IO session stays on one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

REPLICA_HEADER = "X-Gateway-Replica"

StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


class ReplicaHeader:
    """WSGI middleware adding `X-Gateway-Replica` to every response.

    A middleware rather than Flask's `after_request`: Socket.IO's long-polling requests are
    answered by the engine.io middleware before Flask sees them. A WebSocket's upgrade is
    the exception: the server writes that handshake itself.
    """

    def __init__(self, app: WsgiApp, replica: str) -> None:
        self.app = app
        self.header = (REPLICA_HEADER, replica)

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        def start(status: str, headers: list[tuple[str, str]], *exc_info: Any) -> Any:
            headers.append(self.header)
            return start_response(status, headers, *exc_info)

        return self.app(environ, start)
