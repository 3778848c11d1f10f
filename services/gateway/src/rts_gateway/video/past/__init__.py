"""The past Kafka still holds: a Kafka read per request, replays, snapshots at a time,
clips and the timeline. It never imports the live path (live/)."""
