"""Sign-in: one-time login links traded for session cookies; the guard on every route."""

from rts_gateway.access.feature import Access

__all__ = ["Access"]
