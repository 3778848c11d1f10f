"""Local development stack: a real Kafka broker and a supervisor for the services."""
