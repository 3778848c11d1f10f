"""The gateway: MJPEG streams and the Socket.IO dashboard from Kafka."""
