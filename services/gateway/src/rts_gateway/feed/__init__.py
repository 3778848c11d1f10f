"""The live dashboard's data: playback events, QoE aggregates and detections over Socket.IO."""

from rts_gateway.feed.feature import Feed

__all__ = ["Feed"]
