"""event-sim: simulated viewers whose players report playback events to Kafka."""
