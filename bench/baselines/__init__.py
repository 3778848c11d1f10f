"""The baseline articles' pipelines, re-created from their descriptions to be measured
against in the same run. Measurement only: nothing of the product uses them.

Where the benchmark needs something the articles don't have, it is the one addition
named in each module (a capture timestamp to measure latency with, a Content-Length so
one client reads every server the same way); confluent-kafka stands in for kafka-python
with its default settings, so the client library is not what is compared.
"""
