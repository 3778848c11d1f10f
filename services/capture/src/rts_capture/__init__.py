"""Capture: video sources into Kafka as JPEG frames, with motion and face detections."""
