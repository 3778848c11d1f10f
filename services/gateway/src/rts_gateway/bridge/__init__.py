"""The Kafka bridge: confluent-kafka on native threads, handed to the app context safely."""

from rts_gateway.bridge.consumer import ConsumerLoop, Future, from_beginning
from rts_gateway.bridge.kafka import KafkaBridge
from rts_gateway.bridge.records import BadRecords, Batch, Record, Topic, decode_batch
from rts_gateway.bridge.runtime import AsyncMode, Flag, Runtime, create_runtime

__all__ = [
    "AsyncMode",
    "BadRecords",
    "Batch",
    "ConsumerLoop",
    "Flag",
    "Future",
    "KafkaBridge",
    "Record",
    "Runtime",
    "Topic",
    "create_runtime",
    "decode_batch",
    "from_beginning",
]
