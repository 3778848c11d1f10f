"""The latency probe: one low-rate MJPEG viewer per camera, measuring capture -> receipt."""
