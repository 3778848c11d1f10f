"""Write the Helm chart's topic list from the shared contracts (`make chart-topics`).

The chart's KafkaTopics must carry exactly the partitions and configs of
`rts_common.contracts.TOPICS`; Helm can only read files inside the chart, so the list is
generated into it and a test fails when the file and the contracts disagree.
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml
from rts_common.contracts import TOPICS

CHART_TOPICS = Path(__file__).resolve().parent.parent / "helm/streaming/files/topics.yaml"
HEADER = "# Generated from rts_common.contracts by `make chart-topics`: do not edit.\n"


def render() -> str:
    topics = [
        {
            "name": spec.name,
            "partitions": spec.partitions,
            "key": spec.key,
            "config": dict(spec.config),
        }
        for spec in TOPICS
    ]
    return HEADER + yaml.safe_dump({"topics": topics}, sort_keys=False, width=100)


def main() -> int:
    text = render()
    if "--check" in sys.argv[1:]:
        current = CHART_TOPICS.read_text() if CHART_TOPICS.exists() else ""
        if current != text:
            print(f"{CHART_TOPICS} is stale: run `make chart-topics`", file=sys.stderr)
            return 1
        return 0
    CHART_TOPICS.write_text(text)
    print(f"wrote {CHART_TOPICS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
