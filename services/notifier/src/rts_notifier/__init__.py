"""The notifier: detections that matter, pushed to webhooks and MQTT."""
